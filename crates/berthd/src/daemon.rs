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
    let level = match cfg.log_level.as_str() {
        "fatal" | "panic" => "error",
        l => l,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},redb=warn")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
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
    writeln!(f, "{}", std::process::id())?;
    f.sync_all()?;
    Ok(f)
}

pub async fn run(cfg: DaemonConfig) -> anyhow::Result<()> {
    // Bind first: a second daemon on a live socket must refuse before it
    // touches any state.
    let mut listeners = Vec::new();
    for h in &cfg.hosts {
        listeners.push(Listener::bind(h, &cfg).await?);
    }
    let _pidfile = write_pidfile(&cfg.pidfile).context("writing pid file")?;
    let engine = match Engine::open(cfg.clone()) {
        Ok(e) => e,
        Err(e) => {
            let _ = std::fs::remove_file(&cfg.pidfile);
            return Err(anyhow::anyhow!(e));
        }
    };
    if let Err(e) = engine.networks.init_networks().await {
        let _ = std::fs::remove_file(&cfg.pidfile);
        return Err(anyhow::anyhow!("setting up networks: {e}"));
    }
    let out = engine.containers.reconcile().await;
    tracing::info!(
        adopted = out.adopted,
        exits_recorded = out.exits_recorded,
        stopped_unacknowledged = out.stopped_unacknowledged,
        orphans_removed = out.orphans_removed,
        released = out.released,
        "reconciled with the host"
    );
    // Plugins first: containers may use their volumes.
    let plugins = engine.plugin_manager.clone();
    let _ = tokio::task::spawn_blocking(move || plugins.restore(Duration::from_secs(10))).await;
    engine.containers.restore_containers().await;
    // As dockerd: every configured authorization plugin must be there (and
    // answer `Plugin.Activate` with `authz`) before the API is served.
    for name in &cfg.authorization_plugins {
        if let Err(e) = engine.plugins.get(name, crate::engine::plugins::AUTHZ) {
            let _ = std::fs::remove_file(&cfg.pidfile);
            return Err(anyhow::anyhow!(
                "failed to validate authorization plugin: {e}"
            ));
        }
    }
    tracing::info!(
        version = crate::engine::VERSION,
        data_root = %cfg.data_root.display(),
        exec_root = %cfg.exec_root.display(),
        "berthd started"
    );

    let (stop_tx, stop_rx) = watch::channel(false);
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
        let _ = stop_tx.send(true);
    });

    server::serve(
        engine.clone(),
        listeners,
        stop_rx,
        Duration::from_millis(800),
    )
    .await;
    let _ = std::fs::remove_file(&cfg.pidfile);
    tracing::info!("berthd stopped");
    Ok(())
}
