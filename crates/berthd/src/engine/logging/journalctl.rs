//! Reading the journal through `journalctl -o export` (for `docker logs`
//! of a `journald` container, `journald.rs`).
//!
//! Why a subprocess rather than `sd-journal` (which dockerd links): the
//! `journalctl` of the host's systemd reads that systemd's journal files
//! whatever their version and compression, needs no C library at build
//! time nor `unsafe` in the daemon, and a query's seek, match and
//! `--follow` (inotify) are its business; the export format is
//! binary-safe (a message with a newline or bytes that are not UTF-8
//! comes as a length-prefixed field). The process belongs to one read and
//! is killed when it ends (the client left, the follow is over).

use std::process::Stdio;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// One entry's fields in the journal's order.
pub type Fields = Vec<(String, Vec<u8>)>;

/// An entry larger than this (all its fields) ends the read: berth's
/// writer sends 16 KiB pieces, so only a foreign entry matching the
/// container's ID could be this large, and memory stays bounded.
const MAX_ENTRY: u64 = 4 << 20;

/// `journalctl` with `args` after the fixed ones (`-o export`, no pager),
/// its output piped; it is killed when the [`Child`] is dropped.
pub fn spawn(args: &[String]) -> std::io::Result<Child> {
    Command::new("journalctl")
        .args(["--no-pager", "--quiet", "-o", "export"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
}

/// The entries `child` prints, on a task of their own (so that the
/// reader's `select!` never cancels a half-read entry); the channel ends
/// at the end of the output, after an error (sent as the last item), or
/// when the receiver is dropped.
pub fn entries(child: &mut Child) -> mpsc::Receiver<std::io::Result<Fields>> {
    let (tx, rx) = mpsc::channel(64);
    let Some(out) = child.stdout.take() else {
        return rx;
    };
    tokio::spawn(async move {
        let mut r = BufReader::with_capacity(64 * 1024, out);
        loop {
            let item = next_entry(&mut r).await;
            let end = !matches!(item, Ok(Some(_)));
            let item = match item {
                Ok(Some(f)) => Ok(f),
                Ok(None) => return,
                Err(e) => Err(e),
            };
            if tx.send(item).await.is_err() || end {
                return;
            }
        }
    });
    rx
}

/// What `journalctl` said on its standard error (bounded), once it ended.
pub async fn complaint(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(err) = child.stderr.take() {
        let mut buf = Vec::new();
        let _ = err.take(4096).read_to_end(&mut buf).await;
        s = String::from_utf8_lossy(&buf).trim().to_string();
    }
    s
}

fn bad(m: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string())
}

/// Reads one entry of the export format: fields `KEY=value\n`, or for a
/// binary value `KEY\n`, its length as 8 little-endian bytes, the value
/// and `\n`; a blank line ends the entry. `None` at the end of the input.
pub async fn next_entry<R: AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<Option<Fields>> {
    let mut fields = Fields::new();
    let mut budget = MAX_ENTRY;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut *r).take(budget).read_until(b'\n', &mut line).await?;
        if n == 0 {
            return if fields.is_empty() {
                Ok(None)
            } else {
                Err(bad("journal export: entry cut short"))
            };
        }
        budget = budget.saturating_sub(n as u64);
        if line.pop() != Some(b'\n') {
            return Err(bad("journal export: entry cut short or too large"));
        }
        if line.is_empty() {
            if fields.is_empty() {
                continue;
            }
            return Ok(Some(fields));
        }
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            let key = String::from_utf8_lossy(&line[..eq]).into_owned();
            fields.push((key, line[eq + 1..].to_vec()));
            continue;
        }
        let key = String::from_utf8_lossy(&line).into_owned();
        let len = r.read_u64_le().await?;
        // The length, the value and its newline.
        let size = len.saturating_add(9);
        if size > budget {
            return Err(bad("journal export: entry too large"));
        }
        let mut value = vec![0; len as usize];
        r.read_exact(&mut value).await?;
        if r.read_u8().await? != b'\n' {
            return Err(bad("journal export: binary field not ended"));
        }
        budget -= size;
        fields.push((key, value));
    }
}

/// `--since`/`--until`'s form of a time in Unix nanoseconds: `@` and
/// seconds with microseconds (the journal's resolution, rounded down).
pub fn at(nanos: i64) -> String {
    let us = nanos.div_euclid(1000);
    format!(
        "@{}.{:06}",
        us.div_euclid(1_000_000),
        us.rem_euclid(1_000_000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn export_entries_are_parsed_binary_safe() {
        let mut input = Vec::new();
        input.extend_from_slice(b"__CURSOR=s=1;i=2\n__REALTIME_TIMESTAMP=1700000000000001\n");
        input.extend_from_slice(b"MESSAGE\n");
        input.extend_from_slice(&4u64.to_le_bytes());
        input.extend_from_slice(b"a\nb\xff\n");
        input.extend_from_slice(b"PRIORITY=3\n\nMESSAGE=x=y\n\n");
        let mut r = &input[..];
        let e = next_entry(&mut r).await.unwrap().unwrap();
        assert_eq!(e.len(), 4);
        assert_eq!(e[2], ("MESSAGE".to_string(), b"a\nb\xff".to_vec()));
        assert_eq!(e[3], ("PRIORITY".to_string(), b"3".to_vec()));
        let e = next_entry(&mut r).await.unwrap().unwrap();
        assert_eq!(e, vec![("MESSAGE".to_string(), b"x=y".to_vec())]);
        assert!(next_entry(&mut r).await.unwrap().is_none());
        // Cut short, or claiming more than the bound: an error, no panic
        // nor a huge allocation.
        let mut r = &b"MESSAGE=a"[..];
        assert!(next_entry(&mut r).await.is_err());
        let mut big = b"MESSAGE\n".to_vec();
        big.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(next_entry(&mut &big[..]).await.is_err());
        let long = vec![b'x'; MAX_ENTRY as usize + 10];
        assert!(next_entry(&mut &long[..]).await.is_err());
    }

    #[test]
    fn times_as_journalctl_takes_them() {
        assert_eq!(at(1_700_000_000_123_456_789), "@1700000000.123456");
        assert_eq!(at(5_000), "@0.000005");
    }
}
