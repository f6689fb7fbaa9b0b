//! The `journald` driver (dockerd's `daemon/logger/journald`).
//!
//! Writing: one native journal datagram per entry to
//! `/run/systemd/journal/socket`, with `MESSAGE`, `PRIORITY` (6 stdout, 3
//! stderr), `SYSLOG_TIMESTAMP`, the container's `CONTAINER_ID` (short),
//! `CONTAINER_ID_FULL`, `CONTAINER_NAME`, `CONTAINER_TAG` and
//! `SYSLOG_IDENTIFIER` (the tag), `IMAGE_NAME`, the extra attributes (keys
//! upper-cased, other than `[A-Z0-9_]` made `_`), `CONTAINER_LOG_EPOCH`
//! (random per start) and `CONTAINER_LOG_ORDINAL` (1, 2, ...), and for a
//! piece of a long line `CONTAINER_PARTIAL_ID`, `_ORDINAL`, `_LAST` and,
//! but on the last piece, `CONTAINER_PARTIAL_MESSAGE=true`. Without the
//! journal's socket the start fails with dockerd's "journald is not
//! enabled on this host".
//!
//! Reading (`docker logs`), as dockerd's reader: the entries matching
//! `CONTAINER_ID_FULL` (and the `PRIORITY` of the streams asked for), in
//! the journal's order, through `journalctl` (`journalctl.rs`); the time
//! is the entry's `__REALTIME_TIMESTAMP`, a partial piece gets no
//! newline (the client sees the line whole), `--details` shows the
//! fields that are neither the journal's (`_*`) nor the driver's own. A
//! follow ends once the container has stopped and the reader has seen
//! the last ordinal this daemon sent for it (5 s at most after the stop,
//! dockerd's bound). As dockerd, no local cache is kept: the journal is
//! the log.

use std::collections::HashMap;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use berth_api::stdcopy::{put_frame, StreamType};
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use super::forward::{self, Backend, Forwarder, Sink};
use super::journalctl::{self, Fields};
use super::plugin::Entry;
use super::{
    jsonfile, Capabilities, CapabilitiesResponse, Follow, Framing, Info, LogDriver, LogEntry,
    ReadConfig, ShimSink,
};
use crate::engine::{EngineError, Result};

pub const NAME: &str = "journald";

const SOCKET: &str = "/run/systemd/journal/socket";

const OPTIONS: &[&str] = &["env", "env-regex", "labels", "labels-regex", "tag"];

/// How long a follow waits, once the container has stopped, for the last
/// entries to come through the journal (dockerd's `closedDrainTimeout`).
const DRAIN: Duration = Duration::from_secs(5);

/// The fields that are not extra attributes (`--details`): the journal's
/// well-known ones and the driver's own, as dockerd's reader lists them.
const WELL_KNOWN: &[&str] = &[
    "MESSAGE",
    "MESSAGE_ID",
    "PRIORITY",
    "CODE_FILE",
    "CODE_LINE",
    "CODE_FUNC",
    "ERRNO",
    "SYSLOG_FACILITY",
    "SYSLOG_IDENTIFIER",
    "SYSLOG_PID",
    "SYSLOG_TIMESTAMP",
    "CONTAINER_NAME",
    "CONTAINER_ID",
    "CONTAINER_ID_FULL",
    "CONTAINER_TAG",
    "IMAGE_NAME",
    "CONTAINER_PARTIAL_ID",
    "CONTAINER_PARTIAL_ORDINAL",
    "CONTAINER_PARTIAL_LAST",
    "CONTAINER_PARTIAL_MESSAGE",
    "CONTAINER_LOG_EPOCH",
    "CONTAINER_LOG_ORDINAL",
];

/// Appends one field in the journal's native format: `KEY=value\n`, or,
/// for a value with a newline, `KEY\n`, its length as 8 little-endian
/// bytes, the value and `\n`.
pub fn field(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(key.as_bytes());
    if value.contains(&b'\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// dockerd's key sanitizer for the extra attributes.
fn sanitize(k: &str) -> String {
    k.chars()
        .map(|c| match c.to_ascii_uppercase() {
            c @ ('A'..='Z' | '0'..='9' | '_') => c,
            _ => '_',
        })
        .collect::<String>()
        .trim_start_matches('_')
        .to_string()
}

/// The fields every line of a container carries (but the epoch, which
/// is the sink's).
pub fn container_fields(info: &Info) -> Result<Vec<(String, String)>> {
    let tag = forward::tag(info)?;
    let id = &info.container_id;
    let mut v = vec![
        ("CONTAINER_ID".into(), id[..id.len().min(12)].to_string()),
        ("CONTAINER_ID_FULL".into(), id.clone()),
        (
            "CONTAINER_NAME".into(),
            info.container_name.trim_start_matches('/').to_string(),
        ),
        ("CONTAINER_TAG".into(), tag.clone()),
        ("IMAGE_NAME".into(), info.container_image_name.clone()),
        ("SYSLOG_IDENTIFIER".into(), tag),
    ];
    v.extend(forward::extra_attributes(info, sanitize)?);
    Ok(v)
}

/// Go's `time.RFC3339Nano` in UTC: the fraction without trailing zeros.
fn rfc3339_nano(nanos: i64) -> String {
    let s = chrono::DateTime::from_timestamp_nanos(nanos)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let (head, frac) = s.trim_end_matches('Z').split_at(19);
    let frac = frac.trim_end_matches('0').trim_end_matches('.');
    format!("{head}{frac}Z")
}

/// One entry's datagram, the `ordinal`-th of its sink.
pub fn datagram(fixed: &[(String, String)], e: &Entry, ordinal: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(e.line.len() + 512);
    field(&mut out, "MESSAGE", &e.line);
    let priority = if e.source == "stderr" { b"3" } else { b"6" };
    field(&mut out, "PRIORITY", priority);
    if e.time_nano != 0 {
        field(
            &mut out,
            "SYSLOG_TIMESTAMP",
            rfc3339_nano(e.time_nano).as_bytes(),
        );
    }
    for (k, v) in fixed {
        field(&mut out, k, v.as_bytes());
    }
    if let Some(p) = &e.partial_log_metadata {
        field(&mut out, "CONTAINER_PARTIAL_ID", p.id.as_bytes());
        field(
            &mut out,
            "CONTAINER_PARTIAL_ORDINAL",
            p.ordinal.to_string().as_bytes(),
        );
        field(
            &mut out,
            "CONTAINER_PARTIAL_LAST",
            p.last.to_string().as_bytes(),
        );
        if !p.last {
            field(&mut out, "CONTAINER_PARTIAL_MESSAGE", b"true");
        }
    }
    field(
        &mut out,
        "CONTAINER_LOG_ORDINAL",
        ordinal.to_string().as_bytes(),
    );
    out
}

/// What a container's current sink has sent (its epoch, and the last
/// ordinal per stream), for a follower to know when it has read all.
struct Sent {
    epoch: String,
    /// stdout, stderr.
    last: [AtomicU64; 2],
    /// The sink is gone: nothing more comes from this epoch.
    done: AtomicBool,
}

/// The sinks of this daemon, by container ID (the latest start's).
static SENT: LazyLock<Mutex<HashMap<String, Arc<Sent>>>> = LazyLock::new(Default::default);

fn sent_of(id: &str) -> Option<Arc<Sent>> {
    SENT.lock().ok()?.get(id).cloned()
}

fn stream_index(source: &str) -> usize {
    usize::from(source == "stderr")
}

pub struct Journald;

impl Backend for Journald {
    fn name(&self) -> &'static str {
        NAME
    }

    fn validate(&self, opts: &HashMap<String, String>) -> Result<()> {
        super::only(opts, OPTIONS, NAME)
    }

    fn open(&self, info: &Info) -> Result<Box<dyn Sink>> {
        if !Path::new(SOCKET).exists() {
            return Err(EngineError::internal(
                "journald is not enabled on this host",
            ));
        }
        let sock = UnixDatagram::unbound()?;
        sock.connect(SOCKET)?;
        let mut fixed = container_fields(info)?;
        let sent = Arc::new(Sent {
            epoch: crate::engine::ids::random_hex(32),
            last: Default::default(),
            done: AtomicBool::new(false),
        });
        fixed.push(("CONTAINER_LOG_EPOCH".into(), sent.epoch.clone()));
        if let Ok(mut m) = SENT.lock() {
            m.insert(info.container_id.clone(), sent.clone());
        }
        Ok(Box::new(JournalSink {
            sock,
            fixed,
            id: info.container_id.clone(),
            ordinal: 0,
            sent,
        }))
    }
}

struct JournalSink {
    sock: UnixDatagram,
    fixed: Vec<(String, String)>,
    id: String,
    ordinal: u64,
    sent: Arc<Sent>,
}

impl Sink for JournalSink {
    fn send(&mut self, e: &Entry) -> std::io::Result<()> {
        self.ordinal += 1;
        self.sock
            .send(&datagram(&self.fixed, e, self.ordinal))
            .map(drop)?;
        self.sent.last[stream_index(&e.source)].store(self.ordinal, Ordering::Release);
        Ok(())
    }
}

impl Drop for JournalSink {
    fn drop(&mut self) {
        self.sent.done.store(true, Ordering::Release);
        if let Ok(mut m) = SENT.lock() {
            if m.get(&self.id).is_some_and(|s| Arc::ptr_eq(s, &self.sent)) {
                m.remove(&self.id);
            }
        }
    }
}

/// The `journald` driver: a forwarding driver that reads back from the
/// journal (so, as in dockerd, without the local cache).
pub struct JournaldDriver {
    fwd: Forwarder,
}

impl Default for JournaldDriver {
    fn default() -> Self {
        Self {
            fwd: Forwarder::new(Journald),
        }
    }
}

/// One entry read back.
struct Record {
    source: &'static str,
    realtime_us: u64,
    /// The message, with a newline unless a partial piece.
    line: Vec<u8>,
    attrs: Vec<(String, Vec<u8>)>,
}

fn field_of<'a>(f: &'a Fields, key: &str) -> Option<&'a [u8]> {
    f.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_slice())
}

fn number(v: Option<&[u8]>) -> Option<u64> {
    std::str::from_utf8(v?).ok()?.parse().ok()
}

/// An entry as dockerd's reader takes it: none without a `MESSAGE`; the
/// stream from `PRIORITY` (empty for another, and not shown).
fn record(f: &Fields, details: bool) -> Option<Record> {
    let mut line = field_of(f, "MESSAGE")?.to_vec();
    if field_of(f, "CONTAINER_PARTIAL_MESSAGE") != Some(b"true") {
        line.push(b'\n');
    }
    let source = match field_of(f, "PRIORITY") {
        Some(b"3") => "stderr",
        Some(b"6") => "stdout",
        _ => "",
    };
    let attrs = if details {
        f.iter()
            .filter(|(k, _)| !k.starts_with('_') && !WELL_KNOWN.contains(&k.as_str()))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    Some(Record {
        source,
        realtime_us: number(field_of(f, "__REALTIME_TIMESTAMP"))?,
        line,
        attrs,
    })
}

/// The entry's time as dockerd shows it (`RFC3339NanoFixed`, UTC).
fn timestamp(realtime_us: u64) -> String {
    chrono::DateTime::from_timestamp_micros(i64::try_from(realtime_us).unwrap_or(i64::MAX))
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn details_of(attrs: &[(String, Vec<u8>)]) -> Vec<u8> {
    super::details_bytes(attrs.iter().map(|(k, v)| (k.as_bytes(), v.as_slice())))
}

/// `docker logs`' bytes of an entry; `None` for an entry of no stream.
fn render(framing: &Framing, r: &Record) -> Option<Bytes> {
    let stream = match r.source {
        "stdout" => StreamType::Stdout,
        "stderr" => StreamType::Stderr,
        _ => return None,
    };
    let time = framing.timestamps.then(|| timestamp(r.realtime_us));
    let attrs = framing.details.then(|| details_of(&r.attrs));
    let mut parts: Vec<&[u8]> = Vec::with_capacity(5);
    if let Some(t) = &time {
        parts.extend([t.as_bytes(), b" "]);
    }
    if let Some(a) = &attrs {
        parts.extend([a.as_slice(), b" "]);
    }
    parts.push(&r.line);
    let mut out = BytesMut::new();
    if framing.tty {
        for p in parts {
            out.extend_from_slice(p);
        }
    } else {
        put_frame(&mut out, stream, &parts);
    }
    Some(out.freeze())
}

/// Where the main `journalctl` starts.
enum Start {
    /// The head (or `--since`).
    Head,
    /// A cursor the tail's pass found.
    Cursor(String),
    /// The end: only what comes next (`--tail 0` with a follow).
    End,
}

/// A read of the journal for one container.
struct Query {
    matches: Vec<String>,
    since_us: Option<u64>,
    until_us: Option<u64>,
    following: bool,
    details: bool,
    /// Which streams are shown (stdout, stderr).
    streams: [bool; 2],
}

impl Query {
    fn main_args(&self, start: &Start, since: Option<i64>) -> Vec<String> {
        let mut a = Vec::new();
        match start {
            Start::Head => {
                a.push("--lines=all".to_string());
                if let Some(s) = since {
                    a.push(format!("--since={}", journalctl::at(s)));
                }
            }
            Start::Cursor(c) => {
                a.push("--lines=all".to_string());
                a.push(format!("--cursor={c}"));
            }
            Start::End => a.push("--lines=0".to_string()),
        }
        if self.following {
            a.push("--follow".into());
        }
        a.extend(self.matches.iter().cloned());
        a
    }
}

fn opening(e: std::io::Error) -> EngineError {
    EngineError::internal(format!("error opening journal: journalctl: {e}"))
}

/// The first entry's cursor among the last `n` (the tail's start), by a
/// reverse pass that prints cursors only.
async fn tail_start(mut child: tokio::process::Child) -> std::io::Result<Option<String>> {
    let mut entries = journalctl::entries(&mut child);
    let mut cursor = None;
    while let Some(e) = entries.recv().await {
        if let Some(c) = field_of(&e?, "__CURSOR") {
            cursor = Some(String::from_utf8_lossy(c).into_owned());
        }
    }
    let status = child.wait().await?;
    if !status.success() {
        let why = journalctl::complaint(&mut child).await;
        return Err(std::io::Error::other(format!(
            "journalctl: {status}: {why}"
        )));
    }
    Ok(cursor)
}

impl JournaldDriver {
    /// The container's entries in the journal's order, as `config` asks.
    fn records(
        &self,
        info: &Info,
        config: ReadConfig,
        follow: Follow,
        details: bool,
    ) -> Result<mpsc::Receiver<Record>> {
        let (tx, rx) = mpsc::channel(256);
        let mut matches = vec![format!("CONTAINER_ID_FULL={}", info.container_id)];
        if config.stdout {
            matches.push("PRIORITY=6".into());
        }
        if config.stderr {
            matches.push("PRIORITY=3".into());
        }
        // A stopped container is not followed: what it sent is in the
        // journal (or on its way, and dockerd does not wait either).
        let following = config.follow && !follow.producer.gone();
        let sent = if following {
            sent_of(&info.container_id)
        } else {
            None
        };
        let to_us = |n: i64| u64::try_from(n.div_euclid(1000)).unwrap_or(0);
        let q = Query {
            matches,
            since_us: config.since.map(to_us),
            until_us: config.until.map(to_us),
            following,
            details,
            streams: [config.stdout, config.stderr],
        };
        // The first process is started here, so that a journalctl that
        // cannot run fails the request rather than its stream.
        let first = match config.tail {
            Some(0) if !following => return Ok(rx),
            Some(0) => (
                journalctl::spawn(&q.main_args(&Start::End, None)).map_err(opening)?,
                true,
            ),
            Some(n) => {
                let mut a = vec![
                    "--reverse".to_string(),
                    "--output-fields=__CURSOR".into(),
                    format!("--lines={n}"),
                ];
                if let Some(u) = config.until {
                    a.push(format!("--until={}", journalctl::at(u)));
                }
                a.extend(q.matches.iter().cloned());
                (journalctl::spawn(&a).map_err(opening)?, false)
            }
            None => (
                journalctl::spawn(&q.main_args(&Start::Head, config.since)).map_err(opening)?,
                true,
            ),
        };
        let id = info.container_id.clone();
        tokio::spawn(async move {
            let child = match first {
                (child, true) => child,
                (child, false) => {
                    let start = match tail_start(child).await {
                        Ok(Some(c)) => Start::Cursor(c),
                        Ok(None) => Start::Head,
                        Err(e) => {
                            tracing::warn!(id = %id, error = %e, "reading the journal");
                            return;
                        }
                    };
                    match journalctl::spawn(&q.main_args(&start, config.since)) {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::warn!(id = %id, error = %e, "reading the journal");
                            return;
                        }
                    }
                }
            };
            pump(id, q, child, sent, follow, tx).await;
        });
        Ok(rx)
    }
}

/// Sends the entries `child` prints until its end, the client's, the
/// daemon's, `until`, or (following) the container's stop and drain.
async fn pump(
    id: String,
    q: Query,
    mut child: tokio::process::Child,
    sent: Option<Arc<Sent>>,
    follow: Follow,
    tx: mpsc::Sender<Record>,
) {
    let Follow {
        mut producer,
        mut shutdown,
    } = follow;
    let mut entries = journalctl::entries(&mut child);
    // The highest ordinal of the current sink's epoch seen, per stream.
    let mut seen = [0u64; 2];
    let caught_up = |seen: &[u64; 2]| match &sent {
        Some(s) => {
            s.done.load(Ordering::Acquire)
                && (0..2).all(|i| !q.streams[i] || seen[i] >= s.last[i].load(Ordering::Acquire))
        }
        None => true,
    };
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut ended = false;
    loop {
        tokio::select! {
            _ = tx.closed() => break,
            _ = shutdown.changed(), if q.following => break,
            item = entries.recv() => {
                let f = match item {
                    None => {
                        ended = true;
                        break;
                    }
                    Some(Err(e)) => {
                        tracing::warn!(id = %id, error = %e, "reading the journal");
                        break;
                    }
                    Some(Ok(f)) => f,
                };
                if let (Some(s), Some(o)) = (&sent, number(field_of(&f, "CONTAINER_LOG_ORDINAL"))) {
                    if field_of(&f, "CONTAINER_LOG_EPOCH") == Some(s.epoch.as_bytes()) {
                        let i = usize::from(field_of(&f, "PRIORITY") == Some(b"3"));
                        seen[i] = seen[i].max(o);
                    }
                }
                let Some(r) = record(&f, q.details) else { continue };
                if q.until_us.is_some_and(|u| r.realtime_us > u) {
                    break;
                }
                if q.since_us.is_some_and(|s| r.realtime_us < s) {
                    continue;
                }
                if tx.send(r).await.is_err() {
                    break;
                }
            }
            _ = producer.changed(), if q.following && deadline.is_none() => {
                if producer.gone() {
                    deadline = Some(tokio::time::Instant::now() + DRAIN);
                }
            }
            _ = tick.tick(), if deadline.is_some() => {
                if caught_up(&seen) || deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                    break;
                }
            }
        }
    }
    if ended {
        // journalctl ended by itself: a failure is the daemon's to log
        // (the client's stream has begun and just ends).
        if let Ok(Ok(status)) = tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
            if !status.success() {
                let why = journalctl::complaint(&mut child).await;
                tracing::warn!(id = %id, %status, error = %why, "reading the journal");
            }
        }
    }
    // Dropping the child kills a journalctl still running (a follow).
}

impl LogDriver for JournaldDriver {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> CapabilitiesResponse {
        CapabilitiesResponse {
            cap: Capabilities { read_logs: true },
        }
    }

    fn validate_options(&self, opts: &HashMap<String, String>) -> Result<()> {
        self.fwd.validate_options(opts)
    }

    fn shim_sink(&self, info: &Info) -> ShimSink {
        // No cache: dockerd keeps none for a driver that reads back.
        ShimSink {
            path: String::new(),
            ..jsonfile::rotation(&info.config)
        }
    }

    fn log_path(&self, _: &Info) -> String {
        String::new()
    }

    fn start_logging(&self, info: &Info, fifo_dir: &Path) -> Result<ShimSink> {
        let mut s = self.fwd.start_logging(info, fifo_dir)?;
        s.path = String::new();
        Ok(s)
    }

    fn resume_logging(&self, info: &Info, fifo: &Path) {
        self.fwd.resume_logging(info, fifo)
    }

    fn stop_logging(&self, fifo: &Path) {
        self.fwd.stop_logging(fifo)
    }

    fn read_logs(
        &self,
        info: &Info,
        config: ReadConfig,
        follow: Follow,
    ) -> Result<mpsc::Receiver<LogEntry>> {
        let mut records = self.records(info, config, follow, false)?;
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            // A client gone (the receiver dropped) ends the read at once,
            // also while the journal is quiet.
            while let Some(r) = tokio::select! {
                r = records.recv() => r,
                _ = tx.closed() => None,
            } {
                let e = LogEntry {
                    source: r.source.to_string(),
                    time: timestamp(r.realtime_us),
                    line: String::from_utf8_lossy(&r.line).into_owned(),
                    attrs: String::from_utf8_lossy(&details_of(&r.attrs)).into_owned(),
                };
                if tx.send(e).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }

    fn read_framed(
        &self,
        info: &Info,
        config: ReadConfig,
        follow: Follow,
        framing: Framing,
    ) -> Result<mpsc::Receiver<Bytes>> {
        let mut records = self.records(info, config, follow, framing.details)?;
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            while let Some(r) = tokio::select! {
                r = records.recv() => r,
                _ = tx.closed() => None,
            } {
                if let Some(b) = render(&framing, &r) {
                    if tx.send(b).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_in_the_native_format() {
        let info = Info {
            container_id: "0123456789abcdef".into(),
            container_name: "/web".into(),
            container_image_name: "alpine".into(),
            container_labels: HashMap::from([("com.x-y".to_string(), "v".to_string())]),
            config: HashMap::from([("labels".to_string(), "com.x-y".to_string())]),
            ..Default::default()
        };
        let fixed = container_fields(&info).unwrap();
        let e = Entry {
            source: "stderr".into(),
            time_nano: 1_700_000_000_000_000_000,
            line: b"hello".to_vec(),
            ..Default::default()
        };
        let d = String::from_utf8(datagram(&fixed, &e, 7)).unwrap();
        assert_eq!(
            d,
            "MESSAGE=hello\nPRIORITY=3\nSYSLOG_TIMESTAMP=2023-11-14T22:13:20Z\n\
             CONTAINER_ID=0123456789ab\nCONTAINER_ID_FULL=0123456789abcdef\n\
             CONTAINER_NAME=web\nCONTAINER_TAG=0123456789ab\nIMAGE_NAME=alpine\n\
             SYSLOG_IDENTIFIER=0123456789ab\nCOM_X_Y=v\nCONTAINER_LOG_ORDINAL=7\n"
        );
        // A piece of a long line: dockerd's partial fields, the message
        // marker on all but the last piece.
        let piece = |last| {
            let e = Entry {
                source: "stdout".into(),
                time_nano: 1_700_000_000_120_000_000,
                line: b"x".to_vec(),
                partial: true,
                partial_log_metadata: Some(super::super::plugin::PartialMeta {
                    last,
                    id: "pid".into(),
                    ordinal: 2,
                }),
            };
            String::from_utf8(datagram(&[], &e, 1)).unwrap()
        };
        assert_eq!(
            piece(false),
            "MESSAGE=x\nPRIORITY=6\nSYSLOG_TIMESTAMP=2023-11-14T22:13:20.12Z\n\
             CONTAINER_PARTIAL_ID=pid\nCONTAINER_PARTIAL_ORDINAL=2\n\
             CONTAINER_PARTIAL_LAST=false\nCONTAINER_PARTIAL_MESSAGE=true\n\
             CONTAINER_LOG_ORDINAL=1\n"
        );
        assert!(!piece(true).contains("CONTAINER_PARTIAL_MESSAGE"));
        assert!(piece(true).contains("CONTAINER_PARTIAL_LAST=true\n"));
        let mut out = Vec::new();
        field(&mut out, "MESSAGE", b"a\nb");
        assert_eq!(out, b"MESSAGE\n\x03\0\0\0\0\0\0\0a\nb\n");
        assert_eq!(
            Journald
                .validate(&HashMap::from([("x".to_string(), String::new())]))
                .unwrap_err()
                .to_string(),
            "unknown log opt 'x' for journald log driver"
        );
    }

    fn fields(kv: &[(&str, &[u8])]) -> Fields {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect()
    }

    #[test]
    fn entries_are_read_back_as_dockerd_renders_them() {
        let f = fields(&[
            ("__REALTIME_TIMESTAMP", b"1700000000000001"),
            ("_PID", b"1"),
            ("MESSAGE", b"bad \xff"),
            ("PRIORITY", b"3"),
            ("CONTAINER_ID_FULL", b"abc"),
            ("COM_X", b"a b*~"),
            ("ALPHA", b"1"),
            ("CONTAINER_PARTIAL_MESSAGE", b"true"),
        ]);
        let r = record(&f, true).unwrap();
        assert_eq!(r.source, "stderr");
        assert_eq!(r.line, b"bad \xff");
        let framing = Framing {
            tty: true,
            timestamps: true,
            details: true,
        };
        assert_eq!(
            &render(&framing, &r).unwrap()[..],
            b"2023-11-14T22:13:20.000001000Z ALPHA=1,COM_X=a+b%2A~ bad \xff"
        );
        let plain = Framing {
            tty: false,
            timestamps: false,
            details: false,
        };
        let mut whole = f.clone();
        whole.retain(|(k, _)| k != "CONTAINER_PARTIAL_MESSAGE");
        let r = record(&whole, false).unwrap();
        assert!(r.attrs.is_empty());
        assert_eq!(
            render(&plain, &r).unwrap(),
            berth_api::stdcopy::frame(StreamType::Stderr, b"bad \xff\n")
        );
        // Another priority: no stream, not shown; no message: no entry.
        let mut other = whole.clone();
        other.retain(|(k, _)| k != "PRIORITY");
        assert!(render(&plain, &record(&other, false).unwrap()).is_none());
        other.retain(|(k, _)| k != "MESSAGE");
        assert!(record(&other, false).is_none());
        assert_eq!(
            rfc3339_nano(1_700_000_000_000_000_000),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            rfc3339_nano(1_700_000_000_000_000_100),
            "2023-11-14T22:13:20.0000001Z"
        );
    }
}
