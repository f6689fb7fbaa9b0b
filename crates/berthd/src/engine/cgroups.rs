//! The containers' cgroups, as the daemon sees them: where they are, which
//! processes they hold, freezing, and removing what a dead shim left.
//!
//! Every container's cgroup is `<parent>/<id>` in each mounted hierarchy
//! (cgroup v1 controllers and the v2 tree). The parent is a daemon setting
//! (`--cgroup-parent`, `/berth` by default), set once at start: it is the
//! same for every container of a daemon and never changes while it runs.
//!
//! The driver is chosen once at engine open (`choose`, `set_driver`), as
//! dockerd's `cgroupDriver()`: `cgroupfs` for a rootful daemon; for a
//! rootless one, `none` unless the user's own cgroup v2 subtree is
//! delegated (`V2Delegated`, a detection only: it then behaves as
//! `cgroupfs` under the user's cgroup). Under `none` a container has no
//! cgroup: its processes are found in `/proc` (`proc_pids`), it cannot be
//! frozen, and resource limits are refused (`refuse_limits`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{EngineError, Result};

static PARENT: OnceLock<String> = OnceLock::new();
static DRIVER: OnceLock<Driver> = OnceLock::new();
static RUNTIME_ROOTS: OnceLock<Vec<PathBuf>> = OnceLock::new();

/// How containers get cgroups (`docker info`'s `CgroupDriver`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// berth writes the cgroup tree itself (v1 controllers or v2).
    Cgroupfs,
    /// Rootless with a delegated cgroup v2 subtree (the user's own cgroup
    /// has controllers and a writable `cgroup.subtree_control`): as
    /// `Cgroupfs`, under that cgroup. Detected only; no host of ours has
    /// one (no systemd, hybrid v1), so it is untested end to end.
    V2Delegated,
    /// Rootless without cgroups: no limits, no freezer, processes from
    /// `/proc`.
    None,
}

impl Driver {
    /// The name `docker info` shows.
    pub fn name(self) -> &'static str {
        match self {
            Driver::Cgroupfs | Driver::V2Delegated => "cgroupfs",
            Driver::None => "none",
        }
    }
}

/// The driver a daemon gets: dockerd's rule (rootless means `none`), with
/// a delegated v2 subtree as the one way for a rootless daemon to have
/// cgroups without systemd.
pub fn choose(rootless: bool) -> Driver {
    if !rootless {
        return Driver::Cgroupfs;
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    if delegated_v2(Path::new(V2_ROOTS[0]), &own) {
        Driver::V2Delegated
    } else {
        Driver::None
    }
}

/// The cgroup a pure v2 host puts this process in (`0::/path`), when it is
/// the only hierarchy; `None` on a v1 or hybrid host.
fn own_v2_cgroup(self_cgroup: &str) -> Option<&str> {
    let mut lines = self_cgroup.lines().filter(|l| !l.trim().is_empty());
    let only = lines.next()?;
    if lines.next().is_some() {
        return None;
    }
    only.strip_prefix("0::")
}

/// Whether `root` is a cgroup2 tree in which this process's own cgroup
/// (from `/proc/self/cgroup`'s text) offers controllers that it may hand
/// down (a writable `cgroup.subtree_control`).
fn delegated_v2(root: &Path, self_cgroup: &str) -> bool {
    let Some(own) = own_v2_cgroup(self_cgroup) else {
        return false;
    };
    let dir = root.join(own.trim_start_matches('/'));
    let controllers = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let useful = controllers
        .split_whitespace()
        .any(|c| matches!(c, "memory" | "pids" | "cpu"));
    useful
        && nix::unistd::access(
            &dir.join("cgroup.subtree_control"),
            nix::unistd::AccessFlags::W_OK,
        )
        .is_ok()
}

/// Whether the host runs cgroup v2 only (`docker info`'s CgroupVersion
/// "2"), from this process's hierarchies rather than what is mounted on
/// `/sys/fs/cgroup`: a rootless daemon's mount namespace may show the
/// hybrid host's v2 tree there.
pub fn host_unified() -> bool {
    own_v2_cgroup(&std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default()).is_some()
}

/// Sets the daemon's driver (first call wins: one daemon per process) and
/// the runtime state roots where, under `none`, a container's init PID is
/// found (`<root>/<id>/state.json`).
pub fn set_driver(d: Driver, runtime_roots: &[PathBuf]) {
    if DRIVER.set(d).is_ok() {
        tracing::info!(
            driver = d.name(),
            delegated = d == Driver::V2Delegated,
            "cgroup driver"
        );
    }
    let _ = RUNTIME_ROOTS.set(runtime_roots.to_vec());
}

/// The daemon's driver (`Cgroupfs` until set).
pub fn driver() -> Driver {
    DRIVER.get().copied().unwrap_or(Driver::Cgroupfs)
}

/// Whether containers get cgroups at all (the runtime spec's
/// `linux.resources` and `cgroupsPath`): not under `none`.
pub fn enabled() -> bool {
    driver() != Driver::None
}

/// Whether containers can be frozen (`pause`, a commit's pause).
pub fn can_freeze() -> bool {
    driver() != Driver::None
}

/// The resource settings a request asks for, by flag (a zero, `-1` or
/// empty value asks for nothing: the docker CLI sends those for flags not
/// given). Under the `none` driver, any of them is refused with the cause
/// named: a limit that cannot be applied must not be dropped silently.
/// (dockerd rootless drops them; berth refuses, see ARCHITECTURE.md.)
pub fn refuse_limits(asked: &[(&str, bool)]) -> Result<()> {
    check_limits(driver(), asked)
}

fn check_limits(d: Driver, asked: &[(&str, bool)]) -> Result<()> {
    if d != Driver::None {
        return Ok(());
    }
    match asked.iter().find(|(_, on)| *on) {
        Some((flag, _)) => Err(EngineError::invalid(limits_message(flag))),
        None => Ok(()),
    }
}

fn limits_message(flag: &str) -> String {
    format!(
        "Resource limits are not supported in rootless mode without cgroups: {flag} \
         (to enable cgroups in rootless mode, boot the system in cgroup v2 mode)"
    )
}

fn nonempty<T>(v: &Option<Vec<T>>) -> bool {
    v.as_ref().is_some_and(|v| !v.is_empty())
}

/// The limits a `HostConfig` or an update body asks for, by docker flag
/// (the same field names in both: Docker's `Resources`).
macro_rules! asked_limits {
    ($r:expr) => {{
        let r = $r;
        let pos = |v: Option<i64>| v.is_some_and(|v| v > 0);
        let text = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.is_empty());
        [
            ("--memory", pos(r.memory)),
            ("--memory-swap", pos(r.memory_swap)),
            ("--memory-reservation", pos(r.memory_reservation)),
            ("--kernel-memory-tcp", pos(r.kernel_memory_tcp)),
            (
                "--memory-swappiness",
                r.memory_swappiness.is_some_and(|v| v >= 0),
            ),
            ("--oom-kill-disable", r.oom_kill_disable == Some(true)),
            ("--cpus", pos(r.nano_cpus)),
            ("--cpu-shares", pos(r.cpu_shares)),
            ("--cpu-quota", pos(r.cpu_quota)),
            ("--cpu-period", pos(r.cpu_period)),
            ("--cpu-rt-period", pos(r.cpu_realtime_period)),
            ("--cpu-rt-runtime", pos(r.cpu_realtime_runtime)),
            ("--cpuset-cpus", text(&r.cpuset_cpus)),
            ("--cpuset-mems", text(&r.cpuset_mems)),
            ("--pids-limit", pos(r.pids_limit)),
            ("--blkio-weight", r.blkio_weight.is_some_and(|w| w > 0)),
            ("--blkio-weight-device", nonempty(&r.blkio_weight_device)),
            ("--device-read-bps", nonempty(&r.blkio_device_read_bps)),
            ("--device-write-bps", nonempty(&r.blkio_device_write_bps)),
            ("--device-read-iops", nonempty(&r.blkio_device_read_iops)),
            ("--device-write-iops", nonempty(&r.blkio_device_write_iops)),
            ("--device-cgroup-rule", nonempty(&r.device_cgroup_rules)),
            ("--cgroup-parent", text(&r.cgroup_parent)),
        ]
    }};
}

/// `refuse_limits` for a create's host config.
pub fn refuse_host_config(hc: &berth_api::models::HostConfig) -> Result<()> {
    refuse_limits(&asked_limits!(hc))
}

/// `refuse_limits` for `docker update`.
pub fn refuse_update(u: &berth_api::models::ContainerUpdateBody) -> Result<()> {
    refuse_limits(&asked_limits!(u))
}

/// The default parent, as dockerd's is `/docker`.
pub const DEFAULT_PARENT: &str = "/berth";

/// Sets the daemon's cgroup parent (first call wins: one daemon per process).
/// With a delegated v2 subtree it lies under the daemon's own cgroup, the
/// only place it may write.
pub fn set_parent(parent: &str) {
    let p = format!("/{}", parent.trim_matches('/'));
    let p = if p == "/" { DEFAULT_PARENT.into() } else { p };
    let p = match driver() {
        Driver::V2Delegated => {
            let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
            let own = own_v2_cgroup(&own).unwrap_or("/").trim_end_matches('/');
            if p.starts_with(&format!("{own}/")) {
                p
            } else {
                format!("{own}{p}")
            }
        }
        _ => p,
    };
    let _ = PARENT.set(p);
}

/// Where libcontainer keeps runtime state under an exec root: containers'
/// (`runtime`) and managed plugins' (`plugin-runtime`).
pub fn runtime_roots(exec_root: &Path) -> Vec<PathBuf> {
    vec![exec_root.join("runtime"), exec_root.join("plugin-runtime")]
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

/// Mount points of the cgroup hierarchies (v1 controllers and v2), read
/// once per process as runc does: the mount table lists every container's
/// root and network namespace, so reading it on each removal made removing
/// N containers cost O(N²).
pub fn mounts() -> Vec<PathBuf> {
    static MOUNTS: std::sync::OnceLock<Vec<PathBuf>> = std::sync::OnceLock::new();
    if let Some(m) = MOUNTS.get() {
        return m.clone();
    }
    let found = read_mounts();
    if !found.is_empty() {
        let _ = MOUNTS.set(found.clone());
    }
    found
}

fn read_mounts() -> Vec<PathBuf> {
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

/// The container's cgroup directory in every hierarchy where it exists
/// (none under the `none` driver).
pub fn dirs(id: &str) -> Vec<PathBuf> {
    if driver() == Driver::None {
        return Vec::new();
    }
    let rel = path(id);
    mounts()
        .into_iter()
        .map(|m| m.join(rel.trim_start_matches('/')))
        .filter(|d| d.is_dir())
        .collect()
}

/// IDs with a cgroup under the parent, in any hierarchy.
pub fn children() -> std::collections::BTreeSet<String> {
    if driver() == Driver::None {
        // Reconciliation finds those containers by their runtime state.
        return Default::default();
    }
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

/// PIDs in the container's cgroup (host view), from every hierarchy;
/// under `none`, its processes found in `/proc` (see `proc_pids`).
pub fn pids(id: &str) -> Vec<i64> {
    if driver() == Driver::None {
        return init_pid(id)
            .map(|p| proc_pids(Path::new("/proc"), p, &other_inits(id)))
            .unwrap_or_default();
    }
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

/// Whether the container still has something here: a cgroup directory,
/// or, under `none`, a live process.
pub fn exists(id: &str) -> bool {
    match driver() {
        Driver::None => !pids(id).is_empty(),
        _ => !dirs(id).is_empty(),
    }
}

/// Kills every process in the container's cgroup and waits (bounded) until
/// none is left. A frozen (paused) cgroup is thawed first, or the kill
/// would wait for the thaw. Returns whether the cgroup is empty. Under
/// `none`, the processes found in `/proc` (`kill_procs`).
pub fn kill_all(id: &str, limit: Duration) -> bool {
    if driver() == Driver::None {
        return match init_pid(id) {
            Some(init) => kill_procs(Path::new("/proc"), init, &other_inits(id), limit),
            None => true,
        };
    }
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
    if driver() == Driver::None {
        return false;
    }
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
/// Under `none` it fails as dockerd does without a freezer (runc's
/// message inside moby's).
pub fn freeze(id: &str, on: bool) -> Result<()> {
    if driver() == Driver::None {
        return Err(EngineError::internal(no_freezer(id, on)));
    }
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

/// dockerd's `pause`/`unpause` failure when the runtime has no cgroups.
fn no_freezer(id: &str, on: bool) -> String {
    let why = "cannot toggle freezer: cgroups not configured for container: unknown";
    if on {
        format!("cannot pause container {id}: OCI runtime pause failed: {why}")
    } else {
        format!("Cannot unpause container {id}: OCI runtime resume failed: {why}")
    }
}

// ---- Processes without cgroups (`none`), from /proc ----

/// The container's init PID from its runtime state (`state.json` of
/// libcontainer, in the container's or a plugin's runtime root), if that
/// process still runs. A PID the kernel handed out again after the init
/// died belongs to a process started after the state was last written:
/// that one is not the init.
fn init_pid(id: &str) -> Option<i32> {
    init_pid_in(RUNTIME_ROOTS.get()?, id)
}

fn init_pid_in(roots: &[PathBuf], id: &str) -> Option<i32> {
    if id.is_empty() || id.contains('/') || id == ".." {
        return None;
    }
    roots.iter().find_map(|root| {
        let f = root.join(id).join("state.json");
        let written = std::fs::metadata(&f).ok()?.modified().ok()?;
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&f).ok()?).ok()?;
        let pid = i32::try_from(v.get("pid")?.as_i64()?).ok()?;
        let started = start_time(Path::new("/proc"), pid)?;
        (started <= written + Duration::from_millis(50)).then_some(pid)
    })
}

/// Clock ticks a second (`/proc/<pid>/stat`'s unit).
fn hz() -> u64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as u64
}

/// The fields of `/proc/<pid>/stat` after the command (`)`), so that
/// field N of proc(5) is `[N - 3]`.
fn stat_fields(proc: &Path, pid: i32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(proc.join(pid.to_string()).join("stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(String::from).collect())
}

/// When a live (not zombie) process started, on the wall clock.
fn start_time(proc: &Path, pid: i32) -> Option<std::time::SystemTime> {
    let f = stat_fields(proc, pid)?;
    if f.first().map(String::as_str) == Some("Z") {
        return None;
    }
    let ticks: u64 = f.get(19)?.parse().ok()?;
    let since_boot = Duration::from_nanos(ticks.saturating_mul(1_000_000_000 / hz()));
    let boot = std::time::SystemTime::now().checked_sub(boot_time()?)?;
    Some(boot + since_boot)
}

/// Time since boot (`/proc/uptime`: the boot-time clock of `starttime`,
/// to the hundredth of a second).
fn boot_time() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/uptime").ok()?;
    let secs: f64 = s.split_whitespace().next()?.parse().ok()?;
    Duration::try_from_secs_f64(secs).ok()
}

/// Whether `pid` is the init of a PID namespace of its own (the last
/// `NSpid` is 1): killing it kills the namespace.
fn is_ns_init(proc: &Path, pid: i32) -> bool {
    let status =
        std::fs::read_to_string(proc.join(pid.to_string()).join("status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .is_some_and(|l| {
            let ids: Vec<&str> = l.split_whitespace().collect();
            ids.len() > 1 && ids.last() == Some(&"1")
        })
}

/// Live PIDs under `proc`, with their parent.
fn processes(proc: &Path) -> Vec<(i32, i32)> {
    let Ok(rd) = std::fs::read_dir(proc) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let f = stat_fields(proc, pid)?;
            if f.first().map(String::as_str) == Some("Z") {
                return None;
            }
            Some((pid, f.get(1)?.parse().ok()?))
        })
        .collect()
}

/// `init` and its descendants among `all` (pid, parent).
fn descendants(all: &[(i32, i32)], init: i32) -> Vec<i32> {
    let mut found = vec![init];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(all.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    found
}

/// The processes of the container whose init is `init`: those in the
/// init's PID namespace when it has one of its own (exec'd processes
/// included), less the trees of `others` (the inits of containers that
/// joined that namespace, `--pid container:`); else (`--pid host`, `--pid
/// container:`) the init and its descendants. Sorted; empty when the init
/// is gone.
pub fn proc_pids(proc: &Path, init: i32, others: &[i32]) -> Vec<i64> {
    let all = processes(proc);
    if !all.iter().any(|(p, _)| *p == init) {
        return Vec::new();
    }
    let mut out: Vec<i64> = if is_ns_init(proc, init) {
        let ns = |p: i32| std::fs::read_link(proc.join(p.to_string()).join("ns/pid")).ok();
        let want = ns(init);
        let theirs: Vec<i32> = others
            .iter()
            .filter(|o| **o != init)
            .flat_map(|o| descendants(&all, *o))
            .collect();
        all.iter()
            .filter(|(p, _)| want.is_some() && !theirs.contains(p) && ns(*p) == want)
            .map(|(p, _)| i64::from(*p))
            .collect()
    } else {
        descendants(&all, init).into_iter().map(i64::from).collect()
    };
    out.sort_unstable();
    out.dedup();
    out
}

/// The live inits of the other containers (and plugins) with runtime
/// state, for `proc_pids`' `others`.
fn other_inits(id: &str) -> Vec<i32> {
    let Some(roots) = RUNTIME_ROOTS.get() else {
        return Vec::new();
    };
    roots
        .iter()
        .filter_map(|r| std::fs::read_dir(r).ok())
        .flat_map(|rd| rd.flatten())
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .filter(|n| n != id)
        .filter_map(|n| init_pid_in(roots, &n))
        .collect()
}

/// Kills the processes of the container whose init is `init` and waits
/// (bounded) until none is left: the init of a PID namespace of its own is
/// enough (the kernel kills the rest); otherwise each process, children
/// first found from the init (one that forks as it dies may leave an
/// orphan behind, which no cgroup holds here). Returns whether all are gone.
pub fn kill_procs(proc: &Path, init: i32, others: &[i32], limit: Duration) -> bool {
    let start = Instant::now();
    let whole_ns = is_ns_init(proc, init);
    let mut tracked: Vec<i64> = Vec::new();
    loop {
        for p in proc_pids(proc, init, others) {
            if !tracked.contains(&p) {
                tracked.push(p);
            }
        }
        tracked.retain(|p| i32::try_from(*p).is_ok_and(|p| start_time(proc, p).is_some()));
        if tracked.is_empty() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        let targets: Vec<i64> = if whole_ns {
            vec![i64::from(init)]
        } else {
            tracked.clone()
        };
        for p in targets {
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

/// Before a SIGKILL of the container's init, under `none` when the init
/// has no PID namespace of its own (`--pid host`, `--pid container:`): its
/// descendants are killed first, or they would outlive it as orphans that
/// no cgroup holds. A no-op otherwise (a cgroup, or the kernel for a PID
/// namespace's init, takes care of them).
pub fn kill_descendants(id: &str) {
    if driver() != Driver::None {
        return;
    }
    let Some(init) = init_pid(id) else {
        return;
    };
    let proc = Path::new("/proc");
    if is_ns_init(proc, init) {
        return;
    }
    for p in proc_pids(proc, init, &[]) {
        if let Ok(p) = i32::try_from(p) {
            if p != init {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// What `/proc` tells of a container's processes (the `none` driver's
/// stats): CPU time in nanoseconds (with that of children they reaped),
/// resident memory in bytes, and how many there are.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProcUsage {
    pub user_ns: u64,
    pub system_ns: u64,
    pub rss: u64,
    pub count: u64,
}

/// `ProcUsage` of the container `id` (zero when it has no process).
pub fn proc_usage(id: &str) -> ProcUsage {
    let proc = Path::new("/proc");
    let tick = 1_000_000_000 / hz();
    let mut u = ProcUsage::default();
    for p in pids(id) {
        let Ok(p) = i32::try_from(p) else { continue };
        let Some(f) = stat_fields(proc, p) else {
            continue;
        };
        let n = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
        // utime 14, stime 15, cutime 16, cstime 17 in proc(5)'s numbering.
        u.user_ns += (n(11) + n(13)) * tick;
        u.system_ns += (n(12) + n(14)) * tick;
        let status =
            std::fs::read_to_string(proc.join(p.to_string()).join("status")).unwrap_or_default();
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
        u.rss += kb * 1024;
        u.count += 1;
    }
    u
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

    #[test]
    fn a_rootful_daemon_uses_cgroupfs() {
        assert_eq!(choose(false), Driver::Cgroupfs);
        assert_eq!(Driver::Cgroupfs.name(), "cgroupfs");
        assert_eq!(Driver::V2Delegated.name(), "cgroupfs");
        assert_eq!(Driver::None.name(), "none");
    }

    #[test]
    fn only_a_pure_v2_host_has_an_own_v2_cgroup() {
        let hybrid = "12:pids:/\n4:memory:/process_api/9ef2\n0::/\n";
        assert_eq!(own_v2_cgroup(hybrid), None);
        assert_eq!(
            own_v2_cgroup("0::/user.slice/user-1000.slice/x.scope\n"),
            Some("/user.slice/user-1000.slice/x.scope")
        );
        assert_eq!(own_v2_cgroup(""), None);
    }

    /// A fake cgroup2 tree: the user's cgroup with `controllers`, and a
    /// `cgroup.subtree_control` of mode `mode`.
    fn fake_tree(controllers: &str, mode: u32) -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let me = t.path().join("user.slice/me");
        std::fs::create_dir_all(&me).unwrap();
        std::fs::write(me.join("cgroup.controllers"), controllers).unwrap();
        let sc = me.join("cgroup.subtree_control");
        std::fs::write(&sc, "").unwrap();
        std::fs::set_permissions(&sc, std::fs::Permissions::from_mode(mode)).unwrap();
        t
    }

    #[test]
    fn a_delegated_v2_subtree_is_detected() {
        let own = "0::/user.slice/me\n";
        let t = fake_tree("cpu memory pids", 0o644);
        assert!(delegated_v2(t.path(), own));
        // This host's shape: hybrid, so no own v2 cgroup at all.
        assert!(!delegated_v2(t.path(), "4:memory:/x\n0::/user.slice/me\n"));
        // Only hugetlb (this host's unified tree): nothing to limit with.
        let t = fake_tree("hugetlb", 0o644);
        assert!(!delegated_v2(t.path(), own));
        // Not ours to write (as root, only when not running as root).
        if !nix::unistd::geteuid().is_root() {
            let t = fake_tree("memory", 0o444);
            assert!(!delegated_v2(t.path(), own));
        }
        // No such cgroup.
        assert!(!delegated_v2(Path::new("/nonexistent"), own));
    }

    #[test]
    fn limits_are_refused_without_cgroups_and_zeros_pass() {
        use berth_api::models::{ContainerUpdateBody, HostConfig, ResourcesBlkioWeightDevice};
        // What the docker CLI sends for flags not given.
        let zeros = HostConfig {
            memory: Some(0),
            memory_swap: Some(0),
            memory_reservation: Some(0),
            memory_swappiness: Some(-1),
            nano_cpus: Some(0),
            cpu_shares: Some(0),
            cpu_quota: Some(0),
            cpu_period: Some(0),
            cpuset_cpus: Some(String::new()),
            cpuset_mems: Some(String::new()),
            pids_limit: Some(0),
            blkio_weight: Some(0),
            blkio_weight_device: Some(vec![]),
            oom_kill_disable: Some(false),
            cgroup_parent: Some(String::new()),
            ..Default::default()
        };
        assert!(check_limits(Driver::None, &asked_limits!(&zeros)).is_ok());
        let unlimited = HostConfig {
            memory_swap: Some(-1),
            pids_limit: Some(-1),
            cpu_quota: Some(-1),
            ..zeros.clone()
        };
        assert!(check_limits(Driver::None, &asked_limits!(&unlimited)).is_ok());
        let memory = HostConfig {
            memory: Some(64 << 20),
            ..zeros.clone()
        };
        assert_eq!(
            check_limits(Driver::None, &asked_limits!(&memory))
                .unwrap_err()
                .to_string(),
            "Resource limits are not supported in rootless mode without cgroups: --memory \
             (to enable cgroups in rootless mode, boot the system in cgroup v2 mode)"
        );
        assert!(check_limits(Driver::Cgroupfs, &asked_limits!(&memory)).is_ok());
        assert!(check_limits(Driver::V2Delegated, &asked_limits!(&memory)).is_ok());
        let refused = |hc: HostConfig| {
            check_limits(Driver::None, &asked_limits!(&hc))
                .unwrap_err()
                .to_string()
        };
        for (flag, hc) in [
            (
                "--pids-limit",
                HostConfig {
                    pids_limit: Some(10),
                    ..zeros.clone()
                },
            ),
            (
                "--cpus",
                HostConfig {
                    nano_cpus: Some(500_000_000),
                    ..zeros.clone()
                },
            ),
            (
                "--cpuset-cpus",
                HostConfig {
                    cpuset_cpus: Some("0".into()),
                    ..zeros.clone()
                },
            ),
            (
                "--oom-kill-disable",
                HostConfig {
                    oom_kill_disable: Some(true),
                    ..zeros.clone()
                },
            ),
            (
                "--blkio-weight-device",
                HostConfig {
                    blkio_weight_device: Some(vec![ResourcesBlkioWeightDevice::default()]),
                    ..zeros.clone()
                },
            ),
        ] {
            assert!(refused(hc).contains(&format!(": {flag} (")), "{flag}");
        }
        // `docker update` the same way.
        let u = ContainerUpdateBody {
            memory: Some(0),
            cpu_shares: Some(512),
            ..Default::default()
        };
        assert!(check_limits(Driver::None, &asked_limits!(&u))
            .unwrap_err()
            .to_string()
            .contains("--cpu-shares"));
        assert!(check_limits(
            Driver::None,
            &asked_limits!(&ContainerUpdateBody::default())
        )
        .is_ok());
    }

    #[test]
    fn without_a_freezer_pause_fails_as_dockerd() {
        assert_eq!(
            no_freezer("abc", true),
            "cannot pause container abc: OCI runtime pause failed: cannot toggle freezer: \
             cgroups not configured for container: unknown"
        );
        assert!(no_freezer("abc", false)
            .starts_with("Cannot unpause container abc: OCI runtime resume failed"));
    }

    /// A process tree the test owns, killed and reaped on drop.
    struct Tree(std::process::Child);

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// The children of `pid`, waited for (bounded) until there are `n`.
    fn children_of(pid: i32, n: usize) -> Vec<i32> {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let kids: Vec<i32> = processes(Path::new("/proc"))
                .into_iter()
                .filter(|(_, pp)| *pp == pid)
                .map(|(p, _)| p)
                .collect();
            if kids.len() >= n || Instant::now() > end {
                return kids;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn gone(pid: i32) -> bool {
        start_time(Path::new("/proc"), pid).is_none()
    }

    #[test]
    fn the_processes_of_a_pid_namespace_are_found_and_killed() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root for a PID namespace");
            return;
        }
        // unshare forks the namespace's init (sh), which runs two sleeps.
        let tree = Tree(
            std::process::Command::new("unshare")
                .args(["--pid", "--fork", "sh", "-c", "sleep 60 & sleep 60 & wait"])
                .spawn()
                .unwrap(),
        );
        let unshare = tree.0.id() as i32;
        let init = *children_of(unshare, 1)
            .first()
            .expect("the namespace's init");
        let sleeps = children_of(init, 2);
        assert_eq!(sleeps.len(), 2, "the init's children: {sleeps:?}");
        let proc = Path::new("/proc");
        assert!(is_ns_init(proc, init));
        let found = proc_pids(proc, init, &[]);
        let mut want: Vec<i64> = std::iter::once(init)
            .chain(sleeps.iter().copied())
            .map(i64::from)
            .collect();
        want.sort_unstable();
        assert_eq!(found, want);
        // The tree of another container's init that joined the namespace
        // is that container's.
        let less = proc_pids(proc, init, &[sleeps[0]]);
        assert!(!less.contains(&i64::from(sleeps[0])) && less.contains(&i64::from(sleeps[1])));
        assert_eq!(less.len(), 2, "{less:?}");
        // Nothing of the host's namespace (this test's own process) is in.
        assert!(!found.contains(&i64::from(std::process::id() as i32)));
        assert!(kill_procs(proc, init, &[], Duration::from_secs(5)));
        for p in std::iter::once(init).chain(sleeps) {
            assert!(gone(p), "{p} survived");
        }
        assert!(proc_pids(proc, init, &[]).is_empty());
    }

    #[test]
    fn without_a_pid_namespace_the_init_and_its_descendants_are_found() {
        // `--pid host`: the init is an ordinary process.
        let tree = Tree(
            std::process::Command::new("sh")
                .args(["-c", "sh -c 'sleep 60 & wait' & sleep 60 & wait"])
                .spawn()
                .unwrap(),
        );
        let init = tree.0.id() as i32;
        let kids = children_of(init, 2);
        assert_eq!(kids.len(), 2);
        let inner = kids
            .iter()
            .copied()
            .find(|k| !children_of(*k, 1).is_empty())
            .expect("the inner sh");
        let grandchild = children_of(inner, 1)[0];
        let proc = Path::new("/proc");
        assert!(!is_ns_init(proc, init));
        let found = proc_pids(proc, init, &[]);
        for p in [init, kids[0], kids[1], grandchild] {
            assert!(found.contains(&i64::from(p)), "{p} not in {found:?}");
        }
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(kill_procs(proc, init, &[], Duration::from_secs(5)));
        // The init is the test's child: a zombie until reaped, which counts as gone.
        for p in [init, kids[0], kids[1], grandchild] {
            assert!(gone(p), "{p} survived");
        }
    }

    #[test]
    fn the_init_comes_from_the_runtime_state_unless_its_pid_was_reused() {
        let t = tempfile::tempdir().unwrap();
        let roots = vec![t.path().join("runtime"), t.path().join("plugin-runtime")];
        let dir = roots[1].join("c1");
        std::fs::create_dir_all(&dir).unwrap();
        // A process started before the state was written: the init.
        let tree = Tree(
            std::process::Command::new("sleep")
                .arg("60")
                .spawn()
                .unwrap(),
        );
        let pid = tree.0.id() as i32;
        std::thread::sleep(Duration::from_millis(100));
        std::fs::write(
            dir.join("state.json"),
            format!(r#"{{"id":"c1","pid":{pid}}}"#),
        )
        .unwrap();
        assert_eq!(init_pid_in(&roots, "c1"), Some(pid));
        assert_eq!(init_pid_in(&roots, "c2"), None);
        assert_eq!(init_pid_in(&roots, "../c1"), None);
        // A process started well after the state was written has the PID
        // by reuse: not the init.
        let older = tempfile::tempdir().unwrap();
        let stale = older.path().join("c3");
        std::fs::create_dir_all(&stale).unwrap();
        let later = Tree(
            std::process::Command::new("sleep")
                .arg("60")
                .spawn()
                .unwrap(),
        );
        std::fs::write(
            stale.join("state.json"),
            format!(r#"{{"id":"c3","pid":{}}}"#, later.0.id()),
        )
        .unwrap();
        let f = std::fs::File::options()
            .write(true)
            .open(stale.join("state.json"))
            .unwrap();
        f.set_modified(std::time::SystemTime::now() - Duration::from_secs(60))
            .unwrap();
        assert_eq!(init_pid_in(&[older.path().to_path_buf()], "c3"), None);
        // A dead init is none.
        drop(tree);
        assert_eq!(init_pid_in(&roots, "c1"), None);
    }
}
