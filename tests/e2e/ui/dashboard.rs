//! `berth ui` under test: started against a test daemon, its URL read
//! from the first line of its output, stopped on drop; plain HTTP and
//! WebSocket-upgrade requests to it (what a browser would not let a test
//! send: no token, a foreign `Origin`).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::Duration;

use berth_tests::http::{http, HttpResp};
use berth_tests::Daemon;

pub struct Ui {
    child: Child,
    /// `http://127.0.0.1:PORT/?token=T`, as printed.
    pub url: String,
    /// `http://127.0.0.1:PORT`.
    pub origin: String,
    pub token: String,
    pub port: u16,
}

impl Ui {
    /// `berth -H unix://<test socket> ui --no-open --addr 127.0.0.1:0`.
    pub fn start(d: &Daemon) -> Self {
        use std::os::unix::process::CommandExt;
        let mut child = d
            .berth_cmd()
            .args(["-H", &d.host(), "ui", "--no-open", "--addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .expect("berth ui starts");
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut rd = BufReader::new(out);
            let mut line = String::new();
            let _ = rd.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the server never blocks on a full pipe.
            let _ = std::io::copy(&mut rd, &mut std::io::sink());
        });
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("berth ui printed no URL in 20 s");
            }
        };
        let mut ui = Ui {
            child,
            url: String::new(),
            origin: String::new(),
            token: String::new(),
            port: 0,
        };
        let url = line.trim().to_string();
        let rest = url
            .strip_prefix("http://127.0.0.1:")
            .unwrap_or_else(|| panic!("first line is not http://127.0.0.1:PORT/?token=T: {url:?}"));
        let (port, token) = rest
            .split_once("/?token=")
            .unwrap_or_else(|| panic!("no /?token= in {url:?}"));
        ui.port = port.parse().expect("a port");
        ui.token = token.to_string();
        assert!(
            ui.token.len() >= 43
                && ui
                    .token
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "token of 32+ random bytes, URL-safe: {:?}",
            ui.token
        );
        ui.origin = format!("http://127.0.0.1:{}", ui.port);
        ui.url = url;
        ui
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The dashboard URL for a hash route, e.g. `#/images`.
    pub fn page(&self, route: &str) -> String {
        format!("{}{route}", self.url)
    }

    /// A request with the given headers over a fresh connection.
    pub fn req(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResp {
        http(self.port, method, path, headers, body)
    }

    /// `GET`/`POST` … on the Engine API through the dashboard, with the token
    /// header (what the page does).
    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> HttpResp {
        let mut h = vec![("X-Berth-Token", self.token.as_str())];
        if body.is_some() {
            h.push(("Content-Type", "application/json"));
        }
        self.req(
            method,
            &format!("/api/engine{path}"),
            &h,
            body.unwrap_or("").as_bytes(),
        )
    }

    pub fn cookie(&self) -> String {
        format!("berth_ui={}", self.token)
    }

    /// `GET path` with the given `Host` header (a DNS-rebinding page's
    /// requests name its own host); the status of the answer.
    pub fn status_with_host(&self, path: &str, host: &str) -> u16 {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nX-Berth-Token: {}\r\nConnection: close\r\n\r\n",
            self.token
        );
        s.write_all(req.as_bytes()).expect("write");
        let mut line = String::new();
        BufReader::new(s)
            .read_line(&mut line)
            .expect("a status line");
        line.split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"))
    }

    /// A WebSocket upgrade request for `path`; the status of the answer.
    pub fn ws_status(&self, path: &str, origin: Option<&str>) -> u16 {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
            self.port
        );
        if let Some(o) = origin {
            req.push_str(&format!("Origin: {o}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).expect("write");
        let mut line = String::new();
        BufReader::new(s)
            .read_line(&mut line)
            .expect("a status line");
        line.split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"))
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        // SAFETY: kill(2) on the process group made for `berth ui` above
        // (process_group(0)); no memory is touched.
        unsafe { libc::kill(-pid, libc::SIGTERM) };
        let ok = berth_tests::wait_for(Duration::from_secs(5), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        if !ok {
            // SAFETY: as above.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}

/// A refusal: 401 or 403 with a JSON `{"message": …}` and none of the
/// dashboard's content.
pub fn assert_refused(r: &HttpResp, what: &str, allowed: &[u16]) {
    let body = String::from_utf8_lossy(&r.body);
    assert!(
        allowed.contains(&r.status),
        "{what}: status {} (wanted one of {allowed:?}); body {body}",
        r.status
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{what}: refusal body is not JSON ({e}): {body}"));
    assert!(
        v.get("message").and_then(|m| m.as_str()).is_some(),
        "{what}: no message in {body}"
    );
    let lower = body.to_ascii_lowercase();
    for leak in ["<html", "<script", "import ", "data-testid", "\"id\":"] {
        assert!(!lower.contains(leak), "{what}: body leaks {leak:?}: {body}");
    }
}
