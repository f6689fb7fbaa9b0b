//! slirp4netns: the rootless network. It connects the holder's network
//! namespace to the host through a tap device (`tap0`, 10.0.2.100/24,
//! gateway 10.0.2.2, DNS 10.0.2.3) and runs detached from the daemon, its
//! pid in `<state>/slirp4netns.pid`, its API socket at `<state>/slirp.sock`.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::unistd::ForkResult;

use super::{which, RootlessError};

pub const PID_FILE: &str = "slirp4netns.pid";
pub const SOCKET: &str = "slirp.sock";
pub const MTU: u32 = 65520;

/// Whether this user may open `/dev/net/tun` (slirp4netns opens it inside
/// the namespace with the user's rights).
pub fn tun_accessible() -> Result<(), RootlessError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map(drop)
        .map_err(|e| RootlessError::Tun(e.to_string()))
}

/// Starts slirp4netns for the holder `pid` and waits (at most 10 s) until
/// it has configured `tap0`.
pub fn start(dir: &Path, pid: i32) -> Result<(), RootlessError> {
    let bin = which("slirp4netns").ok_or(RootlessError::NoBinary("slirp4netns", "slirp4netns"))?;
    tun_accessible()?;
    let socket = dir.join(SOCKET);
    let _ = std::fs::remove_file(&socket);
    let pid_file = dir.join(PID_FILE);
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| RootlessError::sys("pipe", e))?;
    // SAFETY: single-threaded here (before the async runtime).
    match unsafe { nix::unistd::fork() } {
        Err(e) => return Err(RootlessError::sys("fork", e)),
        Ok(ForkResult::Child) => {
            // An orphan in its own session: not the daemon's child, so a
            // killed daemon leaves it running (and no zombie behind).
            let _ = nix::unistd::setsid();
            let code = match nix::unistd::dup(ready_w.as_raw_fd()) {
                Ok(fd) => {
                    let spawned = Command::new(&bin)
                        .args(["--configure", &format!("--mtu={MTU}")])
                        .arg("--disable-host-loopback")
                        .arg(format!("--api-socket={}", socket.display()))
                        .arg(format!("--ready-fd={fd}"))
                        .args([&pid.to_string(), "tap0"])
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn();
                    match spawned {
                        Ok(c) => match std::fs::write(&pid_file, format!("{}\n", c.id())) {
                            Ok(()) => 0,
                            Err(_) => 1,
                        },
                        Err(_) => 1,
                    }
                }
                Err(_) => 1,
            };
            // SAFETY: _exit only ends this intermediate process.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => {
            let _ = nix::sys::wait::waitpid(child, None);
        }
    }
    drop(ready_w);
    let ready = wait_ready(ready_r, Duration::from_secs(10));
    if !ready {
        stop(dir);
        return Err(RootlessError::Missing(format!(
            "{} did not come up (run it by hand to see why: {} --configure {pid} tap0)",
            bin.display(),
            bin.display()
        )));
    }
    Ok(())
}

fn wait_ready(fd: std::os::fd::OwnedFd, timeout: Duration) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let deadline = std::time::Instant::now() + timeout;
    let mut f = std::fs::File::from(fd);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        let ms =
            PollTimeout::try_from(left.as_millis().min(10_000) as i32).unwrap_or(PollTimeout::NONE);
        let mut fds = [PollFd::new(std::os::fd::AsFd::as_fd(&f), PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(0) => return false,
            Ok(_) => {
                let mut b = [0u8; 1];
                return matches!(f.read(&mut b), Ok(1) if b[0] == b'1');
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
        }
    }
}

/// Whether the slirp4netns of `dir` runs.
pub fn alive(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join(PID_FILE))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).ok())
        .is_some_and(|c| c.trim() == "slirp4netns")
}

/// Kills the slirp4netns of `dir` (by its pid file).
pub fn stop(dir: &Path) {
    if let Some(pid) = std::fs::read_to_string(dir.join(PID_FILE))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}
