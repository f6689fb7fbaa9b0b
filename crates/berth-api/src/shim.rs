//! The private protocol between berthd and a container's berth-shim.
//!
//! Each request is one JSON line on the shim's unix socket; the answer is one
//! JSON line. `Attach` and `Exec` then turn the connection into a stream:
//! shim → daemon carries frames (`[stream, 0, 0, 0, len_be32]`, stdcopy's
//! header; stream [`EXIT_STREAM`] carries the exit status as JSON and ends the
//! stream), daemon → shim carries stdin as `[len_be32][bytes]` chunks, where
//! a zero length means stdin EOF. A connection that ends without that EOF
//! chunk is a detach: the container's stdin stays open.

use serde::{Deserialize, Serialize};

/// Frame stream id that carries the final [`ExitStatus`].
pub const EXIT_STREAM: u8 = 0xFF;

/// One stdin chunk as the shim expects it; an empty `data` is EOF.
pub fn stdin_chunk(data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + data.len());
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(data);
    v
}

/// Written by berthd into the container's state directory before it starts
/// the shim.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ShimConfig {
    /// The container's ID, also its ID in the runtime.
    pub id: String,
    /// Directory holding `config.json` (the OCI spec).
    pub bundle: String,
    /// libcontainer's state root (`<exec-root>/runtime`).
    pub runtime_root: String,
    /// Unix socket the shim serves.
    pub socket: String,
    /// Where the shim records the exit status (atomically) before reporting it.
    pub exit_file: String,
    /// json-file log path; empty disables logging.
    pub log_path: String,
    /// Rotate at this size (bytes); 0 = never.
    pub log_max_size: u64,
    /// Keep this many files in total when rotating (>= 1).
    pub log_max_file: u32,
    /// Rotated files are gzip-compressed (`<name>.1.gz`, …) off the write
    /// path, as dockerd's `compress`.
    #[serde(default)]
    pub log_compress: bool,
    /// The file's format: empty for json-file, `local` for the local
    /// driver's framed `LogEntry` records.
    #[serde(default)]
    pub log_format: String,
    /// A logging plugin's FIFO: every line goes there too, as framed
    /// `LogEntry` messages (`logentry`). Empty: no plugin.
    #[serde(default)]
    pub log_fifo: String,
    /// json-file's extra attributes: a JSON object every line carries as
    /// `"attrs"` (`labels`, `env`, `tag` options). Empty: none.
    #[serde(default)]
    pub log_attrs: String,
    /// The container's `Config.Tty`: its process gets a pseudo-terminal.
    pub tty: bool,
    /// The container's `Config.OpenStdin`: stdin stays open for attach.
    pub open_stdin: bool,
    /// The container's `Config.StdinOnce`: stdin closes when the first
    /// attached client detaches.
    pub stdin_once: bool,
    /// Initial console size (rows, cols) for a TTY.
    pub console_size: Option<(u16, u16)>,
    /// Cgroup path (relative, as in the spec) to read OOM counters from.
    pub cgroups_path: String,
    /// The container's seccomp filter compiled to BPF (shared by the
    /// containers with the same profile); exec'd processes get it. Empty:
    /// no filter.
    #[serde(default)]
    pub seccomp_bpf: String,
    /// The init's seccomp filter is `seccomp_bpf` too, installed by the
    /// shim's executor right before exec; these capabilities were lent for
    /// that and are dropped just after.
    #[serde(default)]
    pub init_bpf: bool,
    /// Capabilities lent to the init only to install the filter (see
    /// `init_bpf`); exec'd processes never get them.
    #[serde(default)]
    pub lent_caps: Vec<String>,
    /// Where the runtime's state directory is moved when the container has
    /// exited, to be deleted after the exit is reported (same file system
    /// as `runtime_root`; berthd empties it at start). Empty: deleted in
    /// place.
    #[serde(default)]
    pub trash_dir: String,
    /// Create the container as soon as the shim has loaded, before the
    /// word (a start prepared ahead): the word then only releases the
    /// ready line. Without the word (EOF), the created container is
    /// deleted; a create that failed is tried again at the word.
    #[serde(default)]
    pub create_early: bool,
}

/// Every request line; `op` names the variant.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Start the created container's process.
    Start,
    /// The container's state, answered with a [`StateReply`].
    State,
    /// Answered when the container's process has exited.
    Wait,
    /// Attach to the container's streams; the connection then streams.
    Attach {
        /// Forward the daemon's stdin chunks to the container.
        stdin: bool,
        /// Send the container's stdout.
        stdout: bool,
        /// Send the container's stderr.
        stderr: bool,
    },
    /// Resize a TTY (`docker resize`, exec resize).
    Resize {
        /// The exec whose TTY to resize; `None`: the container's.
        exec_id: Option<String>,
        /// Rows.
        height: u16,
        /// Columns.
        width: u16,
    },
    /// Send a signal to a process.
    Kill {
        /// The exec to signal; `None`: the container's init.
        exec_id: Option<String>,
        /// The signal number.
        signal: i32,
    },
    /// Run a process in the container (`docker exec`); answered with its
    /// `pid`, then the connection streams.
    Exec {
        /// The exec instance's ID.
        exec_id: String,
        /// What to run and how.
        process: ExecProcess,
    },
}

/// The process of an exec instance, resolved by the daemon from its
/// `ExecConfig` and the container's configuration.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ExecProcess {
    /// The command and its arguments.
    pub args: Vec<String>,
    /// The environment, `KEY=value` items.
    pub env: Vec<String>,
    /// The working directory; empty: `/`.
    pub cwd: String,
    /// The user ID to run as.
    pub uid: u32,
    /// The group ID to run as.
    pub gid: u32,
    /// Supplementary group IDs.
    pub additional_gids: Vec<u32>,
    /// Give the process a pseudo-terminal (`Tty`).
    pub tty: bool,
    /// Give the process a stdin (`AttachStdin`); otherwise it reads `/dev/null`.
    pub stdin: bool,
    /// Initial console size (rows, cols) for a TTY.
    pub console_size: Option<(u16, u16)>,
    /// The exec's or the container's `Privileged`: keep every capability
    /// and skip the seccomp filter.
    pub privileged: bool,
}

/// How a process ended.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
pub struct ExitStatus {
    /// The exit code (128 + the signal for a process a signal killed).
    pub exit_code: i32,
    /// RFC 3339 with nanoseconds.
    pub finished_at: String,
    /// The container's cgroup recorded an OOM kill (`State.OOMKilled`).
    pub oom_killed: bool,
}

/// The container's state, as the shim knows it.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct StateReply {
    /// The init process's PID.
    pub pid: i32,
    /// "created", "running" or "exited".
    pub status: String,
    /// When the process was started (RFC 3339); `None` before the start.
    pub started_at: Option<String>,
    /// How the process ended, once it has.
    pub exit: Option<ExitStatus>,
}

/// Why a shim's request failed: decides the daemon's answer (400 or 500)
/// and the exit code a container that could not start records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Anything else: 500, exit code 128.
    #[default]
    Internal,
    /// The command, or a file the runtime needed, does not exist: 400, 127.
    NotFound,
    /// The command may not be executed: 400, 126.
    PermissionDenied,
}

impl ErrorKind {
    /// The exit code Docker records for a start that failed this way.
    pub fn exit_code(self) -> i64 {
        match self {
            ErrorKind::Internal => 128,
            ErrorKind::NotFound => 127,
            ErrorKind::PermissionDenied => 126,
        }
    }

    /// The kind of a runtime's failure to create or start a container,
    /// read the way moby reads its runtime's errors (their text is all an
    /// OCI runtime gives): "executable file not found" or "no such file or
    /// directory" anywhere is 127, "permission denied" 126. Used by the
    /// shim, where the runtime's message arrives; the daemon sees the kind.
    pub fn of_runtime_error(msg: &str) -> Self {
        if msg.contains("executable file not found") || msg.contains("no such file or directory") {
            ErrorKind::NotFound
        } else if msg.contains("permission denied") {
            ErrorKind::PermissionDenied
        } else {
            ErrorKind::Internal
        }
    }
}

/// Every answer line.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Reply {
    /// Why the request failed; absent on success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// With `error`: what kind of failure (absent: internal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<ErrorKind>,
    /// `Exec`: the exec'd process's PID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// `State` and `Start`: the container's state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<StateReply>,
    /// `Wait`: how the container's process ended; with `error` on `Exec`,
    /// the exec's failed start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitStatus>,
}

impl Reply {
    /// Success with nothing to report.
    pub fn ok() -> Self {
        Self::default()
    }
    /// A failure with `msg` (kind: internal).
    pub fn err(msg: impl Into<String>) -> Self {
        Self {
            error: Some(msg.into()),
            ..Default::default()
        }
    }

    /// A runtime's failure, with its kind (see `ErrorKind::of_runtime_error`).
    pub fn runtime_err(msg: impl Into<String>) -> Self {
        let msg = msg.into();
        Self {
            kind: Some(ErrorKind::of_runtime_error(&msg)),
            error: Some(msg),
            ..Default::default()
        }
    }
}

/// The first line the shim writes on its ready pipe.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Ready {
    /// The container's init PID, once it is created.
    pub pid: Option<i32>,
    /// Why the container could not be created.
    pub error: Option<String>,
    /// With `error`: what kind of failure (absent: internal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ErrorKind>,
}

/// The spawner: one long-lived `berth-shim spawner` per daemon, which forks
/// a container's shim instead of the daemon executing a new one (an exec,
/// the dynamic loader and glibc's CPU probing cost ~1 ms per container on
/// a VM, where each `cpuid` traps). The daemon holds the other end of the
/// spawner's stdin, a `SOCK_SEQPACKET` socket; each message is a shim's
/// state directory (UTF-8, the payload) with three descriptors attached
/// (`SCM_RIGHTS`): the shim's stdin, stdout and stderr. The spawner forks,
/// and the child runs as `berth-shim run <state-dir>` would. The spawner
/// first sends [`SPAWNER_READY`] once it is set up; after that nothing is
/// sent back on the socket. Each child writes [`SPAWNER_TAKEN`] to the
/// shim's stdout first thing after the fork, so the daemon can tell a
/// shim it must wait for from one that no process will ever run (a
/// spawner stopped or killed with the message unread, a failed fork). A
/// shim that never came up closes its stdout, as one that failed to
/// execute does. The spawner exits when the socket closes.
pub const SPAWNER_ARG: &str = "spawner";

/// The spawner's one message: it is ready for shims, and its children say
/// [`SPAWNER_TAKEN`] (a spawner of an older berth-shim says `ready`
/// alone, and is not used).
pub const SPAWNER_READY: &[u8] = b"ready, taken";

/// The line a spawner's child writes to the shim's stdout before anything
/// else (not JSON, so never taken for the shim's [`Ready`] line, which
/// follows).
pub const SPAWNER_TAKEN: &str = "taken";

/// Empty arguments the spawner is started with: the room in which each
/// child writes its own command line (`berth-shim\0run\0<state-dir>\0`),
/// so that `/proc/<pid>/cmdline` names its state directory as an executed
/// shim's does. A state directory that does not fit is executed instead.
pub const SPAWNER_TITLE_ROOM: usize = 512;
