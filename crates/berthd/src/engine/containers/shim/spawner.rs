//! The daemon's side of the shim spawner (`berth_api::shim::SPAWNER_ARG`):
//! one `berth-shim spawner`, started on the first launch, forks every
//! shim after it. When it cannot take a shim (gone, its socket full), the
//! caller executes the shim as before, and the next launch starts a new
//! spawner. One that does not say it is ready is not tried again: every
//! shim is executed from then on. One that holds a shim's message without
//! taking it (stopped, say) is killed by the launch waiting for it
//! ([`Spawner::stop`]), and the next launch starts a new one. While one
//! launch starts a spawner, the others execute their shims: none waits on
//! another's start, and the starting one frees its runtime worker first.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use berth_api::shim::{SPAWNER_ARG, SPAWNER_READY, SPAWNER_TITLE_ROOM};
use nix::sys::socket::{
    recv, sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
};

use crate::engine::plugins::client::blocking;

/// How long a new spawner may take to say it is ready (it is one exec).
const READY_WITHIN_MS: u16 = 2000;

#[derive(Default)]
pub struct Spawner {
    state: Mutex<State>,
}

#[derive(Default)]
enum State {
    /// None yet, or the last one went: the next launch starts one.
    #[default]
    Idle,
    /// A launch is starting one (without the lock held).
    Starting,
    /// Our end of the running spawner's socket, and the spawner.
    Running(OwnedFd, Arc<Process>),
    /// A spawner never became ready (an older berth-shim, say).
    Broken,
}

/// One spawner process, as a pidfd (no PID reuse can make us signal
/// another process). `None` where the kernel has no pidfds (before 5.3):
/// such a spawner is never killed from here.
pub struct Process(Option<OwnedFd>);

impl Process {
    fn open(pid: Option<u32>) -> Self {
        // SAFETY: pidfd_open takes a PID and flags and returns a new
        // descriptor or -1; no memory is passed.
        let fd = pid.map(|p| unsafe { libc::syscall(libc::SYS_pidfd_open, p as libc::pid_t, 0) });
        Self(match fd {
            // SAFETY: a descriptor the kernel just returned, owned by no one else.
            Some(fd) if fd >= 0 => Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
            _ => None,
        })
    }

    /// A spawner of no known process (never killed from here).
    #[cfg(test)]
    pub(super) fn untracked() -> Self {
        Self(None)
    }

    /// Process `pid` standing in for a spawner.
    #[cfg(test)]
    pub(super) fn of_pid(pid: u32) -> Self {
        Self::open(Some(pid))
    }

    /// Whether it can be killed from here (see the type).
    pub fn killable(&self) -> bool {
        self.0.is_some()
    }

    fn kill(&self) {
        if let Some(fd) = &self.0 {
            // SAFETY: pidfd_send_signal on a pidfd we own, with no siginfo.
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    libc::SIGKILL,
                    std::ptr::null::<libc::siginfo_t>(),
                    0u32,
                )
            };
        }
    }

    /// Whether it has exited (its pidfd polls readable then).
    fn exited(&self) -> bool {
        let Some(fd) = &self.0 else { return false };
        let mut fds = [nix::poll::PollFd::new(
            fd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        matches!(nix::poll::poll(&mut fds, 0u16), Ok(n) if n > 0)
    }
}

impl Spawner {
    /// Hands the shim of `state_dir` to the spawner, with `stdio` as its
    /// stdin, stdout and stderr. An error means nothing was handed over.
    /// `start` runs the spawner (`berth-shim` with the arguments given).
    pub fn spawn(
        &self,
        state_dir: &Path,
        stdio: [BorrowedFd<'_>; 3],
        start: impl FnOnce() -> std::process::Command,
    ) -> std::io::Result<Arc<Process>> {
        let dir = state_dir.as_os_str().as_bytes();
        // The child writes its command line into the room it has.
        if dir.len() >= SPAWNER_TITLE_ROOM || std::str::from_utf8(dir).is_err() {
            return Err(std::io::ErrorKind::Unsupported.into());
        }
        let lock = || self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut state = lock();
        if matches!(*state, State::Idle) {
            *state = State::Starting;
            drop(state);
            // Should the start panic, Starting must not stay for good (every
            // shim executed, nothing said): the guard gives up on spawners.
            let guard = StartGuard(&self.state);
            // Up to READY_WITHIN_MS: other launches meanwhile see Starting
            // and execute their shims; this worker's tasks move elsewhere.
            let started = blocking(|| launch(start()));
            std::mem::forget(guard);
            state = lock();
            *state = match started {
                Ok((fd, process)) => State::Running(fd, Arc::new(process)),
                Err(e) => {
                    tracing::warn!(error = %e, "the shim spawner did not start; shims are executed");
                    State::Broken
                }
            };
        }
        let State::Running(fd, process) = &*state else {
            return Err(std::io::ErrorKind::Unsupported.into());
        };
        let process = process.clone();
        let raw = stdio.map(|f| f.as_raw_fd());
        let sent = sendmsg::<()>(
            fd.as_raw_fd(),
            &[IoSlice::new(dir)],
            &[ControlMessage::ScmRights(&raw)],
            // Never wait on a spawner that does not read; never SIGPIPE.
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            None,
        );
        match sent {
            // A seqpacket message goes whole or not at all.
            Ok(_) => Ok(process),
            Err(e) => {
                // Gone or stuck: the next launch starts a new one; this
                // one exits once it reads to the closed end.
                *state = State::Idle;
                Err(e.into())
            }
        }
    }
}

impl Spawner {
    /// Kills `process`, which holds a shim's message without taking it,
    /// and waits (bounded) until it has exited: the message's descriptors
    /// close with it unless it took them. If it is still the running
    /// spawner, the next launch starts a new one.
    pub async fn stop(&self, process: &Arc<Process>) {
        {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if matches!(&*state, State::Running(_, p) if Arc::ptr_eq(p, process)) {
                *state = State::Idle;
            }
        }
        tracing::warn!("the shim spawner did not take a shim in time; it is replaced");
        process.kill();
        for _ in 0..200 {
            if process.exited() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

/// Marks the spawner Broken if a start unwinds before it has recorded
/// its outcome (forgotten once it has).
struct StartGuard<'a>(&'a Mutex<State>);

impl Drop for StartGuard<'_> {
    fn drop(&mut self) {
        tracing::warn!("starting the shim spawner panicked; shims are executed");
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = State::Broken;
    }
}

/// Starts `berth-shim spawner` on one end of a new socket pair and waits
/// (bounded) for its ready message.
fn launch(mut cmd: std::process::Command) -> std::io::Result<(OwnedFd, Process)> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    cmd.arg(SPAWNER_ARG)
        .args(std::iter::repeat_n("", SPAWNER_TITLE_ROOM))
        .stdin(Stdio::from(theirs))
        .stdout(Stdio::null())
        // Its own process group: a terminal's Ctrl-C or Ctrl-Z for a
        // foreground berthd is not for it (it goes when berthd goes).
        .process_group(0);
    // Reaped by tokio once it exits (when our end closes).
    let child = tokio::process::Command::from(cmd).spawn()?;
    // Opened before the child is dropped: until tokio reaps it, its PID
    // cannot name another process.
    let process = Process::open(child.id());
    drop(child);
    let mut fds = [nix::poll::PollFd::new(
        ours.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    let ready = loop {
        match nix::poll::poll(&mut fds, READY_WITHIN_MS) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r?,
        }
    };
    let mut buf = [0u8; 16];
    let n = match ready {
        0 => 0,
        _ => recv(ours.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT)?,
    };
    if &buf[..n] != SPAWNER_READY {
        return Err(std::io::Error::other("no ready message"));
    }
    Ok((ours, process))
}
