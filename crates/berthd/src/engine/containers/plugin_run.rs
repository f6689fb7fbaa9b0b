//! Managed plugins run as containers of their own under berth-shim
//! (`plugins::managed::Runner`), but not as Docker containers: no record,
//! nothing in `docker ps`. Their bundles, shim sockets and runtime state
//! live in directories of their own (`<exec-root>/plugin-bundles/<id>`,
//! `<exec-root>/ps/`, `<exec-root>/plugin-runtime`), which start-up
//! reconciliation of containers never looks at; the plugin manager stops
//! what a crash left running.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_api::models::DeviceMapping;
use berth_api::shim::{Request, ShimConfig};
use berth_runtime::oci_spec::runtime::MountBuilder;
use berth_runtime::{
    ContainerConfig, ContainerFiles, HostConfig, NetNs, NsMode, ResolvedUser, SeccompChoice,
    SpecInput,
};

use super::release::shim_of;
use super::shim::{self, ShimBinary};
use crate::engine::plugins::managed::{RunSpec, Runner};
use crate::engine::{cgroups, EngineError, Result};

pub struct PluginRunner {
    shim: ShimBinary,
    exec_root: PathBuf,
    /// False in rootless mode (see `SpecInput::cgroups`).
    cgroups: bool,
}

impl PluginRunner {
    /// `shim`: the containers' sealed copy, shared.
    pub fn new(shim: ShimBinary, exec_root: &Path, cgroups: bool) -> Result<Self> {
        Ok(Self {
            shim,
            exec_root: exec_root.to_path_buf(),
            cgroups,
        })
    }

    fn bundles(&self) -> PathBuf {
        self.exec_root.join("plugin-bundles")
    }

    fn socket(&self, id: &str) -> PathBuf {
        self.exec_root
            .join("ps")
            .join(format!("{}.sock", &id[..id.len().min(12)]))
    }

    fn runtime_root(&self) -> PathBuf {
        self.exec_root.join("plugin-runtime")
    }

    /// The PIDs of `id`'s shims.
    fn shims(&self, id: &str) -> Vec<i32> {
        let bundles = self.bundles();
        let Ok(rd) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
            .filter(|pid| shim_of(*pid, &bundles).as_deref() == Some(id))
            .collect()
    }

    fn spec(&self, s: &RunSpec) -> Result<serde_json::Value> {
        let mut extra = Vec::new();
        for (src, dst, typ, opts) in &s.mounts {
            let mut opts = opts.clone();
            if typ == "bind" && !opts.iter().any(|o| o == "bind" || o == "rbind") {
                opts.push("rbind".into());
            }
            extra.push(
                MountBuilder::default()
                    .source(src)
                    .destination(dst)
                    .typ(typ)
                    .options(opts)
                    .build()
                    .map_err(|e| EngineError::internal(format!("plugin mount {dst}: {e}")))?,
            );
        }
        let host_config = HostConfig {
            cap_add: Some(s.capabilities.clone()),
            devices: Some(
                s.devices
                    .iter()
                    .map(|d| DeviceMapping {
                        path_on_host: Some(d.clone()),
                        path_in_container: Some(d.clone()),
                        cgroup_permissions: Some("rwm".into()),
                    })
                    .collect(),
            ),
            ..Default::default()
        };
        let config = ContainerConfig::default();
        let input = SpecInput {
            id: &s.id,
            config: &config,
            host_config: &host_config,
            rootfs: s.rootfs.clone(),
            args: s.args.clone(),
            env: s.env.clone(),
            cwd: s.cwd.clone(),
            user: ResolvedUser {
                uid: s.uid,
                gid: s.gid,
                additional_gids: Vec::new(),
            },
            hostname: String::new(),
            domainname: String::new(),
            files: ContainerFiles::default(),
            // A private namespace is added below when the plugin has no
            // host network: berth-runtime knows only paths and the host's.
            netns: NetNs::Host,
            ipc: if s.host_ipc {
                NsMode::Host
            } else {
                NsMode::Private
            },
            pid: if s.host_pid {
                NsMode::Host
            } else {
                NsMode::Private
            },
            uts_host: false,
            cgroups_path: cgroups::path(&s.id),
            cgroups: self.cgroups,
            extra_mounts: extra,
            init_binary: None,
            // As moby's plugin spec: no seccomp profile.
            seccomp: SeccompChoice::Unconfined,
            no_new_privileges: false,
        };
        let spec = berth_runtime::build_spec(&input).map_err(|e| match e {
            berth_runtime::SpecError::Invalid(m) => EngineError::invalid(m),
            other => EngineError::internal(other.to_string()),
        })?;
        let mut v = serde_json::to_value(&spec)?;
        if !s.host_network {
            if let Some(ns) = v
                .pointer_mut("/linux/namespaces")
                .and_then(|n| n.as_array_mut())
            {
                ns.insert(1, serde_json::json!({"type": "network"}));
            }
        }
        if s.rshared_root {
            v["linux"]["rootfsPropagation"] = "shared".into();
        }
        if s.allow_all_devices {
            v["linux"]["resources"]["devices"] =
                serde_json::json!([{"allow": true, "access": "rwm"}]);
        }
        v["root"]["readonly"] = false.into();
        Ok(v)
    }
}

impl Runner for PluginRunner {
    fn start(&self, s: &RunSpec) -> Result<()> {
        // What a run before left (a crash, a failed start).
        self.stop(&s.id, Duration::from_secs(1));
        let bundle = self.bundles().join(&s.id);
        std::fs::create_dir_all(&bundle)?;
        let socket = self.socket(&s.id);
        if let Some(d) = socket.parent() {
            std::fs::create_dir_all(d)?;
        }
        let _ = std::fs::remove_file(&socket);
        let spec = self.spec(s)?;
        std::fs::write(bundle.join("config.json"), serde_json::to_vec(&spec)?)?;
        let exit_file = bundle.join("exit.json");
        let cfg = ShimConfig {
            id: s.id.clone(),
            bundle: bundle.display().to_string(),
            runtime_root: self.runtime_root().display().to_string(),
            socket: socket.display().to_string(),
            exit_file: exit_file.display().to_string(),
            log_path: s.log.display().to_string(),
            log_max_size: 1 << 20,
            log_max_file: 2,
            log_compress: false,
            log_format: String::new(),
            tty: false,
            open_stdin: false,
            stdin_once: false,
            console_size: None,
            cgroups_path: cgroups::path(&s.id),
            seccomp_bpf: String::new(),
            init_bpf: false,
            lent_caps: Vec::new(),
            trash_dir: String::new(),
            create_early: false,
            log_fifo: String::new(),
            log_attrs: String::new(),
        };
        std::fs::write(bundle.join("shim.json"), serde_json::to_vec(&cfg)?)?;
        let launched = shim::launch(&self.shim, &bundle, &bundle.join("shim.log"))?;
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| EngineError::internal("starting a plugin outside the runtime"))?;
        let started = handle.block_on(async {
            let pid = launched.go().await?;
            if let Err(e) = shim::call(&socket, &Request::Start).await {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                return Err(e);
            }
            Ok(())
        });
        if let Err(e) = started {
            let log = std::fs::read_to_string(bundle.join("shim.log")).unwrap_or_default();
            tracing::warn!(plugin = %s.id, "the plugin's shim said: {}", log.trim());
            self.stop(&s.id, Duration::from_secs(1));
            return Err(EngineError::internal(format!(
                "starting the plugin's process: {e}"
            )));
        }
        Ok(())
    }

    fn stop(&self, id: &str, grace: Duration) {
        let socket = self.socket(id);
        let shims = self.shims(id);
        if !shims.is_empty() {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                let term = Request::Kill {
                    exec_id: None,
                    signal: libc::SIGTERM,
                };
                let _ = handle.block_on(async {
                    tokio::time::timeout(Duration::from_secs(2), shim::call(&socket, &term)).await
                });
            }
            let end = Instant::now() + grace;
            while Instant::now() < end && !cgroups::pids(id).is_empty() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if !cgroups::kill_all(id, Duration::from_secs(5)) {
            tracing::warn!(id, "processes of the plugin survived SIGKILL");
        }
        // The shim goes once its container has: wait for it (bounded),
        // then make sure.
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end && !self.shims(id).is_empty() {
            std::thread::sleep(Duration::from_millis(20));
        }
        for pid in self.shims(id) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        cgroups::remove(id);
        let _ = std::fs::remove_dir_all(self.runtime_root().join(id));
        let _ = std::fs::remove_file(&socket);
        let bundle = self.bundles().join(id);
        let _ = std::fs::remove_dir_all(&bundle);
    }

    fn running(&self, id: &str) -> bool {
        !self.shims(id).is_empty() && !cgroups::pids(id).is_empty()
    }
}
