//! The frames of Docker's logging plugin protocol, as the writer makes
//! them: a `LogEntry` protobuf message (`source` = 1, `time_nano` = 2,
//! `line` = 3, `partial` = 4, `partial_log_metadata` = 5 {`last` = 1,
//! `id` = 2, `ordinal` = 3}) behind its length as 4 big-endian bytes.
//!
//! Encoded by hand: the shim writes these and stays free of a protobuf
//! library; the daemon decodes them with `prost` (and tests this encoding
//! against it).

/// A long line's place among its chunks (Docker's `PartialLogMetaData`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Partial<'a> {
    /// The piece that ends the line.
    pub last: bool,
    /// The same for every piece of one line.
    pub id: &'a str,
    /// From 1.
    pub ordinal: i32,
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field(out: &mut Vec<u8>, field: u8, b: &[u8]) {
    out.push(field << 3 | 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Appends one framed `LogEntry` to `out` (fields at their default are
/// left out, as proto3 writers do).
pub fn encode_frame(
    out: &mut Vec<u8>,
    source: &str,
    time_nano: i64,
    line: &[u8],
    partial: Option<&Partial>,
) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    if !source.is_empty() {
        bytes_field(out, 1, source.as_bytes());
    }
    if time_nano != 0 {
        out.push(2 << 3);
        varint(out, time_nano as u64);
    }
    if !line.is_empty() {
        bytes_field(out, 3, line);
    }
    if let Some(p) = partial {
        out.push(4 << 3);
        out.push(1);
        let mut meta = Vec::with_capacity(p.id.len() + 16);
        if p.last {
            meta.push(1 << 3);
            meta.push(1);
        }
        if !p.id.is_empty() {
            bytes_field(&mut meta, 2, p.id.as_bytes());
        }
        if p.ordinal != 0 {
            meta.push(3 << 3);
            // int32 is sign-extended to 64 bits on the wire.
            varint(&mut meta, i64::from(p.ordinal) as u64);
        }
        bytes_field(out, 5, &meta);
    }
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_entry_is_framed() {
        let mut out = Vec::new();
        encode_frame(&mut out, "stdout", 1, b"hi", None);
        assert_eq!(
            out,
            [
                &[0, 0, 0, 14][..],
                &[0x0a, 6],
                b"stdout",
                &[0x10, 1],
                &[0x1a, 2],
                b"hi"
            ]
            .concat()
        );
    }
}
