//! Containers: records, the in-memory index, create/inspect/list/rename/
//! remove. Lifecycle (start/stop/kill/wait, exit handling, live restore) is
//! in `lifecycle.rs`; attach, exec and logs in their own modules.

pub mod archive;
pub mod attach;
mod build_steps;
pub mod commit;
mod create;
pub mod exec;
pub mod exit;
pub mod health;
pub mod init;
mod inspect;
pub mod lifecycle;
pub mod links;
mod list;
pub mod logs;
pub mod mounts;
pub mod names;
pub mod network;
pub mod plugin_run;
pub(crate) mod release;
mod restore;
pub mod rootfs;
pub mod seccomp;
pub mod shim;
mod start;
mod state;
pub mod stats;
pub mod ulimits;
pub mod update;
pub mod validate;

pub use create::CreateOptions;
pub use init::{init_path, install_init};
pub use inspect::status_text;
pub use state::Status;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use berth_api::models::{
    ContainerConfig, ContainerCreateBody, ContainerInspectResponse, ContainerState,
    ContainerStateStatusEnum, ContainerSummary, ContainerSummaryHostConfig,
    ContainerSummaryNetworkSettings, ContainerSummaryStateEnum, ContainerTopResponse, DriverData,
    HostConfig, HostConfigLogConfig, NetworkSettings,
};
use berth_runtime::DEFAULT_PATH;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::events::EventBus;
use super::fs::snapshot::RwLayer;
use super::images::ImageService;
use super::networks::Networks;
use super::plugins::Plugins;
use super::registry::Registries;
use super::settings::Live;
use super::store::{Store, Table};
use super::volumes::Volumes;
use super::{EngineError, Result};
use crate::config::DaemonConfig;

const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The runtimes `/info` lists (name, path). Containers report dockerd's
/// runtime names (`HostConfig.Runtime` is "runc" by default); berth's shim is
/// what serves them.
pub const RUNTIMES: &[(&str, &str)] = &[
    ("io.containerd.runc.v2", "berth-shim"),
    ("runc", "berth-shim"),
];

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunState {
    pub status: Status,
    pub pid: i64,
    pub exit_code: i64,
    pub error: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub oom_killed: bool,
}

/// The persisted container.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Record {
    pub id: String,
    /// Without the leading slash.
    pub name: String,
    pub created: String,
    pub path: String,
    pub args: Vec<String>,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    pub image_id: String,
    pub platform: String,
    pub state: RunState,
    pub restart_count: i64,
    pub has_been_started: bool,
    /// Network name → endpoint (config, and addresses while running).
    pub endpoints: crate::engine::networks::EndpointMap,
    /// Published ports while running.
    pub ports: Option<berth_api::models::PortMap>,
    /// Set by `stop`, cleared by `start`: restart policies leave it alone.
    pub manually_stopped: bool,
    pub health: Option<berth_api::models::Health>,
    /// The mount plan: volumes, binds and tmpfs mounts (moby's `MountPoints`).
    pub mounts: Vec<mounts::MountRec>,
    /// Registered legacy links (see `links.rs`).
    pub links: Vec<links::Link>,
    /// Paused by a `commit` (not by `docker pause`): a daemon that died
    /// mid-commit resumes it at start, as the commit would have.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub paused_for_commit: bool,
}

/// What waiters watch.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub exits: u64,
    pub starts: u64,
    pub removed: bool,
    pub exit_code: i64,
}

pub struct Container {
    pub id: String,
    rec: Mutex<Record>,
    /// Serialises lifecycle operations on this container.
    pub op: tokio::sync::Mutex<()>,
    pub progress: watch::Sender<Progress>,
    /// Attach requests waiting for the next start.
    pub pending: Mutex<Vec<attach::Pending>>,
    /// The restart policy's current back-off.
    pub backoff: Mutex<std::time::Duration>,
    /// A start prepared ahead (see `prestart.rs`).
    staged: Mutex<Option<start::Staged>>,
    /// dockerd's "exit on next": the exit a `kill` causes is not restarted
    /// by the policy (in memory only, like dockerd's cancelled restart
    /// manager; the next start clears it).
    pub exit_on_next: std::sync::atomic::AtomicBool,
    /// A forced removal waits for this exit: the record is deleted
    /// durably right after, so the exit is written without waiting for
    /// the disk (one disk flush per `rm -f`, not two).
    pub removing: std::sync::atomic::AtomicBool,
}

impl Container {
    fn new(rec: Record) -> Arc<Self> {
        let (progress, _) = watch::channel(Progress {
            exit_code: rec.state.exit_code,
            ..Default::default()
        });
        Arc::new(Self {
            id: rec.id.clone(),
            rec: Mutex::new(rec),
            op: tokio::sync::Mutex::new(()),
            progress,
            pending: Mutex::new(Vec::new()),
            backoff: Mutex::new(std::time::Duration::ZERO),
            staged: Mutex::new(None),
            exit_on_next: Default::default(),
            removing: Default::default(),
        })
    }

    fn staged_slot(&self) -> MutexGuard<'_, Option<start::Staged>> {
        self.staged.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn lock(&self) -> MutexGuard<'_, Record> {
        self.rec.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn snapshot(&self) -> Record {
        self.lock().clone()
    }

    pub fn status(&self) -> Status {
        self.lock().state.status
    }

    pub fn tty(&self) -> bool {
        self.lock().config.tty.unwrap_or(false)
    }

    pub fn name(&self) -> String {
        self.lock().name.clone()
    }
}

#[derive(Default)]
pub struct Index {
    by_id: HashMap<String, Arc<Container>>,
    names: HashMap<String, String>,
}

impl Index {
    pub fn all(&self) -> Vec<Arc<Container>> {
        self.by_id.values().cloned().collect()
    }
}

/// Where a container's files live.
pub struct Paths {
    pub dir: PathBuf,
    pub rw: RwLayer,
    pub hosts: PathBuf,
    pub hostname: PathBuf,
    pub resolv: PathBuf,
    pub log: PathBuf,
    pub bundle: PathBuf,
    pub socket: PathBuf,
    pub netns: PathBuf,
}

/// The container service: the records and their index, and every container
/// operation (create, start, stop, exec, attach, logs, commit, cp, ...).
/// It composes the services a container uses — images for its root,
/// volumes and networks for its mounts and endpoints, plugins for their
/// drivers, registries to pull a FROM image of a build — through the
/// handles below; none of them holds a handle back (they see the index
/// only, through the checkers `Engine::open` injects).
pub struct Containers {
    pub config: DaemonConfig,
    pub store: Arc<Store>,
    pub events: Arc<EventBus>,
    pub images: Arc<ImageService>,
    pub networks: Arc<Networks>,
    pub volumes: Arc<Volumes>,
    pub plugins: Arc<Plugins>,
    pub registries: Arc<Registries>,
    /// The reloadable settings (default ulimits).
    pub live: Arc<Live>,
    /// The daemon's shutdown signal (the engine's, shared).
    shutdown: Arc<watch::Sender<bool>>,
    pub index: Arc<RwLock<Index>>,
    pub shim_bin: shim::ShimBinary,
    pub execs: RwLock<HashMap<String, Arc<exec::Exec>>>,
    pub bpf: seccomp::BpfCache,
}

/// What the container service composes (see `Containers`).
pub struct Handles {
    pub config: DaemonConfig,
    pub store: Arc<Store>,
    pub events: Arc<EventBus>,
    pub images: Arc<ImageService>,
    pub networks: Arc<Networks>,
    pub volumes: Arc<Volumes>,
    pub plugins: Arc<Plugins>,
    pub registries: Arc<Registries>,
    pub live: Arc<Live>,
    pub shutdown: Arc<watch::Sender<bool>>,
    /// The sealed copy of berth-shim every container runs under.
    pub shim_bin: shim::ShimBinary,
}

impl Containers {
    /// Loads the records; the exec root holds the compiled seccomp filters.
    pub fn open(h: Handles) -> Result<Self> {
        let mut idx = Index::default();
        for (id, rec) in h.store.load_all::<Record>(Table::Containers)? {
            idx.names.insert(rec.name.clone(), id.clone());
            idx.by_id.insert(id, Container::new(rec));
        }
        Ok(Self {
            index: Arc::new(RwLock::new(idx)),
            shim_bin: h.shim_bin,
            execs: RwLock::new(HashMap::new()),
            bpf: seccomp::BpfCache::new(h.config.exec_root.join("seccomp")),
            config: h.config,
            store: h.store,
            events: h.events,
            images: h.images,
            networks: h.networks,
            volumes: h.volumes,
            plugins: h.plugins,
            registries: h.registries,
            live: h.live,
            shutdown: h.shutdown,
        })
    }

    /// Ends with the daemon (long-lived streams: logs -f, stats, exits).
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn all(&self) -> Vec<Arc<Container>> {
        self.read().by_id.values().cloned().collect()
    }

    /// By full ID, name (with or without `/`), or unique ID prefix.
    pub fn find(&self, key: &str) -> Result<Arc<Container>> {
        let idx = self.read();
        if let Some(c) = idx.by_id.get(key) {
            return Ok(c.clone());
        }
        let name = key.strip_prefix('/').unwrap_or(key);
        if let Some(id) = idx.names.get(name) {
            if let Some(c) = idx.by_id.get(id) {
                return Ok(c.clone());
            }
        }
        // A link name, `parent/alias`, names the link's target.
        if let Some((parent, alias)) = name.rsplit_once('/') {
            let target = idx
                .names
                .get(parent)
                .and_then(|id| idx.by_id.get(id))
                .and_then(|p| {
                    p.lock()
                        .links
                        .iter()
                        .find(|l| l.alias == alias)
                        .map(|l| l.target.clone())
                })
                .and_then(|t| idx.by_id.get(&t));
            if let Some(c) = target {
                return Ok(c.clone());
            }
        }
        if !key.is_empty() && key.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut hits = idx.by_id.iter().filter(|(id, _)| id.starts_with(key));
            if let Some((_, c)) = hits.next() {
                if hits.next().is_some() {
                    return Err(EngineError::invalid(format!(
                        "multiple IDs found with provided prefix: {key}"
                    )));
                }
                return Ok(c.clone());
            }
        }
        Err(EngineError::not_found(format!("No such container: {key}")))
    }

    /// Containers using an image (for `rmi` and `ImageSummary.Containers`).
    pub fn users_of(index: &RwLock<Index>, image_id: &str) -> Vec<super::images::ImageUser> {
        let idx = index.read().unwrap_or_else(|p| p.into_inner());
        idx.by_id
            .values()
            .filter_map(|c| {
                let r = c.lock();
                (r.image_id == image_id).then(|| super::images::ImageUser {
                    container_id: r.id.clone(),
                    running: r.state.status.is_running(),
                })
            })
            .collect()
    }
}

/// dockerd's process environment: `PATH`, `HOSTNAME`, `TERM` (with a
/// TTY) and the links' variables, then each of `layers` in turn, an entry
/// replacing one of the same name in place or else coming last.
pub fn daemon_env(
    hostname: &str,
    tty: bool,
    linked: Vec<String>,
    layers: &[&[String]],
) -> Vec<String> {
    let mut env = vec![
        format!("PATH={DEFAULT_PATH}"),
        format!("HOSTNAME={hostname}"),
    ];
    if tty {
        env.push("TERM=xterm".into());
    }
    env.extend(linked);
    let key = |e: &str| e.split('=').next().unwrap_or_default().to_string();
    for layer in layers {
        for e in layer.iter() {
            match env.iter().position(|d| key(d) == key(e)) {
                Some(i) => env[i] = e.clone(),
                None => env.push(e.clone()),
            }
        }
    }
    env
}

pub use crate::engine::clock::now;

impl Containers {
    pub fn paths(&self, id: &str) -> Paths {
        let dir = self.config.data_root.join("containers").join(id);
        Paths {
            rw: RwLayer::at(&dir),
            hosts: dir.join("hosts"),
            hostname: dir.join("hostname"),
            resolv: dir.join("resolv.conf"),
            log: dir.join(format!("{id}-json.log")),
            bundle: self.config.exec_root.join("containers").join(id),
            socket: self.config.exec_root.join("s").join(format!("{id}.sock")),
            netns: self.config.exec_root.join("netns").join(id),
            dir,
        }
    }

    pub fn persist(&self, c: &Container) -> Result<()> {
        let rec = c.snapshot();
        self.store.put(Table::Containers, &rec.id, &rec)
    }

    /// `persist` without waiting for the disk (see `Store::put_lazily`).
    pub(super) fn persist_lazily(&self, c: &Container) -> Result<()> {
        let rec = c.snapshot();
        self.store.put_lazily(Table::Containers, &rec.id, &rec)
    }

    pub fn container_event(&self, c: &Record, action: &str, extra: &[(&str, String)]) {
        let mut attrs: HashMap<String, String> = c.config.labels.clone().unwrap_or_default();
        attrs.insert("name".into(), c.name.clone());
        attrs.insert("image".into(), c.config.image.clone().unwrap_or_default());
        for (k, v) in extra {
            attrs.insert(k.to_string(), v.clone());
        }
        self.events.publish("container", action, &c.id, attrs);
    }

    pub fn rename_container(&self, key: &str, new_name: &str) -> Result<()> {
        if new_name.is_empty() {
            return Err(EngineError::invalid(
                "Neither old nor new names may be empty",
            ));
        }
        let c = self.find(key)?;
        // dockerd checks the new name with its slash, under this prefix.
        let new = names::validate(new_name).map_err(|_| {
            EngineError::invalid(format!(
                "Error when allocating new name: Invalid container name (/{}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                new_name.trim_start_matches('/')
            ))
        })?;
        let old = {
            let mut idx = self.write();
            let old = c.name();
            if old == new {
                return Err(EngineError::invalid(
                    "Renaming a container with the same name as its current name",
                ));
            }
            if let Some(other) = idx.names.get(&new) {
                return Err(EngineError::conflict(format!(
                    "Error when allocating new name: Conflict. The container name \"/{new}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
                )));
            }
            idx.names.remove(&old);
            idx.names.insert(new.clone(), c.id.clone());
            c.lock().name = new.clone();
            old
        };
        if let Err(e) = self.persist(&c) {
            let mut idx = self.write();
            idx.names.remove(&new);
            idx.names.insert(old.clone(), c.id.clone());
            c.lock().name = old;
            return Err(e);
        }
        self.networks.rename_endpoints(&c.id, &new);
        self.container_event(&c.snapshot(), "rename", &[("oldName", format!("/{old}"))]);
        Ok(())
    }

    /// Drops a container from the index and the store, and its files.
    pub fn forget_container(&self, c: &Arc<Container>) -> Result<()> {
        self.forget(c, true)
    }

    /// `forget_container`; `durable: false` does not wait for the store's
    /// disk write (for an AutoRemove container that exited: should the
    /// deletion be lost in a crash, the record says it runs, and the daemon
    /// removes it at start when it finds no shim).
    pub(super) fn forget(&self, c: &Arc<Container>, durable: bool) -> Result<()> {
        let r = c.snapshot();
        let p = self.paths(&r.id);
        if durable {
            // On a full disk the container's own files make the room
            // (dockerd, which deletes files first, never meets this): a
            // `run --rm` whose start failed there is still removed.
            self.store
                .delete_making_room(Table::Containers, &r.id, || {
                    start::drop_now(c, &p);
                    p.rw.unmount();
                    super::trash::remove(&p.dir, &super::trash::dir(&self.config.data_root));
                })?;
        } else {
            self.store.delete_lazily(Table::Containers, &r.id)?;
        }
        {
            let mut idx = self.write();
            idx.by_id.remove(&r.id);
            if idx.names.get(&r.name) == Some(&r.id) {
                idx.names.remove(&r.name);
            }
        }
        if r.host_config.auto_remove == Some(true) {
            self.remove_anonymous_volumes(&r);
        }
        // A forwarding driver still retrying for it gives up.
        crate::engine::logging::forward::cancel(&r.id);
        start::drop_now(c, &p);
        p.rw.unmount();
        super::networks::netns::remove(&p.netns);
        // Normally gone with the shim; one killed leaves them.
        if super::cgroups::exists(&r.id) {
            super::cgroups::kill_all(&r.id, Duration::from_secs(2));
            super::cgroups::remove(&r.id);
        }
        super::trash::remove(&p.bundle, &super::trash::dir(&self.config.exec_root));
        super::trash::remove(&p.dir, &super::trash::dir(&self.config.data_root));
        c.progress.send_modify(|p| p.removed = true);
        Ok(())
    }
}

use crate::engine::host::dir_size;
