//! Volumes: the records (metadata store, `Table::Volumes`) with their
//! in-memory index, the API operations, and the drivers that hold the
//! volumes' content ([`driver::VolumeDriver`], in the shape of Docker's
//! volume plugin protocol; `local.rs` is the built-in `local` driver).
//! Every operation on a volume goes through the driver its record names.
//! Which containers use a volume is asked of the container side through
//! [`VolumeUsers`] (it reads their mount plans), so the count can never
//! drift from what the containers say, and volumes never depend on
//! containers.
//!
//! `containers/mounts.rs` turns a container's `Binds`/`Mounts`/`VOLUME`s into
//! its mount plan; `copyup.rs` fills a new volume from the image.

pub mod copyup;
pub mod driver;
pub mod local;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};

use berth_api::filters::Filters;
use berth_api::models::{
    Volume, VolumeCreateOptions, VolumeListResponse, VolumePruneResponse, VolumeScopeEnum,
    VolumeUsageData,
};
use serde::{Deserialize, Serialize};

use super::events::EventBus;
use super::store::{Store, Table};
use super::{EngineError, Result};
use driver::{CreateRequest, MountRequest, NameRequest, VolumeDriver};
pub use local::{validate_name, LOCAL};

/// The label Docker 23+ puts on volumes created without a name; `volume
/// prune` removes only these unless `all=true`.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

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
}

/// What volumes must know of the containers that use them; supplied by the
/// container side at start-up (`Volumes::set_users`).
pub trait VolumeUsers: Send + Sync {
    /// Volume name → IDs of the containers whose mount plans name it, sorted.
    fn refs(&self) -> HashMap<String, Vec<String>>;
    /// Whether a running container other than `except` mounts `name`.
    fn used_by_running(&self, name: &str, except: &str) -> bool;
}

type Users = Arc<OnceLock<Box<dyn VolumeUsers>>>;

pub struct Volumes {
    store: Arc<Store>,
    events: Arc<EventBus>,
    users: Users,
    index: RwLock<HashMap<String, VolumeRecord>>,
    /// Serialises creating and removing volumes with container mount
    /// planning: a volume cannot be removed between a container's lookup of
    /// it and that container's record naming it.
    lock: Mutex<()>,
    /// The drivers by name; only the built-in `local` one today.
    drivers: HashMap<String, Arc<dyn VolumeDriver>>,
    local: Arc<local::LocalDriver>,
}

impl Volumes {
    pub fn open(data_root: &Path, store: Arc<Store>, events: Arc<EventBus>) -> Result<Self> {
        let mut index = HashMap::new();
        for (name, rec) in store.load_all::<VolumeRecord>(Table::Volumes)? {
            index.insert(name, rec);
        }
        let users: Users = Arc::new(OnceLock::new());
        let seen = users.clone();
        let local = Arc::new(local::LocalDriver::open(
            data_root,
            index
                .values()
                .filter(|r| r.driver.is_empty() || r.driver == LOCAL)
                .map(|r| (r.name.clone(), r.options.clone())),
            Box::new(move |name, except| {
                seen.get().is_some_and(|u| u.used_by_running(name, except))
            }),
        )?);
        let mut drivers: HashMap<String, Arc<dyn VolumeDriver>> = HashMap::new();
        drivers.insert(LOCAL.into(), local.clone());
        Ok(Self {
            store,
            events,
            users,
            index: RwLock::new(index),
            lock: Mutex::new(()),
            drivers,
            local,
        })
    }

    /// Installs the container side's view of volume use (once).
    pub fn set_users(&self, users: Box<dyn VolumeUsers>) {
        let _ = self.users.set(users);
    }

    /// Volume name → IDs of the containers that name it.
    pub fn refs(&self) -> HashMap<String, Vec<String>> {
        self.users.get().map(|u| u.refs()).unwrap_or_default()
    }

    /// IDs of the containers that name volume `name`.
    pub fn users_of(&self, name: &str) -> Vec<String> {
        self.refs().remove(name).unwrap_or_default()
    }

    /// The driver of that name (`local` when empty), or Docker's error for
    /// a plugin it cannot find.
    pub fn driver(&self, name: &str) -> Result<&dyn VolumeDriver> {
        let name = if name.is_empty() { LOCAL } else { name };
        self.drivers.get(name).map(|d| d.as_ref()).ok_or_else(|| {
            EngineError::not_found(format!(
                "error looking up volume plugin {name}: plugin \"{name}\" not found"
            ))
        })
    }

    /// The driver volume `name`'s record names; one without a record is in
    /// the `local` layout.
    fn driver_of(&self, name: &str) -> Result<&dyn VolumeDriver> {
        let driver = self
            .index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .map(|v| v.driver.clone())
            .unwrap_or_default();
        self.driver(&driver)
    }

    /// Where the volume's content is (its `Mountpoint`), as its driver says.
    pub fn mountpoint(&self, v: &VolumeRecord) -> PathBuf {
        let req = NameRequest {
            name: v.name.clone(),
        };
        self.driver(&v.driver)
            .and_then(|d| d.path(&req))
            .map(|m| PathBuf::from(m.mountpoint))
            .unwrap_or_default()
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
}

fn now_secs() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Volumes {
    fn volume_view(&self, v: &VolumeRecord) -> Volume {
        let scope = match self.driver(&v.driver).map(|d| d.capabilities()) {
            Ok(c) if c.capabilities.scope == "global" => VolumeScopeEnum::GLOBAL,
            _ => VolumeScopeEnum::LOCAL,
        };
        Volume {
            name: v.name.clone(),
            driver: v.driver.clone(),
            mountpoint: self.mountpoint(v).display().to_string(),
            created_at: Some(v.created_at.clone()),
            status: None,
            labels: v.labels.clone(),
            scope: Some(scope),
            cluster_volume: None,
            options: v.options.clone(),
            usage_data: None,
        }
    }

    pub(crate) fn volume_event(&self, action: &str, name: &str, extra: &[(&str, String)]) {
        let mut attrs: HashMap<String, String> = HashMap::new();
        attrs.insert("driver".into(), LOCAL.into());
        for (k, v) in extra {
            attrs.insert(k.to_string(), v.clone());
        }
        self.events.publish("volume", action, name, attrs);
    }

    /// Creates a volume with driver `driver` (`local` when empty), or
    /// returns the existing one of that name. An empty name makes an
    /// anonymous volume with a random name. The caller holds
    /// `volumes.guard()`. Returns whether it was created now.
    pub(crate) fn create_volume_locked(
        &self,
        name: &str,
        driver: &str,
        labels: HashMap<String, String>,
        options: HashMap<String, String>,
    ) -> Result<(VolumeRecord, bool)> {
        let drv = self.driver(driver)?;
        let (name, mut labels) = if name.is_empty() {
            let mut l = labels;
            l.insert(ANONYMOUS_LABEL.into(), String::new());
            (super::ids::random_hex(32), l)
        } else {
            (name.to_string(), labels)
        };
        if let Some(v) = self.get(&name) {
            // dockerd logs `create` for every create of a name, existing or
            // not (a container naming the volume included).
            self.volume_event("create", &name, &[]);
            return Ok((v, false));
        }
        // The driver checks the name and the options, then makes it.
        drv.create(&CreateRequest {
            name: name.clone(),
            opts: options.clone(),
        })?;
        labels.retain(|k, _| !k.is_empty());
        let rec = VolumeRecord {
            name: name.clone(),
            driver: drv.name().to_string(),
            created_at: now_secs(),
            labels,
            options,
        };
        if let Err(e) = self.store.put(Table::Volumes, &name, &rec) {
            let _ = drv.remove(&NameRequest { name });
            return Err(e);
        }
        self.index
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.clone(), rec.clone());
        self.volume_event("create", &name, &[]);
        Ok((rec, true))
    }

    /// `POST /volumes/create`.
    pub fn create_volume(&self, body: VolumeCreateOptions) -> Result<Volume> {
        let _g = self.guard();
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
        self.get(name)
            .map(|v| self.volume_view(&v))
            .ok_or_else(|| EngineError::not_found(format!("get {name}: no such volume")))
    }

    /// `GET /volumes` with filters `dangling`, `name`, `label`, `driver`.
    pub fn list_volumes(&self, filters: &Filters) -> Result<VolumeListResponse> {
        filters.validate(&["dangling", "name", "label", "driver"])?;
        let dangling = filters.get_bool("dangling")?;
        let refs = self.refs();
        let out = self
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

    /// Deletes a volume that nothing uses; the caller holds the guard. The
    /// record goes first: a crash before the driver's removal leaves a
    /// directory of no record, which the next start deletes; a driver that
    /// fails gets the record back, so nothing changed.
    pub(crate) fn remove_volume_locked(&self, name: &str) -> Result<()> {
        let rec = self.get(name);
        let drv = self.driver_of(name)?;
        self.store.delete(Table::Volumes, name)?;
        if let Err(e) = drv.remove(&NameRequest { name: name.into() }) {
            if let Some(rec) = &rec {
                if let Err(e) = self.store.put(Table::Volumes, name, rec) {
                    tracing::warn!(volume = name, error = %e, "restoring the volume's record");
                }
            }
            return Err(e);
        }
        self.index
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        self.volume_event("destroy", name, &[]);
        Ok(())
    }

    /// `DELETE /volumes/{name}`: 409 while any container uses it; `force`
    /// only makes a missing volume a success, as in Docker.
    pub fn remove_volume(&self, name: &str, force: bool) -> Result<()> {
        let _g = self.guard();
        if self.get(name).is_none() {
            if force {
                return Ok(());
            }
            return Err(EngineError::not_found(format!(
                "get {name}: no such volume"
            )));
        }
        let users = self.users_of(name);
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
        let _g = self.guard();
        let refs = self.refs();
        let mut deleted = Vec::new();
        let mut space = 0i64;
        for v in self.all() {
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
            let size = super::host::dir_size(&self.mountpoint(&v));
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
        let refs = self.refs();
        self.all()
            .iter()
            .map(|v| {
                let mut out = self.volume_view(v);
                out.usage_data = Some(VolumeUsageData {
                    size: super::host::dir_size(&self.mountpoint(v)),
                    ref_count: refs.get(&v.name).map(|r| r.len()).unwrap_or(0) as i64,
                });
                out
            })
            .collect()
    }

    /// Makes volume `name` usable for `holder` (a container or a cp
    /// session) through its driver (a device-backed local volume is
    /// mounted); returns where its content is.
    pub(crate) fn activate_volume(&self, name: &str, holder: &str) -> Result<PathBuf> {
        let m = self.driver_of(name)?.mount(&MountRequest {
            name: name.into(),
            id: holder.into(),
        })?;
        Ok(PathBuf::from(m.mountpoint))
    }

    /// After a restart: device volumes no running container uses are
    /// unmounted (the local driver's holds died with the old daemon).
    pub(crate) fn release_idle_volumes(&self) {
        self.local.release_idle();
    }

    /// Releases `holder`'s use; the driver undoes the mount once nothing
    /// uses the volume.
    pub(crate) fn deactivate_volume(&self, name: &str, holder: &str) {
        let req = MountRequest {
            name: name.into(),
            id: holder.into(),
        };
        if let Err(e) = self.driver_of(name).and_then(|d| d.unmount(&req)) {
            tracing::warn!(volume = name, error = %e, "releasing the volume");
        }
    }
}
