//! What a test daemon holds on the host, counted from the outside: its
//! processes, cgroups, mounts, network namespace files, links, firewall
//! rules and files. A test takes a [`Footprint`] when it starts and checks,
//! after removing everything it made, that nothing more is left.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Daemon;

/// Everything of one daemon on the host, each item as a line of text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Footprint(pub BTreeSet<String>);

impl Footprint {
    /// What is in `self` and not in `before`.
    pub fn beyond(&self, before: &Footprint) -> Vec<String> {
        self.0.difference(&before.0).cloned().collect()
    }
}

/// Mount points of the cgroup hierarchies.
fn cgroup_mounts() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let dash = f.iter().position(|x| *x == "-")?;
            matches!(f.get(dash + 1), Some(&"cgroup") | Some(&"cgroup2"))
                .then(|| PathBuf::from(f[4]))
        })
        .collect()
}

fn walk_dirs(d: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk_dirs(&e.path(), out);
                out.push(e.path());
            }
        }
    }
}

/// Cgroup directories under `parent` (not the parent itself), children first.
pub fn cgroup_dirs(parent: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for m in cgroup_mounts() {
        walk_dirs(&m.join(parent.trim_start_matches('/')), &mut out);
    }
    out
}

/// Processes in any cgroup under `parent`.
pub fn cgroup_procs(parent: &str) -> Vec<i32> {
    let mut dirs = cgroup_dirs(parent);
    for m in cgroup_mounts() {
        dirs.push(m.join(parent.trim_start_matches('/')));
    }
    let mut pids: Vec<i32> = dirs
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|s| {
            s.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<_>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Kills what runs under `parent` and removes its cgroups, the parent too.
pub fn remove_cgroups(parent: &str) {
    for _ in 0..100 {
        if cgroup_procs(parent).is_empty() {
            break;
        }
        // A frozen (paused) task dies only once thawed.
        for m in cgroup_mounts() {
            let d = m.join(parent.trim_start_matches('/'));
            for sub in std::iter::once(d.clone()).chain(cgroup_dirs(parent)) {
                let _ = std::fs::write(sub.join("freezer.state"), "THAWED");
                let _ = std::fs::write(sub.join("cgroup.freeze"), "0");
            }
        }
        for p in cgroup_procs(parent) {
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for d in cgroup_dirs(parent) {
        let _ = std::fs::remove_dir(d);
    }
    for m in cgroup_mounts() {
        let _ = std::fs::remove_dir(m.join(parent.trim_start_matches('/')));
    }
}

fn files_under(root: &Path, skip: &[&str]) -> Vec<String> {
    fn walk(base: &Path, d: &Path, skip: &[&str], out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap_or(&p).display().to_string();
            if skip.iter().any(|s| rel == *s) {
                continue;
            }
            // Directories count too: an empty one left behind is a leak.
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.push(format!("{rel}/"));
                walk(base, &p, skip, out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, skip, &mut out);
    out
}

fn json_of(cmd: &mut Command) -> serde_json::Value {
    cmd.output()
        .ok()
        .and_then(|o| serde_json::from_slice(&o.stdout).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// Counts what the daemon holds on the host now.
pub fn footprint(d: &Daemon) -> Footprint {
    let mut f = BTreeSet::new();
    let roots = [
        d.exec_root.display().to_string(),
        d.data_root.display().to_string(),
    ];
    let me = d.pid().map(|p| p as i32);
    // Processes started with our roots on their command line (shims).
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if Some(pid) == me {
                continue;
            }
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if roots.iter().any(|r| cmd.contains(r.as_str())) {
                f.insert(format!("process {pid}: {}", cmd.trim()));
            }
        }
    }
    let parent = d.cgroup_parent();
    for p in cgroup_procs(&parent) {
        f.insert(format!("process {p} in cgroup {parent}"));
    }
    for c in cgroup_dirs(&parent) {
        f.insert(format!("cgroup {}", c.display()));
    }
    let root = d.dir.path().display().to_string();
    for l in std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
    {
        if let Some(mp) = l.split(' ').nth(4) {
            if mp.starts_with(&root) {
                f.insert(format!("mount {mp}"));
            }
        }
    }
    for n in files_under(&d.exec_root.join("netns"), &[]) {
        f.insert(format!("netns file {n}"));
    }
    // Links on the daemon's bridges, and its bridges.
    let mut bridges = d.owned_bridges();
    bridges.push(d.bridge.clone());
    bridges.sort();
    bridges.dedup();
    for b in &bridges {
        if b != &d.bridge {
            f.insert(format!("bridge {b}"));
        }
        let links = json_of(Command::new("ip").args(["-j", "link", "show", "master", b]));
        for l in links.as_array().into_iter().flatten() {
            f.insert(format!(
                "link {} on {b}",
                l["ifname"].as_str().unwrap_or("?")
            ));
        }
    }
    // Firewall rules in the daemon's own table.
    for family in ["ip", "ip6"] {
        let t =
            json_of(Command::new("nft").args(["-j", "list", "table", family, &d.firewall_table]));
        for item in t["nftables"].as_array().into_iter().flatten() {
            if let Some(r) = item.get("rule") {
                f.insert(format!("nft {family} rule {}", r["expr"]));
            }
            if let Some(e) = item.get("set").and_then(|s| s.get("elem")) {
                f.insert(format!("nft {family} set elements {e}"));
            }
        }
    }
    // Files, but the store (its size changes) and the trash (emptied in
    // the background; waited for by the caller).
    for rel in files_under(&d.data_root, &["store.redb"]) {
        f.insert(format!("file data-root/{rel}"));
    }
    for rel in files_under(&d.exec_root, &["berthd.pid"]) {
        f.insert(format!("file exec-root/{rel}"));
    }
    Footprint(f)
}

/// Whether `p` is a mount point of this process's mount namespace.
pub fn is_mountpoint(p: &Path) -> bool {
    let target = p.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(target.as_str()))
}

/// How many entries a directory holds (0 when it cannot be read).
pub fn count_entries(p: &Path) -> usize {
    std::fs::read_dir(p).map(|d| d.count()).unwrap_or(0)
}

/// The resident set size of the daemon's process, in KiB.
pub fn rss_kib(d: &Daemon) -> u64 {
    let pid = d.pid().expect("daemon pid");
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("proc status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}
