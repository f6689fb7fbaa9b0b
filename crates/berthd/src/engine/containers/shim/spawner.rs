//! The daemon's side of the shim spawner (`berth_api::shim::SPAWNER_ARG`):
//! one `berth-shim spawner`, started on the first launch, forks every
//! shim after it. When it cannot take a shim (not started, gone, its
//! socket full), the caller executes the shim as before, and the next
//! launch starts a new spawner.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;

use berth_api::shim::{SPAWNER_ARG, SPAWNER_TITLE_ROOM};
use nix::sys::socket::{
    sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
};

/// The spawner, if one is running: our end of its socket.
#[derive(Default)]
pub struct Spawner {
    sock: Mutex<Option<OwnedFd>>,
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
        let mut sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        if sock.is_none() {
            *sock = Some(launch(start())?);
        }
        let Some(fd) = sock.as_ref() else {
            return Err(std::io::ErrorKind::NotConnected.into());
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
            Ok(n) if n == dir.len() => Ok(()),
            Ok(_) => Err(std::io::ErrorKind::WriteZero.into()),
            Err(e) => {
                // Gone or stuck: the next launch starts a new one; this
                // one exits once it reads to the closed end.
                *sock = None;
                Err(e.into())
            }
        }
    }
}

/// Starts `berth-shim spawner` on one end of a new socket pair.
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
        .stdout(Stdio::null());
    // Reaped by tokio once it exits (when our end closes).
    let child = tokio::process::Command::from(cmd).spawn()?;
    drop(child);
    Ok(ours)
}
