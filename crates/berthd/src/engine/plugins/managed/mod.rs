//! Managed (v2) plugins: installed into the daemon, run by it as a
//! container of their own, and reached like legacy plugins once enabled
//! (moby's `plugin/` package).
//!
//! A plugin is a record in the store (`Table::Plugins`, the API's `Plugin`
//! object, keyed by its 64-hex ID) and a directory
//! `<data-root>/plugins/<id>/` holding its `rootfs/` and, when its config
//! asks for a `PropagatedMount`, the host side of it (`propagated-mount/`,
//! a shared bind mount, so that what the plugin mounts there shows on the
//! host). Enabling starts its process through a [`Runner`] (the container
//! service's shim, injected: plugins know nothing of containers), with
//! `<exec-root>/plugins/<id>/` bound at `/run/docker/plugins`, waits for
//! `Interface.Socket` to answer there, and registers it with [`Plugins`].

pub mod config;
mod create;
mod distribution;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use berth_api::filters::Filters;
use berth_api::reference::Reference;

use super::client::{Addr, Client};
use super::{Plugin, Plugins};
use crate::engine::events::EventBus;
use crate::engine::store::{Store, Table};
use crate::engine::{fs, mountinfo, trash, EngineError, Result};
pub use config::{Config, PluginObj, Privilege, Settings};

/// How long a plugin has to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Where a plugin finds its socket directory (Docker's).
pub const SOCKETS_IN_PLUGIN: &str = "/run/docker/plugins";

/// What it takes to run a plugin's process, resolved from its config and
/// settings; the runner turns it into an OCI spec.
#[derive(Debug, Clone, Default)]
pub struct RunSpec {
    pub id: String,
    pub rootfs: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    /// (source, destination, type, options), in order.
    pub mounts: Vec<(String, String, String, Vec<String>)>,
    /// Host device paths given to the plugin.
    pub devices: Vec<String>,
    pub allow_all_devices: bool,
    pub capabilities: Vec<String>,
    pub host_network: bool,
    pub host_ipc: bool,
    pub host_pid: bool,
    /// The propagated mount is shared: the root's propagation is `rshared`.
    pub rshared_root: bool,
    /// Where the process's output goes (a json-file log).
    pub log: PathBuf,
}

/// Runs plugin processes (implemented by the container service with
/// berth-shim). Calls block; they are made off the async workers.
pub trait Runner: Send + Sync {
    /// Starts the process; returns once it runs.
    fn start(&self, spec: &RunSpec) -> Result<()>;
    /// Stops it: SIGTERM, SIGKILL after `grace`, then waits (bounded) for
    /// the exit and releases what the run held. Stopping what does not
    /// run is not an error.
    fn stop(&self, id: &str, grace: Duration);
    /// Whether the process of plugin `id` runs (e.g. one that outlived a
    /// daemon crash).
    fn running(&self, id: &str) -> bool;
}

/// Asked before a disable or remove without force: is a plugin (by name)
/// in use, e.g. a volume of it mounted by a running container.
pub type InUse = Box<dyn Fn(&str) -> bool + Send + Sync>;

pub struct Manager {
    root: PathBuf,
    sockets: PathBuf,
    store: Arc<Store>,
    events: Arc<EventBus>,
    plugins: Arc<Plugins>,
    records: RwLock<BTreeMap<String, PluginObj>>,
    runner: OnceLock<Box<dyn Runner>>,
    in_use: OnceLock<InUse>,
    /// One change at a time (create, enable, disable, remove, set).
    ops: Mutex<()>,
}

fn io(what: &str, p: &Path) -> impl FnOnce(std::io::Error) -> EngineError {
    let m = format!("{what} {}", p.display());
    move |e| EngineError::internal(format!("{m}: {e}"))
}

/// `plugin "x" not found`.
fn not_found(name: &str) -> EngineError {
    EngineError::not_found(format!("plugin {name:?} not found"))
}

/// A plugin's name as Docker keeps it: `rclone` → `rclone:latest`,
/// `docker.io/library/x` → `x:latest`; digests are refused.
pub fn normalize_name(name: &str) -> Result<String> {
    let r = Reference::parse(name)
        .map_err(|e| EngineError::invalid(format!("failed to parse reference {name}: {e}")))?;
    if r.digest.is_some() {
        return Err(EngineError::invalid(
            "canonical references are not permitted",
        ));
    }
    Ok(r.with_default_tag().familiar())
}

impl Manager {
    pub fn open(
        data_root: &Path,
        store: Arc<Store>,
        events: Arc<EventBus>,
        plugins: Arc<Plugins>,
    ) -> Result<Self> {
        let root = data_root.join("plugins");
        std::fs::create_dir_all(&root).map_err(io("creating", &root))?;
        // What a crash left half-created.
        if let Ok(rd) = std::fs::read_dir(&root) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with("tmp-") {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let records: BTreeMap<String, PluginObj> = store
            .load_all::<PluginObj>(Table::Plugins)?
            .into_iter()
            .collect();
        // Until `restore` has run them, none is enabled.
        for p in records.values() {
            plugins.mark_disabled(&p.name, true);
        }
        Ok(Self {
            sockets: plugins.dir().to_path_buf(),
            root,
            store,
            events,
            plugins,
            records: RwLock::new(records),
            runner: OnceLock::new(),
            in_use: OnceLock::new(),
            ops: Mutex::new(()),
        })
    }

    pub fn set_runner(&self, r: Box<dyn Runner>) {
        let _ = self.runner.set(r);
    }

    pub fn set_in_use(&self, f: InUse) {
        let _ = self.in_use.set(f);
    }

    fn runner(&self) -> Result<&dyn Runner> {
        self.runner
            .get()
            .map(|b| &**b)
            .ok_or_else(|| EngineError::internal("plugins cannot run: no runner"))
    }

    fn dir_of(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, PluginObj>> {
        self.records.read().unwrap_or_else(|e| e.into_inner())
    }

    fn save(&self, p: &PluginObj) -> Result<()> {
        self.store.put(Table::Plugins, &p.id, p)?;
        self.plugins.mark_disabled(&p.name, !p.enabled);
        self.records
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(p.id.clone(), p.clone());
        Ok(())
    }

    fn event(&self, p: &PluginObj, action: &str) {
        let attrs = [("name".to_string(), p.name.clone())].into();
        self.events.publish("plugin", action, &p.id, attrs);
    }

    /// A plugin by full ID, name (`x`, `x:tag`) or unique ID prefix.
    pub fn get(&self, name_or_id: &str) -> Result<PluginObj> {
        let m = self.read();
        if let Some(p) = m.get(name_or_id) {
            return Ok(p.clone());
        }
        if let Ok(n) = normalize_name(name_or_id) {
            if let Some(p) = m.values().find(|p| p.name == n) {
                return Ok(p.clone());
            }
        }
        let mut found = m.values().filter(|p| p.id.starts_with(name_or_id));
        match (found.next(), found.next()) {
            (Some(p), None) if !name_or_id.is_empty() => Ok(p.clone()),
            (Some(_), Some(_)) => Err(EngineError::invalid(format!(
                "multiple plugins found for {name_or_id:?}"
            ))),
            _ => Err(not_found(name_or_id)),
        }
    }

    /// `GET /plugins` with `enabled` and `capability` filters.
    pub fn list(&self, f: &Filters) -> Result<Vec<PluginObj>> {
        f.validate(&["enabled", "capability"])?;
        let enabled = f.get_bool("enabled")?;
        Ok(self
            .read()
            .values()
            .filter(|p| enabled.is_none_or(|e| p.enabled == e))
            .filter(|p| {
                !f.contains("capability")
                    || p.config
                        .capabilities()
                        .iter()
                        .all(|c| f.substring_match("capability", c))
            })
            .cloned()
            .collect())
    }

    /// `POST /plugins/{name}/set`.
    pub fn set(&self, name: &str, args: &[String]) -> Result<()> {
        let _one = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        let mut p = self.get(name)?;
        config::apply_settings(&mut p, args)?;
        self.save(&p)
    }

    fn in_use(&self, name: &str) -> bool {
        self.in_use.get().is_some_and(|f| f(name))
    }

    /// `POST /plugins/{name}/enable?timeout=`: starts the plugin and waits
    /// up to `timeout` for its socket.
    pub fn enable(&self, name: &str, timeout: Duration) -> Result<()> {
        let _one = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        let mut p = self.get(name)?;
        if p.enabled {
            return Err(EngineError::conflict(format!(
                "plugin already enabled: plugin {} is enabled",
                p.name
            )));
        }
        self.start(&p, timeout)?;
        p.enabled = true;
        self.save(&p)?;
        self.event(&p, "enable");
        Ok(())
    }

    /// `POST /plugins/{name}/disable?force=`.
    pub fn disable(&self, name: &str, force: bool) -> Result<()> {
        let _one = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        let mut p = self.get(name)?;
        if !p.enabled {
            return Err(EngineError::conflict(format!(
                "plugin is already disabled: plugin {} found but disabled",
                p.name
            )));
        }
        if !force && self.in_use(&p.name) {
            return Err(EngineError::conflict(format!(
                "plugin {} is in use",
                p.name
            )));
        }
        self.stop(&p);
        p.enabled = false;
        self.save(&p)?;
        self.event(&p, "disable");
        Ok(())
    }

    /// `DELETE /plugins/{name}?force=`.
    pub fn remove(&self, name: &str, force: bool) -> Result<()> {
        let _one = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        let p = self.get(name)?;
        if !force {
            if self.in_use(&p.name) {
                return Err(EngineError::conflict(format!(
                    "plugin {} is in use",
                    p.name
                )));
            }
            if p.enabled {
                return Err(EngineError::conflict(format!(
                    "plugin {} is enabled",
                    p.name
                )));
            }
        }
        if p.enabled {
            self.stop(&p);
        }
        let dir = self.dir_of(&p.id);
        mountinfo::unmount_under(&dir);
        self.store.delete(Table::Plugins, &p.id)?;
        self.plugins.mark_disabled(&p.name, false);
        self.records
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&p.id);
        trash::remove(&dir, &trash::dir(self.root.parent().unwrap_or(&self.root)));
        let _ = std::fs::remove_dir_all(self.socket_dir(&p.id));
        self.event(&p, "remove");
        Ok(())
    }

    /// `<exec-root>/plugins/<short id>/`, bound at `/run/docker/plugins`
    /// in the plugin (the short ID keeps socket paths under the 108 bytes
    /// of a unix address).
    fn socket_dir(&self, id: &str) -> PathBuf {
        self.sockets.join(&id[..id.len().min(12)])
    }

    /// The host directory behind the plugin's `PropagatedMount`.
    fn propagated(&self, id: &str) -> PathBuf {
        self.dir_of(id).join("propagated-mount")
    }

    fn run_spec(&self, p: &PluginObj) -> Result<RunSpec> {
        let c = &p.config;
        let socket_dir = self.socket_dir(&p.id);
        let mut mounts = Vec::new();
        if !c.propagated_mount.is_empty() {
            mounts.push((
                self.propagated(&p.id).display().to_string(),
                c.propagated_mount.clone(),
                "bind".to_string(),
                vec!["rbind".into(), "rw".into(), "rshared".into()],
            ));
        }
        for m in &p.settings.mounts {
            let Some(src) = &m.source else {
                return Err(EngineError::invalid(format!(
                    "mount source is not specified for {:?}",
                    m.name
                )));
            };
            let typ = if m.typ.is_empty() { "bind" } else { &m.typ };
            mounts.push((
                src.clone(),
                m.destination.clone(),
                typ.to_string(),
                m.options.clone().unwrap_or_default(),
            ));
        }
        mounts.push((
            socket_dir.display().to_string(),
            SOCKETS_IN_PLUGIN.to_string(),
            "bind".into(),
            vec!["rbind".into(), "rshared".into()],
        ));
        if !c.network.typ.is_empty() {
            for f in ["/etc/hosts", "/etc/resolv.conf"] {
                mounts.push((
                    f.into(),
                    f.into(),
                    "bind".into(),
                    vec!["rbind".into(), "ro".into()],
                ));
            }
        }
        let mut env = vec![format!("PATH={}", berth_runtime::DEFAULT_PATH)];
        env.extend(p.settings.env.iter().cloned());
        let mut args = c.entrypoint.clone().unwrap_or_default();
        args.extend(p.settings.args.iter().cloned());
        Ok(RunSpec {
            id: p.id.clone(),
            rootfs: self.dir_of(&p.id).join("rootfs"),
            args,
            env,
            cwd: if c.work_dir.is_empty() {
                "/".into()
            } else {
                c.work_dir.clone()
            },
            uid: c.user.uid,
            gid: c.user.gid,
            mounts,
            devices: p
                .settings
                .devices
                .iter()
                .filter_map(|d| d.path.clone())
                .collect(),
            allow_all_devices: c.linux.allow_all_devices,
            capabilities: c.linux.capabilities.clone().unwrap_or_default(),
            host_network: c.network.typ == "host",
            host_ipc: c.ipc_host,
            host_pid: c.pid_host,
            rshared_root: !c.propagated_mount.is_empty(),
            log: self.dir_of(&p.id).join("plugin.log"),
        })
    }

    /// Starts `p`'s process and registers it once its socket answers;
    /// on any failure nothing is left running or mounted.
    fn start(&self, p: &PluginObj, timeout: Duration) -> Result<()> {
        let runner = self.runner()?;
        let spec = self.run_spec(p)?;
        let socket_dir = self.socket_dir(&p.id);
        std::fs::create_dir_all(&socket_dir).map_err(io("creating", &socket_dir))?;
        let _ = std::fs::remove_file(socket_dir.join(&p.config.interface.socket));
        let started = (|| {
            if !p.config.propagated_mount.is_empty() {
                share(&self.propagated(&p.id))?;
            }
            prepare_root(&spec)?;
            runner.start(&spec)?;
            self.register(p, timeout, &spec.log)
        })();
        if let Err(e) = started {
            runner.stop(&p.id, Duration::from_secs(1));
            self.release(p);
            return Err(e);
        }
        tracing::info!(plugin = %p.name, id = %p.id, "plugin enabled");
        Ok(())
    }

    /// Waits for a running plugin's socket, then lets the daemon reach it.
    fn register(&self, p: &PluginObj, timeout: Duration, log: &Path) -> Result<()> {
        let runner = self.runner()?;
        let socket = self.socket_dir(&p.id).join(&p.config.interface.socket);
        wait_for_socket(&socket, timeout, || runner.running(&p.id)).map_err(|why| {
            EngineError::internal(format!(
                "plugin {} did not start: {why}{}",
                p.name,
                log_tail(log)
            ))
        })?;
        let client = Client::new(Addr::Unix(socket), self.plugins.timeout());
        let plugin = Plugin::new(
            p.name.clone(),
            p.config.interfaces(),
            client,
            Some(p.id.clone()),
        )
        .with_scope(
            self.dir_of(&p.id).join("rootfs"),
            p.config.propagated_mount.clone(),
            self.propagated(&p.id),
        );
        self.plugins.register(Arc::new(plugin));
        Ok(())
    }

    /// Stops `p`'s process and releases what it held.
    fn stop(&self, p: &PluginObj) {
        self.plugins.unregister(&p.name);
        if let Ok(r) = self.runner() {
            r.stop(&p.id, STOP_GRACE);
        }
        self.release(p);
    }

    fn release(&self, p: &PluginObj) {
        if !p.config.propagated_mount.is_empty() {
            mountinfo::unmount_under(&self.propagated(&p.id));
        }
        let _ = std::fs::remove_dir_all(self.socket_dir(&p.id));
    }

    /// At daemon start. Plugins run on when the daemon stops (as berth's
    /// containers do, which may hold their mounts): an enabled plugin whose
    /// process still runs is adopted, one that does not is started again
    /// (and left disabled when that fails, as Docker leaves it); the
    /// process of a disabled one is stopped.
    pub fn restore(&self, timeout: Duration) {
        let Ok(runner) = self.runner() else {
            return;
        };
        let all: Vec<PluginObj> = self.read().values().cloned().collect();
        for mut p in all {
            let _one = self.ops.lock().unwrap_or_else(|e| e.into_inner());
            let running = runner.running(&p.id);
            if !p.enabled {
                if running {
                    tracing::info!(plugin = %p.name, "stopping a disabled plugin left running");
                    runner.stop(&p.id, STOP_GRACE);
                }
                self.release(&p);
                continue;
            }
            let log = self.dir_of(&p.id).join("plugin.log");
            if running && self.register(&p, timeout, &log).is_ok() {
                tracing::info!(plugin = %p.name, "plugin adopted");
                self.plugins.mark_disabled(&p.name, false);
                continue;
            }
            if running {
                runner.stop(&p.id, STOP_GRACE);
            }
            self.release(&p);
            if let Err(e) = self.start(&p, timeout).inspect(|()| {
                self.plugins.mark_disabled(&p.name, false);
            }) {
                tracing::warn!(plugin = %p.name, "plugin not restarted: {e}");
                p.enabled = false;
                if let Err(e) = self.save(&p) {
                    tracing::warn!(plugin = %p.name, "{e}");
                }
            }
        }
    }
}

/// What the runtime needs in a plugin's root: the directories of the
/// kernel's file systems and every mount's destination, made inside the
/// root (never through a link out of it).
fn prepare_root(spec: &RunSpec) -> Result<()> {
    let root = fs::Root::open(&spec.rootfs).map_err(io("opening", &spec.rootfs))?;
    let err = |what: &str| {
        let what = what.to_string();
        move |e: std::io::Error| {
            EngineError::internal(format!("preparing the plugin's {what}: {e}"))
        }
    };
    for d in ["proc", "sys", "dev", "dev/pts", "dev/shm", "tmp"] {
        root.mkdir_all(d, 0o755).map_err(err(d))?;
    }
    for (src, dst, typ, _) in &spec.mounts {
        let is_dir = typ != "bind" || Path::new(src).is_dir();
        if is_dir {
            root.mkdir_all(dst, 0o755).map_err(err(dst))?;
        } else {
            if let Some(parent) = Path::new(dst).parent() {
                root.mkdir_all(&parent.to_string_lossy(), 0o755)
                    .map_err(err(dst))?;
            }
            root.touch(dst).map_err(err(dst))?;
        }
    }
    Ok(())
}

/// Makes `dir` a shared mount point of its own, so that mounts made under
/// it inside the plugin propagate to the host.
fn share(dir: &Path) -> Result<()> {
    use nix::mount::{mount, MsFlags};
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    if !mountinfo::is_mountpoint(dir) {
        mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| EngineError::internal(format!("bind {}: {e}", dir.display())))?;
    }
    mount(
        None::<&str>,
        dir,
        None::<&str>,
        MsFlags::MS_SHARED | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| EngineError::internal(format!("making {} shared: {e}", dir.display())))
}

/// Waits until something accepts connections on `socket`, for at most
/// `timeout`, giving up early when the process has gone.
fn wait_for_socket(
    socket: &Path,
    timeout: Duration,
    alive: impl Fn() -> bool,
) -> std::result::Result<(), String> {
    let end = Instant::now() + timeout;
    loop {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return Ok(());
        }
        if !alive() {
            return Err("its process exited".into());
        }
        if Instant::now() >= end {
            return Err(format!(
                "no socket {:?} within {}s",
                socket.file_name().unwrap_or_default(),
                timeout.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The end of a plugin's output, for an error.
fn log_tail(log: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(log) else {
        return String::new();
    };
    let lines: Vec<String> = text
        .lines()
        .rev()
        .take(3)
        .filter_map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["log"].as_str().map(|s| s.trim_end().to_string()))
        })
        .collect();
    if lines.is_empty() {
        String::new()
    } else {
        let mut lines = lines;
        lines.reverse();
        format!(" (its output: {})", lines.join(" | "))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;
    use std::sync::Mutex;

    use super::*;
    use crate::engine::plugins::discovery::Dirs;
    use crate::engine::plugins::VOLUME;

    /// A runner that runs nothing: `start` records the spec and, when
    /// `serve` is set, binds the plugin's socket as the plugin would.
    #[derive(Default)]
    struct FakeRunner {
        serve: bool,
        started: Mutex<Vec<RunSpec>>,
        running: Mutex<Option<UnixListener>>,
    }

    impl Runner for Arc<FakeRunner> {
        fn start(&self, spec: &RunSpec) -> Result<()> {
            self.started.lock().unwrap().push(spec.clone());
            if self.serve {
                let (src, _, _, _) = spec
                    .mounts
                    .iter()
                    .find(|m| m.1 == SOCKETS_IN_PLUGIN)
                    .unwrap();
                let l = UnixListener::bind(Path::new(src).join("v.sock")).unwrap();
                *self.running.lock().unwrap() = Some(l);
            }
            Ok(())
        }
        fn stop(&self, _: &str, _: Duration) {
            *self.running.lock().unwrap() = None;
        }
        fn running(&self, _: &str) -> bool {
            !self.serve || self.running.lock().unwrap().is_some()
        }
    }

    const CONFIG: &str = r#"{"entrypoint":["/bin/v","-x"],
        "interface":{"socket":"v.sock","types":["docker.volumedriver/1.0"]},
        "env":[{"name":"A","value":"1"}],"workdir":"/w"}"#;

    fn manager(t: &Path, runner: Arc<FakeRunner>) -> (Manager, Arc<Plugins>) {
        let exec = t.join("exec/plugins");
        std::fs::create_dir_all(&exec).unwrap();
        let plugins = Arc::new(Plugins::with_dirs(
            Dirs {
                sockets: vec![],
                specs: vec![],
            },
            exec,
            Duration::from_millis(500),
        ));
        let store = Arc::new(Store::open(t).unwrap());
        let m = Manager::open(t, store, Arc::new(EventBus::new()), plugins.clone()).unwrap();
        m.set_runner(Box::new(runner));
        (m, plugins)
    }

    fn tar(config: &str) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(config.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, "config.json", config.as_bytes())
            .unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, "rootfs/bin", std::io::empty())
            .unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn enable_registers_the_plugin_once_its_socket_answers() {
        let t = tempfile::tempdir().unwrap();
        let runner = Arc::new(FakeRunner {
            serve: true,
            ..Default::default()
        });
        let (m, plugins) = manager(t.path(), runner.clone());
        let p = m.create("vol", &tar(CONFIG)[..]).unwrap();
        assert_eq!(p.name, "vol:latest");
        m.enable("vol", Duration::from_secs(5)).unwrap();
        let spec = runner.started.lock().unwrap()[0].clone();
        assert_eq!(spec.args, ["/bin/v", "-x"]);
        assert_eq!(spec.cwd, "/w");
        assert_eq!(spec.env[1], "A=1");
        assert!(t
            .path()
            .join("plugins")
            .join(&p.id)
            .join("rootfs/proc")
            .is_dir());
        let got = plugins.get("vol", VOLUME).unwrap();
        assert_eq!(got.managed_id(), Some(p.id.as_str()));
        assert_eq!(
            got.scoped_path("/x/y"),
            t.path().join("plugins").join(&p.id).join("rootfs/x/y")
        );
        assert!(m.get("vol").unwrap().enabled);
        let e = m.remove("vol", false).unwrap_err();
        assert_eq!(e.to_string(), "plugin vol:latest is enabled");
        m.disable("vol", false).unwrap();
        assert!(plugins.get("vol", VOLUME).is_err());
        m.remove("vol", false).unwrap();
        assert!(m.list(&Filters::new()).unwrap().is_empty());
    }

    #[test]
    fn a_socket_that_never_appears_fails_the_enable_in_time_and_leaves_it_disabled() {
        let t = tempfile::tempdir().unwrap();
        let runner = Arc::new(FakeRunner::default());
        let (m, plugins) = manager(t.path(), runner.clone());
        let p = m.create("mute", &tar(CONFIG)[..]).unwrap();
        let start = Instant::now();
        let e = m.enable("mute", Duration::from_millis(300)).unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(3));
        assert!(
            e.to_string()
                .starts_with("plugin mute:latest did not start: no socket \"v.sock\""),
            "{e}"
        );
        assert!(!m.get("mute").unwrap().enabled);
        assert!(plugins.get("mute", VOLUME).is_err());
        assert!(!t.path().join("exec/plugins").join(&p.id[..12]).exists());
    }
}
