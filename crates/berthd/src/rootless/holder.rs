//! The namespace holder: a process (a fork of berthd, named
//! `berth-holder`) that owns the rootless user, mount and network
//! namespaces and does nothing else, so that they outlive the daemon (a
//! podman-style "pause" process).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::Command;

use nix::sched::CloneFlags;
use nix::unistd::{ForkResult, Gid, Uid};

use super::{subid, which, RootlessError};

const NAME: &str = "berth-holder";
const PID_FILE: &str = "holder.pid";

/// The pid of the live holder named by the pid file of `dir`: a process of
/// this user called `berth-holder`.
pub fn live(dir: &Path, uid: u32) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(dir.join(PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let owner = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse::<u32>()
        .ok()?;
    (comm.trim() == NAME && owner == uid).then_some(pid)
}

pub fn write_pid(dir: &Path, pid: i32) -> Result<(), RootlessError> {
    let p = dir.join(PID_FILE);
    std::fs::write(&p, format!("{pid}\n"))
        .map_err(|e| RootlessError::sys(format!("writing {}", p.display()), e))
}

pub fn kill(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
}

/// Enters the holder's user, mount and network namespaces (in this order:
/// the user namespace grants the rights to join the others) as its root.
pub fn join(pid: i32) -> Result<(), RootlessError> {
    let open = |ns: &str| {
        std::fs::File::open(format!("/proc/{pid}/ns/{ns}"))
            .map_err(|e| RootlessError::sys(format!("opening the holder's {ns} namespace"), e))
    };
    let (user, mnt, net) = (open("user")?, open("mnt")?, open("net")?);
    for (f, flag, ns) in [
        (&user, CloneFlags::CLONE_NEWUSER, "user"),
        (&mnt, CloneFlags::CLONE_NEWNS, "mount"),
        (&net, CloneFlags::CLONE_NEWNET, "network"),
    ] {
        nix::sched::setns(f, flag)
            .map_err(|e| RootlessError::sys(format!("joining the holder's {ns} namespace"), e))?;
    }
    become_root()
}

fn become_root() -> Result<(), RootlessError> {
    // Supplementary groups outside the map would show as nobody: drop them.
    let _ = nix::unistd::setgroups(&[]);
    nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
        .map_err(|e| RootlessError::sys("setresgid(0) in the user namespace", e))?;
    nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
        .map_err(|e| RootlessError::sys("setresuid(0) in the user namespace", e))?;
    Ok(())
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

/// Forks a new holder and maps its user namespace: container root is the
/// user's own uid (gid), 1.. the subordinate range. Returns its pid.
pub fn create(dir: &Path) -> Result<i32, RootlessError> {
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    let name = user_name(uid);
    let subuid = subid::lookup(Path::new("/etc/subuid"), &name, uid)?;
    let subgid = subid::lookup(Path::new("/etc/subgid"), &name, uid)?;
    let newuidmap = which("newuidmap").ok_or(RootlessError::NoBinary("newuidmap", "uidmap"))?;
    let newgidmap = which("newgidmap").ok_or(RootlessError::NoBinary("newgidmap", "uidmap"))?;
    let pipe = || {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| RootlessError::sys("pipe", e))
    };
    let (up_r, up_w) = pipe()?; // holder → daemon
    let (down_r, down_w) = pipe()?; // daemon → holder
                                    // SAFETY: the process is single-threaded here (main, before the async
                                    // runtime), so the child may run arbitrary code.
    let child = match unsafe { nix::unistd::fork() } {
        Err(e) => return Err(RootlessError::sys("fork", e)),
        Ok(ForkResult::Child) => {
            drop(up_r);
            drop(down_w);
            holder_main(up_w, down_r, dir)
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    drop(up_w);
    drop(down_r);
    let pid = child.as_raw();
    let mut up = std::fs::File::from(up_r);
    let mut down = std::fs::File::from(down_w);
    let fail = |e: RootlessError| {
        kill(pid);
        e
    };
    let mut b = [0u8; 1];
    if up.read_exact(&mut b).is_err() || b[0] != b'u' {
        let mut msg = String::new();
        let _ = up.read_to_string(&mut msg);
        return Err(fail(RootlessError::Missing(format!(
            "creating a user namespace failed: {}",
            msg.trim_start_matches('E')
        ))));
    }
    for (bin, own, r) in [(&newuidmap, uid, subuid), (&newgidmap, gid, subgid)] {
        let out = Command::new(bin)
            .arg(pid.to_string())
            .args(["0", &own.to_string(), "1"])
            .args(["1", &r.start.to_string(), &r.count.to_string()])
            .output()
            .map_err(|e| fail(RootlessError::sys(format!("running {}", bin.display()), e)))?;
        if !out.status.success() {
            return Err(fail(RootlessError::Missing(format!(
                "{} failed: {}",
                bin.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))));
        }
    }
    if down.write_all(b"m").is_err() {
        return Err(fail(RootlessError::Missing("the holder died".into())));
    }
    drop(down);
    let mut answer = String::new();
    let _ = up.read_to_string(&mut answer);
    if answer != "k" {
        return Err(fail(RootlessError::Missing(format!(
            "setting up the namespaces failed: {}",
            answer.trim_start_matches('E')
        ))));
    }
    Ok(pid)
}

/// The holder's life: never returns.
fn holder_main(up: OwnedFd, down: OwnedFd, dir: &Path) -> ! {
    let mut up = std::fs::File::from(up);
    let mut down = std::fs::File::from(down);
    let report = |up: &mut std::fs::File, msg: String| -> ! {
        let _ = up.write_all(format!("E{msg}").as_bytes());
        // SAFETY: _exit only ends the process.
        unsafe { libc::_exit(1) }
    };
    let _ = nix::unistd::setsid();
    let _ = nix::sys::prctl::set_name(&std::ffi::CString::from(c"berth-holder"));
    if let Err(e) = nix::sched::unshare(CloneFlags::CLONE_NEWUSER) {
        report(&mut up, format!("unshare(CLONE_NEWUSER): {e}"));
    }
    let _ = up.write_all(b"u");
    let mut b = [0u8; 1];
    if down.read_exact(&mut b).is_err() {
        // SAFETY: _exit only ends the process.
        unsafe { libc::_exit(1) }
    }
    drop(down);
    if let Err(e) = setup(dir) {
        report(&mut up, e);
    }
    let _ = up.write_all(b"k");
    drop(up);
    detach_stdio();
    loop {
        nix::unistd::pause();
    }
}

/// In the new user namespace: root, fresh mount and network namespaces,
/// `lo` up, and on a hybrid cgroup host the cgroup2 tree bound over
/// `/sys/fs/cgroup` (libcgroups then picks its rootless-tolerant v2
/// manager; with no controllers delegated the daemon runs without cgroups).
fn setup(dir: &Path) -> Result<(), String> {
    become_root().map_err(|e| e.to_string())?;
    nix::sched::unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("unshare(mount, network): {e}"))?;
    use nix::mount::{mount, MsFlags};
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|e| format!("making / a slave mount: {e}"))?;
    if is_hybrid_cgroup() {
        mount(
            Some("/sys/fs/cgroup/unified"),
            "/sys/fs/cgroup",
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| format!("binding /sys/fs/cgroup/unified over /sys/fs/cgroup: {e}"))?;
    }
    resolv_conf(dir)?;
    loopback_up().map_err(|e| format!("setting lo up: {e}"))
}

/// A host resolver on loopback (systemd-resolved's 127.0.0.53) is not
/// reachable from the namespace: then `/etc/resolv.conf` is covered, in the
/// namespace, by a copy naming slirp4netns's DNS forwarder (10.0.2.3), for
/// the daemon (pulls) and the containers (which copy it) alike.
fn resolv_conf(dir: &Path) -> Result<(), String> {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let Some(text) = rewrite_resolv(&host) else {
        return Ok(());
    };
    let copy = dir.join("resolv.conf");
    std::fs::write(&copy, text).map_err(|e| format!("writing {}: {e}", copy.display()))?;
    use nix::mount::{mount, MsFlags};
    mount(
        Some(&copy),
        "/etc/resolv.conf",
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| format!("binding {} over /etc/resolv.conf: {e}", copy.display()))
}

/// `host` with its loopback nameservers replaced by 10.0.2.3, if it has no
/// other; `None` when it can be used as it is.
pub fn rewrite_resolv(host: &str) -> Option<String> {
    let servers: Vec<&str> = host
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .map(str::trim)
        .collect();
    let loopback = |s: &str| {
        s.parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
    };
    if !servers.is_empty() && servers.iter().any(|s| !loopback(s)) {
        return None;
    }
    let mut out: Vec<String> = host
        .lines()
        .filter(|l| !l.trim().starts_with("nameserver"))
        .map(str::to_string)
        .collect();
    out.push("nameserver 10.0.2.3".into());
    Some(out.join("\n") + "\n")
}

const CGROUP2_MAGIC: i64 = 0x6367_7270;
const TMPFS_MAGIC: i64 = 0x0102_1994;

fn fs_type(p: &str) -> Option<i64> {
    nix::sys::statfs::statfs(p)
        .ok()
        .map(|s| s.filesystem_type().0)
}

/// `/sys/fs/cgroup` a tmpfs of v1 hierarchies with cgroup2 at `unified`.
pub fn is_hybrid_cgroup() -> bool {
    fs_type("/sys/fs/cgroup") == Some(TMPFS_MAGIC)
        && fs_type("/sys/fs/cgroup/unified") == Some(CGROUP2_MAGIC)
}

fn loopback_up() -> std::io::Result<()> {
    // SAFETY: a plain socket call; the fd is owned right after.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor owned by nothing else.
    let sock = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the named interface's flags into ifr.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the flags member is the one SIOCGIFFLAGS filled in.
    unsafe { ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads ifr, which is fully initialised.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Standard streams to /dev/null and every other descriptor closed, so the
/// holder keeps nothing of the daemon's (a caller's pipes) open.
pub fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors of this process.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    // SAFETY: closes descriptors 3.. of this single-threaded process; no
    // Rust object owning one of them is used afterwards.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
}

#[cfg(test)]
mod tests {
    use super::rewrite_resolv;

    #[test]
    fn loopback_resolvers_become_slirps_forwarder() {
        assert_eq!(rewrite_resolv("nameserver 10.255.255.53\n"), None);
        assert_eq!(
            rewrite_resolv("nameserver 127.0.0.53\noptions edns0\nsearch x\n").as_deref(),
            Some("options edns0\nsearch x\nnameserver 10.0.2.3\n")
        );
        assert_eq!(rewrite_resolv("").as_deref(), Some("nameserver 10.0.2.3\n"));
        assert_eq!(rewrite_resolv("nameserver ::1\nnameserver 1.1.1.1\n"), None);
    }
}
