//! The container's log file, as dockerd's file drivers write it:
//! `json-file` (one JSON object per line,
//! `{"log":"...","stream":"stdout","time":"<RFC3339Nano>"}`) or `local`
//! (one protobuf `LogEntry` per record, its length as 4 big-endian bytes
//! before and after it, the newline left out and long lines' pieces
//! marked partial). Output is split on newlines (a partial line is
//! flushed at 16 KiB or at the end), with `max-size`/`max-file` rotation
//! into `<name>.1` … and, with `compress`, gzip: the file just rotated
//! out is compressed into `<name>.1.gz` by a task of the shim's own
//! thread, 64 KiB at a time between the output's turns (the shim stays
//! single-threaded, which its forks rely on, and the container's output
//! waits for one step at most), as dockerd leaves `.1` plain until its
//! compression is done.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use berth_api::logentry::{encode_frame, Partial};
use berth_api::shim::ShimConfig;

const MAX_PARTIAL: usize = 16 * 1024;

/// A json-file line, in dockerd's key order: `log`, `stream`, `attrs`
/// (when there are any: the JSON object the daemon made), `time`.
fn json_line(text: &str, stream: &str, attrs: &str, time: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() + attrs.len() + 80);
    out.extend_from_slice(b"{\"log\":");
    serde_json::to_writer(&mut out, text).ok()?;
    out.extend_from_slice(b",\"stream\":\"");
    out.extend_from_slice(stream.as_bytes());
    if !attrs.is_empty() {
        out.extend_from_slice(b"\",\"attrs\":");
        out.extend_from_slice(attrs.as_bytes());
        out.extend_from_slice(b",\"time\":\"");
    } else {
        out.extend_from_slice(b"\",\"time\":\"");
    }
    out.extend_from_slice(time.as_bytes());
    out.extend_from_slice(b"\"}\n");
    Some(out)
}

/// The record format of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Local,
}

/// A long line being cut into pieces (local format), per stream.
#[derive(Default)]
struct Pieces {
    id: String,
    ordinal: i32,
}

pub struct LogFile {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    max_size: u64,
    max_file: u32,
    compress: bool,
    format: Format,
    /// json-file's `attrs` object (empty: none).
    attrs: String,
    partial: [Vec<u8>; 2],
    pieces: [Pieces; 2],
    /// The time of the last record written (the gzip header's `lastTime`).
    last_time: String,
    /// The compression of the file rotated out last, while unfinished.
    compressing: Option<Rc<RefCell<Option<Compression>>>>,
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// `<base>.<i>` (`<base>` for 0), with `.gz` when compressed.
fn rotated(base: &Path, i: u32, gz: bool) -> PathBuf {
    match (i, gz) {
        (0, _) => base.to_path_buf(),
        (i, false) => PathBuf::from(format!("{}.{i}", base.display())),
        (i, true) => PathBuf::from(format!("{}.{i}.gz", base.display())),
    }
}

/// How much of the file a step of a compression reads.
const STEP: usize = 64 * 1024;

/// The compression of `src` into `<src>.gz`, a step at a time: through a
/// temporary file renamed into place (so a crash leaves the plain file,
/// or both whole), the gzip header's extra field holding
/// `{"lastTime": …}` as dockerd's; then `src` goes.
struct Compression {
    src: PathBuf,
    tmp: PathBuf,
    input: File,
    enc: Option<flate2::write::GzEncoder<File>>,
    buf: Vec<u8>,
}

impl Compression {
    fn start(src: &Path, last_time: &str) -> std::io::Result<Self> {
        let tmp = PathBuf::from(format!("{}.gz.tmp", src.display()));
        let extra = serde_json::json!({ "lastTime": last_time }).to_string();
        let input = File::open(src)?;
        let enc = flate2::GzBuilder::new()
            .extra(extra.into_bytes())
            .write(File::create(&tmp)?, flate2::Compression::default());
        Ok(Self {
            src: src.to_path_buf(),
            tmp,
            input,
            enc: Some(enc),
            buf: vec![0; STEP],
        })
    }

    /// One step; true once done (or failed: the plain file stays).
    fn step(&mut self) -> bool {
        match self.try_step() {
            Ok(done) => done,
            Err(e) => {
                eprintln!("berth-shim: compressing {}: {e}", self.src.display());
                let _ = std::fs::remove_file(&self.tmp);
                true
            }
        }
    }

    fn try_step(&mut self) -> std::io::Result<bool> {
        let Some(enc) = self.enc.as_mut() else {
            return Ok(true);
        };
        let n = self.input.read(&mut self.buf)?;
        if n > 0 {
            enc.write_all(&self.buf[..n])?;
            return Ok(false);
        }
        if let Some(enc) = self.enc.take() {
            enc.finish()?.sync_all()?;
        }
        let gz = PathBuf::from(format!("{}.gz", self.src.display()));
        std::fs::rename(&self.tmp, gz)?;
        std::fs::remove_file(&self.src)?;
        Ok(true)
    }

    /// The remaining steps, at once.
    fn finish(&mut self) {
        while !self.step() {}
    }
}

impl LogFile {
    pub fn open(cfg: &ShimConfig) -> std::io::Result<Self> {
        let path = PathBuf::from(&cfg.log_path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path,
            file: Some(file),
            size,
            max_size: cfg.log_max_size,
            max_file: cfg.log_max_file.max(1),
            compress: cfg.log_compress && cfg.log_max_file > 1,
            format: if cfg.log_format == "local" {
                Format::Local
            } else {
                Format::Json
            },
            attrs: cfg.log_attrs.clone(),
            partial: [Vec::new(), Vec::new()],
            pieces: Default::default(),
            last_time: String::new(),
            compressing: None,
        })
    }

    /// Appends output of `stream` (0 = stdout, 1 = stderr).
    pub fn write(&mut self, stream: usize, data: &[u8]) {
        let mut buf = std::mem::take(&mut self.partial[stream]);
        buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + nl + 1;
            self.emit(stream, &buf[start..end]);
            start = end;
        }
        let mut rest = buf.split_off(start);
        while rest.len() >= MAX_PARTIAL {
            let tail = rest.split_off(MAX_PARTIAL);
            self.emit(stream, &rest);
            rest = tail;
        }
        self.partial[stream] = rest;
    }

    /// Writes out any partial lines (at EOF) and waits for a compression
    /// under way.
    pub fn flush(&mut self) {
        for s in 0..2 {
            let rest = std::mem::take(&mut self.partial[s]);
            if !rest.is_empty() {
                self.emit(s, &rest);
            }
        }
        self.finish_compression();
    }

    /// Completes the compression under way, if any.
    fn finish_compression(&mut self) {
        if let Some(job) = self.compressing.take() {
            if let Some(mut c) = job.borrow_mut().take() {
                c.finish();
            }
        }
    }

    /// Compresses `src` by steps in a task of the shim's thread (at
    /// once outside a runtime: the unit tests).
    fn compress(&mut self, src: &Path) {
        let mut c = match Compression::start(src, &self.last_time) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("berth-shim: compressing {}: {e}", src.display());
                return;
            }
        };
        if tokio::runtime::Handle::try_current().is_err() {
            c.finish();
            return;
        }
        let job = Rc::new(RefCell::new(Some(c)));
        let j = job.clone();
        tokio::task::spawn_local(async move {
            loop {
                let done = {
                    let mut g = j.borrow_mut();
                    let done = g.as_mut().is_none_or(Compression::step);
                    if done {
                        *g = None;
                    }
                    done
                };
                if done {
                    return;
                }
                tokio::task::yield_now().await;
            }
        });
        self.compressing = Some(job);
    }

    /// One record: `msg` ends with its newline, or is a piece of a line.
    fn emit(&mut self, stream: usize, msg: &[u8]) {
        let now = chrono::Utc::now();
        let time = now.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let source = if stream == 0 { "stdout" } else { "stderr" };
        let bytes = match self.format {
            Format::Json => {
                let text = String::from_utf8_lossy(msg);
                let Some(bytes) = json_line(&text, source, &self.attrs, &time) else {
                    return;
                };
                bytes
            }
            Format::Local => {
                let nanos = now.timestamp_nanos_opt().unwrap_or_default();
                local_record(&mut self.pieces[stream], source, nanos, msg)
            }
        };
        if self.max_size > 0 && self.size > 0 && self.size + bytes.len() as u64 > self.max_size {
            self.rotate();
        }
        if let Some(f) = self.file.as_mut() {
            if f.write_all(&bytes).is_ok() {
                self.size += bytes.len() as u64;
                self.last_time = time;
            }
        }
    }

    fn rotate(&mut self) {
        self.file = None;
        // One compression at a time: the previous one makes `.1.gz`
        // before the files shift (finished here only when a file fills
        // faster than the one before it compresses).
        self.finish_compression();
        let base = self.path.clone();
        let gz = self.compress;
        if self.max_file <= 1 {
            let _ = std::fs::remove_file(&base);
        } else {
            if gz && rotated(&base, 1, false).exists() {
                // Left plain by a shim that died while compressing.
                if let Ok(mut c) = Compression::start(&rotated(&base, 1, false), &self.last_time) {
                    c.finish();
                }
            }
            let _ = std::fs::remove_file(rotated(&base, self.max_file - 1, gz));
            for i in (1..self.max_file - 1).rev() {
                let _ = std::fs::rename(rotated(&base, i, gz), rotated(&base, i + 1, gz));
            }
            let _ = std::fs::rename(&base, rotated(&base, 1, false));
            if gz {
                self.compress(&rotated(&base, 1, false));
            }
        }
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .truncate(false)
            .open(&self.path)
            .ok();
        self.size = 0;
    }
}

/// A `local` record: the framed `LogEntry` and its length again after
/// it. A whole line loses its newline; the pieces of a long one share an
/// ID and count from 1, the one with the newline being `last`.
fn local_record(p: &mut Pieces, source: &str, nanos: i64, msg: &[u8]) -> Vec<u8> {
    let ends = msg.ends_with(b"\n");
    let line = if ends { &msg[..msg.len() - 1] } else { msg };
    let mut out = Vec::with_capacity(line.len() + 128);
    if ends && p.ordinal == 0 {
        encode_frame(&mut out, source, nanos, line, None);
    } else {
        if p.ordinal == 0 {
            p.id = crate::pluginlog::random_id();
        }
        p.ordinal += 1;
        let meta = Partial {
            last: ends,
            id: &p.id,
            ordinal: p.ordinal,
        };
        encode_frame(&mut out, source, nanos, line, Some(&meta));
        if ends {
            p.ordinal = 0;
        }
    }
    let mut len = [0u8; 4];
    len.copy_from_slice(&out[..4]);
    out.extend_from_slice(&len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(path: &Path, max_size: u64, max_file: u32, compress: bool, format: &str) -> ShimConfig {
        ShimConfig {
            log_path: path.display().to_string(),
            log_max_size: max_size,
            log_max_file: max_file,
            log_compress: compress,
            log_format: format.into(),
            ..Default::default()
        }
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("berth-log-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn splits_lines_and_rotates() {
        let dir = tmpdir("json");
        let p = dir.join("c-json.log");
        let mut l = LogFile::open(&cfg(&p, 400, 2, false, "")).unwrap();
        l.write(0, b"hello\nwor");
        l.write(0, b"ld\n");
        l.write(1, b"oops");
        l.flush();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|x| serde_json::from_str(x).unwrap())
            .collect();
        assert_eq!(lines[0]["log"], "hello\n");
        assert_eq!(lines[1]["log"], "world\n");
        assert_eq!(lines[2]["log"], "oops");
        assert_eq!(lines[2]["stream"], "stderr");
        for _ in 0..10 {
            l.write(0, b"0123456789012345678901234567890123456789\n");
        }
        assert!(dir.join("c-json.log.1").exists());
        assert!(!dir.join("c-json.log.2").exists());
        assert!(std::fs::metadata(&p).unwrap().len() <= 400);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn lines_carry_the_attributes_in_dockerds_key_order() {
        let dir = tmpdir("attrs");
        let p = dir.join("c-json.log");
        let mut c = cfg(&p, 0, 1, false, "");
        c.log_attrs = r#"{"a":"1","tag":"x\u003cy"}"#.into();
        let mut l = LogFile::open(&c).unwrap();
        l.write(0, b"q\"\n");
        l.flush();
        let text = std::fs::read_to_string(&p).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        let want = format!(
            r#"{{"log":"q\"\n","stream":"stdout","attrs":{{"a":"1","tag":"x\u003cy"}},"time":{}}}"#,
            v["time"]
        );
        assert_eq!(text, format!("{want}\n"));
        assert_eq!(v["attrs"]["tag"], "x<y");
        // Without attributes, the same line as before.
        assert_eq!(
            json_line("a\n", "stderr", "", "T").unwrap(),
            b"{\"log\":\"a\\n\",\"stream\":\"stderr\",\"time\":\"T\"}\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rotated_files_are_compressed_as_dockerd_names_them() {
        let dir = tmpdir("gz");
        let p = dir.join("c-json.log");
        let mut l = LogFile::open(&cfg(&p, 300, 3, true, "")).unwrap();
        for i in 0..40 {
            l.write(0, format!("line {i:03} padding padding\n").as_bytes());
        }
        l.flush();
        let names: Vec<String> = {
            let mut v: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names, ["c-json.log", "c-json.log.1.gz", "c-json.log.2.gz"]);
        let mut d = flate2::read::GzDecoder::new(File::open(dir.join("c-json.log.1.gz")).unwrap());
        let extra = d.header().and_then(|h| h.extra()).map(|e| e.to_vec());
        let mut text = String::new();
        d.read_to_string(&mut text).unwrap();
        let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        let meta: serde_json::Value = serde_json::from_slice(&extra.unwrap()).unwrap();
        assert_eq!(meta["lastTime"], last["time"]);
        assert!(text.contains("line "));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn in_the_shim_a_task_compresses_by_steps() {
        let dir = tmpdir("steps");
        let p = dir.join("c-json.log");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            // A file of several steps rotates out.
            let mut l = LogFile::open(&cfg(&p, 300 * 1024, 2, true, "")).unwrap();
            let line = format!("{}\n", "y".repeat(1000));
            for _ in 0..300 {
                l.write(0, line.as_bytes());
            }
            assert!(dir.join("c-json.log.1").exists());
            assert!(!dir.join("c-json.log.1.gz").exists());
            // The output goes on meanwhile; the task finishes alone.
            for _ in 0..200 {
                tokio::task::yield_now().await;
                if dir.join("c-json.log.1.gz").exists() {
                    break;
                }
            }
            assert!(dir.join("c-json.log.1.gz").exists());
            assert!(!dir.join("c-json.log.1").exists());
            assert!(!dir.join("c-json.log.1.gz.tmp").exists());
            l.flush();
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn local_records_are_framed_before_and_after() {
        let dir = tmpdir("local");
        let p = dir.join("local-logs").join("container.log");
        let mut l = LogFile::open(&cfg(&p, 0, 1, false, "local")).unwrap();
        l.write(1, b"hi\n");
        let long = vec![b'x'; MAX_PARTIAL + 10];
        l.write(0, &long);
        l.write(0, b"\n");
        l.flush();
        let data = std::fs::read(&p).unwrap();
        let mut recs = Vec::new();
        let mut at = 0;
        while at < data.len() {
            let n = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
            let after = u32::from_be_bytes(data[at + 4 + n..at + 8 + n].try_into().unwrap());
            assert_eq!(after as usize, n);
            recs.push(data[at + 4..at + 4 + n].to_vec());
            at += 8 + n;
        }
        assert_eq!(recs.len(), 3);
        // "stderr", then "hi" without its newline.
        assert!(recs[0].windows(6).any(|w| w == b"stderr"));
        assert!(recs[0].ends_with(&[0x1a, 2, b'h', b'i']));
        // The pieces of the long line: the first of 16 KiB, the second of
        // 10 bytes, both partial, the same ID.
        assert!(recs[1].len() > MAX_PARTIAL && recs[2].len() < 200);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
