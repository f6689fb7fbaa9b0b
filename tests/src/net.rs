//! The host's loopback: free ports, and plain HTTP to what listens there.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

/// A TCP port free on 127.0.0.1 when asked (the listener is closed again).
pub fn free_port() -> u16 {
    try_free_port().expect("a free port")
}

/// [`free_port`], or `None` when no port could be bound.
pub fn try_free_port() -> Option<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .ok()
}

/// `curl -s --max-time 5 URL`: its stdout (empty when it failed).
pub fn curl(url: &str) -> String {
    let o = Command::new("curl")
        .args(["-s", "--max-time", "5", url])
        .output()
        .expect("curl");
    crate::stdout(&o)
}

/// `GET /` (HTTP/1.0) on a port of the host's loopback: the whole answer,
/// head and body, or `None` when nothing answered within 5 s.
pub fn http_get(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut b = String::new();
    s.read_to_string(&mut b).ok()?;
    Some(b)
}
