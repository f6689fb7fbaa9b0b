//! `run`/`create` flags and their mapping to the create body
//! (`ContainerCreateBody`: Config fields at the top level, `HostConfig`,
//! `NetworkingConfig`), written as the docker CLI sends them.
//!
//! Adding a flag: declare it in [`ContainerFlags`], then set its field in
//! [`ContainerFlags::config`] or [`ContainerFlags::host_config`]; parsing
//! helpers for docker's value syntaxes are at the bottom.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Map, Value};

use crate::format::parse_go_duration;

#[derive(clap::Args, Debug, Default, Clone)]
pub struct ContainerFlags {
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short = 'a', long = "attach", value_name = "list")]
    pub attach: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Automatically remove the container and its associated anonymous volumes when it exits
    #[arg(long)]
    pub rm: bool,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long, default_value = "missing")]
    pub pull: String,
    /// Suppress the pull output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Write the container ID to the file
    #[arg(long, value_name = "string")]
    pub cidfile: Option<String>,

    // --- process ---
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "list")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "list")]
    pub env_file: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long, value_name = "string")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long, value_name = "string")]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long, value_name = "string")]
    pub entrypoint: Option<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Container host name
    #[arg(short = 'h', long, value_name = "string")]
    pub hostname: Option<String>,
    /// Container NIS domain name
    #[arg(long, value_name = "string")]
    pub domainname: Option<String>,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label", value_name = "list")]
    pub label: Vec<String>,
    /// Read in a line delimited file of labels
    #[arg(long = "label-file", value_name = "list")]
    pub label_file: Vec<String>,
    /// Signal to stop the container
    #[arg(long, value_name = "string")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long, value_name = "int", allow_negative_numbers = true)]
    pub stop_timeout: Option<i64>,

    // --- security ---
    /// Add Linux capabilities
    #[arg(long = "cap-add", value_name = "list")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop", value_name = "list")]
    pub cap_drop: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Security Options
    #[arg(long = "security-opt", value_name = "list")]
    pub security_opt: Vec<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Add additional groups to join
    #[arg(long = "group-add", value_name = "list")]
    pub group_add: Vec<String>,
    /// User namespace to use
    #[arg(long, value_name = "string")]
    pub userns: Option<String>,
    /// PID namespace to use
    #[arg(long, value_name = "string")]
    pub pid: Option<String>,
    /// IPC mode to use
    #[arg(long, value_name = "string")]
    pub ipc: Option<String>,
    /// UTS namespace to use
    #[arg(long, value_name = "string")]
    pub uts: Option<String>,
    /// Cgroup namespace to use (host|private)
    #[arg(long, value_name = "string")]
    pub cgroupns: Option<String>,
    /// Optional parent cgroup for the container
    #[arg(long = "cgroup-parent", value_name = "string")]
    pub cgroup_parent: Option<String>,
    /// Sysctl options
    #[arg(long = "sysctl", value_name = "map")]
    pub sysctl: Vec<String>,
    /// Runtime to use for this container
    #[arg(long, value_name = "string")]
    pub runtime: Option<String>,

    // --- resources ---
    /// Memory limit
    #[arg(short = 'm', long, value_name = "bytes")]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", value_name = "bytes", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", value_name = "bytes")]
    pub memory_reservation: Option<String>,
    /// Tune container memory swappiness (0 to 100)
    #[arg(
        long = "memory-swappiness",
        value_name = "int",
        allow_negative_numbers = true
    )]
    pub memory_swappiness: Option<i64>,
    /// Disable OOM Killer
    #[arg(long = "oom-kill-disable")]
    pub oom_kill_disable: bool,
    /// Tune host's OOM preferences (-1000 to 1000)
    #[arg(
        long = "oom-score-adj",
        value_name = "int",
        allow_negative_numbers = true
    )]
    pub oom_score_adj: Option<i64>,
    /// Number of CPUs
    #[arg(long, value_name = "decimal")]
    pub cpus: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares", value_name = "int")]
    pub cpu_shares: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period", value_name = "int")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", value_name = "int", allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus", value_name = "string")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems", value_name = "string")]
    pub cpuset_mems: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", value_name = "int", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Ulimit options
    #[arg(long = "ulimit", value_name = "ulimit")]
    pub ulimit: Vec<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size", value_name = "bytes")]
    pub shm_size: Option<String>,
    /// Add a host device to the container
    #[arg(long = "device", value_name = "list")]
    pub device: Vec<String>,

    // --- lifecycle and health ---
    /// Restart policy to apply when a container exits
    #[arg(long, value_name = "string")]
    pub restart: Option<String>,
    /// Command to run to check health
    #[arg(long = "health-cmd", value_name = "string")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h)
    #[arg(long = "health-interval", value_name = "duration")]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h)
    #[arg(long = "health-timeout", value_name = "duration")]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries", value_name = "int")]
    pub health_retries: Option<i64>,
    /// Start period for the container to initialize before starting health-retries countdown (ms|s|m|h)
    #[arg(long = "health-start-period", value_name = "duration")]
    pub health_start_period: Option<String>,
    /// Time between running the check during the start period (ms|s|m|h)
    #[arg(long = "health-start-interval", value_name = "duration")]
    pub health_start_interval: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Logging driver for the container
    #[arg(long = "log-driver", value_name = "string")]
    pub log_driver: Option<String>,
    /// Log driver options
    #[arg(long = "log-opt", value_name = "list")]
    pub log_opt: Vec<String>,

    // --- storage ---
    /// Bind mount a volume
    #[arg(short = 'v', long = "volume", value_name = "list")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container
    #[arg(long = "mount", value_name = "mount")]
    pub mount: Vec<String>,
    /// Mount a tmpfs directory
    #[arg(long = "tmpfs", value_name = "list")]
    pub tmpfs: Vec<String>,
    /// Mount volumes from the specified container(s)
    #[arg(long = "volumes-from", value_name = "list")]
    pub volumes_from: Vec<String>,

    // --- network ---
    /// Connect a container to a network
    #[arg(long = "network", visible_alias = "net", value_name = "network")]
    pub network: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(
        long = "network-alias",
        visible_alias = "net-alias",
        value_name = "list"
    )]
    pub network_alias: Vec<String>,
    /// Add link to another container
    #[arg(long = "link", value_name = "list", value_parser = parse_link_flag)]
    pub link: Vec<String>,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish", value_name = "list")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long = "expose", value_name = "list")]
    pub expose: Vec<String>,
    /// Set custom DNS servers
    #[arg(long = "dns", value_name = "list")]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search", value_name = "list")]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", value_name = "list")]
    pub dns_option: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host", value_name = "list")]
    pub add_host: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long = "ip", value_name = "string")]
    pub ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33)
    #[arg(long = "ip6", value_name = "string")]
    pub ip6: Option<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long = "mac-address", value_name = "string")]
    pub mac_address: Option<String>,
}

/// What `run`/`create` send, plus what the CLI itself needs to know.
#[derive(Debug)]
pub struct CreateSpec {
    pub body: Value,
    pub name: Option<String>,
    pub platform: Option<String>,
    pub image: String,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
}

fn set(m: &mut Map<String, Value>, k: &str, v: impl Into<Value>) {
    m.insert(k.to_string(), v.into());
}

fn set_opt<T: Into<Value>>(m: &mut Map<String, Value>, k: &str, v: Option<T>) {
    if let Some(v) = v {
        set(m, k, v);
    }
}

fn set_list(m: &mut Map<String, Value>, k: &str, v: &[String]) {
    if !v.is_empty() {
        set(m, k, v.to_vec());
    }
}

impl ContainerFlags {
    /// The create body for `IMAGE [COMMAND] [ARG...]`. `detach` is `run -d`
    /// (nothing attached).
    pub fn build(&self, argv: &[String], detach: bool) -> anyhow::Result<CreateSpec> {
        let (image, cmd) = argv
            .split_first()
            .ok_or_else(|| anyhow!("requires at least 1 argument"))?;
        if image.is_empty() {
            bail!("invalid reference format");
        }
        let mut attach = [false; 3];
        for a in &self.attach {
            match a.to_ascii_lowercase().as_str() {
                "stdin" => attach[0] = true,
                "stdout" => attach[1] = true,
                "stderr" => attach[2] = true,
                _ => bail!("invalid argument {a:?} for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR"),
            }
        }
        if self.interactive {
            attach[0] = true;
        }
        if self.attach.is_empty() {
            attach[1] = true;
            attach[2] = true;
        }
        if detach {
            if !self.attach.is_empty() {
                bail!("Conflicting options: -a and -d");
            }
            attach = [false; 3];
        }
        let mut body = self.config(image, cmd)?;
        set(&mut body, "AttachStdin", attach[0]);
        set(&mut body, "AttachStdout", attach[1]);
        set(&mut body, "AttachStderr", attach[2]);
        // As docker: stdin closes when the attached client's input ends.
        set(&mut body, "StdinOnce", self.interactive && attach[0]);
        let mut hc = self.host_config()?;
        if self.tty {
            if let Some((h, w)) = crate::term::console_size() {
                set(&mut hc, "ConsoleSize", vec![h, w]);
            }
        }
        let network = self.network.clone().unwrap_or_else(|| "default".into());
        set(&mut hc, "NetworkMode", network.clone());
        set(&mut body, "HostConfig", hc);
        set(&mut body, "NetworkingConfig", self.networking(&network)?);
        Ok(CreateSpec {
            body: Value::Object(body),
            name: self.name.clone(),
            platform: self.platform.clone(),
            image: image.clone(),
            attach_stdin: attach[0],
            attach_stdout: attach[1],
            attach_stderr: attach[2],
        })
    }

    /// The `Config` part (top level of the create body).
    fn config(&self, image: &str, cmd: &[String]) -> anyhow::Result<Map<String, Value>> {
        let mut c = Map::new();
        set(&mut c, "Image", image);
        set_opt(&mut c, "Hostname", self.hostname.clone());
        set_opt(&mut c, "Domainname", self.domainname.clone());
        set_opt(&mut c, "User", self.user.clone());
        set(&mut c, "Tty", self.tty);
        set(&mut c, "OpenStdin", self.interactive);
        let env = read_env(&self.env_file, &self.env)?;
        set_list(&mut c, "Env", &env);
        if !cmd.is_empty() {
            set(&mut c, "Cmd", cmd.to_vec());
        }
        // `--entrypoint ""` resets the image's entrypoint.
        if let Some(e) = self.entrypoint.as_deref() {
            set(&mut c, "Entrypoint", vec![e.to_string()]);
        }
        set_opt(&mut c, "WorkingDir", self.workdir.clone());
        let labels = read_labels(&self.label_file, &self.label)?;
        if !labels.is_empty() {
            set(&mut c, "Labels", json!(labels));
        }
        set_opt(&mut c, "StopSignal", self.stop_signal.clone());
        set_opt(&mut c, "StopTimeout", self.stop_timeout);
        set_opt(&mut c, "MacAddress", self.mac_address.clone());
        let mut exposed = Map::new();
        for e in &self.expose {
            for p in parse_expose(e)? {
                exposed.insert(p, json!({}));
            }
        }
        for p in &self.publish {
            for (port, _) in parse_publish(p)? {
                exposed.insert(port, json!({}));
            }
        }
        if !exposed.is_empty() {
            set(&mut c, "ExposedPorts", exposed);
        }
        let mut volumes = Map::new();
        for v in &self.volume {
            if parse_volume(v)?.is_none() {
                volumes.insert(v.clone(), json!({}));
            }
        }
        if !volumes.is_empty() {
            set(&mut c, "Volumes", volumes);
        }
        if let Some(h) = self.healthcheck()? {
            set(&mut c, "Healthcheck", h);
        }
        Ok(c)
    }

    fn healthcheck(&self) -> anyhow::Result<Option<Value>> {
        let dur = |name: &str, v: &Option<String>| -> anyhow::Result<Option<i64>> {
            v.as_deref()
                .map(|s| {
                    let n = parse_go_duration(s)?;
                    if n < 0 {
                        bail!("--{name} cannot be negative");
                    }
                    Ok(n)
                })
                .transpose()
        };
        let interval = dur("health-interval", &self.health_interval)?;
        let timeout = dur("health-timeout", &self.health_timeout)?;
        let start_period = dur("health-start-period", &self.health_start_period)?;
        let start_interval = dur("health-start-interval", &self.health_start_interval)?;
        let any = self.health_cmd.is_some()
            || interval.is_some()
            || timeout.is_some()
            || start_period.is_some()
            || start_interval.is_some()
            || self.health_retries.is_some();
        if self.no_healthcheck {
            if any {
                bail!("--no-healthcheck conflicts with --health-* options");
            }
            return Ok(Some(json!({"Test": ["NONE"]})));
        }
        if !any {
            return Ok(None);
        }
        if self.health_retries.is_some_and(|r| r < 0) {
            bail!("--health-retries cannot be negative");
        }
        let mut h = Map::new();
        if let Some(cmd) = &self.health_cmd {
            set(&mut h, "Test", vec!["CMD-SHELL".to_string(), cmd.clone()]);
        }
        set_opt(&mut h, "Interval", interval);
        set_opt(&mut h, "Timeout", timeout);
        set_opt(&mut h, "StartPeriod", start_period);
        set_opt(&mut h, "StartInterval", start_interval);
        set_opt(&mut h, "Retries", self.health_retries);
        Ok(Some(Value::Object(h)))
    }

    /// `HostConfig`, resources included (they sit at its top level).
    fn host_config(&self) -> anyhow::Result<Map<String, Value>> {
        let mut hc = Map::new();
        // Binds and anonymous volumes.
        let mut binds = Vec::new();
        for v in &self.volume {
            if let Some(b) = parse_volume(v)? {
                binds.push(b);
            }
        }
        set_list(&mut hc, "Binds", &binds);
        let mounts = self
            .mount
            .iter()
            .map(|m| parse_mount(m))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if !mounts.is_empty() {
            set(&mut hc, "Mounts", mounts);
        }
        let mut tmpfs = Map::new();
        for t in &self.tmpfs {
            let (path, opts) = t.split_once(':').unwrap_or((t, ""));
            tmpfs.insert(path.to_string(), json!(opts));
        }
        if !tmpfs.is_empty() {
            set(&mut hc, "Tmpfs", tmpfs);
        }
        set_list(&mut hc, "VolumesFrom", &self.volumes_from);
        // Ports.
        let mut bindings: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for p in &self.publish {
            for (port, b) in parse_publish(p)? {
                bindings.entry(port).or_default().push(b);
            }
        }
        if !bindings.is_empty() {
            set(&mut hc, "PortBindings", json!(bindings));
        }
        if self.publish_all {
            set(&mut hc, "PublishAllPorts", true);
        }
        // DNS and hosts (docker always sends the DNS lists).
        set(&mut hc, "Dns", self.dns.clone());
        set(&mut hc, "DnsSearch", self.dns_search.clone());
        set(&mut hc, "DnsOptions", self.dns_option.clone());
        let hosts = self
            .add_host
            .iter()
            .map(|h| parse_extra_host(h))
            .collect::<anyhow::Result<Vec<_>>>()?;
        set_list(&mut hc, "ExtraHosts", &hosts);
        set_list(&mut hc, "Links", &self.link);
        // Lifecycle.
        if self.rm {
            set(&mut hc, "AutoRemove", true);
        }
        if let Some(r) = &self.restart {
            let policy = parse_restart(r)?;
            if self.rm && policy["Name"] != "no" && policy["Name"] != "" {
                bail!("Conflicting options: --restart and --rm");
            }
            set(&mut hc, "RestartPolicy", policy);
        }
        if self.init {
            set(&mut hc, "Init", true);
        }
        if self.log_driver.is_some() || !self.log_opt.is_empty() {
            let driver = self.log_driver.clone().unwrap_or_default();
            if driver == "none" && !self.log_opt.is_empty() {
                bail!("invalid logging opts for driver none");
            }
            set(
                &mut hc,
                "LogConfig",
                json!({"Type": driver, "Config": kv_map(&self.log_opt)}),
            );
        }
        // Security.
        set_list(&mut hc, "CapAdd", &self.cap_add);
        set_list(&mut hc, "CapDrop", &self.cap_drop);
        if self.privileged {
            set(&mut hc, "Privileged", true);
        }
        let mut secopts = Vec::new();
        for o in &self.security_opt {
            if o == "systempaths=unconfined" {
                // Handled on the client, as docker does.
                set(&mut hc, "MaskedPaths", Vec::<String>::new());
                set(&mut hc, "ReadonlyPaths", Vec::<String>::new());
                continue;
            }
            secopts.push(parse_security_opt(o)?);
        }
        set_list(&mut hc, "SecurityOpt", &secopts);
        if self.read_only {
            set(&mut hc, "ReadonlyRootfs", true);
        }
        set_list(&mut hc, "GroupAdd", &self.group_add);
        set_opt(&mut hc, "UsernsMode", self.userns.clone());
        set_opt(&mut hc, "PidMode", self.pid.clone());
        set_opt(&mut hc, "IpcMode", self.ipc.clone());
        set_opt(&mut hc, "UTSMode", self.uts.clone());
        if let Some(c) = &self.cgroupns {
            if !matches!(c.as_str(), "" | "host" | "private") {
                bail!("--cgroupns: invalid CGROUP mode");
            }
            set(&mut hc, "CgroupnsMode", c.clone());
        }
        set_opt(&mut hc, "CgroupParent", self.cgroup_parent.clone());
        if !self.sysctl.is_empty() {
            set(&mut hc, "Sysctls", json!(kv_map(&self.sysctl)));
        }
        set_opt(&mut hc, "Runtime", self.runtime.clone());
        // Resources.
        set_opt(
            &mut hc,
            "Memory",
            self.memory.as_deref().map(ram_in_bytes).transpose()?,
        );
        if let Some(s) = &self.memory_swap {
            let v = if s == "-1" { -1 } else { ram_in_bytes(s)? };
            set(&mut hc, "MemorySwap", v);
        }
        set_opt(
            &mut hc,
            "MemoryReservation",
            self.memory_reservation
                .as_deref()
                .map(ram_in_bytes)
                .transpose()?,
        );
        if let Some(s) = self.memory_swappiness {
            if s != -1 && !(0..=100).contains(&s) {
                bail!("invalid value: {s}. Valid memory swappiness range is 0-100");
            }
            set(&mut hc, "MemorySwappiness", s);
        }
        if self.oom_kill_disable {
            set(&mut hc, "OomKillDisable", true);
        }
        set_opt(&mut hc, "OomScoreAdj", self.oom_score_adj);
        set_opt(
            &mut hc,
            "NanoCpus",
            self.cpus.as_deref().map(parse_cpus).transpose()?,
        );
        set_opt(&mut hc, "CpuShares", self.cpu_shares);
        set_opt(&mut hc, "CpuPeriod", self.cpu_period);
        set_opt(&mut hc, "CpuQuota", self.cpu_quota);
        set_opt(&mut hc, "CpusetCpus", self.cpuset_cpus.clone());
        set_opt(&mut hc, "CpusetMems", self.cpuset_mems.clone());
        set_opt(&mut hc, "PidsLimit", self.pids_limit);
        let ulimits = self
            .ulimit
            .iter()
            .map(|u| parse_ulimit(u))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if !ulimits.is_empty() {
            set(&mut hc, "Ulimits", ulimits);
        }
        set_opt(
            &mut hc,
            "ShmSize",
            self.shm_size.as_deref().map(ram_in_bytes).transpose()?,
        );
        let devices = self
            .device
            .iter()
            .map(|d| parse_device(d))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if !devices.is_empty() {
            set(&mut hc, "Devices", devices);
        }
        Ok(hc)
    }

    fn networking(&self, network: &str) -> anyhow::Result<Value> {
        let mut ep = Map::new();
        if !self.network_alias.is_empty() {
            if matches!(network, "default" | "bridge" | "host" | "none")
                || network.starts_with("container:")
            {
                bail!("network-scoped aliases are only supported for user-defined networks");
            }
            set(&mut ep, "Aliases", self.network_alias.clone());
        }
        // On a user-defined network a link is an alias for the network's
        // DNS, so docker also sends it with the endpoint.
        if !self.link.is_empty()
            && !matches!(network, "default" | "bridge" | "host" | "none")
            && !network.starts_with("container:")
        {
            set(&mut ep, "Links", self.link.clone());
        }
        if self.ip.is_some() || self.ip6.is_some() {
            let mut ipam = Map::new();
            set_opt(&mut ipam, "IPv4Address", self.ip.clone());
            set_opt(&mut ipam, "IPv6Address", self.ip6.clone());
            set(&mut ep, "IPAMConfig", ipam);
        }
        let mut eps = Map::new();
        if network != "none" {
            eps.insert(network.to_string(), Value::Object(ep));
        }
        Ok(json!({ "EndpointsConfig": eps }))
    }
}

/// `--link` values are checked as docker checks them, before any request.
fn parse_link_flag(v: &str) -> Result<String, String> {
    berth_api::links::parse(v)
        .map(|_| v.to_string())
        .map_err(|e| e.to_string())
}

fn kv_map(items: &[String]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|i| {
            let (k, v) = i.split_once('=').unwrap_or((i, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Lines of an env or label file: `#` comments and blank lines skipped,
/// `KEY` alone taken from our environment (skipped when unset, for env).
fn read_kv_file(path: &str, from_env: bool) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("open {path}"))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) => {
                if k.is_empty() {
                    bail!("no variable name on line '{line}'");
                }
                if k.contains(char::is_whitespace) {
                    bail!("variable '{k}' contains whitespaces");
                }
                out.push(format!("{k}={v}"));
            }
            None if from_env => {
                if let Ok(v) = std::env::var(line) {
                    out.push(format!("{line}={v}"));
                }
            }
            None => {
                if line.contains(char::is_whitespace) {
                    bail!("{path}:{}: variable '{line}' contains whitespaces", n + 1);
                }
                out.push(line.to_string());
            }
        }
    }
    Ok(out)
}

/// The env list docker sends: files first, then `-e` (whose bare `KEY`
/// takes our value, or goes as is to unset it in the container).
pub fn read_env(files: &[String], env: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for f in files {
        out.extend(read_kv_file(f, true)?);
    }
    for e in env {
        if e.is_empty() || e.starts_with('=') {
            bail!("invalid environment variable: {e}");
        }
        if e.contains('=') {
            out.push(e.clone());
        } else if let Ok(v) = std::env::var(e) {
            out.push(format!("{e}={v}"));
        } else {
            out.push(e.clone());
        }
    }
    Ok(out)
}

fn read_labels(files: &[String], labels: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut all = Vec::new();
    for f in files {
        all.extend(read_kv_file(f, false)?);
    }
    all.extend(labels.iter().cloned());
    Ok(kv_map(&all))
}

/// docker's `units.RAMInBytes`: `512m`, `1g`, `1.5GiB`, `1024` (binary
/// units), with go-units' error messages.
pub fn ram_in_bytes(s: &str) -> anyhow::Result<i64> {
    let Some(sep) = s.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ') else {
        bail!("invalid size: '{s}'");
    };
    // A space between number and unit is dropped.
    let (num, sfx) = if s.as_bytes()[sep] == b' ' {
        (&s[..sep], &s[sep + 1..])
    } else {
        (&s[..sep + 1], &s[sep + 1..])
    };
    let mut size: f64 = num
        .parse()
        .map_err(|_| anyhow!("strconv.ParseFloat: parsing {num:?}: invalid syntax"))?;
    if size < 0.0 {
        bail!("invalid size: '{s}'");
    }
    if sfx.is_empty() {
        return Ok(size as i64);
    }
    if sfx.len() > 3 {
        bail!("invalid suffix: '{sfx}'");
    }
    let sfx = sfx.to_ascii_lowercase();
    let bad = || anyhow!("invalid suffix: '{sfx}'");
    let b = sfx.as_bytes();
    if b[0] == b'b' {
        return if b.len() > 1 {
            Err(bad())
        } else {
            Ok(size as i64)
        };
    }
    let mult: f64 = match b[0] {
        b'k' => 1024.0,
        b'm' => 1024f64.powi(2),
        b'g' => 1024f64.powi(3),
        b't' => 1024f64.powi(4),
        b'p' => 1024f64.powi(5),
        _ => return Err(bad()),
    };
    size *= mult;
    if (b.len() == 2 && b[1] != b'b') || (b.len() == 3 && &b[1..] != b"ib") {
        return Err(bad());
    }
    Ok(size as i64)
}

pub(crate) fn parse_cpus(s: &str) -> anyhow::Result<i64> {
    let n: f64 = s
        .parse()
        .map_err(|_| anyhow!("failed to parse {s} as a rational number"))?;
    Ok((n * 1e9).round() as i64)
}

/// `nofile=1024[:2048]`
fn parse_ulimit(s: &str) -> anyhow::Result<Value> {
    let (name, vals) = s
        .split_once('=')
        .ok_or_else(|| anyhow!("invalid ulimit argument: {s}"))?;
    let (soft, hard) = vals.split_once(':').unwrap_or((vals, vals));
    let num = |v: &str| {
        v.parse::<i64>()
            .map_err(|_| anyhow!("invalid ulimit argument: {s}"))
    };
    let (soft, hard) = (num(soft)?, num(hard)?);
    if soft > hard {
        bail!("ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}");
    }
    Ok(json!({"Name": name, "Soft": soft, "Hard": hard}))
}

/// `no`, `always`, `unless-stopped`, `on-failure[:N]`
pub(crate) fn parse_restart(s: &str) -> anyhow::Result<Value> {
    let (name, max) = s.split_once(':').unwrap_or((s, ""));
    match name {
        "" | "no" | "always" | "unless-stopped" if max.is_empty() => {
            Ok(json!({"Name": name, "MaximumRetryCount": 0}))
        }
        "on-failure" => {
            let n = if max.is_empty() {
                0
            } else {
                max.parse::<i64>()
                    .map_err(|_| anyhow!("invalid restart policy format: maximum retry count must be an integer"))?
            };
            Ok(json!({"Name": name, "MaximumRetryCount": n}))
        }
        "no" | "always" | "unless-stopped" => {
            bail!("invalid restart policy format: maximum retry count can only be used with 'on-failure'")
        }
        _ => bail!("invalid restart policy format: unknown policy '{name}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"),
    }
}

/// `-v`: `SRC:DST[:OPTS]` is a bind (or named volume), returned for
/// `Binds`; `DST` alone is an anonymous volume (`None`).
fn parse_volume(v: &str) -> anyhow::Result<Option<String>> {
    let parts: Vec<&str> = v.split(':').collect();
    let dst = match parts.len() {
        1 => parts[0],
        2 | 3 => parts[1],
        _ => bail!("invalid volume specification: '{v}'"),
    };
    if parts.iter().any(|p| p.is_empty()) {
        bail!("invalid volume specification: '{v}'");
    }
    if !dst.starts_with('/') {
        bail!("invalid volume specification: '{v}': invalid mount config for type \"volume\": invalid mount path: '{dst}' mount path must be absolute");
    }
    Ok((parts.len() > 1).then(|| v.to_string()))
}

/// `--mount type=bind,source=/a,target=/b,readonly`
fn parse_mount(s: &str) -> anyhow::Result<Value> {
    let mut m = Map::new();
    let mut typ = "volume".to_string();
    let mut bind = Map::new();
    let mut vol = Map::new();
    let mut vol_labels = Map::new();
    let mut vol_opts = Map::new();
    let mut tmpfs = Map::new();
    let truthy = |v: Option<&str>| -> anyhow::Result<bool> {
        match v.map(str::to_ascii_lowercase).as_deref() {
            None | Some("1") | Some("true") => Ok(true),
            Some("0") | Some("false") => Ok(false),
            Some(o) => bail!("invalid value for boolean: {o}"),
        }
    };
    for field in s.split(',') {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v)),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let need = || v.ok_or_else(|| anyhow!("invalid field '{field}' must be a key=value pair"));
        match k.as_str() {
            "type" => typ = need()?.to_string(),
            "source" | "src" => set(&mut m, "Source", need()?),
            "target" | "destination" | "dst" => set(&mut m, "Target", need()?),
            "readonly" | "ro" => set(&mut m, "ReadOnly", truthy(v)?),
            "consistency" => set(&mut m, "Consistency", need()?),
            "bind-propagation" => set(&mut bind, "Propagation", need()?),
            "bind-nonrecursive" => set(&mut bind, "NonRecursive", truthy(v)?),
            "bind-create-host-path" => set(&mut bind, "CreateMountpoint", truthy(v)?),
            "volume-nocopy" => set(&mut vol, "NoCopy", truthy(v)?),
            "volume-subpath" => set(&mut vol, "Subpath", need()?),
            "volume-label" => {
                let (lk, lv) = need()?.split_once('=').unwrap_or((need()?, ""));
                set(&mut vol_labels, lk, lv);
            }
            "volume-driver" => set(&mut vol, "DriverConfig", json!({"Name": need()?})),
            "volume-opt" => {
                let (ok, ov) = need()?.split_once('=').unwrap_or((need()?, ""));
                set(&mut vol_opts, ok, ov);
            }
            "tmpfs-size" => set(&mut tmpfs, "SizeBytes", ram_in_bytes(need()?)?),
            "tmpfs-mode" => {
                let mode = u32::from_str_radix(need()?, 8).map_err(|_| {
                    anyhow!("invalid value for tmpfs-mode: {}", need().unwrap_or(""))
                })?;
                set(&mut tmpfs, "Mode", mode);
            }
            _ => bail!("unexpected key '{k}' in '{field}'"),
        }
    }
    if !m.contains_key("Target") {
        bail!("target is required");
    }
    if !vol_labels.is_empty() {
        set(&mut vol, "Labels", vol_labels);
    }
    if !vol_opts.is_empty() {
        let driver = vol
            .get("DriverConfig")
            .and_then(|d| d["Name"].as_str())
            .unwrap_or("")
            .to_string();
        set(
            &mut vol,
            "DriverConfig",
            json!({"Name": driver, "Options": vol_opts}),
        );
    }
    match typ.as_str() {
        "bind" if !bind.is_empty() => set(&mut m, "BindOptions", bind),
        "volume" if !vol.is_empty() => set(&mut m, "VolumeOptions", vol),
        "tmpfs" if !tmpfs.is_empty() => set(&mut m, "TmpfsOptions", tmpfs),
        "bind" | "volume" | "tmpfs" | "image" | "npipe" | "cluster" => {}
        o => bail!("invalid mount type '{o}'"),
    }
    set(&mut m, "Type", typ);
    Ok(Value::Object(m))
}

/// `start[-end][/proto]` → `["80/tcp", ...]`
fn port_range(spec: &str) -> anyhow::Result<(u16, u16)> {
    let bad = || anyhow!("invalid port range: {spec}");
    let (a, b) = spec.split_once('-').unwrap_or((spec, spec));
    let (a, b): (u16, u16) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if b < a {
        return Err(bad());
    }
    Ok((a, b))
}

fn parse_expose(e: &str) -> anyhow::Result<Vec<String>> {
    if e.contains(':') {
        bail!("invalid port format for --expose: {e}");
    }
    let (port, proto) = e.split_once('/').unwrap_or((e, "tcp"));
    let (a, b) = port_range(port)
        .map_err(|err| anyhow!("invalid range format for --expose: {e}, error: {err}"))?;
    Ok((a..=b).map(|p| format!("{p}/{proto}")).collect())
}

/// `-p [ip:][hostPort:]containerPort[/proto]` (ranges allowed) →
/// `("80/tcp", {"HostIp","HostPort"})` per container port, as docker's
/// `nat.ParsePortSpec`.
fn parse_publish(spec: &str) -> anyhow::Result<Vec<(String, Value)>> {
    // The long syntax: published=8080,target=80,protocol=udp
    let spec = if spec.contains('=') {
        let mut p: BTreeMap<&str, &str> = BTreeMap::new();
        for kv in spec.split(',') {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                anyhow!("invalid publish opts format (should be name=value but got '{kv}')")
            })?;
            p.insert(k, v);
        }
        format!(
            "{}:{}/{}",
            p.get("published").unwrap_or(&""),
            p.get("target").unwrap_or(&""),
            p.get("protocol").unwrap_or(&"tcp")
        )
    } else {
        spec.to_string()
    };
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_ascii_lowercase()),
        None => (spec.as_str(), "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        bail!("invalid proto: {proto}");
    }
    let parts: Vec<&str> = rest.split(':').collect();
    let n = parts.len();
    let (ip, host, ctr) = match n {
        1 => (String::new(), "", parts[0]),
        2 => (String::new(), parts[0], parts[1]),
        3 => (parts[0].to_string(), parts[1], parts[2]),
        _ => (parts[..n - 2].join(":"), parts[n - 2], parts[n - 1]),
    };
    let ip = ip.trim_start_matches('[').trim_end_matches(']').to_string();
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        bail!("invalid IP address: {ip}");
    }
    if ctr.is_empty() {
        bail!("no port specified: {spec}<empty>");
    }
    let (c0, c1) = port_range(ctr).map_err(|_| anyhow!("invalid containerPort: {ctr}"))?;
    let host_range = if host.is_empty() {
        None
    } else {
        Some(port_range(host).map_err(|_| anyhow!("invalid hostPort: {host}"))?)
    };
    if let Some((h0, h1)) = host_range {
        if c1 - c0 != h1 - h0 && (c0 != c1 || h0 == h1) {
            bail!("invalid ranges specified for container and host Ports: {ctr} and {host}");
        }
    }
    let mut out = Vec::new();
    for (i, c) in (c0..=c1).enumerate() {
        let host_port = match host_range {
            None => String::new(),
            // One container port, a host range: the daemon picks in it.
            Some((h0, h1)) if c0 == c1 && h0 != h1 => format!("{h0}-{h1}"),
            Some((h0, _)) => (h0 as usize + i).to_string(),
        };
        out.push((
            format!("{c}/{proto}"),
            json!({"HostIp": ip, "HostPort": host_port}),
        ));
    }
    Ok(out)
}

/// `host:ip` or `host=ip` → `host:ip` (the API's form).
fn parse_extra_host(s: &str) -> anyhow::Result<String> {
    let (h, ip) = s
        .split_once('=')
        .or_else(|| s.split_once(':'))
        .ok_or_else(|| anyhow!("bad format for add-host: {s:?}"))?;
    if h.is_empty() || h.contains(':') {
        bail!("bad format for add-host: {s:?}");
    }
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if ip != "host-gateway" && ip.parse::<std::net::IpAddr>().is_err() {
        bail!("invalid IP address in add-host: {ip:?}");
    }
    Ok(format!("{h}:{ip}"))
}

/// `seccomp=<file>` sends the profile's content, as docker does.
fn parse_security_opt(o: &str) -> anyhow::Result<String> {
    let (k, v) = match o.split_once('=').or_else(|| o.split_once(':')) {
        Some(kv) => kv,
        None if o == "no-new-privileges" => return Ok(o.to_string()),
        None => bail!("Invalid --security-opt: {o:?}"),
    };
    if k == "seccomp" && v != "unconfined" && v != "builtin" {
        let text = std::fs::read_to_string(v)
            .with_context(|| format!("opening seccomp profile ({v}) failed"))?;
        let parsed: Value = serde_json::from_str(&text)
            .with_context(|| format!("compacting json for seccomp profile ({v}) failed"))?;
        return Ok(format!("seccomp={parsed}"));
    }
    Ok(o.to_string())
}

/// `/dev/x[:/dev/y][:rwm]`
fn parse_device(s: &str) -> anyhow::Result<Value> {
    let parts: Vec<&str> = s.split(':').collect();
    let is_mode = |m: &str| !m.is_empty() && m.chars().all(|c| "rwm".contains(c));
    let (src, dst, perms) = match parts.as_slice() {
        [src] => (*src, *src, "rwm"),
        [src, m] if is_mode(m) => (*src, *src, *m),
        [src, dst] => (*src, *dst, "rwm"),
        [src, dst, m] if is_mode(m) => (*src, *dst, *m),
        _ => bail!("invalid device specification: {s}"),
    };
    Ok(json!({"PathOnHost": src, "PathInContainer": dst, "CgroupPermissions": perms}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(f: impl FnOnce(&mut ContainerFlags)) -> ContainerFlags {
        let mut c = ContainerFlags {
            pull: "missing".into(),
            ..Default::default()
        };
        f(&mut c);
        c
    }

    #[test]
    fn run_flags_map_to_the_create_body() {
        let argv = vec!["busybox".to_string(), "echo".into(), "hi".into()];
        let spec = flags(|c| {
            c.interactive = true;
            c.env = vec!["A=1".into()];
            c.label = vec!["x=y".into(), "z".into()];
            c.memory = Some("512m".into());
            c.cpus = Some("1.5".into());
            c.publish = vec!["127.0.0.1:8080:80".into(), "9000-9001:9000-9001/udp".into()];
            c.restart = Some("on-failure:3".into());
            c.ulimit = vec!["nofile=1024:2048".into()];
            c.volume = vec!["/data".into(), "/h:/c:ro".into()];
            c.entrypoint = Some(String::new());
            c.add_host = vec!["db=10.0.0.2".into()];
            c.health_cmd = Some("true".into());
            c.health_interval = Some("5s".into());
        })
        .build(&argv, false)
        .unwrap();
        let b = &spec.body;
        assert_eq!(b["Image"], "busybox");
        assert_eq!(b["Cmd"], json!(["echo", "hi"]));
        assert_eq!(b["Entrypoint"], json!([""]));
        assert_eq!(b["Env"], json!(["A=1"]));
        assert_eq!(b["Labels"], json!({"x": "y", "z": ""}));
        assert_eq!(
            (
                b["OpenStdin"].clone(),
                b["StdinOnce"].clone(),
                b["AttachStdin"].clone()
            ),
            (json!(true), json!(true), json!(true))
        );
        assert_eq!(b["Volumes"], json!({"/data": {}}));
        assert_eq!(
            b["Healthcheck"],
            json!({"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000i64})
        );
        let hc = &b["HostConfig"];
        assert_eq!(hc["Memory"], 512 * 1024 * 1024);
        assert_eq!(hc["NanoCpus"], 1_500_000_000i64);
        assert_eq!(hc["Binds"], json!(["/h:/c:ro"]));
        assert_eq!(
            hc["RestartPolicy"],
            json!({"Name": "on-failure", "MaximumRetryCount": 3})
        );
        assert_eq!(
            hc["Ulimits"],
            json!([{"Name": "nofile", "Soft": 1024, "Hard": 2048}])
        );
        assert_eq!(hc["ExtraHosts"], json!(["db:10.0.0.2"]));
        assert_eq!(hc["NetworkMode"], "default");
        assert_eq!(
            hc["PortBindings"]["80/tcp"],
            json!([{"HostIp": "127.0.0.1", "HostPort": "8080"}])
        );
        assert_eq!(
            hc["PortBindings"]["9001/udp"],
            json!([{"HostIp": "", "HostPort": "9001"}])
        );
        assert_eq!(b["ExposedPorts"]["80/tcp"], json!({}));
        assert_eq!(
            b["NetworkingConfig"],
            json!({"EndpointsConfig": {"default": {}}})
        );
    }

    #[test]
    fn detach_and_conflicts() {
        let argv = vec!["busybox".to_string()];
        let s = flags(|c| c.interactive = true).build(&argv, true).unwrap();
        assert_eq!(
            (s.attach_stdin, s.attach_stdout, s.body["StdinOnce"].clone()),
            (false, false, json!(false))
        );
        assert!(flags(|c| c.attach = vec!["stdout".into()])
            .build(&argv, true)
            .is_err());
        assert!(flags(|c| {
            c.rm = true;
            c.restart = Some("always".into());
        })
        .build(&argv, false)
        .is_err());
        let s = flags(|c| c.attach = vec!["STDERR".into()])
            .build(&argv, false)
            .unwrap();
        assert_eq!((s.attach_stdout, s.attach_stderr), (false, true));
        let s = flags(|c| c.network = Some("none".into()))
            .build(&argv, false)
            .unwrap();
        assert_eq!(s.body["NetworkingConfig"], json!({"EndpointsConfig": {}}));
    }

    #[test]
    fn value_syntaxes() {
        assert_eq!(ram_in_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(ram_in_bytes("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(ram_in_bytes("100").unwrap(), 100);
        assert!(ram_in_bytes("12x").is_err());
        assert_eq!(ram_in_bytes("64 MB").unwrap(), 64 << 20);
        assert_eq!(
            ram_in_bytes("1x").unwrap_err().to_string(),
            "invalid suffix: 'x'"
        );
        assert_eq!(
            ram_in_bytes("m").unwrap_err().to_string(),
            "invalid size: 'm'"
        );
        assert_eq!(
            ram_in_bytes("1kibb").unwrap_err().to_string(),
            "invalid suffix: 'kibb'"
        );
        assert!(parse_restart("sometimes").is_err());
        assert!(parse_restart("always:3").is_err());
        assert!(parse_volume("relative:path").is_err());
        assert_eq!(
            parse_mount("type=bind,src=/a,dst=/b,readonly").unwrap(),
            json!({"Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": true})
        );
        assert_eq!(
            parse_mount("type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1777").unwrap(),
            json!({"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 1023}})
        );
        assert_eq!(parse_publish("[::1]:80:80").unwrap()[0].1["HostIp"], "::1");
        assert_eq!(
            parse_publish("8000-8010:80").unwrap()[0].1["HostPort"],
            "8000-8010"
        );
        assert!(parse_publish("1-2:3-5").is_err());
        assert_eq!(
            parse_expose("7000-7001").unwrap(),
            vec!["7000/tcp", "7001/tcp"]
        );
    }
}
