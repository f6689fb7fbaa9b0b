//! The container's init through libcontainer: create (process set up and
//! waiting), start (exec the workload), delete (cgroups and runtime state).
//! Each runs in a forked worker (see `worker.rs`).

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;

use crate::executor::BerthExecutor;

/// How the init's stdio is wired.
pub enum InitStdio {
    /// Raw fds for 0, 1, 2 (pipe ends or /dev/null).
    Fds {
        stdin: RawFd,
        stdout: RawFd,
        stderr: RawFd,
    },
    /// A pty created by libcontainer; the master arrives on this socket.
    Console { socket: String },
}

fn dup_owned(fd: RawFd) -> Result<OwnedFd, String> {
    // SAFETY: dup returns a fresh fd that we own.
    let n = unsafe { libc::dup(fd) };
    if n < 0 {
        return Err(format!("dup: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: n is a valid, owned fd.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// Creates the container; returns the init's PID.
pub fn create(
    id: &str,
    root: &str,
    bundle: &str,
    stdio: &InitStdio,
    executor: BerthExecutor,
) -> Result<i32, String> {
    std::fs::create_dir_all(root).map_err(|e| format!("creating {root}: {e}"))?;
    let mut b = ContainerBuilder::new(id.to_string(), SyscallType::default())
        .with_root_path(root)
        .map_err(|e| e.to_string())?
        .with_executor(executor);
    match stdio {
        InitStdio::Fds {
            stdin,
            stdout,
            stderr,
        } => {
            b = b
                .with_stdin(dup_owned(*stdin)?)
                .with_stdout(dup_owned(*stdout)?)
                .with_stderr(dup_owned(*stderr)?);
        }
        InitStdio::Console { socket } => {
            b = b.with_console_socket(Some(socket.as_str()));
        }
    }
    let container = b
        .as_init(bundle)
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(|e| describe(&e))?;
    container
        .pid()
        .map(|p| p.as_raw())
        .ok_or_else(|| "container has no pid after create".to_string())
}

/// libcontainer's errors nest the workload's exec failure; surface the
/// innermost message, which carries Docker's wording.
fn describe(e: &libcontainer::error::LibcontainerError) -> String {
    let mut msg = e.to_string();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        msg = s.to_string();
        src = s.source();
    }
    // The workload's own failure is the useful part; drop the wrappers.
    match msg.find("exec: \"") {
        Some(i) => msg[i..].to_string(),
        None => msg,
    }
}

pub fn start(id: &str, root: &str) -> Result<(), String> {
    let mut c = Container::load(Path::new(root).join(id)).map_err(|e| describe(&e))?;
    c.start().map_err(|e| describe(&e))
}

/// Removes cgroups and runtime state of an exited container.
pub fn delete(id: &str, root: &str) -> Result<(), String> {
    let dir = Path::new(root).join(id);
    if !dir.exists() {
        return Ok(());
    }
    let mut c = Container::load(dir.clone()).map_err(|e| describe(&e))?;
    c.delete(true).map_err(|e| describe(&e))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
