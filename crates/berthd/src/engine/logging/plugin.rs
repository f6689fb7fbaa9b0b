//! A logging plugin as a [`LogDriver`] (Docker's `LogDriver.*` protocol).
//!
//! At each start the daemon makes a FIFO, `<exec-root>/logging/<container
//! id>-<random>`, hands it to the plugin with `StartLogging {File, Info}`,
//! and gives it to the shim, which writes every line into it as framed
//! `LogEntry` messages (`berth_api::logentry`) and closes it when the
//! container has exited and its output is drained. The daemon then calls
//! `StopLogging {File}` and removes the FIFO (`Engine::stop_logging`,
//! called from the teardown of every start and exit, also after a daemon
//! restart: the shim kept writing meanwhile).
//!
//! `docker logs` is `ReadLogs` when the plugin's `Capabilities` say
//! `ReadLogs`; otherwise, as Docker 20.10's "dual logging", the shim also
//! keeps a local json-file cache that `docker logs` reads (options
//! `cache-disabled`, `cache-max-size` (20m), `cache-max-file` (5)).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

use super::{
    cannot_read, jsonfile, CapabilitiesResponse, Follow, Info, LogDriver, LogEntry, ReadConfig,
    ShimSink,
};
use crate::engine::plugins::{Plugin, Plugins, LOG};
use crate::engine::{EngineError, Result};

/// Where a managed plugin finds its FIFOs, as Docker puts them.
const LOGGING_IN_PLUGIN: &str = "/run/docker/logging";

/// Where a start's FIFO is made, and the path its plugin is given: for a
/// legacy plugin (on the host) both are `<exec-root>/logging/<name>`; for a
/// managed one the FIFO is made in the plugin's root at
/// `/run/docker/logging/<name>` (as Docker does), and a link of that name
/// in the daemon's directory lets `stop_logging` find it.
struct FifoPlace {
    host: PathBuf,
    seen: String,
    managed: bool,
}

impl FifoPlace {
    fn new(p: &Plugin, dir: &Path, name: &str) -> Result<Self> {
        if p.managed_id().is_none() {
            let host = dir.join(name);
            return Ok(Self {
                seen: host.display().to_string(),
                host,
                managed: false,
            });
        }
        let seen = format!("{LOGGING_IN_PLUGIN}/{name}");
        let host = p.scoped_path(&seen);
        if let Some(parent) = host.parent() {
            std::fs::create_dir_all(parent)?;
        }
        Ok(Self {
            host,
            seen,
            managed: true,
        })
    }

    fn link(&self, dir: &Path, name: &str) -> Result<()> {
        if self.managed {
            std::os::unix::fs::symlink(&self.host, dir.join(name))
                .map_err(|e| EngineError::internal(format!("linking the log FIFO: {e}")))?;
        }
        Ok(())
    }

    fn remove(&self, dir: &Path, name: &str) {
        let _ = std::fs::remove_file(&self.host);
        if self.managed {
            let _ = std::fs::remove_file(dir.join(name));
        }
    }
}

/// `LogEntry` of Docker's `api/types/plugins/logdriver` (entry.proto).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Entry {
    #[prost(string, tag = "1")]
    pub source: String,
    #[prost(int64, tag = "2")]
    pub time_nano: i64,
    #[prost(bytes = "vec", tag = "3")]
    pub line: Vec<u8>,
    #[prost(bool, tag = "4")]
    pub partial: bool,
    #[prost(message, optional, tag = "5")]
    pub partial_log_metadata: Option<PartialMeta>,
}

/// `PartialLogEntryMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PartialMeta {
    #[prost(bool, tag = "1")]
    pub last: bool,
    #[prost(string, tag = "2")]
    pub id: String,
    #[prost(int32, tag = "3")]
    pub ordinal: i32,
}

/// How long a follow waits for more from the plugin once the container
/// has stopped.
const FOLLOW_GRACE: Duration = Duration::from_secs(3);

/// Frames larger than this are refused (Docker's decoder allows 1 MiB
/// entries; a line is at most 16 KiB).
const MAX_FRAME: usize = 2 * 1024 * 1024;

/// Reads one length-prefixed message; `Ok(None)` at a clean end.
pub fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>) -> std::io::Result<Option<Entry>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..])? {
            0 if got == 0 => return Ok(None),
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => got += n,
        }
    }
    let n = u32::from_be_bytes(len) as usize;
    if n > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("log entry of {n} bytes"),
        ));
    }
    buf.resize(n, 0);
    r.read_exact(buf)?;
    <Entry as prost::Message>::decode(&buf[..])
        .map(Some)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The time of an entry as `--timestamps` shows it.
fn rfc3339(nanos: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(nanos)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// A plugin entry as the daemon's reader sees it: a newline ends every
/// line but the pieces of a long one before its last.
pub(super) fn to_entry(e: Entry) -> LogEntry {
    let mut line = String::from_utf8_lossy(&e.line).into_owned();
    let ends = !e.partial || e.partial_log_metadata.as_ref().is_none_or(|m| m.last);
    if ends {
        line.push('\n');
    }
    LogEntry {
        source: e.source,
        time: rfc3339(e.time_nano),
        line,
        attrs: String::new(),
    }
}

/// The options of the local cache ("dual logging"), Docker's names.
const CACHE_DISABLED: &str = "cache-disabled";
const CACHE_MAX_SIZE: &str = "cache-max-size";
const CACHE_MAX_FILE: &str = "cache-max-file";
const CACHE_COMPRESS: &str = "cache-compress";

pub(super) fn cache_options(opts: &HashMap<String, String>) -> Result<()> {
    for k in [CACHE_DISABLED, CACHE_COMPRESS] {
        if let Some(v) = opts.get(k) {
            parse_bool(v).ok_or_else(|| {
                EngineError::invalid(format!("invalid value for option {k}: {v}"))
            })?;
        }
    }
    if let Some(v) = opts.get(CACHE_MAX_SIZE) {
        jsonfile::parse_size(v)
            .ok_or_else(|| EngineError::invalid(format!("invalid max-size: {v}")))?;
    }
    if let Some(v) = opts.get(CACHE_MAX_FILE) {
        v.parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| EngineError::invalid(format!("invalid max-file: {v}")))?;
    }
    Ok(())
}

/// Go's `strconv.ParseBool`.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The cache the shim writes for a plugin that cannot read back.
pub(super) fn cache_sink(info: &Info) -> ShimSink {
    let o = &info.config;
    if o.get(CACHE_DISABLED).and_then(|v| parse_bool(v)) == Some(true) {
        return ShimSink::default();
    }
    let max_file = o
        .get(CACHE_MAX_FILE)
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    // Docker's cache compresses its rotated files unless told not to.
    let compress = o.get(CACHE_COMPRESS).and_then(|v| parse_bool(v)) != Some(false);
    ShimSink {
        path: info.log_path.clone(),
        max_size: o
            .get(CACHE_MAX_SIZE)
            .and_then(|v| jsonfile::parse_size(v))
            .unwrap_or(20 * 1024 * 1024),
        max_file,
        compress: compress && max_file > 1,
        ..Default::default()
    }
}

/// The answer of `StartLogging` and `StopLogging`: an `Err` may come with
/// a 200 too (Docker's proxy reads it either way).
#[derive(Debug, Default, serde::Deserialize)]
struct ErrAnswer {
    #[serde(rename = "Err", default)]
    err: String,
}

impl PluginDriver {
    /// Calls `method`; a failure, or an `Err` in the answer, is an error.
    fn call_checked<B: Serialize>(&self, p: &Plugin, method: &str, body: &B) -> Result<()> {
        let a: ErrAnswer = p.call(method, body)?;
        if a.err.is_empty() {
            Ok(())
        } else {
            Err(EngineError::internal(format!("{method}: {}", a.err)))
        }
    }
}

/// The driver of a plugin named in a container's `LogConfig`.
pub struct PluginDriver {
    name: String,
    plugins: Arc<Plugins>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ReadLogsRequest<'a> {
    info: &'a Info,
    config: WireConfig,
}

/// `ReadLogs`' `Config` as Docker sends it: Go's `logger.ReadConfig`, its
/// times as JSON `time.Time` (the zero time when unset).
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
struct WireConfig {
    since: String,
    until: String,
    tail: i64,
    follow: bool,
}

impl WireConfig {
    fn of(c: &ReadConfig) -> Self {
        let time = |t: Option<i64>| t.map_or_else(|| "0001-01-01T00:00:00Z".to_string(), rfc3339);
        Self {
            since: time(c.since),
            until: time(c.until),
            tail: c.tail.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX)),
            follow: c.follow,
        }
    }
}

impl PluginDriver {
    pub fn new(name: &str, plugins: Arc<Plugins>) -> Self {
        Self {
            name: name.to_string(),
            plugins,
        }
    }

    /// The plugin, or Docker's error for a missing one.
    pub fn plugin(&self) -> Result<Arc<Plugin>> {
        self.plugins.get(&self.name, LOG).map_err(|e| {
            EngineError::invalid(format!(
                "error looking up logging plugin {}: {e}",
                self.name
            ))
        })
    }

    fn caps_of(&self, p: &Plugin) -> CapabilitiesResponse {
        self.try_caps(p).unwrap_or_default()
    }

    /// `Capabilities`; as Docker, a plugin that cannot say is one that
    /// cannot read, but one that cannot be reached is an error.
    fn try_caps(&self, p: &Plugin) -> Result<CapabilitiesResponse> {
        match p
            .client()
            .call::<_, CapabilitiesResponse>("LogDriver.Capabilities", &serde_json::json!({}))
        {
            Ok(c) => Ok(c),
            Err(e) if e.unreachable() => Err(p.error(e)),
            Err(_) => Ok(CapabilitiesResponse::default()),
        }
    }

    fn read_from_plugin(
        &self,
        p: &Plugin,
        info: &Info,
        config: ReadConfig,
        follow: Follow,
    ) -> Result<mpsc::Receiver<LogEntry>> {
        let mut config = config;
        // As dockerd: a container that no longer runs is not followed.
        config.follow = config.follow && !follow.producer.gone();
        let body = serde_json::to_vec(&ReadLogsRequest {
            info,
            config: WireConfig::of(&config),
        })?;
        let mut stream = p
            .client()
            .stream("LogDriver.ReadLogs", &body)
            .map_err(|e| p.error(e))?;
        let (raw_tx, mut raw_rx) = mpsc::channel::<LogEntry>(256);
        let name = self.name.clone();
        // The answer is read on a thread of its own: the client is blocking.
        std::thread::Builder::new()
            .name("berthd-readlogs".into())
            .spawn(move || {
                let mut buf = Vec::new();
                loop {
                    match read_frame(&mut stream, &mut buf) {
                        Ok(Some(e)) => {
                            if raw_tx.blocking_send(to_entry(e)).is_err() {
                                return;
                            }
                        }
                        Ok(None) => return,
                        Err(e) => {
                            tracing::warn!(plugin = %name, error = %e, "ReadLogs");
                            return;
                        }
                    }
                }
            })
            .map_err(|e| EngineError::internal(format!("ReadLogs: {e}")))?;
        let (tx, rx) = mpsc::channel(256);
        let (stdout, stderr, following) = (config.stdout, config.stderr, config.follow);
        let Follow {
            mut producer,
            mut shutdown,
        } = follow;
        tokio::spawn(async move {
            let wanted = |e: &LogEntry| match e.source.as_str() {
                "stdout" => stdout,
                "stderr" => stderr,
                _ => false,
            };
            // A follow ends with the plugin's stream, or once the
            // container is gone and the plugin has sent nothing for a
            // while (it may never end its stream).
            let mut gone = following && producer.gone();
            loop {
                let grace = async {
                    if gone {
                        tokio::time::sleep(FOLLOW_GRACE).await
                    } else {
                        std::future::pending().await
                    }
                };
                tokio::select! {
                    e = raw_rx.recv() => {
                        let Some(e) = e else { return };
                        if wanted(&e) && tx.send(e).await.is_err() {
                            return;
                        }
                    }
                    _ = producer.changed(), if following && !gone => {
                        gone = producer.gone();
                    }
                    _ = grace => return,
                    _ = shutdown.changed() => return,
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(rx)
    }
}

impl LogDriver for PluginDriver {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> CapabilitiesResponse {
        match self.plugin() {
            Ok(p) => self.caps_of(&p),
            Err(_) => CapabilitiesResponse::default(),
        }
    }

    fn validate_options(&self, opts: &HashMap<String, String>) -> Result<()> {
        self.plugin()?;
        cache_options(opts)
    }

    fn shim_sink(&self, info: &Info) -> ShimSink {
        if self.capabilities().cap.read_logs {
            ShimSink::default()
        } else {
            cache_sink(info)
        }
    }

    fn log_path(&self, _: &Info) -> String {
        // Docker shows none for a plugin (its cache is its own business).
        String::new()
    }

    fn start_logging(&self, info: &Info, fifo_dir: &Path) -> Result<ShimSink> {
        let initialize = |e: EngineError| {
            EngineError::internal(format!("failed to initialize logging driver: {e}"))
        };
        let p = self.plugin().map_err(initialize)?;
        let caps = self.try_caps(&p).map_err(initialize)?;
        std::fs::create_dir_all(fifo_dir)?;
        let name = format!(
            "{}-{}",
            info.container_id,
            crate::engine::ids::random_hex(8)
        );
        let fifo = FifoPlace::new(&p, fifo_dir, &name)?;
        nix::unistd::mkfifo(&fifo.host, nix::sys::stat::Mode::from_bits_truncate(0o700))
            .map_err(|e| EngineError::internal(format!("making the log FIFO: {e}")))?;
        if let Err(e) = fifo.link(fifo_dir, &name) {
            fifo.remove(fifo_dir, &name);
            return Err(e);
        }
        let started = self.call_checked(
            &p,
            "LogDriver.StartLogging",
            &super::StartLoggingRequest {
                file: fifo.seen.clone(),
                info: info.clone(),
            },
        );
        if let Err(e) = started {
            fifo.remove(fifo_dir, &name);
            return Err(initialize(EngineError::internal(format!(
                "error creating logger: {e}"
            ))));
        }
        let mut sink = if caps.cap.read_logs {
            ShimSink::default()
        } else {
            cache_sink(info)
        };
        sink.fifo = fifo.host.display().to_string();
        Ok(sink)
    }

    fn stop_logging(&self, fifo: &Path) {
        // A managed plugin's FIFO is in its root, linked from the daemon's
        // directory; the plugin knows it by its path inside.
        let target = std::fs::read_link(fifo).ok();
        let file = match (&target, fifo.file_name()) {
            (Some(_), Some(name)) => Path::new(LOGGING_IN_PLUGIN)
                .join(name)
                .display()
                .to_string(),
            _ => fifo.display().to_string(),
        };
        match self.plugin() {
            Ok(p) => {
                let r = self.call_checked(
                    &p,
                    "LogDriver.StopLogging",
                    &super::StopLoggingRequest { file },
                );
                if let Err(e) = r {
                    tracing::warn!(plugin = %self.name, error = %e, "StopLogging");
                }
            }
            Err(e) => tracing::warn!(plugin = %self.name, error = %e, "StopLogging"),
        }
        if let Some(t) = target {
            let _ = std::fs::remove_file(t);
        }
        let _ = std::fs::remove_file(fifo);
    }

    fn read_logs(
        &self,
        info: &Info,
        config: ReadConfig,
        follow: Follow,
    ) -> Result<mpsc::Receiver<LogEntry>> {
        let cache = PathBuf::from(&info.log_path);
        // Whether the plugin reads, or why it cannot be asked.
        let reads = self.plugin().and_then(|p| {
            let caps = self.try_caps(&p)?;
            Ok((p, caps.cap.read_logs))
        });
        match reads {
            Ok((p, true)) => self.read_from_plugin(&p, info, config, follow),
            // Dual logging: the local cache, if one was kept (also when
            // the plugin is gone).
            _ if cache.exists() => jsonfile::JsonFile.read_logs(info, config, follow),
            Ok((_, false)) => Err(cannot_read()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::logentry::{encode_frame, Partial};

    #[test]
    fn the_shims_frames_decode_as_docker_entries() {
        let mut out = Vec::new();
        encode_frame(
            &mut out,
            "stdout",
            1_700_000_000_123_456_789,
            b"hello",
            None,
        );
        let meta = Partial {
            last: true,
            id: "abc",
            ordinal: 3,
        };
        encode_frame(&mut out, "stderr", 5, b"tail", Some(&meta));
        encode_frame(&mut out, "stderr", 6, b"", None);
        let mut r = &out[..];
        let mut buf = Vec::new();
        let a = read_frame(&mut r, &mut buf).unwrap().unwrap();
        assert_eq!(a.source, "stdout");
        assert_eq!(a.time_nano, 1_700_000_000_123_456_789);
        assert_eq!(a.line, b"hello");
        assert!(!a.partial && a.partial_log_metadata.is_none());
        let b = read_frame(&mut r, &mut buf).unwrap().unwrap();
        assert!(b.partial);
        assert_eq!(
            b.partial_log_metadata,
            Some(PartialMeta {
                last: true,
                id: "abc".into(),
                ordinal: 3
            })
        );
        let c = read_frame(&mut r, &mut buf).unwrap().unwrap();
        assert!(c.line.is_empty());
        assert!(read_frame(&mut r, &mut buf).unwrap().is_none());
        // A frame cut short is an error, not an end.
        let mut cut = &out[..6];
        assert!(read_frame(&mut cut, &mut buf).is_err());
    }

    #[test]
    fn pieces_of_a_long_line_get_one_newline() {
        let piece = |last| Entry {
            source: "stdout".into(),
            time_nano: 0,
            line: b"x".to_vec(),
            partial: true,
            partial_log_metadata: Some(PartialMeta {
                last,
                id: "i".into(),
                ordinal: 1,
            }),
        };
        assert_eq!(to_entry(piece(false)).line, "x");
        assert_eq!(to_entry(piece(true)).line, "x\n");
        assert_eq!(to_entry(piece(true)).time, "1970-01-01T00:00:00.000000000Z");
    }

    #[test]
    fn read_config_goes_as_go_times() {
        let w = WireConfig::of(&ReadConfig {
            since: Some(1_500_000_000),
            tail: Some(3),
            ..Default::default()
        });
        assert_eq!(
            serde_json::to_value(&w).unwrap(),
            serde_json::json!({"Since": "1970-01-01T00:00:01.500000000Z",
                "Until": "0001-01-01T00:00:00Z", "Tail": 3, "Follow": false})
        );
    }

    #[test]
    fn the_cache_follows_its_options() {
        let info = |kv: &[(&str, &str)]| Info {
            log_path: "/c/x-json.log".into(),
            config: kv
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        let s = cache_sink(&info(&[]));
        assert_eq!(
            (s.path.as_str(), s.max_size, s.max_file),
            ("/c/x-json.log", 20 << 20, 5)
        );
        assert!(s.compress);
        let s = cache_sink(&info(&[("cache-max-size", "1k"), ("cache-max-file", "2")]));
        assert_eq!((s.max_size, s.max_file), (1000, 2));
        assert!(!cache_sink(&info(&[("cache-compress", "false")])).compress);
        assert!(!cache_sink(&info(&[("cache-max-file", "1")])).compress);
        assert!(cache_sink(&info(&[("cache-disabled", "true")]))
            .path
            .is_empty());
        assert!(cache_options(&info(&[("cache-disabled", "maybe")]).config).is_err());
        assert!(cache_options(&info(&[("cache-max-file", "0")]).config).is_err());
        assert!(cache_options(&info(&[("anything", "goes")]).config).is_ok());
    }
}
