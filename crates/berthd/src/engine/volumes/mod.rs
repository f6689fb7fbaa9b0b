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
mod held;
pub mod local;
pub mod plugin;

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
use super::plugins::{self, Plugins};
use super::store::{Store, Table};
use super::{EngineError, Result};
use driver::{CreateRequest, MountRequest, NameRequest, VolumeDriver};
pub use local::{validate_name, LOCAL};

/// A plugin volume's `Status`, as its `Get` gives it.
pub type Status = HashMap<String, serde_json::Value>;

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
    /// The built-in drivers by name (`local`); any other name is a plugin.
    drivers: HashMap<String, Arc<dyn VolumeDriver>>,
    local: Arc<local::LocalDriver>,
    plugins: Arc<Plugins>,
    scopes: plugin::Scopes,
    held: held::HeldMounts,
}

impl Volumes {
    pub fn open(
        data_root: &Path,
        store: Arc<Store>,
        events: Arc<EventBus>,
        plugins: Arc<Plugins>,
    ) -> Result<Self> {
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
        let held = held::HeldMounts::open(store.clone());
        Ok(Self {
            store,
            events,
            users,
            index: RwLock::new(index),
            lock: Mutex::new(()),
            drivers,
            local,
            plugins,
            scopes: plugin::Scopes::default(),
            held,
        })
    }

    /// Installs the container side's view of volume use (once).
    pub fn set_users(&self, users: Box<dyn VolumeUsers>) {
        let _ = self.users.set(users);
    }

    /// Whether a volume of the plugin `driver` is mounted by a container
    /// (a managed plugin so used is not disabled without force).
    pub fn driver_in_use(&self, driver: &str) -> bool {
        self.held.any_of_driver(driver)
    }

    /// Volume name → IDs of the containers that name it.
    pub fn refs(&self) -> HashMap<String, Vec<String>> {
        self.users.get().map(|u| u.refs()).unwrap_or_default()
    }

    /// IDs of the containers that name volume `name`.
    pub fn users_of(&self, name: &str) -> Vec<String> {
        self.refs().remove(name).unwrap_or_default()
    }

    /// The driver of that name (`local` when empty): a built-in one, else
    /// a volume plugin (activated on first use), or Docker's error for one
    /// it cannot find.
    pub fn driver(&self, name: &str) -> Result<Arc<dyn VolumeDriver>> {
        let name = if name.is_empty() { LOCAL } else { name };
        if let Some(d) = self.drivers.get(name) {
            return Ok(d.clone());
        }
        match self.plugins.get(name, plugins::VOLUME) {
            Ok(p) => Ok(Arc::new(plugin::PluginDriver::new(p, self.scopes.clone()))),
            Err(e) => {
                let msg = format!("error looking up volume plugin {name}: {e}");
                Err(match e {
                    EngineError::NotFound(_) => EngineError::not_found(msg),
                    _ => EngineError::internal(msg),
                })
            }
        }
    }

    /// Whether `driver` is one of the built-in drivers (not a plugin).
    fn builtin(&self, driver: &str) -> bool {
        driver.is_empty() || self.drivers.contains_key(driver)
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

fn scope_of(c: &driver::CapabilitiesResponse) -> VolumeScopeEnum {
    if c.capabilities.scope == "global" {
        VolumeScopeEnum::GLOBAL
    } else {
        VolumeScopeEnum::LOCAL
    }
}

fn view_of(v: &VolumeRecord, mountpoint: String, scope: VolumeScopeEnum) -> Volume {
    Volume {
        name: v.name.clone(),
        driver: v.driver.clone(),
        mountpoint,
        created_at: (!v.created_at.is_empty()).then(|| v.created_at.clone()),
        status: None,
        labels: v.labels.clone(),
        scope: Some(scope),
        cluster_volume: None,
        options: v.options.clone(),
        usage_data: None,
    }
}

/// The record-like view of a volume a plugin lists without a record.
fn unrecorded(driver: &str, info: driver::VolumeInfo) -> VolumeRecord {
    VolumeRecord {
        name: info.name,
        driver: driver.to_string(),
        created_at: info.created_at,
        ..Default::default()
    }
}

impl Volumes {
    /// A recorded volume as the API shows it, its mountpoint and scope
    /// asked of its driver (`Path`, `Capabilities`).
    fn volume_view(&self, v: &VolumeRecord) -> Volume {
        let scope = self
            .driver(&v.driver)
            .map(|d| scope_of(&d.capabilities()))
            .unwrap_or(VolumeScopeEnum::LOCAL);
        view_of(v, self.mountpoint(v).display().to_string(), scope)
    }

    /// `inspect`'s view: a plugin's volume with what its `Get` says
    /// (mountpoint and `Status`).
    fn detailed_view(&self, v: &VolumeRecord) -> Result<(Volume, Option<Status>)> {
        if self.builtin(&v.driver) {
            return Ok((self.volume_view(v), None));
        }
        let d = self.driver(&v.driver)?;
        let got = d.get(&NameRequest {
            name: v.name.clone(),
        })?;
        let mut mountpoint = got.volume.mountpoint;
        if mountpoint.is_empty() {
            mountpoint = self.mountpoint(v).display().to_string();
        }
        let status = (!got.volume.status.is_empty()).then_some(got.volume.status);
        Ok((view_of(v, mountpoint, scope_of(&d.capabilities())), status))
    }

    /// A volume that a plugin knows and berth has no record of (made
    /// behind the daemon's back, or on another host for a `global` one):
    /// the first plugin whose `Get` finds it.
    fn find_in_plugins(&self, name: &str) -> Option<(Arc<dyn VolumeDriver>, VolumeRecord)> {
        let req = NameRequest { name: name.into() };
        for p in self.plugins.all(plugins::VOLUME) {
            let d: Arc<dyn VolumeDriver> =
                Arc::new(plugin::PluginDriver::new(p, self.scopes.clone()));
            if let Ok(g) = d.get(&req) {
                let rec = unrecorded(d.name(), g.volume);
                return Some((d, rec));
            }
        }
        None
    }

    pub(crate) fn volume_event(&self, action: &str, name: &str, extra: &[(&str, String)]) {
        let mut attrs: HashMap<String, String> = HashMap::new();
        let driver = self.get(name).map(|v| v.driver).unwrap_or_default();
        attrs.insert(
            "driver".into(),
            if driver.is_empty() {
                LOCAL.into()
            } else {
                driver
            },
        );
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
            let had = if v.driver.is_empty() {
                LOCAL
            } else {
                &v.driver
            };
            if !driver.is_empty() && had != drv.name() {
                return Err(EngineError::conflict(format!(
                    "create {name}: driver '{had}' already has volume '{name}': volume name must be unique"
                )));
            }
            // dockerd logs `create` for every create of a name, existing or
            // not (a container naming the volume included).
            self.volume_event("create", &name, &[]);
            return Ok((v, false));
        }
        // The driver checks the name and the options, then makes it.
        drv.create(&CreateRequest {
            name: name.clone(),
            opts: options.clone(),
        })
        .map_err(|e| {
            if self.builtin(driver) {
                e
            } else {
                op_error("create", &name, e)
            }
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

    /// `GET /volumes/{name}`, with the `Status` a plugin's `Get` gives
    /// (the wire type cannot hold it: the server adds it).
    pub fn inspect_volume(&self, name: &str) -> Result<(Volume, Option<Status>)> {
        match self.get(name) {
            Some(rec) => self.detailed_view(&rec),
            None => {
                let (d, rec) = self
                    .find_in_plugins(name)
                    .ok_or_else(|| EngineError::not_found(format!("get {name}: no such volume")))?;
                let got = d.get(&NameRequest { name: name.into() })?;
                let status = (!got.volume.status.is_empty()).then_some(got.volume.status);
                let scope = scope_of(&d.capabilities());
                Ok((view_of(&rec, got.volume.mountpoint, scope), status))
            }
        }
    }

    /// `GET /volumes` with filters `dangling`, `name`, `label`, `driver`:
    /// the records, merged as Docker does with what each volume plugin
    /// lists (a plugin's volume berth has no record of shows too; a
    /// recorded one its plugin no longer lists does not). A plugin that
    /// fails to list is a warning, and its recorded volumes show as
    /// recorded.
    pub fn list_volumes(&self, filters: &Filters) -> Result<VolumeListResponse> {
        filters.validate(&["dangling", "name", "label", "driver"])?;
        let dangling = filters.get_bool("dangling")?;
        let refs = self.refs();
        let mut warnings = Vec::new();
        // Plugin name → what it lists (with its scope), or `None` if the
        // listing failed.
        let mut listed: HashMap<String, Option<(Vec<driver::VolumeInfo>, VolumeScopeEnum)>> =
            HashMap::new();
        let drivers: Vec<plugin::PluginDriver> = self
            .plugins
            .all(plugins::VOLUME)
            .into_iter()
            .filter(|p| filters.exact_match("driver", p.name()))
            .map(|p| plugin::PluginDriver::new(p, self.scopes.clone()))
            .collect();
        // All at once, as Docker does: a slow plugin costs one timeout.
        let answers = plugins::client::blocking(|| {
            std::thread::scope(|s| {
                let asks: Vec<_> = drivers
                    .iter()
                    .map(|d| s.spawn(move || d.list().map(|l| (l, d.capabilities()))))
                    .collect();
                asks.into_iter()
                    .map(|a| {
                        a.join().unwrap_or_else(|_| {
                            Err(EngineError::internal("listing volumes: the call panicked"))
                        })
                    })
                    .collect::<Vec<_>>()
            })
        });
        for (d, answer) in drivers.iter().zip(answers) {
            let entry = match answer {
                Ok((l, caps)) => Some((l.volumes, scope_of(&caps))),
                Err(e) => {
                    warnings.push(format!("list {}: {e}", d.name()));
                    None
                }
            };
            listed.insert(d.name().to_string(), entry);
        }
        let records = self.all();
        let mut out: Vec<Volume> = Vec::new();
        for v in &records {
            if self.builtin(&v.driver) {
                out.push(self.volume_view(v));
                continue;
            }
            match listed.get(&v.driver) {
                Some(Some((vols, scope))) => {
                    if let Some(info) = vols.iter().find(|i| i.name == v.name) {
                        out.push(view_of(v, info.mountpoint.clone(), *scope));
                    }
                }
                // Its plugin failed to list, or is not there at all: the
                // record is all there is to show.
                _ => out.push(view_of(v, String::new(), VolumeScopeEnum::LOCAL)),
            }
        }
        for (driver, entry) in &listed {
            let Some((vols, scope)) = entry else { continue };
            for info in vols {
                if records.iter().any(|r| r.name == info.name) {
                    continue;
                }
                let rec = unrecorded(driver, info.clone());
                out.push(view_of(&rec, info.mountpoint.clone(), *scope));
            }
        }
        out.retain(|v| {
            dangling.is_none_or(|d| d != refs.contains_key(&v.name))
                && filters.substring_match("name", &v.name)
                && filters.exact_match("driver", &v.driver)
                && filters.match_labels("label", Some(&v.labels))
        });
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(VolumeListResponse {
            volumes: Some(out),
            warnings: (!warnings.is_empty()).then_some(warnings),
        })
    }

    /// Deletes a volume that nothing uses; the caller holds the guard. The
    /// record goes first: a crash before the driver's removal leaves a
    /// directory of no record, which the next start deletes; a driver that
    /// fails gets the record back, so nothing changed.
    pub(crate) fn remove_volume_locked(&self, name: &str) -> Result<()> {
        let rec = self.get(name);
        let driver = rec.as_ref().map(|r| r.driver.clone()).unwrap_or_default();
        let drv = self
            .driver(&driver)
            .map_err(|e| op_error("remove", name, e))?;
        self.store.delete(Table::Volumes, name)?;
        if let Err(e) = drv.remove(&NameRequest { name: name.into() }) {
            if let Some(rec) = &rec {
                if let Err(e) = self.store.put(Table::Volumes, name, rec) {
                    tracing::warn!(volume = name, error = %e, "restoring the volume's record");
                }
            }
            return Err(if self.builtin(&driver) {
                e
            } else {
                op_error("remove", name, e)
            });
        }
        self.forget(name, &driver);
        Ok(())
    }

    /// Drops volume `name`'s record from the index, and says so.
    fn forget(&self, name: &str, driver: &str) {
        self.index
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        let driver = if driver.is_empty() { LOCAL } else { driver };
        self.volume_event("destroy", name, &[("driver", driver.to_string())]);
    }

    /// `DELETE /volumes/{name}`: 409 while any container uses it. With
    /// `force` a missing volume is a success and, as Docker's purge on
    /// error, a plugin volume whose plugin fails to remove it (or is gone)
    /// loses its record anyway. A volume a plugin has and berth has no
    /// record of is removed through that plugin.
    pub fn remove_volume(&self, name: &str, force: bool) -> Result<()> {
        let _g = self.guard();
        let users = self.users_of(name);
        if !users.is_empty() {
            return Err(EngineError::conflict(format!(
                "remove {name}: volume is in use - [{}]",
                users.join(" ")
            )));
        }
        let Some(rec) = self.get(name) else {
            if let Some((d, _)) = self.find_in_plugins(name) {
                d.remove(&NameRequest { name: name.into() })
                    .map_err(|e| op_error("remove", name, e))?;
                self.volume_event("destroy", name, &[("driver", d.name().to_string())]);
                return Ok(());
            }
            if force {
                return Ok(());
            }
            return Err(EngineError::not_found(format!(
                "get {name}: no such volume"
            )));
        };
        match self.remove_volume_locked(name) {
            Err(e) if force && !self.builtin(&rec.driver) => {
                tracing::warn!(volume = name, error = %e, "purging the volume's record");
                self.store.delete(Table::Volumes, name)?;
                self.forget(name, &rec.driver);
                Ok(())
            }
            r => r,
        }
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
            // Docker prunes the `local` driver's volumes only.
            if refs.contains_key(&v.name) || (!all && !v.anonymous()) || !self.builtin(&v.driver) {
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
    /// As Docker's, only the `local` driver's volumes: a plugin's may be
    /// remote, and are not walked.
    pub fn volumes_disk_usage(&self) -> Vec<Volume> {
        let refs = self.refs();
        self.all()
            .iter()
            .filter(|v| self.builtin(&v.driver))
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
    /// mounted, a plugin is sent `Mount`); returns where its content is.
    /// `source` is where the volume was when the mount was planned (its
    /// `Mountpoint` then), which Docker names in a plugin's failure.
    pub(crate) fn activate_volume(
        &self,
        name: &str,
        holder: &str,
        source: &str,
    ) -> Result<PathBuf> {
        let driver = self.get(name).map(|v| v.driver).unwrap_or_default();
        let req = MountRequest {
            name: name.into(),
            id: holder.into(),
        };
        if self.builtin(&driver) {
            return Ok(PathBuf::from(self.driver(&driver)?.mount(&req)?.mountpoint));
        }
        let wrap = |e: EngineError| {
            let msg = format!("error while mounting volume '{source}': {e}");
            match e {
                EngineError::NotFound(_) => EngineError::not_found(msg),
                _ => EngineError::internal(msg),
            }
        };
        let m = self
            .driver(&driver)
            .and_then(|d| d.mount(&req))
            .map_err(wrap)?;
        self.held.add(held::Held {
            volume: name.into(),
            driver,
            holder: holder.into(),
        });
        Ok(PathBuf::from(m.mountpoint))
    }

    /// After a restart: device volumes no running container uses are
    /// unmounted (the local driver's holds died with the old daemon), and
    /// every plugin volume still mounted for a holder that no longer runs
    /// (`running` says which do) is sent its `Unmount`.
    pub(crate) fn release_idle_volumes(&self, running: &dyn Fn(&str) -> bool) {
        self.local.release_idle();
        for h in self.held.take_stale(running) {
            tracing::info!(volume = %h.volume, holder = %h.holder, "unmounting a plugin volume left mounted");
            self.unmount_held(&h);
        }
    }

    fn unmount_held(&self, h: &held::Held) {
        let req = MountRequest {
            name: h.volume.clone(),
            id: h.holder.clone(),
        };
        if let Err(e) = self.driver(&h.driver).and_then(|d| d.unmount(&req)) {
            tracing::warn!(volume = %h.volume, error = %e, "unmounting the plugin volume");
        }
    }

    /// Releases `holder`'s use; the driver undoes the mount once nothing
    /// uses the volume. A plugin hears `Unmount` only for a `Mount` it
    /// answered.
    pub(crate) fn deactivate_volume(&self, name: &str, holder: &str) {
        if let Some(h) = self.held.take(name, holder) {
            self.unmount_held(&h);
            return;
        }
        let driver = self.get(name).map(|v| v.driver).unwrap_or_default();
        if !self.builtin(&driver) {
            return;
        }
        let req = MountRequest {
            name: name.into(),
            id: holder.into(),
        };
        if let Err(e) = self.driver(&driver).and_then(|d| d.unmount(&req)) {
            tracing::warn!(volume = name, error = %e, "releasing the volume");
        }
    }
}

/// Docker's wording of a failed operation on a volume (`create v: ...`),
/// of the same kind.
fn op_error(op: &str, name: &str, e: EngineError) -> EngineError {
    let msg = format!("{op} {name}: {e}");
    match e {
        EngineError::NotFound(_) => EngineError::not_found(msg),
        EngineError::InvalidParameter(_) => EngineError::invalid(msg),
        EngineError::Conflict(_) => EngineError::conflict(msg),
        _ => EngineError::internal(msg),
    }
}
