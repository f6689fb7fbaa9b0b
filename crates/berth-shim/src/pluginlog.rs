//! Writing to a logging plugin: each line of the container's output (cut
//! at 16 KiB as Docker's copier cuts it, the pieces marked partial with an
//! ID, an ordinal and `last`) becomes a framed `LogEntry`
//! (`berth_api::logentry`) written into the FIFO the daemon handed to the
//! plugin with `StartLogging`.
//!
//! The frames go through a queue to a writer task, so a slow or vanished
//! plugin never blocks the shim itself. Docker blocks the container on a
//! full FIFO; the shim does so too, but only for `STALL` at a time: when
//! the queue holds `QUEUE_LIMIT` bytes the output pumps wait for room, and
//! when none comes within `STALL` lines are dropped (counted, and said in
//! the shim's log) until the plugin reads again. A dead plugin thus costs
//! the container one stall, not its life.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::os::fd::{FromRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use berth_api::logentry::{encode_frame, Partial};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::fdio::Fd;

/// Lines are cut at this size (Docker's copier buffer).
const MAX_LINE: usize = 16 * 1024;
/// Bytes of frames waiting for the plugin before the output waits.
const QUEUE_LIMIT: usize = 1024 * 1024;
/// How long the output waits for a plugin that does not read.
const STALL: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Queue {
    frames: VecDeque<Vec<u8>>,
    bytes: usize,
    /// The plugin stalled: frames are dropped until the queue has room.
    stalled: bool,
    dropped: u64,
}

/// A long line being cut into pieces, per stream.
#[derive(Default)]
struct Pieces {
    buf: Vec<u8>,
    id: String,
    ordinal: i32,
}

pub struct PluginLog {
    queue: RefCell<Queue>,
    pieces: RefCell<[Pieces; 2]>,
    more: Notify,
    room: Notify,
    drained: Notify,
    writer: RefCell<Option<JoinHandle<()>>>,
    broken: Cell<bool>,
}

fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
}

pub(crate) fn random_id() -> String {
    let mut b = [0u8; 32];
    // SAFETY: getrandom writes at most b.len() bytes into b.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        // Unique enough within one container's log.
        let t = now_nanos().to_be_bytes();
        b[..8].copy_from_slice(&t);
        b[8..12].copy_from_slice(&std::process::id().to_be_bytes());
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl PluginLog {
    /// Opens the FIFO (read-write, so that the open never waits for the
    /// plugin's end nor fails before it has opened its own) and starts the
    /// writer.
    pub fn open(path: &str) -> std::io::Result<Rc<Self>> {
        let c = std::ffi::CString::new(path)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        // SAFETY: a plain open of a NUL-terminated path.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd was just opened and is owned by nothing else.
        let fifo = Fd::new(unsafe { OwnedFd::from_raw_fd(fd) })?;
        let me = Rc::new(Self {
            queue: RefCell::new(Queue::default()),
            pieces: RefCell::new(Default::default()),
            more: Notify::new(),
            room: Notify::new(),
            drained: Notify::new(),
            writer: RefCell::new(None),
            broken: Cell::new(false),
        });
        let w = me.clone();
        let h = tokio::task::spawn_local(async move { w.write_out(fifo).await });
        *me.writer.borrow_mut() = Some(h);
        Ok(me)
    }

    async fn write_out(self: Rc<Self>, fifo: Rc<Fd>) {
        loop {
            let next = self.queue.borrow_mut().frames.pop_front();
            let Some(f) = next else {
                self.drained.notify_waiters();
                self.more.notified().await;
                continue;
            };
            if let Err(e) = fifo.write_all(&f).await {
                eprintln!("berth-shim: logging plugin's FIFO: {e}");
                self.broken.set(true);
                self.drained.notify_waiters();
                self.room.notify_waiters();
                return;
            }
            let mut q = self.queue.borrow_mut();
            q.bytes = q.bytes.saturating_sub(f.len());
            if q.bytes < QUEUE_LIMIT {
                if q.stalled {
                    eprintln!(
                        "berth-shim: the logging plugin reads again ({} lines dropped)",
                        q.dropped
                    );
                }
                q.stalled = false;
                drop(q);
                self.room.notify_waiters();
            }
        }
    }

    /// Takes output of `stream` (0 = stdout, 1 = stderr); entries are
    /// made of whole lines and 16 KiB pieces.
    pub fn write(&self, stream: usize, data: &[u8]) {
        let mut pieces = self.pieces.borrow_mut();
        let p = &mut pieces[stream];
        p.buf.extend_from_slice(data);
        let mut start = 0;
        loop {
            let rest = &p.buf[start..];
            if let Some(nl) = rest
                .iter()
                .position(|&b| b == b'\n')
                .filter(|&i| i <= MAX_LINE)
            {
                let line = rest[..nl].to_vec();
                self.entry(stream, p, &line, true);
                start += nl + 1;
            } else if rest.len() >= MAX_LINE {
                let piece = rest[..MAX_LINE].to_vec();
                // A newline right after the piece ends the line.
                self.entry(stream, p, &piece, false);
                start += MAX_LINE;
            } else {
                break;
            }
        }
        p.buf.drain(..start);
    }

    /// One entry: `ends` says the piece ends its line.
    fn entry(&self, stream: usize, p: &mut Pieces, line: &[u8], ends: bool) {
        let source = if stream == 0 { "stdout" } else { "stderr" };
        let mut frame = Vec::with_capacity(line.len() + 128);
        if ends && p.ordinal == 0 {
            encode_frame(&mut frame, source, now_nanos(), line, None);
        } else {
            if p.ordinal == 0 {
                p.id = random_id();
            }
            p.ordinal += 1;
            let meta = Partial {
                last: ends,
                id: &p.id,
                ordinal: p.ordinal,
            };
            encode_frame(&mut frame, source, now_nanos(), line, Some(&meta));
            if ends {
                p.ordinal = 0;
            }
        }
        self.push(frame);
    }

    fn push(&self, frame: Vec<u8>) {
        let mut q = self.queue.borrow_mut();
        if self.broken.get() || (q.stalled && q.bytes >= QUEUE_LIMIT) {
            q.dropped += 1;
            return;
        }
        q.bytes += frame.len();
        q.frames.push_back(frame);
        drop(q);
        self.more.notify_one();
    }

    /// Waits (at most `STALL`) while the queue is full; a plugin that
    /// does not read in that time is marked stalled.
    pub async fn room(&self) {
        loop {
            let room = self.room.notified();
            {
                let q = self.queue.borrow();
                if q.bytes < QUEUE_LIMIT || q.stalled || self.broken.get() {
                    return;
                }
            }
            if tokio::time::timeout(STALL, room).await.is_err() {
                let mut q = self.queue.borrow_mut();
                if !q.stalled {
                    eprintln!(
                        "berth-shim: the logging plugin has not read for {}s: lines are dropped",
                        STALL.as_secs()
                    );
                }
                q.stalled = true;
                return;
            }
        }
    }

    /// At the end: what is left of unfinished lines goes out (a last
    /// piece), the queue is written within `within`, and the FIFO closed.
    pub async fn finish(&self, within: Duration) {
        {
            let mut pieces = self.pieces.borrow_mut();
            for s in 0..2 {
                let p = &mut pieces[s];
                let rest = std::mem::take(&mut p.buf);
                if !rest.is_empty() {
                    // No newline: it ends as a partial line.
                    if p.ordinal == 0 {
                        p.id = random_id();
                    }
                    p.ordinal += 1;
                    let meta = Partial {
                        last: true,
                        id: &p.id,
                        ordinal: p.ordinal,
                    };
                    let mut frame = Vec::new();
                    let source = if s == 0 { "stdout" } else { "stderr" };
                    encode_frame(&mut frame, source, now_nanos(), &rest, Some(&meta));
                    p.ordinal = 0;
                    self.push(frame);
                }
            }
        }
        let _ = tokio::time::timeout(within, async {
            loop {
                let drained = self.drained.notified();
                // Counted until written, so a frame being written counts.
                if self.queue.borrow().bytes == 0 || self.broken.get() {
                    return;
                }
                self.more.notify_one();
                drained.await;
            }
        })
        .await;
        let dropped = self.queue.borrow().dropped;
        if dropped > 0 {
            eprintln!("berth-shim: {dropped} lines never reached the logging plugin");
        }
        // The writer holds the FIFO; ending it closes the FIFO, and the
        // plugin reads what is in it up to its end.
        if let Some(h) = self.writer.borrow_mut().take() {
            h.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;

    /// A piece's (last, id, ordinal).
    type Piece = (bool, String, i32);

    /// (source, line, piece) of the frames, decoded just enough for the
    /// test.
    fn frames(mut b: &[u8]) -> Vec<(String, Vec<u8>, Option<Piece>)> {
        fn varint(b: &mut &[u8]) -> u64 {
            let (mut v, mut shift) = (0u64, 0);
            loop {
                let c = b[0];
                *b = &b[1..];
                v |= u64::from(c & 0x7f) << shift;
                shift += 7;
                if c < 0x80 {
                    return v;
                }
            }
        }
        fn fields(mut m: &[u8]) -> Vec<(u64, Vec<u8>, u64)> {
            let mut out = Vec::new();
            while !m.is_empty() {
                let key = varint(&mut m);
                if key & 7 == 2 {
                    let n = varint(&mut m) as usize;
                    out.push((key >> 3, m[..n].to_vec(), 0));
                    m = &m[n..];
                } else {
                    let v = varint(&mut m);
                    out.push((key >> 3, Vec::new(), v));
                }
            }
            out
        }
        let mut out = Vec::new();
        while b.len() >= 4 {
            let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
            let m = &b[4..4 + n];
            b = &b[4 + n..];
            let (mut src, mut line, mut meta) = (String::new(), Vec::new(), None);
            for (f, bytes, v) in fields(m) {
                match f {
                    1 => src = String::from_utf8(bytes).unwrap(),
                    2 => assert!(v > 0),
                    3 => line = bytes,
                    4 => assert_eq!(v, 1),
                    5 => {
                        let mut p = (false, String::new(), 0);
                        for (f2, b2, v2) in fields(&bytes) {
                            match f2 {
                                1 => p.0 = v2 == 1,
                                2 => p.1 = String::from_utf8(b2).unwrap(),
                                3 => p.2 = v2 as i32,
                                _ => panic!("field {f2}"),
                            }
                        }
                        meta = Some(p);
                    }
                    _ => panic!("field {f}"),
                }
            }
            out.push((src, line, meta));
        }
        out
    }

    #[test]
    fn lines_and_pieces_become_frames() {
        let dir = std::env::temp_dir().join(format!("berth-pluginlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("f");
        let _ = std::fs::remove_file(&fifo);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let mut reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tokio::task::LocalSet::new().block_on(&rt, async {
            let l = PluginLog::open(fifo.to_str().unwrap()).unwrap();
            l.write(0, b"hello\nwor");
            l.write(1, b"oops\n");
            l.write(0, b"ld\n");
            let long = vec![b'a'; MAX_LINE + 10];
            l.write(0, &long);
            l.write(0, b"\n");
            l.write(1, b"no newline");
            l.room().await;
            l.finish(Duration::from_secs(5)).await;
        });
        let mut got = Vec::new();
        let _ = reader.read_to_end(&mut got);
        let f = frames(&got);
        assert_eq!(f.len(), 6, "{f:?}");
        assert_eq!(
            (f[0].0.as_str(), &f[0].1[..], &f[0].2),
            ("stdout", &b"hello"[..], &None)
        );
        assert_eq!((f[1].0.as_str(), &f[1].1[..]), ("stderr", &b"oops"[..]));
        assert_eq!(&f[2].1[..], b"world");
        let (p1, p2) = (f[3].2.clone().unwrap(), f[4].2.clone().unwrap());
        assert_eq!((f[3].1.len(), p1.0, p1.2), (MAX_LINE, false, 1));
        assert_eq!((f[4].1.len(), p2.0, p2.2), (10, true, 2));
        assert_eq!(p1.1, p2.1);
        assert_eq!(p1.1.len(), 64);
        // What was left without a newline goes out at the end as a last piece.
        let p3 = f[5].2.clone().unwrap();
        assert_eq!(
            (f[5].0.as_str(), &f[5].1[..], p3.0, p3.2),
            ("stderr", &b"no newline"[..], true, 1)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
