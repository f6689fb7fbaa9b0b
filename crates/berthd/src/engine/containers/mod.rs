//! Containers: records, the in-memory index, create/inspect/list/rename/
//! remove. Lifecycle (start/stop/kill/wait, exit handling, live restore) is
//! in `lifecycle.rs`; attach, exec and logs in their own modules.

pub mod archive;
pub mod attach;
pub mod commit;
pub mod exec;
pub mod health;
pub mod lifecycle;
pub mod links;
mod list;
pub mod logs;
pub mod names;
mod prestart;
pub mod rootfs;
pub mod seccomp;
pub mod shim;
pub mod stats;
pub mod update;
pub mod user;
pub mod validate;

use crate::engine::fs::snapshot::RwLayer;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use berth_api::models::{
    ContainerConfig, ContainerCreateBody, ContainerInspectResponse, ContainerState,
    ContainerStateStatusEnum, ContainerSummary, ContainerSummaryHostConfig,
    ContainerSummaryNetworkSettings, ContainerSummaryStateEnum, ContainerTopResponse, DriverData,
    HostConfig, HostConfigLogConfig, NetworkSettings,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::store::Table;
use super::{Engine, EngineError, Result};

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// Running in Docker's sense: the process exists (paused included).
    pub fn is_running(self) -> bool {
        matches!(self, Status::Running | Status::Paused | Status::Restarting)
    }
}

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
    pub endpoints: std::collections::BTreeMap<String, berth_api::models::EndpointSettings>,
    /// Published ports while running.
    pub ports: Option<berth_api::models::PortMap>,
    /// Set by `stop`, cleared by `start`: restart policies leave it alone.
    pub manually_stopped: bool,
    pub health: Option<berth_api::models::Health>,
    /// The mount plan: volumes, binds and tmpfs mounts (moby's `MountPoints`).
    pub mounts: Vec<super::volumes::mounts::MountRec>,
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
    staged: Mutex<Option<prestart::Staged>>,
    /// dockerd's "exit on next": the exit a `kill` causes is not restarted
    /// by the policy (in memory only, like dockerd's cancelled restart
    /// manager; the next start clears it).
    pub exit_on_next: std::sync::atomic::AtomicBool,
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
        })
    }

    fn staged_slot(&self) -> MutexGuard<'_, Option<prestart::Staged>> {
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

pub struct Containers {
    pub index: Arc<RwLock<Index>>,
    pub shim_bin: shim::ShimBinary,
    pub execs: RwLock<HashMap<String, Arc<exec::Exec>>>,
    pub bpf: seccomp::BpfCache,
}

impl Containers {
    /// `exec_root` holds the compiled seccomp filters.
    pub fn open(store: &super::store::Store, exec_root: &std::path::Path) -> Result<Self> {
        let mut idx = Index::default();
        for (id, rec) in store.load_all::<Record>(Table::Containers)? {
            idx.names.insert(rec.name.clone(), id.clone());
            idx.by_id.insert(id, Container::new(rec));
        }
        Ok(Self {
            index: Arc::new(RwLock::new(idx)),
            shim_bin: shim::ShimBinary::load()?,
            execs: RwLock::new(HashMap::new()),
            bpf: seccomp::BpfCache::new(exec_root.join("seccomp")),
        })
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

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.to_utc())
}

/// docker's `units.HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        _ if s < 3600 => format!("{} minutes", s / 60),
        _ => {
            let h = (s as f64 / 3600.0).round() as i64;
            if h == 1 {
                "About an hour".into()
            } else if h < 48 {
                format!("{h} hours")
            } else if h < 24 * 14 {
                format!("{} days", h / 24)
            } else if h < 24 * 60 {
                format!("{} weeks", h / 24 / 7)
            } else if h < 24 * 365 * 2 {
                format!("{} months", h / 24 / 30)
            } else {
                format!("{} years", h / 24 / 365)
            }
        }
    }
}

fn since(t: &Option<String>) -> i64 {
    t.as_deref()
        .and_then(parse_time)
        .map(|t| (chrono::Utc::now() - t).num_seconds())
        .unwrap_or(0)
}

/// The `Status` column text, built by the daemon as Docker does.
pub fn status_text(r: &Record) -> String {
    let s = &r.state;
    match s.status {
        Status::Created => "Created".into(),
        Status::Running => match health::status_suffix(r.health.as_ref()) {
            Some(h) => format!("Up {} {h}", human_duration(since(&s.started_at))),
            None => format!("Up {}", human_duration(since(&s.started_at))),
        },
        Status::Paused => format!("Up {} (Paused)", human_duration(since(&s.started_at))),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            s.exit_code,
            human_duration(since(&s.finished_at))
        ),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
        Status::Exited => {
            if s.finished_at.is_none() {
                "Exited".into()
            } else {
                format!(
                    "Exited ({}) {} ago",
                    s.exit_code,
                    human_duration(since(&s.finished_at))
                )
            }
        }
    }
}

/// Merges the image's config under the user's, as Docker does at create.
fn merge_image_config(cfg: &mut ContainerConfig, img: Option<&berth_api::models::ImageConfig>) {
    let Some(img) = img else { return };
    if cfg.user.as_deref().unwrap_or("").is_empty() {
        cfg.user = img.user.clone();
    }
    if let Some(ip) = &img.exposed_ports {
        let e = cfg.exposed_ports.get_or_insert_with(HashMap::new);
        for (k, v) in ip {
            e.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    // Image env first; the container's entries override by key.
    let mut env: Vec<String> = img.env.clone().unwrap_or_default();
    for e in cfg.env.clone().unwrap_or_default() {
        let key = e.split('=').next().unwrap_or("").to_string();
        env.retain(|x| x.split('=').next() != Some(key.as_str()));
        env.push(e);
    }
    // moby: no env of the container's own means the image's, nil included.
    cfg.env = if env.is_empty() {
        img.env.clone()
    } else {
        Some(env)
    };
    if cfg.labels.as_ref().is_none_or(|l| l.is_empty()) {
        cfg.labels = img.labels.clone();
    } else if let Some(il) = &img.labels {
        let l = cfg.labels.get_or_insert_with(HashMap::new);
        for (k, v) in il {
            l.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    // `--entrypoint ""` arrives as `[""]`: no entrypoint at all, not the image's.
    if cfg
        .entrypoint
        .as_ref()
        .is_some_and(|e| e.len() == 1 && e[0].is_empty())
    {
        cfg.entrypoint = Some(vec![]);
        if cfg.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            cfg.cmd = img.cmd.clone();
        }
    } else if cfg.entrypoint.as_ref().is_none_or(|e| e.is_empty()) {
        cfg.entrypoint = img.entrypoint.clone();
        if cfg.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            cfg.cmd = img.cmd.clone();
        }
    }
    if cfg.working_dir.as_deref().unwrap_or("").is_empty() {
        cfg.working_dir = img.working_dir.clone();
    }
    if let Some(iv) = &img.volumes {
        let v = cfg.volumes.get_or_insert_with(HashMap::new);
        for (k, x) in iv {
            v.entry(k.clone()).or_insert_with(|| x.clone());
        }
    }
    if cfg.stop_signal.as_deref().unwrap_or("").is_empty() {
        cfg.stop_signal = img.stop_signal.clone();
    }
    if cfg.healthcheck.is_none() {
        cfg.healthcheck = img.healthcheck.clone();
    }
    if cfg.on_build.is_none() {
        cfg.on_build = img.on_build.clone();
    }
    if cfg.shell.is_none() {
        cfg.shell = img.shell.clone();
    }
}

pub struct CreateOptions {
    pub name: Option<String>,
    pub platform: Option<String>,
}

impl Engine {
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

    pub fn container_event(&self, c: &Record, action: &str, extra: &[(&str, String)]) {
        let mut attrs: HashMap<String, String> = c.config.labels.clone().unwrap_or_default();
        attrs.insert("name".into(), c.name.clone());
        attrs.insert("image".into(), c.config.image.clone().unwrap_or_default());
        for (k, v) in extra {
            attrs.insert(k.to_string(), v.clone());
        }
        self.events.publish("container", action, &c.id, attrs);
    }

    pub fn create_container(
        &self,
        opts: CreateOptions,
        body: ContainerCreateBody,
    ) -> Result<(String, Vec<String>)> {
        let image_ref = body.image.clone().unwrap_or_default();
        if image_ref.is_empty() {
            return Err(EngineError::invalid(
                "config cannot be empty in order to create a container",
            ));
        }
        let image = self.images.resolve(&image_ref)?;
        if let Some(p) = opts.platform.as_deref().filter(|p| !p.is_empty()) {
            let want: Vec<&str> = p.split('/').collect();
            let (os, arch) = (
                want.first().copied().unwrap_or(""),
                want.get(1).copied().unwrap_or(""),
            );
            if os != image.config.os || (!arch.is_empty() && arch != image.config.architecture) {
                return Err(EngineError::not_found(format!(
                    "image with reference {image_ref} was found but its platform ({}/{}) does not match the specified platform ({p})",
                    image.config.os, image.config.architecture
                )));
            }
        }
        let mut host_config = body.host_config.clone().unwrap_or_default();
        let mut config = ContainerConfig {
            hostname: body.hostname.clone(),
            domainname: body.domainname.clone(),
            user: body.user.clone(),
            attach_stdin: body.attach_stdin,
            attach_stdout: body.attach_stdout,
            attach_stderr: body.attach_stderr,
            exposed_ports: body.exposed_ports.clone(),
            tty: body.tty,
            open_stdin: body.open_stdin,
            stdin_once: body.stdin_once,
            env: body.env.clone(),
            cmd: body.cmd.clone(),
            healthcheck: body.healthcheck.clone(),
            args_escaped: body.args_escaped,
            image: Some(image_ref.clone()),
            volumes: body.volumes.clone(),
            working_dir: body.working_dir.clone(),
            entrypoint: body.entrypoint.clone(),
            network_disabled: body.network_disabled,
            mac_address: body.mac_address.clone(),
            on_build: body.on_build.clone(),
            labels: body.labels.clone(),
            stop_signal: body.stop_signal.clone(),
            stop_timeout: body.stop_timeout,
            shell: body.shell.clone(),
        };
        merge_image_config(&mut config, image.config.config.as_ref());
        if config
            .entrypoint
            .as_ref()
            .is_some_and(|e| e.len() == 1 && e[0].is_empty())
        {
            config.entrypoint = Some(vec![]);
        }
        // moby's merge makes `Labels` a map; `Env` and `Volumes` stay nil
        // (`null`) when neither the request nor the image has any.
        config.labels.get_or_insert_with(HashMap::new);
        if config.volumes.as_ref().is_some_and(|v| v.is_empty()) {
            config.volumes = None;
        }
        let mut argv: Vec<String> = config.entrypoint.clone().unwrap_or_default();
        argv.extend(config.cmd.clone().unwrap_or_default());
        if argv.is_empty() {
            return Err(EngineError::invalid("No command specified"));
        }
        links::check_mode(&host_config)?;
        validate::network_mode(&body, &host_config)?;
        validate::env(body.env.as_deref())?;
        self.validate_host_config(&mut host_config, &config)?;
        let warnings = fill_effective_defaults(
            &mut host_config,
            crate::engine::host::cgroup_version(),
            crate::engine::host::swap_limit_supported(),
        );
        let links = self.register_links(&host_config)?;
        let endpoints = self.initial_endpoints(
            host_config.network_mode.as_deref().unwrap_or("default"),
            &body
                .networking_config
                .as_ref()
                .and_then(|n| n.endpoints_config.clone())
                .unwrap_or_default(),
            body.mac_address.as_deref(),
        )?;

        let id = super::ids::new_object_id();
        if config.hostname.as_deref().unwrap_or("").is_empty() {
            // Docker uses the short ID unless the network mode shares a UTS.
            if host_config.network_mode.as_deref() != Some("host") {
                config.hostname = Some(id[..12].to_string());
            }
        }
        let rec_base = Record {
            id: id.clone(),
            name: String::new(),
            created: now(),
            path: argv[0].clone(),
            args: argv[1..].to_vec(),
            config,
            host_config,
            image_id: image.id.clone(),
            platform: "linux".into(),
            state: RunState {
                status: Status::Created,
                ..Default::default()
            },
            restart_count: 0,
            has_been_started: false,
            endpoints,
            ports: None,
            manually_stopped: false,
            health: None,
            mounts: vec![],
            links,
            paused_for_commit: false,
        };
        // Reserve the name and insert under one index lock.
        let c = {
            let mut idx = self.containers.write();
            let name = match &opts.name {
                Some(n) if !n.is_empty() => {
                    let n = names::validate(n)?;
                    if let Some(other) = idx.names.get(&n) {
                        return Err(EngineError::conflict(format!(
                            "Conflict. The container name \"/{n}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
                        )));
                    }
                    n
                }
                _ => {
                    let mut n = names::generate(0);
                    let mut retry = 0;
                    while idx.names.contains_key(&n) {
                        retry += 1;
                        n = names::generate(retry);
                    }
                    n
                }
            };
            let mut rec = rec_base;
            rec.name = name.clone();
            let c = Container::new(rec);
            idx.names.insert(name, id.clone());
            idx.by_id.insert(id.clone(), c.clone());
            c
        };
        let paths = self.paths(&id);
        let made = (|| -> Result<()> {
            std::fs::create_dir_all(&paths.dir)?;
            paths.rw.prepare()?;
            self.plan_mounts(&c)?;
            self.persist(&c)
        })();
        if let Err(e) = made {
            {
                let mut idx = self.containers.write();
                idx.by_id.remove(&id);
                idx.names.retain(|_, v| v != &id);
            }
            self.remove_anonymous_volumes(&c.snapshot());
            let _ = std::fs::remove_dir_all(&paths.dir);
            return Err(e);
        }
        self.container_event(&c.snapshot(), "create", &[]);
        Ok((id, warnings))
    }

    fn validate_host_config(&self, hc: &mut HostConfig, cfg: &ContainerConfig) -> Result<()> {
        let mode = hc.network_mode.clone().unwrap_or_default();
        match mode.as_str() {
            "" | "default" | "none" | "host" => {}
            m if m.starts_with("container:") => {
                let other = &m["container:".len()..];
                self.containers
                    .find(other)
                    .map_err(|_| EngineError::not_found(format!("No such container: {other}")))?;
            }
            other => {
                self.networks.find(other)?;
            }
        }
        if hc.network_mode.is_none() {
            hc.network_mode = Some("default".into());
        }
        validate::log_config(
            hc.log_config
                .as_ref()
                .and_then(|l| l.typ.as_deref())
                .unwrap_or(""),
            hc.log_config.as_ref().and_then(|l| l.config.as_ref()),
        )?;
        if hc
            .log_config
            .as_ref()
            .and_then(|l| l.typ.as_deref())
            .unwrap_or("")
            .is_empty()
        {
            hc.log_config = Some(HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: Some(
                    hc.log_config
                        .as_ref()
                        .and_then(|l| l.config.clone())
                        .unwrap_or_default(),
                ),
            })
        }
        if let Some(lc) = hc.log_config.as_ref().and_then(|l| l.config.as_ref()) {
            if let Some(s) = lc.get("max-size") {
                parse_size(s)
                    .ok_or_else(|| EngineError::invalid(format!("invalid max-size: {s}")))?;
            }
            if let Some(s) = lc.get("max-file") {
                s.parse::<u32>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| EngineError::invalid(format!("invalid max-file: {s}")))?;
            }
        }
        if let Some(sig) = cfg.stop_signal.as_deref().filter(|s| !s.is_empty()) {
            parse_signal(sig)?;
        }
        validate::resources(&validate::Limits {
            memory: hc.memory,
            memory_reservation: hc.memory_reservation,
            memory_swap: hc.memory_swap,
            nano_cpus: hc.nano_cpus,
            cpuset_cpus: hc.cpuset_cpus.as_deref(),
            cpuset_mems: hc.cpuset_mems.as_deref(),
            blkio_weight: hc.blkio_weight,
            oom_score_adj: hc.oom_score_adj,
        })?;
        if let Some(p) = &hc.port_bindings {
            validate::port_bindings(p)?;
        }
        if let Some(h) = &cfg.healthcheck {
            validate::healthcheck(h)?;
        }
        if hc.init == Some(true) && self.init_binary().is_none() {
            return Err(EngineError::invalid(
                "--init: berth-init was not found next to berthd",
            ));
        }
        if hc.restart_policy.is_none() {
            hc.restart_policy = Some(berth_api::models::RestartPolicy {
                name: Some(berth_api::models::RestartPolicyNameEnum::NO),
                maximum_retry_count: Some(0),
            });
        }
        validate::restart_policy(hc)?;
        // Namespaces joined from another container: it must exist now.
        for mode in [hc.pid_mode.as_deref(), hc.ipc_mode.as_deref()] {
            if let Some(other) = mode.and_then(|m| m.strip_prefix("container:")) {
                self.containers
                    .find(other)
                    .map_err(|_| EngineError::invalid(format!("No such container: {other}")))?;
            }
        }
        validate::create_settings(hc, cfg.working_dir.as_deref())?;
        match hc.runtime.as_deref().unwrap_or("") {
            "" => hc.runtime = Some(validate::DEFAULT_RUNTIME.into()),
            r => {
                let listed: Vec<String> = crate::engine::system::RUNTIMES
                    .iter()
                    .map(|(n, _)| n.to_string())
                    .collect();
                if !validate::runtime_known(r, &listed) {
                    return Err(EngineError::invalid(format!(
                        "Unknown runtime specified {r}"
                    )));
                }
            }
        }
        // Docker stores the effective default.
        if hc.shm_size.unwrap_or(0) == 0 {
            hc.shm_size = Some(64 * 1024 * 1024);
        }
        Ok(())
    }

    /// The host path of berth's init (for `--init`), written at start-up.
    pub fn init_binary(&self) -> Option<PathBuf> {
        let p = init_path(&self.config.data_root);
        p.exists().then_some(p)
    }

    pub fn inspect_container(&self, key: &str, size: bool) -> Result<ContainerInspectResponse> {
        let c = self.containers.find(key)?;
        let r = c.snapshot();
        let p = self.paths(&r.id);
        let s = &r.state;
        let (size_rw, size_root) = if size {
            let rw = dir_size(&p.rw.upper);
            let img = self.images.get(&r.image_id).map(|i| i.size).unwrap_or(0);
            (Some(rw), Some(rw + img))
        } else {
            (None, None)
        };
        let mut gd = HashMap::new();
        if let Ok(l) = self.images.lower_dirs(&r.image_id) {
            gd.insert(
                "LowerDir".to_string(),
                l.iter()
                    .map(|x| x.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":"),
            );
        }
        gd.insert("UpperDir".into(), p.rw.upper.display().to_string());
        gd.insert("WorkDir".into(), p.rw.work.display().to_string());
        gd.insert("MergedDir".into(), p.rw.merged.display().to_string());
        // A container in another's network namespace uses that one's files.
        let files = r
            .host_config
            .network_mode
            .as_deref()
            .and_then(|m| m.strip_prefix("container:"))
            .and_then(|other| self.containers.find(other).ok())
            .map(|o| self.paths(&o.id))
            .unwrap_or_else(|| self.paths(&r.id));
        let execs: Vec<String> = self
            .containers
            .execs
            .read()
            .unwrap_or_else(|x| x.into_inner())
            .values()
            .filter(|e| e.container_id == r.id)
            .map(|e| e.id.clone())
            .collect();
        Ok(ContainerInspectResponse {
            id: Some(r.id.clone()),
            created: Some(r.created.clone()),
            path: Some(r.path.clone()),
            args: Some(r.args.clone()),
            state: Some(ContainerState {
                status: Some(match s.status {
                    Status::Created => ContainerStateStatusEnum::CREATED,
                    Status::Running => ContainerStateStatusEnum::RUNNING,
                    Status::Paused => ContainerStateStatusEnum::PAUSED,
                    Status::Restarting => ContainerStateStatusEnum::RESTARTING,
                    Status::Removing => ContainerStateStatusEnum::REMOVING,
                    Status::Exited => ContainerStateStatusEnum::EXITED,
                    Status::Dead => ContainerStateStatusEnum::DEAD,
                }),
                running: Some(s.status.is_running()),
                paused: Some(s.status == Status::Paused),
                restarting: Some(s.status == Status::Restarting),
                oom_killed: Some(s.oom_killed),
                dead: Some(s.status == Status::Dead),
                pid: Some(s.pid),
                exit_code: Some(s.exit_code),
                error: Some(s.error.clone()),
                started_at: Some(s.started_at.clone().unwrap_or_else(|| ZERO_TIME.into())),
                finished_at: Some(s.finished_at.clone().unwrap_or_else(|| ZERO_TIME.into())),
                health: r.health.clone(),
            }),
            image: Some(r.image_id.clone()),
            resolv_conf_path: Some(files.resolv.display().to_string()),
            hostname_path: Some(files.hostname.display().to_string()),
            hosts_path: Some(files.hosts.display().to_string()),
            log_path: Some(if self.log_enabled(&r) {
                p.log.display().to_string()
            } else {
                String::new()
            }),
            name: Some(format!("/{}", r.name)),
            restart_count: Some(r.restart_count),
            driver: Some("overlay2".into()),
            platform: Some(r.platform.clone()),
            mount_label: Some(String::new()),
            process_label: Some(String::new()),
            app_armor_profile: Some(String::new()),
            exec_ids: if execs.is_empty() { None } else { Some(execs) },
            host_config: Some(HostConfig {
                // The registered links, in dockerd's form, not the request's.
                links: self.inspect_links(&r),
                ..reported_host_config(&r.host_config)
            }),
            graph_driver: Some(DriverData {
                name: "overlay2".into(),
                data: gd,
            }),
            size_rw,
            size_root_fs: size_root,
            mounts: Some(super::volumes::mounts::mount_points(&r)),
            config: Some(r.config.clone()),
            network_settings: Some(self.network_settings(&r)),
            ..Default::default()
        })
    }

    pub fn network_settings(&self, r: &Record) -> NetworkSettings {
        let running = r.state.status.is_running();
        let mut ports: HashMap<String, Option<Vec<berth_api::models::PortBinding>>> =
            HashMap::new();
        // dockerd reads the map from the live sandbox: `{}` unless running.
        if running {
            for k in r.config.exposed_ports.clone().unwrap_or_default().keys() {
                ports.insert(k.clone(), None);
            }
            for (k, v) in r.ports.clone().unwrap_or_default() {
                ports.insert(k, v);
            }
        }
        // The legacy top-level fields describe the default bridge only.
        let b = r.endpoints.get("bridge").cloned().unwrap_or_default();
        let s = |o: &Option<String>| o.clone().unwrap_or_default();
        NetworkSettings {
            bridge: Some(String::new()),
            sandbox_id: Some(if running { r.id.clone() } else { String::new() }),
            sandbox_key: Some(if running {
                self.paths(&r.id).netns.display().to_string()
            } else {
                String::new()
            }),
            hairpin_mode: Some(false),
            link_local_ipv6_address: Some(String::new()),
            link_local_ipv6_prefix_len: Some(0),
            ports: Some(ports),
            secondary_ip_addresses: None,
            secondary_ipv6_addresses: None,
            endpoint_id: Some(s(&b.endpoint_id)),
            gateway: Some(s(&b.gateway)),
            global_ipv6_address: Some(String::new()),
            global_ipv6_prefix_len: Some(0),
            ip_address: Some(s(&b.ip_address)),
            ip_prefix_len: Some(b.ip_prefix_len.unwrap_or(0)),
            ipv6_gateway: Some(String::new()),
            mac_address: Some(s(&b.mac_address)),
            networks: Some(r.endpoints.clone().into_iter().collect()),
        }
    }

    pub fn log_enabled(&self, r: &Record) -> bool {
        r.host_config
            .log_config
            .as_ref()
            .and_then(|l| l.typ.as_deref())
            != Some("none")
    }

    pub fn summary(&self, r: &Record, size: bool) -> ContainerSummary {
        // dockerd quotes arguments holding a space: `sh -c 'exit 3'`.
        let mut command = r.path.clone();
        for a in &r.args {
            command.push(' ');
            if a.contains(' ') {
                command.push_str(&format!("'{a}'"));
            } else {
                command.push_str(a);
            }
        }
        let created = parse_time(&r.created).map(|t| t.timestamp()).unwrap_or(0);
        let (size_rw, size_root) = if size {
            let rw = dir_size(&self.paths(&r.id).rw.upper);
            let img = self.images.get(&r.image_id).map(|i| i.size).unwrap_or(0);
            (Some(rw), Some(rw + img))
        } else {
            (None, None)
        };
        ContainerSummary {
            id: Some(r.id.clone()),
            names: Some(vec![format!("/{}", r.name)]),
            image: Some(r.config.image.clone().unwrap_or_default()),
            image_id: Some(r.image_id.clone()),
            command: Some(command),
            created: Some(created),
            ports: Some(summary_ports(r)),
            size_rw,
            size_root_fs: size_root,
            labels: Some(r.config.labels.clone().unwrap_or_default()),
            state: Some(match r.state.status {
                Status::Created => ContainerSummaryStateEnum::CREATED,
                Status::Running => ContainerSummaryStateEnum::RUNNING,
                Status::Paused => ContainerSummaryStateEnum::PAUSED,
                Status::Restarting => ContainerSummaryStateEnum::RESTARTING,
                Status::Removing => ContainerSummaryStateEnum::REMOVING,
                Status::Exited => ContainerSummaryStateEnum::EXITED,
                Status::Dead => ContainerSummaryStateEnum::DEAD,
            }),
            status: Some(status_text(r)),
            host_config: Some(ContainerSummaryHostConfig {
                network_mode: r.host_config.network_mode.clone(),
                annotations: r.host_config.annotations.clone(),
            }),
            network_settings: Some(ContainerSummaryNetworkSettings {
                networks: Some(
                    r.endpoints
                        .iter()
                        .map(|(n, ep)| (n.clone(), listed_endpoint(ep)))
                        .collect(),
                ),
            }),
            mounts: Some(super::volumes::mounts::mount_points(r)),
            ..Default::default()
        }
    }

    pub fn rename_container(&self, key: &str, new_name: &str) -> Result<()> {
        if new_name.is_empty() {
            return Err(EngineError::invalid(
                "Neither old nor new names may be empty",
            ));
        }
        let c = self.containers.find(key)?;
        // dockerd checks the new name with its slash, under this prefix.
        let new = names::validate(new_name).map_err(|_| {
            EngineError::invalid(format!(
                "Error when allocating new name: Invalid container name (/{}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                new_name.trim_start_matches('/')
            ))
        })?;
        let old = {
            let mut idx = self.containers.write();
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
            let mut idx = self.containers.write();
            idx.names.remove(&new);
            idx.names.insert(old.clone(), c.id.clone());
            c.lock().name = old;
            return Err(e);
        }
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
        if durable {
            self.store.delete(Table::Containers, &r.id)?;
        } else {
            self.store.delete_lazily(Table::Containers, &r.id)?;
        }
        {
            let mut idx = self.containers.write();
            idx.by_id.remove(&r.id);
            if idx.names.get(&r.name) == Some(&r.id) {
                idx.names.remove(&r.name);
            }
        }
        if r.host_config.auto_remove == Some(true) {
            self.remove_anonymous_volumes(&r);
        }
        let p = self.paths(&r.id);
        prestart::drop_now(c, &p);
        p.rw.unmount();
        super::networks::netns::remove(&p.netns);
        // Normally gone with the shim; one killed leaves them.
        if !super::cgroups::dirs(&r.id).is_empty() {
            super::cgroups::kill_all(&r.id, Duration::from_secs(2));
            super::cgroups::remove(&r.id);
        }
        super::trash::remove(&p.bundle, &super::trash::dir(&self.config.exec_root));
        super::trash::remove(&p.dir, &super::trash::dir(&self.config.data_root));
        c.progress.send_modify(|p| p.removed = true);
        Ok(())
    }

    pub fn top(&self, key: &str, ps_args: &str) -> Result<ContainerTopResponse> {
        let c = self.containers.find(key)?;
        let r = c.snapshot();
        if !r.state.status.is_running() {
            return Err(EngineError::conflict(format!(
                "Container {} is not running",
                r.id
            )));
        }
        let pids = crate::engine::cgroups::pids(&r.id);
        let args: Vec<&str> = if ps_args.trim().is_empty() {
            vec!["-ef"]
        } else {
            ps_args.split_whitespace().collect()
        };
        let out = std::process::Command::new("ps")
            .args(&args)
            .output()
            .map_err(|e| EngineError::internal(format!("running ps: {e}")))?;
        if !out.status.success() {
            return Err(EngineError::internal(format!(
                "ps: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let header = lines.next().unwrap_or("");
        let titles: Vec<String> = header.split_whitespace().map(String::from).collect();
        let pid_col = titles
            .iter()
            .position(|t| t == "PID")
            .ok_or_else(|| EngineError::internal("Couldn't find PID field in ps output"))?;
        let mut procs = Vec::new();
        for l in lines {
            let fields: Vec<&str> = l.split_whitespace().collect();
            if fields.len() < titles.len() {
                continue;
            }
            let Ok(pid) = fields[pid_col].parse::<i64>() else {
                continue;
            };
            if !pids.contains(&pid) {
                continue;
            }
            // The last column keeps its spaces (the command line).
            let mut row: Vec<String> = fields[..titles.len() - 1]
                .iter()
                .map(|s| s.to_string())
                .collect();
            row.push(fields[titles.len() - 1..].join(" "));
            procs.push(row);
        }
        Ok(ContainerTopResponse {
            titles: Some(titles),
            processes: Some(procs),
        })
    }

    /// Counts for `/info`.
    pub fn container_counts(&self) -> (i64, i64, i64) {
        let mut total = 0;
        let mut running = 0;
        let mut paused = 0;
        for c in self.containers.all() {
            total += 1;
            match c.status() {
                Status::Running | Status::Restarting => running += 1,
                Status::Paused => paused += 1,
                _ => {}
            }
        }
        (total, running, paused)
    }
}

/// `ps`'s Ports: published bindings while running, exposed ports otherwise.
fn summary_ports(r: &Record) -> Vec<berth_api::models::Port> {
    use berth_api::models::{Port, PortTypeEnum};
    let mut out = Vec::new();
    let running = r.state.status.is_running();
    // Ports exist while the container has its network (dockerd lists
    // none for created or stopped containers, exposed or not).
    if !running {
        return out;
    }
    let published = r.ports.clone().unwrap_or_default();
    let mut keys: Vec<String> = r
        .config
        .exposed_ports
        .clone()
        .unwrap_or_default()
        .keys()
        .cloned()
        .collect();
    for k in published.keys() {
        if !keys.contains(k) {
            keys.push(k.clone());
        }
    }
    keys.sort();
    for k in keys {
        let (p, proto) = k.split_once('/').unwrap_or((k.as_str(), "tcp"));
        let Ok(private) = p.parse::<u16>() else {
            continue;
        };
        let typ = match proto {
            "udp" => PortTypeEnum::UDP,
            "sctp" => PortTypeEnum::SCTP,
            _ => PortTypeEnum::TCP,
        };
        match published.get(&k).cloned().flatten() {
            Some(binds) if !binds.is_empty() => {
                for b in binds {
                    out.push(Port {
                        ip: b.host_ip.clone(),
                        private_port: private,
                        public_port: b.host_port.as_deref().and_then(|x| x.parse().ok()),
                        typ: Some(typ),
                    });
                }
            }
            _ => out.push(Port {
                ip: None,
                private_port: private,
                public_port: None,
                typ: Some(typ),
            }),
        }
    }
    out
}

/// berth-init, built statically by the build script and embedded here.
const INIT_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-init"));

/// An endpoint as container lists show it: dockerd copies the addresses and
/// the IPAM config into its list view, not the aliases, links or options.
fn listed_endpoint(
    ep: &berth_api::models::EndpointSettings,
) -> berth_api::models::EndpointSettings {
    berth_api::models::EndpointSettings {
        ipam_config: ep.ipam_config.clone(),
        network_id: ep.network_id.clone(),
        endpoint_id: ep.endpoint_id.clone(),
        gateway: ep.gateway.clone(),
        ip_address: ep.ip_address.clone(),
        ip_prefix_len: ep.ip_prefix_len,
        ipv6_gateway: ep.ipv6_gateway.clone(),
        global_ipv6_address: ep.global_ipv6_address.clone(),
        global_ipv6_prefix_len: ep.global_ipv6_prefix_len,
        mac_address: ep.mac_address.clone(),
        gw_priority: ep.gw_priority,
        ..Default::default()
    }
}

/// The defaults dockerd's create stores in `HostConfig` (so inspect shows
/// them), which the start then applies as stored; returns the create's
/// warnings.
fn fill_effective_defaults(
    hc: &mut HostConfig,
    cgroup: crate::engine::host::CgroupVersion,
    swap_limit: bool,
) -> Vec<String> {
    use crate::engine::host::CgroupVersion;
    use berth_api::models::HostConfigCgroupnsModeEnum as Cg;
    let mut warnings = Vec::new();
    // dockerd's default-ipc-mode.
    if hc.ipc_mode.as_deref().unwrap_or("").is_empty() {
        hc.ipc_mode = Some("private".into());
    }
    // dockerd's default-cgroupns-mode: private only on a pure cgroup v2 host.
    if matches!(hc.cgroupns_mode, None | Some(Cg::EMPTY)) {
        hc.cgroupns_mode = Some(match cgroup {
            CgroupVersion::V2 => Cg::PRIVATE,
            CgroupVersion::V1 => Cg::HOST,
        });
    }
    // A memory limit alone allows as much swap again.
    if let Some(m) = hc.memory.filter(|m| *m > 0) {
        if hc.memory_swap.unwrap_or(0) == 0 {
            hc.memory_swap = Some(m.saturating_mul(2));
        }
        if hc.memory_swap.unwrap_or(0) > 0 && !swap_limit {
            warnings.push("Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.".into());
            hc.memory_swap = Some(-1);
        }
    }
    warnings
}

/// The `HostConfig` dockerd reports: what was asked, plus the values its
/// create fills in (runtime, default masked and read-only paths) and its
/// "unset" spelling (`null`) for swappiness and the pids limit.
fn reported_host_config(hc: &HostConfig) -> HostConfig {
    let mut hc = hc.clone();
    if hc.runtime.as_deref().unwrap_or("").is_empty() {
        hc.runtime = Some("runc".into());
    }
    if hc.memory_swappiness == Some(-1) {
        hc.memory_swappiness = None;
    }
    // moby's create defaults it on Linux.
    hc.oom_kill_disable.get_or_insert(false);
    // A fixed-size Go array: always `[h, w]`.
    hc.console_size.get_or_insert_with(|| vec![0, 0]);
    if hc.pids_limit.is_some_and(|p| p <= 0) {
        hc.pids_limit = None;
    }
    let unconfined = hc.privileged == Some(true)
        || hc
            .security_opt
            .iter()
            .flatten()
            .any(|o| o.replace(':', "=") == "systempaths=unconfined");
    if !unconfined && (hc.masked_paths.is_none() || hc.readonly_paths.is_none()) {
        let (masked, readonly) = berth_runtime::default_path_lists();
        hc.masked_paths.get_or_insert(masked);
        hc.readonly_paths.get_or_insert(readonly);
    }
    hc
}

pub fn init_path(data_root: &Path) -> PathBuf {
    data_root.join("bin").join("berth-init")
}

/// Installs the embedded init under the data root (atomically, if changed).
pub fn install_init(data_root: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let p = init_path(data_root);
    if std::fs::read(&p).map(|b| b == INIT_BINARY).unwrap_or(false) {
        return Ok(());
    }
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d)?;
    }
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, INIT_BINARY)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, &p)?;
    Ok(())
}

/// Bytes used under a directory (not following symlinks).
pub fn dir_size(p: &Path) -> i64 {
    fn walk(p: &Path, total: &mut i64) {
        let Ok(rd) = std::fs::read_dir(p) else { return };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                walk(&e.path(), total);
            } else {
                *total += m.len() as i64;
            }
        }
    }
    let mut t = 0;
    walk(p, &mut t);
    t
}

/// `10m`, `1g`, `512k`, plain bytes (Docker's `units.RAMInBytes`).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (num, mult) = match s.chars().last() {
        Some('k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('m') => (&s[..s.len() - 1], 1 << 20),
        Some('g') => (&s[..s.len() - 1], 1 << 30),
        Some('t') => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let n: f64 = num.trim().parse().ok()?;
    if n < 0.0 {
        return None;
    }
    Some((n * mult as f64) as u64)
}

/// `SIGTERM`, `TERM`, `15` → 15.
pub fn parse_signal(s: &str) -> Result<i32> {
    let bad = || EngineError::invalid(format!("Invalid signal: {s}"));
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(bad());
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some(rest) = name.strip_prefix("RTMIN") {
        let base = libc::SIGRTMIN();
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.trim_start_matches('+').parse().map_err(|_| bad())?
        };
        return Ok(base + off);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        let base = libc::SIGRTMAX();
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.trim_start_matches('-').parse().map_err(|_| bad())?
        };
        return Ok(base - off);
    }
    format!("SIG{name}")
        .parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    #[test]
    fn create_fills_dockerds_effective_defaults() {
        use crate::engine::host::CgroupVersion;
        use berth_api::models::{HostConfig, HostConfigCgroupnsModeEnum as Cg};
        let mut hc = HostConfig {
            memory: Some(64 << 20),
            ..Default::default()
        };
        assert!(super::fill_effective_defaults(&mut hc, CgroupVersion::V1, true).is_empty());
        assert_eq!(hc.memory_swap, Some(128 << 20));
        assert_eq!(hc.ipc_mode.as_deref(), Some("private"));
        assert_eq!(hc.cgroupns_mode, Some(Cg::HOST));

        // Asked values stay; v2 defaults to a private cgroup namespace.
        let mut hc = HostConfig {
            memory: Some(64 << 20),
            memory_swap: Some(-1),
            ipc_mode: Some("host".into()),
            ..Default::default()
        };
        super::fill_effective_defaults(&mut hc, CgroupVersion::V2, true);
        assert_eq!(hc.memory_swap, Some(-1));
        assert_eq!(hc.ipc_mode.as_deref(), Some("host"));
        assert_eq!(hc.cgroupns_mode, Some(Cg::PRIVATE));

        // Without swap accounting: no swap limit, and dockerd's warning.
        let mut hc = HostConfig {
            memory: Some(64 << 20),
            ..Default::default()
        };
        let w = super::fill_effective_defaults(&mut hc, CgroupVersion::V1, false);
        assert_eq!(hc.memory_swap, Some(-1));
        assert_eq!(w.len(), 1);
        assert!(w[0].starts_with("Your kernel does not support swap limit"));

        // No memory limit: no swap limit either.
        let mut hc = HostConfig::default();
        super::fill_effective_defaults(&mut hc, CgroupVersion::V1, false);
        assert_eq!(hc.memory_swap, None);
    }

    #[test]
    fn reported_host_config_has_dockerds_filled_values() {
        let asked = HostConfig {
            memory_swappiness: Some(-1),
            pids_limit: Some(0),
            ..Default::default()
        };
        let hc = super::reported_host_config(&asked);
        assert_eq!(hc.runtime.as_deref(), Some("runc"));
        assert_eq!(hc.memory_swappiness, None);
        assert_eq!(hc.pids_limit, None);
        assert!(hc
            .masked_paths
            .unwrap()
            .contains(&"/proc/kcore".to_string()));
        assert!(hc
            .readonly_paths
            .unwrap()
            .contains(&"/proc/sys".to_string()));
        let privileged = HostConfig {
            privileged: Some(true),
            runtime: Some("io.containerd.runc.v2".into()),
            pids_limit: Some(50),
            ..Default::default()
        };
        let hc = super::reported_host_config(&privileged);
        assert_eq!(hc.runtime.as_deref(), Some("io.containerd.runc.v2"));
        assert_eq!(hc.pids_limit, Some(50));
        assert_eq!(hc.masked_paths, None);
    }

    #[test]
    fn listed_endpoints_carry_addresses_not_aliases() {
        let ep = berth_api::models::EndpointSettings {
            aliases: Some(vec!["a".into()]),
            ip_address: Some("10.0.0.2".into()),
            network_id: Some("n".into()),
            dns_names: Some(vec!["x".into()]),
            ..Default::default()
        };
        let l = super::listed_endpoint(&ep);
        assert_eq!(l.aliases, None);
        assert_eq!(l.dns_names, None);
        assert_eq!(l.ip_address.as_deref(), Some("10.0.0.2"));
        assert_eq!(l.network_id.as_deref(), Some("n"));
    }

    use super::*;

    #[test]
    fn signals_parse_in_every_form() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("term").unwrap(), 15);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("USR1").unwrap(), libc::SIGUSR1);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("1k"), Some(1024));
        assert_eq!(parse_size("100"), Some(100));
        assert!(parse_size("x").is_none());
    }

    #[test]
    fn status_text_matches_docker() {
        let mut r = Record::default();
        assert_eq!(status_text(&r), "Created");
        r.state.status = Status::Exited;
        r.state.exit_code = 3;
        r.state.finished_at = Some(now());
        assert_eq!(status_text(&r), "Exited (3) Less than a second ago");
        r.state.status = Status::Running;
        r.state.started_at =
            Some((chrono::Utc::now() - chrono::Duration::seconds(36)).to_rfc3339());
        assert_eq!(status_text(&r), "Up 36 seconds");
    }
}
