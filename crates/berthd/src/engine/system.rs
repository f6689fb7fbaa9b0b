//! System-wide views: version, info, disk usage.

use std::collections::HashMap;

use berth_api::models::{
    Commit, PluginsInfo, RegistryServiceConfig, Runtime, SwarmInfo, SystemDataUsageResponse,
    SystemInfo, SystemInfoCgroupDriverEnum, SystemInfoCgroupVersionEnum,
    SystemInfoDefaultAddressPools, SystemInfoIsolationEnum, SystemVersion, SystemVersionComponents,
    SystemVersionPlatform,
};
use berth_api::{API_VERSION, MIN_API_VERSION};

use super::containers::RUNTIMES;
use super::host::{self, CgroupVersion};
use super::{Engine, VERSION};

const GIT_COMMIT: &str = env!("BERTH_GIT_COMMIT");
const RUSTC_VERSION: &str = env!("BERTH_RUSTC_VERSION");

fn build_time() -> String {
    // The binary's own mtime stands in for a build timestamp.
    std::env::current_exe()
        .and_then(std::fs::metadata)
        .and_then(|m| m.modified())
        .map(|t| {
            chrono::DateTime::<chrono::Utc>::from(t)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
        .unwrap_or_default()
}

/// The host's cgroup version as `docker info` reports it. A rootless
/// daemon's mount namespace may show a hybrid host's v2 tree on
/// `/sys/fs/cgroup`, so without cgroups it asks its own hierarchies.
fn cgroup_version(driver: super::cgroups::Driver) -> CgroupVersion {
    match driver {
        super::cgroups::Driver::None if super::cgroups::host_unified() => CgroupVersion::V2,
        super::cgroups::Driver::None => CgroupVersion::V1,
        _ => host::cgroup_version(),
    }
}

/// dockerd's warning for a rootless daemon without cgroups.
fn rootless_cgroup_warning(cg: CgroupVersion) -> &'static str {
    match cg {
        CgroupVersion::V2 => "WARNING: Running in rootless-mode without cgroups. Systemd is required to enable cgroups in rootless-mode.",
        CgroupVersion::V1 => "WARNING: Running in rootless-mode without cgroups. To enable cgroups in rootless-mode, you need to boot the system in cgroup v2 mode.",
    }
}

impl Engine {
    pub fn version(&self) -> SystemVersion {
        let kernel = host::kernel_version();
        let bt = build_time();
        let details: HashMap<String, String> = [
            ("ApiVersion", API_VERSION.to_string()),
            ("Arch", host::go_arch().to_string()),
            ("BuildTime", bt.clone()),
            ("Experimental", "false".to_string()),
            ("GitCommit", GIT_COMMIT.to_string()),
            ("GoVersion", RUSTC_VERSION.to_string()),
            ("KernelVersion", kernel.clone()),
            ("MinAPIVersion", MIN_API_VERSION.to_string()),
            ("Os", "linux".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        SystemVersion {
            platform: Some(SystemVersionPlatform {
                name: format!("berth {VERSION}"),
            }),
            components: Some(vec![SystemVersionComponents {
                name: "Engine".into(),
                version: VERSION.into(),
                details: Some(details),
            }]),
            version: Some(VERSION.into()),
            api_version: Some(API_VERSION.to_string()),
            min_api_version: Some(MIN_API_VERSION.to_string()),
            git_commit: Some(GIT_COMMIT.into()),
            go_version: Some(RUSTC_VERSION.into()),
            os: Some("linux".into()),
            arch: Some(host::go_arch().into()),
            kernel_version: Some(kernel),
            experimental: None,
            build_time: Some(bt),
        }
    }

    pub fn info(&self) -> SystemInfo {
        let c = &self.config;
        // What a reload may change is read from the live settings.
        let live = self.live.get();
        let driver = super::cgroups::driver();
        let cg = cgroup_version(driver);
        // dockerd reports no limit support at all under the `none` driver.
        let limits = driver != super::cgroups::Driver::None;
        let backing = host::backing_filesystem(&c.data_root);
        let counts = self.object_counts();
        let mut warnings = Vec::new();
        if c.hosts
            .iter()
            .any(|h| matches!(h, crate::config::Host::Tcp(_)))
            && c.tls.is_none()
        {
            warnings.push(
                "WARNING: API is accessible on http:// without encryption. Access to the daemon gives root on this host."
                    .to_string(),
            );
        }
        if driver == super::cgroups::Driver::None {
            warnings.push(rootless_cgroup_warning(cg).into());
        }
        let runtimes: HashMap<String, Runtime> = RUNTIMES
            .iter()
            .map(|(name, path)| {
                (
                    name.to_string(),
                    Runtime {
                        path: Some(path.to_string()),
                        ..Default::default()
                    },
                )
            })
            .collect();
        SystemInfo {
            id: Some(self.id.clone()),
            containers: Some(counts.containers),
            containers_running: Some(counts.running),
            containers_paused: Some(counts.paused),
            containers_stopped: Some(counts.containers - counts.running - counts.paused),
            images: Some(counts.images),
            driver: Some(super::fs::driver::current().name().into()),
            // dockerd's fuse-overlayfs driver reports no status at all.
            driver_status: Some(match super::fs::driver::current() {
                super::fs::driver::Driver::FuseOverlayfs => Vec::new(),
                super::fs::driver::Driver::Overlay2 => vec![
                    vec!["Backing Filesystem".into(), backing],
                    vec!["Supports d_type".into(), "true".into()],
                    vec!["Using metacopy".into(), "false".into()],
                    vec!["Native Overlay Diff".into(), "true".into()],
                    vec!["userxattr".into(), super::fs::xattr::userns().to_string()],
                ],
            }),
            docker_root_dir: Some(c.data_root.display().to_string()),
            plugins: Some(self.plugins_info()),
            memory_limit: Some(limits),
            swap_limit: Some(limits && host::swap_limit_supported()),
            kernel_memory_tcp: Some(false),
            cpu_cfs_period: Some(limits),
            cpu_cfs_quota: Some(limits),
            cpu_shares: Some(limits),
            cpu_set: Some(limits),
            pids_limit: Some(limits),
            oom_kill_disable: Some(limits && cg == CgroupVersion::V1),
            ipv4_forwarding: Some(host::ipv4_forwarding()),
            bridge_nf_iptables: Some(false),
            bridge_nf_ip6tables: Some(false),
            debug: Some(live.debug),
            nfd: Some(host::open_fds()),
            n_goroutines: Some(host::threads()),
            system_time: Some(
                chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, false),
            ),
            logging_driver: Some(c.log_driver.clone()),
            cgroup_driver: Some(match driver {
                super::cgroups::Driver::None => SystemInfoCgroupDriverEnum::NONE,
                _ => SystemInfoCgroupDriverEnum::CGROUPFS,
            }),
            cgroup_version: Some(match cg {
                CgroupVersion::V1 => SystemInfoCgroupVersionEnum::_1,
                CgroupVersion::V2 => SystemInfoCgroupVersionEnum::_2,
            }),
            n_events_listener: Some(self.events.listeners()),
            kernel_version: Some(host::kernel_version()),
            operating_system: Some(host::operating_system()),
            os_version: Some(host::os_version()),
            os_type: Some("linux".into()),
            architecture: Some(host::architecture()),
            ncpu: Some(host::ncpu()),
            mem_total: Some(host::mem_total()),
            index_server_address: Some("https://index.docker.io/v1/".into()),
            registry_config: Some(RegistryServiceConfig {
                insecure_registry_cidrs: Some({
                    let mut v: Vec<String> = if c.loopback_registries_insecure {
                        vec!["127.0.0.0/8".into(), "::1/128".into()]
                    } else {
                        vec![]
                    };
                    v.extend(
                        live.insecure_registries
                            .iter()
                            .filter(|r| r.contains('/'))
                            .cloned(),
                    );
                    v
                }),
                index_configs: Some(index_configs(&live)),
                mirrors: Some(shown_mirrors(&live.registry_mirrors)),
            }),
            http_proxy: Some(
                std::env::var("HTTP_PROXY")
                    .or_else(|_| std::env::var("http_proxy"))
                    .unwrap_or_default(),
            ),
            https_proxy: Some(
                std::env::var("HTTPS_PROXY")
                    .or_else(|_| std::env::var("https_proxy"))
                    .unwrap_or_default(),
            ),
            no_proxy: Some(
                std::env::var("NO_PROXY")
                    .or_else(|_| std::env::var("no_proxy"))
                    .unwrap_or_default(),
            ),
            name: Some(host::hostname()),
            labels: Some(live.labels.clone()),
            experimental_build: Some(false),
            server_version: Some(VERSION.into()),
            runtimes: Some(runtimes),
            default_runtime: Some("runc".into()),
            swarm: Some(SwarmInfo {
                node_id: Some(String::new()),
                node_addr: Some(String::new()),
                local_node_state: Some(berth_api::models::LocalNodeState::INACTIVE),
                control_available: Some(false),
                error: Some(String::new()),
                remote_managers: None,
                ..Default::default()
            }),
            live_restore_enabled: Some(live.live_restore),
            isolation: Some(SystemInfoIsolationEnum::EMPTY),
            init_binary: Some("berth-init".into()),
            containerd_commit: Some(Commit {
                id: Some(String::new()),
            }),
            runc_commit: Some(Commit {
                id: Some(GIT_COMMIT.into()),
            }),
            init_commit: Some(Commit {
                id: Some(GIT_COMMIT.into()),
            }),
            security_options: Some({
                let mut o = vec!["name=seccomp,profile=builtin".to_string()];
                if c.rootless {
                    o.push("name=rootless".into());
                }
                o
            }),
            default_address_pools: Some(
                c.default_address_pools
                    .iter()
                    .map(|p| SystemInfoDefaultAddressPools {
                        base: Some(p.base.clone()),
                        size: Some(p.size as i64),
                    })
                    .collect(),
            ),
            warnings: (!warnings.is_empty()).then_some(warnings),
            ..Default::default()
        }
    }

    pub fn disk_usage(&self) -> SystemDataUsageResponse {
        let images = self
            .images
            .list(&super::images::ListOptions {
                // As dockerd: intermediate images are not listed.
                all: false,
                shared_size: true,
                count_containers: true,
                filters: Default::default(),
            })
            .unwrap_or_default();
        SystemDataUsageResponse {
            layers_size: Some(self.images.layers_size()),
            images: Some(images),
            containers: Some(
                self.containers
                    .all()
                    .iter()
                    .map(|c| self.containers.summary(&c.snapshot(), true))
                    .collect(),
            ),
            volumes: Some(self.volumes.volumes_disk_usage()),
            build_cache: Some(self.builder.build_cache_usage()),
        }
    }

    fn object_counts(&self) -> Counts {
        let (containers, running, paused) = self.containers.container_counts();
        Counts {
            containers,
            running,
            paused,
            images: self.images.count() as i64,
        }
    }

    /// `Plugins` of `/info`: the built-in drivers, then the plugins
    /// activated or enabled for each interface (no I/O: `/info` must not
    /// wait on a plugin), and the authorization plugins configured.
    fn plugins_info(&self) -> PluginsInfo {
        use super::plugins::{LOG, NETWORK, VOLUME};
        let with = |builtin: &[&str], interface: &str| {
            let mut v: Vec<String> = builtin.iter().map(|s| s.to_string()).collect();
            for p in self.plugins.activated(interface) {
                if !v.contains(&p) {
                    v.push(p);
                }
            }
            Some(v)
        };
        let live = self.live.get();
        let authz = &live.authorization_plugins;
        PluginsInfo {
            volume: with(&["local"], VOLUME),
            network: with(&["bridge", "host", "null"], NETWORK),
            authorization: (!authz.is_empty()).then(|| authz.clone()),
            log: with(crate::engine::logging::LISTED, LOG),
        }
    }
}

#[derive(Default)]
struct Counts {
    containers: i64,
    running: i64,
    paused: i64,
    images: i64,
}

/// The mirrors as dockerd's `ValidateMirror` stores them (and `docker
/// info` shows them): each with one trailing `/`.
fn shown_mirrors(mirrors: &[String]) -> Vec<String> {
    mirrors
        .iter()
        .map(|m| format!("{}/", m.strip_suffix('/').unwrap_or(m)))
        .collect()
}

/// dockerd's `RegistryConfig.IndexConfigs`: Docker Hub (with the mirrors)
/// and each insecure registry given by name.
fn index_configs(c: &super::settings::Settings) -> HashMap<String, berth_api::models::IndexInfo> {
    let hub = berth_api::models::IndexInfo {
        name: Some("docker.io".into()),
        mirrors: Some(shown_mirrors(&c.registry_mirrors)),
        secure: Some(true),
        official: Some(true),
    };
    let mut m: HashMap<String, berth_api::models::IndexInfo> =
        [("docker.io".to_string(), hub)].into_iter().collect();
    for r in c.insecure_registries.iter().filter(|r| !r.contains('/')) {
        m.insert(
            r.clone(),
            berth_api::models::IndexInfo {
                name: Some(r.clone()),
                mirrors: Some(vec![]),
                secure: Some(false),
                official: Some(false),
            },
        );
    }
    m
}
