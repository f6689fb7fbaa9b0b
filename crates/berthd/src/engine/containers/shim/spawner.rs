//! The daemon's side of the shim spawner (`berth_api::shim::SPAWNER_ARG`):
//! one `berth-shim spawner`, started on the first launch, forks every
//! shim after it. When it cannot take a shim (gone, its socket full), the
//! caller executes the shim as before, and the next launch starts a new
//! spawner. One that does not say it is ready is not tried again: every
//! shim is executed from then on.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;

use berth_api::shim::{SPAWNER_ARG, SPAWNER_READY, SPAWNER_TITLE_ROOM};
use nix::sys::socket::{
    recv, sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
};

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
    /// Our end of the running spawner's socket.
    Running(OwnedFd),
    /// A spawner never became ready (an older berth-shim, say).
    Broken,
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
    ) -> std::io::Result<()> {
        let dir = state_dir.as_os_str().as_bytes();
        // The child writes its command line into the room it has.
        if dir.len() >= SPAWNER_TITLE_ROOM || std::str::from_utf8(dir).is_err() {
            return Err(std::io::ErrorKind::Unsupported.into());
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*state, State::Idle) {
            *state = match launch(start()) {
                Ok(fd) => State::Running(fd),
                Err(e) => {
                    tracing::warn!(error = %e, "the shim spawner did not start; shims are executed");
                    State::Broken
                }
            };
        }
        let State::Running(fd) = &*state else {
            return Err(std::io::ErrorKind::Unsupported.into());
        };
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
            Ok(_) => Ok(()),
            Err(e) => {
                // Gone or stuck: the next launch starts a new one; this
                // one exits once it reads to the closed end.
                *state = State::Idle;
                Err(e.into())
            }
        }
    }
}

/// Starts `berth-shim spawner` on one end of a new socket pair and waits
/// (bounded) for its ready message.
fn launch(mut cmd: std::process::Command) -> std::io::Result<OwnedFd> {
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
    Ok(ours)
}
