//! Issue 15: wire fidelity of streams and the requests around them, checked
//! against what dockerd 20.10 (API 1.41) answered for the same requests:
//! attach/exec/logs framing and headers, kill that answers once the
//! container is gone, commit of a running container, path segments decoded
//! once, and streamed endpoints that fail with a status before streaming.
//! The dockerd answers are written into the assertions (CI has no dockerd).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use berth_tests::*;

mod framing;
mod lifecycle;
mod requests;

/// A request whose answer is read straight off the socket, so framing
/// (101 or 200, chunked or not) is seen exactly as sent.
struct Raw {
    s: UnixStream,
    status: u16,
    head: String,
    /// Bytes that came after the head in the same reads.
    rest: Vec<u8>,
}

impl Raw {
    fn send(d: &Daemon, method: &str, path: &str, body: &[u8], upgrade: bool) -> Raw {
        let mut s = UnixStream::connect(&d.sock).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: api.moby.localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        if upgrade {
            head.push_str("Connection: Upgrade\r\nUpgrade: tcp\r\n");
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let split = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            let n = s.read(&mut chunk).expect("reading the answer head");
            assert!(n > 0, "connection closed before the head ended: {buf:?}");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..split]).into_owned();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        Raw {
            s,
            status,
            head,
            rest: buf[split + 4..].to_vec(),
        }
    }

    /// Everything until the daemon closes (bounded by the read timeout).
    /// After a 101 the client half-closes first, as the CLI does without
    /// stdin.
    fn body(mut self) -> Vec<u8> {
        let mut b = self.rest;
        if self.status == 101 {
            let _ = self.s.shutdown(std::net::Shutdown::Write);
        }
        self.s
            .read_to_end(&mut b)
            .expect("stream ends with a close");
        b
    }

    fn header(&self, name: &str) -> Option<&str> {
        header(&self.head, name)
    }
}

/// The head of a hijacked answer to a request without an upgrade, as
/// dockerd sends it: 200 OK, and a body that runs to the close, unchunked
/// and without a length.
fn assert_plain_hijack(r: &Raw, what: &str) {
    assert!(
        r.head.starts_with("HTTP/1.1 200 OK\r\n"),
        "{what}: {}",
        r.head
    );
    assert_eq!(r.header("Transfer-Encoding"), None, "{what}: {}", r.head);
    assert_eq!(r.header("Content-Length"), None, "{what}: {}", r.head);
}

/// Splits a multiplexed (stdcopy) stream, refusing anything malformed.
fn demux(mut b: &[u8]) -> (String, String) {
    let (mut out, mut err) = (String::new(), String::new());
    while !b.is_empty() {
        assert!(b.len() >= 8, "truncated frame header: {b:?}");
        assert_eq!(&b[1..4], &[0, 0, 0], "bad frame header: {b:?}");
        let n = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
        assert!(b.len() >= 8 + n, "truncated frame: {b:?}");
        let text = String::from_utf8_lossy(&b[8..8 + n]);
        match b[0] {
            1 => out.push_str(&text),
            2 => err.push_str(&text),
            s => panic!("unexpected stream {s} in {b:?}"),
        }
        b = &b[8 + n..];
    }
    (out, err)
}

/// The body of a stream that wrote `first` to stdout and `second` to
/// stderr: raw with a TTY (CRLF line ends), multiplexed without.
fn assert_first_second(body: &[u8], tty: bool, what: &str) {
    if tty {
        assert_eq!(
            String::from_utf8_lossy(body),
            "first\r\nsecond\r\n",
            "{what}"
        );
    } else {
        assert_eq!(
            demux(body),
            ("first\n".to_string(), "second\n".to_string()),
            "{what}"
        );
    }
}

fn create_exec(d: &Daemon, container: &str, tty: bool, cmd: &str) -> String {
    let body = serde_json::json!({
        "AttachStdout": true, "AttachStderr": true, "Tty": tty,
        "Cmd": ["sh", "-c", cmd],
    });
    let (st, _, b) = d.raw(
        "POST",
        &format!("/containers/{container}/exec"),
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(st, 201, "{}", String::from_utf8_lossy(&b));
    body_json(&b)["Id"].as_str().unwrap().to_string()
}

/// dockerd's Content-Type for attach, exec and logs: raw unless the
/// stream is multiplexed, the client speaks 1.42 or later and (for attach
/// and exec) the connection was upgraded: moby announces a plain hijack as
/// raw whatever it carries.
fn expected_type(version: &str, tty: bool, upgraded: bool) -> &'static str {
    if !tty && version != "1.41" && upgraded {
        "application/vnd.docker.multiplexed-stream"
    } else {
        "application/vnd.docker.raw-stream"
    }
}
