//! The cgroup mounts of the shim's mount namespace. The mount table lists
//! every running container's root and network namespace after the cgroup
//! hierarchies (mounted at boot), so it is read only until each hierarchy
//! the shim is in (`/proc/self/cgroup`) has been seen: reading all of it on
//! every container's exit made removals cost more the more containers run.

use std::io::{BufRead, BufReader};

/// One `cgroup` or `cgroup2` line of `/proc/self/mountinfo`.
pub struct CgroupMount {
    /// The mount's root within its hierarchy (`/` unless a bind mount).
    pub root: String,
    pub mount_point: String,
    /// `cgroup` (v1) or `cgroup2`.
    pub fstype: String,
    /// Comma-separated (the v1 controllers, `name=…`).
    pub super_options: String,
}

/// The cgroup mounts, in mount table order, up to the first mount of each
/// hierarchy this process is in; later mounts of the same hierarchies are
/// left out. Without a readable `/proc/self/cgroup`, all of them.
pub fn read() -> std::io::Result<Vec<CgroupMount>> {
    let mut pending = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|s| Pending::parse(&s));
    let file = std::fs::File::open("/proc/self/mountinfo")?;
    let mut out = Vec::new();
    for line in BufReader::new(file).lines() {
        let Some(m) = parse(&line?) else {
            continue;
        };
        if let Some(p) = pending.as_mut() {
            p.seen(&m);
        }
        out.push(m);
        if pending.as_ref().is_some_and(Pending::done) {
            break;
        }
    }
    Ok(out)
}

/// The hierarchies not seen mounted yet.
struct Pending {
    /// Controller lists of the v1 hierarchies.
    v1: Vec<Vec<String>>,
    v2: bool,
}

impl Pending {
    /// From `/proc/self/cgroup` (`id:controllers:path` lines); `None` when
    /// a line is not understood.
    fn parse(cgroup: &str) -> Option<Pending> {
        let mut p = Pending {
            v1: Vec::new(),
            v2: false,
        };
        for line in cgroup.lines().filter(|l| !l.is_empty()) {
            let mut f = line.splitn(3, ':');
            let (id, ctrls) = (f.next()?, f.next()?);
            f.next()?;
            if id == "0" {
                p.v2 = true;
            } else if ctrls.is_empty() {
                return None;
            } else {
                p.v1.push(ctrls.split(',').map(String::from).collect());
            }
        }
        Some(p)
    }

    fn seen(&mut self, m: &CgroupMount) {
        if m.fstype == "cgroup2" {
            self.v2 = false;
        } else {
            let opts: Vec<&str> = m.super_options.split(',').collect();
            self.v1
                .retain(|h| !h.iter().all(|c| opts.contains(&c.as_str())));
        }
    }

    fn done(&self) -> bool {
        self.v1.is_empty() && !self.v2
    }
}

/// A mountinfo line if it is a cgroup mount:
/// `id parent major:minor root mountpoint opts [optional...] - fstype source superopts`.
fn parse(line: &str) -> Option<CgroupMount> {
    let (pre, post) = line.split_once(" - ")?;
    let mut post = post.split(' ');
    let fstype = post.next()?;
    if fstype != "cgroup" && fstype != "cgroup2" {
        return None;
    }
    let _source = post.next();
    let super_options = post.next().unwrap_or("").to_string();
    let mut pre = pre.split(' ');
    let root = pre.nth(3)?.to_string();
    let mount_point = pre.next()?.to_string();
    Some(CgroupMount {
        root,
        mount_point,
        fstype: fstype.to_string(),
        super_options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CGROUP: &str = "2:cpu,cpuacct:/\n1:name=systemd:/x\n0::/\n";

    fn mount(line: &str) -> CgroupMount {
        parse(line).expect("a cgroup line")
    }

    #[test]
    fn parses_cgroup_lines_only() {
        let m = mount("32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct");
        assert_eq!(m.root, "/");
        assert_eq!(m.mount_point, "/sys/fs/cgroup/cpu,cpuacct");
        assert_eq!(m.fstype, "cgroup");
        assert_eq!(m.super_options, "rw,cpu,cpuacct");
        assert!(parse("50 23 0:45 / /run/x rw - overlay overlay rw,lowerdir=a").is_none());
    }

    #[test]
    fn done_once_every_hierarchy_is_seen() {
        let mut p = Pending::parse(CGROUP).expect("parsed");
        p.seen(&mount("32 31 0:29 / /a rw - cgroup cgroup rw,cpu"));
        assert!(!p.done(), "cpu alone is not the cpu,cpuacct hierarchy");
        p.seen(&mount("33 31 0:30 / /b rw - cgroup cgroup rw,cpu,cpuacct"));
        p.seen(&mount("34 31 0:31 / /c rw - cgroup cgroup rw,name=systemd"));
        assert!(!p.done(), "the unified hierarchy is still to come");
        p.seen(&mount("35 31 0:32 / /d rw - cgroup2 cgroup2 rw"));
        assert!(p.done());
    }

    #[test]
    fn unknown_lines_mean_a_full_read() {
        assert!(Pending::parse("3::/x\n").is_none());
        assert!(Pending::parse("garbage\n").is_none());
    }

    #[test]
    fn reads_every_hierarchy_of_this_host() {
        // The early stop must still find each hierarchy the full table has.
        let mounts = read().expect("mountinfo");
        let all = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let all: Vec<CgroupMount> = all.lines().filter_map(parse).collect();
        assert!(!all.is_empty(), "this host mounts cgroups");
        for m in &all {
            assert!(
                mounts
                    .iter()
                    .any(|k| k.fstype == m.fstype && k.super_options == m.super_options),
                "{} ({}) missing",
                m.mount_point,
                m.super_options
            );
        }
    }
}
