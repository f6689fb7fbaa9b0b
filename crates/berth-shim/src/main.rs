//! berth-shim: the per-container process. berthd starts it (in its own
//! session, so it outlives the daemon) with `berth-shim run <state-dir>`;
//! it waits for the word on stdin, creates the container through
//! libcontainer (before the word, for a start prepared ahead), reports the
//! PID on stdout, then serves the container until it exits.
//!
//! `berth-shim spawner` forks shims for berthd instead (`spawner.rs`): the
//! child goes on as `run` would.
//!
//! `berth-shim mount-overlay` is a helper berthd runs with its working
//! directory set to the layer-link directory, so that overlay `lowerdir`
//! options can use short relative paths (a multi-threaded daemon cannot
//! `chdir` for one mount).

// A request must never panic the daemon: errors are values outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(unsafe_op_in_unsafe_fn)]

mod cgroupmounts;
mod create;
mod exec;
mod executor;
mod fdio;
mod logger;
mod monitor;
mod pluginlog;
mod spawner;
mod worker;

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

use berth_api::shim::{Ready, ShimConfig};

use create::InitStdio;

/// berthd waits for the `Ready` line on our stdout (a pipe); once it is
/// written, stdout becomes /dev/null (see `monitor::release_ready`).
const READY_FD: i32 = 1;

fn fail(ready: &mut Option<std::fs::File>, msg: String) -> ! {
    eprintln!("berth-shim: {msg}");
    if let Some(r) = ready.as_mut() {
        let line = serde_json::to_string(&Ready {
            pid: None,
            kind: Some(berth_api::shim::ErrorKind::of_runtime_error(&msg)),
            error: Some(msg),
        })
        .unwrap_or_default();
        let _ = writeln!(r, "{line}");
    }
    std::process::exit(1);
}

/// Binds a unix socket whose path may exceed `sun_path`: the shim is
/// single-threaded, so it can bind the file name from inside its directory.
fn bind_short(path: &Path) -> std::io::Result<UnixListener> {
    if path.as_os_str().len() < 100 {
        return UnixListener::bind(path);
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return UnixListener::bind(path);
    };
    let prev = std::env::current_dir()?;
    std::env::set_current_dir(dir)?;
    let r = UnixListener::bind(name);
    let _ = std::env::set_current_dir(prev);
    r
}

/// Reads berthd's go byte from stdin, then points stdin at /dev/null.
fn wait_for_go() -> bool {
    let mut b = [0u8; 1];
    let go = loop {
        // SAFETY: reading one byte into a local buffer.
        let n = unsafe { libc::read(0, b.as_mut_ptr().cast(), 1) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break n == 1;
    };
    if let Ok(null) = std::fs::File::open("/dev/null") {
        // SAFETY: replaces our own stdin.
        unsafe { libc::dup2(null.as_raw_fd(), 0) };
    }
    go
}

/// SIGKILLs a child and waits (bounded, 2 s) until it is reaped.
fn kill_and_reap(pid: i32) {
    let pid = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        match nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) => {
                std::thread::sleep(Duration::from_millis(1))
            }
            _ => return,
        }
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

fn run(state_dir: &str) {
    // Our own session: the daemon's terminal, process group and their
    // signals are not ours, and we outlive the daemon.
    let _ = nix::unistd::setsid();
    let mut ready = monitor::inherited(READY_FD);
    let cfg_path = Path::new(state_dir).join("shim.json");
    let cfg: ShimConfig = match std::fs::read(&cfg_path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => fail(&mut ready, format!("reading {}: {e}", cfg_path.display())),
    };
    // Orphaned container processes (the init after the create worker exits,
    // exec'd processes) become our children, so we can reap them.
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        fail(&mut ready, format!("PR_SET_CHILD_SUBREAPER: {e}"));
    }
    // No one in the container may ptrace or read the shim's memory.
    let _ = nix::sys::prctl::set_dumpable(false);
    let spec = match oci_spec::runtime::Spec::load(Path::new(&cfg.bundle).join("config.json")) {
        Ok(s) => s,
        Err(e) => fail(&mut ready, format!("loading the runtime spec: {e}")),
    };
    let _ = std::fs::remove_file(&cfg.socket);
    let listener = match bind_short(Path::new(&cfg.socket)) {
        Ok(l) => l,
        Err(e) => fail(&mut ready, format!("binding {}: {e}", cfg.socket)),
    };

    let mut stdin_ours = None;
    let mut stdout_ours = None;
    let mut stderr_ours = None;
    let mut child_side: Vec<OwnedFd> = Vec::new();
    let mut console = None;
    let stdio = if cfg.tty {
        let path = format!("{state_dir}/console.sock");
        let _ = std::fs::remove_file(&path);
        match bind_short(Path::new(&path)) {
            Ok(l) => console = Some((l, path.clone())),
            Err(e) => fail(&mut ready, format!("console socket: {e}")),
        }
        InitStdio::Console { socket: path }
    } else {
        let made = (|| -> Result<InitStdio, String> {
            let stdin = if cfg.open_stdin {
                let (r, w) = pipe()?;
                stdin_ours = Some(w);
                r
            } else {
                OwnedFd::from(std::fs::File::open("/dev/null").map_err(|e| e.to_string())?)
            };
            let (or, ow) = pipe()?;
            let (er, ew) = pipe()?;
            stdout_ours = Some(or);
            stderr_ours = Some(er);
            let s = InitStdio::Fds {
                stdin: stdin.as_raw_fd(),
                stdout: ow.as_raw_fd(),
                stderr: ew.as_raw_fd(),
            };
            child_side.extend([stdin, ow, ew]);
            Ok(s)
        })();
        match made {
            Ok(s) => s,
            Err(e) => fail(&mut ready, e),
        }
    };

    let mut executor = executor::BerthExecutor::default();
    // Read once: for the init (default profile) and for every exec.
    let bpf = if cfg.seccomp_bpf.is_empty() {
        None
    } else {
        match std::fs::read(&cfg.seccomp_bpf) {
            Ok(b) => Some(std::sync::Arc::new(b)),
            Err(e) => fail(&mut ready, format!("reading the seccomp program: {e}")),
        }
    };
    if cfg.init_bpf {
        executor.bpf = bpf.clone();
        executor.lent = cfg
            .lent_caps
            .iter()
            .filter_map(|c| executor::cap_number(c))
            .collect();
    }
    let (id, root, bundle) = (cfg.id.clone(), cfg.runtime_root.clone(), cfg.bundle.clone());
    let attempt = move || {
        let (id, root, bundle, stdio, executor) = (
            id.clone(),
            root.clone(),
            bundle.clone(),
            stdio.clone(),
            executor.clone(),
        );
        worker::in_child(move || create::create(&id, &root, &bundle, &stdio, executor))
    };
    // Deletes a container that will not be started. Its init (our child:
    // we are its subreaper) is killed and reaped first; then its runtime
    // state goes whatever libcontainer's delete says (berthd, removing the
    // container, may have removed its cgroups already).
    let undo = |cfg: &ShimConfig, init: Option<i32>| {
        if let Some(pid) = init {
            kill_and_reap(pid);
        }
        let (id, root) = (cfg.id.clone(), cfg.runtime_root.clone());
        let _ = worker::in_child(move || create::delete(&id, &root));
        let _ = std::fs::remove_dir_all(Path::new(&cfg.runtime_root).join(&cfg.id));
    };
    let t0 = std::time::Instant::now();
    // A start prepared ahead creates now, while berthd finishes the
    // network and files (the container's files exist already; berthd
    // rewrites them in place). A failure is not reported yet: what failed
    // (a missing executable) may be copied in before the start, so the
    // create is tried again at the word. (Not with a terminal: a failed
    // attempt's pty master would wait on the console socket.)
    let mut created = None;
    if cfg.create_early && !cfg.tty {
        match attempt() {
            Ok(pid) => created = Some(pid),
            Err(_) => undo(&cfg, None),
        }
    }
    // Loaded; berthd says when the container's network and files are
    // ready (one byte on stdin). EOF means the start was abandoned: an
    // early-created container is deleted (its init killed, its cgroups
    // removed) before the shim goes.
    if !wait_for_go() {
        if created.is_some() {
            undo(&cfg, created);
        }
        let _ = std::fs::remove_file(&cfg.socket);
        std::process::exit(1);
    }
    let created = match created {
        Some(pid) => Ok(pid),
        None => attempt(),
    };
    if std::env::var_os("BERTH_SHIM_TRACE").is_some() {
        eprintln!("berth-shim: create took {:?}", t0.elapsed());
    }
    drop(child_side);
    let init_pid = match created {
        Ok(pid) => pid,
        Err(e) => {
            undo(&cfg, None);
            let _ = std::fs::remove_file(&cfg.socket);
            fail(&mut ready, e)
        }
    };
    let mut master = None;
    if let Some((l, path)) = console {
        // The init sent the pty master while being created; it is queued.
        let _ = l.set_nonblocking(true);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match l.accept() {
                Ok((s, _)) => {
                    match fdio::recv_fd(s.as_raw_fd()) {
                        Ok(m) => master = Some(m),
                        Err(e) => fail(&mut ready, format!("receiving the pty master: {e}")),
                    }
                    break;
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => fail(&mut ready, format!("console socket: {e}")),
            }
        }
        let _ = std::fs::remove_file(path);
    }

    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => fail(&mut ready, format!("runtime: {e}")),
    };
    let local = tokio::task::LocalSet::new();
    let created = monitor::Created {
        cfg,
        spec,
        init_pid,
        listener,
        stdin: stdin_ours,
        stdout: stdout_ours,
        stderr: stderr_ours,
        master,
        ready,
        bpf,
    };
    local.block_on(&rt, monitor::run(created));
}

/// The options berthd puts after the directories: `index=off`, then
/// `volatile` and `userxattr` (a daemon in a user namespace) as needed.
fn overlay_tail_allowed(o: &str) -> bool {
    let mut it = o.split(',');
    it.next() == Some("index=off") && it.all(|x| x == "volatile" || x == "userxattr")
}

#[cfg(test)]
#[test]
fn overlay_tails() {
    for ok in [
        "index=off",
        "index=off,volatile",
        "index=off,userxattr",
        "index=off,volatile,userxattr",
    ] {
        assert!(overlay_tail_allowed(ok), "{ok}");
    }
    for bad in [
        "",
        "volatile",
        "index=on",
        "index=off,upperdir=/x",
        "index=off,lowerdir=/",
    ] {
        assert!(!overlay_tail_allowed(bad), "{bad}");
    }
}

/// `mount-overlay TARGET LOWER UPPER WORK [OPTIONS]`, run with cwd = the
/// link dir; OPTIONS defaults to `index=off` (berthd passes `index=off`
/// with `volatile` and, in a user namespace, `userxattr`).
fn mount_overlay(args: &[String]) -> Result<(), String> {
    const USAGE: &str =
        "usage: berth-shim mount-overlay TARGET LOWER UPPER WORK [index=off[,volatile][,userxattr]]";
    let (target, lower, upper, work, tail) = match args {
        [t, l, u, w] => (t, l, u, w, "index=off"),
        [t, l, u, w, o] if overlay_tail_allowed(o) => (t, l, u, w, o.as_str()),
        _ => return Err(USAGE.into()),
    };
    let opts = format!("lowerdir={lower},upperdir={upper},workdir={work},{tail}");
    nix::mount::mount(
        Some("overlay"),
        target.as_str(),
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(opts.as_str()),
    )
    .map_err(|e| format!("mounting overlay on {target}: {e}"))
}

/// Run from a memfd, the kernel names the process after the descriptor
/// (`/proc/self/fd/14` gives the name `14`): `ps`, `top` and `pgrep`
/// would show a number. The task is named as the binary instead.
fn name_self() {
    // SAFETY: PR_SET_NAME copies at most 16 bytes from a NUL-terminated
    // string that outlives the call; it changes only this task's name.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, c"berth-shim".as_ptr(), 0, 0, 0);
    }
}

fn main() {
    name_self();
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("run") if args.len() == 3 => run(&args[2]),
        Some(berth_api::shim::SPAWNER_ARG) => spawner::serve(run),
        Some("mount-overlay") => {
            if let Err(e) = mount_overlay(&args[2..]) {
                eprintln!("berth-shim: {e}");
                std::process::exit(1);
            }
        }
        _ => {
            eprintln!("usage: berth-shim run STATE_DIR | berth-shim mount-overlay TARGET LOWER UPPER WORK");
            std::process::exit(2);
        }
    }
}
