//! A file's bytes handed from the thread that receives an archive to the
//! thread that hashes and unpacks it, as they arrive: bounded chunks through
//! a channel, ending with a value for the receiver (the blob's writer). The
//! receiver reads them from memory instead of reading the written file back
//! from the page cache, and starts on a file while it is still arriving.

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

/// Bytes per chunk.
pub const CHUNK: usize = 256 << 10;
/// Chunks in flight per file: what a slow receiver can hold back (4 MiB).
const IN_FLIGHT: usize = 16;
/// Spare chunks kept for reuse, so that steady streaming allocates nothing.
const SPARE: usize = IN_FLIGHT * 3;

/// Reused chunk buffers, each `CHUNK` bytes long (already initialised).
#[derive(Clone, Default)]
pub struct Chunks(Arc<Mutex<Vec<Vec<u8>>>>);

impl Chunks {
    pub fn take(&self) -> Vec<u8> {
        let spare = self.0.lock().unwrap_or_else(|p| p.into_inner()).pop();
        spare.unwrap_or_else(|| vec![0u8; CHUNK])
    }

    fn give(&self, v: Vec<u8>) {
        let mut spare = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if v.len() == CHUNK && spare.len() < SPARE {
            spare.push(v);
        }
    }
}

enum Msg<T> {
    /// A chunk and how many of its bytes are data.
    Data(Vec<u8>, usize),
    End(T),
}

/// The sending end, kept by the receiving thread.
pub struct Sender<T> {
    tx: Option<SyncSender<Msg<T>>>,
}

impl<T> Sender<T> {
    /// Sends `n` bytes of `chunk`. A receiver that has gone is not an
    /// error here: the caller keeps writing the file, and the receiver's
    /// own result says what went wrong.
    pub fn send(&mut self, chunk: Vec<u8>, n: usize) {
        if let Some(tx) = &self.tx {
            if tx.send(Msg::Data(chunk, n)).is_err() {
                self.tx = None;
            }
        }
    }

    /// Ends the file, handing `end` over.
    pub fn finish(mut self, end: T) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Msg::End(end));
        }
    }
}

/// The reading end: a `Read` of the file's bytes, then `end()`.
pub struct FeedReader<T> {
    rx: Receiver<Msg<T>>,
    chunks: Chunks,
    cur: Vec<u8>,
    len: usize,
    pos: usize,
    end: Option<T>,
    ended: bool,
}

pub fn channel<T>(chunks: &Chunks) -> (Sender<T>, FeedReader<T>) {
    let (tx, rx) = sync_channel(IN_FLIGHT);
    (
        Sender { tx: Some(tx) },
        FeedReader {
            rx,
            chunks: chunks.clone(),
            cur: Vec::new(),
            len: 0,
            pos: 0,
            end: None,
            ended: false,
        },
    )
}

impl<T> FeedReader<T> {
    /// What the sender handed over at the end; `None` until every byte
    /// was read, or when the sender stopped before the end.
    pub fn end(&mut self) -> Option<T> {
        self.end.take()
    }
}

impl<T> Read for FeedReader<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.len {
            if self.ended {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Msg::Data(v, n)) => {
                    let old = std::mem::replace(&mut self.cur, v);
                    self.chunks.give(old);
                    (self.len, self.pos) = (n.min(self.cur.len()), 0);
                }
                Ok(Msg::End(t)) => {
                    self.end = Some(t);
                    self.ended = true;
                }
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the archive ended inside this file",
                    ))
                }
            }
        }
        let n = buf.len().min(self.len - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl<T> Drop for FeedReader<T> {
    fn drop(&mut self) {
        self.chunks.give(std::mem::take(&mut self.cur));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_arrive_in_order_then_the_end() {
        let chunks = Chunks::default();
        let (mut tx, mut rx) = channel::<&str>(&chunks);
        let sender = {
            let chunks = chunks.clone();
            std::thread::spawn(move || {
                for i in 0..40u8 {
                    let mut c = chunks.take();
                    c[..3].copy_from_slice(&[i, i, i]);
                    tx.send(c, 3);
                }
                tx.finish("done");
            })
        };
        let mut got = Vec::new();
        rx.read_to_end(&mut got).unwrap();
        sender.join().unwrap();
        assert_eq!(got.len(), 120);
        assert!(got.chunks(3).enumerate().all(|(i, c)| c == [i as u8; 3]));
        assert_eq!(rx.end(), Some("done"));
    }

    #[test]
    fn a_sender_gone_before_the_end_is_an_error() {
        let chunks = Chunks::default();
        let (mut tx, mut rx) = channel::<()>(&chunks);
        tx.send(chunks.take(), 10);
        drop(tx);
        let mut got = Vec::new();
        let e = rx.read_to_end(&mut got).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(got.len(), 10);
        assert!(rx.end().is_none());
    }

    #[test]
    fn a_receiver_gone_does_not_stop_the_sender() {
        let chunks = Chunks::default();
        let (mut tx, rx) = channel::<()>(&chunks);
        drop(rx);
        for _ in 0..(IN_FLIGHT * 2) {
            tx.send(chunks.take(), CHUNK);
        }
        tx.finish(());
    }
}
