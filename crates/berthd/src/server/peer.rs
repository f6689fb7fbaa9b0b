//! Noticing a client that has gone while its answer waits on the engine
//! (`/containers/{id}/wait`, `/events`).
//!
//! The connections serve half-closed clients (see `spawn_conn`), so hyper
//! does not read past a request and never sees the client leave; a waiting
//! handler would hold its connection until the container exits, however
//! long. Go's server, and so dockerd, cancels a request when its
//! background read meets the end of the stream; these handlers do the same
//! by watching the socket for the peer's hang-up.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// The connection's socket, as a request extension. Only borrowed while
/// the request's handler runs (the connection, which owns the socket, is
/// alive then); a watcher works on its own duplicate.
#[derive(Clone, Copy)]
pub struct Peer(pub RawFd);

/// Resolves once the client has hung up (or shut down its sending side).
pub struct Gone(Option<AsyncFd<OwnedFd>>);

impl Peer {
    /// A watcher on a duplicate of the socket; call it from the handler.
    pub fn watch(self) -> Gone {
        // SAFETY: the connection owns fd `self.0` and is alive while its
        // handler runs; F_DUPFD_CLOEXEC makes a new fd that we own.
        let dup = unsafe { libc::fcntl(self.0, libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Gone(None);
        }
        // SAFETY: `dup` is a fresh descriptor, owned from here on.
        let fd = unsafe { OwnedFd::from_raw_fd(dup) };
        // SAFETY: the OwnedFd is moved into the AsyncFd, which keeps it
        // open (and its number unchanged) until the AsyncFd is dropped.
        Gone(unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.ok())
    }
}

impl Gone {
    pub fn never() -> Self {
        Gone(None)
    }

    /// Never resolves when the socket cannot be watched, or when the client
    /// sends more (a pipelined request: it is still there).
    pub async fn wait(self) {
        let Some(afd) = self.0 else {
            return std::future::pending().await;
        };
        loop {
            let Ok(mut guard) = afd.readable().await else {
                return std::future::pending().await;
            };
            if guard.ready().is_read_closed() {
                return;
            }
            let mut b = [0u8; 1];
            // SAFETY: a one-byte peek into our buffer on our descriptor.
            let n = unsafe {
                libc::recv(
                    afd.get_ref().as_raw_fd(),
                    b.as_mut_ptr().cast(),
                    1,
                    libc::MSG_PEEK | libc::MSG_DONTWAIT,
                )
            };
            match n {
                0 => return,
                n if n > 0 => return std::future::pending().await,
                _ => guard.clear_ready(),
            }
        }
    }
}
