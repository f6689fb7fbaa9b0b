//! Docker's multiplexed stream framing ("stdcopy"): an 8-byte header
//! `[stream, 0, 0, 0, len_be32]` before each chunk, used for attach, exec and
//! logs when the container has no TTY.

use bytes::{BufMut, Bytes, BytesMut};

/// The stream a frame belongs to: the first byte of its header (moby's `stdcopy.StdType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StreamType {
    /// The process's standard input (0).
    Stdin = 0,
    /// The process's standard output (1).
    Stdout = 1,
    /// The process's standard error (2).
    Stderr = 2,
    /// The CLI turns this stream into an error message.
    SystemErr = 3,
}

impl StreamType {
    /// The stream a header byte names; `None` for an unknown one.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::Stdin,
            1 => Self::Stdout,
            2 => Self::Stderr,
            3 => Self::SystemErr,
            _ => return None,
        })
    }
}

/// The length of a frame's header, in bytes.
pub const HEADER_LEN: usize = 8;

/// Frames `payload` for `stream`.
pub fn frame(stream: StreamType, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(HEADER_LEN + payload.len());
    put_frame(&mut b, stream, &[payload]);
    b.freeze()
}

/// Appends one frame for `stream` to `out` whose payload is `parts`
/// joined (many frames batched into one buffer, and a payload written
/// without first being gathered).
pub fn put_frame(out: &mut BytesMut, stream: StreamType, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    out.reserve(HEADER_LEN + len);
    out.put_u8(stream as u8);
    out.put_bytes(0, 3);
    out.put_u32(len as u32);
    for p in parts {
        out.put_slice(p);
    }
}

/// Incremental decoder for framed streams (the CLI side and tests).
#[derive(Default)]
pub struct Demuxer {
    buf: BytesMut,
}

/// A frame header whose stream byte is none of [`StreamType`]'s; carries
/// the byte. The text is moby's `stdcopy.StdCopy`'s.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("Unrecognized input header: {0}")]
pub struct BadHeader(pub u8);

impl Demuxer {
    /// A decoder with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Buffers bytes as they arrive; frames may be split anywhere.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Returns the next complete frame, if one is buffered.
    pub fn next_frame(&mut self) -> Result<Option<(StreamType, Bytes)>, BadHeader> {
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let st = StreamType::from_u8(self.buf[0]).ok_or(BadHeader(self.buf[0]))?;
        let len = u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let mut chunk = self.buf.split_to(HEADER_LEN + len);
        let payload = chunk.split_off(HEADER_LEN).freeze();
        Ok(Some((st, payload)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_like_docker() {
        assert_eq!(
            &frame(StreamType::Stdout, b"out\n")[..],
            b"\x01\0\0\0\0\0\0\x04out\n"
        );
        assert_eq!(
            &frame(StreamType::Stderr, b"err\n")[..],
            b"\x02\0\0\0\0\0\0\x04err\n"
        );
    }

    #[test]
    fn demuxes_split_input() {
        let mut all = frame(StreamType::Stdout, b"hello").to_vec();
        all.extend_from_slice(&frame(StreamType::Stderr, b"x"));
        let mut d = Demuxer::new();
        d.push(&all[..3]);
        assert_eq!(d.next_frame().unwrap(), None);
        d.push(&all[3..]);
        let (s, p) = d.next_frame().unwrap().unwrap();
        assert_eq!((s, &p[..]), (StreamType::Stdout, &b"hello"[..]));
        let (s, p) = d.next_frame().unwrap().unwrap();
        assert_eq!((s, &p[..]), (StreamType::Stderr, &b"x"[..]));
        assert_eq!(d.next_frame().unwrap(), None);
        d.push(b"\x09\0\0\0\0\0\0\0");
        assert!(d.next_frame().is_err());
    }
}
