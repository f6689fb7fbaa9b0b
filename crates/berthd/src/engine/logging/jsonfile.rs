//! The `json-file` driver. The shim writes the file (`berth-shim`'s
//! logger: one JSON object per line, rotated at `max-size` into `.1` …
//! `.N`); this side checks the options, tells the shim where and how to
//! write, and reads the file back (rotated files oldest first, then the
//! live one; with `Follow`, until the container stops and the file is
//! drained).

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{
    CapabilitiesResponse, Follow, Framing, Info, LogDriver, LogEntry, ReadConfig, ShimSink,
    JSON_FILE,
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
        tokio::spawn(read(
            PathBuf::from(&info.log_path),
            config,
            follow,
            Out::Entries(tx),
        ));
        Ok(rx)
    }

    fn read_framed(
        &self,
        info: &Info,
        config: ReadConfig,
        follow: Follow,
        framing: Framing,
    ) -> Result<mpsc::Receiver<Bytes>> {
        Ok(read_framed(
            PathBuf::from(&info.log_path),
            config,
            follow,
            framing,
        ))
    }
}

/// One line of the file, as the shim writes it (borrowed where it has no
/// escapes).
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    log: Cow<'a, str>,
    #[serde(borrow)]
    stream: Cow<'a, str>,
    #[serde(borrow)]
    time: Cow<'a, str>,
}

/// The line, or None when it is filtered out (or is not a log line).
fn parse<'a>(c: &ReadConfig, raw: &'a [u8]) -> Option<Line<'a>> {
    let l: Line = serde_json::from_slice(raw).ok()?;
    let wanted = match &*l.stream {
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
    Some(l)
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

/// The read buffer of a log file.
const READ_BUF: usize = 256 << 10;
/// A framed read sends its entries in chunks of about this size.
const CHUNK: usize = 128 << 10;

/// Reads whole lines from `rd`, adding each one's length to `pos`, and
/// hands those `c` wants to `f` (stream, time, text); stops at the end,
/// at a line the shim is still writing (it is read next time), or once
/// `f` says false. Gives the number of lines read, or None if `f` said
/// false.
fn scan(
    rd: &mut impl BufRead,
    c: &ReadConfig,
    pos: &mut u64,
    mut f: impl FnMut(&str, &str, &str) -> bool,
) -> Option<u64> {
    let mut buf = Vec::with_capacity(4096);
    let mut n = 0;
    loop {
        buf.clear();
        match rd.read_until(b'\n', &mut buf) {
            Ok(len) if len > 0 && buf.ends_with(b"\n") => {
                *pos += len as u64;
                n += 1;
            }
            _ => return Some(n),
        }
        if let Some(l) = parse(c, &buf) {
            if !f(&l.stream, &l.time, &l.log) {
                return None;
            }
        }
    }
}

/// Where the entries read go.
enum Out {
    /// One `LogEntry` each (`read_logs`).
    Entries(mpsc::Sender<LogEntry>),
    /// Rendered for `docker logs`, many to a chunk (`read_framed`).
    Framed {
        tx: mpsc::Sender<Bytes>,
        framing: Framing,
        buf: BytesMut,
    },
}

impl Out {
    /// Takes one entry; false once the receiver is gone. Blocks (the
    /// reader runs on a blocking thread).
    fn push(&mut self, source: &str, time: &str, line: &str) -> bool {
        match self {
            Out::Entries(tx) => tx
                .blocking_send(LogEntry {
                    source: source.into(),
                    time: time.into(),
                    line: line.into(),
                })
                .is_ok(),
            Out::Framed { framing, buf, .. } => {
                framing.put(buf, source, time, line);
                buf.len() < CHUNK || self.flush()
            }
        }
    }

    /// Sends what is batched; false once the receiver is gone.
    fn flush(&mut self) -> bool {
        match self {
            Out::Framed { tx, buf, .. } if !buf.is_empty() => {
                let chunk = buf.split().freeze();
                buf.reserve(CHUNK + 4096);
                tx.blocking_send(chunk).is_ok()
            }
            _ => true,
        }
    }

    /// Resolves once the receiver is gone.
    async fn closed(&self) {
        match self {
            Out::Entries(tx) => tx.closed().await,
            Out::Framed { tx, .. } => tx.closed().await,
        }
    }
}

/// A read of the log: what it wants, where it goes and how far into the
/// live file it is.
struct Reader {
    base: PathBuf,
    c: ReadConfig,
    out: Out,
    /// The read position in the live file, and that file's inode.
    pos: u64,
    ino: u64,
}

impl Reader {
    /// The lines there are: rotated files oldest first, then the live
    /// one; with a tail, its last entries over all of them. None once
    /// the receiver is gone.
    fn past(&mut self) -> Option<()> {
        let files = log_files(&self.base);
        let mut tail = self.c.tail.map(|n| (n, VecDeque::new()));
        for (i, f) in files.iter().enumerate() {
            let Ok(file) = std::fs::File::open(f) else {
                continue;
            };
            let live = i == files.len() - 1;
            if live {
                if let Ok(m) = file.metadata() {
                    self.ino = m.ino();
                }
            }
            let mut pos = 0;
            let mut rd = BufReader::with_capacity(READ_BUF, file);
            let out = &mut self.out;
            scan(&mut rd, &self.c, &mut pos, |source, time, line| {
                let Some((n, ring)) = &mut tail else {
                    return out.push(source, time, line);
                };
                if *n > 0 {
                    if ring.len() == *n {
                        ring.pop_front();
                    }
                    ring.push_back(LogEntry {
                        source: source.into(),
                        time: time.into(),
                        line: line.into(),
                    });
                }
                true
            })?;
            if live {
                self.pos = pos;
            }
        }
        for e in tail.map(|t| t.1).unwrap_or_default() {
            if !self.out.push(&e.source, &e.time, &e.line) {
                return None;
            }
        }
        self.out.flush().then_some(())
    }

    /// One pass of a follow: the live file's new lines (a new file after
    /// a rotation from its beginning). None once the receiver is gone,
    /// else whether any whole line was read.
    fn pass(&mut self) -> Option<bool> {
        let Ok(mut f) = std::fs::File::open(&self.base) else {
            return Some(false);
        };
        let meta = f.metadata().ok();
        let (ino, len) = meta.map(|m| (m.ino(), m.len())).unwrap_or((0, 0));
        if ino != self.ino || len < self.pos {
            // Rotated: start the new file from its beginning.
            self.ino = ino;
            self.pos = 0;
        }
        let mut n = 0;
        if len > self.pos && f.seek(SeekFrom::Start(self.pos)).is_ok() {
            let mut rd = BufReader::with_capacity(READ_BUF, f);
            let out = &mut self.out;
            n = scan(&mut rd, &self.c, &mut self.pos, |source, time, line| {
                out.push(source, time, line)
            })?;
        }
        self.out.flush().then_some(n > 0)
    }
}

/// Runs `step` of the reader on a blocking thread and gives the reader
/// back with its answer; None when the step says so (the receiver is
/// gone) or the thread failed.
async fn blocking<T: Send + 'static>(
    mut r: Reader,
    step: fn(&mut Reader) -> Option<T>,
) -> Option<(Reader, T)> {
    tokio::task::spawn_blocking(move || step(&mut r).map(|v| (r, v)))
        .await
        .ok()
        .flatten()
}

/// Reads the log into `out`: the past lines and, with `Follow`, the live
/// file until the container stops and the file is drained. The file is
/// read on blocking threads; a follow waits between passes as a task.
async fn read(base: PathBuf, c: ReadConfig, follow: Follow, out: Out) {
    let Follow {
        mut producer,
        mut shutdown,
    } = follow;
    let r = Reader {
        base,
        c,
        out,
        pos: 0,
        ino: 0,
    };
    let Some((mut r, ())) = blocking(r, Reader::past).await else {
        return;
    };
    if !r.c.follow {
        return;
    }
    // Follow: poll the live file until the container stops and the file
    // is drained.
    let mut stopping = producer.gone();
    loop {
        let Some((next, got)) = blocking(r, Reader::pass).await else {
            return;
        };
        r = next;
        if stopping && !got {
            return;
        }
        if r.c
            .until
            .is_some_and(|u| u <= crate::engine::events::now_nanos())
        {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = producer.changed() => {}
            _ = r.out.closed() => return,
            _ = shutdown.changed() => return,
        }
        if producer.gone() {
            // One more pass picks up the last lines.
            stopping = true;
        }
    }
}

/// `read_framed` of a json-file: the entries rendered as `framing` says,
/// in chunks of many.
pub fn read_framed(
    path: PathBuf,
    config: ReadConfig,
    follow: Follow,
    framing: Framing,
) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(8);
    let out = Out::Framed {
        tx,
        framing,
        buf: BytesMut::with_capacity(CHUNK + 4096),
    };
    tokio::spawn(read(path, config, follow, out));
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::stdcopy::{frame, StreamType};
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

    #[tokio::test]
    async fn framed_reads_batch_many_frames_and_keep_the_tail() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("c-json.log");
        // Enough lines for several chunks, both streams, one escaped text.
        let n = 20_000;
        let mut file = String::new();
        for i in 0..n {
            let stream = if i % 3 == 0 { "stderr" } else { "stdout" };
            let log = format!("line {i} \"q\" \u{e9}\n");
            let time = format!("2024-01-01T00:00:{:02}.{i:09}Z", i % 60);
            file.push_str(
                &serde_json::json!({"log": log, "stream": stream, "time": time}).to_string(),
            );
            file.push('\n');
        }
        std::fs::write(&base, file).unwrap();
        let read = |c: ReadConfig, framing: Framing| {
            let (_tx, shutdown) = tokio::sync::watch::channel(false);
            let follow = Follow {
                producer: Box::new(Gone),
                shutdown,
            };
            let mut rx = read_framed(base.clone(), c, follow, framing);
            async move {
                let (mut chunks, mut out) = (0, Vec::new());
                while let Some(b) = rx.recv().await {
                    chunks += 1;
                    out.extend_from_slice(&b);
                }
                (chunks, out)
            }
        };
        let all = ReadConfig {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        // The same bytes as one frame per entry, in far fewer chunks.
        let (chunks, got) = read(all.clone(), Framing::default()).await;
        let mut want = Vec::new();
        for i in 0..n {
            let s = if i % 3 == 0 {
                StreamType::Stderr
            } else {
                StreamType::Stdout
            };
            want.extend_from_slice(&frame(s, format!("line {i} \"q\" \u{e9}\n").as_bytes()));
        }
        assert_eq!(got, want);
        assert!(chunks > 1 && chunks < 20, "{chunks} chunks");
        // With a TTY and timestamps: the stored time, a blank, the text;
        // the tail counts the chosen stream only (n - 2 is on stderr).
        let c = ReadConfig {
            tail: Some(2),
            stderr: false,
            ..all.clone()
        };
        let framing = Framing {
            tty: true,
            timestamps: true,
        };
        let (_, got) = read(c, framing).await;
        assert_eq!(
            String::from_utf8(got).unwrap(),
            format!(
                "2024-01-01T00:00:{:02}.{:09}Z line {} \"q\" \u{e9}\n\
                 2024-01-01T00:00:{:02}.{:09}Z line {} \"q\" \u{e9}\n",
                (n - 3) % 60,
                n - 3,
                n - 3,
                (n - 1) % 60,
                n - 1,
                n - 1
            )
        );
        let c = ReadConfig {
            tail: Some(0),
            ..all
        };
        assert!(read(c, Framing::default()).await.1.is_empty());
    }
}
