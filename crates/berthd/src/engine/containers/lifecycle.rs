//! Start, stop, kill, restart, pause, remove, wait; what happens when a
//! container's process exits; and live restore after a daemon restart.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use berth_api::shim::{ExitStatus, Request, ShimConfig};
use berth_runtime::{ContainerFiles, NetNs, NsMode, SeccompChoice, SpecInput};

use super::{now, parse_signal, parse_size, shim, user, Container, Paths, Record, Status};
use crate::engine::cgroups;
use crate::engine::networks::netns;
use crate::engine::{Engine, EngineError, Result};

/// How long a SIGKILL `kill` waits for the exit before it fails.
const KILL_WAIT: Duration = Duration::from_secs(30);

/// `GET /containers/{id}/wait` conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

impl WaitCondition {
    pub fn parse(s: Option<&str>) -> Result<Self> {
        match s.unwrap_or("") {
            "" | "not-running" => Ok(Self::NotRunning),
            "next-exit" => Ok(Self::NextExit),
            "removed" => Ok(Self::Removed),
            other => Err(EngineError::invalid(format!(
                "invalid condition: \"{other}\""
            ))),
        }
    }
}

pub struct Waiter {
    rx: tokio::sync::watch::Receiver<super::Progress>,
    cond: WaitCondition,
    base_exits: u64,
    immediate: Option<i64>,
}

impl Waiter {
    /// Resolves with the exit code once the condition holds.
    pub async fn wait(mut self) -> i64 {
        if let Some(code) = self.immediate {
            return code;
        }
        let base = self.base_exits;
        let cond = self.cond;
        let r = self
            .rx
            .wait_for(|p| match cond {
                WaitCondition::Removed => p.removed,
                _ => p.exits > base || p.removed,
            })
            .await;
        let code = r.map(|p| p.exit_code).ok();
        code.unwrap_or_else(|| self.rx.borrow().exit_code)
    }
}

fn write_file(path: &Path, data: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)
        .map_err(|e| EngineError::internal(format!("writing {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| EngineError::internal(format!("writing {}: {e}", path.display())))
}

/// The container's resolv.conf: the embedded DNS on user-defined networks,
/// else the host's resolvers minus loopback ones (they mean nothing in the
/// container's namespace); `--dns*` flags override, as in Docker.
fn resolv_conf(r: &Record, embedded: bool, host_net: bool) -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let hc = &r.host_config;
    let mut servers: Vec<String> = Vec::new();
    let mut search: Vec<String> = Vec::new();
    let mut options: Vec<String> = Vec::new();
    for l in host.lines() {
        let t = l.trim();
        let mut it = t.split_whitespace();
        match it.next() {
            Some("nameserver") => {
                if let Some(a) = it.next() {
                    if host_net || !(a.starts_with("127.") || a == "::1") {
                        servers.push(a.to_string());
                    }
                }
            }
            Some("search") | Some("domain") => search = it.map(String::from).collect(),
            Some("options") => options.extend(it.map(String::from)),
            _ => {}
        }
    }
    if let Some(d) = hc.dns.as_ref().filter(|d| !d.is_empty()) {
        servers = d.clone();
    }
    if let Some(d) = hc.dns_search.as_ref().filter(|d| !d.is_empty()) {
        search = d.clone();
    }
    if let Some(d) = hc.dns_options.as_ref().filter(|d| !d.is_empty()) {
        options = d.clone();
    }
    if embedded {
        // The embedded server forwards to `servers`; the container asks it.
        servers = vec![super::super::networks::dns::ADDR.to_string()];
        if !options.iter().any(|o| o.starts_with("ndots")) {
            options.push("ndots:0".into());
        }
    } else if servers.is_empty() {
        // Docker's fallback when the host has only local resolvers.
        servers = vec!["8.8.8.8".into(), "8.8.4.4".into()];
    }
    let mut out = String::new();
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// `links` are the lines of the container's links (after `--add-host`
/// ones, as libnetwork orders them).
fn hosts_file(
    r: &Record,
    own: &str,
    links: &str,
    gateway: Option<String>,
    host_net: bool,
) -> String {
    let mut s = if host_net {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        String::from(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
        )
    };
    for h in r.host_config.extra_hosts.clone().unwrap_or_default() {
        if let Some((name, ip)) = h.split_once(':') {
            let ip = if ip == "host-gateway" {
                gateway.clone().unwrap_or_default()
            } else {
                ip.to_string()
            };
            s.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    s.push_str(links);
    s.push_str(own);
    s
}

/// libcontainer 0.7.0 reads the operands of `SCMP_CMP_MASKED_EQ` swapped
/// (`valueTwo` as the mask) relative to the OCI spec and runc. Swap them in
/// the spec we hand it so Docker's `clone` flag rule means what it says.
fn swap_masked_eq(spec: &mut serde_json::Value) {
    let Some(rules) = spec
        .pointer_mut("/linux/seccomp/syscalls")
        .and_then(|v| v.as_array_mut())
    else {
        return;
    };
    for rule in rules {
        if let Some(args) = rule.get_mut("args").and_then(|a| a.as_array_mut()) {
            for a in args {
                if a.get("op").and_then(|o| o.as_str()) == Some("SCMP_CMP_MASKED_EQ") {
                    let v = a
                        .get("value")
                        .cloned()
                        .unwrap_or(serde_json::Value::from(0));
                    let v2 = a
                        .get("valueTwo")
                        .cloned()
                        .unwrap_or(serde_json::Value::from(0));
                    a["value"] = v2;
                    a["valueTwo"] = v;
                }
            }
        }
    }
}

/// Gives the init the capabilities it needs to install a seccomp program
/// (CAP_SYS_ADMIN) and to give them back (CAP_SETPCAP); returns the ones
/// it did not have, which the shim's executor drops before exec.
fn lend_caps(spec: &mut serde_json::Value) -> Vec<String> {
    let mut lent = Vec::new();
    for cap in ["CAP_SYS_ADMIN", "CAP_SETPCAP"] {
        let Some(caps) = spec.pointer_mut("/process/capabilities") else {
            continue;
        };
        let missing = caps
            .get("effective")
            .and_then(|e| e.as_array())
            .is_none_or(|e| !e.iter().any(|c| c == cap));
        if !missing {
            continue;
        }
        for set in ["bounding", "effective", "permitted"] {
            match caps.get_mut(set).and_then(|s| s.as_array_mut()) {
                Some(a) => a.push(serde_json::Value::from(cap)),
                None => caps[set] = serde_json::json!([cap]),
            }
        }
        lent.push(cap.to_string());
    }
    lent
}

fn seccomp_choice(r: &Record) -> Result<(SeccompChoice, bool)> {
    let mut choice = SeccompChoice::Default;
    let mut nnp = false;
    for opt in r.host_config.security_opt.clone().unwrap_or_default() {
        let (k, v) = opt.split_once(['=', ':']).unwrap_or((opt.as_str(), ""));
        match k {
            "seccomp" => {
                choice = match v {
                    "unconfined" => SeccompChoice::Unconfined,
                    "" => return Err(EngineError::invalid("seccomp profile must be specified")),
                    // The CLI sends the file's contents, not its path.
                    json => SeccompChoice::Custom(json.to_string()),
                }
            }
            "no-new-privileges" => nnp = v.is_empty() || v == "true",
            "apparmor" | "label" | "systempaths" => {}
            _ => {
                return Err(EngineError::invalid(format!(
                    "invalid --security-opt: {opt:?}"
                )))
            }
        }
    }
    Ok((choice, nnp))
}

/// Debug timing of a start's steps (`BERTH_LOG=debug`).
fn start_lap(id: &str, t0: std::time::Instant, what: &str) {
    tracing::debug!(id = %&id[..12.min(id.len())], step = what, us = t0.elapsed().as_micros() as u64, "start");
}

/// A start's configuration-only half (see `Engine::prepare_start`).
pub(super) struct Prepared {
    pub launched: shim::Launched,
    /// The container's own network namespace, being created meanwhile.
    pub netns: Option<netns::Pending>,
    mode: String,
    host_net: bool,
    embedded: bool,
    hostname: String,
    /// `/etc/hosts` lines for the container's links.
    link_hosts: String,
}

impl Prepared {
    /// Lets the shim go without creating anything (see
    /// `shim::Launched::abandon`), once the namespace is made.
    pub async fn abandon(self) {
        if let Some(n) = self.netns {
            let _ = n.ready().await;
        }
        self.launched.abandon().await;
    }
}

impl Engine {
    pub async fn start_container(self: &Arc<Self>, key: &str) -> Result<()> {
        let c = self.containers.find(key)?;
        let _op = c.op.lock().await;
        self.start_locked(&c).await
    }

    /// A start; the caller holds the container's lifecycle lock.
    async fn start_locked(self: &Arc<Self>, c: &Arc<Container>) -> Result<()> {
        let c = c.clone();
        let r = c.snapshot();
        match r.state.status {
            Status::Paused => {
                return Err(EngineError::conflict(
                    "cannot start a paused container, try unpause instead",
                ))
            }
            Status::Running | Status::Restarting => {
                return Err(EngineError::NotModified("container already started".into()))
            }
            Status::Removing => {
                return Err(EngineError::conflict(
                    "container is marked for removal and cannot be started",
                ))
            }
            Status::Dead => {
                return Err(EngineError::conflict(
                    "container is marked for removal and cannot be started",
                ))
            }
            _ => {}
        }
        let p = self.paths(&r.id);
        match self.start_inner(&c, &r, &p).await {
            Ok((pid, started_at)) => {
                {
                    let mut rec = c.lock();
                    rec.state.status = Status::Running;
                    rec.state.pid = pid as i64;
                    rec.state.started_at = Some(started_at);
                    rec.state.error = String::new();
                    rec.state.oom_killed = false;
                    rec.has_been_started = true;
                    rec.manually_stopped = false;
                }
                c.exit_on_next.store(false, Ordering::SeqCst);
                self.persist(&c)?;
                c.progress.send_modify(|p| p.starts += 1);
                let started = c.snapshot();
                self.update_linking_hosts(&started);
                self.container_event(&started, "start", &[]);
                self.spawn_health(c.clone());
                let me = self.clone();
                let c2 = c.clone();
                tokio::spawn(async move { me.monitor(c2).await });
                Ok(())
            }
            Err(e) => {
                self.teardown(&c, &p);
                let msg = e.to_string();
                {
                    let mut rec = c.lock();
                    rec.state.error = msg.clone();
                    rec.state.exit_code = if msg.contains("executable file not found")
                        || msg.contains("no such file or directory")
                    {
                        127
                    } else if msg.contains("permission denied") {
                        126
                    } else {
                        128
                    };
                    if rec.has_been_started {
                        rec.state.status = Status::Exited;
                    }
                }
                let _ = self.persist(&c);
                // Attach clients waiting for this start are released.
                c.pending.lock().unwrap_or_else(|x| x.into_inner()).clear();
                let rec = c.snapshot();
                c.progress
                    .send_modify(|pr| pr.exit_code = rec.state.exit_code);
                // As moby: a container that was to be removed on exit is
                // removed when it cannot start (`docker run --rm` waits for it).
                if rec.host_config.auto_remove == Some(true) && self.forget_container(&c).is_ok() {
                    self.container_event(&rec, "destroy", &[]);
                }
                Err(e)
            }
        }
    }

    /// Undoes what a start set up on the host: networks, namespace, rootfs.
    pub(crate) fn teardown(&self, c: &Container, p: &Paths) {
        let mut eps = c.lock().endpoints.clone();
        self.detach_networks(&c.id, &mut eps);
        {
            let mut r = c.lock();
            r.endpoints = eps;
            r.ports = None;
        }
        p.rw.unmount();
        netns::remove(&p.netns);
        let _ = std::fs::remove_file(&p.socket);
        self.unmount_volumes(c);
    }

    async fn start_inner(
        self: &Arc<Self>,
        c: &Arc<Container>,
        r: &Record,
        p: &Paths,
    ) -> Result<(i32, String)> {
        let prep = match super::prestart::take(c, r, p).await {
            Some(prep) => prep,
            None => self.prepare_start(r, p).await?,
        };
        self.finish_start(c, r, p, prep).await
    }

    /// The part of a start that depends only on the container's
    /// configuration: the root file system, the runtime spec and a loaded
    /// shim waiting for the word. (Run early for a fresh container, see
    /// `prestart.rs`.)
    pub(super) async fn prepare_start(self: &Arc<Self>, r: &Record, p: &Paths) -> Result<Prepared> {
        let mode = r.host_config.network_mode.as_deref().unwrap_or_default();
        let private_netns = !(mode == "host" || mode.starts_with("container:"));
        // The (empty) network namespace is made on a thread of its own
        // while the rest is prepared; the networks are attached at start.
        let netns = private_netns.then(|| netns::create_soon(&p.netns));
        match self.prepare_rest(r, p).await {
            Ok(mut prep) => {
                prep.netns = netns;
                Ok(prep)
            }
            Err(e) => {
                // Made before the caller's clean-up looks for it.
                if let Some(n) = netns {
                    let _ = n.ready().await;
                }
                Err(e)
            }
        }
    }

    async fn prepare_rest(self: &Arc<Self>, r: &Record, p: &Paths) -> Result<Prepared> {
        let hc = &r.host_config;
        let t0 = std::time::Instant::now();
        let lap = |what: &str| start_lap(&r.id, t0, what);
        // Root file system.
        self.mount_rw(&p.rw, &r.image_id, hc.auto_remove == Some(true))?;

        lap("rootfs");
        let mode = hc.network_mode.clone().unwrap_or_default();
        let mut joined = None;
        let net = if mode == "host" {
            NetNs::Host
        } else if let Some(other) = mode.strip_prefix("container:") {
            let o = self.containers.find(other)?.snapshot();
            if !o.state.status.is_running() {
                return Err(EngineError::conflict(format!(
                    "cannot join network namespace of a non running container: container {} is exited",
                    o.id
                )));
            }
            let ns = NetNs::Path(format!("/proc/{}/ns/net", o.state.pid).into());
            joined = Some(o);
            ns
        } else {
            NetNs::Path(p.netns.clone())
        };
        // Joining another container's network namespace means taking its
        // host name and sharing its hostname, hosts and resolv.conf files,
        // as dockerd does (its embedded DNS then answers this one too).
        let files = match &joined {
            Some(o) => {
                let op = self.paths(&o.id);
                ContainerFiles {
                    hosts: Some(op.hosts),
                    resolv_conf: Some(op.resolv),
                    hostname: Some(op.hostname),
                }
            }
            None => ContainerFiles {
                hosts: Some(p.hosts.clone()),
                resolv_conf: Some(p.resolv.clone()),
                hostname: Some(p.hostname.clone()),
            },
        };
        let config_of = |rec: &Record| (rec.config.hostname.clone(), rec.config.domainname.clone());
        let (hostname, domainname) = config_of(joined.as_ref().unwrap_or(r));
        let host_net = mode == "host";
        let embedded = r
            .endpoints
            .keys()
            .any(|n| self.networks.find(n).map(|x| x.has_dns()).unwrap_or(false));
        let hostname = hostname.unwrap_or_default();
        let hostname = if hostname.is_empty() {
            crate::engine::host::hostname()
        } else {
            hostname
        };

        // Process.
        let (u, home) = user::resolve(
            &p.rw.merged,
            r.config.user.as_deref().unwrap_or(""),
            &hc.group_add.clone().unwrap_or_default(),
        )?;
        let tty = r.config.tty.unwrap_or(false);
        let linked = self.linked(r)?;
        let mut env = super::daemon_env(
            &hostname,
            tty,
            linked.env,
            &[&r.config.env.clone().unwrap_or_default()],
        );
        let has = |env: &Vec<String>, k: &str| env.iter().any(|e| e.split('=').next() == Some(k));
        if !has(&env, "HOME") {
            env.push(format!("HOME={home}"));
        }
        let mut args = vec![r.path.clone()];
        args.extend(r.args.clone());
        let init = if hc.init == Some(true) {
            self.init_binary()
        } else {
            None
        };
        if init.is_some() {
            let mut a = vec!["/sbin/docker-init".to_string(), "--".to_string()];
            a.extend(args);
            args = a;
        }
        let cwd = r
            .config
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into());
        // As dockerd does, a missing working directory is created (root's,
        // 0755), resolved inside the container's root.
        if !crate::engine::fs::components(&cwd).is_empty() {
            crate::engine::fs::Root::open(&p.rw.merged)
                .and_then(|root| root.mkdir_all(&cwd, 0o755))
                .map_err(|e| match e.raw_os_error() {
                    Some(libc::ENOTDIR) | Some(libc::EEXIST) => {
                        EngineError::invalid(format!("Cannot mkdir: {cwd} is not a directory"))
                    }
                    _ => EngineError::internal(format!("creating working directory {cwd}: {e}")),
                })?;
        }
        let (seccomp, nnp) = seccomp_choice(r)?;
        let ns_mode = |m: Option<&String>| -> Result<NsMode> {
            match m.map(String::as_str).unwrap_or("") {
                "host" => Ok(NsMode::Host),
                m if m.starts_with("container:") => {
                    let o = self.containers.find(&m["container:".len()..])?.snapshot();
                    Ok(NsMode::Path(format!("/proc/{}/ns", o.state.pid).into()))
                }
                _ => Ok(NsMode::Private),
            }
        };
        let ipc = match ns_mode(hc.ipc_mode.as_ref())? {
            NsMode::Path(d) => NsMode::Path(d.join("ipc")),
            m => m,
        };
        let pid = match ns_mode(hc.pid_mode.as_ref())? {
            NsMode::Path(d) => NsMode::Path(d.join("pid")),
            m => m,
        };
        let extra_mounts = self.prepare_mounts(r, &p.rw.merged).await?;
        let input = SpecInput {
            id: &r.id,
            config: &r.config,
            host_config: hc,
            rootfs: p.rw.merged.clone(),
            args,
            env,
            cwd,
            user: u,
            hostname: hostname.clone(),
            domainname: domainname.unwrap_or_default(),
            files,
            netns: net,
            ipc,
            pid,
            uts_host: hc.uts_mode.as_deref() == Some("host"),
            cgroups_path: cgroups::path(&r.id),
            extra_mounts,
            init_binary: init,
            seccomp,
            no_new_privileges: nnp,
        };
        let mut spec = berth_runtime::build_spec(&input).map_err(|e| match e {
            berth_runtime::SpecError::Invalid(m) => EngineError::invalid(m),
            other => EngineError::internal(other.to_string()),
        })?;
        lap("build");
        // The filter, compiled once per profile: loaded as BPF into exec'd
        // processes, and (for Docker's default profile) into the init too,
        // sparing libseccomp's per-container compile (tens of ms).
        let default_profile = matches!(input.seccomp, SeccompChoice::Default);
        let mut bpf_file = None;
        if let Some(l) = spec.linux_mut() {
            if let Some(sc) = l.seccomp() {
                bpf_file = Some(self.containers.bpf.file(sc)?);
                if default_profile {
                    // The shim installs it; libcontainer must not.
                    l.set_seccomp(None);
                }
            }
        }
        let have_bpf = bpf_file.is_some();
        let mut spec_json = serde_json::to_value(&spec)?;
        let mut lent_caps = Vec::new();
        if have_bpf && default_profile {
            lent_caps = lend_caps(&mut spec_json);
        }
        swap_masked_eq(&mut spec_json);
        std::fs::create_dir_all(&p.bundle)?;
        write_file(
            &p.bundle.join("config.json"),
            &serde_json::to_string(&spec_json)?,
        )?;

        lap("spec");
        // The shim.
        let log_cfg = hc
            .log_config
            .as_ref()
            .and_then(|l| l.config.clone())
            .unwrap_or_default();
        let exit_file = p.bundle.join("exit.json");
        let _ = std::fs::remove_file(&exit_file);
        if let Some(sdir) = p.socket.parent() {
            std::fs::create_dir_all(sdir)?;
        }
        let cfg = ShimConfig {
            id: r.id.clone(),
            bundle: p.bundle.display().to_string(),
            runtime_root: self.config.exec_root.join("runtime").display().to_string(),
            socket: p.socket.display().to_string(),
            exit_file: exit_file.display().to_string(),
            log_path: if self.log_enabled(r) {
                p.log.display().to_string()
            } else {
                String::new()
            },
            log_max_size: log_cfg
                .get("max-size")
                .and_then(|s| parse_size(s))
                .unwrap_or(0),
            log_max_file: log_cfg
                .get("max-file")
                .and_then(|s| s.parse().ok())
                .unwrap_or(1),
            tty,
            open_stdin: r.config.open_stdin.unwrap_or(false),
            stdin_once: r.config.stdin_once.unwrap_or(false),
            console_size: hc
                .console_size
                .as_ref()
                .filter(|v| v.len() == 2 && v[0] > 0 && v[1] > 0)
                .map(|v| (v[0] as u16, v[1] as u16)),
            cgroups_path: cgroups::path(&r.id),
            init_bpf: have_bpf && default_profile,
            seccomp_bpf: bpf_file
                .map(|f| f.display().to_string())
                .unwrap_or_default(),
            lent_caps,
            volatile_exit: hc.auto_remove == Some(true),
            trash_dir: crate::engine::trash::dir(&self.config.exec_root)
                .display()
                .to_string(),
        };
        write_file(&p.bundle.join("shim.json"), &serde_json::to_string(&cfg)?)?;
        let launched = shim::launch(
            &self.containers.shim_bin,
            &p.bundle,
            &p.bundle.join("shim.log"),
        )?;
        lap("launch");
        Ok(Prepared {
            launched,
            netns: None,
            mode,
            host_net,
            embedded,
            hostname,
            link_hosts: linked.hosts,
        })
    }

    /// The rest of a start: network namespace and networks, the files that
    /// depend on them, then the container itself. A failure drops the
    /// prepared shim, which exits without creating anything.
    async fn finish_start(
        self: &Arc<Self>,
        c: &Arc<Container>,
        r: &Record,
        p: &Paths,
        prep: Prepared,
    ) -> Result<(i32, String)> {
        let t0 = std::time::Instant::now();
        let lap = |what: &str| start_lap(&r.id, t0, what);
        let Prepared {
            launched,
            netns,
            mode,
            host_net,
            embedded,
            hostname,
            link_hosts,
        } = prep;
        let ready = async {
            if let Some(n) = netns {
                n.ready().await?;
            }
            let mut r = r.clone();
            use crate::engine::networks::Mode;
            match crate::engine::networks::mode_of(&mode) {
                Mode::Networks => {
                    let (eps, ports) = self.attach_networks(&r.id, &r, &p.netns).await?;
                    r.endpoints = eps;
                    r.ports = Some(ports);
                    let mut rec = c.lock();
                    rec.endpoints = r.endpoints.clone();
                    rec.ports = r.ports.clone();
                }
                Mode::None | Mode::Host => {
                    let mut rec = c.lock();
                    crate::engine::networks::join_without_interface(&mut rec.endpoints);
                    r.endpoints = rec.endpoints.clone();
                }
                Mode::Container(_) => {}
            }
            lap("network");
            if mode.starts_with("container:") {
                // dockerd records the joined container's name as this one's.
                c.lock().config.hostname = Some(hostname.clone());
            }
            write_file(&p.hostname, &format!("{hostname}\n"))?;
            write_file(
                &p.hosts,
                &hosts_file(
                    &r,
                    &self.own_hosts_lines(&r),
                    &link_hosts,
                    self.default_gateway(),
                    host_net,
                ),
            )?;
            write_file(&p.resolv, &resolv_conf(&r, embedded, host_net))?;
            Ok::<(), EngineError>(())
        }
        .await;
        if let Err(e) = ready {
            // Gone before a retried start launches a new shim on its socket.
            launched.abandon().await;
            return Err(e);
        }
        let pid = launched.go().await?;

        lap("shim");
        // Attach clients that came before start get the stream from the first byte.
        let pending: Vec<super::attach::Pending> =
            std::mem::take(&mut *c.pending.lock().unwrap_or_else(|x| x.into_inner()));
        for pa in pending {
            pa.connect(&p.socket).await;
        }
        let reply = shim::call(&p.socket, &Request::Start).await.map_err(|e| {
            // The process could not start: make sure the shim goes.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            shim::start_error(e.to_string())
        })?;
        lap("started");
        let started_at = reply.state.and_then(|s| s.started_at).unwrap_or_else(now);
        Ok((pid, started_at))
    }

    /// Follows a running container until its process exits.
    pub(crate) async fn monitor(self: Arc<Self>, c: Arc<Container>) {
        let p = self.paths(&c.id);
        let mut failures = 0;
        let status = loop {
            let r = async {
                let mut conn = shim::connect(&p.socket).await?;
                conn.send(&Request::Wait).await
            }
            .await;
            match r {
                Ok(rep) if rep.exit.is_some() => break rep.exit,
                _ => {
                    // The shim is gone: its exit record says how it ended.
                    if let Some(s) = read_exit(&p.bundle.join("exit.json")) {
                        break Some(s);
                    }
                    failures += 1;
                    if failures > 20 {
                        break None;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        let status = match status {
            Some(s) => s,
            None => {
                // The shim died without a word (killed): its container's
                // processes may live on, unreachable. They are stopped.
                self.release_stray(&c.id).await;
                ExitStatus {
                    exit_code: 255,
                    finished_at: now(),
                    oom_killed: false,
                }
            }
        };
        self.handle_exit(&c, status).await;
    }

    /// Stops what runs of a container outside a working shim, and releases
    /// its cgroups and runtime state (see `reconcile::release`).
    async fn release_stray(&self, id: &str) {
        let (cfg, id) = (self.config.clone(), id.to_string());
        let _ = tokio::task::spawn_blocking(move || {
            let shims = crate::engine::reconcile::shims_of(&cfg.exec_root, &id);
            crate::engine::reconcile::release_processes(&cfg, &id, &shims);
        })
        .await;
    }

    async fn handle_exit(self: &Arc<Self>, c: &Arc<Container>, st: ExitStatus) {
        let p = self.paths(&c.id);
        self.teardown(c, &p);
        crate::engine::trash::remove(
            &p.bundle,
            &crate::engine::trash::dir(&self.config.exec_root),
        );
        {
            let mut r = c.lock();
            r.state.status = Status::Exited;
            r.state.pid = 0;
            r.state.exit_code = st.exit_code as i64;
            r.state.finished_at = Some(st.finished_at.clone());
            r.state.oom_killed = st.oom_killed;
        }
        // An AutoRemove container's record is deleted just below, so its
        // exit is not written first (a daemon that dies in between finds
        // the shim gone at restart and removes the container then).
        let auto_remove = c.lock().host_config.auto_remove == Some(true);
        if !auto_remove {
            if let Err(e) = self.persist(c) {
                tracing::error!(id = %c.id, error = %e, "recording the exit");
            }
        }
        self.forget_unfinished_execs(&c.id);
        let rec = c.snapshot();
        if st.oom_killed {
            self.container_event(&rec, "oom", &[]);
        }
        self.container_event(&rec, "die", &[("exitCode", st.exit_code.to_string())]);
        c.progress.send_modify(|pr| {
            pr.exits += 1;
            pr.exit_code = st.exit_code as i64;
        });
        let exit_on_next = c.exit_on_next.swap(false, Ordering::SeqCst);
        if !exit_on_next && self.should_restart(&rec) {
            self.schedule_restart(c.clone(), &rec);
            return;
        }
        if auto_remove {
            let _op = c.op.lock().await;
            if self.containers.find(&c.id).is_ok() {
                if let Err(e) = self.forget(c, false) {
                    tracing::warn!(id = %c.id, error = %e, "auto-remove");
                    let _ = self.persist(c);
                } else {
                    self.container_event(&rec, "destroy", &[]);
                }
            }
        }
    }

    /// Docker's restart policies (an explicit `stop` is never undone here).
    fn should_restart(&self, r: &Record) -> bool {
        use berth_api::models::RestartPolicyNameEnum as P;
        if r.manually_stopped || r.host_config.auto_remove == Some(true) {
            return false;
        }
        if *self.shutdown_signal().borrow() {
            return false;
        }
        let policy = r.host_config.restart_policy.clone().unwrap_or_default();
        match policy.name {
            Some(P::ALWAYS) | Some(P::UNLESS_STOPPED) => true,
            Some(P::ON_FAILURE) => {
                let max = policy.maximum_retry_count.unwrap_or(0);
                r.state.exit_code != 0 && (max <= 0 || r.restart_count < max)
            }
            _ => false,
        }
    }

    /// Restarts after Docker's back-off: 100 ms doubling up to a minute,
    /// back to 100 ms once a run lasted 10 s.
    fn schedule_restart(self: &Arc<Self>, c: Arc<Container>, r: &Record) {
        let ran = match (
            r.state
                .started_at
                .as_deref()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()),
            r.state
                .finished_at
                .as_deref()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()),
        ) {
            (Some(a), Some(b)) => (b - a).num_milliseconds(),
            _ => 0,
        };
        let delay = {
            let mut b = c.backoff.lock().unwrap_or_else(|p| p.into_inner());
            *b = if ran >= 10_000 || b.is_zero() {
                Duration::from_millis(100)
            } else {
                (*b * 2).min(Duration::from_secs(60))
            };
            *b
        };
        c.lock().state.status = Status::Restarting;
        let _ = self.persist(&c);
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let still = c.snapshot();
            if still.state.status != Status::Restarting
                || still.manually_stopped
                || me.containers.find(&c.id).is_err()
            {
                return;
            }
            c.lock().restart_count += 1;
            // start() refuses a "restarting" container; it is exited really.
            c.lock().state.status = Status::Exited;
            if let Err(e) = me.start_container(&c.id).await {
                tracing::warn!(id = %c.id, error = %e, "restart policy: start failed");
                c.lock().state.status = Status::Exited;
                let _ = me.persist(&c);
            }
        });
    }

    fn socket_of(&self, c: &Container) -> std::path::PathBuf {
        self.paths(&c.id).socket
    }

    /// Sends a signal to the container's init.
    async fn signal(&self, c: &Container, sig: i32) -> Result<()> {
        shim::call(
            &self.socket_of(c),
            &Request::Kill {
                exec_id: None,
                signal: sig,
            },
        )
        .await
        .map(|_| ())
    }

    async fn wait_exit(&self, c: &Container, base: u64, limit: Option<Duration>) -> bool {
        let mut rx = c.progress.subscribe();
        let fut = rx.wait_for(|p| p.exits > base || p.removed);
        match limit {
            Some(d) => tokio::time::timeout(d, fut)
                .await
                .map(|r| r.is_ok())
                .unwrap_or(false),
            None => fut.await.is_ok(),
        }
    }

    /// `docker kill`. As in dockerd, SIGKILL (the default) answers only
    /// once the container has exited, so an inspect or `rm` right after
    /// sees it stopped; other signals answer once delivered.
    pub async fn kill_container(&self, key: &str, signal: Option<&str>) -> Result<()> {
        let c = self.containers.find(key).map_err(|e| match e {
            EngineError::NotFound(m) => {
                EngineError::NotFound(format!("Cannot kill container: {key}: {m}"))
            }
            e => e,
        })?;
        let sig = match signal.filter(|s| !s.is_empty()) {
            Some(s) => parse_signal(s)?,
            None => libc::SIGKILL,
        };
        let r = c.snapshot();
        if !r.state.status.is_running() {
            return Err(EngineError::conflict(format!(
                "Cannot kill container: {key}: Container {} is not running",
                r.id
            )));
        }
        let stop_signal = match r.config.stop_signal.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => Some(parse_signal(s)?),
            None => None,
        };
        // dockerd's "exit on next": SIGKILL, or the stop signal (any signal
        // when none is configured), means the exit it causes is not
        // restarted, and a paused container is resumed to receive it.
        if r.state.status == Status::Restarting {
            // In a restart back-off there is no process to signal: the kill
            // cancels the restart, and the container stays exited.
            {
                let mut rec = c.lock();
                if rec.state.status == Status::Restarting {
                    rec.state.status = Status::Exited;
                }
            }
            self.persist(&c)?;
            self.container_event(&r, "kill", &[("signal", sig.to_string())]);
            return Ok(());
        }
        let stopping = sig == libc::SIGKILL || stop_signal.is_none_or(|s| s == sig);
        if stopping {
            c.exit_on_next.store(true, Ordering::SeqCst);
        }
        let base = c.progress.borrow().exits;
        if let Err(e) = self.signal(&c, sig).await {
            // The process exited as the signal went (its shim is closing):
            // done, as dockerd answers when the task is already gone.
            if !self.wait_exit(&c, base, Some(Duration::from_secs(2))).await
                && c.status().is_running()
            {
                return Err(e);
            }
            return Ok(());
        }
        self.container_event(&r, "kill", &[("signal", sig.to_string())]);
        if r.state.status == Status::Paused && stopping && cgroups::freeze(&r.id, false).is_ok() {
            // Unless the process has exited meanwhile (its exit is recorded).
            let resumed = {
                let mut rec = c.lock();
                let was = rec.state.status == Status::Paused;
                if was {
                    rec.state.status = Status::Running;
                }
                was
            };
            if resumed {
                self.persist(&c)?;
                self.container_event(&c.snapshot(), "unpause", &[]);
            }
        }
        if sig == libc::SIGKILL && !self.wait_exit(&c, base, Some(KILL_WAIT)).await {
            return Err(EngineError::internal(format!(
                "container {} did not exit after SIGKILL",
                r.id
            )));
        }
        Ok(())
    }

    pub async fn stop_container(
        &self,
        key: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let c = self.containers.find(key)?;
        let _op = c.op.lock().await;
        self.stop_locked(&c, timeout, signal).await
    }

    async fn stop_locked(
        &self,
        c: &Arc<Container>,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let r = c.snapshot();
        if !r.state.status.is_running() {
            return Err(EngineError::NotModified("container already stopped".into()));
        }
        if r.state.status == Status::Restarting {
            // Waiting out a back-off: no process to signal, just stay down.
            {
                let mut rec = c.lock();
                rec.manually_stopped = true;
                rec.state.status = Status::Exited;
            }
            self.persist(c)?;
            self.container_event(&c.snapshot(), "stop", &[]);
            return Ok(());
        }
        let sig = match signal.filter(|s| !s.is_empty()).or(r
            .config
            .stop_signal
            .as_deref()
            .filter(|s| !s.is_empty()))
        {
            Some(s) => parse_signal(s)?,
            None => libc::SIGTERM,
        };
        let t = timeout.or(r.config.stop_timeout).unwrap_or(10);
        let base = c.progress.borrow().exits;
        c.lock().manually_stopped = true;
        self.persist(c)?;
        if self.signal(c, sig).await.is_ok() {
            self.container_event(&r, "kill", &[("signal", sig.to_string())]);
        }
        if r.state.status == Status::Paused {
            let _ = cgroups::freeze(&r.id, false);
        }
        let limit = (t >= 0).then(|| Duration::from_secs(t as u64));
        if !self.wait_exit(c, base, limit).await {
            if self.signal(c, libc::SIGKILL).await.is_ok() {
                self.container_event(&r, "kill", &[("signal", libc::SIGKILL.to_string())]);
            }
            if !self.wait_exit(c, base, Some(Duration::from_secs(30))).await {
                return Err(EngineError::internal(format!(
                    "container {} did not exit after SIGKILL",
                    r.id
                )));
            }
        }
        self.container_event(&c.snapshot(), "stop", &[]);
        Ok(())
    }

    pub async fn restart_container(
        self: &Arc<Self>,
        key: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let c = self.containers.find(key)?;
        // One lock over both halves: no other start slips in between.
        let _op = c.op.lock().await;
        match self.stop_locked(&c, timeout, signal).await {
            Ok(()) | Err(EngineError::NotModified(_)) => {}
            Err(e) => return Err(e),
        }
        if self.containers.find(&c.id).is_err() {
            return Err(EngineError::NotFound(format!("No such container: {key}")));
        }
        self.start_locked(&c).await?;
        self.container_event(&c.snapshot(), "restart", &[]);
        Ok(())
    }

    pub async fn pause_container(&self, key: &str, pause: bool) -> Result<()> {
        let c = self.containers.find(key)?;
        let _op = c.op.lock().await;
        let r = c.snapshot();
        match (pause, r.state.status) {
            // As dockerd, unpause only asks whether the container is paused.
            (false, s) if s != Status::Paused => {
                return Err(EngineError::conflict(format!(
                    "Container {} is not paused",
                    r.id
                )))
            }
            (_, s) if !s.is_running() => {
                return Err(EngineError::conflict(format!(
                    "Container {} is not running",
                    r.id
                )))
            }
            (true, Status::Paused) => {
                return Err(EngineError::conflict(format!(
                    "Container {} is already paused",
                    r.id
                )))
            }
            _ => {}
        }
        cgroups::freeze(&r.id, pause)?;
        {
            let mut rec = c.lock();
            rec.state.status = if pause {
                Status::Paused
            } else {
                Status::Running
            };
            // The user's pause (or unpause) is the user's to undo.
            rec.paused_for_commit = false;
        }
        self.persist(&c)?;
        self.container_event(&c.snapshot(), if pause { "pause" } else { "unpause" }, &[]);
        Ok(())
    }

    pub async fn remove_container(&self, key: &str, force: bool, volumes: bool) -> Result<()> {
        let c = self.containers.find(key)?;
        let _op = c.op.lock().await;
        let r = c.snapshot();
        if !force && r.state.status == Status::Restarting {
            return Err(EngineError::conflict(format!(
                "cannot remove container \"/{}\": container is restarting: stop the container before removing or force remove",
                r.name
            )));
        }
        if r.state.status.is_running() && r.state.status != Status::Restarting {
            if !force {
                // moby's words (25 and later).
                let why = if r.state.status == Status::Paused {
                    "is paused and must be unpaused first"
                } else {
                    "is running: stop the container before removing or force remove"
                };
                return Err(EngineError::conflict(format!(
                    "cannot remove container \"/{}\": container {why}",
                    r.name
                )));
            }
            let base = c.progress.borrow().exits;
            let _ = self.signal(&c, libc::SIGKILL).await;
            if r.state.status == Status::Paused {
                let _ = cgroups::freeze(&r.id, false);
            }
            self.container_event(&r, "kill", &[("signal", libc::SIGKILL.to_string())]);
            if !self
                .wait_exit(&c, base, Some(Duration::from_secs(30)))
                .await
            {
                return Err(EngineError::internal(format!(
                    "could not kill running container {}, cannot remove",
                    r.id
                )));
            }
        }
        if self.containers.find(&c.id).is_err() {
            // Auto-removed meanwhile.
            return Ok(());
        }
        c.lock().state.status = Status::Removing;
        self.forget_container(&c)?;
        if volumes {
            self.remove_anonymous_volumes(&r);
        }
        self.container_event(&r, "destroy", &[]);
        Ok(())
    }

    pub async fn resize_container(&self, key: &str, h: u16, w: u16) -> Result<()> {
        let c = self.containers.find(key)?;
        let r = c.snapshot();
        if !r.state.status.is_running() {
            return Err(EngineError::conflict(format!(
                "Container {} is not running",
                r.id
            )));
        }
        shim::call(
            &self.socket_of(&c),
            &Request::Resize {
                exec_id: None,
                height: h,
                width: w,
            },
        )
        .await?;
        self.container_event(
            &r,
            "resize",
            &[("height", h.to_string()), ("width", w.to_string())],
        );
        Ok(())
    }

    /// Validates the container now; the returned waiter resolves later.
    pub fn wait_container(&self, key: &str, cond: WaitCondition) -> Result<Waiter> {
        let c = self.containers.find(key)?;
        let rx = c.progress.subscribe();
        let p = *rx.borrow();
        let r = c.snapshot();
        let immediate = (cond == WaitCondition::NotRunning && !r.state.status.is_running())
            .then_some(r.state.exit_code);
        Ok(Waiter {
            rx,
            cond,
            base_exits: p.exits,
            immediate,
        })
    }

    pub async fn prune_containers(
        &self,
        filters: &berth_api::filters::Filters,
    ) -> Result<(Vec<String>, i64)> {
        filters.validate(&["until", "label", "label!"])?;
        let until = filters.get("until").next().map(parse_until).transpose()?;
        let mut deleted = Vec::new();
        let mut space = 0;
        for c in self.containers.all() {
            let r = c.snapshot();
            if r.state.status.is_running() || r.state.status == Status::Removing {
                continue;
            }
            if !filters.match_labels("label", r.config.labels.as_ref()) {
                continue;
            }
            if filters.contains("label!")
                && filters.get("label!").any(|l| {
                    let mut f = berth_api::filters::Filters::new();
                    f.add("l", l);
                    f.match_labels("l", r.config.labels.as_ref())
                })
            {
                continue;
            }
            if let Some(u) = until {
                let created = chrono::DateTime::parse_from_rfc3339(&r.created)
                    .map(|t| t.timestamp())
                    .unwrap_or(0);
                if created >= u {
                    continue;
                }
            }
            let size = super::dir_size(&self.paths(&r.id).rw.upper);
            if self.remove_container(&r.id, false, false).await.is_ok() {
                deleted.push(r.id.clone());
                space += size;
            }
        }
        if !deleted.is_empty() {
            self.events.publish(
                "container",
                "prune",
                "",
                [("reclaimed".to_string(), space.to_string())]
                    .into_iter()
                    .collect(),
            );
        }
        Ok((deleted, space))
    }

    /// Reattaches to shims that survived a daemon restart and records the
    /// exits that happened while the daemon was down.
    pub async fn restore_containers(self: &Arc<Self>) {
        let out = self.reconcile().await;
        tracing::info!(
            adopted = out.adopted,
            exits_recorded = out.exits_recorded,
            stopped_unacknowledged = out.stopped_unacknowledged,
            orphans_removed = out.orphans_removed,
            released = out.released,
            "reconciled with the host"
        );
        self.restore_links();
        self.restore_running().await;
        self.release_idle_volumes();
        // Containers whose policy wants them up, as dockerd does at start.
        use berth_api::models::RestartPolicyNameEnum as P;
        for c in self.containers.all() {
            let r = c.snapshot();
            if r.state.status.is_running() || r.state.status == Status::Removing {
                continue;
            }
            let policy = r.host_config.restart_policy.as_ref().and_then(|p| p.name);
            let want = match policy {
                Some(P::ALWAYS) => r.has_been_started,
                Some(P::UNLESS_STOPPED) => r.has_been_started && !r.manually_stopped,
                _ => false,
            } || r.state.status == Status::Restarting;
            if want && !(r.manually_stopped && policy != Some(P::ALWAYS)) {
                if let Err(e) = self.start_container(&r.id).await {
                    tracing::warn!(id = %r.id, error = %e, "starting on daemon start");
                }
            }
        }
    }

    async fn restore_running(self: &Arc<Self>) {
        for c in self.containers.all() {
            let r = c.snapshot();
            let p = self.paths(&r.id);
            if !r.state.status.is_running() {
                // A crash may have left host state behind.
                if p.rw.is_mounted() || p.netns.exists() {
                    self.teardown(&c, &p);
                }
                continue;
            }
            // Bounded: a stopped shim must not hold up the daemon's start.
            let alive = tokio::time::timeout(
                Duration::from_secs(5),
                shim::call(&p.socket, &Request::State),
            )
            .await
            .unwrap_or_else(|_| Err(EngineError::internal("the shim did not answer")));
            match alive {
                Ok(rep) if rep.state.as_ref().is_some_and(|s| s.status == "running") => {
                    tracing::info!(id = %r.id, "reattached to running container");
                    self.resume_after_commit(&c);
                    self.restore_container_network(&r).await;
                    self.spawn_health(c.clone());
                    let me = self.clone();
                    tokio::spawn(async move { me.monitor(c).await });
                }
                Ok(rep) if rep.state.as_ref().and_then(|s| s.exit.clone()).is_some() => {
                    let st = rep.state.and_then(|s| s.exit).unwrap_or_default();
                    self.handle_exit(&c, st).await;
                }
                _ => {
                    // Whatever still runs of it (a shim that does not
                    // answer, processes whose shim was killed) is stopped.
                    self.release_stray(&r.id).await;
                    let st = read_exit(&p.bundle.join("exit.json")).unwrap_or(ExitStatus {
                        exit_code: 255,
                        finished_at: now(),
                        oom_killed: false,
                    });
                    tracing::info!(id = %r.id, code = st.exit_code, "container exited while the daemon was down");
                    self.handle_exit(&c, st).await;
                }
            }
        }
    }
}

fn parse_until(u: &str) -> Result<i64> {
    if let Ok(n) = u.split('.').next().unwrap_or("").parse::<i64>() {
        return Ok(n);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(u) {
        return Ok(t.timestamp());
    }
    Err(EngineError::invalid(format!("invalid until filter: {u}")))
}

fn read_exit(path: &Path) -> Option<ExitStatus> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}
