//! Network namespaces as files: created on a short-lived thread (unshare
//! affects only the calling thread), loopback brought up, and bind-mounted
//! at a path so the shim and libcontainer can join it.

use std::path::Path;

use crate::engine::{EngineError, Result};

fn lo_up() -> std::io::Result<()> {
    // SAFETY: a plain ioctl on a datagram socket in the current netns.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(s, libc::SIOCGIFFLAGS, &mut req) < 0 {
            let e = std::io::Error::last_os_error();
            libc::close(s);
            return Err(e);
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        let r = libc::ioctl(s, libc::SIOCSIFFLAGS, &req);
        let e = std::io::Error::last_os_error();
        libc::close(s);
        if r < 0 {
            return Err(e);
        }
    }
    Ok(())
}

/// A namespace being created on its own thread (see [`create_soon`]).
pub struct Pending(tokio::sync::oneshot::Receiver<Result<()>>);

impl Pending {
    /// Waits until the namespace exists (or could not be made).
    pub async fn ready(self) -> Result<()> {
        self.0.await.unwrap_or_else(|_| {
            Err(EngineError::internal(
                "creating the network namespace: its thread ended without an answer",
            ))
        })
    }
}

/// Starts creating a new network namespace with `lo` up, pinned at
/// `path`, on a thread of its own: unsharing moves the calling thread, and
/// the caller can go on with the rest of a start meanwhile.
pub fn create_soon(path: &Path) -> Pending {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let target = path.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("berth-netns".into())
        .spawn(move || {
            let _ = tx.send(create_here(&target));
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "starting a netns thread");
    }
    // A thread that never ran dropped its sender: `ready` reports that.
    Pending(rx)
}

/// Creates a new network namespace with `lo` up, pinned at `path`, on the
/// calling thread, which it moves into the new namespace (a thread that is
/// about to end).
fn create_here(path: &Path) -> Result<()> {
    // One a crash may have left there goes first.
    remove(path);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::File::create(path)
        .map_err(|e| EngineError::internal(format!("creating {}: {e}", path.display())))?;
    let r = (|| -> std::result::Result<(), String> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("unshare(net): {e}"))?;
        lo_up().map_err(|e| format!("bringing up lo: {e}"))?;
        let tid = nix::unistd::gettid();
        nix::mount::mount(
            Some(format!("/proc/self/task/{tid}/ns/net").as_str()),
            path,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| format!("pinning the netns: {e}"))
    })();
    if let Err(e) = r {
        let _ = std::fs::remove_file(path);
        return Err(EngineError::internal(e));
    }
    Ok(())
}

/// Unpins and removes a namespace file (the namespace dies with its last user).
pub fn remove(path: &Path) {
    if path.exists() {
        let _ = nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs root (as the e2e tests): unshare, bind mounts.
    #[tokio::test]
    async fn a_namespace_made_on_its_own_thread_is_pinned_then_removed() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("ns1");
        // A stale file where the namespace goes is replaced.
        std::fs::write(&path, "stale").unwrap();
        create_soon(&path).ready().await.unwrap();
        let ours = std::fs::metadata("/proc/self/ns/net").unwrap();
        let pinned = std::fs::metadata(&path).unwrap();
        use std::os::unix::fs::MetadataExt;
        // A namespace file (nsfs), and not this process's namespace.
        assert_eq!(pinned.dev(), ours.dev());
        assert_ne!(pinned.ino(), ours.ino());
        remove(&path);
        assert!(!path.exists());
    }
}
