//! `GET /containers/{id}/logs`: the container's log as its log driver
//! reads it back (`engine::logging`), framed for the client (multiplexed
//! without a TTY, raw with one), with timestamps when asked. Also the
//! driver's view of a container: its `Info`, and what the shim writes.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::{Container, Progress, Record};
use crate::engine::logging::{self, Follow, Framing, Info, LogDriver, ReadConfig, ShimSink};
use crate::engine::{containers::Containers, EngineError, Result};

#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub stdout: bool,
    pub stderr: bool,
    pub follow: bool,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub timestamps: bool,
    /// `--details`: each line after its extra attributes.
    pub details: bool,
    /// `None` = all.
    pub tail: Option<usize>,
}

/// The container whose log is followed: it writes while it runs.
struct Producer {
    c: Arc<Container>,
    progress: watch::Receiver<Progress>,
}

impl logging::Producer for Producer {
    fn gone(&self) -> bool {
        !self.c.status().is_running() || self.progress.borrow().removed
    }

    fn changed(&mut self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let _ = self.progress.changed().await;
        })
    }
}

impl Containers {
    /// The log driver the container's record names, and Docker's `Info`
    /// of the container for it (`log_path`: its json-file).
    pub(crate) fn log_driver(&self, r: &Record, log_path: &Path) -> (Arc<dyn LogDriver>, Info) {
        let lc = r.host_config.log_config.as_ref();
        let info = Info {
            config: lc.and_then(|l| l.config.clone()).unwrap_or_default(),
            container_id: r.id.clone(),
            container_name: format!("/{}", r.name),
            container_entrypoint: r.path.clone(),
            container_args: r.args.clone(),
            container_image_id: r.image_id.clone(),
            container_image_name: r.config.image.clone().unwrap_or_default(),
            container_created: r.created.clone(),
            container_env: r.config.env.clone().unwrap_or_default(),
            container_labels: r.config.labels.clone().unwrap_or_default(),
            log_path: log_path.display().to_string(),
            daemon_name: "docker".into(),
        };
        let driver = logging::driver_of(lc.and_then(|l| l.typ.as_deref()), &self.plugins);
        (driver, info)
    }

    /// Inspect's `LogPath` (empty when the driver keeps no file).
    pub(crate) fn log_path(&self, r: &Record, log_path: &Path) -> String {
        let (driver, info) = self.log_driver(r, log_path);
        driver.log_path(&info)
    }

    /// `StartLogging`: what the shim writes for the container (for a
    /// logging plugin, a FIFO the plugin now reads).
    pub(crate) fn start_logging(&self, r: &Record, log_path: &Path) -> Result<ShimSink> {
        let (driver, info) = self.log_driver(r, log_path);
        driver.start_logging(&info, &self.log_fifo_dir())
    }

    /// Where logging plugins' FIFOs are made.
    fn log_fifo_dir(&self) -> std::path::PathBuf {
        self.config.exec_root.join("logging")
    }

    /// After a daemon restart, a running container's FIFOs are read
    /// again (the daemon's own forwarding drivers; a plugin still reads).
    pub(crate) fn resume_logging(&self, r: &Record) {
        let fifos = self.log_fifos(r);
        if fifos.is_empty() {
            return;
        }
        let (driver, info) = self.log_driver(r, &self.paths(&r.id).log);
        for f in fifos {
            driver.resume_logging(&info, &f);
        }
    }

    /// The FIFOs the container's starts made for a driver that is not
    /// built in (none for json-file and `none`).
    fn log_fifos(&self, r: &Record) -> Vec<std::path::PathBuf> {
        if logging::is_builtin(log_type(r)) {
            return Vec::new();
        }
        let Ok(dir) = std::fs::read_dir(self.log_fifo_dir()) else {
            return Vec::new();
        };
        let prefix = format!("{}-", r.id);
        dir.flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .collect()
    }

    /// `StopLogging` of every FIFO a start of the container made (after
    /// its exit, a failed start, or a daemon restart), and the FIFOs go.
    pub(crate) fn stop_logging(&self, r: &Record) {
        let fifos = self.log_fifos(r);
        if fifos.is_empty() {
            return;
        }
        let driver = logging::driver_of(log_type(r), &self.plugins);
        // On a thread of its own: a plugin that is gone may take its
        // timeout to say so, and neither an exit nor the restore of the
        // daemon's containers waits for that.
        let stop = move || {
            for f in fifos {
                driver.stop_logging(&f);
            }
        };
        if let Err(e) = std::thread::Builder::new()
            .name("berthd-stoplogging".into())
            .spawn(stop)
        {
            tracing::warn!(id = %r.id, error = %e, "StopLogging");
        }
    }

    /// Returns whether the container has a TTY and a channel of frames.
    pub fn container_logs(
        self: &Arc<Self>,
        key: &str,
        opts: LogOptions,
    ) -> Result<(bool, mpsc::Receiver<Bytes>)> {
        if !opts.stdout && !opts.stderr {
            return Err(EngineError::invalid(
                "Bad parameters: you must choose at least one stream",
            ));
        }
        let c = self.find(key)?;
        let r = c.snapshot();
        let (driver, info) = self.log_driver(&r, &self.paths(&r.id).log);
        let follow = Follow {
            producer: Box::new(Producer {
                progress: c.progress.subscribe(),
                c,
            }),
            shutdown: self.shutdown_signal(),
        };
        let config = ReadConfig {
            since: opts.since,
            until: opts.until,
            tail: opts.tail,
            follow: opts.follow,
            stdout: opts.stdout,
            stderr: opts.stderr,
            details: opts.details,
        };
        let tty = r.config.tty.unwrap_or(false);
        let framing = Framing {
            tty,
            timestamps: opts.timestamps,
            details: opts.details,
        };
        let rx = driver.read_framed(&info, config, follow, framing)?;
        Ok((tty, rx))
    }
}

/// The container's `--log-driver`, if it named one.
fn log_type(r: &Record) -> Option<&str> {
    r.host_config
        .log_config
        .as_ref()
        .and_then(|l| l.typ.as_deref())
}
