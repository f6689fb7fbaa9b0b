//! Facts about the host that Docker's defaults depend on. Gathered once per
//! process (see `build_spec`); tests substitute their own.

use std::fs;
use std::path::{Path, PathBuf};

/// Kernel "version.major", as moby compares it for seccomp `minKernel`.
pub(crate) type KernelVersion = (u64, u64);

#[derive(Debug, Clone)]
pub(crate) struct HostInfo {
    pub cgroup_v2: bool,
    /// Go-style architecture name used by Docker seccomp profiles ("amd64", "arm64"...).
    pub arch: &'static str,
    /// `None` when the release string cannot be parsed (an error only if a profile asks).
    pub kernel: Option<KernelVersion>,
    /// Highest capability number the kernel supports.
    pub cap_last_cap: u32,
    /// This process's effective capabilities (`None` if unreadable: assume all).
    pub cap_eff: Option<u64>,
    /// `/sys/devices/system/cpu/cpuN/thermal_throttle` paths that exist.
    pub thermal_throttle: Vec<String>,
    /// Whether the default network sysctls exist (moby checks `/proc/sys`).
    pub has_ping_group_range: bool,
    pub has_unprivileged_port_start: bool,
    pub in_userns: bool,
}

impl HostInfo {
    pub fn detect() -> Self {
        HostInfo {
            cgroup_v2: Path::new("/sys/fs/cgroup/cgroup.controllers").exists(),
            arch: go_arch(),
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .and_then(|r| parse_release(&r)),
            cap_last_cap: fs::read_to_string("/proc/sys/kernel/cap_last_cap")
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(40),
            cap_eff: fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| parse_cap_eff(&s)),
            thermal_throttle: thermal_throttle_paths(Path::new("/sys/devices/system/cpu")),
            has_ping_group_range: Path::new("/proc/sys/net/ipv4/ping_group_range").exists(),
            has_unprivileged_port_start: Path::new("/proc/sys/net/ipv4/ip_unprivileged_port_start")
                .exists(),
            in_userns: fs::read_to_string("/proc/self/uid_map")
                .map(|m| !is_identity_map(&m))
                .unwrap_or(false),
        }
    }

    pub fn cap_available(&self, bit: u32) -> bool {
        bit <= self.cap_last_cap && self.cap_eff.is_none_or(|eff| eff & (1u64 << bit) != 0)
    }

    /// A fixed host for unit tests: x86_64, cgroup v2, kernel 6.8, all caps.
    #[cfg(test)]
    pub fn fake() -> Self {
        HostInfo {
            cgroup_v2: true,
            arch: "amd64",
            kernel: Some((6, 8)),
            cap_last_cap: 40,
            cap_eff: None,
            thermal_throttle: vec![],
            has_ping_group_range: true,
            has_unprivileged_port_start: true,
            in_userns: false,
        }
    }
}

/// Maps Rust's target arch to Go's GOARCH-derived name that moby matches
/// against `includes.arches`.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "x86",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "mips64" if cfg!(target_endian = "little") => "mipsel64",
        "mips64" => "mips64",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// "6.8.0-45-generic" → (6, 8), like moby's `parseRelease` ("%d.%d").
pub(crate) fn parse_release(release: &str) -> Option<KernelVersion> {
    let mut parts = release.trim().splitn(3, '.');
    let kernel = leading_number(parts.next()?)?;
    let major = leading_number(parts.next()?)?;
    Some((kernel, major))
}

fn leading_number(s: &str) -> Option<u64> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..end].parse().ok()
}

fn parse_cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

fn is_identity_map(uid_map: &str) -> bool {
    let fields: Vec<&str> = uid_map.split_whitespace().collect();
    fields == ["0", "0", "4294967295"]
}

/// Existing `cpuN/thermal_throttle` dirs for the possible CPUs (moby masks them).
pub(crate) fn thermal_throttle_paths(cpu_dir: &Path) -> Vec<String> {
    let cpus = fs::read_to_string(cpu_dir.join("possible"))
        .ok()
        .map(|s| parse_cpu_list(&s))
        .unwrap_or_default();
    cpus.into_iter()
        .map(|n| cpu_dir.join(format!("cpu{n}/thermal_throttle")))
        .filter(|p| p.exists())
        .map(|p: PathBuf| {
            // Report the in-container path even when probing a test directory.
            let rel = p.strip_prefix(cpu_dir).unwrap_or(&p).to_path_buf();
            format!("/sys/devices/system/cpu/{}", rel.display())
        })
        .collect()
}

/// "0-3,8,10-11" → [0,1,2,3,8,10,11]
fn parse_cpu_list(s: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.trim().parse::<u32>(), b.trim().parse::<u32>()) {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(n) = part.trim().parse() {
                    out.push(n);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases() {
        assert_eq!(parse_release("6.18.44-fc-v595\n"), Some((6, 18)));
        assert_eq!(parse_release("3.12-1-amd64"), Some((3, 12)));
        assert_eq!(parse_release("4.8"), Some((4, 8)));
        assert_eq!(parse_release("garbage"), None);
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,8,10-11\n"), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpu_list("0"), vec![0]);
    }

    #[test]
    fn thermal_paths_from_a_fake_sysfs() {
        let dir = std::env::temp_dir().join(format!("berth-rt-cpu-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("cpu0/thermal_throttle")).unwrap();
        fs::create_dir_all(dir.join("cpu1")).unwrap();
        fs::write(dir.join("possible"), "0-1\n").unwrap();
        assert_eq!(
            thermal_throttle_paths(&dir),
            vec!["/sys/devices/system/cpu/cpu0/thermal_throttle".to_string()]
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cap_eff_parsing() {
        let st = "Name:\tx\nCapEff:\t000001fffeffffff\n";
        let h = HostInfo {
            cap_eff: parse_cap_eff(st),
            ..HostInfo::fake()
        };
        assert!(h.cap_available(21));
        assert!(!h.cap_available(24));
        assert!(!h.cap_available(41));
    }

    #[test]
    fn identity_map() {
        assert!(is_identity_map("         0          0 4294967295\n"));
        assert!(!is_identity_map("0 100000 65536\n"));
    }
}
