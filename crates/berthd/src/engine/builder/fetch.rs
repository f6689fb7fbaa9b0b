//! `ADD <url>`: the daemon downloads the file (http or https, following
//! redirects), as Docker's classic builder does.

use std::path::Path;
use std::sync::Arc;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use tokio::io::AsyncWriteExt;

use crate::engine::{EngineError, Result};

pub struct Fetched {
    /// The file name the URL gives (its last path segment).
    pub name: String,
    /// `Last-Modified`, as seconds since the epoch.
    pub mtime: Option<i64>,
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

fn tls_config() -> Result<rustls::ClientConfig> {
    berth_api::tls::ClientTls {
        system_roots: true,
        ..Default::default()
    }
    .config()
    .map_err(|e| EngineError::internal(e.to_string()))
}

async fn connect(u: &url::Url) -> Result<Box<dyn Io>> {
    let host = u
        .host_str()
        .ok_or_else(|| EngineError::invalid(format!("invalid URL {u}: no host")))?
        .to_string();
    let port = u.port_or_known_default().unwrap_or(80);
    let addr_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let tcp = tokio::net::TcpStream::connect((addr_host.as_str(), port))
        .await
        .map_err(|e| EngineError::invalid(format!("fetching {u}: {e}")))?;
    if u.scheme() == "https" {
        let name = rustls::pki_types::ServerName::try_from(addr_host)
            .map_err(|e| EngineError::invalid(format!("fetching {u}: {e}")))?;
        let s = tokio_rustls::TlsConnector::from(Arc::new(tls_config()?))
            .connect(name, tcp)
            .await
            .map_err(|e| EngineError::invalid(format!("fetching {u}: TLS: {e}")))?;
        return Ok(Box::new(s));
    }
    Ok(Box::new(tcp))
}

/// Downloads `url` into `dest`.
pub async fn download(url: &str, dest: &Path) -> Result<Fetched> {
    let mut u = url::Url::parse(url)
        .map_err(|e| EngineError::invalid(format!("invalid URL {url}: {e}")))?;
    for _ in 0..10 {
        if !matches!(u.scheme(), "http" | "https") {
            return Err(EngineError::invalid(format!(
                "unsupported URL scheme in {u}"
            )));
        }
        let io = connect(&u).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
                .await
                .map_err(|e| EngineError::invalid(format!("fetching {u}: {e}")))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut path = u.path().to_string();
        if let Some(q) = u.query() {
            path.push('?');
            path.push_str(q);
        }
        let host = match u.port() {
            Some(p) => format!("{}:{p}", u.host_str().unwrap_or("")),
            None => u.host_str().unwrap_or("").to_string(),
        };
        let req = http::Request::get(path)
            .header(http::header::HOST, host)
            .header(http::header::USER_AGENT, "berth-builder")
            .body(Empty::<Bytes>::new())
            .map_err(|e| EngineError::internal(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| EngineError::invalid(format!("fetching {u}: {e}")))?;
        let status = resp.status();
        if status.is_redirection() {
            let loc = resp
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    EngineError::invalid(format!("fetching {u}: redirect without a location"))
                })?;
            u = u
                .join(loc)
                .map_err(|e| EngineError::invalid(format!("fetching {u}: bad redirect: {e}")))?;
            continue;
        }
        if !status.is_success() {
            return Err(EngineError::invalid(format!(
                "failed to GET {url} with status {status}"
            )));
        }
        let mtime = resp
            .headers()
            .get(http::header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| chrono::DateTime::parse_from_rfc2822(s).ok())
            .map(|t| t.timestamp());
        let mut f = tokio::fs::File::create(dest).await?;
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| EngineError::invalid(format!("fetching {u}: {e}")))?;
            if let Ok(d) = frame.into_data() {
                f.write_all(&d).await?;
            }
        }
        f.flush().await?;
        let name = url::Url::parse(url)
            .ok()
            .and_then(|x| {
                x.path_segments()
                    .and_then(|mut s| s.next_back().map(String::from))
            })
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                EngineError::invalid(format!("cannot determine filename from url: {url}"))
            })?;
        return Ok(Fetched { name, mtime });
    }
    Err(EngineError::invalid(format!(
        "fetching {url}: too many redirects"
    )))
}
