//! Starting berth-shim and talking to it.
//!
//! The shim binary is copied once into a sealed memfd, and the spawner
//! (`spawner.rs`, whose forks are the shims) or a shim executed directly
//! runs from that copy: a container process that reaches the shim's
//! `/proc/<pid>/exe` (CVE-2019-5736) finds a write-sealed memory file, not
//! the host binary, and all shims share the memfd's pages.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use berth_api::shim::{ErrorKind, ExitStatus, Ready, Reply, Request};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::engine::{EngineError, Result};

mod spawner;

/// The sealed in-memory copy of berth-shim. Clones share the one copy
/// (containers and managed plugins run from the same memfd).
#[derive(Clone)]
pub struct ShimBinary {
    fd: std::sync::Arc<OwnedFd>,
    spawner: std::sync::Arc<spawner::Spawner>,
}

impl ShimBinary {
    /// Finds berth-shim (`BERTH_SHIM`, else next to berthd, else on PATH)
    /// and seals a copy.
    pub fn load() -> Result<Self> {
        Self::from_file(&locate()?)
    }

    /// A sealed copy of the binary at `path`.
    fn from_file(path: &Path) -> Result<Self> {
        let mut src = std::fs::File::open(path)
            .map_err(|e| EngineError::internal(format!("reading {}: {e}", path.display())))?;
        let fd = nix::sys::memfd::memfd_create(
            c"berth-shim",
            nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC
                | nix::sys::memfd::MemFdCreateFlag::MFD_ALLOW_SEALING,
        )
        .map_err(|e| EngineError::internal(format!("memfd_create: {e}")))?;
        let mut f = std::fs::File::from(fd);
        // File to file: the kernel copies (copy_file_range), no user buffer.
        std::io::copy(&mut src, &mut f)
            .map_err(|e| EngineError::internal(format!("copying the shim: {e}")))?;
        seal(&f)?;
        Ok(Self {
            fd: std::sync::Arc::new(OwnedFd::from(f)),
            spawner: Default::default(),
        })
    }

    /// A command running the sealed copy. The path is resolved by execve
    /// before close-on-exec descriptors are closed, so it works in the child.
    pub fn command(&self) -> std::process::Command {
        let mut c = std::process::Command::new(format!("/proc/self/fd/{}", self.fd.as_raw_fd()));
        c.arg0("berth-shim");
        c
    }
}

/// Seals the copy against any change. F_SEAL_WRITE waits for every page
/// to lose its extra references and answers EBUSY if one keeps it: a page
/// still in another CPU's LRU batch does, on a loaded machine. After a
/// bounded retry, F_SEAL_FUTURE_WRITE refuses every write and writable
/// mapping from then on, which is what the copy needs (nothing of ours
/// writes to it once it is copied).
fn seal(f: &std::fs::File) -> Result<()> {
    let fixed = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;
    let add = |extra: libc::c_int| {
        // SAFETY: fcntl on a memfd that `f` keeps open; no memory is passed.
        if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_ADD_SEALS, fixed | extra) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    for _ in 0..10 {
        match add(libc::F_SEAL_WRITE | libc::F_SEAL_SEAL) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => return Err(EngineError::internal(format!("sealing the shim copy: {e}"))),
        }
    }
    add(libc::F_SEAL_FUTURE_WRITE | libc::F_SEAL_SEAL)
        .map_err(|e| EngineError::internal(format!("sealing the shim copy: {e}")))
}

fn locate() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("BERTH_SHIM") {
        return Ok(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let p = dir.join("berth-shim");
            if p.exists() {
                return Ok(p);
            }
        }
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("berth-shim");
        if p.exists() {
            return Ok(p);
        }
    }
    Err(EngineError::internal(
        "berth-shim not found (next to berthd, on PATH, or in BERTH_SHIM)",
    ))
}

/// A shim that has been started and waits for the word to create the
/// container: it loads while the daemon finishes the container's network
/// and files.
pub struct Launched {
    go: OwnedFd,
    ready: OwnedFd,
    log: PathBuf,
    /// Set when the spawner was handed the shim: until it says it took it,
    /// the shim may never come (see [`Launched::go`]).
    via: Option<Via>,
}

/// What a launch through the spawner needs to execute the shim instead.
struct Via {
    spawner: std::sync::Arc<spawner::Process>,
    bin: ShimBinary,
    state_dir: PathBuf,
}

/// How long a spawner may hold a shim's message before it is taken for
/// stuck (it takes one in well under a millisecond, and a loaded machine
/// delays that by far less than this).
const TAKE_WITHIN: Duration = Duration::from_secs(5);

/// Starts `berth-shim run <state_dir>`. The shim starts its own session,
/// reads its configuration, then waits on its stdin (a pipe) for
/// [`Launched::go`]; it answers on its stdout (another pipe). The spawner
/// forks it; without one, it is executed here, with nothing run between
/// fork and exec, so the standard library spawns with posix_spawn (a
/// vfork): the daemon's page tables are not copied for every container.
pub fn launch(bin: &ShimBinary, state_dir: &Path, log: &Path) -> Result<Launched> {
    let (mut launched, stdio) = pipes(log)?;
    let fds = [stdio.0.as_fd(), stdio.1.as_fd(), stdio.2.as_fd()];
    if let Ok(spawner) = bin.spawner.spawn(state_dir, fds, || bin.command()) {
        launched.via = Some(Via {
            spawner,
            bin: bin.clone(),
            state_dir: state_dir.to_path_buf(),
        });
        return Ok(launched);
    }
    execute(bin, state_dir, stdio)?;
    Ok(launched)
}

/// The shim's stdin, stdout and stderr (its log), as the child's ends.
type ChildStdio = (OwnedFd, OwnedFd, std::fs::File);

/// A launch's pipes and log: our ends in the `Launched`, the shim's apart.
fn pipes(log: &Path) -> Result<(Launched, ChildStdio)> {
    let pipe = || {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| EngineError::internal(format!("pipe: {e}")))
    };
    let (ready_r, ready_w) = pipe()?;
    let (go_r, go_w) = pipe()?;
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| EngineError::internal(format!("opening {}: {e}", log.display())))?;
    let launched = Launched {
        go: go_w,
        ready: ready_r,
        log: log.to_path_buf(),
        via: None,
    };
    Ok((launched, (go_r, ready_w, log_file)))
}

/// Executes `berth-shim run <state_dir>` on the given stdio.
fn execute(bin: &ShimBinary, state_dir: &Path, (stdin, stdout, log): ChildStdio) -> Result<()> {
    let mut cmd = bin.command();
    cmd.arg("run")
        .arg(state_dir)
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(log));
    // Reaped by tokio in the background once dropped (the shim outlives
    // us if we die first); no thread waits for it.
    let child = tokio::process::Command::from(cmd)
        .spawn()
        .map_err(|e| EngineError::internal(format!("starting berth-shim: {e}")))?;
    drop(child);
    Ok(())
}

/// What became of a shim handed to the spawner.
enum Handed {
    /// Forked: the shim's own answer follows.
    Taken,
    /// A first line that is not `taken` (our spawner's children never
    /// send one): read as the shim's answer.
    Answer(String),
    /// Never forked, and now never will be: no process holds the shim's end.
    Dropped,
}

type ReadyLines = tokio::io::Lines<BufReader<tokio::net::unix::pipe::Receiver>>;

impl Launched {
    /// Lets the shim go without creating anything, and waits (bounded)
    /// until it has exited: its stdout closes then.
    pub async fn abandon(self) {
        use tokio::io::AsyncReadExt;
        drop(self.go);
        let Ok(mut pipe) = tokio::net::unix::pipe::Receiver::from_owned_fd(self.ready) else {
            return;
        };
        let mut buf = [0u8; 256];
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }

    /// Lets the shim create the container; waits for its ready line (the
    /// init PID) or its error. Dropping a `Launched` instead makes the
    /// shim exit without creating anything.
    pub async fn go(self) -> Result<i32> {
        // A failed word (EPIPE) means nothing reads the shim's stdin any
        // more: a shim that exited (its answer or the end of its stdout
        // says why), or a message that died unread with its spawner.
        let _ = nix::unistd::write(&self.go, b"g");
        drop(self.go);
        // Read through the reactor, not the blocking pool.
        let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(self.ready)
            .map_err(|e| EngineError::internal(format!("ready pipe: {e}")))?;
        let mut lines = BufReader::new(pipe).lines();
        let mut answer = None;
        if let Some(via) = self.via {
            match handed(&mut lines, &via).await? {
                Handed::Taken => {}
                Handed::Answer(line) => answer = Some(line),
                Handed::Dropped => {
                    // No fork will ever hold the shim's end: execute it.
                    let (launched, stdio) = pipes(&self.log)?;
                    execute(&via.bin, &via.state_dir, stdio)?;
                    return Box::pin(launched.go()).await;
                }
            }
        }
        let line = match answer {
            Some(line) => Some(line),
            None => tokio::time::timeout(Duration::from_secs(60), lines.next_line())
                .await
                .map_err(|_| EngineError::internal("berth-shim did not report in 60s"))?
                .map_err(|e| EngineError::internal(format!("reading from berth-shim: {e}")))?,
        };
        let line = line.ok_or_else(|| {
            let tail = std::fs::read_to_string(&self.log).unwrap_or_default();
            EngineError::internal(format!(
                "berth-shim exited before it was ready: {}",
                tail.trim()
            ))
        })?;
        let ready: Ready = serde_json::from_str(&line)
            .map_err(|e| EngineError::internal(format!("berth-shim said {line:?}: {e}")))?;
        match (ready.pid, ready.error) {
            (Some(pid), None) => Ok(pid),
            (_, Some(e)) => Err(start_error(&e, ready.kind.unwrap_or_default())),
            _ => Err(EngineError::internal("berth-shim reported nothing")),
        }
    }
}

/// Waits for the word of a shim handed to the spawner: its child's
/// `taken`, first thing after the fork. A spawner that has not forked it
/// within [`TAKE_WITHIN`] (stopped, say) is killed, and the pipe then
/// says what happened: `taken` from a child, or its end once the unread
/// message died with the spawner. The end of the pipe without `taken`
/// means no process holds the shim's stdout, so no shim runs: it is
/// safe to execute one.
async fn handed(lines: &mut ReadyLines, via: &Via) -> Result<Handed> {
    let read = |e: std::io::Error| EngineError::internal(format!("reading from berth-shim: {e}"));
    let first = match tokio::time::timeout(TAKE_WITHIN, lines.next_line()).await {
        Ok(line) => line.map_err(read)?,
        // One that cannot be killed from here may still fork: wait on.
        Err(_) if !via.spawner.killable() => return Ok(Handed::Taken),
        Err(_) => {
            via.bin.spawner.stop(&via.spawner).await;
            tokio::time::timeout(Duration::from_secs(5), lines.next_line())
                .await
                .map_err(|_| {
                    EngineError::internal("the shim spawner neither took nor dropped a shim")
                })?
                .map_err(read)?
        }
    };
    Ok(match first {
        Some(line) if line == berth_api::shim::SPAWNER_TAKEN => Handed::Taken,
        Some(line) => Handed::Answer(line),
        None => Handed::Dropped,
    })
}

/// A start's failure as Docker words it, keeping the shim's kind.
pub fn start_error(msg: &str, kind: ErrorKind) -> EngineError {
    EngineError::StartFailed {
        kind,
        msg: format!("failed to create task for container: {msg}"),
    }
}

/// The kind of a shim's failure (internal unless the shim said otherwise).
pub fn kind_of(e: &EngineError) -> ErrorKind {
    match e {
        EngineError::StartFailed { kind, .. } => *kind,
        _ => ErrorKind::Internal,
    }
}

/// A connection to a shim.
pub struct Conn {
    pub stream: BufReader<UnixStream>,
}

/// The read buffer of a connection. Answers are one short JSON line (a
/// longer one is read in several fills), and every running container's
/// exit is awaited on a connection of its own: the default 8 KiB was
/// 8 MiB of the daemon's memory with a thousand running.
const CONN_BUFFER: usize = 512;

pub async fn connect(socket: &Path) -> std::io::Result<Conn> {
    let s = UnixStream::connect(socket).await?;
    Ok(Conn {
        stream: BufReader::with_capacity(CONN_BUFFER, s),
    })
}

impl Conn {
    pub async fn send(&mut self, req: &Request) -> std::io::Result<Reply> {
        let mut line = serde_json::to_vec(req).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.stream.get_mut().write_all(&line).await?;
        let mut answer = String::new();
        if self.stream.read_line(&mut answer).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "shim closed the connection",
            ));
        }
        serde_json::from_str(&answer).map_err(std::io::Error::other)
    }
}

/// One request, one answer.
pub async fn call(socket: &Path, req: &Request) -> Result<Reply> {
    let mut c = connect(socket)
        .await
        .map_err(|e| EngineError::internal(format!("connecting to the shim: {e}")))?;
    let mut r = c
        .send(req)
        .await
        .map_err(|e| EngineError::internal(format!("talking to the shim: {e}")))?;
    match r.error.take() {
        Some(msg) => Err(match r.kind {
            Some(kind) => EngineError::StartFailed { kind, msg },
            None => EngineError::internal(msg),
        }),
        None => Ok(r),
    }
}

/// Follows a shim until it reports its container's exit. A shim that
/// cannot be reached has either exited after writing its exit record
/// (`exit_record`, read then) or died without a word: `None` once 20
/// attempts 50 ms apart have failed.
pub async fn follow_exit(socket: &Path, exit_record: &Path) -> Option<ExitStatus> {
    let mut failures = 0;
    loop {
        let r = async {
            let mut conn = connect(socket).await?;
            conn.send(&Request::Wait).await
        }
        .await;
        match r {
            Ok(rep) if rep.exit.is_some() => return rep.exit,
            _ => {
                if let Some(s) = read_exit(exit_record) {
                    return Some(s);
                }
                failures += 1;
                if failures > 20 {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The exit record a shim writes before it goes.
pub fn read_exit(path: &Path) -> Option<ExitStatus> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// What a shim says of its container when the daemon comes back.
#[derive(Debug, PartialEq)]
pub enum Probe {
    /// The container's process runs: the daemon reattaches.
    Running,
    /// It ended while the daemon was away.
    Exited(ExitStatus),
    /// No shim answered within the bound, or it answered nonsense.
    Unreachable,
}

/// Asks a shim for its container's state, waiting at most `within`: a
/// stopped (SIGSTOP) shim must not hold up the daemon's start.
pub async fn probe(socket: &Path, within: Duration) -> Probe {
    match tokio::time::timeout(within, call(socket, &Request::State)).await {
        Ok(Ok(rep)) => match rep.state {
            Some(s) if s.status == "running" => Probe::Running,
            Some(s) => s.exit.map(Probe::Exited).unwrap_or(Probe::Unreachable),
            None => Probe::Unreachable,
        },
        _ => Probe::Unreachable,
    }
}

#[cfg(test)]
mod fake;

#[cfg(test)]
mod sealing {
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_sealed_copy_refuses_writes_and_resizes() {
        let fd = nix::sys::memfd::memfd_create(
            c"seal-test",
            nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC
                | nix::sys::memfd::MemFdCreateFlag::MFD_ALLOW_SEALING,
        )
        .unwrap();
        let mut f = std::fs::File::from(fd);
        f.write_all(b"#!/bin/true\n").unwrap();
        super::seal(&f).unwrap();
        // SAFETY: F_GET_SEALS on an open memfd, no memory passed.
        let seals = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) };
        assert!(seals & libc::F_SEAL_SEAL != 0);
        assert!(seals & (libc::F_SEAL_WRITE | libc::F_SEAL_FUTURE_WRITE) != 0);
        assert!(f.write_all(b"x").is_err());
        assert!(f.set_len(1).is_err());
    }
}
