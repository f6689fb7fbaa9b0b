//! The container's init through libcontainer: create (process set up and
//! waiting), start (exec the workload), delete (cgroups and runtime state).
//! Each runs in a forked worker (see `worker.rs`).

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;

use crate::executor::BerthExecutor;

/// How the init's stdio is wired.
#[derive(Clone)]
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

/// After the init has exited: removes the container's (empty) cgroups and
/// its runtime state directly, which is all libcontainer's delete does for
/// a stopped container without hooks; it costs a forked worker and a
/// mountinfo read per hierarchy, on the path that reports the exit. Falls
/// back to libcontainer's delete (in a worker) when a cgroup still holds
/// processes (shared PID namespace) or anything else is unexpected.
///
/// With a `trash` directory, the state directory is only renamed there
/// (its name is free at once); the returned path is for the caller to
/// delete once the exit is reported.
pub fn cleanup(
    id: &str,
    root: &str,
    cgroups_path: &str,
    trash: &str,
) -> Result<Option<PathBuf>, String> {
    if remove_empty_cgroups(cgroups_path).is_ok() {
        let dir = Path::new(root).join(id);
        if !trash.is_empty() {
            let dest = Path::new(trash).join(format!("runtime-{id}-{}", std::process::id()));
            if std::fs::create_dir_all(trash).is_ok() && std::fs::rename(&dir, &dest).is_ok() {
                return Ok(Some(dest));
            }
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(_) => {}
        }
    }
    let (id, root) = (id.to_string(), root.to_string());
    crate::worker::in_child(move || delete(&id, &root)).map(|()| None)
}

/// Removes `cgroups_path` from every cgroup hierarchy mounted here, if
/// each is empty; `Err` leaves the rest to libcontainer.
fn remove_empty_cgroups(cgroups_path: &str) -> Result<(), ()> {
    let rel = cgroups_path.trim_start_matches('/');
    if rel.is_empty() || rel.split('/').any(|c| c == "..") {
        return Err(());
    }
    for m in crate::cgroupmounts::read().map_err(|_| ())? {
        if m.root != "/" {
            return Err(());
        }
        let dir = Path::new(&m.mount_point).join(rel);
        let procs = match std::fs::read_to_string(dir.join("cgroup.procs")) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(_) => return Err(()),
        };
        if !procs.trim().is_empty() {
            return Err(());
        }
        match std::fs::remove_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => return Err(()),
        }
    }
    Ok(())
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
