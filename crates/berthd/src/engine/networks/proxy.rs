//! The userland proxy for published ports: DNAT cannot serve connections to
//! 127.0.0.1 from the host itself, so, as Docker does, the daemon listens on
//! the published address and relays to the container. Binding here is also
//! what makes a taken host port fail cleanly.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::engine::{EngineError, Result};

pub struct Proxy {
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn bind_err(addr: SocketAddr, e: std::io::Error) -> EngineError {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        EngineError::internal(format!(
            "driver failed programming external connectivity: Bind for {addr} failed: port is already allocated"
        ))
    } else {
        EngineError::internal(format!(
            "driver failed programming external connectivity: listen {addr}: {e}"
        ))
    }
}

/// Starts relaying `host` → `target`; returns the proxy and the bound port
/// (for port 0, the one the kernel chose).
pub async fn start(proto: &str, host: SocketAddr, target: SocketAddr) -> Result<(Proxy, u16)> {
    match proto {
        "udp" => {
            let sock = UdpSocket::bind(host).await.map_err(|e| bind_err(host, e))?;
            let port = sock.local_addr().map(|a| a.port()).unwrap_or(host.port());
            let task = tokio::spawn(udp_relay(Arc::new(sock), target));
            Ok((Proxy { task }, port))
        }
        _ => {
            let l = TcpListener::bind(host)
                .await
                .map_err(|e| bind_err(host, e))?;
            let port = l.local_addr().map(|a| a.port()).unwrap_or(host.port());
            let task = tokio::spawn(async move {
                loop {
                    let Ok((mut inbound, _)) = l.accept().await else {
                        continue;
                    };
                    tokio::spawn(async move {
                        if let Ok(Ok(mut out)) = tokio::time::timeout(
                            Duration::from_secs(10),
                            TcpStream::connect(target),
                        )
                        .await
                        {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                        }
                    });
                }
            });
            Ok((Proxy { task }, port))
        }
    }
}

/// One upstream socket per client address, dropped after a minute idle.
async fn udp_relay(front: Arc<UdpSocket>, target: SocketAddr) {
    type Flows = HashMap<SocketAddr, (Arc<UdpSocket>, Instant)>;
    let flows: Arc<Mutex<Flows>> = Arc::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, client)) = front.recv_from(&mut buf).await else {
            continue;
        };
        let up = {
            let mut f = flows.lock().await;
            f.retain(|_, (_, t)| t.elapsed() < Duration::from_secs(60));
            if let Some((s, t)) = f.get_mut(&client) {
                *t = Instant::now();
                s.clone()
            } else {
                let bind: SocketAddr = match target.ip() {
                    IpAddr::V4(_) => "0.0.0.0:0".parse().unwrap_or(target),
                    IpAddr::V6(_) => "[::]:0".parse().unwrap_or(target),
                };
                let Ok(s) = UdpSocket::bind(bind).await else {
                    continue;
                };
                if s.connect(target).await.is_err() {
                    continue;
                }
                let s = Arc::new(s);
                f.insert(client, (s.clone(), Instant::now()));
                let (s2, front2) = (s.clone(), front.clone());
                tokio::spawn(async move {
                    let mut b = vec![0u8; 65536];
                    while let Ok(Ok(n)) =
                        tokio::time::timeout(Duration::from_secs(60), s2.recv(&mut b)).await
                    {
                        let _ = front2.send_to(&b[..n], client).await;
                    }
                });
                s
            }
        };
        let _ = up.send(&buf[..n]).await;
    }
}
