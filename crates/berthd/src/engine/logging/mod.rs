//! Log drivers, in the shape of Docker's logging plugin protocol
//! (`POST /LogDriver.<Op>`): `StartLogging {File, Info}`, `StopLogging
//! {File}`, `Capabilities` → `{Cap: {ReadLogs}}`, and `ReadLogs {Info,
//! Config}` → a stream of entries. The built-in drivers are `json-file`
//! and `local` (the shim writes the file, `logfile.rs` reads it back),
//! `none`, and
//! the forwarding drivers `syslog`, `fluentd` and `journald` (the daemon
//! reads the shim's entries from a FIFO, `forward.rs`); a remote plugin
//! is one more implementation of [`LogDriver`].
//!
//! The container side builds the [`Info`] from its record and asks the
//! driver its record names; this module knows nothing of containers.

pub mod fluentd;
pub mod forward;
pub mod journalctl;
pub mod journald;
pub mod jsonfile;
pub mod local;
pub mod logfile;
pub mod plugin;
pub mod syslog;

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use berth_api::stdcopy::{put_frame, StreamType};
use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::engine::plugins::Plugins;
use crate::engine::{EngineError, Result};

pub const JSON_FILE: &str = "json-file";
pub const NONE: &str = "none";

/// What the driver knows of the container it logs for (the protocol's
/// `Info`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Info {
    /// The `--log-opt`s.
    #[serde(rename = "Config")]
    pub config: HashMap<String, String>,
    #[serde(rename = "ContainerID")]
    pub container_id: String,
    #[serde(rename = "ContainerName")]
    pub container_name: String,
    #[serde(rename = "ContainerEntrypoint")]
    pub container_entrypoint: String,
    #[serde(rename = "ContainerArgs")]
    pub container_args: Vec<String>,
    #[serde(rename = "ContainerImageID")]
    pub container_image_id: String,
    #[serde(rename = "ContainerImageName")]
    pub container_image_name: String,
    #[serde(rename = "ContainerCreated")]
    pub container_created: String,
    #[serde(rename = "ContainerEnv")]
    pub container_env: Vec<String>,
    #[serde(rename = "ContainerLabels")]
    pub container_labels: HashMap<String, String>,
    /// Where a file-keeping driver keeps the log.
    #[serde(rename = "LogPath")]
    pub log_path: String,
    #[serde(rename = "DaemonName")]
    pub daemon_name: String,
}

/// `/LogDriver.StartLogging`: `File` is the FIFO the container's output
/// is copied into for a plugin.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StartLoggingRequest {
    pub file: String,
    pub info: Info,
}

/// `/LogDriver.StopLogging`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StopLoggingRequest {
    pub file: String,
}

/// `Cap` of the `Capabilities` answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Capabilities {
    #[serde(rename = "ReadLogs", default)]
    pub read_logs: bool,
}

/// The answer to `/LogDriver.Capabilities`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CapabilitiesResponse {
    #[serde(rename = "Cap", default)]
    pub cap: Capabilities,
}

/// `Config` of `/LogDriver.ReadLogs` (times in Unix nanoseconds).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReadConfig {
    #[serde(rename = "Since", skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    #[serde(rename = "Until", skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    /// The last this many entries; `None`: all (the protocol's `-1`).
    #[serde(rename = "Tail", serialize_with = "tail_as_protocol")]
    pub tail: Option<usize>,
    #[serde(rename = "Follow")]
    pub follow: bool,
    /// The streams wanted (berth's addition: they are chosen before the
    /// tail is counted, as `docker logs` on berth always did; a plugin
    /// does not see them, and the daemon filters what it sends).
    #[serde(skip)]
    pub stdout: bool,
    #[serde(skip)]
    pub stderr: bool,
    /// `--details`: the entries' extra attributes are wanted (berth's
    /// addition, so that a read without it does not decode them).
    #[serde(skip)]
    pub details: bool,
}

fn tail_as_protocol<S: serde::Serializer>(
    tail: &Option<usize>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match tail {
        Some(n) => s.serialize_i64(i64::try_from(*n).unwrap_or(i64::MAX)),
        None => s.serialize_i64(-1),
    }
}

/// One entry of a `ReadLogs` stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogEntry {
    /// `stdout` or `stderr`.
    pub source: String,
    /// The time as the driver stored it (RFC 3339 with nanoseconds), kept
    /// as text so that `--timestamps` shows exactly what was written.
    pub time: String,
    /// The output, with its newline.
    pub line: String,
    /// The extra attributes as `docker logs --details` shows them
    /// (`k=v,k2=v2`, see [`details`]); empty when there are none or the
    /// read did not ask for them.
    pub attrs: String,
}

/// The extra attributes of an entry as dockerd's `--details` renders
/// them: sorted by key, each `key=value` query-escaped, joined by commas.
pub fn details<'a>(attrs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let out = details_bytes(attrs.into_iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())));
    // Query escaping leaves nothing but ASCII.
    String::from_utf8(out).unwrap_or_default()
}

/// [`details`] of attributes whose values may not be UTF-8 (journald's).
pub fn details_bytes<'a>(attrs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Vec<u8> {
    let mut pairs: Vec<(&[u8], &[u8])> = attrs.into_iter().collect();
    pairs.sort_unstable();
    let mut out = Vec::new();
    for (i, (k, v)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        query_escape(&mut out, k);
        out.push(b'=');
        query_escape(&mut out, v);
    }
    out
}

/// Go's `url.QueryEscape`: letters, digits and `-_.~` as they are, a
/// blank as `+`, any other byte `%XX`. Hand-written: the `url` crate's
/// form encoding differs on `*` and `~`.
fn query_escape(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b),
            b' ' => out.push(b'+'),
            b => out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]),
        }
    }
}

/// What the shim must do for a built-in driver (berth's `StartLogging`:
/// the shim writes the log itself rather than into a FIFO).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShimSink {
    /// The json-file to write; empty: none.
    pub path: String,
    /// Rotate at this size (bytes); 0: never.
    pub max_size: u64,
    /// Files kept in all when rotating (>= 1).
    pub max_file: u32,
    /// Rotated files are gzipped.
    pub compress: bool,
    /// The file's format: empty for json-file, `local`.
    pub format: String,
    /// A logging plugin's FIFO the shim writes entries into; empty: none.
    pub fifo: String,
    /// json-file's extra attributes, a JSON object written into every
    /// line as `"attrs"`; empty: none.
    pub attrs: String,
}

/// The container a follower reads the log of: whether it still writes
/// (the end of a follow, Docker's `ProducerGone`).
pub trait Producer: Send + 'static {
    /// Whether the container has stopped writing (stopped or removed).
    fn gone(&self) -> bool;
    /// Resolves when that may have changed.
    fn changed(&mut self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// What a `follow` waits on besides the log itself.
pub struct Follow {
    pub producer: Box<dyn Producer>,
    /// The daemon's shutdown: every follower ends.
    pub shutdown: watch::Receiver<bool>,
}

/// A log driver: what the daemon asks of the driver a container's
/// `HostConfig.LogConfig` names.
pub trait LogDriver: Send + Sync {
    fn name(&self) -> &str;
    /// `/LogDriver.Capabilities`.
    fn capabilities(&self) -> CapabilitiesResponse;
    /// The `--log-opt`s, checked at create (dockerd's `ValidateLogOpts`).
    fn validate_options(&self, opts: &HashMap<String, String>) -> Result<()>;
    /// `StartLogging` of a built-in driver: what the shim writes.
    fn shim_sink(&self, info: &Info) -> ShimSink;
    /// Inspect's `LogPath`.
    fn log_path(&self, info: &Info) -> String {
        self.shim_sink(info).path
    }
    /// `/LogDriver.StartLogging`, before the container starts: what the
    /// shim writes (a plugin gets a FIFO made in `fifo_dir`).
    fn start_logging(&self, info: &Info, _fifo_dir: &Path) -> Result<ShimSink> {
        Ok(self.shim_sink(info))
    }
    /// After a daemon restart, for a running container: start reading
    /// the FIFO `start_logging` made again (a plugin still reads it).
    fn resume_logging(&self, _info: &Info, _fifo: &Path) {}
    /// `/LogDriver.StopLogging` of a FIFO `start_logging` made, once the
    /// container has stopped and its output is drained; the FIFO goes.
    fn stop_logging(&self, _fifo: &Path) {}
    /// `/LogDriver.ReadLogs`: the entries in order; with `Follow`, until
    /// the producer is gone and the log drained. `follow` is consulted
    /// only then.
    fn read_logs(
        &self,
        info: &Info,
        config: ReadConfig,
        follow: Follow,
    ) -> Result<mpsc::Receiver<LogEntry>>;
    /// `read_logs` as `docker logs` sends it: each entry rendered as
    /// `framing` says, many entries to a chunk where the driver can batch
    /// them (json-file does). By default each entry of `read_logs` is a
    /// chunk of its own.
    fn read_framed(
        &self,
        info: &Info,
        config: ReadConfig,
        follow: Follow,
        framing: Framing,
    ) -> Result<mpsc::Receiver<Bytes>> {
        let mut entries = self.read_logs(info, config, follow)?;
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    e = entries.recv() => {
                        let Some(e) = e else { return };
                        let mut b = BytesMut::new();
                        if framing.put(&mut b, &e.source, &e.time, &e.attrs, &e.line)
                            && tx.send(b.freeze()).await.is_err()
                        {
                            return;
                        }
                    }
                    // A client gone stops the driver's reader too.
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(rx)
    }
}

/// How `docker logs` renders an entry: without a TTY one stdcopy frame
/// per entry (its stream in the header), with one the bare text; with
/// `timestamps`, the entry's time as stored and a blank before the text;
/// with `details`, the entry's extra attributes and a blank before the
/// text, as dockerd orders them (`<time> <attrs> <text>`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Framing {
    pub tty: bool,
    pub timestamps: bool,
    /// The attributes as [`details`] renders them; an entry without any
    /// gets a lone blank, as from dockerd.
    pub details: bool,
}

impl Framing {
    /// Appends the entry to `out`; false (nothing appended) for a source
    /// other than `stdout` or `stderr`.
    pub fn put(
        &self,
        out: &mut BytesMut,
        source: &str,
        time: &str,
        attrs: &str,
        line: &str,
    ) -> bool {
        let stream = match source {
            "stdout" => StreamType::Stdout,
            "stderr" => StreamType::Stderr,
            _ => return false,
        };
        let parts: &[&[u8]] = match (self.timestamps, self.details) {
            (true, true) => &[
                time.as_bytes(),
                b" ",
                attrs.as_bytes(),
                b" ",
                line.as_bytes(),
            ],
            (true, false) => &[time.as_bytes(), b" ", line.as_bytes()],
            (false, true) => &[attrs.as_bytes(), b" ", line.as_bytes()],
            (false, false) => &[line.as_bytes()],
        };
        if self.tty {
            for p in parts {
                out.extend_from_slice(p);
            }
        } else {
            put_frame(out, stream, parts);
        }
        true
    }
}

/// The `none` driver: nothing is kept, so nothing can be read.
pub struct NoneDriver;

/// dockerd's answer to reading a log its driver cannot read.
pub fn cannot_read() -> EngineError {
    EngineError::NotImplemented("configured logging driver does not support reading".into())
}

impl LogDriver for NoneDriver {
    fn name(&self) -> &str {
        NONE
    }

    fn capabilities(&self) -> CapabilitiesResponse {
        CapabilitiesResponse::default()
    }

    fn validate_options(&self, opts: &HashMap<String, String>) -> Result<()> {
        // berth has always checked the rotation options whatever the driver.
        jsonfile::check_rotation(opts)
    }

    fn shim_sink(&self, info: &Info) -> ShimSink {
        ShimSink {
            path: String::new(),
            ..jsonfile::rotation(&info.config)
        }
    }

    fn read_logs(&self, _: &Info, _: ReadConfig, _: Follow) -> Result<mpsc::Receiver<LogEntry>> {
        Err(cannot_read())
    }
}

/// dockerd's built-in log drivers berth does not implement.
const OTHER_DRIVERS: &[&str] = &[
    "gelf",
    "awslogs",
    "splunk",
    "etwlogs",
    "gcplogs",
    "logentries",
];

/// Whether the driver of that name is berth's own (a plugin otherwise).
pub fn is_builtin(name: Option<&str>) -> bool {
    matches!(name, None | Some("" | JSON_FILE | NONE | local::NAME))
}

/// The driver of that name (`json-file` when empty): a built-in one, or
/// a logging plugin found now; else dockerd's error.
pub fn lookup(name: &str, plugins: &Arc<Plugins>) -> Result<Arc<dyn LogDriver>> {
    match name {
        "" | JSON_FILE => Ok(Arc::new(jsonfile::JsonFile)),
        NONE => Ok(Arc::new(NoneDriver)),
        local::NAME => Ok(Arc::new(local::Local)),
        d if OTHER_DRIVERS.contains(&d) => Err(EngineError::invalid(format!(
            "logging driver {d:?} is not supported: use json-file, local, syslog, fluentd, journald or none"
        ))),
        journald::NAME => Ok(Arc::new(journald::JournaldDriver::default())),
        d => match forwarder(d) {
            Some(f) => Ok(Arc::new(f)),
            None => {
                let driver = plugin::PluginDriver::new(d, plugins.clone());
                driver.plugin()?;
                Ok(Arc::new(driver))
            }
        },
    }
}

/// The drivers dockerd's `docker info` lists under `Plugins.Log`: the
/// built-in ones that log somewhere (sorted, without `none`).
pub const LISTED: &[&str] = &[
    fluentd::NAME,
    journald::NAME,
    JSON_FILE,
    local::NAME,
    syslog::NAME,
];

/// A forwarding driver of that name.
fn forwarder(name: &str) -> Option<forward::Forwarder> {
    match name {
        syslog::NAME => Some(forward::Forwarder::new(syslog::Syslog)),
        fluentd::NAME => Some(forward::Forwarder::new(fluentd::Fluentd)),
        _ => None,
    }
}

/// The driver of a container created earlier (its name was checked then;
/// records older than the default have none: `json-file`). A plugin is
/// looked up when used.
pub fn driver_of(name: Option<&str>, plugins: &Arc<Plugins>) -> Arc<dyn LogDriver> {
    match name {
        None | Some("" | JSON_FILE) => Arc::new(jsonfile::JsonFile),
        Some(NONE) => Arc::new(NoneDriver),
        Some(local::NAME) => Arc::new(local::Local),
        Some(journald::NAME) => Arc::new(journald::JournaldDriver::default()),
        Some(p) => match forwarder(p) {
            Some(f) => Arc::new(f),
            None => Arc::new(plugin::PluginDriver::new(p, plugins.clone())),
        },
    }
}

/// The first option (in name order) a driver does not take.
pub fn first_unknown<'a>(opts: &'a HashMap<String, String>, known: &[&str]) -> Option<&'a str> {
    let mut keys: Vec<&String> = opts.keys().collect();
    keys.sort();
    keys.into_iter()
        .find(|k| !known.contains(&k.as_str()))
        .map(String::as_str)
}

/// Refuses any option not in `known`, with dockerd's message.
pub fn only(opts: &HashMap<String, String>, known: &[&str], driver: &str) -> Result<()> {
    match first_unknown(opts, known) {
        Some(k) => Err(EngineError::invalid(format!(
            "unknown log opt '{k}' for {driver} log driver"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_framed_as_docker_sends_them() {
        let put = |tty, timestamps, source| {
            let mut b = BytesMut::new();
            let ok = Framing {
                tty,
                timestamps,
                details: false,
            }
            .put(&mut b, source, "2024-01-01T00:00:01.5Z", "", "hi\n");
            ok.then(|| b.freeze())
        };
        assert_eq!(put(true, false, "stdout").unwrap(), "hi\n");
        // `--details` with no attributes: a blank after the time.
        let detailed = |timestamps| {
            let mut b = BytesMut::new();
            Framing {
                tty: true,
                timestamps,
                details: true,
            }
            .put(&mut b, "stdout", "2024-01-01T00:00:01.5Z", "", "hi\n");
            b.freeze()
        };
        assert_eq!(detailed(false), " hi\n");
        assert_eq!(detailed(true), "2024-01-01T00:00:01.5Z  hi\n");
        assert_eq!(
            put(true, true, "stdout").unwrap(),
            "2024-01-01T00:00:01.5Z hi\n"
        );
        assert_eq!(
            put(false, false, "stderr").unwrap(),
            berth_api::stdcopy::frame(StreamType::Stderr, b"hi\n")
        );
        assert_eq!(
            put(false, true, "stdout").unwrap(),
            berth_api::stdcopy::frame(StreamType::Stdout, b"2024-01-01T00:00:01.5Z hi\n")
        );
        assert!(put(false, false, "other").is_none());
    }

    #[test]
    fn details_render_as_dockerd() {
        assert_eq!(
            details([("tag", "web/1"), ("app", "a b"), ("Z", "*~_")]),
            "Z=%2A~_,app=a+b,tag=web%2F1"
        );
        assert_eq!(details([]), "");
        let mut b = BytesMut::new();
        let f = Framing {
            tty: true,
            timestamps: true,
            details: true,
        };
        f.put(&mut b, "stdout", "T", "a=1", "hi\n");
        assert_eq!(b.freeze(), "T a=1 hi\n");
    }

    struct Gone;
    impl Producer for Gone {
        fn gone(&self) -> bool {
            true
        }
        fn changed(&mut self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
            Box::pin(std::future::ready(()))
        }
    }

    fn follow() -> Follow {
        let (_tx, shutdown) = watch::channel(false);
        Follow {
            producer: Box::new(Gone),
            shutdown,
        }
    }

    fn no_plugins() -> Arc<Plugins> {
        let dir = std::env::temp_dir().join(format!("berth-logging-{}", std::process::id()));
        Arc::new(Plugins::with_dirs(
            crate::engine::plugins::discovery::Dirs {
                sockets: vec![dir.clone()],
                specs: vec![],
            },
            dir,
            std::time::Duration::from_secs(1),
        ))
    }

    #[test]
    fn drivers_are_chosen_by_name() {
        let pl = no_plugins();
        let lookup = |n: &str| lookup(n, &pl);
        assert_eq!(lookup("").unwrap().name(), JSON_FILE);
        assert_eq!(lookup("json-file").unwrap().name(), JSON_FILE);
        assert_eq!(lookup("none").unwrap().name(), NONE);
        assert_eq!(
            lookup("gelf").err().unwrap().to_string(),
            "logging driver \"gelf\" is not supported: use json-file, local, syslog, fluentd, journald or none"
        );
        assert_eq!(lookup("syslog").unwrap().name(), "syslog");
        assert_eq!(driver_of(Some("fluentd"), &pl).name(), "fluentd");
        assert!(!is_builtin(Some("journald")));
        assert_eq!(
            lookup("nope").err().unwrap().to_string(),
            "error looking up logging plugin nope: plugin \"nope\" not found"
        );
        assert_eq!(driver_of(None, &pl).name(), JSON_FILE);
        assert_eq!(driver_of(Some("json-file"), &pl).name(), JSON_FILE);
        assert_eq!(driver_of(Some("none"), &pl).name(), NONE);
        assert_eq!(driver_of(Some("shipper"), &pl).name(), "shipper");
        assert!(is_builtin(None) && is_builtin(Some("none")) && !is_builtin(Some("shipper")));
    }

    #[test]
    fn none_keeps_nothing_and_refuses_to_read() {
        let d = lookup("none", &no_plugins()).unwrap();
        assert!(!d.capabilities().cap.read_logs);
        let info = Info {
            log_path: "/var/log/x.log".into(),
            ..Default::default()
        };
        assert!(d.shim_sink(&info).path.is_empty());
        let e = d
            .read_logs(&info, ReadConfig::default(), follow())
            .err()
            .unwrap();
        assert!(matches!(e, EngineError::NotImplemented(_)));
        assert_eq!(
            e.to_string(),
            "configured logging driver does not support reading"
        );
        // Any option passes but a malformed rotation.
        let o = |k: &str, v: &str| HashMap::from([(k.to_string(), v.to_string())]);
        assert!(d.validate_options(&o("whatever", "1")).is_ok());
        assert!(d.validate_options(&o("max-size", "big")).is_err());
    }

    #[test]
    fn protocol_shapes() {
        let v = serde_json::to_value(ReadConfig {
            tail: None,
            follow: true,
            stdout: true,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(v, serde_json::json!({"Tail": -1, "Follow": true}));
        let info = serde_json::to_value(Info {
            container_id: "abc".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(info["ContainerID"], "abc");
        assert!(info.get("LogPath").is_some());
        let caps: CapabilitiesResponse =
            serde_json::from_str(r#"{"Cap":{"ReadLogs":true}}"#).unwrap();
        assert!(caps.cap.read_logs);
    }
}
