//! `berth-shim spawner`: forks containers' shims for berthd (the protocol
//! is `berth_api::shim::SPAWNER_ARG`'s). It stays single-threaded and
//! never starts a runtime, so each child of a fork is a whole process that
//! goes on exactly as `berth-shim run <state-dir>` would after an exec.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use std::io::Write;

use berth_api::shim::{SPAWNER_READY as READY, SPAWNER_TAKEN};
use nix::errno::Errno;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

/// berthd's end of the conversation is our stdin.
const SOCK: RawFd = 0;

/// Serves until berthd closes the socket. `run` is the shim's own `run`.
pub fn serve(run: fn(&str)) -> ! {
    // std's CPU-feature cache is filled once here, and every child starts
    // with it (each `cpuid` is a trap to the hypervisor on a VM; glibc's
    // own probe ran once, at our exec).
    #[cfg(target_arch = "x86_64")]
    let _ = std::arch::is_x86_feature_detected!("avx2");
    // Without room for the children's command lines berthd could not find
    // them: say nothing, and berthd executes its shims itself.
    let Some(title) = Title::own() else {
        say("cannot read our argument area");
        std::process::exit(1);
    };
    // SAFETY: SIG_IGN for SIGCHLD makes the kernel reap our children; no
    // handler runs. Each child restores the default before anything else.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    // Ready: berthd hands us no shim before this byte.
    if nix::sys::socket::send(SOCK, READY, MsgFlags::MSG_NOSIGNAL).is_err() {
        std::process::exit(1);
    }
    let mut buf = vec![0u8; 4096];
    loop {
        let (dir, fds) = match receive(&mut buf) {
            Ok(Some(got)) => got,
            Ok(None) => std::process::exit(0),
            Err(Errno::EINTR) => continue,
            Err(e) => {
                say(&e.to_string());
                std::process::exit(1);
            }
        };
        // A message without its three descriptors or a usable directory
        // is dropped: its descriptors close, and berthd sees the shim's
        // stdout close as for a shim that failed to start.
        let (Some(dir), Ok(fds)) = (dir, <[OwnedFd; 3]>::try_from(fds)) else {
            continue;
        };
        // SAFETY: we are single-threaded (no runtime, no thread was ever
        // started), so the child may go on running arbitrary code.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => child(&dir, fds, &title, run),
            // Our copies close here, so the child holds the only ones.
            Ok(nix::unistd::ForkResult::Parent { .. }) => drop(fds),
            // The shim's stderr is its log, which berthd quotes when the
            // shim's stdout closes without a word.
            Err(e) => {
                if let Some(log) = fds.into_iter().nth(2) {
                    let _ = writeln!(std::fs::File::from(log), "berth-shim spawner: fork: {e}");
                }
            }
        }
    }
}

/// A line on our stderr (berthd's), never a panic if it is gone.
fn say(what: &str) {
    let _ = writeln!(std::io::stderr(), "berth-shim spawner: {what}");
}

/// One message: the state directory and the descriptors that came with
/// it. `None` at EOF (berthd has gone).
type Message = (Option<String>, Vec<OwnedFd>);

fn receive(buf: &mut [u8]) -> nix::Result<Option<Message>> {
    let mut space = nix::cmsg_space!([RawFd; 3]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(SOCK, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: the kernel just installed these descriptors for us;
            // nothing else owns them.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    let (n, truncated) = (msg.bytes, msg.flags.contains(MsgFlags::MSG_TRUNC));
    if n == 0 && fds.is_empty() {
        return Ok(None);
    }
    let dir = match truncated {
        true => None,
        false => std::str::from_utf8(&buf[..n]).ok().map(str::to_string),
    };
    Ok(Some((dir, fds)))
}

/// The child of a fork: becomes the shim of `dir`, with `fds` as its
/// stdin, stdout and stderr.
fn child(dir: &str, fds: [OwnedFd; 3], title: &Title, run: fn(&str)) -> ! {
    // SAFETY: back to the default disposition, which the shim's waits on
    // its container's processes need.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
    for (target, fd) in fds.iter().enumerate() {
        // SAFETY: dup2 onto our own stdio; the sources are open (received
        // above 2, since 0–2 were taken) and ours.
        if unsafe { libc::dup2(fd.as_raw_fd(), target as RawFd) } < 0 {
            std::process::exit(1);
        }
    }
    drop(fds);
    // First, on the shim's stdout: berthd executes a shim itself only when
    // that pipe ends without this line, so a child that exists either says
    // it or exits here without becoming the shim. EPIPE means berthd no
    // longer waits for this shim (an abandoned launch): no shim then
    // (SIGPIPE is ignored in Rust programs).
    let line = [IoSlice::new(SPAWNER_TAKEN.as_bytes()), IoSlice::new(b"\n")];
    // SAFETY: fd 1 was just made the shim's stdout by dup2 above.
    let stdout = unsafe { std::os::fd::BorrowedFd::borrow_raw(1) };
    if nix::sys::uio::writev(stdout, &line).is_err() {
        std::process::exit(0);
    }
    // SAFETY: closes every descriptor above stderr, none of which anything
    // refers to. (Nothing should be open there: the socket was fd 0, and
    // the received copies were dropped just above. A kernel without
    // close_range, before 5.9, fails the call harmlessly.)
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    // berthd finds its shims by their command line (`release::shim_of`).
    if !title.write(dir) {
        eprintln!("berth-shim: no room for the command line of {dir}");
        std::process::exit(1);
    }
    run(dir);
    std::process::exit(0);
}

/// Our argument area `[start, end)`, as `/proc/self/stat` gives it.
struct Title {
    start: usize,
    end: usize,
}

impl Title {
    fn own() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name (which may hold anything up to
        // its last `)`), counted from 3: arg_start is the 48th.
        let rest = &stat[stat.rfind(')')? + 1..];
        let mut f = rest.split_whitespace().skip(48 - 3);
        let start = f.next()?.parse().ok()?;
        let end = f.next()?.parse().ok()?;
        (start < end).then_some(Self { start, end })
    }

    /// Writes `berth-shim\0run\0<dir>\0` over the area, zero-filled to its
    /// end, so `/proc/<pid>/cmdline` reads as an executed shim's (with
    /// trailing empty arguments). False if it does not fit.
    fn write(&self, dir: &str) -> bool {
        let text = format!("berth-shim\0run\0{dir}\0");
        let room = self.end - self.start;
        if text.len() > room {
            return false;
        }
        let p = self.start as *mut u8;
        // SAFETY: [start, end) holds our argument strings, which the kernel
        // copied into our stack mapping at exec (writable, and ours after
        // the fork); we are the only thread, no Rust reference to those
        // bytes exists (std keeps raw argv pointers, read only by
        // `std::env::args`, which the shim calls once in `main`, before
        // any fork: after this they would see the new strings), and both
        // writes stay inside the area.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), p, text.len());
            std::ptr::write_bytes(p.add(text.len()), 0, room - text.len());
        }
        true
    }
}
