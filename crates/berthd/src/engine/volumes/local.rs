//! The `local` volume driver, as Docker's: a directory
//! `<data-root>/volumes/<name>/_data`, or a device mounted there per the
//! `DriverOpts` `type`/`device`/`o`, mounted on its first holder's `Mount`
//! and unmounted at the last holder's `Unmount`.
//!
//! The options of each volume are the driver's to keep (a plugin keeps its
//! own); they are handed back from the volume records at start-up, so the
//! directory layout holds nothing but the data.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use super::driver::{
    CapabilitiesResponse, Capability, CreateRequest, GetResponse, ListResponse, MountRequest,
    MountResponse, NameRequest, VolumeDriver, VolumeInfo,
};
use crate::engine::mountinfo::is_mountpoint;
use crate::engine::{EngineError, Result};

pub const LOCAL: &str = "local";

/// Whether a running container other than the one named (`""`: any) uses
/// a volume. Holds live in memory, so after a daemon restart the running
/// containers' uses of a device volume are known only this way.
pub type InUse = Box<dyn Fn(&str, &str) -> bool + Send + Sync>;

#[derive(Default)]
struct LocalVolume {
    options: HashMap<String, String>,
    /// Who holds the volume mounted (container IDs, `cp` sessions).
    holders: HashSet<String>,
}

impl LocalVolume {
    /// Mounted from a device (`DriverOpts`), not a plain directory.
    fn has_device(&self) -> bool {
        self.options.contains_key("type") || self.options.contains_key("device")
    }
}

pub struct LocalDriver {
    root: PathBuf,
    /// Volume name → its options and holders. Held across a device's
    /// mount, so that two first holders never both mount it.
    volumes: Mutex<HashMap<String, LocalVolume>>,
    in_use: InUse,
}

impl LocalDriver {
    /// Opens `<data-root>/volumes` with the volumes the records name
    /// (name → options); a directory of no record is what a crash left of
    /// a creation or a removal, and is deleted.
    pub fn open(
        data_root: &Path,
        existing: impl IntoIterator<Item = (String, HashMap<String, String>)>,
        in_use: InUse,
    ) -> Result<Self> {
        let root = data_root.join("volumes");
        std::fs::create_dir_all(&root)
            .map_err(|e| EngineError::internal(format!("creating {}: {e}", root.display())))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o701))?;
        }
        let mut volumes = HashMap::new();
        for (name, options) in existing {
            let data = root.join(&name).join("_data");
            if let Err(e) = std::fs::create_dir_all(&data) {
                tracing::warn!(volume = %name, error = %e, "recreating the volume directory");
            }
            volumes.insert(
                name,
                LocalVolume {
                    options,
                    holders: HashSet::new(),
                },
            );
        }
        // Anything mounted in a leftover is unmounted first, so that
        // deleting never reaches into a mount.
        for e in std::fs::read_dir(&root)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if volumes.contains_key(&name) || !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            tracing::info!(dir = %name, "removing an unfinished volume directory");
            crate::engine::mountinfo::unmount_under(&e.path());
            crate::engine::trash::remove(&e.path(), &crate::engine::trash::dir(data_root));
        }
        Ok(Self {
            root,
            volumes: Mutex::new(volumes),
            in_use,
        })
    }

    fn volumes(&self) -> MutexGuard<'_, HashMap<String, LocalVolume>> {
        self.volumes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The volume's content directory; the layout is fixed, so a name the
    /// driver does not know has one too (where it would be).
    fn data(&self, name: &str) -> PathBuf {
        self.root.join(name).join("_data")
    }

    /// After a restart: the holds of the daemon that died are gone with it,
    /// so a device volume mounted for a container that no longer runs (or
    /// a `cp` that was cut off) is unmounted; the running containers'
    /// volumes stay, and their last stop unmounts them.
    pub fn release_idle(&self) {
        let devices: Vec<String> = self
            .volumes()
            .iter()
            .filter(|(_, v)| v.has_device())
            .map(|(n, _)| n.clone())
            .collect();
        for name in devices {
            let data = self.data(&name);
            if !is_mountpoint(&data) || (self.in_use)(&name, "") {
                continue;
            }
            tracing::info!(volume = %name, "unmounting a device volume no container uses");
            if let Err(e) = nix::mount::umount2(&data, nix::mount::MntFlags::MNT_DETACH) {
                tracing::warn!(volume = %name, error = %e, "unmounting the volume's device");
            }
        }
    }

    fn info(&self, name: &str) -> VolumeInfo {
        let data = self.data(name);
        // The directory's time stands in: the driver keeps no other (the
        // volume's record has the real one).
        let created_at = std::fs::metadata(self.root.join(name))
            .and_then(|m| m.modified())
            .map(|t| {
                chrono::DateTime::<chrono::Utc>::from(t)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            })
            .unwrap_or_default();
        VolumeInfo {
            name: name.to_string(),
            mountpoint: data.display().to_string(),
            created_at,
            status: HashMap::new(),
        }
    }

    #[cfg(test)]
    fn holders(&self, name: &str) -> usize {
        self.volumes().get(name).map_or(0, |v| v.holders.len())
    }
}

impl VolumeDriver for LocalDriver {
    fn name(&self) -> &str {
        LOCAL
    }

    fn create(&self, req: &CreateRequest) -> Result<()> {
        validate_name(&req.name)?;
        validate_options(&req.opts)?;
        let dir = self.root.join(&req.name);
        let data = dir.join("_data");
        std::fs::create_dir_all(&data).map_err(|e| {
            EngineError::internal(format!(
                "error while creating volume path '{}': {e}",
                data.display()
            ))
        })?;
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755));
        }
        self.volumes().insert(
            req.name.clone(),
            LocalVolume {
                options: req.opts.clone(),
                holders: HashSet::new(),
            },
        );
        Ok(())
    }

    fn remove(&self, req: &NameRequest) -> Result<()> {
        let name = req.name.as_str();
        let data = self.data(name);
        if is_mountpoint(&data) {
            nix::mount::umount2(&data, nix::mount::MntFlags::MNT_DETACH).map_err(|e| {
                EngineError::internal(format!("unmounting volume {name}: {}", e.desc()))
            })?;
        }
        self.volumes().remove(name);
        // Renamed out of the way first, so that a crash leaves no
        // half-deleted volume: the leftover is removed at the next start.
        let dir = self.root.join(name);
        let trash = self.root.join(format!(
            ".removing-{name}-{}",
            crate::engine::ids::random_hex(4)
        ));
        if std::fs::rename(&dir, &trash).is_ok() {
            if let Err(e) = std::fs::remove_dir_all(&trash) {
                tracing::warn!(volume = name, error = %e, "removing the volume's files");
            }
        }
        Ok(())
    }

    fn mount(&self, req: &MountRequest) -> Result<MountResponse> {
        let data = self.data(&req.name);
        let mut volumes = self.volumes();
        if let Some(v) = volumes.get_mut(&req.name) {
            if v.has_device() && !is_mountpoint(&data) {
                mount_device(&v.options, &data)?;
            }
            v.holders.insert(req.id.clone());
        }
        Ok(MountResponse {
            mountpoint: data.display().to_string(),
        })
    }

    fn unmount(&self, req: &MountRequest) -> Result<()> {
        let mut volumes = self.volumes();
        let Some(v) = volumes.get_mut(&req.name) else {
            return Ok(());
        };
        v.holders.remove(&req.id);
        if !v.holders.is_empty() || !v.has_device() {
            return Ok(());
        }
        let data = self.data(&req.name);
        if !(self.in_use)(&req.name, &req.id) && is_mountpoint(&data) {
            if let Err(e) = nix::mount::umount2(&data, nix::mount::MntFlags::MNT_DETACH) {
                tracing::warn!(volume = %req.name, error = %e, "unmounting the volume's device");
            }
        }
        Ok(())
    }

    fn path(&self, req: &NameRequest) -> Result<MountResponse> {
        Ok(MountResponse {
            mountpoint: self.data(&req.name).display().to_string(),
        })
    }

    fn get(&self, req: &NameRequest) -> Result<GetResponse> {
        if !self.volumes().contains_key(&req.name) {
            return Err(EngineError::not_found(format!(
                "get {}: no such volume",
                req.name
            )));
        }
        Ok(GetResponse {
            volume: self.info(&req.name),
        })
    }

    fn list(&self) -> Result<ListResponse> {
        let mut names: Vec<String> = self.volumes().keys().cloned().collect();
        names.sort();
        Ok(ListResponse {
            volumes: names.iter().map(|n| self.info(n)).collect(),
        })
    }

    fn capabilities(&self) -> CapabilitiesResponse {
        CapabilitiesResponse {
            capabilities: Capability {
                scope: LOCAL.into(),
            },
        }
    }
}

/// Docker's rule for local volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn validate_name(name: &str) -> Result<()> {
    let b = name.as_bytes();
    let ok_first = b.first().is_some_and(|c| c.is_ascii_alphanumeric());
    let ok_rest = b
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if !ok_first || !ok_rest {
        return Err(EngineError::invalid(format!(
            "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )));
    }
    if b.len() < 2 {
        return Err(EngineError::invalid(format!(
            "create {name}: volume name is too short, names should be at least two alphanumeric characters"
        )));
    }
    Ok(())
}

/// The local driver's options: `type`, `device`, `o`.
fn validate_options(opts: &HashMap<String, String>) -> Result<()> {
    for k in opts.keys() {
        match k.as_str() {
            "type" | "device" | "o" => {}
            "size" => {
                return Err(EngineError::invalid(
                    "quota size requested but no quota support",
                ))
            }
            other => {
                return Err(EngineError::invalid(format!("invalid option: {other:?}")));
            }
        }
    }
    let has = |k: &str| opts.get(k).is_some_and(|v| !v.is_empty());
    if (has("type") || has("o")) && !has("device") {
        return Err(EngineError::invalid("missing required option: \"device\""));
    }
    if has("device") && !has("type") {
        return Err(EngineError::invalid("missing required option: \"type\""));
    }
    Ok(())
}

/// Mounts a local volume's device on its `_data` (Docker's local driver):
/// `o` holds mount flags (`bind`, `ro`, `nosuid`, ...) and fs data.
fn mount_device(opts: &HashMap<String, String>, target: &Path) -> Result<()> {
    use nix::mount::MsFlags;
    let typ = opts.get("type").map(String::as_str).unwrap_or("");
    let device = opts.get("device").map(String::as_str).unwrap_or("");
    let mut flags = MsFlags::empty();
    let mut data: Vec<&str> = Vec::new();
    for o in opts
        .get("o")
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
        .filter(|o| !o.is_empty())
    {
        match o {
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" | "defaults" => {}
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "sync" => flags |= MsFlags::MS_SYNCHRONOUS,
            "dirsync" => flags |= MsFlags::MS_DIRSYNC,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "nodiratime" => flags |= MsFlags::MS_NODIRATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "strictatime" => flags |= MsFlags::MS_STRICTATIME,
            other => data.push(other),
        }
    }
    let bind = flags.contains(MsFlags::MS_BIND);
    let fstype = (!bind && typ != "none").then_some(typ);
    let data = data.join(",");
    let fail = |e: nix::Error| {
        EngineError::internal(format!(
            "error while mounting volume '{}': failed to mount local volume: mount {device}:{}, data: {data}: {}",
            target.display(),
            target.display(),
            e.desc()
        ))
    };
    nix::mount::mount(
        Some(device),
        target,
        fstype,
        flags,
        (!data.is_empty()).then_some(data.as_str()),
    )
    .map_err(fail)?;
    if bind && flags.contains(MsFlags::MS_RDONLY) {
        // A bind mount takes `ro` only on a remount.
        nix::mount::mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(fail)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn driver(data_root: &Path) -> LocalDriver {
        LocalDriver::open(data_root, Vec::new(), Box::new(|_, _| false)).unwrap()
    }

    fn mount(name: &str, id: &str) -> MountRequest {
        MountRequest {
            name: name.into(),
            id: id.into(),
        }
    }

    fn named(name: &str) -> NameRequest {
        NameRequest { name: name.into() }
    }

    #[test]
    fn names_follow_dockers_rule() {
        assert!(validate_name("data").is_ok());
        assert!(validate_name("a.b-c_1").is_ok());
        let e = validate_name("a").unwrap_err().to_string();
        assert!(e.contains("too short"), "{e}");
        let e = validate_name("a/b").unwrap_err().to_string();
        assert!(e.contains("includes invalid characters"), "{e}");
        assert!(validate_name("-ab").is_err());
        assert!(validate_name("./x").is_err());
    }

    #[test]
    fn driver_options_are_checked() {
        assert!(validate_options(&opts(&[])).is_ok());
        assert!(validate_options(&opts(&[("type", "tmpfs"), ("device", "tmpfs")])).is_ok());
        let e = |o: &[(&str, &str)]| validate_options(&opts(o)).unwrap_err().to_string();
        assert_eq!(
            e(&[("type", "tmpfs")]),
            "missing required option: \"device\""
        );
        assert_eq!(
            e(&[("device", "/dev/x")]),
            "missing required option: \"type\""
        );
        assert_eq!(e(&[("bogus", "1")]), "invalid option: \"bogus\"");
        assert_eq!(
            e(&[("size", "1g")]),
            "quota size requested but no quota support"
        );
    }

    #[test]
    fn create_path_mount_unmount_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let d = driver(tmp.path());
        let data = tmp.path().join("volumes/v1/_data");
        d.create(&CreateRequest {
            name: "v1".into(),
            opts: HashMap::new(),
        })
        .unwrap();
        assert!(data.is_dir());
        assert_eq!(
            d.path(&named("v1")).unwrap().mountpoint,
            data.display().to_string()
        );
        assert_eq!(d.get(&named("v1")).unwrap().volume.name, "v1");
        assert!(d.get(&named("v2")).is_err());
        assert_eq!(d.list().unwrap().volumes.len(), 1);
        assert_eq!(d.capabilities().capabilities.scope, "local");
        // Holders are counted once each, whatever the number of mounts.
        let m = d.mount(&mount("v1", "a")).unwrap();
        assert_eq!(m.mountpoint, data.display().to_string());
        d.mount(&mount("v1", "a")).unwrap();
        d.mount(&mount("v1", "b")).unwrap();
        assert_eq!(d.holders("v1"), 2);
        d.unmount(&mount("v1", "a")).unwrap();
        assert_eq!(d.holders("v1"), 1);
        // Releasing what was never held, or an unknown volume, is no error.
        d.unmount(&mount("v1", "zz")).unwrap();
        d.unmount(&mount("nope", "a")).unwrap();
        d.unmount(&mount("v1", "b")).unwrap();
        assert_eq!(d.holders("v1"), 0);
        std::fs::write(data.join("f"), "x").unwrap();
        d.remove(&named("v1")).unwrap();
        assert!(!tmp.path().join("volumes/v1").exists());
        assert!(d.list().unwrap().volumes.is_empty());
        // Nothing of the removal is left next to the volumes.
        assert_eq!(
            std::fs::read_dir(tmp.path().join("volumes"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn create_refuses_bad_names_and_options() {
        let tmp = tempfile::tempdir().unwrap();
        let d = driver(tmp.path());
        let create = |name: &str, o: &[(&str, &str)]| {
            d.create(&CreateRequest {
                name: name.into(),
                opts: opts(o),
            })
        };
        assert!(create("a/b", &[]).is_err());
        assert!(create("ok", &[("type", "tmpfs")]).is_err());
        assert!(!tmp.path().join("volumes/ok").exists());
    }

    #[test]
    fn open_keeps_recorded_volumes_and_drops_leftovers() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("volumes/ghost/_data")).unwrap();
        let d = LocalDriver::open(
            tmp.path(),
            vec![("kept".to_string(), HashMap::new())],
            Box::new(|_, _| false),
        )
        .unwrap();
        assert!(tmp.path().join("volumes/kept/_data").is_dir());
        assert!(!tmp.path().join("volumes/ghost").exists());
        assert!(d.get(&named("kept")).is_ok());
    }
}
