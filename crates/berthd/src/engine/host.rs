//! Facts about the host, read from the kernel (for `/info` and `/version`).

use std::path::Path;

pub fn kernel_version() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Docker reports the kernel's machine name (`x86_64`, `aarch64`).
pub fn architecture() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.machine().to_string_lossy().into_owned())
        .unwrap_or_else(|_| std::env::consts::ARCH.to_string())
}

/// The GOARCH-style name used in image configs and `/version`.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

fn os_release_field(key: &str) -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .ok()?;
    text.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix('=')?;
        Some(v.trim_matches('"').to_string())
    })
}

pub fn operating_system() -> String {
    os_release_field("PRETTY_NAME").unwrap_or_else(|| "Linux".into())
}

pub fn os_version() -> String {
    os_release_field("VERSION_ID").unwrap_or_default()
}

pub fn ncpu() -> i64 {
    // Online CPUs, as Go's runtime.NumCPU (which honours the affinity mask).
    std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1)
}

pub fn mem_total_u64() -> u64 {
    mem_total().max(0) as u64
}

pub fn mem_total() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let rest = l.strip_prefix("MemTotal:")?;
                let kb: i64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
                Some(kb * 1024)
            })
        })
        .unwrap_or(0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// v2 when `/sys/fs/cgroup` itself is the unified hierarchy; v1 (possibly
/// hybrid, with cgroup2 at `/sys/fs/cgroup/unified`) otherwise.
pub fn cgroup_version() -> CgroupVersion {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        CgroupVersion::V2
    } else {
        CgroupVersion::V1
    }
}

/// Whether the memory cgroup can limit swap (`docker info`'s SwapLimit).
pub fn swap_limit_supported() -> bool {
    cgroup_version() == CgroupVersion::V2
        || Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
}

/// Names the file system under `path` as `docker info` does.
pub fn backing_filesystem(path: &Path) -> String {
    let Ok(st) = nix::sys::statfs::statfs(path) else {
        return "unknown".into();
    };
    let magic = st.filesystem_type().0;
    match magic {
        0xEF53 => "extfs",
        0x9123683E => "btrfs",
        0x58465342 => "xfs",
        0x01021994 => "tmpfs",
        0x794C7630 => "overlayfs",
        0x2FC12FC1 => "zfs",
        0x6969 => "nfs",
        0x65735546 => "fuse",
        _ => "unknown",
    }
    .into()
}

pub fn ipv4_forwarding() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .map(|s| s.trim() == "1")
        .unwrap_or(false)
}

/// Open file descriptors of this process.
pub fn open_fds() -> i64 {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as i64)
        .unwrap_or(0)
}

/// Threads of this process (reported where Docker reports goroutines).
pub fn threads() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Threads:")
                    .and_then(|v| v.trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

/// Bytes used under a directory (not following symlinks).
pub fn dir_size(p: &Path) -> i64 {
    fn walk(p: &Path, total: &mut i64) {
        let Ok(rd) = std::fs::read_dir(p) else { return };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                walk(&e.path(), total);
            } else {
                *total += m.len() as i64;
            }
        }
    }
    let mut t = 0;
    walk(p, &mut t);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_real_values() {
        assert!(!kernel_version().is_empty());
        assert!(ncpu() >= 1);
        assert!(mem_total() > 0);
        assert!(open_fds() > 0);
    }
}
