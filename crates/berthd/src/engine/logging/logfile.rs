//! The log files the shim writes for the file drivers (`json-file`,
//! `local`), read back: their names (the live `<base>`, rotated
//! `<base>.1` … `<base>.N`, each possibly `<base>.N.gz` once compressed;
//! a plain `.N` is preferred while both exist, as the shim compresses
//! into `.N.gz` before it removes `.N`), their two record formats, and a
//! read over all of them (oldest first, then the live one) that, with
//! `Follow`, goes on across rotations until the container stops.
//!
//! A follow holds the live file open: once the name points at another
//! file the one held is finished (the shim never writes to a file after
//! renaming it), so it is read to its end first, then any file rotated
//! out after it that the follower missed (several rotations between two
//! passes: found by their first record's time, later than the last one
//! read), then the new live file from its start. No line is lost or read
//! twice. Passes are a bounded poll (50 ms, or the container's change of
//! state): no watch to set up per reader, and it works on any file system.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{Follow, Framing, LogEntry, ReadConfig};

/// The record format of a log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// json-file: one JSON object per line.
    Json,
    /// local: a protobuf `LogEntry`, its length (4 bytes, big-endian)
    /// before and after it.
    Local,
}

/// One line of a json-file, as the shim writes it (borrowed where it has
/// no escapes).
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    log: Cow<'a, str>,
    #[serde(borrow)]
    stream: Cow<'a, str>,
    #[serde(borrow)]
    time: Cow<'a, str>,
    /// json-file's extra attributes (`labels`, `env`, `tag` options).
    #[serde(borrow, default)]
    attrs: Option<std::collections::BTreeMap<Cow<'a, str>, Cow<'a, str>>>,
}

/// A record decoded: source, time as `--timestamps` shows it, text, and
/// the extra attributes as `--details` shows them (when asked for).
struct Rec<'a> {
    source: Cow<'a, str>,
    time: Cow<'a, str>,
    line: Cow<'a, str>,
    attrs: String,
}

/// Records larger than this are refused (a line is at most 16 KiB).
const MAX_RECORD: usize = 2 << 20;

/// Reads one whole record into `buf` (a local record without its
/// lengths); its size on disk, or None at the end, at a record still
/// being written, or at a damaged one.
fn read_record(rd: &mut impl BufRead, format: Format, buf: &mut Vec<u8>) -> Option<u64> {
    match format {
        Format::Json => match rd.read_until(b'\n', buf) {
            Ok(len) if len > 0 && buf.ends_with(b"\n") => Some(len as u64),
            _ => None,
        },
        Format::Local => {
            let mut len = [0u8; 4];
            rd.read_exact(&mut len).ok()?;
            let n = u32::from_be_bytes(len) as usize;
            if n > MAX_RECORD {
                return None;
            }
            buf.resize(n + 4, 0);
            rd.read_exact(buf).ok()?;
            if buf[n..] != len {
                return None;
            }
            buf.truncate(n);
            Some(n as u64 + 8)
        }
    }
}

fn wanted(c: &ReadConfig, source: &str) -> bool {
    match source {
        "stdout" => c.stdout,
        "stderr" => c.stderr,
        _ => false,
    }
}

fn in_window(c: &ReadConfig, t: i64) -> bool {
    !(c.since.is_some_and(|s| t < s) || c.until.is_some_and(|u| t > u))
}

/// The record, or None when it is filtered out (or is not a record).
fn decode<'a>(format: Format, c: &ReadConfig, raw: &'a [u8]) -> Option<Rec<'a>> {
    match format {
        Format::Json => {
            let l: Line = serde_json::from_slice(raw).ok()?;
            if !wanted(c, &l.stream) {
                return None;
            }
            if c.since.is_some() || c.until.is_some() {
                let t = chrono::DateTime::parse_from_rfc3339(&l.time)
                    .ok()?
                    .timestamp_nanos_opt()?;
                if !in_window(c, t) {
                    return None;
                }
            }
            let attrs = match (&l.attrs, c.details) {
                (Some(a), true) => super::details(a.iter().map(|(k, v)| (&**k, &**v))),
                _ => String::new(),
            };
            Some(Rec {
                source: l.stream,
                time: l.time,
                line: l.log,
                attrs,
            })
        }
        Format::Local => {
            let e = <super::plugin::Entry as prost::Message>::decode(raw).ok()?;
            if !wanted(c, &e.source) || !in_window(c, e.time_nano) {
                return None;
            }
            let e = super::plugin::to_entry(e);
            Some(Rec {
                source: Cow::Owned(e.source),
                time: Cow::Owned(e.time),
                line: Cow::Owned(e.line),
                attrs: String::new(),
            })
        }
    }
}

/// The time of a record (Unix nanoseconds).
fn record_nanos(format: Format, raw: &[u8]) -> Option<i64> {
    match format {
        Format::Json => {
            let l: Line = serde_json::from_slice(raw).ok()?;
            chrono::DateTime::parse_from_rfc3339(&l.time)
                .ok()?
                .timestamp_nanos_opt()
        }
        Format::Local => <super::plugin::Entry as prost::Message>::decode(raw)
            .ok()
            .map(|e| e.time_nano),
    }
}

/// `<base>.<n>`, plain or compressed.
fn rotated_name(base: &Path, n: u32, gz: bool) -> PathBuf {
    let ext = if gz { ".gz" } else { "" };
    PathBuf::from(format!("{}.{n}{ext}", base.display()))
}

/// The numbers of the rotated files there are, oldest (highest) first.
fn rotated(base: &Path) -> Vec<u32> {
    let mut v: Vec<u32> = Vec::new();
    if let (Some(dir), Some(name)) = (base.parent(), base.file_name().and_then(|n| n.to_str())) {
        let prefix = format!("{name}.");
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let f = e.file_name().to_string_lossy().to_string();
                let Some(rest) = f.strip_prefix(&prefix) else {
                    continue;
                };
                let num = rest.strip_suffix(".gz").unwrap_or(rest);
                if let Ok(n) = num.parse::<u32>() {
                    if n > 0 && !v.contains(&n) {
                        v.push(n);
                    }
                }
            }
        }
    }
    v.sort_by_key(|n| std::cmp::Reverse(*n));
    v
}

/// A rotated file opened for reading: the plain one while it is there,
/// else the compressed one.
fn open_rotated(base: &Path, n: u32) -> Option<Box<dyn BufRead + Send>> {
    if let Ok(f) = File::open(rotated_name(base, n, false)) {
        return Some(Box::new(BufReader::with_capacity(READ_BUF, f)));
    }
    let f = File::open(rotated_name(base, n, true)).ok()?;
    Some(Box::new(BufReader::with_capacity(
        READ_BUF,
        flate2::read::GzDecoder::new(f),
    )))
}

/// A rotated file opened for a read of the set: its name, its inode
/// then, and its reader (None: compressed, and all older than `since`).
struct Opened {
    path: PathBuf,
    ino: u64,
    rd: Option<Box<dyn BufRead + Send>>,
}

/// The time of the last record of a compressed file, from its gzip
/// header's extra field (`{"lastTime": …}`, as dockerd and the shim
/// write it), in Unix nanoseconds.
fn gzip_last_time(gz: &flate2::read::GzDecoder<File>) -> Option<i64> {
    #[derive(Deserialize)]
    struct Meta<'a> {
        #[serde(rename = "lastTime", borrow)]
        last_time: Cow<'a, str>,
    }
    let extra = gz.header()?.extra()?;
    let m: Meta = serde_json::from_slice(extra).ok()?;
    chrono::DateTime::parse_from_rfc3339(&m.last_time)
        .ok()?
        .timestamp_nanos_opt()
}

/// Rotated file `n` opened (the plain one while it is there); a
/// compressed one whose last record is older than `since` is not read,
/// as dockerd skips it by its header.
fn open_at(base: &Path, n: u32, since: Option<i64>) -> Option<Opened> {
    let plain = rotated_name(base, n, false);
    if let Ok(f) = File::open(&plain) {
        let ino = f.metadata().ok()?.ino();
        let rd: Box<dyn BufRead + Send> = Box::new(BufReader::with_capacity(READ_BUF, f));
        return Some(Opened {
            path: plain,
            ino,
            rd: Some(rd),
        });
    }
    let path = rotated_name(base, n, true);
    let f = File::open(&path).ok()?;
    let ino = f.metadata().ok()?.ino();
    let gz = flate2::read::GzDecoder::new(f);
    let old = since.is_some_and(|s| gzip_last_time(&gz).is_some_and(|t| t < s));
    let rd: Option<Box<dyn BufRead + Send>> =
        (!old).then(|| Box::new(BufReader::with_capacity(READ_BUF, gz)) as _);
    Some(Opened { path, ino, rd })
}

/// How many times a read tries for a set of files no rotation changed.
const SNAPSHOT_TRIES: u32 = 50;

/// The files of the log as one consistent set: the live file and the
/// rotated ones to read (oldest first), all opened, then checked to be
/// still where they were (the same names, the same inodes). The shim
/// rotates by renames without a lock the daemon could share, so a read
/// racing a rotation sees it as a changed name and opens the set again;
/// once opened, the files' contents are fixed (a rotated file is never
/// written again) and a rename or removal no longer matters. After
/// [`SNAPSHOT_TRIES`] the last set is read as it is.
fn snapshot(base: &Path, since: Option<i64>) -> (Option<File>, Vec<Box<dyn BufRead + Send>>) {
    let ino_of = |p: &Path| std::fs::metadata(p).map(|m| m.ino()).ok();
    let mut tries = 0;
    loop {
        tries += 1;
        let live = File::open(base).ok();
        let live_ino = live
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.ino());
        let nums = rotated(base);
        let mut files = Vec::with_capacity(nums.len());
        for &n in &nums {
            // The live file rotated out since it was opened is read last.
            if live_ino.is_some() && ino_of(&rotated_name(base, n, false)) == live_ino {
                continue;
            }
            files.extend(open_at(base, n, since));
        }
        let same = ino_of(base) == live_ino
            && rotated(base) == nums
            && files.iter().all(|f| ino_of(&f.path) == Some(f.ino));
        if same || tries >= SNAPSHOT_TRIES {
            return (live, files.into_iter().filter_map(|f| f.rd).collect());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The read buffer of a log file.
const READ_BUF: usize = 256 << 10;
/// A framed read sends its entries in chunks of about this size.
const CHUNK: usize = 128 << 10;

/// Reads whole records from `rd`, adding each one's size to `pos` and
/// keeping the last one's bytes in `last`, and hands those `c` wants to
/// `f` (stream, time, attributes, text); stops at the end, at a record the shim is
/// still writing (it is read next time), or once `f` says false. Gives
/// the number of records read, or None if `f` said false.
fn scan(
    rd: &mut impl BufRead,
    format: Format,
    c: &ReadConfig,
    pos: &mut u64,
    last: &mut Vec<u8>,
    mut f: impl FnMut(&str, &str, &str, &str) -> bool,
) -> Option<u64> {
    let mut buf = Vec::with_capacity(4096);
    let mut n = 0;
    loop {
        buf.clear();
        let Some(len) = read_record(rd, format, &mut buf) else {
            return Some(n);
        };
        *pos += len;
        n += 1;
        if let Some(r) = decode(format, c, &buf) {
            if !f(&r.source, &r.time, &r.attrs, &r.line) {
                return None;
            }
        }
        std::mem::swap(&mut buf, last);
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
    fn push(&mut self, source: &str, time: &str, attrs: &str, line: &str) -> bool {
        match self {
            Out::Entries(tx) => tx
                .blocking_send(LogEntry {
                    source: source.into(),
                    time: time.into(),
                    line: line.into(),
                    attrs: attrs.into(),
                })
                .is_ok(),
            Out::Framed { framing, buf, .. } => {
                framing.put(buf, source, time, attrs, line);
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

/// A read of the log: what it wants, where it goes and the live file it
/// holds.
struct Reader {
    base: PathBuf,
    format: Format,
    c: ReadConfig,
    out: Out,
    /// The live file held, its inode and the read position in it.
    live: Option<File>,
    ino: u64,
    pos: u64,
    /// The last whole record read from the live file.
    last: Vec<u8>,
}

impl Reader {
    /// The records there are: rotated files oldest first, then the live
    /// one (held for a follow); with a tail, its last entries over all
    /// of them. None once the receiver is gone.
    fn past(&mut self) -> Option<()> {
        let mut tail = self.c.tail.map(|n| (n, VecDeque::new()));
        let mut scratch = Vec::new();
        let (format, c) = (self.format, &self.c);
        let out = &mut self.out;
        let mut take = |source: &str, time: &str, attrs: &str, line: &str| {
            let Some((n, ring)) = &mut tail else {
                return out.push(source, time, attrs, line);
            };
            if *n > 0 {
                if ring.len() == *n {
                    ring.pop_front();
                }
                ring.push_back(LogEntry {
                    source: source.into(),
                    time: time.into(),
                    line: line.into(),
                    attrs: attrs.into(),
                });
            }
            true
        };
        let (live, files) = snapshot(&self.base, c.since);
        if let Some(f) = &live {
            self.ino = f.metadata().map(|m| m.ino()).unwrap_or(0);
        }
        for mut rd in files {
            scan(&mut rd, format, c, &mut 0, &mut scratch, &mut take)?;
        }
        if let Some(file) = live {
            let mut rd = BufReader::with_capacity(READ_BUF, &file);
            scan(&mut rd, format, c, &mut self.pos, &mut self.last, &mut take)?;
            self.live = Some(file);
        }
        for e in tail.map(|t| t.1).unwrap_or_default() {
            if !self.out.push(&e.source, &e.time, &e.attrs, &e.line) {
                return None;
            }
        }
        self.out.flush().then_some(())
    }

    /// The live file's records from the read position; how many.
    fn drain(&mut self) -> Option<u64> {
        let Some(f) = self.live.as_mut() else {
            return Some(0);
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.pos {
            // Truncated: from its start again.
            self.pos = 0;
        }
        if len == self.pos || f.seek(SeekFrom::Start(self.pos)).is_err() {
            return Some(0);
        }
        let mut rd = BufReader::with_capacity(READ_BUF, &*f);
        let out = &mut self.out;
        scan(
            &mut rd,
            self.format,
            &self.c,
            &mut self.pos,
            &mut self.last,
            |source, time, attrs, line| out.push(source, time, attrs, line),
        )
    }

    /// The files rotated out after the one held and before `next` (the
    /// new live file), which the follower has not seen (more than one
    /// rotation since the last pass), read whole, oldest first.
    ///
    /// They are found by walking `.1`, `.2`, … upwards while the shim may
    /// be shifting them upwards too: a file cannot get past the walk
    /// unseen, as it moves one place per rotation and the walk visits
    /// every place; one seen twice is known by its first record. The walk
    /// stops at the held file (plain still), at the first file not newer
    /// than the held one's last record, or at two empty places in a row
    /// (a shift leaves one at a time).
    fn missed(&mut self, newer_than: i64, next: Option<&File>) -> Option<u64> {
        struct Found {
            t: i64,
            first: Vec<u8>,
            rd: Box<dyn BufRead + Send>,
        }
        let mut found: Vec<Found> = Vec::new();
        let (mut n, mut gaps) = (1u32, 0);
        while gaps < 2 && n < MAX_WALK {
            let plain = rotated_name(&self.base, n, false);
            if std::fs::metadata(&plain).is_ok_and(|m| m.ino() == self.ino) {
                break;
            }
            let opened = open_rotated(&self.base, n);
            n += 1;
            let Some(mut rd) = opened else {
                gaps += 1;
                continue;
            };
            gaps = 0;
            let mut first = Vec::new();
            if read_record(&mut rd, self.format, &mut first).is_none() {
                continue;
            }
            let Some(t) = record_nanos(self.format, &first) else {
                continue;
            };
            if t <= newer_than {
                break;
            }
            if !found.iter().any(|f| f.first == first) {
                found.push(Found { t, first, rd });
            }
        }
        // The new live file itself (rotated meanwhile) and any newer are
        // read after it, from its own rotation.
        if let Some(t_next) = next.and_then(|f| first_record_nanos(f, self.format)) {
            found.retain(|f| f.t < t_next);
        }
        found.sort_by_key(|f| f.t);
        let mut count = 0;
        for mut f in found {
            let mut last = f.first.clone();
            if let Some(r) = decode(self.format, &self.c, &f.first) {
                if !self.out.push(&r.source, &r.time, &r.attrs, &r.line) {
                    return None;
                }
            }
            let out = &mut self.out;
            count += 1 + scan(
                &mut f.rd,
                self.format,
                &self.c,
                &mut 0,
                &mut last,
                |source, time, attrs, line| out.push(source, time, attrs, line),
            )?;
            self.last = last;
        }
        Some(count)
    }

    /// One pass of a follow: the live file's new records; after a
    /// rotation, the end of the file held, what was missed, and the new
    /// live file from its beginning. None once the receiver is gone,
    /// else whether any whole record was read.
    fn pass(&mut self) -> Option<bool> {
        if self.live.is_none() {
            let Ok(f) = File::open(&self.base) else {
                return Some(false);
            };
            self.ino = f.metadata().map(|m| m.ino()).unwrap_or(0);
            self.pos = 0;
            self.live = Some(f);
        }
        let mut n = self.drain()?;
        let now = std::fs::metadata(&self.base).map(|m| m.ino()).ok();
        if now.is_some_and(|i| i != self.ino) {
            // Rotated: the shim no longer writes the file held.
            n += self.drain()?;
            // The new live file is held before the walk, so that nothing
            // rotated out after the walk is missed.
            let next = File::open(&self.base).ok();
            if let Some(t) = record_nanos(self.format, &self.last) {
                n += self.missed(t, next.as_ref())?;
            }
            self.live = None;
            if let Some(f) = next {
                self.ino = f.metadata().map(|m| m.ino()).unwrap_or(0);
                self.pos = 0;
                self.live = Some(f);
                n += self.drain()?;
            }
        }
        self.out.flush().then_some(n > 0)
    }
}

/// How far up a walk of the rotated files goes at most.
const MAX_WALK: u32 = 100_000;

/// The time of a file's first record, if it has one yet.
fn first_record_nanos(f: &File, format: Format) -> Option<i64> {
    let mut rd = BufReader::new(f);
    (&*f).seek(SeekFrom::Start(0)).ok()?;
    let mut first = Vec::new();
    read_record(&mut rd, format, &mut first)?;
    record_nanos(format, &first)
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

/// Reads the log into `out`: the past records and, with `Follow`, the
/// live file until the container stops and the file is drained. The
/// files are read on blocking threads; a follow waits between passes as
/// a task.
async fn read(base: PathBuf, format: Format, c: ReadConfig, follow: Follow, out: Out) {
    let Follow {
        mut producer,
        mut shutdown,
    } = follow;
    let r = Reader {
        base,
        format,
        c,
        out,
        live: None,
        ino: 0,
        pos: 0,
        last: Vec::new(),
    };
    let Some((mut r, ())) = blocking(r, Reader::past).await else {
        return;
    };
    if !r.c.follow {
        return;
    }
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
            // One more pass picks up the last records.
            stopping = true;
        }
    }
}

/// `read_logs` of a log file: one entry each.
pub fn read_logs(
    base: PathBuf,
    format: Format,
    config: ReadConfig,
    follow: Follow,
) -> mpsc::Receiver<LogEntry> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(read(base, format, config, follow, Out::Entries(tx)));
    rx
}

/// `read_framed` of a log file: the entries rendered as `framing` says,
/// in chunks of many.
pub fn read_framed(
    base: PathBuf,
    format: Format,
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
    tokio::spawn(read(base, format, config, follow, out));
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::stdcopy::{frame, StreamType};
    use std::future::Future;
    use std::io::Write;
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

    fn gone() -> Follow {
        let (_tx, shutdown) = tokio::sync::watch::channel(false);
        Follow {
            producer: Box::new(Gone),
            shutdown,
        }
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
        let read = |c: ReadConfig| {
            let mut rx = read_logs(base.clone(), Format::Json, c, gone());
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
            let mut rx = read_framed(base.clone(), Format::Json, c, gone(), framing);
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
            details: false,
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

    /// A record of `format` with the text `t`, at second `i`.
    fn record(format: Format, t: &str, i: u32) -> Vec<u8> {
        let nanos = 1_704_067_200_000_000_000 + i64::from(i) * 1_000_000_000;
        match format {
            Format::Json => {
                let time = chrono::DateTime::from_timestamp_nanos(nanos)
                    .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
                let mut v = serde_json::to_vec(
                    &serde_json::json!({"log": format!("{t}\n"), "stream": "stdout", "time": time}),
                )
                .unwrap();
                v.push(b'\n');
                v
            }
            Format::Local => {
                let mut v = Vec::new();
                berth_api::logentry::encode_frame(&mut v, "stdout", nanos, t.as_bytes(), None);
                let len = v[..4].to_vec();
                v.extend_from_slice(&len);
                v
            }
        }
    }

    fn append(path: &Path, format: Format, from: u32, to: u32) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        for i in from..to {
            f.write_all(&record(format, &format!("line {i}"), i))
                .unwrap();
        }
    }

    fn gzip(path: &Path) {
        let data = std::fs::read(path).unwrap();
        let gz = PathBuf::from(format!("{}.gz", path.display()));
        let mut e = flate2::write::GzEncoder::new(
            std::fs::File::create(gz).unwrap(),
            flate2::Compression::default(),
        );
        e.write_all(&data).unwrap();
        e.finish().unwrap();
        std::fs::remove_file(path).unwrap();
    }

    /// The shim's rotation with three files, compressing.
    fn rotate(base: &Path) {
        let n = |i: u32, gz: bool| rotated_name(base, i, gz);
        let _ = std::fs::remove_file(n(2, true));
        if n(1, true).exists() {
            std::fs::rename(n(1, true), n(2, true)).unwrap();
        }
        std::fs::rename(base, n(1, false)).unwrap();
    }

    fn reader(
        base: &Path,
        format: Format,
        tail: Option<usize>,
    ) -> (Reader, mpsc::Receiver<LogEntry>) {
        let (tx, rx) = mpsc::channel(10_000);
        let c = ReadConfig {
            stdout: true,
            stderr: true,
            tail,
            follow: true,
            ..Default::default()
        };
        let r = Reader {
            base: base.to_path_buf(),
            format,
            c,
            out: Out::Entries(tx),
            live: None,
            ino: 0,
            pos: 0,
            last: Vec::new(),
        };
        (r, rx)
    }

    fn lines(rx: &mut mpsc::Receiver<LogEntry>) -> Vec<String> {
        let mut v = Vec::new();
        while let Ok(e) = rx.try_recv() {
            v.push(e.line.trim_end().to_string());
        }
        v
    }

    fn want(from: u32, to: u32) -> Vec<String> {
        (from..to).map(|i| format!("line {i}")).collect()
    }

    #[test]
    fn compressed_and_plain_rotated_files_are_read_in_order() {
        for format in [Format::Json, Format::Local] {
            let tmp = tempfile::tempdir().unwrap();
            let base = tmp.path().join("container.log");
            append(&base, format, 0, 3);
            rotate(&base);
            gzip(&rotated_name(&base, 1, false));
            append(&base, format, 3, 6);
            rotate(&base);
            // `.1` is plain still, `.2.gz` compressed; a stray temporary
            // file is no log.
            std::fs::write(format!("{}.1.gz.tmp", base.display()), b"junk").unwrap();
            append(&base, format, 6, 8);
            assert_eq!(rotated(&base), [2, 1]);
            let (mut r, mut rx) = reader(&base, format, None);
            r.past().unwrap();
            assert_eq!(lines(&mut rx), want(0, 8), "{format:?}");
            let (mut r, mut rx) = reader(&base, format, Some(3));
            r.past().unwrap();
            assert_eq!(lines(&mut rx), want(5, 8), "{format:?}");
        }
    }

    #[test]
    fn compressed_files_older_than_since_are_skipped_by_their_header() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("c-json.log");
        // `.2.gz` says its last record is at second 5, though it holds
        // records of seconds 10..12: the header alone decides, as dockerd.
        let gz = |n: u32, last: u32, from: u32, to: u32| {
            let time = |i: u32| {
                chrono::DateTime::from_timestamp_nanos(
                    1_704_067_200_000_000_000 + i64::from(i) * 1_000_000_000,
                )
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
            };
            let extra = serde_json::json!({ "lastTime": time(last) }).to_string();
            let mut e = flate2::GzBuilder::new().extra(extra.into_bytes()).write(
                std::fs::File::create(rotated_name(&base, n, true)).unwrap(),
                flate2::Compression::default(),
            );
            for i in from..to {
                e.write_all(&record(Format::Json, &format!("line {i}"), i))
                    .unwrap();
            }
            e.finish().unwrap();
        };
        gz(2, 5, 10, 12);
        gz(1, 21, 20, 22);
        append(&base, Format::Json, 30, 31);
        let since = |s: u32| 1_704_067_200_000_000_000 + i64::from(s) * 1_000_000_000;
        let read = |from: Option<i64>| {
            let (mut r, mut rx) = reader(&base, Format::Json, None);
            r.c.since = from;
            r.past().unwrap();
            lines(&mut rx)
        };
        assert_eq!(read(Some(since(6))), ["line 20", "line 21", "line 30"]);
        // Without --since every file is read, whatever its header.
        assert_eq!(
            read(None),
            ["line 10", "line 11", "line 20", "line 21", "line 30"]
        );
        // A file whose last record is not before --since is read, and its
        // records filtered one by one.
        assert_eq!(read(Some(since(21))), ["line 21", "line 30"]);
    }

    #[test]
    fn a_follow_crosses_rotations_without_losing_or_doubling() {
        for format in [Format::Json, Format::Local] {
            let tmp = tempfile::tempdir().unwrap();
            let base = tmp.path().join("container.log");
            append(&base, format, 0, 3);
            let (mut r, mut rx) = reader(&base, format, None);
            r.past().unwrap();
            assert_eq!(lines(&mut rx), want(0, 3));
            // Lines after the last pass, then a rotation.
            append(&base, format, 3, 5);
            rotate(&base);
            append(&base, format, 5, 7);
            assert!(r.pass().unwrap());
            assert_eq!(lines(&mut rx), want(3, 7), "{format:?}");
            // Two rotations between passes, one file compressed meanwhile:
            // the file in between is found by its times.
            append(&base, format, 7, 8);
            rotate(&base);
            gzip(&rotated_name(&base, 1, false));
            append(&base, format, 8, 10);
            rotate(&base);
            append(&base, format, 10, 11);
            assert!(r.pass().unwrap());
            assert_eq!(lines(&mut rx), want(7, 11), "{format:?}");
            assert!(!r.pass().unwrap());
            assert!(lines(&mut rx).is_empty());
        }
    }

    #[test]
    fn local_records_decode_with_partial_pieces() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("container.log");
        let mut data = Vec::new();
        for (text, last, ord) in [("ab", false, 1), ("cd", true, 2)] {
            let p = berth_api::logentry::Partial {
                last,
                id: "x",
                ordinal: ord,
            };
            let at = data.len();
            berth_api::logentry::encode_frame(&mut data, "stderr", 5, text.as_bytes(), Some(&p));
            let len = data[at..at + 4].to_vec();
            data.extend_from_slice(&len);
        }
        // A record cut short (being written) is left for later.
        data.extend_from_slice(&[0, 0, 0, 9, 1]);
        std::fs::write(&base, data).unwrap();
        let (mut r, mut rx) = reader(&base, Format::Local, None);
        r.past().unwrap();
        let got: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| format!("{}|{}|{}", e.source, e.time, e.line))
            .collect();
        assert_eq!(
            got,
            [
                "stderr|1970-01-01T00:00:00.000000005Z|ab",
                "stderr|1970-01-01T00:00:00.000000005Z|cd\n"
            ]
        );
    }
}
