//! Start-up reconciliation: what a daemon that died (or was killed at any
//! instant) left on the host, measured against what its store says.
//!
//! Containerd reconciles its task list with its metadata at start; berth
//! does the same with its shims. The store is the truth about which
//! containers exist and which were *acknowledged* as started; the host is
//! surveyed for everything a container can hold: shim processes, container
//! processes (through their cgroups), runtime state, sockets, bundles,
//! network namespace files and mounts. Then each container ID gets one
//! verdict (see [`plan`]):
//!
//! - recorded running, shim alive: adopted;
//! - recorded running, shim gone: its exit is recorded, the rest released;
//! - recorded but not running, yet a shim runs it: a start that was in
//!   flight at the crash and never acknowledged — stopped, everything
//!   released, the record kept as it was (`Created` or `Exited`);
//! - no record at all: stopped and every trace removed;
//! - not running and nothing running: host state left behind is released.
//!
//! Every step is a kill or a removal, so a daemon killed during its own
//! reconciliation simply does it again at the next start.
//!
//! `berthd --check` runs the same survey and plan, prints them and changes
//! nothing ([`check`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::cgroups;
use super::containers::release::{is_id, release, shim_of};
use super::containers::{Containers, Record};
use super::mountinfo::unescape;
use super::store::{Store, Table};
use crate::config::DaemonConfig;

/// What the host holds for the containers of one daemon (keyed by ID).
#[derive(Debug, Default)]
pub struct Host {
    /// Live `berth-shim run <exec-root>/containers/<id>` processes.
    pub shims: BTreeMap<String, Vec<i32>>,
    pub bundles: BTreeSet<String>,
    pub runtime: BTreeSet<String>,
    pub sockets: BTreeSet<String>,
    pub netns: BTreeSet<String>,
    /// Container directories under the data root.
    pub dirs: BTreeSet<String>,
    /// Mount points under a container directory.
    pub mounts: BTreeMap<String, Vec<PathBuf>>,
    /// IDs with a cgroup under the daemon's cgroup parent.
    pub cgroups: BTreeSet<String>,
}

/// What the store says of one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    /// Recorded as running (or paused, or restarting).
    pub running: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Recorded running with a live shim: reattached.
    Adopt,
    /// Recorded running, but no shim: its exit is recorded.
    RecordExit,
    /// A shim runs a container whose start was never acknowledged.
    StopUnacknowledged,
    /// Nothing in the store: stopped and removed entirely.
    RemoveOrphan,
    /// Not running; these leftovers are released.
    Release(Vec<&'static str>),
}

impl Verdict {
    fn describe(&self) -> String {
        match self {
            Verdict::Adopt => "running: would be reattached".into(),
            Verdict::RecordExit => {
                "recorded running but its shim is gone: its exit would be recorded".into()
            }
            Verdict::StopUnacknowledged => "a shim runs a start that was never acknowledged: \
                 it would be stopped and released, the record kept"
                .into(),
            Verdict::RemoveOrphan => {
                "no record: its processes would be stopped and every trace removed".into()
            }
            Verdict::Release(what) => {
                format!("left behind: {} (would be released)", what.join(", "))
            }
        }
    }
}

fn list_names(dir: &Path, suffix: &str) -> BTreeSet<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_suffix(suffix).map(str::to_string)
        })
        .filter(|n| is_id(n))
        .collect()
}

/// Surveys the host for the containers of the daemon with these roots.
pub fn survey(data_root: &Path, exec_root: &Path) -> Host {
    let bundles_dir = exec_root.join("containers");
    let mut h = Host {
        bundles: list_names(&bundles_dir, ""),
        runtime: list_names(&exec_root.join("runtime"), ""),
        sockets: list_names(&exec_root.join("s"), ".sock"),
        netns: list_names(&exec_root.join("netns"), ""),
        dirs: list_names(&data_root.join("containers"), ""),
        ..Host::default()
    };
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if let Some(id) = shim_of(pid, &bundles_dir) {
                h.shims.entry(id).or_default().push(pid);
            }
        }
    }
    let cdir = data_root.join("containers");
    if let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") {
        for line in info.lines() {
            let Some(mp) = line.split(' ').nth(4) else {
                continue;
            };
            let mp = PathBuf::from(unescape(mp));
            if let Ok(rest) = mp.strip_prefix(&cdir) {
                if let Some(id) = rest.iter().next().and_then(|c| c.to_str()) {
                    if is_id(id) {
                        h.mounts.entry(id.to_string()).or_default().push(mp.clone());
                    }
                }
            }
        }
    }
    // The parent may be shared with another daemon: only the cgroups of
    // containers this daemon knows of are its own.
    h.cgroups = cgroups::children();
    h
}

/// One verdict per container ID found in the store or on the host.
pub fn plan(known: &BTreeMap<String, Known>, host: &Host) -> BTreeMap<String, Verdict> {
    let mut ids: BTreeSet<&String> = known.keys().collect();
    for set in [
        &host.bundles,
        &host.runtime,
        &host.sockets,
        &host.netns,
        &host.dirs,
    ] {
        ids.extend(set.iter());
    }
    ids.extend(host.shims.keys());
    ids.extend(host.mounts.keys());
    let mut out = BTreeMap::new();
    for id in ids {
        let shim = host.shims.contains_key(id);
        let v = match known.get(id) {
            Some(k) if k.running => {
                if shim {
                    Verdict::Adopt
                } else {
                    Verdict::RecordExit
                }
            }
            Some(_) if shim => Verdict::StopUnacknowledged,
            None => Verdict::RemoveOrphan,
            Some(_) => {
                let mut what = Vec::new();
                let has = |s: &BTreeSet<String>| s.contains(id);
                if has(&host.cgroups) {
                    what.push("cgroup");
                }
                if has(&host.runtime) {
                    what.push("runtime state");
                }
                if has(&host.sockets) {
                    what.push("shim socket");
                }
                if has(&host.bundles) {
                    what.push("bundle");
                }
                if has(&host.netns) {
                    what.push("network namespace");
                }
                if host.mounts.contains_key(id) {
                    what.push("mounts");
                }
                if what.is_empty() {
                    continue;
                }
                Verdict::Release(what)
            }
        };
        out.insert(id.clone(), v);
    }
    out
}

/// What the store says of each container.
pub fn known_of(records: &[Record]) -> BTreeMap<String, Known> {
    records
        .iter()
        .map(|r| {
            (
                r.id.clone(),
                Known {
                    running: r.state.status.is_running(),
                },
            )
        })
        .collect()
}

/// What a start found and did (logged; `--check` prints the same plan).
#[derive(Debug, Default)]
pub struct Outcome {
    pub adopted: usize,
    pub exits_recorded: usize,
    pub stopped_unacknowledged: usize,
    pub orphans_removed: usize,
    pub released: usize,
}

impl Containers {
    /// Reconciles the host with the store before the daemon serves (see
    /// the module's comment). Adoption itself, and recording the exits of
    /// containers whose shim is gone, is `restore_running`'s.
    pub async fn reconcile(self: &Arc<Self>) -> Outcome {
        let records: Vec<Record> = self.all().iter().map(|c| c.snapshot()).collect();
        let known = known_of(&records);
        let (data_root, exec_root) = (self.config.data_root.clone(), self.config.exec_root.clone());
        let host = tokio::task::spawn_blocking(move || survey(&data_root, &exec_root))
            .await
            .unwrap_or_default();
        let verdicts = plan(&known, &host);
        let mut out = Outcome::default();
        let mut jobs = Vec::new();
        for (id, v) in verdicts {
            let whole = match &v {
                Verdict::Adopt => {
                    out.adopted += 1;
                    continue;
                }
                Verdict::RecordExit => {
                    out.exits_recorded += 1;
                    continue;
                }
                Verdict::StopUnacknowledged => {
                    out.stopped_unacknowledged += 1;
                    false
                }
                Verdict::RemoveOrphan => {
                    out.orphans_removed += 1;
                    true
                }
                Verdict::Release(_) => {
                    out.released += 1;
                    false
                }
            };
            tracing::info!(id = %id, verdict = ?v, "reconciling");
            let shims = host.shims.get(&id).cloned().unwrap_or_default();
            let cfg = self.config.clone();
            jobs.push(tokio::task::spawn_blocking(move || {
                release(&cfg, &id, &shims, whole);
                id
            }));
        }
        for j in jobs {
            let Ok(id) = j.await else { continue };
            // A container whose start was cut short keeps its record with
            // nothing of the start: no endpoints' addresses, no ports.
            if let Ok(c) = self.find(&id) {
                let p = self.paths(&id);
                self.teardown(&c, &p);
                let _ = self.persist(&c);
            }
        }
        out
    }
}

/// `berthd --check`: prints what a start would reconcile, changes nothing.
/// Returns how many findings there are.
pub fn check(cfg: &DaemonConfig, out: &mut impl std::io::Write) -> anyhow::Result<usize> {
    let db = cfg.data_root.join("store.redb");
    if !db.exists() {
        writeln!(
            out,
            "no store under {}: nothing to reconcile",
            cfg.data_root.display()
        )?;
        return Ok(0);
    }
    if pidfile_locked(&cfg.pidfile) {
        anyhow::bail!(
            "a daemon is running on these roots (its pid file {} is locked): \
             --check reads the state of a stopped daemon",
            cfg.pidfile.display()
        );
    }
    // Opening a store that a killed daemon left repairs it in place: the
    // check reads a copy, so that it changes nothing.
    let copy = ScratchDir::new()?;
    std::fs::copy(&db, copy.0.join("store.redb"))?;
    let store = Store::open(&copy.0)?;
    cgroups::set_driver(
        cgroups::choose(cfg.rootless),
        &cgroups::runtime_roots(&cfg.exec_root),
    );
    cgroups::set_parent(&cfg.cgroup_parent);
    let records: Vec<Record> = store
        .load_all::<Record>(Table::Containers)?
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    let known = known_of(&records);
    let host = survey(&cfg.data_root, &cfg.exec_root);
    let verdicts = plan(&known, &host);
    writeln!(
        out,
        "data root {}, exec root {}: {} containers in the store, {} shims running",
        cfg.data_root.display(),
        cfg.exec_root.display(),
        records.len(),
        host.shims.values().map(Vec::len).sum::<usize>()
    )?;
    let mut findings = 0;
    for (id, v) in &verdicts {
        let pids = host
            .shims
            .get(id)
            .map(|p| format!(" (shim pid {p:?})"))
            .unwrap_or_default();
        writeln!(out, "container {}: {}{pids}", &id[..12], v.describe())?;
        if *v != Verdict::Adopt {
            findings += 1;
        }
    }
    for (what, n) in super::images::layers::leftovers(&cfg.data_root, &store)? {
        writeln!(out, "{what} (would be removed)")?;
        findings += n;
    }
    // Volume directories without a record (a create or rm cut short).
    let volumes: BTreeSet<String> = store
        .load_all::<serde_json::Value>(Table::Volumes)?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    if let Ok(rd) = std::fs::read_dir(cfg.data_root.join("volumes")) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().is_ok_and(|t| t.is_dir()) && !volumes.contains(&name) {
                writeln!(out, "volume directory {name}: no record (would be removed)")?;
                findings += 1;
            }
        }
    }
    let scratch = std::fs::read_dir(cfg.data_root.join("tmp"))
        .map(|rd| rd.count())
        .unwrap_or(0);
    if scratch > 0 {
        writeln!(
            out,
            "{scratch} entries in {} (would be deleted)",
            cfg.data_root.join("tmp").display()
        )?;
        findings += scratch;
    }
    for root in [&cfg.data_root, &cfg.exec_root] {
        let n = std::fs::read_dir(super::trash::dir(root))
            .map(|rd| rd.count())
            .unwrap_or(0);
        if n > 0 {
            writeln!(
                out,
                "{} entries in {} (would be deleted)",
                n,
                super::trash::dir(root).display()
            )?;
            findings += n;
        }
    }
    if findings == 0 {
        writeln!(out, "nothing to reconcile")?;
    } else {
        writeln!(out, "{findings} findings; nothing was changed")?;
    }
    Ok(findings)
}

/// Whether a live daemon holds the pid file's lock.
fn pidfile_locked(path: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    // SAFETY: flock on a descriptor we own; the lock (if taken) is released
    // when `f` is closed just below.
    let taken = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0;
    !taken
}

/// A private directory under the system temp dir, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> std::io::Result<Self> {
        let d = std::env::temp_dir().join(format!("berthd-check-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d)?;
        Ok(Self(d))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> String {
        format!("{:064x}", n)
    }

    #[test]
    fn each_id_gets_one_verdict() {
        let mut known = BTreeMap::new();
        known.insert(id(1), Known { running: true });
        known.insert(id(2), Known { running: true });
        known.insert(id(3), Known { running: false });
        known.insert(id(4), Known { running: false });
        known.insert(id(5), Known { running: false });
        let mut host = Host::default();
        host.shims.insert(id(1), vec![10]);
        host.shims.insert(id(3), vec![30]);
        host.shims.insert(id(6), vec![60]);
        host.cgroups.insert(id(4));
        host.runtime.insert(id(4));
        host.mounts.insert(id(4), vec![PathBuf::from("/x")]);
        host.dirs.insert(id(7));
        host.dirs.insert(id(5));
        let v = plan(&known, &host);
        assert_eq!(v[&id(1)], Verdict::Adopt);
        assert_eq!(v[&id(2)], Verdict::RecordExit);
        assert_eq!(v[&id(3)], Verdict::StopUnacknowledged);
        assert_eq!(
            v[&id(4)],
            Verdict::Release(vec!["cgroup", "runtime state", "mounts"])
        );
        // A stopped container with only its directory is as it should be.
        assert!(!v.contains_key(&id(5)));
        assert_eq!(v[&id(6)], Verdict::RemoveOrphan);
        assert_eq!(v[&id(7)], Verdict::RemoveOrphan);
    }

    #[test]
    fn a_cgroup_of_an_unknown_id_is_not_ours() {
        // The parent may be shared: a cgroup alone claims nothing.
        let mut host = Host::default();
        host.cgroups.insert(id(9));
        assert!(plan(&BTreeMap::new(), &host).is_empty());
    }

    #[test]
    fn only_ids_are_listed() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join(id(1))).unwrap();
        std::fs::create_dir(d.path().join("not-an-id")).unwrap();
        std::fs::write(d.path().join(format!("{}.sock", id(2))), "").unwrap();
        assert_eq!(list_names(d.path(), ""), [id(1)].into_iter().collect());
        assert_eq!(list_names(d.path(), ".sock"), [id(2)].into_iter().collect());
    }
}
