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

/// Refuses to start over a pidfile whose process is alive.
fn write_pidfile(path: &Path) -> anyhow::Result<()> {
    if let Ok(s) = std::fs::read_to_string(path) {
        if let Ok(pid) = s.trim().parse::<i32>() {
            let alive = pid > 0
                && pid != std::process::id() as i32
                && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
                && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map(|c| c.trim() == "berthd")
                    .unwrap_or(false);
            if alive {
                bail!(
                    "pid file found, ensure berthd is not running or delete {} (pid {pid})",
                    path.display()
                );
            }
        }
    }
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    let tmp = path.with_extension("pid.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    writeln!(f, "{}", std::process::id())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

pub async fn run(cfg: DaemonConfig) -> anyhow::Result<()> {
    // Bind first: a second daemon on a live socket must refuse before it
    // touches any state.
    let mut listeners = Vec::new();
    for h in &cfg.hosts {
        listeners.push(Listener::bind(h, &cfg).await?);
    }
    write_pidfile(&cfg.pidfile).context("writing pid file")?;
    let engine = match Engine::open(cfg.clone()) {
        Ok(e) => e,
        Err(e) => {
            let _ = std::fs::remove_file(&cfg.pidfile);
            return Err(anyhow::anyhow!(e));
        }
    };
    engine.restore_containers().await;
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
