//! Start-up and shutdown: config, logging, pidfile, listeners, engine.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::sync::watch;

use crate::config::DaemonConfig;
use crate::engine::Engine;
use crate::server::{self, Listener};

pub fn init_logging(cfg: &DaemonConfig) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // `debug` wins over `log-level`, as dockerd's `debug.Enable()`.
    let level = match cfg.log_level.as_str() {
        _ if cfg.debug => "debug",
        "fatal" | "panic" => "error",
        l => l,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},redb=warn")));
    // Behind a reload handle: `SIGHUP` changes the level (`crate::reload`).
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Plain text unless on a terminal: the journal (berthd.service)
        // and log files get no colour codes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    if tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init()
        .is_ok()
    {
        crate::reload::set_log_handle(handle);
    }
}

/// Writes the pid file under an exclusive lock held for the daemon's life:
/// a second daemon is refused while the first lives, and a stale file left
/// by a killed daemon is simply taken over.
fn write_pidfile(path: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let pid = std::fs::read_to_string(path).unwrap_or_default();
        bail!(
            "pid file found, ensure berthd is not running or delete {} (pid {})",
            path.display(),
            pid.trim()
        );
    }
    f.set_len(0)?;
    // Not synced: readers see the page cache, and after a host crash the
    // PID in it would be stale whatever the disk held (the lock is what
    // refuses a second daemon). An fsync here cost a journal commit on
    // every start, before `/_ping` is answered.
    writeln!(f, "{}", std::process::id())?;
    Ok(f)
}

/// Start-up stage timers: `BERTH_LOG=debug` (or `--log-level debug`)
/// prints how long each stage took, in milliseconds since `run` began.
struct Stages(std::time::Instant);

impl Stages {
    fn mark(&self, stage: &str) {
        tracing::debug!(
            stage,
            ms = format!("{:.1}", self.0.elapsed().as_secs_f64() * 1e3),
            "start-up"
        );
    }
}

/// What `run` hands back after a clean stop: the store, closed by `main`
/// once the runtime has shut down (no task can write any more).
pub struct Stopped(std::sync::Arc<crate::engine::store::Store>);

impl Stopped {
    /// Closes the store (see `Store::close`): the next start opens a clean
    /// file without redb's repair and its disk flushes.
    pub fn close(self) {
        self.0.close();
    }
}

pub async fn run(cfg: DaemonConfig) -> anyhow::Result<Stopped> {
    let stages = Stages(std::time::Instant::now());
    let hup = crate::reload::hangups();
    // Bind first: a second daemon on a live socket must refuse before it
    // touches any state.
    let mut listeners = Vec::new();
    for h in &cfg.hosts {
        listeners.extend(Listener::bind(h, &cfg).await?);
    }
    stages.mark("listeners bound");
    let _pidfile = write_pidfile(&cfg.pidfile).context("writing pid file")?;
    let engine = match Engine::open(cfg.clone()) {
        Ok(e) => e,
        Err(e) => {
            let _ = std::fs::remove_file(&cfg.pidfile);
            return Err(anyhow::anyhow!(e));
        }
    };
    stages.mark("store and services open");
    match hup {
        Ok(hup) => crate::reload::watch(engine.clone(), hup),
        Err(e) => tracing::error!("cannot install the SIGHUP handler: {e}"),
    }
    let metrics = match cfg.metrics_addr {
        None => None,
        Some(a) => match server::metrics::bind(a).await {
            Ok(l) => Some(l),
            Err(e) => {
                let _ = std::fs::remove_file(&cfg.pidfile);
                bail!("metrics-addr {a}: {e}");
            }
        },
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    if let Some(l) = metrics {
        server::metrics::serve(engine.clone(), l, stop_rx.clone());
    }
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
        crate::activation::notify_stopping();
        let _ = stop_tx.send(true);
    });

    // The API is served from here on; every request but `/_ping` waits
    // for `ready` (the networks, the reconciliation with the host, plugins
    // and live restore). With authorization plugins nothing is served
    // before they are validated (dockerd's order): the server starts after.
    let (ready_tx, ready_rx) = watch::channel(false);
    let early = cfg.authorization_plugins.is_empty();
    let init = {
        let engine = engine.clone();
        let cfg = cfg.clone();
        tokio::spawn(async move {
            let r = start_up(&engine, &cfg, &stages).await;
            if r.is_ok() {
                let _ = ready_tx.send(true);
                crate::activation::notify_ready();
                stages.mark("ready");
                tracing::info!(
                    version = crate::engine::VERSION,
                    data_root = %cfg.data_root.display(),
                    exec_root = %cfg.exec_root.display(),
                    "berthd started"
                );
                // What the start-up alone needed goes back to the system.
                tokio::task::spawn_blocking(crate::memtrim::after_start_up);
                tokio::spawn(crate::memtrim::after_bursts());
            }
            r
        })
    };
    let failed = |e: anyhow::Error| {
        let _ = std::fs::remove_file(&cfg.pidfile);
        Err(e)
    };
    let joined = |r: Result<anyhow::Result<()>, tokio::task::JoinError>| {
        r.unwrap_or_else(|e| Err(anyhow::anyhow!("start-up: {e}")))
    };
    if early {
        let serve = server::serve(
            engine.clone(),
            listeners,
            stop_rx,
            ready_rx,
            Duration::from_millis(800),
        );
        tokio::pin!(serve);
        tokio::select! {
            r = init => {
                if let Err(e) = joined(r) {
                    return failed(e);
                }
                serve.await;
            }
            // Stopped while starting: as a daemon killed then, which the
            // next start reconciles.
            _ = &mut serve => {}
        }
    } else {
        if let Err(e) = joined(init.await) {
            return failed(e);
        }
        server::serve(
            engine.clone(),
            listeners,
            stop_rx,
            ready_rx,
            Duration::from_millis(800),
        )
        .await;
    }
    let _ = std::fs::remove_file(&cfg.pidfile);
    tracing::info!("berthd stopped");
    Ok(Stopped(engine.store.clone()))
}

/// What must be done before any request but `/_ping` is answered: the
/// networks (bridges, firewall), the reconciliation with the host, plugins,
/// live restore, and the authorization plugins' presence.
async fn start_up(engine: &Engine, cfg: &DaemonConfig, stages: &Stages) -> anyhow::Result<()> {
    if let Err(e) = engine.networks.init_networks().await {
        bail!("setting up networks: {e}");
    }
    stages.mark("networks");
    let out = engine.containers.reconcile().await;
    tracing::info!(
        adopted = out.adopted,
        exits_recorded = out.exits_recorded,
        stopped_unacknowledged = out.stopped_unacknowledged,
        orphans_removed = out.orphans_removed,
        released = out.released,
        "reconciled with the host"
    );
    stages.mark("reconciled");
    // Plugins first: containers may use their volumes.
    let plugins = engine.plugin_manager.clone();
    let _ = tokio::task::spawn_blocking(move || plugins.restore(Duration::from_secs(10))).await;
    stages.mark("plugins restored");
    engine.containers.restore_containers().await;
    stages.mark("containers restored");
    // As dockerd: every configured authorization plugin must be there (and
    // answer `Plugin.Activate` with `authz`) before the API is served.
    for name in &cfg.authorization_plugins {
        if let Err(e) = engine.plugins.get(name, crate::engine::plugins::AUTHZ) {
            bail!("failed to validate authorization plugin: {e}");
        }
    }
    Ok(())
}
