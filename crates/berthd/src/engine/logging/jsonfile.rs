//! The `json-file` driver. The shim writes the file (`berth-shim`'s
//! logger: one JSON object per line, rotated at `max-size` into `.1` …
//! `.N`); this side checks the options, tells the shim where and how to
//! write, and reads the file back (rotated files oldest first, then the
//! live one; with `Follow`, until the container stops and the file is
//! drained).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::mpsc;

use super::{
    CapabilitiesResponse, Follow, Info, LogDriver, LogEntry, ReadConfig, ShimSink, JSON_FILE,
};
use crate::engine::{EngineError, Result};

pub struct JsonFile;

/// Log options the json-file driver takes (dockerd refuses others).
const OPTS: &[&str] = &[
    "max-file",
    "max-size",
    "compress",
    "labels",
    "labels-regex",
    "env",
    "env-regex",
    "tag",
];

/// `10m`, `1g`, `512k`, plain bytes (Docker's `units.RAMInBytes`); the
/// log driver's `max-size`, which must not be negative.
pub fn parse_size(s: &str) -> Option<u64> {
    // Surrounding blanks were always forgiven here.
    berth_api::units::ram_in_bytes(s.trim())
        .ok()
        .and_then(|n| u64::try_from(n).ok())
}

/// `max-size` and `max-file`, when given, must make sense.
pub fn check_rotation(opts: &HashMap<String, String>) -> Result<()> {
    if let Some(s) = opts.get("max-size") {
        parse_size(s).ok_or_else(|| EngineError::invalid(format!("invalid max-size: {s}")))?;
    }
    if let Some(s) = opts.get("max-file") {
        s.parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| EngineError::invalid(format!("invalid max-file: {s}")))?;
    }
    Ok(())
}

/// The rotation the options ask for (no path).
pub fn rotation(opts: &HashMap<String, String>) -> ShimSink {
    ShimSink {
        path: String::new(),
        fifo: String::new(),
        max_size: opts
            .get("max-size")
            .and_then(|s| parse_size(s))
            .unwrap_or(0),
        max_file: opts
            .get("max-file")
            .and_then(|s| s.parse().ok())
            .unwrap_or(1),
    }
}

impl LogDriver for JsonFile {
    fn name(&self) -> &str {
        JSON_FILE
    }

    fn capabilities(&self) -> CapabilitiesResponse {
        CapabilitiesResponse {
            cap: super::Capabilities { read_logs: true },
        }
    }

    fn validate_options(&self, opts: &HashMap<String, String>) -> Result<()> {
        for k in opts.keys() {
            if !OPTS.contains(&k.as_str()) {
                return Err(EngineError::invalid(format!(
                    "unknown log opt '{k}' for json-file log driver"
                )));
            }
        }
        check_rotation(opts)
    }

    fn shim_sink(&self, info: &Info) -> ShimSink {
        ShimSink {
            path: info.log_path.clone(),
            ..rotation(&info.config)
        }
    }

    fn read_logs(
        &self,
        info: &Info,
        config: ReadConfig,
        follow: Follow,
    ) -> Result<mpsc::Receiver<LogEntry>> {
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(read(PathBuf::from(&info.log_path), config, follow, tx));
        Ok(rx)
    }
}

/// One line of the file, as the shim writes it.
#[derive(Deserialize)]
struct Line {
    log: String,
    stream: String,
    time: String,
}

/// The entry of one line, or None when it is filtered out.
fn entry(c: &ReadConfig, raw: &str) -> Option<LogEntry> {
    let l: Line = serde_json::from_str(raw).ok()?;
    let wanted = match l.stream.as_str() {
        "stdout" => c.stdout,
        "stderr" => c.stderr,
        _ => false,
    };
    if !wanted {
        return None;
    }
    if c.since.is_some() || c.until.is_some() {
        let t = chrono::DateTime::parse_from_rfc3339(&l.time)
            .ok()?
            .timestamp_nanos_opt()?;
        if c.since.is_some_and(|s| t < s) || c.until.is_some_and(|u| t > u) {
            return None;
        }
    }
    Some(LogEntry {
        source: l.stream,
        time: l.time,
        line: l.log,
    })
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

/// Reads the next whole line into `buf` and gives its length; None at the
/// end, or at a line the shim is still writing (it is read next time).
fn next_line(rd: &mut impl BufRead, buf: &mut String) -> Option<usize> {
    buf.clear();
    match rd.read_line(buf) {
        Ok(n) if n > 0 && buf.ends_with('\n') => Some(n),
        _ => None,
    }
}

async fn read(base: PathBuf, c: ReadConfig, follow: Follow, tx: mpsc::Sender<LogEntry>) {
    let Follow {
        mut producer,
        mut shutdown,
    } = follow;
    // Past lines.
    let files = log_files(&base);
    let mut entries: Vec<LogEntry> = Vec::new();
    let mut pos = 0u64;
    let mut ino = 0u64;
    for (i, f) in files.iter().enumerate() {
        let Ok(file) = std::fs::File::open(f) else {
            continue;
        };
        let live = i == files.len() - 1;
        if live {
            if let Ok(m) = file.metadata() {
                ino = m.ino();
            }
        }
        let mut rd = BufReader::new(file);
        let mut buf = String::new();
        while let Some(n) = next_line(&mut rd, &mut buf) {
            if live {
                pos += n as u64;
            }
            entries.extend(entry(&c, buf.trim_end()));
        }
    }
    let start = match c.tail {
        Some(n) => entries.len().saturating_sub(n),
        None => 0,
    };
    for e in entries.into_iter().skip(start) {
        if tx.send(e).await.is_err() {
            return;
        }
    }
    if !c.follow {
        return;
    }
    // Follow: poll the live file until the container stops and the file
    // is drained.
    let mut stopping = producer.gone();
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
                while let Some(n) = next_line(&mut rd, &mut buf) {
                    pos += n as u64;
                    got = true;
                    if let Some(e) = entry(&c, buf.trim_end()) {
                        if tx.send(e).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
        if stopping && !got {
            return;
        }
        if c.until
            .is_some_and(|u| u <= crate::engine::events::now_nanos())
        {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = producer.changed() => {}
            _ = tx.closed() => return,
            _ = shutdown.changed() => return,
        }
        if producer.gone() {
            // One more pass picks up the last lines.
            stopping = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::Pin;

    struct Gone;
    impl super::super::Producer for Gone {
        fn gone(&self) -> bool {
            true
        }
        fn changed(&mut self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
            Box::pin(std::future::ready(()))
        }
    }

    fn opts(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn sizes_parse_like_docker() {
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("1k"), Some(1024));
        assert_eq!(parse_size("100"), Some(100));
        assert!(parse_size("x").is_none());
    }

    #[test]
    fn options_are_checked_and_become_the_shims_rotation() {
        let d = JsonFile;
        assert!(d
            .validate_options(&opts(&[("max-size", "10m"), ("max-file", "3")]))
            .is_ok());
        let e = |o: &[(&str, &str)]| d.validate_options(&opts(o)).unwrap_err().to_string();
        assert_eq!(
            e(&[("bogus", "1")]),
            "unknown log opt 'bogus' for json-file log driver"
        );
        assert_eq!(e(&[("max-size", "big")]), "invalid max-size: big");
        assert_eq!(e(&[("max-file", "0")]), "invalid max-file: 0");
        let info = Info {
            log_path: "/d/c-json.log".into(),
            config: opts(&[("max-size", "1k"), ("max-file", "2")]),
            ..Default::default()
        };
        assert_eq!(
            d.shim_sink(&info),
            ShimSink {
                path: "/d/c-json.log".into(),
                max_size: 1024,
                max_file: 2,
                fifo: String::new(),
            }
        );
        assert_eq!(
            d.shim_sink(&Info::default()),
            ShimSink {
                path: String::new(),
                max_size: 0,
                max_file: 1,
                fifo: String::new(),
            }
        );
        assert!(d.capabilities().cap.read_logs);
    }

    #[tokio::test]
    async fn reads_rotated_files_in_order_with_streams_and_tail() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("c-json.log");
        let line = |log: &str, stream: &str, time: &str| {
            format!(
                "{}\n",
                serde_json::json!({"log": log, "stream": stream, "time": time})
            )
        };
        std::fs::write(
            base.with_file_name("c-json.log.1"),
            line("one\n", "stdout", "2024-01-01T00:00:01Z"),
        )
        .unwrap();
        std::fs::write(
            &base,
            [
                line("two\n", "stderr", "2024-01-01T00:00:02Z"),
                line("three\n", "stdout", "2024-01-01T00:00:03Z"),
                // Half written: not yet a line.
                "{\"log\":\"fo".to_string(),
            ]
            .concat(),
        )
        .unwrap();
        let info = Info {
            log_path: base.display().to_string(),
            ..Default::default()
        };
        let read = |c: ReadConfig| {
            let (_tx, shutdown) = tokio::sync::watch::channel(false);
            let follow = Follow {
                producer: Box::new(Gone),
                shutdown,
            };
            let mut rx = JsonFile.read_logs(&info, c, follow).unwrap();
            async move {
                let mut out = Vec::new();
                while let Some(e) = rx.recv().await {
                    out.push(e.line);
                }
                out
            }
        };
        let all = ReadConfig {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        assert_eq!(read(all.clone()).await, ["one\n", "two\n", "three\n"]);
        // The tail counts only the chosen stream's lines.
        let c = ReadConfig {
            stderr: false,
            tail: Some(2),
            ..all.clone()
        };
        assert_eq!(read(c).await, ["one\n", "three\n"]);
        let c = ReadConfig {
            since: Some(2_000_000_000 + 1_704_067_200_000_000_000),
            ..all.clone()
        };
        assert_eq!(read(c).await, ["two\n", "three\n"]);
        // Following a container that is gone ends once the file is read.
        let c = ReadConfig {
            follow: true,
            ..all
        };
        assert_eq!(read(c).await.len(), 3);
    }
}
