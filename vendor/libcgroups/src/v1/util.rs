use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use pathrs::flags::OpenFlags;
use pathrs::procfs::{ProcfsBase, ProcfsHandle};
use procfs::process::MountInfo;
use procfs::{FromRead, ProcError, ProcessCGroups};

use super::ControllerType;
use super::controller_type::CONTROLLERS;

#[derive(thiserror::Error, Debug)]
pub enum V1MountPointError {
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    #[error("failed to get mountinfo: {0}")]
    MountInfo(ProcError),
    #[error("could not find mountpoint for {subsystem}")]
    NotFound { subsystem: ControllerType },
    #[error(transparent)]
    Pathrs(#[from] pathrs::error::Error),
}

/// List all cgroup v1 subsystem mount points on the system. This can include unsupported
/// subsystems, comounted controllers and named hierarchies.
///
/// berth: the mount table is read only until every v1 hierarchy this
/// process is in (`/proc/self/cgroup`) has been seen mounted and every
/// controller among them has a mount point `subsystem_mount_point_among`
/// would pick, not to its end. The cgroup hierarchies are mounted at boot,
/// before any container's mounts, and the table lists every running
/// container's root and network namespace: reading all of it made each
/// container start (and kill) cost more the more containers run. Later
/// mounts of an already seen hierarchy (bind mounts of it) are left out;
/// without `/proc/self/cgroup` the whole table is read, as upstream does.
pub fn list_subsystem_mount_points() -> Result<Vec<PathBuf>, V1MountPointError> {
    let procfs = ProcfsHandle::new()?;
    let mut pending = own_v1_hierarchies(&procfs);
    let wanted: Vec<&ControllerType> = match &pending {
        Some(hierarchies) => CONTROLLERS
            .iter()
            .filter(|c| {
                let name = c.to_string();
                hierarchies.iter().any(|h| h.contains(&name))
            })
            .collect(),
        None => Vec::new(),
    };
    let reader = BufReader::new(procfs.open(
        ProcfsBase::ProcSelf,
        "mountinfo",
        OpenFlags::O_RDONLY | OpenFlags::O_CLOEXEC,
    )?);

    let mut mount_points = Vec::new();
    for line in reader.lines() {
        let m = MountInfo::from_line(&line?).map_err(V1MountPointError::MountInfo)?;
        if m.fs_type != "cgroup" {
            continue;
        }
        if let Some(hierarchies) = pending.as_mut() {
            hierarchies.retain(|h| !mounts_hierarchy(&m, h));
        }
        mount_points.push(m.mount_point);
        if pending.as_ref().is_some_and(Vec::is_empty)
            && wanted
                .iter()
                .all(|c| subsystem_mount_point_among(c, &mount_points).is_some())
        {
            break;
        }
    }
    Ok(mount_points)
}

/// berth: the controller lists of the cgroup v1 hierarchies this process
/// is in (`name=…` for a named one); `None` if unknown (then the caller
/// reads the whole mount table).
fn own_v1_hierarchies(procfs: &ProcfsHandle) -> Option<Vec<Vec<String>>> {
    let file = procfs
        .open(
            ProcfsBase::ProcSelf,
            "cgroup",
            OpenFlags::O_RDONLY | OpenFlags::O_CLOEXEC,
        )
        .ok()?;
    let own = ProcessCGroups::from_read(file).ok()?;
    let mut out = Vec::new();
    for cg in own.0.into_iter().filter(|cg| cg.hierarchy != 0) {
        let controllers: Vec<String> = cg
            .controllers
            .into_iter()
            .filter(|c| !c.is_empty())
            .collect();
        if controllers.is_empty() {
            return None;
        }
        out.push(controllers);
    }
    Some(out)
}

/// berth: whether the cgroup v1 mount `m` is of the hierarchy with these
/// controllers (its super options name each of them).
fn mounts_hierarchy(m: &MountInfo, controllers: &[String]) -> bool {
    controllers.iter().all(|c| match c.strip_prefix("name=") {
        Some(name) => m.super_options.get("name") == Some(&Some(name.to_string())),
        None => m.super_options.contains_key(c),
    })
}

/// List the mount points of all currently supported cgroup subsystems.
// berth: mountinfo is read once for all of them, not once per controller.
pub fn list_supported_mount_points() -> Result<HashMap<ControllerType, PathBuf>, V1MountPointError>
{
    let mounts = list_subsystem_mount_points()?;
    let mut mount_paths = HashMap::with_capacity(CONTROLLERS.len());

    for controller in CONTROLLERS {
        if let Some(mount_point) = subsystem_mount_point_among(controller, &mounts) {
            mount_paths.insert(controller.to_owned(), mount_point);
        }
    }

    Ok(mount_paths)
}

pub fn get_subsystem_mount_point(subsystem: &ControllerType) -> Result<PathBuf, V1MountPointError> {
    subsystem_mount_point_among(subsystem, &list_subsystem_mount_points()?).ok_or(
        V1MountPointError::NotFound {
            subsystem: *subsystem,
        },
    )
}

/// berth: the mount point of `subsystem` among the cgroup v1 mount points
/// `mounts` (as `list_subsystem_mount_points` gives them), so that callers
/// needing several subsystems read mountinfo once.
pub fn subsystem_mount_point_among(
    subsystem: &ControllerType,
    mounts: &[PathBuf],
) -> Option<PathBuf> {
    let subsystem_name = subsystem.to_string();
    mounts
        .iter()
        .find(|mount_point| {
            // Some systems mount net_prio and net_cls in the same directory
            // other systems mount them in their own directories. This
            // should handle both cases.
            match subsystem_name.as_str() {
                "net_cls" => ["net_cls,net_prio", "net_prio,net_cls", "net_cls"]
                    .iter()
                    .any(|s| mount_point.ends_with(s)),
                "net_prio" => ["net_cls,net_prio", "net_prio,net_cls", "net_prio"]
                    .iter()
                    .any(|s| mount_point.ends_with(s)),
                "cpu" => ["cpu,cpuacct", "cpu"]
                    .iter()
                    .any(|s| mount_point.ends_with(s)),
                "cpuacct" => ["cpu,cpuacct", "cpuacct"]
                    .iter()
                    .any(|s| mount_point.ends_with(s)),
                _ => mount_point.ends_with(&subsystem_name),
            }
        })
        .cloned()
}
