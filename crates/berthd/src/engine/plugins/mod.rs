//! Plugins: the processes that extend the daemon over Docker's plugin
//! protocol (JSON over HTTP on a socket). This module finds and activates
//! them and hands out a [`Plugin`] that speaks to one; what each interface
//! means is the business of the service it extends (a volume plugin is a
//! `volumes::driver::VolumeDriver`, and so on), which asks for a plugin by
//! name and interface.
//!
//! Legacy plugins are found on disk (`discovery.rs`) and activated lazily
//! (`POST /Plugin.Activate`, whose `Implements` lists the interfaces);
//! managed plugins register themselves here when enabled, so both reach
//! the same code.

pub mod client;
pub mod discovery;
pub mod managed;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{EngineError, Result};
use crate::config::DaemonConfig;
use client::{Addr, CallError, Client};
use discovery::{Dirs, Found};

/// The interface names of `Implements` (and, with a version, of a managed
/// plugin's `Interface.Types`).
pub const VOLUME: &str = "VolumeDriver";
pub const NETWORK: &str = "NetworkDriver";
pub const IPAM: &str = "IpamDriver";
pub const LOG: &str = "LogDriver";
pub const AUTHZ: &str = "authz";

/// Docker's words when a plugin lacks the interface asked for.
pub const NOT_IMPLEMENTED: &str = "Plugin does not implement the requested driver";

/// Where the system's legacy plugins live besides berth's own directory:
/// Docker's, so that plugins written for Docker work unchanged.
const DOCKER_SOCKETS: &str = "/run/docker/plugins";
const SPEC_DIRS: &[&str] = &[
    "/etc/berth/plugins",
    "/etc/docker/plugins",
    "/usr/lib/docker/plugins",
];

/// An activated plugin.
#[derive(Debug)]
pub struct Plugin {
    name: String,
    implements: Vec<String>,
    client: Client,
    /// The ID of a managed plugin; `None` for a legacy one.
    managed: Option<String>,
    /// A managed plugin's file system, to turn the paths it answers into
    /// host paths (see [`Plugin::scoped_path`]).
    scope: Option<Scope>,
}

/// Where a managed plugin's paths are on the host.
#[derive(Debug, Clone)]
struct Scope {
    rootfs: PathBuf,
    /// `PropagatedMount` in the plugin, and its host directory.
    propagated: String,
    propagated_host: PathBuf,
}

impl Plugin {
    /// A plugin reached through `client`; managed plugins are made here by
    /// their manager, legacy ones by activation.
    pub fn new(
        name: impl Into<String>,
        implements: Vec<String>,
        client: Client,
        managed: Option<String>,
    ) -> Self {
        Self {
            name: name.into(),
            implements,
            client,
            managed,
            scope: None,
        }
    }

    /// A managed plugin's roots: its `rootfs` and, when it has one, its
    /// `PropagatedMount` (`propagated`, in the plugin) with the host
    /// directory behind it.
    pub fn with_scope(mut self, rootfs: PathBuf, propagated: String, host: PathBuf) -> Self {
        self.scope = Some(Scope {
            rootfs,
            propagated,
            propagated_host: host,
        });
        self
    }

    /// A path the plugin answered (a volume's `Mountpoint`) as the host
    /// sees it (moby's `ScopedPath`): under the propagated mount, the host
    /// directory behind it; else inside the plugin's root. A legacy plugin
    /// runs on the host: its paths are the host's.
    pub fn scoped_path(&self, path: &str) -> PathBuf {
        let Some(s) = &self.scope else {
            return PathBuf::from(path);
        };
        if !s.propagated.is_empty() {
            if let Ok(rest) = Path::new(path).strip_prefix(&s.propagated) {
                return s.propagated_host.join(rest);
            }
        }
        s.rootfs.join(path.trim_start_matches('/'))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn implements(&self, interface: &str) -> bool {
        self.implements.iter().any(|i| i == interface)
    }

    pub fn interfaces(&self) -> &[String] {
        &self.implements
    }

    pub fn managed_id(&self) -> Option<&str> {
        self.managed.as_deref()
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Calls `<method>` (e.g. `VolumeDriver.Create`); a failure is the
    /// engine's error, worded with the method and what the plugin said.
    pub fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: &str,
        body: &B,
    ) -> Result<T> {
        self.client.call(method, body).map_err(|e| self.error(e))
    }

    /// The engine's error for a failed call.
    pub fn error(&self, e: CallError) -> EngineError {
        match e {
            CallError::Unreachable { .. } => EngineError::internal(format!(
                "plugin {:?} is not running or not answering: {e}",
                self.name
            )),
            e => EngineError::internal(e.to_string()),
        }
    }
}

/// `POST /Plugin.Activate`'s answer.
#[derive(Debug, Default, Deserialize)]
struct Manifest {
    #[serde(rename = "Implements", default)]
    implements: Vec<String>,
}

pub struct Plugins {
    dirs: Dirs,
    own_dir: PathBuf,
    timeout: Duration,
    /// Legacy plugins activated so far, by name.
    legacy: RwLock<HashMap<String, Arc<Plugin>>>,
    /// Enabled managed plugins, by name (with its tag) and by short name.
    managed: RwLock<HashMap<String, Arc<Plugin>>>,
    /// Installed managed plugins that are disabled, by name: found, so
    /// never looked for among legacy ones.
    disabled: RwLock<std::collections::HashSet<String>>,
    /// One activation at a time, so that two callers do not activate the
    /// same plugin twice.
    activating: Mutex<()>,
}

impl Plugins {
    pub fn new(config: &DaemonConfig) -> Self {
        let own_dir = config.exec_root.join("plugins");
        let mut sockets = vec![own_dir.clone()];
        let (docker_sockets, specs) = if config.rootless {
            crate::rootless::paths::plugin_dirs()
        } else {
            (
                vec![PathBuf::from(DOCKER_SOCKETS)],
                SPEC_DIRS.iter().map(PathBuf::from).collect(),
            )
        };
        sockets.extend(docker_sockets.into_iter().filter(|d| *d != own_dir));
        Self::with_dirs(Dirs { sockets, specs }, own_dir, config.plugin_timeout)
    }

    pub fn with_dirs(dirs: Dirs, own_dir: PathBuf, timeout: Duration) -> Self {
        Self {
            dirs,
            own_dir,
            timeout,
            legacy: RwLock::default(),
            managed: RwLock::default(),
            disabled: RwLock::default(),
            activating: Mutex::new(()),
        }
    }

    /// berth's sockets directory (`<exec-root>/plugins`): legacy plugins
    /// put their socket here, managed ones get `<id>/` below it.
    pub fn dir(&self) -> &Path {
        &self.own_dir
    }

    /// How long a plugin has to answer.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The plugin `name` that implements `interface`: an enabled managed
    /// one, else a legacy one, activated on first use. `NotFound` when
    /// there is none (callers add what they were looking for).
    pub fn get(&self, name: &str, interface: &str) -> Result<Arc<Plugin>> {
        let p = match self.managed_plugin(name) {
            Some(p) => p,
            None => {
                let d = self.disabled.read().unwrap_or_else(|e| e.into_inner());
                if d.contains(name) || d.contains(&format!("{name}:latest")) {
                    // Docker's words; a legacy plugin of that name is not
                    // a fallback.
                    return Err(EngineError::conflict(format!(
                        "plugin {name} found but disabled"
                    )));
                }
                drop(d);
                self.legacy_plugin(name)?
            }
        };
        if !p.implements(interface) {
            return Err(EngineError::not_found(NOT_IMPLEMENTED));
        }
        Ok(p)
    }

    fn managed_plugin(&self, name: &str) -> Option<Arc<Plugin>> {
        let m = self.managed.read().unwrap_or_else(|e| e.into_inner());
        m.get(name)
            .or_else(|| m.get(&format!("{name}:latest")))
            .cloned()
    }

    fn legacy_plugin(&self, name: &str) -> Result<Arc<Plugin>> {
        let not_found = || EngineError::not_found(format!("plugin {name:?} not found"));
        if let Some(p) = self.read_legacy(name) {
            return Ok(p);
        }
        let _one = self.activating.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = self.read_legacy(name) {
            return Ok(p);
        }
        let found = self
            .dirs
            .find(name)
            .map_err(EngineError::internal)?
            .ok_or_else(not_found)?;
        let p = Arc::new(self.activate(found)?);
        self.legacy
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), p.clone());
        Ok(p)
    }

    fn read_legacy(&self, name: &str) -> Option<Arc<Plugin>> {
        self.legacy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Connects to a found plugin and asks what it implements.
    fn activate(&self, found: Found) -> Result<Plugin> {
        let (addr, https) = Addr::parse(&found.url).map_err(EngineError::internal)?;
        let mut client = Client::new(addr.clone(), self.timeout);
        if https || found.tls.is_some() {
            client = tls_client(client, &addr, found.tls.unwrap_or_default())?;
        }
        let m: Manifest = client
            .call("Plugin.Activate", &serde_json::Value::Null)
            .map_err(|e| {
                EngineError::internal(format!("activating plugin {:?}: {e}", found.name))
            })?;
        tracing::info!(plugin = %found.name, implements = ?m.implements, "plugin activated");
        Ok(Plugin::new(found.name, m.implements, client, None))
    }

    /// Every plugin implementing `interface`: enabled managed ones, and the
    /// legacy ones on disk (activated now if they were not; one that fails
    /// is logged and left out).
    pub fn all(&self, interface: &str) -> Vec<Arc<Plugin>> {
        let mut out: Vec<Arc<Plugin>> = Vec::new();
        {
            let m = self.managed.read().unwrap_or_else(|e| e.into_inner());
            for p in m.values() {
                if p.implements(interface) && !out.iter().any(|o| Arc::ptr_eq(o, p)) {
                    out.push(p.clone());
                }
            }
        }
        for name in self.dirs.names() {
            if out.iter().any(|o| o.name() == name) {
                continue;
            }
            match self.legacy_plugin(&name) {
                Ok(p) if p.implements(interface) => out.push(p),
                Ok(_) => {}
                Err(e) => tracing::warn!(plugin = %name, "plugin left out: {e}"),
            }
        }
        out.sort_by(|a, b| a.name().cmp(b.name()));
        out
    }

    /// The plugins activated so far that implement `interface`, without
    /// looking on disk (for `/info`, which must not wait on plugins).
    pub fn activated(&self, interface: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .managed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .chain(
                self.legacy
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .values(),
            )
            .filter(|p| p.implements(interface))
            .map(|p| p.name().to_string())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// A managed plugin was enabled: it answers to its full name and,
    /// when tagged `latest`, to its short name.
    pub fn register(&self, plugin: Arc<Plugin>) {
        let mut m = self.managed.write().unwrap_or_else(|e| e.into_inner());
        m.insert(plugin.name().to_string(), plugin);
    }

    /// A managed plugin is installed and disabled (`true`), or enabled or
    /// gone (`false`).
    pub fn mark_disabled(&self, name: &str, disabled: bool) {
        let mut d = self.disabled.write().unwrap_or_else(|e| e.into_inner());
        if disabled {
            d.insert(name.to_string());
        } else {
            d.remove(name);
        }
    }

    /// Whether `name` is an installed managed plugin that is disabled.
    pub fn is_disabled(&self, name: &str) -> bool {
        let d = self.disabled.read().unwrap_or_else(|e| e.into_inner());
        d.contains(name) || d.contains(&format!("{name}:latest"))
    }

    /// A managed plugin was disabled or removed.
    pub fn unregister(&self, name: &str) {
        self.managed
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }
}

/// A `.json` spec's TLS settings, or an `https://` address's defaults.
fn tls_client(client: Client, addr: &Addr, spec: discovery::TlsSpec) -> Result<Client> {
    use berth_api::tls::{server_host, ClientTls};
    let Addr::Tcp(host) = addr else {
        return Err(EngineError::internal("TLS needs a TCP plugin address"));
    };
    let err = |e: berth_api::tls::TlsError| EngineError::internal(format!("plugin TLS: {e}"));
    let file = |f: &str| (!f.is_empty()).then(|| Path::new(f).to_path_buf());
    let (ca, cert) = (file(&spec.ca_file), file(&spec.cert_file));
    let key = Path::new(&spec.key_file);
    let mut tls =
        ClientTls::from_files(ca.as_deref(), cert.as_deref().map(|c| (c, key))).map_err(err)?;
    tls.skip_verify = spec.insecure_skip_verify;
    let config = tls.config().map_err(err)?;
    Ok(client.with_tls(Arc::new(config), server_host(host).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixListener;

    /// A legacy plugin answering `Plugin.Activate` with `implements`, and
    /// every other call with `{}`, for `calls` connections.
    fn plugin(dir: &Path, name: &str, implements: &'static str, calls: usize) {
        let l = UnixListener::bind(dir.join(format!("{name}.sock"))).unwrap();
        std::thread::spawn(move || {
            for _ in 0..calls {
                let Ok((mut s, _)) = l.accept() else { return };
                let mut b = [0u8; 2048];
                let n = s.read(&mut b).unwrap_or(0);
                let req = String::from_utf8_lossy(&b[..n]).to_string();
                let body = if req.starts_with("POST /Plugin.Activate ") {
                    format!("{{\"Implements\":{implements}}}")
                } else {
                    "{}".to_string()
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
        });
    }

    fn plugins(dir: &Path) -> Plugins {
        Plugins::with_dirs(
            Dirs {
                sockets: vec![dir.to_path_buf()],
                specs: vec![],
            },
            dir.to_path_buf(),
            Duration::from_millis(500),
        )
    }

    #[test]
    fn a_legacy_plugin_is_activated_once_and_checked_for_its_interface() {
        let t = tempfile::tempdir().unwrap();
        plugin(t.path(), "vol", r#"["VolumeDriver"]"#, 3);
        let ps = plugins(t.path());
        let p = ps.get("vol", VOLUME).unwrap();
        assert_eq!(p.name(), "vol");
        assert!(p.managed_id().is_none());
        // Cached: the second lookup makes no call.
        assert!(Arc::ptr_eq(&p, &ps.get("vol", VOLUME).unwrap()));
        let e = ps.get("vol", NETWORK).unwrap_err();
        assert_eq!(e.to_string(), NOT_IMPLEMENTED);
        let e = ps.get("absent", VOLUME).unwrap_err();
        assert!(matches!(e, EngineError::NotFound(_)));
        assert_eq!(e.to_string(), "plugin \"absent\" not found");
        let r: serde_json::Value = p.call("VolumeDriver.List", &()).unwrap();
        assert_eq!(r, serde_json::json!({}));
        assert_eq!(ps.activated(VOLUME), ["vol"]);
        assert!(ps.activated(LOG).is_empty());
    }

    #[test]
    fn all_activates_what_is_on_disk_and_leaves_out_what_fails() {
        let t = tempfile::tempdir().unwrap();
        plugin(t.path(), "a", r#"["VolumeDriver"]"#, 1);
        plugin(t.path(), "b", r#"["NetworkDriver","IpamDriver"]"#, 1);
        // A socket nobody answers on: left out within the timeout.
        let dead = UnixListener::bind(t.path().join("dead.sock")).unwrap();
        drop(dead);
        let ps = plugins(t.path());
        let names =
            |v: Vec<Arc<Plugin>>| v.iter().map(|p| p.name().to_string()).collect::<Vec<_>>();
        assert_eq!(names(ps.all(VOLUME)), ["a"]);
        assert_eq!(names(ps.all(IPAM)), ["b"]);
        let managed = Arc::new(Plugin::new(
            "m:latest",
            vec![LOG.into()],
            Client::new(
                Addr::Unix(t.path().join("m.sock")),
                Duration::from_millis(100),
            ),
            Some("abc".into()),
        ));
        ps.register(managed);
        assert_eq!(ps.get("m", LOG).unwrap().managed_id(), Some("abc"));
        assert_eq!(ps.activated(LOG), ["m:latest"]);
        ps.unregister("m:latest");
        assert!(matches!(ps.get("m", LOG), Err(EngineError::NotFound(_))));
        // Installed but disabled: found, and refused.
        ps.mark_disabled("m:latest", true);
        let e = ps.get("m", LOG).unwrap_err();
        assert!(matches!(e, EngineError::Conflict(_)));
        assert_eq!(e.to_string(), "plugin m found but disabled");
        assert!(ps.is_disabled("m") && ps.is_disabled("m:latest"));
        ps.mark_disabled("m:latest", false);
        assert!(!ps.is_disabled("m"));
        assert!(matches!(ps.get("m", LOG), Err(EngineError::NotFound(_))));
    }

    #[test]
    fn a_managed_plugins_paths_are_scoped_to_its_root_or_propagated_mount() {
        let c = Client::new(Addr::Unix("/nowhere".into()), Duration::from_millis(10));
        let legacy = Plugin::new("l", vec![], c.clone(), None);
        assert_eq!(legacy.scoped_path("/mnt/v"), Path::new("/mnt/v"));
        let m = Plugin::new("m", vec![], c, Some("id".into())).with_scope(
            "/d/id/rootfs".into(),
            "/mnt".into(),
            "/d/id/propagated-mount".into(),
        );
        assert_eq!(
            m.scoped_path("/mnt/v"),
            Path::new("/d/id/propagated-mount/v")
        );
        assert_eq!(m.scoped_path("/mntx/v"), Path::new("/d/id/rootfs/mntx/v"));
        assert_eq!(m.scoped_path("/data/v"), Path::new("/d/id/rootfs/data/v"));
    }

    #[test]
    fn a_plugin_that_goes_away_is_named_in_the_error() {
        let t = tempfile::tempdir().unwrap();
        plugin(t.path(), "gone", r#"["VolumeDriver"]"#, 1);
        let ps = plugins(t.path());
        let p = ps.get("gone", VOLUME).unwrap();
        std::fs::remove_file(t.path().join("gone.sock")).unwrap();
        let e = p
            .call::<_, serde_json::Value>("VolumeDriver.List", &())
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with(
                "plugin \"gone\" is not running or not answering: VolumeDriver.List: dial unix://"
            ),
            "{msg}"
        );
    }

    #[test]
    fn a_json_spec_s_tls_files_are_read_or_named_in_the_error() {
        let tcp = || Client::new(Addr::Tcp("[::1]:9000".into()), Duration::from_secs(1));
        let spec = |ca: &str, cert: &str| discovery::TlsSpec {
            ca_file: ca.into(),
            cert_file: cert.into(),
            key_file: "/nonexistent/key.pem".into(),
            ..Default::default()
        };
        let c = tls_client(tcp(), &Addr::Tcp("[::1]:9000".into()), Default::default()).unwrap();
        assert!(format!("{c:?}").contains("tls: true"), "{c:?}");
        let e = tls_client(
            tcp(),
            &Addr::Tcp("h:1".into()),
            spec("/nonexistent/ca.pem", ""),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("plugin TLS: reading /nonexistent/ca.pem: "),
            "{e}"
        );
        let e = tls_client(
            tcp(),
            &Addr::Tcp("h:1".into()),
            spec("", "/nonexistent/cert.pem"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("plugin TLS: reading /nonexistent/cert.pem: "),
            "{e}"
        );
        let e = tls_client(tcp(), &Addr::Unix("/x.sock".into()), Default::default())
            .unwrap_err()
            .to_string();
        assert_eq!(e, "TLS needs a TCP plugin address");
    }
}
