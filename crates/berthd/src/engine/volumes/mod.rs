//! Volumes: the `local` driver (a directory `<data-root>/volumes/<name>/_data`,
//! or a device mounted there per `DriverOpts` `type`/`device`/`o`, as
//! Docker's local driver), the records (metadata store, `Table::Volumes`)
//! with their in-memory index, and the API operations. Which containers use
//! a volume is read from the container records (their mount plans), so the
//! reference count can never drift from what the containers say.
//!
//! `mounts.rs` turns `Binds`/`Mounts`/`Tmpfs`/`VolumesFrom`/image `VOLUME`s
//! into a container's mount plan and OCI mounts; `copyup.rs` fills a new
//! volume from the image.

pub mod copyup;
pub mod mounts;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, RwLock};

use berth_api::filters::Filters;
use berth_api::models::{
    Volume, VolumeCreateOptions, VolumeListResponse, VolumePruneResponse, VolumeScopeEnum,
    VolumeUsageData,
};
use serde::{Deserialize, Serialize};

use super::fs::snapshot::is_mountpoint;
use super::store::{Store, Table};
use super::{Engine, EngineError, Result};

/// The label Docker 23+ puts on volumes created without a name; `volume
/// prune` removes only these unless `all=true`.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";
pub const LOCAL: &str = "local";

/// The persisted volume.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VolumeRecord {
    pub name: String,
    pub driver: String,
    pub created_at: String,
    pub labels: HashMap<String, String>,
    /// `DriverOpts` as given (`type`, `device`, `o`).
    pub options: HashMap<String, String>,
}

impl VolumeRecord {
    pub fn anonymous(&self) -> bool {
        self.labels.contains_key(ANONYMOUS_LABEL)
    }

    /// Mounted from a device (`DriverOpts`), not a plain directory.
    fn has_device(&self) -> bool {
        self.options.contains_key("type") || self.options.contains_key("device")
    }
}

pub struct Volumes {
    root: PathBuf,
    index: RwLock<HashMap<String, VolumeRecord>>,
    /// Serialises creating and removing volumes with container mount
    /// planning: a volume cannot be removed between a container's lookup of
    /// it and that container's record naming it.
    lock: Mutex<()>,
    /// Who holds a device-backed volume mounted (container IDs, cp sessions).
    active: Mutex<HashMap<String, HashSet<String>>>,
}

impl Volumes {
    pub fn open(data_root: &Path, store: &Store) -> Result<Self> {
        let root = data_root.join("volumes");
        std::fs::create_dir_all(&root)
            .map_err(|e| EngineError::internal(format!("creating {}: {e}", root.display())))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o701))?;
        }
        let mut index = HashMap::new();
        for (name, rec) in store.load_all::<VolumeRecord>(Table::Volumes)? {
            let data = root.join(&name).join("_data");
            if let Err(e) = std::fs::create_dir_all(&data) {
                tracing::warn!(volume = %name, error = %e, "recreating the volume directory");
            }
            index.insert(name, rec);
        }
        // A removal or a creation that a crash cut short: a renamed-away
        // directory, or one without a record. Anything mounted there is
        // unmounted first, so that deleting never reaches into a mount.
        for e in std::fs::read_dir(&root)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if index.contains_key(&name) || !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            tracing::info!(dir = %name, "removing an unfinished volume directory");
            super::reconcile::unmount_under(&e.path());
            super::trash::remove(&e.path(), &super::trash::dir(data_root));
        }
        Ok(Self {
            root,
            index: RwLock::new(index),
            lock: Mutex::new(()),
            active: Mutex::new(HashMap::new()),
        })
    }

    /// The directory the volume's content lives in (its `Mountpoint`).
    pub fn data_path(&self, name: &str) -> PathBuf {
        self.root.join(name).join("_data")
    }

    pub fn get(&self, name: &str) -> Option<VolumeRecord> {
        self.index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    pub fn all(&self) -> Vec<VolumeRecord> {
        let mut v: Vec<VolumeRecord> = self
            .index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub(crate) fn guard(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn active(&self) -> MutexGuard<'_, HashMap<String, HashSet<String>>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
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

fn now_secs() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Engine {
    fn volume_view(&self, v: &VolumeRecord) -> Volume {
        Volume {
            name: v.name.clone(),
            driver: v.driver.clone(),
            mountpoint: self.volumes.data_path(&v.name).display().to_string(),
            created_at: Some(v.created_at.clone()),
            status: None,
            labels: v.labels.clone(),
            scope: Some(VolumeScopeEnum::LOCAL),
            cluster_volume: None,
            options: v.options.clone(),
            usage_data: None,
        }
    }

    fn volume_event(&self, action: &str, name: &str, extra: &[(&str, String)]) {
        let mut attrs: HashMap<String, String> = HashMap::new();
        attrs.insert("driver".into(), LOCAL.into());
        for (k, v) in extra {
            attrs.insert(k.to_string(), v.clone());
        }
        self.events.publish("volume", action, name, attrs);
    }

    /// Volume name → IDs of the containers whose mount plans name it.
    pub(crate) fn volume_refs(&self) -> HashMap<String, Vec<String>> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for c in self.containers.all() {
            let r = c.lock();
            for m in r.mounts.iter().filter(|m| m.typ == mounts::VOLUME) {
                let ids = out.entry(m.name.clone()).or_default();
                if !ids.contains(&r.id) {
                    ids.push(r.id.clone());
                }
            }
        }
        for ids in out.values_mut() {
            ids.sort();
        }
        out
    }

    pub(crate) fn volume_users(&self, name: &str) -> Vec<String> {
        self.volume_refs().remove(name).unwrap_or_default()
    }

    /// Creates a volume, or returns the existing one of that name. An empty
    /// name makes an anonymous volume with a random name. The caller holds
    /// `volumes.guard()`. Returns whether it was created now.
    pub(crate) fn create_volume_locked(
        &self,
        name: &str,
        driver: &str,
        labels: HashMap<String, String>,
        options: HashMap<String, String>,
    ) -> Result<(VolumeRecord, bool)> {
        if !driver.is_empty() && driver != LOCAL {
            return Err(EngineError::not_found(format!(
                "error looking up volume plugin {driver}: plugin \"{driver}\" not found"
            )));
        }
        let (name, mut labels) = if name.is_empty() {
            let mut l = labels;
            l.insert(ANONYMOUS_LABEL.into(), String::new());
            (super::ids::random_hex(32), l)
        } else {
            validate_name(name)?;
            (name.to_string(), labels)
        };
        if let Some(v) = self.volumes.get(&name) {
            // dockerd logs `create` for every create of a name, existing or
            // not (a container naming the volume included).
            self.volume_event("create", &name, &[]);
            return Ok((v, false));
        }
        validate_options(&options)?;
        labels.retain(|k, _| !k.is_empty());
        let rec = VolumeRecord {
            name: name.clone(),
            driver: LOCAL.into(),
            created_at: now_secs(),
            labels,
            options,
        };
        let dir = self.volumes.root.join(&name);
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
        if let Err(e) = self.store.put(Table::Volumes, &name, &rec) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        self.volumes
            .index
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.clone(), rec.clone());
        self.volume_event("create", &name, &[]);
        Ok((rec, true))
    }

    /// `POST /volumes/create`.
    pub fn create_volume(&self, body: VolumeCreateOptions) -> Result<Volume> {
        let _g = self.volumes.guard();
        let (v, _) = self.create_volume_locked(
            body.name.as_deref().unwrap_or(""),
            body.driver.as_deref().unwrap_or(""),
            body.labels.unwrap_or_default(),
            body.driver_opts.unwrap_or_default(),
        )?;
        Ok(self.volume_view(&v))
    }

    /// `GET /volumes/{name}`.
    pub fn inspect_volume(&self, name: &str) -> Result<Volume> {
        self.volumes
            .get(name)
            .map(|v| self.volume_view(&v))
            .ok_or_else(|| EngineError::not_found(format!("get {name}: no such volume")))
    }

    /// `GET /volumes` with filters `dangling`, `name`, `label`, `driver`.
    pub fn list_volumes(&self, filters: &Filters) -> Result<VolumeListResponse> {
        filters.validate(&["dangling", "name", "label", "driver"])?;
        let dangling = filters.get_bool("dangling")?;
        let refs = self.volume_refs();
        let out = self
            .volumes
            .all()
            .into_iter()
            .filter(|v| {
                dangling.is_none_or(|d| d != refs.contains_key(&v.name))
                    && filters.substring_match("name", &v.name)
                    && filters.exact_match("driver", &v.driver)
                    && filters.match_labels("label", Some(&v.labels))
            })
            .map(|v| self.volume_view(&v))
            .collect();
        Ok(VolumeListResponse {
            volumes: Some(out),
            warnings: None,
        })
    }

    /// Deletes a volume that nothing uses; the caller holds the guard.
    fn remove_volume_locked(&self, name: &str) -> Result<()> {
        let data = self.volumes.data_path(name);
        if is_mountpoint(&data) {
            nix::mount::umount2(&data, nix::mount::MntFlags::MNT_DETACH).map_err(|e| {
                EngineError::internal(format!("unmounting volume {name}: {}", e.desc()))
            })?;
        }
        self.volumes.active().remove(name);
        // Out of the way first, so the record never names a half-removed
        // directory; the rename is undone if the record cannot be deleted.
        let dir = self.volumes.root.join(name);
        let trash = self
            .volumes
            .root
            .join(format!(".removing-{name}-{}", super::ids::random_hex(4)));
        let moved = std::fs::rename(&dir, &trash).is_ok();
        if let Err(e) = self.store.delete(Table::Volumes, name) {
            if moved {
                let _ = std::fs::rename(&trash, &dir);
            }
            return Err(e);
        }
        self.volumes
            .index
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        if moved {
            if let Err(e) = std::fs::remove_dir_all(&trash) {
                tracing::warn!(volume = name, error = %e, "removing the volume's files");
            }
        }
        self.volume_event("destroy", name, &[]);
        Ok(())
    }

    /// `DELETE /volumes/{name}`: 409 while any container uses it; `force`
    /// only makes a missing volume a success, as in Docker.
    pub fn remove_volume(&self, name: &str, force: bool) -> Result<()> {
        let _g = self.volumes.guard();
        if self.volumes.get(name).is_none() {
            if force {
                return Ok(());
            }
            return Err(EngineError::not_found(format!(
                "get {name}: no such volume"
            )));
        }
        let users = self.volume_users(name);
        if !users.is_empty() {
            return Err(EngineError::conflict(format!(
                "remove {name}: volume is in use - [{}]",
                users.join(" ")
            )));
        }
        self.remove_volume_locked(name)
    }

    /// `POST /volumes/prune`: unused anonymous volumes, or every unused one
    /// with `all=true` (Docker 23+).
    pub fn prune_volumes(&self, filters: &Filters) -> Result<VolumePruneResponse> {
        filters.validate(&["label", "label!", "all"])?;
        let all = filters.get_bool("all")?.unwrap_or(false);
        let _g = self.volumes.guard();
        let refs = self.volume_refs();
        let mut deleted = Vec::new();
        let mut space = 0i64;
        for v in self.volumes.all() {
            if refs.contains_key(&v.name) || (!all && !v.anonymous()) {
                continue;
            }
            if !filters.match_labels("label", Some(&v.labels)) {
                continue;
            }
            if filters.contains("label!")
                && filters.get("label!").any(|l| {
                    let mut f = Filters::new();
                    f.add("l", l);
                    f.match_labels("l", Some(&v.labels))
                })
            {
                continue;
            }
            let size = super::containers::dir_size(&self.volumes.data_path(&v.name));
            match self.remove_volume_locked(&v.name) {
                Ok(()) => {
                    deleted.push(v.name.clone());
                    space += size;
                }
                Err(e) => tracing::warn!(volume = %v.name, error = %e, "prune"),
            }
        }
        self.events.publish(
            "volume",
            "prune",
            "",
            [("reclaimed".to_string(), space.to_string())]
                .into_iter()
                .collect(),
        );
        Ok(VolumePruneResponse {
            volumes_deleted: (!deleted.is_empty()).then_some(deleted),
            space_reclaimed: Some(space),
        })
    }

    /// Volumes with `UsageData` for `GET /system/df`.
    pub fn volumes_disk_usage(&self) -> Vec<Volume> {
        let refs = self.volume_refs();
        self.volumes
            .all()
            .iter()
            .map(|v| {
                let mut out = self.volume_view(v);
                out.usage_data = Some(VolumeUsageData {
                    size: super::containers::dir_size(&self.volumes.data_path(&v.name)),
                    ref_count: refs.get(&v.name).map(|r| r.len()).unwrap_or(0) as i64,
                });
                out
            })
            .collect()
    }

    /// Mounts a device-backed volume for `holder` (a container or a cp
    /// session); plain directories need nothing.
    pub(crate) fn activate_volume(&self, name: &str, holder: &str) -> Result<()> {
        let Some(v) = self.volumes.get(name) else {
            return Ok(());
        };
        if !v.has_device() {
            return Ok(());
        }
        let mut active = self.volumes.active();
        let data = self.volumes.data_path(name);
        if !is_mountpoint(&data) {
            mount_device(&v.options, &data)?;
        }
        active
            .entry(name.to_string())
            .or_default()
            .insert(holder.to_string());
        Ok(())
    }

    /// After a restart: the activations of the daemon that died are gone
    /// with it, so a device volume mounted for a container that no longer
    /// runs (or a `cp` that was cut off) is unmounted; the running
    /// containers' volumes stay, and their last stop unmounts them.
    pub(crate) fn release_idle_volumes(&self) {
        for v in self.volumes.all().iter().filter(|v| v.has_device()) {
            let data = self.volumes.data_path(&v.name);
            if !is_mountpoint(&data) || self.used_by_running(&v.name, "") {
                continue;
            }
            tracing::info!(volume = %v.name, "unmounting a device volume no container uses");
            if let Err(e) = nix::mount::umount2(&data, nix::mount::MntFlags::MNT_DETACH) {
                tracing::warn!(volume = %v.name, error = %e, "unmounting the volume's device");
            }
        }
    }

    /// Whether a running container other than `except` mounts volume `name`.
    fn used_by_running(&self, name: &str, except: &str) -> bool {
        self.containers.all().iter().any(|c| {
            let r = c.lock();
            r.id != except
                && r.state.status.is_running()
                && r.mounts
                    .iter()
                    .any(|m| m.typ == mounts::VOLUME && m.name == name)
        })
    }

    /// Releases `holder`'s use; the device is unmounted once no holder and
    /// no other running container uses the volume.
    pub(crate) fn deactivate_volume(&self, name: &str, holder: &str) {
        let Some(v) = self.volumes.get(name) else {
            return;
        };
        if !v.has_device() {
            return;
        }
        let mut active = self.volumes.active();
        let left = {
            let set = active.entry(name.to_string()).or_default();
            set.remove(holder);
            set.len()
        };
        if left > 0 {
            return;
        }
        active.remove(name);
        let running_elsewhere = self.used_by_running(name, holder);
        let data = self.volumes.data_path(name);
        if !running_elsewhere && is_mountpoint(&data) {
            if let Err(e) = nix::mount::umount2(&data, nix::mount::MntFlags::MNT_DETACH) {
                tracing::warn!(volume = name, error = %e, "unmounting the volume's device");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let o = |kv: &[(&str, &str)]| -> HashMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(validate_options(&o(&[])).is_ok());
        assert!(validate_options(&o(&[("type", "tmpfs"), ("device", "tmpfs")])).is_ok());
        assert!(validate_options(&o(&[("type", "tmpfs")])).is_err());
        assert!(validate_options(&o(&[("bogus", "1")])).is_err());
    }
}
