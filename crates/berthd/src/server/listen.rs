//! Listeners: the root-only unix socket (default), opt-in TCP with
//! mutual TLS, and the sockets systemd passes (`fd://`, unix or TCP).

use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::config::{DaemonConfig, Host};

/// A connection's stream; its socket is watched for the client leaving
/// (`peer.rs`).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {
    fn raw_fd(&self) -> std::os::fd::RawFd;
    /// The certificates the client presented (TLS connections only), for
    /// authorization plugins.
    fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        None
    }
}
impl Io for tokio::net::UnixStream {
    fn raw_fd(&self) -> std::os::fd::RawFd {
        self.as_raw_fd()
    }
}
impl Io for tokio::net::TcpStream {
    fn raw_fd(&self) -> std::os::fd::RawFd {
        self.as_raw_fd()
    }
}
impl Io for tokio_rustls::server::TlsStream<tokio::net::TcpStream> {
    fn raw_fd(&self) -> std::os::fd::RawFd {
        self.as_raw_fd()
    }
    fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.get_ref().1.peer_certificates()
    }
}
pub type BoxIo = Box<dyn Io>;

/// Upper bound on connections served at once, across all listeners. Past
/// it, new connections wait in the kernel's backlog instead of using up the
/// daemon's file descriptors (which container operations need too).
pub const MAX_CONNECTIONS: usize = 4096;

/// Time a TLS client gets to finish its handshake (it holds a connection
/// slot meanwhile).
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The connection bound for this process: `MAX_CONNECTIONS`, or half the
/// open-file limit when that is lower, so the rest stays for the engine.
pub fn connection_limit() -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    usize::try_from(soft / 2)
        .unwrap_or(MAX_CONNECTIONS)
        .clamp(16, MAX_CONNECTIONS)
}

/// A connection slot; the connection holds it until it ends.
pub type Slot = OwnedSemaphorePermit;

pub enum Listener {
    Unix {
        listener: UnixListener,
        /// The socket file to remove on stop while it is still ours
        /// (`ino`); none for a socket systemd owns.
        path: Option<PathBuf>,
        ino: u64,
    },
    Tcp {
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
    },
}

fn group_id(name: &str) -> anyhow::Result<u32> {
    if let Ok(n) = name.parse::<u32>() {
        return Ok(n);
    }
    nix::unistd::Group::from_name(name)?
        .map(|g| g.gid.as_raw())
        .with_context(|| format!("group {name} not found"))
}

fn bind_unix(path: &Path, group: Option<&str>) -> anyhow::Result<Listener> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            // A live daemon answers; a stale socket file refuses the connection.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                bail!(
                    "another daemon is already listening on {}: refusing to start",
                    path.display()
                );
            }
            std::fs::remove_file(path)
                .with_context(|| format!("removing stale socket {}", path.display()))?;
        } else {
            bail!("{} exists and is not a socket", path.display());
        }
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    let gid = match group {
        Some(g) => Some(group_id(g)?),
        None => Some(0),
    };
    nix::unistd::chown(
        path,
        Some(nix::unistd::Uid::from_raw(0)),
        gid.map(nix::unistd::Gid::from_raw),
    )
    .with_context(|| format!("chown {}", path.display()))?;
    let ino = std::fs::metadata(path)?.ino();
    tracing::info!(path = %path.display(), "API listening on unix socket");
    Ok(Listener::Unix {
        listener,
        path: Some(path.to_path_buf()),
        ino,
    })
}

/// The TLS of a TCP listener: mutual TLS when configured; plain only
/// with `--insecure-tcp` (checked here for activated sockets, whose kind
/// is known only now; `tcp://` hosts are checked with the config).
fn tcp_tls(what: &str, cfg: &DaemonConfig) -> anyhow::Result<Option<TlsAcceptor>> {
    match &cfg.tls {
        Some(files) => Ok(Some(TlsAcceptor::from(Arc::new(
            super::tls::server_config(files)?,
        )))),
        None if !cfg.insecure_tcp => bail!(
            "refusing to serve {what} without TLS: pass --tlsverify --tlscacert --tlscert --tlskey (or --insecure-tcp to accept the risk)"
        ),
        None => {
            tracing::warn!(
                "!!! SERVING THE API ON {what} WITHOUT TLS: anyone who can reach this port controls this host as root !!!"
            );
            Ok(None)
        }
    }
}

/// A listening socket passed by systemd: unix (served as the daemon's own
/// socket, but never removed: systemd owns the file) or TCP.
fn from_activated(a: crate::activation::Activated, cfg: &DaemonConfig) -> anyhow::Result<Listener> {
    use nix::sys::socket::{
        getsockname, getsockopt, sockopt, AddressFamily, SockaddrLike, SockaddrStorage,
    };
    let fd = a.fd.as_raw_fd();
    let invalid = |why: String| crate::activation::ActivationError::Invalid(fd, why);
    let listening = getsockopt(&a.fd, sockopt::AcceptConn).map_err(|e| invalid(e.to_string()))?;
    if !listening {
        return Err(invalid("not a listening socket".into()).into());
    }
    let addr = getsockname::<SockaddrStorage>(fd).map_err(|e| invalid(e.to_string()))?;
    match addr.family() {
        Some(AddressFamily::Unix) => {
            let std = std::os::unix::net::UnixListener::from(a.fd);
            std.set_nonblocking(true)?;
            let listener = UnixListener::from_std(std)?;
            tracing::info!(fd, name = %a.name, addr = %addr, "API listening on systemd-activated unix socket");
            Ok(Listener::Unix {
                listener,
                path: None,
                ino: 0,
            })
        }
        Some(AddressFamily::Inet | AddressFamily::Inet6) => {
            let std = std::net::TcpListener::from(a.fd);
            std.set_nonblocking(true)?;
            let listener = TcpListener::from_std(std)?;
            let tls = tcp_tls(&format!("systemd-activated tcp://{addr}"), cfg)?;
            tracing::info!(fd, name = %a.name, %addr, tls = tls.is_some(), "API listening on systemd-activated tcp socket");
            Ok(Listener::Tcp { listener, tls })
        }
        other => Err(invalid(format!("unsupported socket family {other:?}")).into()),
    }
}

impl Listener {
    /// The listeners of one host: one, or for `fd://` every socket systemd
    /// passed.
    pub async fn bind(host: &Host, cfg: &DaemonConfig) -> anyhow::Result<Vec<Self>> {
        match host {
            Host::Unix(p) => Ok(vec![bind_unix(p, cfg.socket_group.as_deref())?]),
            Host::Tcp(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding tcp://{addr}"))?;
                let tls = tcp_tls(&format!("tcp://{addr}"), cfg)?;
                tracing::info!(%addr, tls = tls.is_some(), "API listening on tcp");
                Ok(vec![Listener::Tcp { listener, tls }])
            }
            Host::Fd(which) => crate::activation::take(*which)?
                .into_iter()
                .map(|a| from_activated(a, cfg))
                .collect(),
        }
    }

    /// Accepts until `stop` flips; each connection is handed to `on_conn`
    /// with the slot it holds. No slot free: accepting waits.
    pub async fn accept_loop<F>(
        self,
        on_conn: F,
        slots: Arc<Semaphore>,
        mut stop: watch::Receiver<bool>,
    ) where
        F: Fn(BoxIo, Slot) + Clone + Send + Sync + 'static,
    {
        match self {
            Listener::Unix {
                listener,
                path,
                ino,
            } => {
                loop {
                    let slot = tokio::select! {
                        s = slots.clone().acquire_owned() => match s { Ok(s) => s, Err(_) => break },
                        _ = crate::server::stopped(&mut stop) => break,
                    };
                    tokio::select! {
                        r = listener.accept() => match r {
                            Ok((s, _)) => on_conn(Box::new(s), slot),
                            Err(e) => { tracing::warn!(error = %e, "accept"); tokio::time::sleep(std::time::Duration::from_millis(10)).await; }
                        },
                        _ = crate::server::stopped(&mut stop) => break,
                    }
                }
                // Remove the socket only if it is still ours.
                if let Some(path) = path {
                    if std::fs::metadata(&path)
                        .map(|m| m.ino() == ino)
                        .unwrap_or(false)
                    {
                        let _ = std::fs::remove_file(&path);
                    }
                }
            }
            Listener::Tcp { listener, tls } => loop {
                let slot = tokio::select! {
                    s = slots.clone().acquire_owned() => match s { Ok(s) => s, Err(_) => break },
                    _ = crate::server::stopped(&mut stop) => break,
                };
                tokio::select! {
                    r = listener.accept() => match r {
                        Ok((s, peer)) => {
                            let _ = s.set_nodelay(true);
                            match &tls {
                                None => on_conn(Box::new(s), slot),
                                Some(acc) => {
                                    let acc = acc.clone();
                                    let on_conn = on_conn.clone();
                                    tokio::spawn(async move {
                                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acc.accept(s)).await {
                                            Ok(Ok(t)) => on_conn(Box::new(t), slot),
                                            Ok(Err(e)) => tracing::info!(%peer, error = %e, "TLS handshake refused"),
                                            Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                                        }
                                    });
                                }
                            }
                        }
                        Err(e) => { tracing::warn!(error = %e, "accept"); tokio::time::sleep(std::time::Duration::from_millis(10)).await; }
                    },
                    _ = crate::server::stopped(&mut stop) => break,
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::sync::mpsc;

    /// With every slot taken, a new connection waits; it is served once a
    /// connection ends.
    #[tokio::test]
    async fn past_the_limit_connections_wait_for_a_slot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = Listener::Unix {
            listener: UnixListener::bind(&path).unwrap(),
            path: Some(path.clone()),
            ino: 0,
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<(BoxIo, Slot)>();
        let (stop_tx, stop) = watch::channel(false);
        let slots = Arc::new(Semaphore::new(2));
        let task = tokio::spawn(listener.accept_loop(
            move |io, slot| {
                let _ = tx.send((io, slot));
            },
            slots,
            stop,
        ));
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(tokio::net::UnixStream::connect(&path).await.unwrap());
        }
        let first = rx.recv().await.unwrap();
        let _second = rx.recv().await.unwrap();
        let third = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await;
        assert!(
            third.is_err(),
            "a third connection was served past the limit"
        );
        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert!(
            matches!(third, Ok(Some(_))),
            "the waiting connection was not served"
        );
        stop_tx.send(true).unwrap();
        task.await.unwrap();
    }
}
