//! The plugin protocol's client: `POST /<Interface>.<Method>` with a JSON
//! body over a plugin's unix socket or TCP (optionally TLS) address, as
//! moby's `pkg/plugins` client does.
//!
//! It is synchronous: the driver seams it serves (volumes, networks, IPAM,
//! logs) are synchronous traits, called from blocking contexts. Called from
//! a tokio worker, a call steps out of the worker (`block_in_place`) so that
//! a slow plugin does not stall other requests.
//!
//! HTTP/1.1 is written here by hand (requests are one POST with a length;
//! answers are parsed by `httparse`, with a length or chunked): the async
//! hyper client cannot serve a synchronous trait without a runtime inside a
//! runtime, and the synchronous HTTP crates do not speak to unix sockets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The media type plugin calls are sent and accepted as.
pub const MEDIA_TYPE: &str = "application/vnd.docker.plugins.v1.2+json";

/// Where a plugin listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    Unix(PathBuf),
    /// `host:port`, plain or TLS.
    Tcp(String),
}

impl Addr {
    /// `unix:///p`, `tcp://h:p`, `http://h:p` or `https://h:p` (TLS); a path
    /// after the authority is ignored, as Docker's client does.
    pub fn parse(url: &str) -> Result<(Self, bool), String> {
        let url = url.trim();
        if let Some(p) = url.strip_prefix("unix://") {
            if p.is_empty() {
                return Err(format!("invalid plugin address {url:?}"));
            }
            return Ok((Addr::Unix(PathBuf::from(p)), false));
        }
        let (rest, tls) = if let Some(r) = url.strip_prefix("tcp://") {
            (r, false)
        } else if let Some(r) = url.strip_prefix("http://") {
            (r, false)
        } else if let Some(r) = url.strip_prefix("https://") {
            (r, true)
        } else {
            return Err(format!("unsupported plugin address {url:?}"));
        };
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty() {
            return Err(format!("invalid plugin address {url:?}"));
        }
        Ok((Addr::Tcp(host.to_string()), tls))
    }

    pub fn describe(&self) -> String {
        match self {
            Addr::Unix(p) => format!("unix://{}", p.display()),
            Addr::Tcp(h) => format!("tcp://{h}"),
        }
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Nothing answered at the address within the timeout.
    #[error("{method}: dial {addr}: {reason}")]
    Unreachable {
        method: String,
        addr: String,
        reason: String,
    },
    /// The plugin took longer than the timeout.
    #[error("{method}: plugin did not answer within {secs}s")]
    Timeout { method: String, secs: u64 },
    /// The plugin answered with a status other than 200; `msg` is its
    /// `Err`, or its body.
    #[error("{method}: {msg}")]
    Status {
        method: String,
        status: u16,
        msg: String,
    },
    /// The answer is not HTTP, or not the JSON the method answers.
    #[error("{method}: bad answer from plugin: {reason}")]
    Garbage { method: String, reason: String },
}

impl CallError {
    /// The plugin could not be reached at all (rather than answering
    /// badly): it may have gone away.
    pub fn unreachable(&self) -> bool {
        matches!(self, CallError::Unreachable { .. })
    }
}

/// A connection to one plugin address. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    addr: Addr,
    tls: Option<(Arc<rustls::ClientConfig>, String)>,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Client {
    pub fn new(addr: Addr, timeout: Duration) -> Self {
        Self {
            addr,
            tls: None,
            timeout,
        }
    }

    /// TLS over a TCP address, checked against `server_name`.
    pub fn with_tls(mut self, config: Arc<rustls::ClientConfig>, server_name: String) -> Self {
        self.tls = Some((config, server_name));
        self
    }

    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Calls `method` with `body` and decodes the answer.
    pub fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: &str,
        body: &B,
    ) -> Result<T, CallError> {
        let data = serde_json::to_vec(body).map_err(|e| CallError::Garbage {
            method: method.into(),
            reason: e.to_string(),
        })?;
        let raw = self.call_raw(method, &data)?;
        decode(method, &raw)
    }

    /// Calls `method` and returns its raw answer body.
    pub fn call_raw(&self, method: &str, body: &[u8]) -> Result<Vec<u8>, CallError> {
        blocking(|| {
            let mut r = self.open(method, body, true)?;
            let mut out = Vec::new();
            r.read_to_end(&mut out)
                .map_err(|e| self.io_error(method, e))?;
            Ok(out)
        })
    }

    /// Calls `method` and returns the answer body as a stream, with no
    /// timeout once the answer has started (`LogDriver.ReadLogs` follows).
    pub fn stream(&self, method: &str, body: &[u8]) -> Result<Box<dyn Read + Send>, CallError> {
        blocking(|| self.open(method, body, false))
    }

    fn io_error(&self, method: &str, e: std::io::Error) -> CallError {
        if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            CallError::Timeout {
                method: method.into(),
                secs: self.timeout.as_secs(),
            }
        } else {
            CallError::Garbage {
                method: method.into(),
                reason: e.to_string(),
            }
        }
    }

    /// Connects (retrying while the plugin starts, as Docker does, for up
    /// to the timeout), sends the request and reads the answer's head. A
    /// non-200 answer is read whole and turned into its error.
    fn open(
        &self,
        method: &str,
        body: &[u8],
        bounded: bool,
    ) -> Result<Box<dyn Read + Send>, CallError> {
        let deadline = Instant::now() + self.timeout;
        let mut conn = self.connect(method, deadline)?;
        let head = format!(
            "POST /{method} HTTP/1.1\r\nHost: plugin\r\nUser-Agent: berthd\r\nAccept: {MEDIA_TYPE}\r\nContent-Type: {MEDIA_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let mut req = head.into_bytes();
        req.extend_from_slice(body);
        conn.write_all(&req)
            .and_then(|()| conn.flush())
            .map_err(|e| self.io_error(method, e))?;
        let mut reader = BufReader::new(conn);
        let (status, framing) = read_head(&mut reader).map_err(|e| match e {
            HeadError::Io(e) => self.io_error(method, e),
            HeadError::Bad(reason) => CallError::Garbage {
                method: method.into(),
                reason,
            },
        })?;
        if !bounded {
            reader.get_ref().clear_timeout();
        }
        let body: Box<dyn Read + Send> = match framing {
            Framing::Length(n) => Box::new(reader.take(n)),
            Framing::Chunked => Box::new(Chunked::new(reader)),
            Framing::Close => Box::new(reader),
        };
        if status != 200 {
            let mut b = Vec::new();
            body.take(1 << 20)
                .read_to_end(&mut b)
                .map_err(|e| self.io_error(method, e))?;
            return Err(CallError::Status {
                method: method.into(),
                status,
                msg: status_message(&b),
            });
        }
        Ok(body)
    }

    fn connect(&self, method: &str, deadline: Instant) -> Result<Conn, CallError> {
        let mut wait = Duration::from_millis(50);
        loop {
            match self.dial(deadline) {
                Ok(c) => return Ok(c),
                Err(e) => {
                    // Not there yet, or refusing: the plugin may be
                    // starting. Anything else will not get better.
                    let retry = matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound
                            | std::io::ErrorKind::ConnectionRefused
                            | std::io::ErrorKind::ConnectionReset
                    );
                    let now = Instant::now();
                    if !retry || now + wait >= deadline {
                        return Err(CallError::Unreachable {
                            method: method.into(),
                            addr: self.addr.describe(),
                            reason: e.to_string(),
                        });
                    }
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    fn dial(&self, deadline: Instant) -> std::io::Result<Conn> {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(10));
        let io = match &self.addr {
            Addr::Unix(p) => {
                let s = UnixStream::connect(p)?;
                s.set_read_timeout(Some(left))?;
                s.set_write_timeout(Some(left))?;
                Io::Unix(s)
            }
            Addr::Tcp(h) => {
                use std::net::ToSocketAddrs;
                let mut last = std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no address for {h}"),
                );
                let mut found = None;
                for a in h.to_socket_addrs()? {
                    match TcpStream::connect_timeout(&a, left) {
                        Ok(s) => {
                            found = Some(s);
                            break;
                        }
                        Err(e) => last = e,
                    }
                }
                let s = found.ok_or(last)?;
                s.set_read_timeout(Some(left))?;
                s.set_write_timeout(Some(left))?;
                s.set_nodelay(true)?;
                Io::Tcp(s)
            }
        };
        match (&self.tls, io) {
            (Some((config, name)), Io::Tcp(s)) => {
                let server = rustls::pki_types::ServerName::try_from(name.clone())
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                let c = rustls::ClientConnection::new(config.clone(), server)
                    .map_err(std::io::Error::other)?;
                Ok(Conn::Tls(Box::new(rustls::StreamOwned::new(c, s))))
            }
            (_, io) => Ok(Conn::Plain(io)),
        }
    }
}

/// Runs blocking work, stepping out of a tokio worker first if on one.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// A plugin's answer decoded as the method's type; a body that is not
/// JSON is the plugin's fault, reported with what it said.
pub fn decode<T: DeserializeOwned>(method: &str, raw: &[u8]) -> Result<T, CallError> {
    // An empty answer is an empty object (some plugins answer nothing to
    // calls whose answer has only `Err`).
    let raw: &[u8] = if raw.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        raw
    };
    serde_json::from_slice(raw).map_err(|e| CallError::Garbage {
        method: method.into(),
        reason: format!(
            "{e}: {:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(200)])
        ),
    })
}

/// A non-200 answer's message: its JSON `Err`, or else the body itself.
fn status_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct E {
        #[serde(rename = "Err", default)]
        err: String,
    }
    if let Ok(e) = serde_json::from_slice::<E>(body) {
        if !e.err.is_empty() {
            return e.err;
        }
    }
    String::from_utf8_lossy(body).trim().to_string()
}

enum Io {
    Unix(UnixStream),
    Tcp(TcpStream),
}

enum Conn {
    Plain(Io),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    /// Streams that follow (logs) wait as long as the plugin writes.
    fn clear_timeout(&self) {
        let _ = match self {
            Conn::Plain(Io::Unix(s)) => s.set_read_timeout(None),
            Conn::Plain(Io::Tcp(s)) => s.set_read_timeout(None),
            Conn::Tls(s) => s.sock.set_read_timeout(None),
        };
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(Io::Unix(s)) => s.read(buf),
            Conn::Plain(Io::Tcp(s)) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(Io::Unix(s)) => s.write(buf),
            Conn::Plain(Io::Tcp(s)) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(Io::Unix(s)) => s.flush(),
            Conn::Plain(Io::Tcp(s)) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

enum Framing {
    Length(u64),
    Chunked,
    Close,
}

enum HeadError {
    Io(std::io::Error),
    Bad(String),
}

/// Reads the status line and headers (at most 64 KiB of them).
fn read_head<R: BufRead>(r: &mut R) -> Result<(u16, Framing), HeadError> {
    let mut head = Vec::new();
    loop {
        let n = r
            .by_ref()
            .take(8192)
            .read_until(b'\n', &mut head)
            .map_err(HeadError::Io)?;
        if n == 0 {
            return Err(HeadError::Bad(if head.is_empty() {
                "the plugin closed the connection without answering".into()
            } else {
                "the answer ended inside its headers".into()
            }));
        }
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            break;
        }
        if head.len() > 64 * 1024 {
            return Err(HeadError::Bad("the answer's headers are too long".into()));
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(HeadError::Bad("incomplete answer".into())),
        Err(e) => {
            return Err(HeadError::Bad(format!(
                "not an HTTP answer ({e}): {:?}",
                String::from_utf8_lossy(&head[..head.len().min(100)])
            )))
        }
    }
    let status = resp.code.unwrap_or(0);
    let mut framing = Framing::Close;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding")
            && String::from_utf8_lossy(h.value)
                .to_ascii_lowercase()
                .contains("chunked")
        {
            framing = Framing::Chunked;
            break;
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| HeadError::Bad("bad Content-Length".into()))?;
            framing = Framing::Length(n);
        }
    }
    Ok((status, framing))
}

/// A chunked body, decoded.
struct Chunked<R> {
    inner: R,
    left: u64,
    done: bool,
}

impl<R: BufRead> Chunked<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            left: 0,
            done: false,
        }
    }

    fn line(&mut self) -> std::io::Result<String> {
        let mut l = Vec::new();
        self.inner.by_ref().take(4096).read_until(b'\n', &mut l)?;
        if !l.ends_with(b"\n") {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "chunked answer cut short",
            ));
        }
        Ok(String::from_utf8_lossy(&l).trim().to_string())
    }
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let size = self.line()?;
            let size = size.split(';').next().unwrap_or_default();
            self.left = u64::from_str_radix(size.trim(), 16).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunk size")
            })?;
            if self.left == 0 {
                // Trailers, up to the empty line.
                while !self.line()?.is_empty() {}
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "chunked answer cut short",
            ));
        }
        self.left -= n as u64;
        if self.left == 0 {
            self.line()?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A one-shot server answering `answer` to the first request, and
    /// handing back what it received.
    fn serve(answer: &'static [u8]) -> (tempfile::TempDir, std::thread::JoinHandle<Vec<u8>>) {
        let dir = tempfile::tempdir().unwrap();
        let l = UnixListener::bind(dir.path().join("p.sock")).unwrap();
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut got = vec![0u8; 4096];
            let n = s.read(&mut got).unwrap();
            got.truncate(n);
            s.write_all(answer).unwrap();
            got
        });
        (dir, h)
    }

    fn client(dir: &tempfile::TempDir) -> Client {
        Client::new(
            Addr::Unix(dir.path().join("p.sock")),
            Duration::from_secs(2),
        )
    }

    #[test]
    fn a_call_posts_json_with_the_media_type_and_decodes_the_answer() {
        let (dir, h) = serve(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 29\r\n\r\n{\"Implements\":[\"VolumeDriver\"]}",
        );
        #[derive(Debug, serde::Deserialize)]
        struct A {
            #[serde(rename = "Implements")]
            implements: Vec<String>,
        }
        // Content-Length says 29 of the 31 bytes: the answer is cut there,
        // which is not JSON.
        let r: Result<A, _> = client(&dir).call("Plugin.Activate", &serde_json::json!({}));
        assert!(matches!(r, Err(CallError::Garbage { .. })), "{r:?}");
        let got = String::from_utf8(h.join().unwrap()).unwrap();
        assert!(
            got.starts_with("POST /Plugin.Activate HTTP/1.1\r\n"),
            "{got}"
        );
        assert!(got.contains(&format!("Accept: {MEDIA_TYPE}")));
        assert!(got.ends_with("\r\n\r\n{}"), "{got}");

        let (dir, _h) = serve(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"Implements\":[\"\r\nf\r\nVolumeDriver\"]}\r\n0\r\n\r\n",
        );
        let a: A = client(&dir).call("Plugin.Activate", &()).unwrap();
        assert_eq!(a.implements, ["VolumeDriver"]);
    }

    #[test]
    fn a_refusal_carries_the_plugins_err_or_its_body() {
        let (dir, _h) =
            serve(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 20\r\n\r\n{\"Err\":\"no such vol\"}");
        let e = client(&dir)
            .call::<_, serde_json::Value>("VolumeDriver.Get", &())
            .unwrap_err();
        // 20 bytes of a 21-byte object: not JSON, so the body is the message.
        assert_eq!(e.to_string(), "VolumeDriver.Get: {\"Err\":\"no such vol\"");
        let (dir, _h) =
            serve(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 21\r\n\r\n{\"Err\":\"no such vol\"}");
        let e = client(&dir)
            .call::<_, serde_json::Value>("VolumeDriver.Get", &())
            .unwrap_err();
        assert_eq!(e.to_string(), "VolumeDriver.Get: no such vol");
        assert!(matches!(e, CallError::Status { status: 500, .. }));
    }

    #[test]
    fn garbage_a_hang_and_an_absent_plugin_are_clear_errors_in_time() {
        let (dir, _h) = serve(b"SSH-2.0-OpenSSH\r\n\r\n");
        let e = client(&dir)
            .call::<_, serde_json::Value>("X.Y", &())
            .unwrap_err();
        assert!(matches!(e, CallError::Garbage { .. }), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let l = UnixListener::bind(dir.path().join("p.sock")).unwrap();
        let _keep = std::thread::spawn(move || {
            let s = l.accept();
            std::thread::sleep(Duration::from_secs(4));
            drop(s);
        });
        let c = Client::new(
            Addr::Unix(dir.path().join("p.sock")),
            Duration::from_millis(500),
        );
        let t = Instant::now();
        let e = c.call::<_, serde_json::Value>("X.Y", &()).unwrap_err();
        assert!(matches!(e, CallError::Timeout { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3));

        let c = Client::new(
            Addr::Unix(dir.path().join("gone.sock")),
            Duration::from_millis(400),
        );
        let t = Instant::now();
        let e = c.call::<_, serde_json::Value>("X.Y", &()).unwrap_err();
        assert!(e.unreachable(), "{e}");
        assert!(t.elapsed() >= Duration::from_millis(200));
        assert!(t.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn addresses_parse_as_docker_writes_them() {
        assert_eq!(
            Addr::parse("unix:///run/p.sock").unwrap(),
            (Addr::Unix("/run/p.sock".into()), false)
        );
        assert_eq!(
            Addr::parse("tcp://localhost:8080").unwrap(),
            (Addr::Tcp("localhost:8080".into()), false)
        );
        assert_eq!(
            Addr::parse("https://example.com:443/docker/plugin").unwrap(),
            (Addr::Tcp("example.com:443".into()), true)
        );
        assert!(Addr::parse("ftp://x").is_err());
        assert!(Addr::parse("unix://").is_err());
    }
}
