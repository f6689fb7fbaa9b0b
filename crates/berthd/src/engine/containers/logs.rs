//! `GET /containers/{id}/logs`: reads the json-file log the shim writes
//! (rotated files oldest first), filters by stream and time, applies
//! `tail`, and with `follow` keeps reading until the container stops.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_api::stdcopy::{frame, StreamType};
use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::engine::{Engine, EngineError, Result};

#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub stdout: bool,
    pub stderr: bool,
    pub follow: bool,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub timestamps: bool,
    /// `None` = all.
    pub tail: Option<usize>,
}

#[derive(Deserialize)]
struct Line {
    log: String,
    stream: String,
    time: String,
}

struct Ctx {
    opts: LogOptions,
    tty: bool,
}

impl Ctx {
    /// Frames one log line, or None when it is filtered out.
    fn render(&self, raw: &str) -> Option<Bytes> {
        let l: Line = serde_json::from_str(raw).ok()?;
        let stream = match l.stream.as_str() {
            "stdout" if self.opts.stdout => StreamType::Stdout,
            "stderr" if self.opts.stderr => StreamType::Stderr,
            _ => return None,
        };
        if self.opts.since.is_some() || self.opts.until.is_some() {
            let t = chrono::DateTime::parse_from_rfc3339(&l.time)
                .ok()?
                .timestamp_nanos_opt()?;
            if self.opts.since.is_some_and(|s| t < s) || self.opts.until.is_some_and(|u| t > u) {
                return None;
            }
        }
        let mut payload = String::new();
        if self.opts.timestamps {
            payload.push_str(&l.time);
            payload.push(' ');
        }
        payload.push_str(&l.log);
        Some(if self.tty {
            Bytes::from(payload)
        } else {
            frame(stream, payload.as_bytes())
        })
    }
}

/// Rotated files first (`.N` … `.1`), then the live one.
fn log_files(base: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<(u32, PathBuf)> = Vec::new();
    if let (Some(dir), Some(name)) = (base.parent(), base.file_name().and_then(|n| n.to_str())) {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let f = e.file_name().to_string_lossy().to_string();
                if let Some(n) = f
                    .strip_prefix(&format!("{name}."))
                    .and_then(|s| s.parse::<u32>().ok())
                {
                    rotated.push((n, e.path()));
                }
            }
        }
    }
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut v: Vec<PathBuf> = rotated.into_iter().map(|x| x.1).collect();
    v.push(base.to_path_buf());
    v
}

impl Engine {
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
        let c = self.containers.find(key)?;
        let r = c.snapshot();
        if !self.log_enabled(&r) {
            return Err(EngineError::NotImplemented(
                "configured logging driver does not support reading".into(),
            ));
        }
        let tty = r.config.tty.unwrap_or(false);
        let base = self.paths(&r.id).log;
        let (tx, rx) = mpsc::channel(256);
        let ctx = Ctx { opts, tty };
        let me = self.clone();
        tokio::spawn(async move {
            let mut shutdown = me.shutdown_signal();
            // Past lines.
            let files = log_files(&base);
            let mut lines: Vec<String> = Vec::new();
            let mut pos = 0u64;
            let mut ino = 0u64;
            for (i, f) in files.iter().enumerate() {
                let Ok(file) = std::fs::File::open(f) else {
                    continue;
                };
                if i == files.len() - 1 {
                    if let Ok(m) = file.metadata() {
                        ino = m.ino();
                    }
                }
                let mut rd = BufReader::new(file);
                let mut buf = String::new();
                loop {
                    buf.clear();
                    match rd.read_line(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if !buf.ends_with('\n') {
                                break;
                            }
                            if i == files.len() - 1 {
                                pos += n as u64;
                            }
                            lines.push(buf.trim_end().to_string());
                        }
                    }
                }
            }
            let rendered: Vec<Bytes> = lines.iter().filter_map(|l| ctx.render(l)).collect();
            let start = match ctx.opts.tail {
                Some(n) => rendered.len().saturating_sub(n),
                None => 0,
            };
            for b in rendered.into_iter().skip(start) {
                if tx.send(b).await.is_err() {
                    return;
                }
            }
            if !ctx.opts.follow {
                return;
            }
            // Follow: poll the live file until the container stops and the
            // file is drained.
            let mut progress = c.progress.subscribe();
            let mut stopping = !c.status().is_running();
            loop {
                let mut got = false;
                if let Ok(mut f) = std::fs::File::open(&base) {
                    let meta = f.metadata().ok();
                    let (cur_ino, len) = meta.map(|m| (m.ino(), m.len())).unwrap_or((0, 0));
                    if cur_ino != ino || len < pos {
                        // Rotated: start the new file from its beginning.
                        ino = cur_ino;
                        pos = 0;
                    }
                    if len > pos && f.seek(SeekFrom::Start(pos)).is_ok() {
                        let mut rd = BufReader::new(f);
                        let mut buf = String::new();
                        loop {
                            buf.clear();
                            match rd.read_line(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    if !buf.ends_with('\n') {
                                        break;
                                    }
                                    pos += n as u64;
                                    got = true;
                                    if let Some(b) = ctx.render(buf.trim_end()) {
                                        if tx.send(b).await.is_err() {
                                            return;
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                if stopping && !got {
                    return;
                }
                if ctx
                    .opts
                    .until
                    .is_some_and(|u| u <= crate::engine::events::now_nanos())
                {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    _ = progress.changed() => {}
                    _ = tx.closed() => return,
                    _ = shutdown.changed() => return,
                }
                if !c.status().is_running() || progress.borrow().removed {
                    // One more pass picks up the last lines.
                    stopping = true;
                }
            }
        });
        Ok((tty, rx))
    }
}
