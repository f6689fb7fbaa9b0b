//! Rootless mode: berthd run by an ordinary user.
//!
//! Before the async runtime starts (setns into a user namespace needs a
//! single-threaded process), [`enter`] puts the daemon into the user,
//! mount and network namespaces of a *holder* process: it joins the live
//! holder named by `<exec-root>/rootless/holder.pid`, or forks a new one
//! (`holder.rs`) and starts slirp4netns for its network (`slirp.rs`). Both
//! outlive the daemon, so that after a crash a new daemon joins the same
//! namespaces and finds its containers, mounts and bridges where they were.
//! Inside, the daemon is uid 0 of a namespace mapping 0 to the user and 1..
//! to the user's subordinate ids (`subid.rs`); its shims inherit that.

pub mod holder;
pub mod paths;
pub mod slirp;
pub mod subid;

use std::path::{Path, PathBuf};

/// Why rootless mode cannot start; each names what is missing and the fix.
#[derive(Debug, thiserror::Error)]
pub enum RootlessError {
    #[error("rootless mode: {0}")]
    Missing(String),
    #[error("rootless mode: no subordinate ids for user {user} in {file}; as root: `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}`")]
    NoSubids { user: String, file: String },
    #[error(
        "rootless mode: {0} not found in PATH; install it (Debian/Ubuntu: `apt-get install {1}`)"
    )]
    NoBinary(&'static str, &'static str),
    #[error("rootless mode: /dev/net/tun is not accessible to this user ({0}); slirp4netns needs it; as root: `chmod 0666 /dev/net/tun`")]
    Tun(String),
    #[error("rootless mode: {what}: {source}")]
    Sys {
        what: String,
        source: std::io::Error,
    },
}

impl RootlessError {
    fn sys(what: impl Into<String>, e: impl Into<std::io::Error>) -> Self {
        Self::Sys {
            what: what.into(),
            source: e.into(),
        }
    }
}

/// The namespaces the daemon now runs in.
#[derive(Debug, Clone)]
pub struct Context {
    /// The holder's pid (on the host; the holder has no pid namespace).
    pub holder: i32,
    /// Whether this start made the holder (false: it joined one).
    pub created: bool,
    /// The slirp4netns API socket.
    pub slirp_socket: PathBuf,
}

static HOST_PORT_START: std::sync::OnceLock<u16> = std::sync::OnceLock::new();

/// The host's `net.ipv4.ip_unprivileged_port_start` (a per-namespace
/// setting: read before entering the daemon's own), 1024 if unknown.
pub fn host_port_start() -> u16 {
    *HOST_PORT_START.get_or_init(|| 1024)
}

/// Joins (or makes) the holder of `exec_root` and enters its namespaces.
/// Must run while the process is single-threaded.
pub fn enter(exec_root: &Path) -> Result<Context, RootlessError> {
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024);
    let _ = HOST_PORT_START.set(start);
    let dir = paths::state_dir(exec_root);
    std::fs::create_dir_all(&dir)
        .map_err(|e| RootlessError::sys(format!("creating {}", dir.display()), e))?;
    // Two daemons starting at once on one exec root make one holder.
    let _lock = lock(&dir)?;
    let uid = nix::unistd::getuid().as_raw();
    let slirp_socket = dir.join("slirp.sock");
    if let Some(pid) = holder::live(&dir, uid) {
        // A slirp4netns killed on its own leaves the namespace offline:
        // give it a new one (before joining: it runs as the user outside).
        if !slirp::alive(&dir) {
            slirp::start(&dir, pid)?;
        }
        holder::join(pid)?;
        return Ok(Context {
            holder: pid,
            created: false,
            slirp_socket,
        });
    }
    let pid = holder::create(&dir)?;
    if let Err(e) = slirp::start(&dir, pid) {
        holder::kill(pid);
        return Err(e);
    }
    holder::write_pid(&dir, pid)?;
    holder::join(pid)?;
    Ok(Context {
        holder: pid,
        created: true,
        slirp_socket,
    })
}

/// An exclusive lock on `<dir>/lock`, released when dropped (not
/// inherited by the holder or slirp4netns: close-on-exec, and closed by
/// the holder itself).
fn lock(dir: &Path) -> Result<std::fs::File, RootlessError> {
    use std::os::fd::AsRawFd;
    let p = dir.join("lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| RootlessError::sys(format!("opening {}", p.display()), e))?;
    // SAFETY: flock on a descriptor `f` owns.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(RootlessError::sys(
            format!("locking {}", p.display()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(f)
}

/// For `berthd --check` (which changes nothing): joins the holder if one
/// lives, and never makes one. Whether it joined.
pub fn join_existing(exec_root: &Path) -> Result<bool, RootlessError> {
    let dir = paths::state_dir(exec_root);
    match holder::live(&dir, nix::unistd::getuid().as_raw()) {
        Some(pid) => holder::join(pid).map(|()| true),
        None => Ok(false),
    }
}

/// Finds `name` in `$PATH` (and the usual sbin directories, where
/// `newuidmap` lives on some distributions).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}
