//! Docker's json-file log driver: one JSON object per line,
//! `{"log":"...","stream":"stdout","time":"<RFC3339Nano>"}`, split on
//! newlines (a partial line is flushed at 16 KiB or at the end), with
//! `max-size`/`max-file` rotation.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

const MAX_PARTIAL: usize = 16 * 1024;

#[derive(Serialize)]
struct Line<'a> {
    log: &'a str,
    stream: &'a str,
    time: &'a str,
}

pub struct JsonLog {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    max_size: u64,
    max_file: u32,
    partial: [Vec<u8>; 2],
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

impl JsonLog {
    pub fn open(path: &str, max_size: u64, max_file: u32) -> std::io::Result<Self> {
        let path = PathBuf::from(path);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path,
            file: Some(file),
            size,
            max_size,
            max_file: max_file.max(1),
            partial: [Vec::new(), Vec::new()],
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

    /// Writes out any partial lines (at EOF).
    pub fn flush(&mut self) {
        for s in 0..2 {
            let rest = std::mem::take(&mut self.partial[s]);
            if !rest.is_empty() {
                self.emit(s, &rest);
            }
        }
    }

    fn emit(&mut self, stream: usize, msg: &[u8]) {
        let time = now_rfc3339();
        let text = String::from_utf8_lossy(msg);
        let line = Line {
            log: &text,
            stream: if stream == 0 { "stdout" } else { "stderr" },
            time: &time,
        };
        let Ok(mut bytes) = serde_json::to_vec(&line) else {
            return;
        };
        bytes.push(b'\n');
        if self.max_size > 0 && self.size > 0 && self.size + bytes.len() as u64 > self.max_size {
            self.rotate();
        }
        if let Some(f) = self.file.as_mut() {
            if f.write_all(&bytes).is_ok() {
                self.size += bytes.len() as u64;
            }
        }
    }

    fn rotate(&mut self) {
        self.file = None;
        let name = |i: u32| -> PathBuf {
            if i == 0 {
                self.path.clone()
            } else {
                PathBuf::from(format!("{}.{i}", self.path.display()))
            }
        };
        if self.max_file <= 1 {
            let _ = std::fs::remove_file(&self.path);
        } else {
            let _ = std::fs::remove_file(name(self.max_file - 1));
            for i in (0..self.max_file - 1).rev() {
                let _ = std::fs::rename(name(i), name(i + 1));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_rotates() {
        let dir = std::env::temp_dir().join(format!("berth-log-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c-json.log");
        let mut l = JsonLog::open(p.to_str().unwrap(), 400, 2).unwrap();
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
}
