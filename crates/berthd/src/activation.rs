//! systemd's side of the daemon, as dockerd has it: the listening sockets
//! a service manager passes (`-H fd://`, `LISTEN_PID`/`LISTEN_FDS`/
//! `LISTEN_FDNAMES`, read by the `sd-notify` crate) and the state it is
//! told (`READY=1`, `STOPPING=1` on `NOTIFY_SOCKET`).
//!
//! `init` runs once in `main`, while the process has one thread: it takes
//! the environment (unsetting it, so shims and plugins do not inherit it)
//! and keeps the sockets until the listeners claim them.

use std::ffi::{OsStr, OsString};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::{Mutex, OnceLock};

use crate::config::Host;

/// One socket passed by the service manager.
#[derive(Debug)]
pub struct Activated {
    pub fd: OwnedFd,
    /// Its `FileDescriptorName=` (`LISTEN_FDNAMES`), `unknown` if unnamed.
    pub name: String,
}

/// The sockets taken at `init`, until `take` hands them out (once).
static TAKEN: Mutex<Vec<Activated>> = Mutex::new(Vec::new());
/// `NOTIFY_SOCKET` as it was at `init`.
static NOTIFY: OnceLock<Option<OsString>> = OnceLock::new();

#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error(
        "no sockets found via socket activation: make sure the service was started by systemd"
    )]
    NoSockets,
    #[error("too few socket activated files passed in by systemd")]
    TooFew,
    #[error("failed to listen on systemd activated file: fd {0}: {1}")]
    Invalid(i32, String),
    #[error("socket activation: {0}")]
    Env(std::io::Error),
}

/// Takes the activation environment. Must run before any thread starts
/// (it unsets environment variables); the sockets are taken only when a
/// host is `fd://`, as dockerd does.
pub fn init(hosts: &[Host]) -> Result<(), ActivationError> {
    let notify = std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty());
    std::env::remove_var("NOTIFY_SOCKET");
    let _ = NOTIFY.set(notify);
    if !hosts.iter().any(|h| matches!(h, Host::Fd(_))) {
        return Ok(());
    }
    // SAFETY: `init` is called from `main` before the runtime or any other
    // thread exists, so nothing reads the environment concurrently.
    let fds = unsafe { sd_notify::listen_fds_with_names_and_unset_env() }
        .map_err(ActivationError::Env)?;
    let taken = fds
        .map(|(raw, name)| Activated {
            // SAFETY: systemd passed these descriptors to this process
            // (LISTEN_PID matched) and nothing else owns them: the
            // environment naming them is gone, so they are taken once.
            fd: unsafe { OwnedFd::from_raw_fd(raw) },
            name,
        })
        .collect::<Vec<_>>();
    if let Ok(mut t) = TAKEN.lock() {
        *t = taken;
    }
    Ok(())
}

/// The sockets for one `fd://` host: all of them (`fd://`), or only fd
/// `n` (`fd://N`), closing the others, with dockerd's errors. A second
/// `fd://` host finds none left.
pub fn take(which: Option<i32>) -> Result<Vec<Activated>, ActivationError> {
    let all = match TAKEN.lock() {
        Ok(mut t) => std::mem::take(&mut *t),
        Err(_) => Vec::new(),
    };
    select(all, which)
}

fn select(all: Vec<Activated>, which: Option<i32>) -> Result<Vec<Activated>, ActivationError> {
    if all.is_empty() {
        return Err(ActivationError::NoSockets);
    }
    let Some(n) = which else {
        return Ok(all);
    };
    let offset = usize::try_from(n - sd_listen_fds_start()).map_err(|_| ActivationError::TooFew)?;
    if offset >= all.len() {
        return Err(ActivationError::TooFew);
    }
    // The others are closed as they drop.
    Ok(all.into_iter().skip(offset).take(1).collect())
}

const fn sd_listen_fds_start() -> i32 {
    3
}

/// `READY=1`: the daemon serves requests.
pub fn notify_ready() {
    notify("READY=1\n");
}

/// `STOPPING=1`: the daemon begins to shut down.
pub fn notify_stopping() {
    notify("STOPPING=1\n");
}

fn notify(msg: &str) {
    let Some(Some(addr)) = NOTIFY.get() else {
        return;
    };
    if let Err(e) = send(addr, msg) {
        tracing::warn!(error = %e, socket = ?addr, "sd_notify {}", msg.trim_end());
    }
}

/// Sends one datagram to a `NOTIFY_SOCKET` address: a path, or an
/// abstract socket written `@name`. (Hand-written: the `sd-notify` crate
/// treats `@name` as a path.)
fn send(addr: &OsStr, msg: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let bytes = addr.as_bytes();
    let to = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(std::path::Path::new(addr))?,
    };
    let sock = UnixDatagram::unbound()?;
    sock.connect_addr(&to)?;
    let sent = sock.send(msg.as_bytes())?;
    if sent != msg.len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            "short notify datagram",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    fn sockets(n: usize) -> Vec<Activated> {
        (0..n)
            .map(|i| Activated {
                fd: OwnedFd::from(UnixDatagram::unbound().unwrap()),
                name: format!("s{i}"),
            })
            .collect()
    }

    #[test]
    fn fd_hosts_pick_sockets_as_dockerd() {
        assert!(matches!(
            select(Vec::new(), None),
            Err(ActivationError::NoSockets)
        ));
        assert!(matches!(
            select(Vec::new(), Some(3)),
            Err(ActivationError::NoSockets)
        ));
        assert_eq!(select(sockets(2), None).unwrap().len(), 2);
        let one = select(sockets(3), Some(4)).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].name, "s1");
        assert!(matches!(
            select(sockets(2), Some(5)),
            Err(ActivationError::TooFew)
        ));
        assert!(matches!(
            select(sockets(2), Some(2)),
            Err(ActivationError::TooFew)
        ));
        assert_eq!(
            ActivationError::NoSockets.to_string(),
            "no sockets found via socket activation: make sure the service was started by systemd"
        );
    }

    #[test]
    fn notify_reaches_path_and_abstract_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str(), "READY=1\n").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("berth-test-notify-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        send(OsStr::new(&format!("@{name}")), "STOPPING=1\n").unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1\n");

        let gone = dir.path().join("gone");
        assert!(send(gone.as_os_str(), "READY=1\n").is_err());
    }

    /// The environment as systemd sets it, read in a child (LISTEN_PID is
    /// the child's own pid: the shell's `$$`, kept across `exec`) that runs
    /// this test binary's `listen_env_child` test with a socket on fd 3.
    #[test]
    fn listen_fds_are_taken_from_the_environment() {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap();
        let l = std::os::unix::net::UnixListener::bind(dir.path().join("s")).unwrap();
        let raw = l.as_raw_fd();
        let exe = std::env::current_exe().unwrap();
        let mut c = std::process::Command::new("sh");
        c.arg("-c")
            .arg("LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=api exec \"$0\" --exact activation::tests::listen_env_child --nocapture --include-ignored")
            .arg(&exe)
            .env("BERTH_LISTEN_ENV_CHILD", "1");
        // SAFETY: dup2 and fcntl are async-signal-safe; `raw` stays open in the parent
        // until the child has exec'd.
        unsafe {
            c.pre_exec(move || {
                // dup2 onto itself keeps CLOEXEC: clear it either way.
                if libc::dup2(raw, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = c.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("taken fd 3 api unix cloexec env-unset"),
            "{text}"
        );
    }

    #[test]
    #[ignore = "run by listen_fds_are_taken_from_the_environment"]
    fn listen_env_child() {
        if std::env::var_os("BERTH_LISTEN_ENV_CHILD").is_none() {
            return;
        }
        init(&[Host::Fd(None)]).unwrap();
        let got = take(None).unwrap();
        assert_eq!(got.len(), 1);
        use std::os::fd::AsRawFd;
        let fd = got[0].fd.as_raw_fd();
        // SAFETY: F_GETFD on a descriptor we own.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        let unset = std::env::var_os("LISTEN_FDS").is_none()
            && std::env::var_os("LISTEN_PID").is_none()
            && std::env::var_os("LISTEN_FDNAMES").is_none();
        use nix::sys::socket::SockaddrLike;
        let family = nix::sys::socket::getsockname::<nix::sys::socket::SockaddrStorage>(fd)
            .unwrap()
            .family();
        println!(
            "taken fd {fd} {} {} {} {}",
            got[0].name,
            if family == Some(nix::sys::socket::AddressFamily::Unix) {
                "unix"
            } else {
                "other"
            },
            if flags & libc::FD_CLOEXEC != 0 {
                "cloexec"
            } else {
                "inherit"
            },
            if unset { "env-unset" } else { "env-set" },
        );
        assert!(matches!(take(None), Err(ActivationError::NoSockets)));
    }
}
