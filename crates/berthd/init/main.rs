//! berth-init: PID 1 for `docker run --init`, mounted at /sbin/docker-init.
//!
//! Runs the command as its only child, forwards the signals it receives to
//! it, reaps every zombie, and exits with the child's status. Built by
//! berthd's build script as a static binary (it must run in any image) with
//! no dependencies beyond std, so it declares the few libc calls it needs.

use std::os::unix::process::CommandExt;
use std::process::Command;

#[repr(C)]
struct SigSet([u64; 16]);

#[repr(C)]
struct SigInfo {
    signo: i32,
    _rest: [i32; 31],
}

#[repr(C)]
struct TimeSpec {
    sec: i64,
    nsec: i64,
}

extern "C" {
    fn sigfillset(set: *mut SigSet) -> i32;
    fn sigemptyset(set: *mut SigSet) -> i32;
    fn sigprocmask(how: i32, set: *const SigSet, old: *mut SigSet) -> i32;
    fn sigtimedwait(set: *const SigSet, info: *mut SigInfo, timeout: *const TimeSpec) -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    fn kill(pid: i32, sig: i32) -> i32;
}

const SIG_BLOCK: i32 = 0;
const SIG_SETMASK: i32 = 2;
const WNOHANG: i32 = 1;
const SIGCHLD: i32 = 17;

fn code_of(status: i32) -> i32 {
    let sig = status & 0x7f;
    if sig == 0 {
        (status >> 8) & 0xff
    } else {
        128 + sig
    }
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--") {
        args.remove(0);
    }
    if args.is_empty() {
        eprintln!("berth-init: usage: berth-init -- COMMAND [ARG...]");
        std::process::exit(1);
    }
    let mut all = SigSet([0; 16]);
    let mut none = SigSet([0; 16]);
    // SAFETY: plain libc calls on local sets.
    unsafe {
        sigfillset(&mut all);
        sigemptyset(&mut none);
        sigprocmask(SIG_BLOCK, &all, std::ptr::null_mut());
    }
    let mut cmd = Command::new(&args[0]);
    cmd.args(&args[1..]);
    // SAFETY: only sigprocmask between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let none = SigSet([0; 16]);
            sigprocmask(SIG_SETMASK, &none, std::ptr::null_mut());
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(c) => c.id() as i32,
        Err(e) => {
            eprintln!("berth-init: exec {} failed: {e}", args[0]);
            std::process::exit(if e.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 });
        }
    };
    let timeout = TimeSpec { sec: 1, nsec: 0 };
    loop {
        let mut info = SigInfo { signo: 0, _rest: [0; 31] };
        // SAFETY: waits for any blocked signal.
        let sig = unsafe { sigtimedwait(&all, &mut info, &timeout) };
        if sig > 0 && sig != SIGCHLD {
            // SAFETY: forwarding to our child.
            unsafe { kill(child, sig) };
            continue;
        }
        loop {
            let mut status = 0;
            // SAFETY: reaping any child.
            let pid = unsafe { waitpid(-1, &mut status, WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == child {
                std::process::exit(code_of(status));
            }
        }
    }
}
