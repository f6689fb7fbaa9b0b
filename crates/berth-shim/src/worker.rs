//! Runs libcontainer (and the exec setup) in a forked child of the
//! single-threaded shim, so the monitor's heap stays small and nothing it
//! holds is ever touched by a `clone3`'d child.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};

use nix::fcntl::OFlag;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, pipe2, ForkResult};
use serde::{de::DeserializeOwned, Serialize};

/// Forks; the child runs `f`, sends its result back as JSON and exits.
/// The caller must be single-threaded (the shim is).
pub fn in_child<T, F>(f: F) -> Result<T, String>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Result<T, String>,
{
    let (r, w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the shim is single-threaded; the child only runs `f` and exits.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            drop(r);
            let res = f();
            let bytes = serde_json::to_vec(&res).unwrap_or_default();
            // SAFETY: w is a valid owned fd; File takes ownership.
            let mut file = unsafe { std::fs::File::from_raw_fd(w.as_raw_fd()) };
            std::mem::forget(w);
            let _ = file.write_all(&bytes);
            drop(file);
            // SAFETY: leave without running the parent's destructors/atexit.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(w);
            // Wait for the worker first: processes it created (the container's
            // init) inherit the pipe until they exec, so EOF can come late.
            // The answer is small and waits in the pipe buffer.
            let status = waitpid(child, None);
            let mut buf = Vec::new();
            let file = std::fs::File::from(r);
            let _ = crate::fdio::set_nonblocking(file.as_raw_fd());
            let mut file = file;
            let mut chunk = [0u8; 4096];
            loop {
                match file.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            if buf.is_empty() {
                return Err(match status {
                    Ok(WaitStatus::Signaled(_, sig, _)) => format!("worker killed by {sig}"),
                    Ok(s) => format!("worker ended without an answer ({s:?})"),
                    Err(e) => format!("worker: {e}"),
                });
            }
            serde_json::from_slice::<Result<T, String>>(&buf)
                .map_err(|e| format!("worker answer: {e}"))?
        }
    }
}
