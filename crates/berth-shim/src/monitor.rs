//! The shim's event loop: holds the container's stdio, writes the json-file
//! log, serves attach/exec/resize/kill/wait on its socket, reaps children
//! (it is their subreaper), records the exit status and then exits.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use berth_api::shim::{
    ExecProcess, ExitStatus, Reply, Request, ShimConfig, StateReply, EXIT_STREAM,
};
use berth_api::stdcopy::{frame, StreamType};
use oci_spec::runtime::Spec;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;

use crate::fdio::{self, Fd};
use crate::logger::{now_rfc3339, LogFile};
use crate::pluginlog::PluginLog;
use crate::{create, exec};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Status {
    Created,
    Running,
    Exited,
}

struct Sub {
    tx: mpsc::Sender<bytes::Bytes>,
    stdout: bool,
    stderr: bool,
}

struct ExecEntry {
    pid: i32,
    master: Option<Rc<Fd>>,
}

pub struct Shim {
    cfg: ShimConfig,
    spec: Spec,
    /// The daemon's precompiled seccomp program for exec'd processes.
    bpf: Option<std::sync::Arc<Vec<u8>>>,
    init_pid: i32,
    status: Cell<Status>,
    started_at: RefCell<Option<String>>,
    exit: RefCell<Option<ExitStatus>>,
    stdin: RefCell<Option<Rc<Fd>>>,
    master: Option<Rc<Fd>>,
    subs: RefCell<Vec<Sub>>,
    waiters: RefCell<Vec<oneshot::Sender<ExitStatus>>>,
    execs: RefCell<HashMap<String, ExecEntry>>,
    exec_waiters: RefCell<HashMap<i32, oneshot::Sender<i32>>>,
    reaped: RefCell<HashMap<i32, i32>>,
    log: RefCell<Option<LogFile>>,
    /// A logging plugin's FIFO writer.
    plugin: Option<Rc<PluginLog>>,
    pumps: RefCell<Vec<JoinHandle<()>>>,
    streams: Cell<usize>,
    streams_done: Notify,
    exited: Notify,
    /// The runtime state, moved aside at exit, deleted before the shim goes.
    leftover: RefCell<Option<std::path::PathBuf>>,
    /// Worked out at the first exec, reused by the next ones.
    exec_ctx: RefCell<Option<Rc<exec::ExecCtx>>>,
    /// `BERTH_EXEC_TIMING` in the environment: each exec's stages go to
    /// the shim's log (`shim.log` in the bundle).
    timing: bool,
}

/// What `main` hands over after the container was created.
pub struct Created {
    pub cfg: ShimConfig,
    pub spec: Spec,
    pub init_pid: i32,
    pub listener: std::os::unix::net::UnixListener,
    /// Shim side of the init's stdin (None when stdin is closed).
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    pub master: Option<OwnedFd>,
    pub ready: Option<std::fs::File>,
    /// The container's seccomp program, for exec'd processes.
    pub bpf: Option<std::sync::Arc<Vec<u8>>>,
}

fn wait_code(st: libc::c_int) -> i32 {
    if libc::WIFEXITED(st) {
        libc::WEXITSTATUS(st)
    } else if libc::WIFSIGNALED(st) {
        128 + libc::WTERMSIG(st)
    } else {
        255
    }
}

pub async fn run(c: Created) {
    let mut sigchld = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("berth-shim: SIGCHLD: {e}");
            std::process::exit(1);
        }
    };
    let log = if c.cfg.log_path.is_empty() {
        None
    } else {
        match LogFile::open(&c.cfg) {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("berth-shim: opening log {}: {e}", c.cfg.log_path);
                None
            }
        }
    };
    let plugin = if c.cfg.log_fifo.is_empty() {
        None
    } else {
        match PluginLog::open(&c.cfg.log_fifo) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!(
                    "berth-shim: opening the logging plugin's FIFO {}: {e}",
                    c.cfg.log_fifo
                );
                None
            }
        }
    };
    let master = c.master.and_then(|m| Fd::new(m).ok());
    let stdin = match (&master, c.stdin) {
        (Some(m), _) if c.cfg.open_stdin => Some(m.clone()),
        (None, Some(fd)) => Fd::new(fd).ok(),
        _ => None,
    };
    let mut spec = c.spec;
    if !c.cfg.lent_caps.is_empty() {
        // Exec'd processes get the container's real capabilities, not the
        // ones lent to its init for installing the filter.
        if let Some(mut p) = spec.process().clone() {
            if let Some(mut caps) = p.capabilities().clone() {
                caps.set_bounding(strip(caps.bounding(), &c.cfg.lent_caps));
                caps.set_effective(strip(caps.effective(), &c.cfg.lent_caps));
                caps.set_permitted(strip(caps.permitted(), &c.cfg.lent_caps));
                p.set_capabilities(Some(caps));
            }
            spec.set_process(Some(p));
        }
    }
    let shim = Rc::new(Shim {
        cfg: c.cfg,
        spec,
        bpf: c.bpf,
        init_pid: c.init_pid,
        status: Cell::new(Status::Created),
        started_at: RefCell::new(None),
        exit: RefCell::new(None),
        stdin: RefCell::new(stdin),
        master: master.clone(),
        subs: RefCell::new(Vec::new()),
        waiters: RefCell::new(Vec::new()),
        execs: RefCell::new(HashMap::new()),
        exec_waiters: RefCell::new(HashMap::new()),
        reaped: RefCell::new(HashMap::new()),
        log: RefCell::new(log),
        plugin,
        pumps: RefCell::new(Vec::new()),
        streams: Cell::new(0),
        streams_done: Notify::new(),
        exited: Notify::new(),
        leftover: RefCell::new(None),
        exec_ctx: RefCell::new(None),
        timing: std::env::var_os("BERTH_EXEC_TIMING").is_some(),
    });
    if let (Some(m), Some((rows, cols))) = (&master, shim.cfg.console_size) {
        let _ = fdio::resize(m.raw(), rows, cols);
    }
    // Output pumps start now: output produced before anyone attaches is logged.
    match &master {
        Some(m) => spawn_pump(&shim, m.clone(), 0),
        None => {
            if let Some(o) = c.stdout.and_then(|f| Fd::new(f).ok()) {
                spawn_pump(&shim, o, 0);
            }
            if let Some(e) = c.stderr.and_then(|f| Fd::new(f).ok()) {
                spawn_pump(&shim, e, 1);
            }
        }
    }
    let listener = match c
        .listener
        .set_nonblocking(true)
        .and_then(|_| UnixListener::from_std(c.listener))
    {
        Ok(l) => l,
        Err(e) => {
            eprintln!("berth-shim: listener: {e}");
            std::process::exit(1);
        }
    };
    if let Some(mut r) = c.ready {
        use std::io::Write;
        let line = serde_json::to_string(&berth_api::shim::Ready {
            pid: Some(shim.init_pid),
            error: None,
            kind: None,
        })
        .unwrap_or_default();
        let _ = writeln!(r, "{line}");
        release_ready(r);
    }
    // One shim per container: hand start-up's freed heap back to the
    // kernel rather than keep glibc's padding resident for the container's
    // lifetime.
    // SAFETY: malloc_trim only releases free memory.
    unsafe {
        libc::mallopt(libc::M_TOP_PAD, 16 * 1024);
        libc::malloc_trim(0);
    }
    // Anything that exited before the signal stream existed.
    reap(&shim);
    loop {
        tokio::select! {
            _ = sigchld.recv() => reap(&shim),
            r = listener.accept() => {
                if let Ok((conn, _)) = r {
                    let s = shim.clone();
                    tokio::task::spawn_local(async move { handle(s, conn).await });
                }
            }
            _ = shim.exited.notified() => break,
        }
    }
    // Let attached clients drain (bounded), then go.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while shim.streams.get() > 0 {
            shim.streams_done.notified().await;
        }
    })
    .await;
    let _ = std::fs::remove_file(&shim.cfg.socket);
    let leftover = shim.leftover.borrow_mut().take();
    if let Some(dir) = leftover {
        // Reported already; what is left is housekeeping, done when a CPU
        // is free.
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: sets our own (single thread's) policy.
        unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A capability set without the lent ones.
fn strip(
    set: &Option<oci_spec::runtime::Capabilities>,
    lent: &[String],
) -> Option<oci_spec::runtime::Capabilities> {
    set.clone().map(|s| {
        s.into_iter()
            .filter(|c| {
                !lent
                    .iter()
                    .any(|l| *l == format!("CAP_{c}") || *l == c.to_string())
            })
            .collect()
    })
}

fn spawn_pump(shim: &Rc<Shim>, src: Rc<Fd>, stream: usize) {
    let s = shim.clone();
    let h = tokio::task::spawn_local(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match src.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let data = &buf[..n];
                    if let Some(l) = s.log.borrow_mut().as_mut() {
                        l.write(stream, data);
                    }
                    if let Some(p) = &s.plugin {
                        p.write(stream, data);
                    }
                    s.broadcast(stream, data);
                    if let Some(p) = &s.plugin {
                        // A plugin behind slows the output (for a while).
                        p.room().await;
                    }
                }
            }
        }
    });
    shim.pumps.borrow_mut().push(h);
}

impl Shim {
    fn broadcast(&self, stream: usize, data: &[u8]) {
        let st = if stream == 0 {
            StreamType::Stdout
        } else {
            StreamType::Stderr
        };
        let f = frame(st, data);
        self.subs.borrow_mut().retain(|s| {
            let wanted = if stream == 0 { s.stdout } else { s.stderr };
            if !wanted {
                return !s.tx.is_closed();
            }
            // A client that cannot keep up is dropped rather than stalling the container.
            s.tx.try_send(f.clone()).is_ok()
        });
    }

    fn state(&self) -> StateReply {
        StateReply {
            pid: self.init_pid,
            status: match self.status.get() {
                Status::Created => "created",
                Status::Running => "running",
                Status::Exited => "exited",
            }
            .into(),
            started_at: self.started_at.borrow().clone(),
            exit: self.exit.borrow().clone(),
        }
    }

    fn stream_begin(&self) {
        self.streams.set(self.streams.get() + 1);
    }

    fn stream_end(&self) {
        self.streams.set(self.streams.get().saturating_sub(1));
        self.streams_done.notify_waiters();
    }
}

/// Collects every exited child; the init's exit starts the exit sequence.
fn reap(shim: &Rc<Shim>) {
    loop {
        let mut st: libc::c_int = 0;
        // SAFETY: plain waitpid.
        let pid = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
        let code = wait_code(st);
        if pid == shim.init_pid {
            let s = shim.clone();
            tokio::task::spawn_local(async move { init_exited(s, code).await });
        } else if let Some(tx) = shim.exec_waiters.borrow_mut().remove(&pid) {
            let _ = tx.send(code);
        } else {
            shim.reaped.borrow_mut().insert(pid, code);
        }
    }
}

fn oom_killed(cgroups_path: &str) -> bool {
    let rel = cgroups_path.trim_start_matches('/');
    let count = |path: String, key: &str| -> u64 {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    (k == key).then(|| v.trim().parse().ok()).flatten()
                })
            })
            .unwrap_or(0)
    };
    count(
        format!("/sys/fs/cgroup/memory/{rel}/memory.oom_control"),
        "oom_kill",
    ) > 0
        || count(format!("/sys/fs/cgroup/{rel}/memory.events"), "oom_kill") > 0
}

async fn init_exited(shim: Rc<Shim>, code: i32) {
    shim.exec_ctx.borrow_mut().take();
    // Drain what the container wrote before it died.
    let pumps: Vec<JoinHandle<()>> = std::mem::take(&mut *shim.pumps.borrow_mut());
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        for p in pumps {
            let _ = p.await;
        }
    })
    .await;
    if let Some(l) = shim.log.borrow_mut().as_mut() {
        l.flush();
    }
    if let Some(p) = &shim.plugin {
        p.finish(Duration::from_secs(5)).await;
    }
    let oom = oom_killed(&shim.cfg.cgroups_path);
    match create::cleanup(
        &shim.cfg.id,
        &shim.cfg.runtime_root,
        &shim.cfg.cgroups_path,
        &shim.cfg.trash_dir,
    ) {
        Ok(left) => *shim.leftover.borrow_mut() = left,
        Err(e) => eprintln!("berth-shim: delete: {e}"),
    }
    let status = ExitStatus {
        exit_code: code,
        finished_at: now_rfc3339(),
        oom_killed: oom,
    };
    // Recorded before anyone is told, atomically (a rename) but without
    // waiting for the disk: the record serves a daemon that was killed or
    // restarted and collects the exit after the shim has gone, and the page
    // cache outlives any process. A host crash takes the shim and its
    // container with it (and the default exec root is a tmpfs), so an fsync
    // would only keep, on a persistent exec root, the exit code of a
    // container that the daemon finds gone at boot anyway.
    if let Err(e) = write_atomic(
        &shim.cfg.exit_file,
        &serde_json::to_vec(&status).unwrap_or_default(),
    ) {
        eprintln!("berth-shim: writing {}: {e}", shim.cfg.exit_file);
    }
    *shim.exit.borrow_mut() = Some(status.clone());
    shim.status.set(Status::Exited);
    for w in shim.waiters.borrow_mut().drain(..) {
        let _ = w.send(status.clone());
    }
    shim.subs.borrow_mut().clear();
    shim.stdin.borrow_mut().take();
    shim.exited.notify_one();
}

fn write_atomic(path: &str, data: &[u8]) -> std::io::Result<()> {
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}

async fn reply(w: &mut OwnedWriteHalf, r: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(r).unwrap_or_default();
    line.push(b'\n');
    w.write_all(&line).await
}

async fn handle(shim: Rc<Shim>, conn: UnixStream) {
    let (r, mut w) = conn.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
        return;
    }
    let req: Request = match serde_json::from_str(&line) {
        Ok(q) => q,
        Err(e) => {
            let _ = reply(&mut w, &Reply::err(format!("bad request: {e}"))).await;
            return;
        }
    };
    match req {
        Request::State => {
            let _ = reply(
                &mut w,
                &Reply {
                    state: Some(shim.state()),
                    ..Default::default()
                },
            )
            .await;
        }
        Request::Start => {
            let rep = if shim.status.get() != Status::Created {
                Reply::err("container is not in the created state")
            } else {
                // In-process: start only signals the waiting init and
                // records the state; nothing is forked or cloned.
                match create::start(&shim.cfg.id, &shim.cfg.runtime_root) {
                    Ok(()) => {
                        shim.status.set(Status::Running);
                        *shim.started_at.borrow_mut() = Some(now_rfc3339());
                        Reply {
                            state: Some(shim.state()),
                            ..Default::default()
                        }
                    }
                    Err(e) => Reply::runtime_err(e),
                }
            };
            let _ = reply(&mut w, &rep).await;
        }
        Request::Wait => {
            let status = shim.exit.borrow().clone();
            let status = match status {
                Some(s) => s,
                None => {
                    let (tx, rx) = oneshot::channel();
                    shim.waiters.borrow_mut().push(tx);
                    match rx.await {
                        Ok(s) => s,
                        Err(_) => return,
                    }
                }
            };
            let _ = reply(
                &mut w,
                &Reply {
                    exit: Some(status),
                    ..Default::default()
                },
            )
            .await;
        }
        Request::Kill { exec_id, signal } => {
            let pid = match &exec_id {
                None if shim.status.get() == Status::Exited => None,
                None => Some(shim.init_pid),
                Some(e) => shim.execs.borrow().get(e).map(|x| x.pid),
            };
            let rep = match pid {
                None => Reply::err("process not running"),
                Some(pid) => {
                    // SAFETY: plain kill.
                    if unsafe { libc::kill(pid, signal) } == 0 {
                        Reply::ok()
                    } else {
                        Reply::err(format!("kill: {}", std::io::Error::last_os_error()))
                    }
                }
            };
            let _ = reply(&mut w, &rep).await;
        }
        Request::Resize {
            exec_id,
            height,
            width,
        } => {
            let fd = match &exec_id {
                None => shim.master.clone(),
                Some(e) => shim.execs.borrow().get(e).and_then(|x| x.master.clone()),
            };
            let rep = match fd {
                Some(m) => match fdio::resize(m.raw(), height, width) {
                    Ok(()) => Reply::ok(),
                    Err(e) => Reply::err(format!("resize: {e}")),
                },
                None => Reply::ok(),
            };
            let _ = reply(&mut w, &rep).await;
        }
        Request::Attach {
            stdin,
            stdout,
            stderr,
        } => attach(shim, r, w, stdin, stdout, stderr).await,
        Request::Exec { exec_id, process } => run_exec(shim, r, w, exec_id, process).await,
    }
}

async fn attach(
    shim: Rc<Shim>,
    mut r: BufReader<OwnedReadHalf>,
    mut w: OwnedWriteHalf,
    stdin: bool,
    stdout: bool,
    stderr: bool,
) {
    if reply(&mut w, &Reply::ok()).await.is_err() {
        return;
    }
    if shim.status.get() == Status::Exited {
        let _ = w.shutdown().await;
        return;
    }
    let (tx, mut rx) = mpsc::channel::<bytes::Bytes>(1024);
    shim.subs.borrow_mut().push(Sub { tx, stdout, stderr });
    shim.stream_begin();
    let s2 = shim.clone();
    let writer = tokio::task::spawn_local(async move {
        while let Some(b) = rx.recv().await {
            if w.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = w.shutdown().await;
        s2.stream_end();
    });
    let sink = if stdin && shim.cfg.open_stdin {
        shim.stdin.borrow().clone()
    } else {
        None
    };
    if let Some(sink) = sink {
        // Stdin EOF closes a StdinOnce container's stdin (never a TTY's, as
        // in Docker); a detach leaves it open.
        if copy_stdin(&mut r, &sink).await && shim.cfg.stdin_once && !shim.cfg.tty {
            shim.stdin.borrow_mut().take();
        }
    }
    let _ = writer.await;
}

/// Copies `[len][bytes]` stdin chunks into `sink`; true when the client
/// sent the EOF chunk, false when it just went away (a detach).
async fn copy_stdin(r: &mut BufReader<OwnedReadHalf>, sink: &Fd) -> bool {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let mut len = [0u8; 4];
        if r.read_exact(&mut len).await.is_err() {
            return false;
        }
        let mut n = u32::from_be_bytes(len) as usize;
        if n == 0 {
            return true;
        }
        while n > 0 {
            let want = n.min(buf.len());
            if r.read_exact(&mut buf[..want]).await.is_err() {
                return false;
            }
            if sink.write_all(&buf[..want]).await.is_err() {
                return false;
            }
            n -= want;
        }
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)
}

async fn run_exec(
    shim: Rc<Shim>,
    mut r: BufReader<OwnedReadHalf>,
    mut w: OwnedWriteHalf,
    exec_id: String,
    p: ExecProcess,
) {
    let t0 = std::time::Instant::now();
    if shim.status.get() != Status::Running {
        let _ = reply(
            &mut w,
            &Reply::err(format!("container {} is not running", shim.cfg.id)),
        )
        .await;
        return;
    }
    // Shim-side ends, then the child's.
    let mut ours: Vec<Option<OwnedFd>> = vec![None, None, None];
    let mut theirs: Vec<OwnedFd> = Vec::new();
    let stdio = if p.tty {
        let (a, b) = match nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Stream,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        ) {
            Ok(x) => x,
            Err(e) => {
                let _ = reply(&mut w, &Reply::err(format!("socketpair: {e}"))).await;
                return;
            }
        };
        ours[0] = Some(a);
        let raw = b.as_raw_fd();
        theirs.push(b);
        exec::ExecStdio::Tty { sock: raw }
    } else {
        let made = (|| -> std::io::Result<_> {
            let stdin = if p.stdin {
                let (rd, wr) = pipe()?;
                ours[0] = Some(wr);
                rd
            } else {
                OwnedFd::from(std::fs::File::open("/dev/null")?)
            };
            let (or, ow) = pipe()?;
            let (er, ew) = pipe()?;
            ours[1] = Some(or);
            ours[2] = Some(er);
            Ok((stdin, ow, ew))
        })();
        match made {
            Ok((i, o, e)) => {
                let s = exec::ExecStdio::Fds {
                    stdin: i.as_raw_fd(),
                    stdout: o.as_raw_fd(),
                    stderr: e.as_raw_fd(),
                };
                theirs.extend([i, o, e]);
                s
            }
            Err(e) => {
                let _ = reply(&mut w, &Reply::err(format!("pipes: {e}"))).await;
                return;
            }
        }
    };
    let t_setup = t0.elapsed();
    let ctx = shim.exec_ctx.borrow().clone();
    let ctx = match ctx {
        Some(c) => c,
        None => match exec::ExecCtx::new(shim.init_pid) {
            Ok(c) => {
                let c = Rc::new(c);
                *shim.exec_ctx.borrow_mut() = Some(c.clone());
                c
            }
            Err(e) => {
                let _ = reply(&mut w, &Reply::err(e)).await;
                return;
            }
        },
    };
    // In this (single-threaded) process: one fork, no worker; returns once
    // the child has exec'd.
    let started = exec::start_exec(
        &ctx,
        &shim.spec,
        shim.bpf.as_deref().map(Vec::as_slice),
        &p,
        &stdio,
    );
    let t_execd = t0.elapsed();
    drop(theirs);
    let started = match started {
        Ok(s) => s,
        Err(e) => {
            let _ = reply(&mut w, &Reply::err(e)).await;
            return;
        }
    };
    if let Some((msg, code)) = started.error {
        let rep = Reply {
            error: Some(msg),
            exit: Some(ExitStatus {
                exit_code: code,
                finished_at: now_rfc3339(),
                oom_killed: false,
            }),
            ..Default::default()
        };
        let _ = reply(&mut w, &rep).await;
        return;
    }
    let pid = started.pid;
    let (tx, exit_rx) = oneshot::channel();
    match shim.reaped.borrow_mut().remove(&pid) {
        Some(code) => {
            let _ = tx.send(code);
        }
        None => {
            shim.exec_waiters.borrow_mut().insert(pid, tx);
        }
    }
    type Outs = Vec<(Rc<Fd>, StreamType)>;
    let (sink, outs): (Option<Rc<Fd>>, Outs) = if p.tty {
        let sock = ours[0].take();
        let master = sock
            .and_then(|s| fdio::recv_fd(s.as_raw_fd()).ok())
            .and_then(|m| Fd::new(m).ok());
        match master {
            Some(m) => (p.stdin.then(|| m.clone()), vec![(m, StreamType::Stdout)]),
            None => (None, vec![]),
        }
    } else {
        let sink = ours[0].take().and_then(|f| Fd::new(f).ok());
        let mut outs = Vec::new();
        if let Some(o) = ours[1].take().and_then(|f| Fd::new(f).ok()) {
            outs.push((o, StreamType::Stdout));
        }
        if let Some(e) = ours[2].take().and_then(|f| Fd::new(f).ok()) {
            outs.push((e, StreamType::Stderr));
        }
        (sink, outs)
    };
    let master = if p.tty {
        outs.first().map(|(m, _)| m.clone())
    } else {
        None
    };
    shim.execs
        .borrow_mut()
        .insert(exec_id.clone(), ExecEntry { pid, master });
    if reply(
        &mut w,
        &Reply {
            pid: Some(pid),
            ..Default::default()
        },
    )
    .await
    .is_err()
    {
        // The daemon went away; the process still runs to completion.
    }
    let t_replied = t0.elapsed();
    shim.stream_begin();
    let (ftx, mut frx) = mpsc::channel::<bytes::Bytes>(1024);
    let mut pumps = Vec::new();
    for (fd, st) in outs {
        let ftx = ftx.clone();
        pumps.push(tokio::task::spawn_local(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match fd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if ftx.send(frame(st, &buf[..n])).await.is_err() {
                            // The client is gone; keep draining so the process never blocks.
                        }
                    }
                }
            }
        }));
    }
    drop(ftx);
    let writer = tokio::task::spawn_local(async move {
        while let Some(b) = frx.recv().await {
            if w.write_all(&b).await.is_err() {
                // Keep consuming so pumps can finish.
                while frx.recv().await.is_some() {}
                return None;
            }
        }
        Some(w)
    });
    if let Some(sink) = sink {
        tokio::task::spawn_local(async move {
            copy_stdin(&mut r, &sink).await;
            drop(sink);
        });
    }
    let code = exit_rx.await.unwrap_or(255);
    let t_exited = t0.elapsed();
    // What the process wrote is already in the pipe; children it left in
    // the background may hold the pipe open for ever, so the stream ends
    // shortly after the process does, as with Docker.
    let aborts: Vec<_> = pumps.iter().map(|p| p.abort_handle()).collect();
    let _ = tokio::time::timeout(Duration::from_millis(250), async {
        for p in pumps {
            let _ = p.await;
        }
    })
    .await;
    for a in aborts {
        a.abort();
    }
    shim.execs.borrow_mut().remove(&exec_id);
    if let Ok(Some(mut w)) = writer.await {
        let st = ExitStatus {
            exit_code: code,
            finished_at: now_rfc3339(),
            oom_killed: false,
        };
        let payload = serde_json::to_vec(&st).unwrap_or_default();
        let mut f = Vec::with_capacity(8 + payload.len());
        f.push(EXIT_STREAM);
        f.extend_from_slice(&[0, 0, 0]);
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(&payload);
        let _ = w.write_all(&f).await;
        let _ = w.shutdown().await;
    }
    if shim.timing {
        eprintln!(
            "berth-shim: exec {exec_id} timing (ms from the request): stdio {:.3} exec'd {:.3} pid sent {:.3} exited {:.3} stream closed {:.3}",
            t_setup.as_secs_f64() * 1e3,
            t_execd.as_secs_f64() * 1e3,
            t_replied.as_secs_f64() * 1e3,
            t_exited.as_secs_f64() * 1e3,
            t0.elapsed().as_secs_f64() * 1e3,
        );
    }
    shim.stream_end();
}

/// Points the ready pipe's fd at /dev/null: the daemon stops reading it,
/// and the fd number must stay taken (it is stdout).
fn release_ready(f: std::fs::File) {
    use std::os::fd::IntoRawFd;
    let fd = f.into_raw_fd();
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: dup2 onto our own fd replaces the pipe atomically.
        unsafe { libc::dup2(null.as_raw_fd(), fd) };
    }
}

/// Adopts a raw fd number inherited from berthd (the ready pipe).
pub fn inherited(fd: i32) -> Option<std::fs::File> {
    // SAFETY: fstat only checks that the fd is open.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    // SAFETY: the fd is open and handed to us by the parent.
    Some(unsafe { std::fs::File::from_raw_fd(fd) })
}
