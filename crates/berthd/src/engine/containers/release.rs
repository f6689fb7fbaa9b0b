//! Releasing what a container holds on the host outside its record: its
//! shim and processes, cgroups, runtime state, mounts, network namespace
//! file, socket and bundle. Used when a shim dies under a running
//! container and by start-up reconciliation.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::DaemonConfig;
use crate::engine::mountinfo::unmount_under;
use crate::engine::{cgroups, networks, trash};

/// Container IDs are 64 lowercase hex digits; nothing else is touched.
pub(crate) fn is_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The container ID a process is the shim of, if it is one of ours.
pub(crate) fn shim_of(pid: i32, bundles: &Path) -> Option<String> {
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
    if args.len() < 3 || args[0] != b"berth-shim" || args[1] != b"run" {
        return None;
    }
    let dir = Path::new(std::str::from_utf8(args[2]).ok()?);
    if dir.parent()? != bundles {
        return None;
    }
    let id = dir.file_name()?.to_str()?;
    is_id(id).then(|| id.to_string())
}

/// Stops whatever runs for `id` outside an adopted shim, then releases its
/// host state: processes, cgroups, runtime state, mounts, network
/// namespace file, socket and bundle. `whole`: its container directory
/// goes too (it has no record).
pub fn release(cfg: &DaemonConfig, id: &str, shims: &[i32], whole: bool) {
    release_processes(cfg, id, shims);
    let cdir = cfg.data_root.join("containers").join(id);
    unmount_under(&cdir);
    networks::netns::remove(&cfg.exec_root.join("netns").join(id));
    let _ = std::fs::remove_file(cfg.exec_root.join("s").join(format!("{id}.sock")));
    trash::remove(
        &cfg.exec_root.join("containers").join(id),
        &trash::dir(&cfg.exec_root),
    );
    if whole {
        trash::remove(&cdir, &trash::dir(&cfg.data_root));
    }
}

/// The live shims of container `id` (normally none or one).
pub fn shims_of(exec_root: &Path, id: &str) -> Vec<i32> {
    let bundles = exec_root.join("containers");
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| shim_of(*pid, &bundles).as_deref() == Some(id))
        .collect()
}

/// Kills the shims and every process of container `id`, then removes its
/// cgroups and runtime state.
pub fn release_processes(cfg: &DaemonConfig, id: &str, shims: &[i32]) {
    let bundles = cfg.exec_root.join("containers");
    for &pid in shims {
        // Checked again: the PID must still be this container's shim.
        if shim_of(pid, &bundles).as_deref() == Some(id) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    if !cgroups::kill_all(id, Duration::from_secs(5)) {
        tracing::warn!(id, "processes of the container survived SIGKILL");
    }
    // A shim that is still exiting must not recreate what is removed next.
    let start = Instant::now();
    while shims.iter().any(|p| shim_of(*p, &bundles).is_some())
        && start.elapsed() < Duration::from_secs(2)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    cgroups::remove(id);
    let _ = std::fs::remove_dir_all(cfg.exec_root.join("runtime").join(id));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_a_shim_only_with_our_bundle_dir() {
        let me = std::process::id() as i32;
        assert_eq!(shim_of(me, Path::new("/nowhere")), None);
    }
}
