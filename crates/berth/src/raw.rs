//! A small HTTP/1.1 client on the daemon connection, for what bollard
//! 0.19.4 cannot do the way the docker CLI does:
//! - hijacked attach / exec start: bollard guesses the framing from the
//!   first byte of output (a TTY's `\x01` would be read as a frame header,
//!   and stream 3 panics it), while docker frames by `Config.Tty`; and it
//!   gives no way to half-close the write side after stdin's EOF;
//! - `wait` sent before `start`: the docker CLI only sends `start` once the
//!   wait's response headers arrived, or a quick exit is missed; bollard's
//!   wait stream does not say when that is;
//! - raw bodies: `logs` framed by `Config.Tty`, and `inspect`, which prints
//!   the daemon's JSON as sent (field order and all).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub type Stream = BufReader<Box<dyn Io>>;

#[derive(Clone)]
pub struct Tls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Where and how to reach the daemon, with the negotiated API prefix.
#[derive(Clone)]
pub struct Raw {
    pub host: String,
    pub tls: Option<Tls>,
    /// `/v1.50`
    pub prefix: String,
}

/// Query strings the way Go's `url.Values.Encode` writes them.
pub fn query(pairs: &[(&str, String)]) -> String {
    let enc = |s: &str| {
        let mut o = String::new();
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    o.push(b as char)
                }
                b' ' => o.push('+'),
                _ => o.push_str(&format!("%{b:02X}")),
            }
        }
        o
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Path segments (names, IDs) escaped for the request line; image names
/// keep their `/` and `:` as the docker CLI sends them.
pub fn seg(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b'/'
            | b':'
            | b'@' => o.push(b as char),
            _ => o.push_str(&format!("%{b:02X}")),
        }
    }
    o
}

pub struct Response {
    pub status: u16,
    headers: Vec<(String, String)>,
    pub io: Stream,
}

impl Raw {
    async fn connect(&self) -> anyhow::Result<Box<dyn Io>> {
        if let Some(path) = self.host.strip_prefix("unix://") {
            let s = tokio::net::UnixStream::connect(path)
                .await
                .with_context(|| format!("connecting to {path}"))?;
            return Ok(Box::new(s));
        }
        let Some(addr) = self.host.strip_prefix("tcp://") else {
            bail!("unsupported host {:?}", self.host);
        };
        let s = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let _ = s.set_nodelay(true);
        match &self.tls {
            None => Ok(Box::new(s)),
            Some(t) => {
                let host = berth_api::tls::server_host(addr).to_string();
                let name =
                    rustls::pki_types::ServerName::try_from(host).context("TLS server name")?;
                let conn = tokio_rustls::TlsConnector::from(Arc::new(tls_config(t)?))
                    .connect(name, s)
                    .await
                    .context("TLS handshake")?;
                Ok(Box::new(conn))
            }
        }
    }

    /// Sends one request on a fresh connection and reads the response head.
    /// `upgrade` asks for a hijack (`Upgrade: tcp`); otherwise the
    /// connection is closed after this response.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        upgrade: bool,
    ) -> anyhow::Result<Response> {
        self.send_with(method, path, body, upgrade, &[]).await
    }

    /// As `send`, with extra request headers (e.g. `X-Registry-Auth`).
    pub async fn send_with(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        upgrade: bool,
        extra: &[(&str, String)],
    ) -> anyhow::Result<Response> {
        let io = self.connect().await?;
        let mut io = BufReader::new(io);
        let (ctype, body) = body.unwrap_or(("text/plain", Vec::new()));
        let mut head = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: api.moby.localhost\r\nUser-Agent: berth/{}\r\nContent-Length: {}\r\n",
            self.prefix,
            env!("CARGO_PKG_VERSION"),
            body.len()
        );
        if method != "GET" || !body.is_empty() {
            head.push_str(&format!("Content-Type: {ctype}\r\n"));
        }
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if upgrade {
            head.push_str("Connection: Upgrade\r\nUpgrade: tcp\r\n");
        } else {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        io.get_mut().write_all(head.as_bytes()).await?;
        io.get_mut().write_all(&body).await?;
        io.get_mut().flush().await?;
        let mut line = String::new();
        io.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("bad response from the daemon: {line:?}"))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            if io.read_line(&mut line).await? == 0 {
                bail!("the daemon closed the connection mid-response");
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        Ok(Response {
            status,
            headers,
            io,
        })
    }

    /// A request whose answer must be 2xx (or 304); returns the body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> anyhow::Result<Vec<u8>> {
        let r = self.send(method, path, body, false).await?;
        if r.status >= 400 {
            return Err(r.error().await.into());
        }
        r.body().await
    }

    /// GET of a JSON object, kept as the daemon's raw text.
    pub async fn get_raw(&self, path: &str) -> anyhow::Result<String> {
        Ok(String::from_utf8_lossy(&self.call("GET", path, None).await?).into_owned())
    }

    /// Attach or exec start: expects `101`, returns the hijacked stream.
    pub async fn hijack(
        &self,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> anyhow::Result<Stream> {
        let r = self.send("POST", path, body, true).await?;
        match r.status {
            101 => Ok(r.io),
            s if s >= 400 => Err(r.error().await.into()),
            s => bail!("unable to upgrade to tcp, received {s}"),
        }
    }
}

impl Response {
    /// All response headers, names lower-cased.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as a reader of chunks (chunked, sized or until close).
    pub fn into_body(self) -> Body {
        let mode = if self
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            Mode::Chunked
        } else if let Some(n) = self.header("content-length").and_then(|v| v.parse().ok()) {
            Mode::Length(n)
        } else if self.status == 204 || self.status == 304 {
            Mode::Length(0)
        } else {
            Mode::Eof
        };
        Body { io: self.io, mode }
    }

    pub async fn body(self) -> anyhow::Result<Vec<u8>> {
        let mut b = self.into_body();
        let mut out = Vec::new();
        while let Some(c) = b.chunk().await? {
            out.extend_from_slice(&c);
        }
        Ok(out)
    }

    /// The daemon's error as bollard reports it, so it prints as
    /// `Error response from daemon: …` and 404s are recognisable.
    pub async fn error(self) -> bollard::errors::Error {
        let status = self.status;
        let json = self
            .header("content-type")
            .is_some_and(|c| c == "application/json");
        let body = self.body().await.unwrap_or_default();
        let message = if json {
            serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["message"].as_str().map(String::from))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string())
        } else {
            String::from_utf8_lossy(&body).trim().to_string()
        };
        let message = if message.is_empty() {
            format!("request returned {status} with an empty body")
        } else {
            message
        };
        bollard::errors::Error::DockerResponseServerError {
            status_code: status,
            message,
        }
    }
}

enum Mode {
    Chunked,
    Length(u64),
    Eof,
}

pub struct Body {
    io: Stream,
    mode: Mode,
}

impl Body {
    /// The next piece of the body, as soon as it arrives; `None` at the end.
    pub async fn chunk(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        match &mut self.mode {
            Mode::Length(0) => Ok(None),
            Mode::Length(n) => {
                let mut buf = vec![0u8; (*n).min(64 * 1024) as usize];
                let got = self.io.read(&mut buf).await?;
                if got == 0 {
                    bail!("unexpected end of the response body");
                }
                *n -= got as u64;
                buf.truncate(got);
                Ok(Some(buf))
            }
            Mode::Eof => {
                let mut buf = vec![0u8; 64 * 1024];
                let got = self.io.read(&mut buf).await?;
                if got == 0 {
                    return Ok(None);
                }
                buf.truncate(got);
                Ok(Some(buf))
            }
            Mode::Chunked => {
                let mut line = String::new();
                if self.io.read_line(&mut line).await? == 0 {
                    // The daemon went away mid-stream (e.g. stopped); the
                    // docker CLI treats that as the end too.
                    return Ok(None);
                }
                let size = line.trim().split(';').next().unwrap_or("");
                let n = usize::from_str_radix(size, 16)
                    .map_err(|_| anyhow::anyhow!("bad chunk size {size:?}"))?;
                if n == 0 {
                    // Trailers, then the blank line.
                    loop {
                        line.clear();
                        if self.io.read_line(&mut line).await? == 0 || line.trim().is_empty() {
                            break;
                        }
                    }
                    self.mode = Mode::Length(0);
                    return Ok(None);
                }
                let mut buf = vec![0u8; n];
                self.io.read_exact(&mut buf).await?;
                let mut crlf = [0u8; 2];
                self.io.read_exact(&mut crlf).await?;
                Ok(Some(buf))
            }
        }
    }
}

/// `--tlsverify`: the daemon's certificate must chain to `ca`; ours is
/// `cert` with `key` (the daemon asks for one).
fn tls_config(t: &Tls) -> anyhow::Result<rustls::ClientConfig> {
    Ok(berth_api::tls::ClientTls::from_files(Some(&t.ca), Some((&t.cert, &t.key)))?.config()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_encode_like_go() {
        assert_eq!(
            query(&[
                ("filters", r#"{"name":{"a b":true}}"#.into()),
                ("all", "1".into())
            ]),
            "filters=%7B%22name%22%3A%7B%22a+b%22%3Atrue%7D%7D&all=1"
        );
        assert_eq!(seg("my repo/bb:v1"), "my%20repo/bb:v1");
    }
}
