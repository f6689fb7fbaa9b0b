//! Daemon configuration: command-line flags merged with a `daemon.json`
//! subset. As in dockerd, an unknown key in the file and a key given both as a
//! flag and in the file are errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::{Deserialize, Serialize};

pub const DEFAULT_CONFIG_FILE: &str = "/etc/berth/daemon.json";
pub const DEFAULT_SOCKET: &str = "unix:///run/berth/berth.sock";
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/berth";
pub const DEFAULT_EXEC_ROOT: &str = "/run/berth";
pub const DEFAULT_CERTS_DIR: &str = "/etc/berth/certs.d";

#[derive(Debug, Parser, Default, Clone)]
#[command(
    name = "berthd",
    version,
    about = "A Docker-compatible container engine daemon"
)]
pub struct Flags {
    /// Daemon socket(s) to connect to: unix:///path or tcp://addr:port
    #[arg(short = 'H', long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Root directory of persistent state
    #[arg(long, value_name = "DIR")]
    pub data_root: Option<PathBuf>,
    /// Root directory for execution state files (sockets, runtime state)
    #[arg(long, value_name = "DIR")]
    pub exec_root: Option<PathBuf>,
    /// Path to use for the daemon PID file
    #[arg(short = 'p', long, value_name = "FILE")]
    pub pidfile: Option<PathBuf>,
    /// Set the logging level ("debug"|"info"|"warn"|"error"|"fatal")
    #[arg(short = 'l', long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Enable debug mode
    #[arg(short = 'D', long)]
    pub debug: bool,
    /// Daemon configuration file
    #[arg(long, value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// Use TLS and verify the remote (mutual TLS for tcp:// hosts)
    #[arg(long)]
    pub tlsverify: bool,
    /// Trust certs signed only by this CA
    #[arg(long, value_name = "FILE")]
    pub tlscacert: Option<PathBuf>,
    /// Path to TLS certificate file
    #[arg(long, value_name = "FILE")]
    pub tlscert: Option<PathBuf>,
    /// Path to TLS key file
    #[arg(long, value_name = "FILE")]
    pub tlskey: Option<PathBuf>,
    /// Serve tcp:// hosts without TLS. Anyone who can reach the port is root on this host.
    #[arg(long = "insecure-tcp")]
    pub insecure_tcp: bool,
    /// Keep containers running while the daemon is down (default true)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub live_restore: Option<bool>,
    /// Registries reached over plain HTTP
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registries: Vec<String>,
    /// Preferred registry mirrors
    #[arg(long = "registry-mirror", value_name = "URL")]
    pub registry_mirrors: Vec<String>,
    /// Per-registry TLS material, Docker's certs.d layout: <DIR>/<host:port>/{*.crt,*.cert,*.key}
    #[arg(long, value_name = "DIR", env = "BERTH_CERTS_DIR")]
    pub certs_dir: Option<PathBuf>,
    /// Treat registries on 127.0.0.0/8 and ::1 as insecure (plain HTTP allowed, TLS not verified), as Docker does
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub loopback_registries_insecure: Option<bool>,
    /// Default address pools for networks, e.g. base=10.10.0.0/16,size=24
    #[arg(long = "default-address-pool", value_name = "POOL")]
    pub default_address_pools: Vec<String>,
    /// Group owning the unix socket (default root)
    #[arg(short = 'G', long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Device name of the default bridge network (default berth0)
    #[arg(short = 'b', long, value_name = "NAME")]
    pub bridge: Option<String>,
    /// Name of berth's own nftables table (default berth)
    #[arg(long, value_name = "NAME")]
    pub firewall_table: Option<String>,
    /// Parent cgroup of all containers (default /berth)
    #[arg(long, value_name = "PATH")]
    pub cgroup_parent: Option<String>,
    /// Storage driver: overlay2 (the default) or fuse-overlayfs (rootless
    /// mode picks it when overlayfs cannot be mounted in the namespace)
    #[arg(long, value_name = "NAME")]
    pub storage_driver: Option<String>,
    /// Report what a start would reconcile (leftovers of a crash) and exit,
    /// changing nothing; the daemon must be stopped
    #[arg(long)]
    pub check: bool,
    /// Authorization plugins to load, in order (repeatable)
    #[arg(long = "authorization-plugin", value_name = "NAME")]
    pub authorization_plugins: Vec<String>,
    /// Seconds a plugin has to answer one call, and to come up (default 30)
    #[arg(long, value_name = "SECONDS")]
    pub plugin_timeout: Option<u64>,
    /// Default log driver of containers (default json-file; may name a
    /// logging plugin)
    #[arg(long, value_name = "NAME")]
    pub log_driver: Option<String>,
    /// Default log driver options, key=value (repeatable)
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    pub log_opts: Vec<String>,
    /// Run as an unprivileged user in a user namespace (implied when the
    /// effective uid is not 0)
    #[arg(long)]
    pub rootless: bool,
    /// Set key=value labels to the daemon (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Set the max concurrent downloads (default 3)
    #[arg(long, value_name = "N")]
    pub max_concurrent_downloads: Option<usize>,
    /// Set the max concurrent uploads (default 5)
    #[arg(long, value_name = "N")]
    pub max_concurrent_uploads: Option<usize>,
    /// Set default address and port to serve the metrics api on (empty: off)
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<String>,
    /// Default ulimits for containers, name=soft[:hard] (repeatable)
    #[arg(long = "default-ulimit", value_name = "NAME=SOFT[:HARD]")]
    pub default_ulimits: Vec<String>,
}

/// The `daemon.json` keys berthd understands.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub hosts: Option<Vec<String>>,
    #[serde(rename = "data-root")]
    pub data_root: Option<PathBuf>,
    #[serde(rename = "exec-root")]
    pub exec_root: Option<PathBuf>,
    pub pidfile: Option<PathBuf>,
    pub debug: Option<bool>,
    #[serde(rename = "log-level")]
    pub log_level: Option<String>,
    #[serde(rename = "live-restore")]
    pub live_restore: Option<bool>,
    #[serde(rename = "default-address-pools")]
    pub default_address_pools: Option<Vec<AddressPool>>,
    #[serde(rename = "insecure-registries")]
    pub insecure_registries: Option<Vec<String>>,
    #[serde(rename = "registry-mirrors")]
    pub registry_mirrors: Option<Vec<String>>,
    pub tlsverify: Option<bool>,
    pub tlscacert: Option<PathBuf>,
    pub tlscert: Option<PathBuf>,
    pub tlskey: Option<PathBuf>,
    pub group: Option<String>,
    pub bridge: Option<String>,
    #[serde(rename = "firewall-table")]
    pub firewall_table: Option<String>,
    #[serde(rename = "cgroup-parent")]
    pub cgroup_parent: Option<String>,
    #[serde(rename = "storage-driver")]
    pub storage_driver: Option<String>,
    #[serde(rename = "authorization-plugins")]
    pub authorization_plugins: Option<Vec<String>>,
    #[serde(rename = "log-driver")]
    pub log_driver: Option<String>,
    #[serde(rename = "log-opts")]
    pub log_opts: Option<std::collections::HashMap<String, String>>,
    pub labels: Option<Vec<String>>,
    #[serde(rename = "max-concurrent-downloads")]
    pub max_concurrent_downloads: Option<usize>,
    #[serde(rename = "max-concurrent-uploads")]
    pub max_concurrent_uploads: Option<usize>,
    #[serde(rename = "metrics-addr")]
    pub metrics_addr: Option<String>,
    #[serde(rename = "default-ulimits")]
    pub default_ulimits: Option<BTreeMap<String, FileUlimit>>,
}

/// One `default-ulimits` entry as dockerd's `daemon.json` has it
/// (`{"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 2048}}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct FileUlimit {
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "Soft")]
    pub soft: i64,
    #[serde(rename = "Hard")]
    pub hard: i64,
}

/// A container resource limit: the daemon's default for containers that
/// set none of that name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ulimit {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Soft")]
    pub soft: i64,
    #[serde(rename = "Hard")]
    pub hard: i64,
}

/// The limits `ulimit` names, as go-units' `ParseUlimit` knows them.
const ULIMIT_NAMES: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

impl Ulimit {
    /// `name=soft[:hard]`, as `--default-ulimit` (and `docker run
    /// --ulimit`) take it; a lone value is both limits.
    pub fn parse(v: &str) -> Result<Self, ConfigError> {
        let bad = |m: String| ConfigError::Invalid(m);
        let (name, limits) = v
            .split_once('=')
            .ok_or_else(|| bad(format!("invalid ulimit argument: {v}")))?;
        let num = |t: &str| {
            t.parse::<i64>()
                .map_err(|_| bad(format!("invalid ulimit argument: {v}")))
        };
        let (soft, hard) = match limits.split_once(':') {
            Some((s, h)) => (num(s)?, num(h)?),
            None => (num(limits)?, num(limits)?),
        };
        Self::checked(name, soft, hard)
    }

    fn checked(name: &str, soft: i64, hard: i64) -> Result<Self, ConfigError> {
        if !ULIMIT_NAMES.contains(&name) {
            return Err(ConfigError::Invalid(format!("invalid ulimit type: {name}")));
        }
        if soft > hard && hard != -1 {
            return Err(ConfigError::Invalid(format!(
                "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            )));
        }
        Ok(Self {
            name: name.to_string(),
            soft,
            hard,
        })
    }
}

/// The default ulimits from the flags, else the file's, sorted by name.
fn default_ulimits(
    flags: &Flags,
    file: &FileConfig,
) -> Result<BTreeMap<String, Ulimit>, ConfigError> {
    let mut out: BTreeMap<String, Ulimit> = BTreeMap::new();
    if !flags.default_ulimits.is_empty() {
        for v in &flags.default_ulimits {
            let u = Ulimit::parse(v)?;
            out.insert(u.name.clone(), u);
        }
    } else {
        for (key, u) in file.default_ulimits.iter().flatten() {
            // dockerd keys the map by name and takes the entry's own
            // `Name` when it has one.
            let name = if u.name.is_empty() { key } else { &u.name };
            let u = Ulimit::checked(name, u.soft, u.hard)?;
            out.insert(u.name.clone(), u);
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AddressPool {
    pub base: String,
    pub size: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Unix(PathBuf),
    Tcp(String),
    /// `fd://` (every socket systemd passed) or `fd://N` (only fd N).
    Fd(Option<i32>),
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The resolved configuration the daemon runs with.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub hosts: Vec<Host>,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub pidfile: PathBuf,
    pub debug: bool,
    pub log_level: String,
    pub live_restore: bool,
    pub default_address_pools: Vec<AddressPool>,
    pub insecure_registries: Vec<String>,
    pub registry_mirrors: Vec<String>,
    /// Root of the per-registry `certs.d` tree.
    pub certs_dir: PathBuf,
    pub loopback_registries_insecure: bool,
    pub tls: Option<TlsFiles>,
    pub insecure_tcp: bool,
    pub socket_group: Option<String>,
    pub bridge: String,
    pub firewall_table: String,
    pub cgroup_parent: String,
    /// `--storage-driver` as given (`None`: overlay2, or in rootless mode
    /// fuse-overlayfs when overlayfs cannot be mounted there).
    pub storage_driver: Option<String>,
    /// `--authorization-plugin`s, applied in this order.
    pub authorization_plugins: Vec<String>,
    /// How long a plugin has to answer a call, and to come up.
    pub plugin_timeout: std::time::Duration,
    /// The log driver of containers that name none (`json-file`).
    pub log_driver: String,
    /// Its options, for containers of that driver that do not set them.
    pub log_opts: std::collections::HashMap<String, String>,
    /// Rootless mode: the daemon runs as an ordinary user inside the user,
    /// mount and network namespaces of its holder (`crate::rootless`).
    pub rootless: bool,
    /// `--label`s / `labels`: shown by `/info`, reloadable.
    pub labels: Vec<String>,
    /// Layers pulled at once (dockerd's default 3), reloadable.
    pub max_concurrent_downloads: usize,
    /// Layers pushed at once (dockerd's default 5), reloadable.
    pub max_concurrent_uploads: usize,
    /// Where `/metrics` is served (`None`: nowhere, dockerd's default).
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// `--default-ulimit`s / `default-ulimits`: what a container that sets
    /// no limit of a name gets at start (reloadable).
    pub default_ulimits: BTreeMap<String, Ulimit>,
    /// The `daemon.json` read, and the flags it was merged with: a
    /// reload (`crate::reload`) merges the file again with the same flags.
    pub config_file: PathBuf,
    pub flags: Flags,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unable to configure the daemon with file {path}: {msg}")]
    File { path: String, msg: String },
    #[error("{0}")]
    Invalid(String),
}

fn file_err(path: &Path, msg: impl Into<String>) -> ConfigError {
    ConfigError::File {
        path: path.display().to_string(),
        msg: msg.into(),
    }
}

/// Reads `daemon.json`. A missing default file is fine; a missing explicit one is not.
pub fn read_file_config(path: &Path, explicit: bool) -> Result<FileConfig, ConfigError> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            return Ok(FileConfig::default())
        }
        Err(e) => return Err(file_err(path, e.to_string())),
    };
    if data.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(FileConfig::default());
    }
    // Report every unknown key at once, as dockerd does.
    let raw: serde_json::Value =
        serde_json::from_slice(&data).map_err(|e| file_err(path, e.to_string()))?;
    let obj = raw
        .as_object()
        .ok_or_else(|| file_err(path, "the configuration must be a JSON object"))?;
    const KNOWN: &[&str] = &[
        "hosts",
        "data-root",
        "exec-root",
        "pidfile",
        "debug",
        "log-level",
        "live-restore",
        "default-address-pools",
        "insecure-registries",
        "registry-mirrors",
        "tlsverify",
        "tlscacert",
        "tlscert",
        "tlskey",
        "group",
        "bridge",
        "firewall-table",
        "cgroup-parent",
        "storage-driver",
        "authorization-plugins",
        "log-driver",
        "log-opts",
        "labels",
        "max-concurrent-downloads",
        "max-concurrent-uploads",
        "metrics-addr",
        "default-ulimits",
    ];
    let unknown: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !KNOWN.contains(k))
        .collect();
    if !unknown.is_empty() {
        return Err(file_err(
            path,
            format!(
                "the following directives don't match any configuration option: {}",
                unknown.join(", ")
            ),
        ));
    }
    serde_json::from_value(raw).map_err(|e| file_err(path, e.to_string()))
}

pub fn parse_host(h: &str) -> Result<Host, ConfigError> {
    if let Some(p) = h.strip_prefix("unix://") {
        if p.is_empty() || !p.starts_with('/') {
            return Err(ConfigError::Invalid(format!(
                "invalid unix socket address: {h}"
            )));
        }
        return Ok(Host::Unix(PathBuf::from(p)));
    }
    if let Some(a) = h.strip_prefix("tcp://") {
        let a = a.trim_end_matches('/');
        if a.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::Invalid(format!(
                "invalid tcp address {h}: expected tcp://IP:PORT"
            )));
        }
        return Ok(Host::Tcp(a.to_string()));
    }
    if let Some(n) = h.strip_prefix("fd://") {
        if n.is_empty() || n == "*" {
            return Ok(Host::Fd(None));
        }
        return n.parse().map(|n| Host::Fd(Some(n))).map_err(|_| {
            ConfigError::Invalid(format!(
                "failed to parse systemd fd address: should be a number: {n}"
            ))
        });
    }
    if h.starts_with('/') {
        return Ok(Host::Unix(PathBuf::from(h)));
    }
    Err(ConfigError::Invalid(format!(
        "invalid host {h}: only unix://, tcp:// and fd:// are supported"
    )))
}

/// `base=10.10.0.0/16,size=24`, the flag form of an address pool.
pub fn parse_pool_flag(s: &str) -> Result<AddressPool, ConfigError> {
    let mut base = None;
    let mut size = None;
    for part in s.split(',') {
        match part.split_once('=') {
            Some(("base", v)) => base = Some(v.to_string()),
            Some(("size", v)) => {
                size = Some(v.parse::<u8>().map_err(|_| {
                    ConfigError::Invalid(format!("invalid default-address-pool size: {v}"))
                })?)
            }
            _ => {
                return Err(ConfigError::Invalid(format!(
                    "invalid default-address-pool {s}: expected base=CIDR,size=N"
                )))
            }
        }
    }
    match (base, size) {
        (Some(base), Some(size)) => Ok(AddressPool { base, size }),
        _ => Err(ConfigError::Invalid(format!(
            "invalid default-address-pool {s}: expected base=CIDR,size=N"
        ))),
    }
}

fn docker_default_pools() -> Vec<AddressPool> {
    // Docker's defaults; the network code skips any that overlap host routes.
    let mut v = vec![
        AddressPool {
            base: "172.17.0.0/16".into(),
            size: 16,
        },
        AddressPool {
            base: "172.18.0.0/16".into(),
            size: 16,
        },
        AddressPool {
            base: "172.19.0.0/16".into(),
            size: 16,
        },
        AddressPool {
            base: "172.20.0.0/14".into(),
            size: 16,
        },
        AddressPool {
            base: "172.24.0.0/14".into(),
            size: 16,
        },
        AddressPool {
            base: "172.28.0.0/14".into(),
            size: 16,
        },
    ];
    v.push(AddressPool {
        base: "192.168.0.0/16".into(),
        size: 20,
    });
    v
}

impl DaemonConfig {
    pub fn resolve(mut flags: Flags) -> Result<Self, ConfigError> {
        let euid_root = nix::unistd::geteuid().is_root();
        if flags.rootless && euid_root {
            return Err(ConfigError::Invalid(
                "--rootless is for an unprivileged user: run berthd as that user".into(),
            ));
        }
        flags.rootless = !euid_root;
        let explicit = flags.config_file.is_some();
        let default_file = if flags.rootless {
            rootless_defaults()?.config_file
        } else {
            PathBuf::from(DEFAULT_CONFIG_FILE)
        };
        let path = flags.config_file.clone().unwrap_or(default_file);
        let file = read_file_config(&path, explicit)?;
        Self::merge(flags, file, &path)
    }

    pub fn merge(flags: Flags, file: FileConfig, path: &Path) -> Result<Self, ConfigError> {
        // Collect "given in both places" conflicts first, as dockerd does.
        let mut conflicts: BTreeMap<&str, String> = BTreeMap::new();
        macro_rules! both {
            ($name:literal, $flag:expr, $file:expr) => {
                if let (Some(a), Some(b)) = ($flag, $file) {
                    conflicts.insert($name, format!("(from flag: {a:?}, from file: {b:?})"));
                }
            };
        }
        let nonempty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        both!("hosts", nonempty(&flags.hosts), file.hosts.as_ref());
        both!(
            "data-root",
            flags.data_root.as_ref(),
            file.data_root.as_ref()
        );
        both!(
            "exec-root",
            flags.exec_root.as_ref(),
            file.exec_root.as_ref()
        );
        both!("pidfile", flags.pidfile.as_ref(), file.pidfile.as_ref());
        both!(
            "log-level",
            flags.log_level.as_ref(),
            file.log_level.as_ref()
        );
        both!("debug", flags.debug.then_some(true), file.debug);
        both!("live-restore", flags.live_restore, file.live_restore);
        both!(
            "insecure-registries",
            nonempty(&flags.insecure_registries),
            file.insecure_registries.as_ref()
        );
        both!(
            "registry-mirrors",
            nonempty(&flags.registry_mirrors),
            file.registry_mirrors.as_ref()
        );
        both!(
            "default-address-pools",
            nonempty(&flags.default_address_pools),
            file.default_address_pools.as_ref()
        );
        both!("tlsverify", flags.tlsverify.then_some(true), file.tlsverify);
        both!(
            "tlscacert",
            flags.tlscacert.as_ref(),
            file.tlscacert.as_ref()
        );
        both!("tlscert", flags.tlscert.as_ref(), file.tlscert.as_ref());
        both!("tlskey", flags.tlskey.as_ref(), file.tlskey.as_ref());
        both!("group", flags.group.as_ref(), file.group.as_ref());
        both!("bridge", flags.bridge.as_ref(), file.bridge.as_ref());
        both!(
            "firewall-table",
            flags.firewall_table.as_ref(),
            file.firewall_table.as_ref()
        );
        both!(
            "cgroup-parent",
            flags.cgroup_parent.as_ref(),
            file.cgroup_parent.as_ref()
        );
        both!(
            "storage-driver",
            flags.storage_driver.as_ref(),
            file.storage_driver.as_ref()
        );
        both!(
            "authorization-plugins",
            nonempty(&flags.authorization_plugins),
            file.authorization_plugins.as_ref()
        );
        both!(
            "log-driver",
            flags.log_driver.as_ref(),
            file.log_driver.as_ref()
        );
        both!(
            "log-opts",
            nonempty(&flags.log_opts),
            file.log_opts.as_ref()
        );
        both!("labels", nonempty(&flags.labels), file.labels.as_ref());
        both!(
            "max-concurrent-downloads",
            flags.max_concurrent_downloads,
            file.max_concurrent_downloads
        );
        both!(
            "max-concurrent-uploads",
            flags.max_concurrent_uploads,
            file.max_concurrent_uploads
        );
        both!(
            "metrics-addr",
            flags.metrics_addr.as_ref(),
            file.metrics_addr.as_ref()
        );
        both!(
            "default-ulimits",
            nonempty(&flags.default_ulimits),
            file.default_ulimits.as_ref()
        );
        if !conflicts.is_empty() {
            let list: Vec<String> = conflicts.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            return Err(file_err(
                path,
                format!(
                    "the following directives are specified both as a flag and in the configuration file: {}",
                    list.join(", ")
                ),
            ));
        }

        let host_strs = if !flags.hosts.is_empty() {
            flags.hosts.clone()
        } else {
            file.hosts.clone().unwrap_or_default()
        };
        let mut hosts = Vec::new();
        for h in &host_strs {
            hosts.push(parse_host(h)?);
        }
        let rl = if flags.rootless {
            Some(rootless_defaults()?)
        } else {
            None
        };
        if hosts.is_empty() {
            match &rl {
                Some(d) => hosts.push(Host::Unix(d.socket.clone())),
                None => hosts.push(parse_host(DEFAULT_SOCKET)?),
            }
        }

        let pools = if !flags.default_address_pools.is_empty() {
            flags
                .default_address_pools
                .iter()
                .map(|s| parse_pool_flag(s))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            file.default_address_pools
                .clone()
                .unwrap_or_else(docker_default_pools)
        };

        let debug = flags.debug || file.debug.unwrap_or(false);
        let log_level = flags
            .log_level
            .clone()
            .or(file.log_level.clone())
            .unwrap_or_else(|| if debug { "debug".into() } else { "info".into() });
        if !matches!(
            log_level.as_str(),
            "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "panic"
        ) {
            return Err(ConfigError::Invalid(format!(
                "unable to parse logging level: {log_level}"
            )));
        }

        let tlsverify = flags.tlsverify || file.tlsverify.unwrap_or(false);
        let ca = flags.tlscacert.clone().or(file.tlscacert.clone());
        let cert = flags.tlscert.clone().or(file.tlscert.clone());
        let key = flags.tlskey.clone().or(file.tlskey.clone());
        let tls = if tlsverify {
            match (ca, cert, key) {
                (Some(ca), Some(cert), Some(key)) => Some(TlsFiles { ca, cert, key }),
                _ => {
                    return Err(ConfigError::Invalid(
                        "--tlsverify needs --tlscacert, --tlscert and --tlskey".into(),
                    ))
                }
            }
        } else {
            None
        };
        let has_tcp = hosts.iter().any(|h| matches!(h, Host::Tcp(_)));
        if has_tcp && tls.is_none() && !flags.insecure_tcp {
            return Err(ConfigError::Invalid(
                "refusing to serve tcp:// without TLS: pass --tlsverify --tlscacert --tlscert --tlskey (or --insecure-tcp to accept the risk)".into(),
            ));
        }

        let data_root = flags
            .data_root
            .clone()
            .or(file.data_root.clone())
            .unwrap_or_else(|| match &rl {
                Some(d) => d.data_root.clone(),
                None => PathBuf::from(DEFAULT_DATA_ROOT),
            });
        let exec_root = flags
            .exec_root
            .clone()
            .or(file.exec_root.clone())
            .unwrap_or_else(|| match &rl {
                Some(d) => d.exec_root.clone(),
                None => PathBuf::from(DEFAULT_EXEC_ROOT),
            });
        let pidfile = flags
            .pidfile
            .clone()
            .or(file.pidfile.clone())
            .unwrap_or_else(|| exec_root.join("berthd.pid"));
        for (name, p) in [("data-root", &data_root), ("exec-root", &exec_root)] {
            if !p.is_absolute() {
                return Err(ConfigError::Invalid(format!(
                    "{name} must be an absolute path"
                )));
            }
        }

        let bridge = flags
            .bridge
            .clone()
            .or(file.bridge.clone())
            .unwrap_or_else(|| "berth0".into());
        if bridge.is_empty()
            || bridge.len() > 15
            || !bridge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err(ConfigError::Invalid(format!(
                "invalid bridge name {bridge:?}"
            )));
        }
        let table = flags
            .firewall_table
            .clone()
            .or(file.firewall_table.clone())
            .unwrap_or_else(|| "berth".into());
        if table.is_empty()
            || !table
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(ConfigError::Invalid(format!(
                "invalid firewall table name {table:?}"
            )));
        }
        let mut log_opts = file.log_opts.clone().unwrap_or_default();
        for kv in &flags.log_opts {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                ConfigError::Invalid(format!("invalid key/value pair format in log opts: {kv}"))
            })?;
            log_opts.insert(k.to_string(), v.to_string());
        }
        let cgroup_parent = flags
            .cgroup_parent
            .clone()
            .or(file.cgroup_parent.clone())
            .unwrap_or_else(|| crate::engine::cgroups::DEFAULT_PARENT.into());
        if cgroup_parent.split('/').any(|c| c == ".." || c == ".")
            || cgroup_parent.contains('\0')
            || cgroup_parent.trim_matches('/').is_empty()
        {
            return Err(ConfigError::Invalid(format!(
                "invalid cgroup parent {cgroup_parent:?}"
            )));
        }
        let storage_driver = flags.storage_driver.clone().or(file.storage_driver.clone());
        if let Some(d) = &storage_driver {
            if !crate::engine::fs::driver::Driver::NAMES.contains(&d.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "error initializing graphdriver: driver not supported: {d}"
                )));
            }
        }
        let labels = if flags.labels.is_empty() {
            file.labels.clone().unwrap_or_default()
        } else {
            flags.labels.clone()
        };
        let labels = conflict_free_labels(&labels)?;
        let max_concurrent_downloads = flags
            .max_concurrent_downloads
            .or(file.max_concurrent_downloads)
            .filter(|n| *n != 0)
            .unwrap_or(3);
        let max_concurrent_uploads = flags
            .max_concurrent_uploads
            .or(file.max_concurrent_uploads)
            .filter(|n| *n != 0)
            .unwrap_or(5);
        let metrics_addr = match flags.metrics_addr.clone().or(file.metrics_addr.clone()) {
            Some(a) if !a.is_empty() => Some(a.parse::<std::net::SocketAddr>().map_err(|_| {
                ConfigError::Invalid(format!("invalid metrics-addr {a:?}: expected IP:PORT"))
            })?),
            _ => None,
        };
        let default_ulimits = default_ulimits(&flags, &file)?;
        Ok(Self {
            default_ulimits,
            config_file: path.to_path_buf(),
            labels,
            max_concurrent_downloads,
            max_concurrent_uploads,
            metrics_addr,
            hosts,
            data_root,
            exec_root,
            pidfile,
            debug,
            log_level,
            live_restore: flags.live_restore.or(file.live_restore).unwrap_or(true),
            default_address_pools: pools,
            insecure_registries: if flags.insecure_registries.is_empty() {
                file.insecure_registries.clone().unwrap_or_default()
            } else {
                flags.insecure_registries.clone()
            },
            registry_mirrors: if flags.registry_mirrors.is_empty() {
                file.registry_mirrors.clone().unwrap_or_default()
            } else {
                flags.registry_mirrors.clone()
            },
            certs_dir: flags.certs_dir.clone().unwrap_or_else(|| match &rl {
                Some(d) => d.certs_dir.clone(),
                None => PathBuf::from(DEFAULT_CERTS_DIR),
            }),
            loopback_registries_insecure: flags.loopback_registries_insecure.unwrap_or(true),
            tls,
            insecure_tcp: flags.insecure_tcp,
            socket_group: flags.group.clone().or(file.group.clone()),
            bridge: flags
                .bridge
                .clone()
                .or(file.bridge.clone())
                .unwrap_or_else(|| "berth0".into()),
            firewall_table: flags
                .firewall_table
                .clone()
                .or(file.firewall_table.clone())
                .unwrap_or_else(|| "berth".into()),
            cgroup_parent,
            storage_driver,
            authorization_plugins: if flags.authorization_plugins.is_empty() {
                file.authorization_plugins.clone().unwrap_or_default()
            } else {
                flags.authorization_plugins.clone()
            },
            plugin_timeout: std::time::Duration::from_secs(
                flags.plugin_timeout.unwrap_or(30).max(1),
            ),
            log_driver: flags
                .log_driver
                .clone()
                .or(file.log_driver.clone())
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| "json-file".into()),
            log_opts,
            rootless: flags.rootless,
            flags,
        })
    }
}

/// dockerd's `GetConflictFreeLabels` and label validation: each label is
/// `key=value`; a key given twice must have one value (kept once).
pub fn conflict_free_labels(labels: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut out: Vec<String> = Vec::new();
    for l in labels {
        let Some((k, v)) = l.split_once('=') else {
            return Err(ConfigError::Invalid(format!("bad attribute format: {l}")));
        };
        if let Some(prev) = out.iter().find_map(|o| {
            o.split_once('=')
                .filter(|(ok, _)| *ok == k)
                .map(|(_, ov)| ov.to_string())
        }) {
            if prev != v {
                return Err(ConfigError::Invalid(format!(
                    "conflict labels for {k}={v} and {k}={prev}"
                )));
            }
            continue;
        }
        out.push(l.clone());
    }
    Ok(out)
}

fn rootless_defaults() -> Result<crate::rootless::paths::Defaults, ConfigError> {
    crate::rootless::paths::defaults().map_err(|e| ConfigError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, s: &str) -> PathBuf {
        let p = dir.path().join("daemon.json");
        std::fs::write(&p, s).unwrap();
        p
    }

    #[test]
    fn defaults_need_no_file() {
        let c =
            DaemonConfig::merge(Flags::default(), FileConfig::default(), Path::new("x")).unwrap();
        assert_eq!(c.hosts, vec![Host::Unix("/run/berth/berth.sock".into())]);
        assert_eq!(c.data_root, PathBuf::from("/var/lib/berth"));
        assert!(c.live_restore);
    }

    #[test]
    fn rootless_flag_is_for_an_unprivileged_user() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let flags = Flags {
            rootless: true,
            ..Default::default()
        };
        let e = DaemonConfig::resolve(flags).unwrap_err().to_string();
        assert!(e.contains("--rootless is for an unprivileged user"), "{e}");
        let c =
            DaemonConfig::merge(Flags::default(), FileConfig::default(), Path::new("x")).unwrap();
        assert!(!c.rootless);
    }

    #[test]
    fn default_ulimits_parse_as_docker_does() {
        let u = Ulimit::parse("nofile=1024:2048").unwrap();
        assert_eq!((u.name.as_str(), u.soft, u.hard), ("nofile", 1024, 2048));
        let u = Ulimit::parse("core=-1").unwrap();
        assert_eq!((u.soft, u.hard), (-1, -1));
        for (bad, msg) in [
            ("nofiles=1", "invalid ulimit type: nofiles"),
            ("nofile", "invalid ulimit argument: nofile"),
            ("nofile=x", "invalid ulimit argument: nofile=x"),
            (
                "nofile=20:10",
                "ulimit soft limit must be less than or equal to hard limit: 20 > 10",
            ),
        ] {
            let e = Ulimit::parse(bad).unwrap_err().to_string();
            assert!(e.contains(msg), "{bad}: {e}");
        }
        // The file keys entries by name; the entry's own Name wins.
        let d = tempfile::tempdir().unwrap();
        let p = write(
            &d,
            r#"{"default-ulimits":{"nproc":{"Name":"nproc","Soft":5,"Hard":6},"x":{"Name":"core","Soft":0,"Hard":0}}}"#,
        );
        let file = read_file_config(&p, true).unwrap();
        let c = DaemonConfig::merge(Flags::default(), file.clone(), &p).unwrap();
        let names: Vec<&str> = c.default_ulimits.keys().map(String::as_str).collect();
        assert_eq!(names, ["core", "nproc"]);
        let flags = Flags {
            default_ulimits: vec!["nofile=1:2".into()],
            ..Default::default()
        };
        let e = DaemonConfig::merge(flags, file, &p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("default-ulimits"), "{e}");
    }

    #[test]
    fn unknown_keys_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let p = write(&d, r#"{"data-root":"/x","bogus":1,"also":2}"#);
        let e = read_file_config(&p, true).unwrap_err().to_string();
        assert!(
            e.contains("don't match any configuration option: also, bogus")
                || e.contains("bogus, also"),
            "{e}"
        );
    }

    #[test]
    fn every_key_the_file_reads_is_known() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            &d,
            r#"{"bridge":"b0","firewall-table":"t","cgroup-parent":"/c","authorization-plugins":["a"]}"#,
        );
        let file = read_file_config(&p, true).unwrap();
        assert_eq!(file.bridge.as_deref(), Some("b0"));
        assert_eq!(file.cgroup_parent.as_deref(), Some("/c"));
        let flags = Flags {
            authorization_plugins: vec!["b".into()],
            ..Default::default()
        };
        let e = DaemonConfig::merge(flags, file, &p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("authorization-plugins"), "{e}");
    }

    #[test]
    fn flag_and_file_conflict() {
        let d = tempfile::tempdir().unwrap();
        let p = write(&d, r#"{"data-root":"/from/file"}"#);
        let file = read_file_config(&p, true).unwrap();
        let flags = Flags {
            data_root: Some("/from/flag".into()),
            ..Default::default()
        };
        let e = DaemonConfig::merge(flags, file, &p)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("specified both as a flag and in the configuration file: data-root"),
            "{e}"
        );
    }

    #[test]
    fn file_values_apply() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            &d,
            r#"{"hosts":["unix:///tmp/x.sock"],"live-restore":false,"default-address-pools":[{"base":"10.9.0.0/16","size":24}]}"#,
        );
        let file = read_file_config(&p, true).unwrap();
        let c = DaemonConfig::merge(Flags::default(), file, &p).unwrap();
        assert_eq!(c.hosts, vec![Host::Unix("/tmp/x.sock".into())]);
        assert!(!c.live_restore);
        assert_eq!(c.default_address_pools[0].size, 24);
    }

    #[test]
    fn plain_tcp_is_refused() {
        let flags = Flags {
            hosts: vec!["tcp://127.0.0.1:2375".into()],
            ..Default::default()
        };
        assert!(DaemonConfig::merge(flags.clone(), FileConfig::default(), Path::new("x")).is_err());
        let ok = Flags {
            insecure_tcp: true,
            ..flags
        };
        assert!(DaemonConfig::merge(ok, FileConfig::default(), Path::new("x")).is_ok());
    }

    #[test]
    fn missing_default_file_is_fine_missing_explicit_is_not() {
        assert_eq!(parse_host("fd://").unwrap(), Host::Fd(None));
        assert_eq!(parse_host("fd://4").unwrap(), Host::Fd(Some(4)));
        assert!(parse_host("fd://x")
            .unwrap_err()
            .to_string()
            .contains("should be a number: x"));
        assert!(read_file_config(Path::new("/nonexistent/daemon.json"), false).is_ok());
        assert!(read_file_config(Path::new("/nonexistent/daemon.json"), true).is_err());
    }

    #[test]
    fn the_default_log_driver_comes_from_a_flag_or_the_file() {
        let c =
            DaemonConfig::merge(Flags::default(), FileConfig::default(), Path::new("x")).unwrap();
        assert_eq!(c.log_driver, "json-file");
        assert!(c.log_opts.is_empty());
        let d = tempfile::tempdir().unwrap();
        let p = write(&d, r#"{"log-driver":"shipper","log-opts":{"tag":"t"}}"#);
        let file = read_file_config(&p, true).unwrap();
        let c = DaemonConfig::merge(Flags::default(), file.clone(), &p).unwrap();
        assert_eq!(c.log_driver, "shipper");
        assert_eq!(c.log_opts["tag"], "t");
        let flags = Flags {
            log_driver: Some("other".into()),
            ..Default::default()
        };
        let e = DaemonConfig::merge(flags, file, &p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("log-driver"), "{e}");
        let flags = Flags {
            log_opts: vec!["max-size=1k".into(), "bad".into()],
            ..Default::default()
        };
        assert!(DaemonConfig::merge(flags, FileConfig::default(), Path::new("x")).is_err());
    }
}
