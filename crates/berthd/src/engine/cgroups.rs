//! The containers' cgroups, as the daemon sees them: where they are, which
//! processes they hold, freezing, and removing what a dead shim left.
//!
//! Every container's cgroup is `<parent>/<id>` in each mounted hierarchy
//! (cgroup v1 controllers and the v2 tree). The parent is a daemon setting
//! (`--cgroup-parent`, `/berth` by default), set once at start: it is the
//! same for every container of a daemon and never changes while it runs.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{EngineError, Result};

static PARENT: OnceLock<String> = OnceLock::new();

/// The default parent, as dockerd's is `/docker`.
pub const DEFAULT_PARENT: &str = "/berth";

/// Sets the daemon's cgroup parent (first call wins: one daemon per process).
pub fn set_parent(parent: &str) {
    let p = format!("/{}", parent.trim_matches('/'));
    let _ = PARENT.set(if p == "/" { DEFAULT_PARENT.into() } else { p });
}

pub fn parent() -> &'static str {
    PARENT.get().map(String::as_str).unwrap_or(DEFAULT_PARENT)
}

/// The cgroup path berth gives a container.
pub fn path(id: &str) -> String {
    format!("{}/{id}", parent())
}

/// Where the v1 controllers and the v2 tree are mounted (this host's hybrid
/// layout, and plain v2 hosts).
const V1_ROOT: &str = "/sys/fs/cgroup";
const V2_ROOTS: [&str; 2] = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"];

/// The directory of cgroup `rel` (see `path`) in v1 controller `controller`.
pub fn v1_dir(controller: &str, rel: &str) -> String {
    format!("{V1_ROOT}/{controller}{rel}")
}

/// The v2 directory of cgroup `rel`, when it lives in a v2 tree that has
/// the memory controller (where stats and limits are read and written).
pub fn v2_dir(rel: &str) -> Option<String> {
    V2_ROOTS
        .iter()
        .map(|b| format!("{b}{rel}"))
        .find(|d| Path::new(&format!("{d}/memory.current")).exists())
}

/// Mount points of the cgroup hierarchies (v1 controllers and v2).
pub fn mounts() -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in info.lines() {
        // id parent major:minor root mountpoint opts... - fstype source superopts
        let f: Vec<&str> = line.split(' ').collect();
        let Some(dash) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        if matches!(f.get(dash + 1), Some(&"cgroup") | Some(&"cgroup2")) {
            if let Some(mp) = f.get(4) {
                out.push(PathBuf::from(mp));
            }
        }
    }
    out
}

/// The container's cgroup directory in every hierarchy where it exists.
pub fn dirs(id: &str) -> Vec<PathBuf> {
    let rel = path(id);
    mounts()
        .into_iter()
        .map(|m| m.join(rel.trim_start_matches('/')))
        .filter(|d| d.is_dir())
        .collect()
}

/// IDs with a cgroup under the parent, in any hierarchy.
pub fn children() -> std::collections::BTreeSet<String> {
    let rel = parent().trim_start_matches('/').to_string();
    let mut out = std::collections::BTreeSet::new();
    for m in mounts() {
        let Ok(rd) = std::fs::read_dir(m.join(&rel)) else {
            continue;
        };
        for e in rd.flatten() {
            if e.path().is_dir() {
                out.insert(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// PIDs in the container's cgroup (host view), from every hierarchy.
pub fn pids(id: &str) -> Vec<i64> {
    let mut out: Vec<i64> = dirs(id)
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|s| {
            s.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Kills every process in the container's cgroup and waits (bounded) until
/// none is left. A frozen (paused) cgroup is thawed first, or the kill
/// would wait for the thaw. Returns whether the cgroup is empty.
pub fn kill_all(id: &str, limit: Duration) -> bool {
    let _ = freeze(id, false);
    let start = Instant::now();
    loop {
        let pids = pids(id);
        if pids.is_empty() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        for p in pids {
            if let Ok(p) = i32::try_from(p) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Removes the container's (empty) cgroup directories; one that still
/// holds a process stays. A missing one is not an error.
pub fn remove(id: &str) {
    for d in dirs(id) {
        remove_tree(&d);
    }
}

/// Removes a cgroup directory and any children (cgroupfs directories
/// are removed with rmdir, leaf first).
fn remove_tree(d: &Path) {
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(d);
}

/// Whether the container's cgroup is frozen (v1 freezer or v2 cgroup.freeze).
pub fn is_frozen(id: &str) -> bool {
    let rel = path(id);
    if let Ok(s) = std::fs::read_to_string(format!("/sys/fs/cgroup/freezer{rel}/freezer.state")) {
        return s.trim() != "THAWED";
    }
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .iter()
        .any(|b| {
            std::fs::read_to_string(format!("{b}{rel}/cgroup.freeze"))
                .is_ok_and(|s| s.trim() == "1")
        })
}

/// Freezes or thaws the container's cgroup (v1 freezer or v2 cgroup.freeze).
pub fn freeze(id: &str, on: bool) -> Result<()> {
    let rel = path(id);
    let v1 = format!("/sys/fs/cgroup/freezer{rel}");
    if Path::new(&v1).exists() {
        let want = if on { "FROZEN" } else { "THAWED" };
        std::fs::write(format!("{v1}/freezer.state"), want)
            .map_err(|e| EngineError::internal(format!("freezer: {e}")))?;
        for _ in 0..1000 {
            let st = std::fs::read_to_string(format!("{v1}/freezer.state")).unwrap_or_default();
            if st.trim() == want {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        return Err(EngineError::internal("the freezer did not settle"));
    }
    for base in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"] {
        let d = format!("{base}{rel}");
        if Path::new(&format!("{d}/cgroup.freeze")).exists() {
            std::fs::write(format!("{d}/cgroup.freeze"), if on { "1" } else { "0" })
                .map_err(|e| EngineError::internal(format!("cgroup.freeze: {e}")))?;
            return Ok(());
        }
    }
    Err(EngineError::internal(
        "no freezer cgroup for this container",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_under_the_parent() {
        // The parent is process-wide; the unit tests keep the default.
        assert_eq!(path("abc"), format!("{}/abc", parent()));
        assert!(parent().starts_with('/'));
    }

    #[test]
    fn a_missing_cgroup_has_no_pids_and_removes_quietly() {
        let id = "no-such-container-0000";
        assert!(pids(id).is_empty());
        assert!(kill_all(id, Duration::from_millis(10)));
        remove(id);
    }
}
