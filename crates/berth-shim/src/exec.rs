//! `docker exec`: a process joining a running container.
//!
//! Written by hand rather than with libcontainer 0.7's tenant builder, which
//! rebuilds the spec's `linux` section without `seccomp`: its exec'd
//! processes would run unfiltered, unlike Docker's. Here the shim points
//! its children's PID namespace at the container's and forks once; the
//! child joins the init's cgroups and other namespaces, applies rlimits,
//! seccomp (before dropping capabilities, as runc does without
//! no_new_privs), capabilities and the user, then execs. Errors before exec
//! come back on a CLOEXEC pipe.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use berth_api::shim::ExecProcess;
use nix::fcntl::OFlag;
use nix::sched::{setns, CloneFlags};
use nix::unistd::{fork, pipe2, ForkResult};
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::executor::{lookup, reset_signals};

pub enum ExecStdio {
    Fds {
        stdin: RawFd,
        stdout: RawFd,
        stderr: RawFd,
    },
    /// The child opens a pty in the container's devpts and sends the master
    /// over this socket.
    Tty { sock: RawFd },
}

#[derive(Serialize, Deserialize)]
pub struct Started {
    pub pid: i32,
    /// Set when the process could not be started; `code` is Docker's 126/127.
    pub error: Option<(String, i32)>,
}

/// What every exec into one container needs, worked out at its first exec
/// and kept by the shim: the cgroup files to join (host view), a pidfd of
/// the init (it pins no namespace, unlike namespace fds, so a dead
/// container's network and mounts go away as before) and our own PID
/// namespace, to return to after each fork.
pub struct ExecCtx {
    init_pid: i32,
    /// "0" is written to each, in order.
    cgroups: Vec<CgroupFile>,
    pidfd: Option<OwnedFd>,
    own_pid_ns: Option<OwnedFd>,
}

impl ExecCtx {
    pub fn new(init_pid: i32) -> Result<ExecCtx, String> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, init_pid, 0) };
        // SAFETY: a non-negative result is a fresh fd owned by nobody else.
        let pidfd = (raw >= 0).then(|| unsafe { OwnedFd::from_raw_fd(raw as RawFd) });
        let own_pid_ns = std::fs::File::open("/proc/self/ns/pid")
            .map(OwnedFd::from)
            .map_err(|e| format!("opening our PID namespace: {e}"))?;
        Ok(ExecCtx {
            init_pid,
            cgroups: cgroup_files(init_pid)?
                .into_iter()
                .map(|(path, required)| CgroupFile::open(path, required))
                .collect(),
            pidfd,
            own_pid_ns: Some(own_pid_ns),
        })
    }
}

/// One cgroup file an exec'd process writes itself into.
struct CgroupFile {
    path: String,
    /// Opened once by the shim (close-on-exec), so that each exec's child
    /// writes to a ready descriptor instead of walking every path again
    /// (one open and close per hierarchy, ~9 on cgroup v1). None when the
    /// shim could not open it: the child then tries the path itself.
    fd: Option<OwnedFd>,
    required: bool,
}

impl CgroupFile {
    fn open(path: String, required: bool) -> CgroupFile {
        let fd = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .ok()
            .map(OwnedFd::from);
        CgroupFile { path, fd, required }
    }

    /// Writes "0" (the calling process) through the open descriptor, else
    /// through the path.
    fn join(&self) -> std::io::Result<()> {
        if let Some(fd) = &self.fd {
            // SAFETY: a valid fd we own for the call; "0" is one byte.
            let n = unsafe { libc::write(fd.as_raw_fd(), b"0".as_ptr().cast(), 1) };
            return if n == 1 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            };
        }
        std::fs::write(&self.path, "0")
    }
}

/// The cgroup files that put a process into `init_pid`'s cgroups, skipping
/// those the shim already shares (e.g. the systemd or unified root).
fn cgroup_files(init_pid: i32) -> Result<Vec<(String, bool)>, String> {
    let cg = std::fs::read_to_string(format!("/proc/{init_pid}/cgroup"))
        .map_err(|e| format!("reading cgroups of {init_pid}: {e}"))?;
    // (mount point, fstype, super options)
    let mounts: Vec<(String, String, String)> = crate::cgroupmounts::read()
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.mount_point, m.fstype, m.super_options))
        .collect();
    let mine = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut files = Vec::new();
    for line in cg.lines() {
        if mine.lines().any(|m| m == line) {
            continue;
        }
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => continue,
        };
        let mount = if ctrls.is_empty() {
            mounts.iter().find(|(_, t, _)| t == "cgroup2")
        } else {
            mounts.iter().find(|(_, t, o)| {
                t == "cgroup" && ctrls.split(',').all(|c| o.split(',').any(|x| x == c))
            })
        };
        if let Some((mp, _, _)) = mount {
            // Best effort per hierarchy: a controller may be absent.
            let required = ctrls.is_empty() || ctrls.contains("memory") || ctrls.contains("pids");
            if !ctrls.is_empty() {
                // On v1, "0" into `tasks` moves just the calling thread
                // (the single-threaded child is all of its process): the
                // kernel then skips the global threadgroup lock whose first
                // writer waits a whole RCU grace period (~10-20 ms here).
                files.push((format!("{mp}{path}/tasks"), required));
            } else {
                files.push((format!("{mp}{path}/cgroup.procs"), required));
            }
        }
    }
    Ok(files)
}

/// Joins the container's cgroups (host view, before entering its mount
/// namespace). On v1 `cgroup.procs` is the fallback when `tasks` refuses.
fn join_cgroups(ctx: &ExecCtx) -> Result<(), String> {
    for cg in &ctx.cgroups {
        if cg.join().is_ok() {
            continue;
        }
        let procs = match cg.path.strip_suffix("/tasks") {
            Some(dir) => format!("{dir}/cgroup.procs"),
            None => cg.path.clone(),
        };
        if let Err(e) = std::fs::write(&procs, "0") {
            if cg.required {
                return Err(format!("joining {procs}: {e}"));
            }
        }
    }
    Ok(())
}

/// The init's namespace `name`, or None when it is ours already. A
/// namespace that cannot be read (the init is gone) is an error: the
/// process must never run in the shim's namespaces instead.
fn open_ns(init_pid: i32, name: &str) -> Result<Option<OwnedFd>, String> {
    let p = format!("/proc/{init_pid}/ns/{name}");
    let mine = std::fs::read_link(format!("/proc/self/ns/{name}")).ok();
    let theirs = match std::fs::read_link(&p) {
        Ok(t) => t,
        // A namespace type this kernel lacks.
        Err(_) if mine.is_none() => return Ok(None),
        Err(e) => return Err(format!("joining {name} namespace: {e}")),
    };
    if mine.as_ref() == Some(&theirs) {
        return Ok(None);
    }
    std::fs::File::open(&p)
        .map(|f| Some(OwnedFd::from(f)))
        .map_err(|e| format!("joining {name} namespace: {e}"))
}

/// Enters the init's namespaces named in `order`: with one `setns` on its
/// pidfd (Linux 5.8+; joining a namespace we already share is a no-op),
/// else one by one through `/proc/<pid>/ns`.
fn enter(ctx: &ExecCtx, order: &[(&str, CloneFlags)]) -> Result<(), String> {
    if let Some(pidfd) = &ctx.pidfd {
        let all = order
            .iter()
            .fold(CloneFlags::empty(), |acc, (_, f)| acc | *f);
        match setns(pidfd.as_fd(), all) {
            Ok(()) => return Ok(()),
            // A kernel without setns on pidfds; anything else (the init
            // is gone) is final.
            Err(nix::errno::Errno::EINVAL) => {}
            Err(e) => return Err(format!("joining the container's namespaces: {e}")),
        }
    }
    let mut fds: Vec<(OwnedFd, CloneFlags, &str)> = Vec::new();
    for (n, f) in order {
        if let Some(fd) = open_ns(ctx.init_pid, n)? {
            fds.push((fd, *f, *n));
        }
    }
    for (fd, flag, name) in &fds {
        setns(fd.as_fd(), *flag).map_err(|e| format!("joining {name} namespace: {e}"))?;
    }
    Ok(())
}

/// Runs in the shim (single-threaded): points its children's PID namespace
/// at the container's, forks the process (one fork: no worker in between)
/// and steps back; the child joins the cgroups and the other namespaces and
/// execs. Returns once the child has exec'd (or failed to), with its PID.
pub fn start_exec(
    ctx: &ExecCtx,
    spec: &Spec,
    bpf: Option<&[u8]>,
    p: &ExecProcess,
    stdio: &ExecStdio,
) -> Result<Started, String> {
    let (er, ew) = pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    // Only the shim's future children move: its own PID namespace stays.
    enter(ctx, &[("pid", CloneFlags::CLONE_NEWPID)])?;
    // Back to our own PID namespace for the shim's later children (the
    // clean-up worker, the next exec).
    let restore = || {
        if let Some(own) = &ctx.own_pid_ns {
            if let Err(e) = setns(own.as_fd(), CloneFlags::CLONE_NEWPID) {
                eprintln!("berth-shim: back to our PID namespace: {e}");
            }
        }
    };
    // SAFETY: the shim is single-threaded; the child only sets itself up
    // and execs or _exits.
    let child = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(er);
            let (msg, code) = match join_and_run(ctx, spec, bpf, p, stdio) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            // SAFETY: ew is valid; the child exits right after.
            let mut f = unsafe { std::fs::File::from_raw_fd(ew.as_raw_fd()) };
            std::mem::forget(ew);
            let _ = f.write_all(format!("{code}:{msg}").as_bytes());
            // SAFETY: exit without the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => {
            restore();
            child
        }
        Err(e) => {
            restore();
            return Err(format!("fork: {e}"));
        }
    };
    drop(ew);
    let mut buf = String::new();
    let _ = std::fs::File::from(er).read_to_string(&mut buf);
    let error = buf
        .split_once(':')
        .map(|(c, m)| (m.to_string(), c.parse().unwrap_or(126)));
    if error.is_some() {
        // It has exited (or is about to): collected here, not by the
        // SIGCHLD loop, which would keep its status for ever.
        let _ = nix::sys::wait::waitpid(child, None);
    }
    Ok(Started {
        pid: child.as_raw(),
        error,
    })
}

/// In the forked child: the container's cgroups, then its namespaces.
fn join_and_run(
    ctx: &ExecCtx,
    spec: &Spec,
    bpf: Option<&[u8]>,
    p: &ExecProcess,
    stdio: &ExecStdio,
) -> Result<Never, (String, i32)> {
    let fail = |m: String| (m, 126);
    join_cgroups(ctx).map_err(fail)?;
    enter(
        ctx,
        &[
            ("ipc", CloneFlags::CLONE_NEWIPC),
            ("uts", CloneFlags::CLONE_NEWUTS),
            ("net", CloneFlags::CLONE_NEWNET),
            ("cgroup", CloneFlags::CLONE_NEWCGROUP),
            ("mnt", CloneFlags::CLONE_NEWNS),
        ],
    )
    .map_err(fail)?;
    child(spec, bpf, p, stdio)
}

enum Never {}

fn child(
    spec: &Spec,
    bpf: Option<&[u8]>,
    p: &ExecProcess,
    stdio: &ExecStdio,
) -> Result<Never, (String, i32)> {
    let fail = |m: String| (m, 126);
    nix::unistd::setsid().map_err(|e| fail(format!("setsid: {e}")))?;
    match stdio {
        ExecStdio::Fds {
            stdin,
            stdout,
            stderr,
        } => {
            for (src, dst) in [(*stdin, 0), (*stdout, 1), (*stderr, 2)] {
                // SAFETY: dup2 onto the standard fds.
                if unsafe { libc::dup2(src, dst) } < 0 {
                    return Err(fail(format!("dup2: {}", std::io::Error::last_os_error())));
                }
            }
        }
        ExecStdio::Tty { sock } => setup_tty(*sock, p.console_size).map_err(fail)?,
    }
    // Everything else the shim holds must not leak into the container.
    // SAFETY: marks fds >= 3 close-on-exec.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };

    let process = spec.process().as_ref();
    if let Some(rl) = process.and_then(|x| x.rlimits().as_ref()) {
        for r in rl {
            let lim = libc::rlimit {
                rlim_cur: r.soft(),
                rlim_max: r.hard(),
            };
            let res = r.typ() as libc::__rlimit_resource_t;
            // SAFETY: plain setrlimit.
            unsafe { libc::setrlimit(res, &lim) };
        }
    }
    let nnp = process.and_then(|x| x.no_new_privileges()).unwrap_or(false);
    let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    if nnp {
        nix::sys::prctl::set_no_new_privs().map_err(|e| fail(format!("no_new_privs: {e}")))?;
    }
    if !p.privileged {
        match (bpf, seccomp) {
            (Some(prog), _) => load_bpf(prog).map_err(|e| fail(format!("seccomp: {e}")))?,
            (None, Some(s)) => {
                libcontainer::seccomp::initialize_seccomp(s)
                    .map_err(|e| fail(format!("seccomp: {e}")))?;
            }
            _ => {}
        }
    }
    // Groups and gid first, while we still hold every capability.
    let gids: Vec<nix::unistd::Gid> = p
        .additional_gids
        .iter()
        .map(|g| nix::unistd::Gid::from_raw(*g))
        .collect();
    nix::unistd::setgroups(&gids).map_err(|e| fail(format!("setgroups: {e}")))?;
    nix::unistd::setresgid(
        nix::unistd::Gid::from_raw(p.gid),
        nix::unistd::Gid::from_raw(p.gid),
        nix::unistd::Gid::from_raw(p.gid),
    )
    .map_err(|e| fail(format!("setgid {}: {e}", p.gid)))?;
    if !p.privileged {
        if let Some(caps) = process.and_then(|x| x.capabilities().as_ref()) {
            let sys = libcontainer::syscall::syscall::create_syscall();
            libcontainer::capabilities::drop_privileges(caps, sys.as_ref())
                .map_err(|e| fail(format!("capabilities: {e}")))?;
        }
    }
    // A non-root uid loses its effective and permitted capabilities here, as in Docker.
    nix::unistd::setresuid(
        nix::unistd::Uid::from_raw(p.uid),
        nix::unistd::Uid::from_raw(p.uid),
        nix::unistd::Uid::from_raw(p.uid),
    )
    .map_err(|e| fail(format!("setuid {}: {e}", p.uid)))?;
    let cwd = if p.cwd.is_empty() {
        "/"
    } else {
        p.cwd.as_str()
    };
    nix::unistd::chdir(cwd).map_err(|e| {
        (
            format!("chdir to cwd (\"{cwd}\") set in config.json failed: {e}"),
            126,
        )
    })?;

    let path = p
        .env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(berth_runtime::DEFAULT_PATH);
    let arg0 = p
        .args
        .first()
        .ok_or_else(|| fail("no command specified".into()))?;
    let exe = lookup(arg0, path).map_err(|e| (e.msg, e.kind.exit_code() as i32))?;
    let cexe = CString::new(exe).map_err(|_| fail("bad executable path".into()))?;
    let argv: Vec<CString> = p
        .args
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(|_| fail("bad argument".into())))
        .collect::<Result<_, _>>()?;
    let envp: Vec<CString> = p
        .env
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(|_| fail("bad environment".into())))
        .collect::<Result<_, _>>()?;
    reset_signals();
    let e = nix::unistd::execve(&cexe, &argv, &envp).err();
    let e = e.map(|e| e.desc().to_lowercase()).unwrap_or_default();
    let code = if e.contains("permission") { 126 } else { 127 };
    Err((format!("exec: \"{arg0}\": {e}"), code))
}

/// Installs a compiled seccomp program (we still hold CAP_SYS_ADMIN, so no
/// no_new_privs is needed, as with runc).
pub fn load_bpf(prog: &[u8]) -> Result<(), String> {
    if !prog.len().is_multiple_of(8) || prog.is_empty() {
        return Err("malformed seccomp program".into());
    }
    let fprog = libc::sock_fprog {
        len: (prog.len() / 8) as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: fprog points at a valid BPF program for the call's duration.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &fprog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    Ok(())
}

/// Opens a pty in the container's devpts, makes it our controlling
/// terminal and sends the master to the shim.
fn setup_tty(sock: RawFd, size: Option<(u16, u16)>) -> Result<(), String> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    // SAFETY: plain libc pty calls.
    let master = unsafe {
        libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if master < 0 {
        return Err(format!(
            "open /dev/ptmx: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: master is a valid pty master fd.
    unsafe {
        if libc::grantpt(master) != 0 || libc::unlockpt(master) != 0 {
            return Err(format!("unlockpt: {}", std::io::Error::last_os_error()));
        }
    }
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes an unsigned int.
    if unsafe { libc::ioctl(master, libc::TIOCGPTN, &mut n) } != 0 {
        return Err(format!("TIOCGPTN: {}", std::io::Error::last_os_error()));
    }
    let slave_path = CString::new(format!("/dev/pts/{n}")).map_err(|e| e.to_string())?;
    // SAFETY: opening the slave side.
    let slave = unsafe { libc::open(slave_path.as_ptr(), libc::O_RDWR) };
    if slave < 0 {
        return Err(format!("open slave: {}", std::io::Error::last_os_error()));
    }
    if let Some((rows, cols)) = size {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize.
        unsafe { libc::ioctl(slave, libc::TIOCSWINSZ, &ws) };
    }
    let fds = [master];
    let iov = [std::io::IoSlice::new(b"m")];
    sendmsg::<()>(
        sock,
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| format!("sending pty master: {e}"))?;
    // SAFETY: fds owned by this process.
    unsafe {
        libc::close(master);
        libc::close(sock);
        for fd in 0..3 {
            libc::dup2(slave, fd);
        }
        if slave > 2 {
            libc::close(slave);
        }
        if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
            return Err(format!("TIOCSCTTY: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}
