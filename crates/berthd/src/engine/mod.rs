//! The engine: Docker's objects and their state. Nothing in here knows HTTP.

pub mod builder;
pub mod cgroups;
pub mod clock;
pub mod containers;
pub mod error;
pub mod events;
pub mod fs;
pub mod host;
pub mod ids;
pub mod images;
pub mod logging;
pub mod metrics;
pub mod mountinfo;
pub mod networks;
pub mod plugins;
pub mod reconcile;
pub mod registry;
pub mod scrape;
pub mod settings;
pub mod signal;
pub mod store;
pub mod system;
pub mod trash;
pub mod users;
pub mod volumes;

use std::sync::Arc;
use std::time::Instant;

use crate::config::DaemonConfig;
pub use error::{EngineError, Result};
use events::EventBus;
use store::{Store, Table};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub struct Engine {
    pub config: DaemonConfig,
    /// What a `SIGHUP` may change (`settings`): read here, not in `config`.
    pub live: Arc<settings::Live>,
    pub store: Arc<Store>,
    pub events: Arc<EventBus>,
    pub images: Arc<images::ImageService>,
    pub containers: Arc<containers::Containers>,
    pub networks: Arc<networks::Networks>,
    pub volumes: Arc<volumes::Volumes>,
    pub builder: builder::Builder,
    pub registries: Arc<registry::Registries>,
    pub plugins: Arc<plugins::Plugins>,
    /// Managed (v2) plugins: installed, run and registered with `plugins`.
    pub plugin_manager: Arc<plugins::managed::Manager>,
    /// Stable daemon ID, created on first start.
    pub id: String,
    pub started: Instant,
    shutdown: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Engine {
    /// Opens the data root and builds the in-memory indexes.
    pub fn open(config: DaemonConfig) -> Result<Arc<Self>> {
        for dir in [&config.data_root, &config.exec_root] {
            std::fs::create_dir_all(dir)
                .map_err(|e| EngineError::internal(format!("creating {}: {e}", dir.display())))?;
        }
        // The data root holds image layers and container state: root only.
        set_mode(&config.data_root, 0o710)?;
        for root in [&config.data_root, &config.exec_root] {
            trash::empty(&trash::dir(root));
        }
        // The shim's sealed copy (a ~9 MB copy into memory) and the init
        // binary's check need nothing else here: a thread makes them while
        // the store and the services open, off the way to the first
        // `/_ping` on a machine with a second core.
        let root = config.data_root.clone();
        let binaries = std::thread::Builder::new()
            .name("berth-binaries".into())
            .spawn(move || {
                containers::install_init(&root)?;
                containers::shim::ShimBinary::load()
            })
            .map_err(|e| EngineError::internal(format!("starting a thread: {e}")))?;
        // Scratch space of operations in flight (`cp` rehearsals): what a
        // crash left there is garbage.
        let tmp = config.data_root.join("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)
            .map_err(|e| EngineError::internal(format!("creating {}: {e}", tmp.display())))?;
        cgroups::set_driver(
            cgroups::choose(config.rootless),
            &cgroups::runtime_roots(&config.exec_root),
        );
        cgroups::set_parent(&config.cgroup_parent);
        fs::xattr::set_userns(config.rootless);
        let driver = fs::driver::choose(
            config.storage_driver.as_deref(),
            config.rootless,
            || fs::snapshot::probe_userns_overlay(&tmp),
            std::path::Path::new(fs::driver::FUSE_OVERLAYFS),
        )?;
        tracing::info!(driver = driver.name(), "storage driver");
        fs::driver::set(driver);
        let store = Arc::new(Store::open(&config.data_root)?);
        let id = match store.get::<String>(Table::Meta, "daemon_id")? {
            Some(id) => id,
            None => {
                let id = ids::random_hex(16);
                store.put(Table::Meta, "daemon_id", &id)?;
                id
            }
        };
        let events = Arc::new(EventBus::new());
        let live = settings::Live::new(settings::Settings::of(&config));
        let plugins = Arc::new(plugins::Plugins::new(&config));
        let images = Arc::new(images::ImageService::open(
            &config.data_root,
            store.clone(),
            events.clone(),
        )?);
        let networks = Arc::new(networks::Networks::open(
            store.clone(),
            events.clone(),
            &config,
        )?);
        let volumes = Arc::new(volumes::Volumes::open(
            &config.data_root,
            store.clone(),
            events.clone(),
            plugins.clone(),
        )?);
        let registries = Arc::new(registry::Registries::new(
            &config,
            live.clone(),
            store.clone(),
            images.clone(),
        )?);
        let (shutdown, _) = tokio::sync::watch::channel(false);
        let shutdown = Arc::new(shutdown);
        let shim_bin = binaries
            .join()
            .map_err(|_| EngineError::internal("loading the shim binary panicked"))??;
        let containers = Arc::new(containers::Containers::open(containers::Handles {
            shim_bin,
            config: config.clone(),
            store: store.clone(),
            events: events.clone(),
            images: images.clone(),
            networks: networks.clone(),
            volumes: volumes.clone(),
            plugins: plugins.clone(),
            registries: registries.clone(),
            live: live.clone(),
            shutdown: shutdown.clone(),
        })?);
        let builder = builder::Builder::open(&config.data_root, store.clone(), images.clone())?;
        volumes.set_users(Box::new(containers::mounts::VolumeUse(
            containers.index.clone(),
        )));
        let index = containers.index.clone();
        networks.set_referenced(Box::new(move |name| {
            containers::network::names_network(&index, name)
        }));
        networks.set_plugins(plugins.clone());
        let index = containers.index.clone();
        images.set_usage_checker(Box::new(move |image_id| {
            containers::Containers::users_of(&index, image_id)
        }));
        let plugin_manager = Arc::new(plugins::managed::Manager::open(
            &config.data_root,
            store.clone(),
            events.clone(),
            plugins.clone(),
        )?);
        // A managed plugin is in use while a volume names it as driver: the
        // manager asks the volume service, never the engine.
        let vols = volumes.clone();
        plugin_manager.set_in_use(Box::new(move |name: &str| vols.driver_in_use(name)));
        plugin_manager.set_runner(Box::new(containers::plugin_run::PluginRunner::new(
            containers.shim_bin.clone(),
            &config.exec_root,
            cgroups::enabled(),
        )?));
        Ok(Arc::new(Self {
            config,
            live,
            store,
            events,
            images,
            containers,
            networks,
            volumes,
            builder,
            registries,
            plugins,
            plugin_manager,
            id,
            started: Instant::now(),
            shutdown,
        }))
    }

    /// Signals long-lived streams (events, logs -f) to end.
    pub fn begin_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    pub fn shutdown_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
}

fn set_mode(path: &std::path::Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| EngineError::internal(format!("chmod {}: {e}", path.display())))
}
