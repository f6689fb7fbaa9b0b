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

/// Creates a new network namespace with `lo` up, pinned at `path`.
pub fn create(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::File::create(path)
        .map_err(|e| EngineError::internal(format!("creating {}: {e}", path.display())))?;
    let target = path.to_path_buf();
    let r = std::thread::spawn(move || -> std::result::Result<(), String> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("unshare(net): {e}"))?;
        lo_up().map_err(|e| format!("bringing up lo: {e}"))?;
        let tid = nix::unistd::gettid();
        nix::mount::mount(
            Some(format!("/proc/self/task/{tid}/ns/net").as_str()),
            &target,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| format!("pinning the netns: {e}"))
    })
    .join()
    .map_err(|_| "netns thread panicked".to_string())
    .and_then(|r| r);
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
