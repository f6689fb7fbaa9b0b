//! The HTTP transport to registries: hyper's pooled client over rustls,
//! one per (host, trust) so each registry gets its own `certs.d` material.
//!
//! Why not the `oci-client` crate: it buffers or owns the blob streams
//! behind its own API (reqwest), while a pull here must hand the socket's
//! bytes to a blocking thread that verifies and unpacks them as they arrive,
//! with backpressure and without holding a blob in memory; push must stream
//! a layer gzip-compressed on the fly; TLS must come per registry from
//! Docker's `certs.d` layout (CA roots, client certificates, or none at all
//! for insecure registries); and errors must read like Docker's (Go's
//! `Get "url": …` texts). hyper, hyper-util, hyper-rustls and rustls are
//! already in the build, so this costs no new dependency tree. Reading the
//! PEM files and building the rustls configuration is `berth_api::tls`,
//! shared with the CLI and the daemon's listener.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use berth_api::tls::{self, ClientTls};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::{Frame, Incoming};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::mpsc;

use crate::engine::{EngineError, Result};

pub type ReqBody = BoxBody<Bytes, io::Error>;

pub fn empty() -> ReqBody {
    Empty::new().map_err(|e| match e {}).boxed()
}

pub fn full(b: impl Into<Bytes>) -> ReqBody {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

/// A request body fed by a channel (streamed uploads).
pub struct ChannelBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}

pub fn channel(rx: mpsc::Receiver<io::Result<Bytes>>) -> ReqBody {
    ChannelBody { rx }.boxed()
}

pub struct Transport {
    client: Client<HttpsConnector<HttpConnector>, ReqBody>,
}

/// Transports by (host, skip_verify), built on first use.
pub struct Transports {
    certs_dir: PathBuf,
    map: Mutex<HashMap<(String, bool), Arc<Transport>>>,
}

fn tls_err(m: impl std::fmt::Display) -> EngineError {
    EngineError::internal(m.to_string())
}

/// The TLS material of `<certs-dir>/<host>/`, Docker's layout: `*.crt` are
/// extra CA roots; each `X.cert` is a client certificate whose key is
/// `X.key`.
struct HostCerts {
    roots: Vec<CertificateDer<'static>>,
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

fn host_certs(dir: &Path) -> Result<HostCerts> {
    let mut out = HostCerts {
        roots: vec![],
        client: None,
    };
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(tls_err(format!("reading {}: {e}", dir.display()))),
    };
    let mut names: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    names.sort();
    for p in &names {
        let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.ends_with(".crt") {
            out.roots.extend(tls::read_certs(p).map_err(tls_err)?);
        } else if let Some(stem) = name.strip_suffix(".cert") {
            let key_path = dir.join(format!("{stem}.key"));
            if !key_path.exists() {
                return Err(tls_err(format!(
                    "missing key {} for client certificate {}. CA certificates must use the extension .crt",
                    key_path.display(),
                    p.display()
                )));
            }
            let chain = tls::read_certs(p).map_err(tls_err)?;
            let key = tls::read_key(&key_path).map_err(tls_err)?;
            out.client = Some((chain, key));
        } else if let Some(stem) = name.strip_suffix(".key") {
            if !dir.join(format!("{stem}.cert")).exists() {
                return Err(tls_err(format!(
                    "missing client certificate {stem}.cert for key {}",
                    p.display()
                )));
            }
        }
    }
    Ok(out)
}

impl Transports {
    pub fn new(certs_dir: PathBuf) -> Self {
        Self {
            certs_dir,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The transport for `host` (`host[:port]`).
    pub fn get(&self, host: &str, skip_verify: bool) -> Result<Arc<Transport>> {
        let key = (host.to_string(), skip_verify);
        if let Some(t) = self.map.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(t.clone());
        }
        let t = Arc::new(self.build(host, skip_verify)?);
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, t.clone());
        Ok(t)
    }

    fn build(&self, host: &str, skip_verify: bool) -> Result<Transport> {
        // Docker names the directory `host:port` (the port as written in
        // the reference); IPv6 hosts keep their brackets.
        let certs = host_certs(&self.certs_dir.join(host))?;
        let cfg = ClientTls {
            system_roots: true,
            roots: certs.roots,
            identity: certs.client,
            skip_verify,
        }
        .config()
        .map_err(|e| tls_err(format!("{host}: {e}")))?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(30)));
        http.set_nodelay(true);
        let conn = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(cfg)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(8)
            .build(conn);
        Ok(Transport { client })
    }
}

/// Go's method names in errors: `Get "https://…": …`.
pub fn go_method(m: &http::Method) -> String {
    let s = m.as_str();
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        if i == 0 {
            out.push(c.to_ascii_uppercase());
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// A transport failure as Go's HTTP client words it, e.g.
/// `dial tcp 127.0.0.1:5000: connect: connection refused` or
/// `tls: failed to verify certificate: x509: certificate signed by unknown authority`.
/// The rustls error somewhere in a chain (io::Errors wrap it, maybe twice).
fn find_tls<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(t) = e.downcast_ref::<rustls::Error>() {
        return Some(t);
    }
    if let Some(io) = e.downcast_ref::<io::Error>() {
        if let Some(inner) = io.get_ref() {
            let inner: &(dyn std::error::Error + 'static) = inner;
            if let Some(t) = find_tls(inner) {
                return Some(t);
            }
        }
    }
    e.source().and_then(find_tls)
}

fn describe(e: &(dyn std::error::Error + 'static), host: &str) -> String {
    if let Some(t) = find_tls(e) {
        return describe_tls(t, host);
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut last = e.to_string();
    while let Some(c) = cur {
        if let Some(t) = c.downcast_ref::<rustls::Error>() {
            return describe_tls(t, host);
        }
        if let Some(io) = c.downcast_ref::<io::Error>() {
            if let Some(t) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return describe_tls(t, host);
            }
            let addr = if host.contains(':') {
                host.to_string()
            } else {
                format!("{host}:443")
            };
            match io.kind() {
                io::ErrorKind::ConnectionRefused => {
                    return format!("dial tcp {addr}: connect: connection refused")
                }
                io::ErrorKind::TimedOut => return format!("dial tcp {addr}: i/o timeout"),
                io::ErrorKind::ConnectionReset => {
                    return format!("read tcp {addr}: connection reset by peer")
                }
                io::ErrorKind::UnexpectedEof => return "EOF".to_string(),
                _ => {}
            }
            let s = io.to_string();
            if s.contains("failed to lookup address") || s.contains("Name or service not known") {
                return format!(
                    "dial tcp: lookup {}: no such host",
                    super::endpoint::host_only(host)
                );
            }
        }
        last = c.to_string();
        cur = c.source();
    }
    last
}

fn describe_tls(e: &rustls::Error, host: &str) -> String {
    use rustls::{CertificateError, Error};
    match e {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "tls: failed to verify certificate: x509: certificate signed by unknown authority"
                .into()
        }
        Error::InvalidCertificate(CertificateError::NotValidForName)
        | Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => format!(
            "tls: failed to verify certificate: x509: certificate is not valid for {}",
            super::endpoint::host_only(host)
        ),
        Error::InvalidCertificate(CertificateError::Expired)
        | Error::InvalidCertificate(CertificateError::ExpiredContext { .. })
        | Error::InvalidCertificate(CertificateError::NotValidYet)
        | Error::InvalidCertificate(CertificateError::NotValidYetContext { .. }) => {
            "tls: failed to verify certificate: x509: certificate has expired or is not yet valid"
                .into()
        }
        Error::InvalidCertificate(c) => format!("tls: failed to verify certificate: {c:?}"),
        // A plain-HTTP server answering a TLS hello.
        Error::InvalidMessage(_) => "http: server gave HTTP response to HTTPS client".into(),
        Error::AlertReceived(a) => format!("remote error: tls: {a:?}"),
        other => format!("tls: {other}"),
    }
}

/// Whether an error means "this endpoint does not speak this protocol or is
/// unreachable", so the next endpoint (http after https) should be tried.
pub fn is_transport_error(e: &EngineError) -> bool {
    matches!(e, EngineError::Unavailable(_))
}

impl Transport {
    /// Sends one request. Transport failures come back as `Unavailable`
    /// with Go's wording, `Get "url": cause`.
    pub async fn send(&self, req: Request<ReqBody>) -> Result<Response<Incoming>> {
        let method = go_method(req.method());
        let url = req.uri().to_string();
        let host = req
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default();
        match self.client.request(req).await {
            Ok(r) => Ok(r),
            Err(e) => Err(EngineError::Unavailable(format!(
                "{method} \"{url}\": {}",
                describe(&e, &host)
            ))),
        }
    }
}

/// Reads a whole response body, refusing more than `limit` bytes.
pub async fn read_body(resp: Response<Incoming>, limit: usize) -> Result<Bytes> {
    let limited = http_body_util::Limited::new(resp.into_body(), limit);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(EngineError::internal(format!(
                    "registry response exceeds the {limit} byte limit"
                )))
            } else {
                Err(EngineError::internal(format!(
                    "reading registry response: {e}"
                )))
            }
        }
    }
}

/// A registry's error answer: its status and the `errors` of its body.
#[derive(Debug, Clone)]
pub struct RegistryError {
    pub status: u16,
    /// (code, message), e.g. ("MANIFEST_UNKNOWN", "manifest unknown").
    pub errors: Vec<(String, String)>,
}

#[derive(serde::Deserialize)]
struct ErrBody {
    #[serde(default)]
    errors: Vec<ErrItem>,
}

#[derive(serde::Deserialize)]
struct ErrItem {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

impl RegistryError {
    pub async fn from_response(resp: Response<Incoming>) -> Self {
        let status = resp.status().as_u16();
        let body = read_body(resp, 64 << 10).await.unwrap_or_default();
        let errors = serde_json::from_slice::<ErrBody>(&body)
            .map(|b| {
                b.errors
                    .into_iter()
                    .map(|e| (e.code, e.message))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        Self { status, errors }
    }

    pub fn has_code(&self, code: &str) -> bool {
        self.errors.iter().any(|(c, _)| c == code)
    }

    /// The first error as Go's errcode prints it (`manifest unknown: …`).
    pub fn first(&self) -> String {
        match self.errors.first() {
            Some((code, msg)) => {
                let words = code.to_ascii_lowercase().replace('_', " ");
                if msg.is_empty() {
                    words
                } else {
                    format!("{words}: {msg}")
                }
            }
            None => match self.status {
                401 => "unauthorized: authentication required".into(),
                403 => "denied: requested access to the resource is denied".into(),
                404 => "not found".into(),
                s => format!(
                    "received unexpected HTTP status: {s} {}",
                    http::StatusCode::from_u16(s)
                        .ok()
                        .and_then(|c| c.canonical_reason())
                        .unwrap_or("")
                ),
            },
        }
    }
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.first())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certs_dir_layout() {
        let d = tempfile::tempdir().unwrap();
        assert!(host_certs(&d.path().join("none")).unwrap().roots.is_empty());
        std::fs::write(d.path().join("client.cert"), "x").unwrap();
        let e = host_certs(d.path()).err().unwrap().to_string();
        assert!(e.contains("missing key"), "{e}");
        assert_eq!(go_method(&http::Method::HEAD), "Head");
    }

    #[test]
    fn registry_errors_read_like_go() {
        let e = RegistryError {
            status: 404,
            errors: vec![("MANIFEST_UNKNOWN".into(), "manifest unknown".into())],
        };
        assert_eq!(e.to_string(), "manifest unknown: manifest unknown");
        let e = RegistryError {
            status: 401,
            errors: vec![],
        };
        assert_eq!(e.to_string(), "unauthorized: authentication required");
    }
}
