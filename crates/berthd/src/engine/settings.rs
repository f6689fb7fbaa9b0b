//! The daemon's reloadable settings: the part of `daemon.json` a `SIGHUP`
//! may change (dockerd's reloadable keys berth has). One value, swapped
//! whole (`arc-swap`): readers load it where they use it, never copy it at
//! start-up, and a reload is seen entirely or not at all.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Serialize;

use crate::config::{DaemonConfig, Ulimit};

/// What a reload may change. Serialized with dockerd's key names (the
/// `Reloaded configuration: {json}` log line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settings {
    pub debug: bool,
    #[serde(rename = "log-level")]
    pub log_level: String,
    pub labels: Vec<String>,
    #[serde(rename = "live-restore")]
    pub live_restore: bool,
    #[serde(rename = "insecure-registries")]
    pub insecure_registries: Vec<String>,
    #[serde(rename = "registry-mirrors")]
    pub registry_mirrors: Vec<String>,
    #[serde(rename = "max-concurrent-downloads")]
    pub max_concurrent_downloads: usize,
    #[serde(rename = "max-concurrent-uploads")]
    pub max_concurrent_uploads: usize,
    #[serde(rename = "authorization-plugins")]
    pub authorization_plugins: Vec<String>,
    /// By name: what a container that sets no limit of that name runs
    /// with (and shows in inspect), as dockerd's `mergeUlimits`.
    #[serde(rename = "default-ulimits")]
    pub default_ulimits: BTreeMap<String, Ulimit>,
}

impl Settings {
    pub fn of(cfg: &DaemonConfig) -> Self {
        Self {
            debug: cfg.debug,
            log_level: cfg.log_level.clone(),
            labels: cfg.labels.clone(),
            live_restore: cfg.live_restore,
            insecure_registries: cfg.insecure_registries.clone(),
            registry_mirrors: cfg.registry_mirrors.clone(),
            max_concurrent_downloads: cfg.max_concurrent_downloads.max(1),
            max_concurrent_uploads: cfg.max_concurrent_uploads.max(1),
            authorization_plugins: cfg.authorization_plugins.clone(),
            default_ulimits: cfg.default_ulimits.clone(),
        }
    }

    /// The level the log filter runs at: `debug` wins, as dockerd's
    /// `debug.Enable()` does.
    pub fn effective_log_level(&self) -> &str {
        if self.debug {
            "debug"
        } else {
            match self.log_level.as_str() {
                "fatal" | "panic" => "error",
                l => l,
            }
        }
    }
}

/// The settings in force; shared by every service that reads one.
pub struct Live(ArcSwap<Settings>);

impl Live {
    pub fn new(s: Settings) -> Arc<Self> {
        Arc::new(Self(ArcSwap::from_pointee(s)))
    }

    /// The settings now (cheap: no lock, one reference count).
    pub fn get(&self) -> Arc<Settings> {
        self.0.load_full()
    }

    pub fn set(&self, s: Settings) {
        self.0.store(Arc::new(s));
    }
}
