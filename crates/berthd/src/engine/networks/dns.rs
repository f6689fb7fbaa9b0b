//! The embedded DNS server of user-defined networks. Each such container
//! gets a resolver at 127.0.0.11:53 *inside its own network namespace*
//! (sockets opened by a thread that joined the namespace), answering with
//! the containers and aliases of the networks it is on, and forwarding
//! other names to the upstream resolvers from the daemon's namespace.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

use crate::engine::{EngineError, Result};

pub const ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

/// Resolves a (lower-cased, dot-less) name for the asking container.
pub type Lookup = Arc<dyn Fn(&str) -> Option<Vec<IpAddr>> + Send + Sync>;

pub struct DnsServer {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Opens 127.0.0.11:53 (UDP and TCP) inside the namespace at `netns`.
fn open_sockets(netns: &Path) -> Result<(std::net::UdpSocket, std::net::TcpListener)> {
    let ns = std::fs::File::open(netns)
        .map_err(|e| EngineError::internal(format!("opening {}: {e}", netns.display())))?;
    std::thread::spawn(
        move || -> Result<(std::net::UdpSocket, std::net::TcpListener)> {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| EngineError::internal(format!("setns: {e}")))?;
            let addr = SocketAddr::from((ADDR, 53));
            let u = std::net::UdpSocket::bind(addr)
                .map_err(|e| EngineError::internal(format!("dns udp: {e}")))?;
            let t = std::net::TcpListener::bind(addr)
                .map_err(|e| EngineError::internal(format!("dns tcp: {e}")))?;
            u.set_nonblocking(true)?;
            t.set_nonblocking(true)?;
            Ok((u, t))
        },
    )
    .join()
    .map_err(|_| EngineError::internal("dns thread panicked"))?
}

pub fn start(netns: &Path, lookup: Lookup, upstream: Vec<SocketAddr>) -> Result<DnsServer> {
    let (u, t) = open_sockets(netns)?;
    let udp = Arc::new(UdpSocket::from_std(u)?);
    let tcp = TcpListener::from_std(t)?;
    let upstream = Arc::new(upstream);
    let (l1, up1) = (lookup.clone(), upstream.clone());
    let t1 = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
                continue;
            };
            let q = buf[..n].to_vec();
            let (udp, l, up) = (udp.clone(), l1.clone(), up1.clone());
            tokio::spawn(async move {
                if let Some(r) = answer(&q, &l, &up).await {
                    let _ = udp.send_to(&r, peer).await;
                }
            });
        }
    });
    let t2 = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = tcp.accept().await else {
                continue;
            };
            let (l, up) = (lookup.clone(), upstream.clone());
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(10), async {
                    let mut len = [0u8; 2];
                    s.read_exact(&mut len).await?;
                    let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                    s.read_exact(&mut q).await?;
                    if let Some(r) = answer(&q, &l, &up).await {
                        s.write_all(&(r.len() as u16).to_be_bytes()).await?;
                        s.write_all(&r).await?;
                    }
                    Ok::<(), std::io::Error>(())
                })
                .await;
            });
        }
    });
    Ok(DnsServer {
        tasks: vec![t1, t2],
    })
}

async fn answer(q: &[u8], lookup: &Lookup, upstream: &[SocketAddr]) -> Option<Vec<u8>> {
    let msg = Message::from_vec(q).ok()?;
    let query = msg.queries.first()?.clone();
    let name = query
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if let Some(ips) = lookup(&name) {
        let mut resp = Message::response(msg.metadata.id, msg.metadata.op_code);
        resp.metadata.recursion_desired = msg.metadata.recursion_desired;
        resp.metadata.recursion_available = true;
        resp.metadata.authoritative = true;
        resp.add_query(query.clone());
        for ip in ips {
            let rdata = match (query.query_type(), ip) {
                (RecordType::A, IpAddr::V4(v4)) => RData::A(A(v4)),
                (RecordType::AAAA, IpAddr::V6(v6)) => RData::AAAA(AAAA(v6)),
                _ => continue,
            };
            resp.add_answer(Record::from_rdata(query.name().clone(), 600, rdata));
        }
        // Other types of a known name: an empty NOERROR answer.
        return resp.to_vec().ok();
    }
    for up in upstream {
        if let Some(r) = forward(q, *up).await {
            return Some(r);
        }
    }
    let mut resp = Message::response(msg.metadata.id, msg.metadata.op_code);
    resp.metadata.message_type = MessageType::Response;
    resp.metadata.response_code = if upstream.is_empty() {
        ResponseCode::NXDomain
    } else {
        ResponseCode::ServFail
    };
    resp.add_query(query);
    resp.to_vec().ok()
}

async fn forward(q: &[u8], up: SocketAddr) -> Option<Vec<u8>> {
    let bind: SocketAddr = match up.ip() {
        IpAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        IpAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
    };
    let s = UdpSocket::bind(bind).await.ok()?;
    s.connect(up).await.ok()?;
    s.send(q).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), s.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(n);
    Some(buf)
}
