//! Authorization plugins (`--authorization-plugin`, daemon.json
//! `authorization-plugins`): dockerd's authorization middleware. Every API
//! request is put to each plugin in turn (`AuthZPlugin.AuthZReq`) before
//! its handler runs, and its answer (`AuthZPlugin.AuthZRes`) after; the
//! first plugin that does not allow answers the client 403, and a plugin
//! that cannot be asked (gone, hung past `--plugin-timeout`, talking
//! nonsense) answers 500: the request is refused either way.
//!
//! As dockerd does: the middleware wraps the version check (a plugin sees
//! requests for unsupported versions too); a denial carries none of the
//! common headers; a request body goes to plugins only when it is JSON and
//! under 1 MiB (and never for `/auth`, which carries a password); the
//! credential headers are stripped; on TLS connections the client's
//! certificates are sent and the first one's CN is the `User`. When the
//! handler failed, plugins see no status or body and their answer is not
//! heeded (dockerd answers with the handler's error). Streams and hijacked
//! connections are not held back: dockerd flushes them through as the
//! handler writes, so its plugins cannot stop them either; here the
//! plugins hear of them (status and headers) when the stream ends, or at
//! once for a hijack, and their answer is logged. A buffered answer whose
//! body is over 64 KiB (dockerd's buffer) is shown without its body.
//!
//! The plugins are found through the engine's plugin service; without any
//! configured, nothing here runs.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use rustls::pki_types::CertificateDer;

use crate::engine::settings::Live;
use serde::{Deserialize, Serialize, Serializer};

use super::error::ApiError;
use super::http::{full, Body, ReqBody, Resp};
use super::CommonHeaders;
use crate::engine::plugins::{Plugins, AUTHZ};

const REQUEST: &str = "AuthZPlugin.AuthZReq";
const RESPONSE: &str = "AuthZPlugin.AuthZRes";

/// Request bodies shown to plugins are under this size (dockerd 20.10's
/// `maxBodySize`); a larger one goes to the handler unseen.
const MAX_BODY: usize = 1 << 20;

/// dockerd buffers this much of an answer for its plugins; past it the
/// answer is on its way before they see it.
const MAX_RESPONSE_BODY: usize = 64 << 10;

/// The certificates a TLS client presented, as a request extension (what
/// authorization plugins are shown).
#[derive(Clone)]
pub struct TlsPeer(pub Arc<[CertificateDer<'static>]>);

/// The authorization middleware. The chain is the configured plugins, in
/// order, each once, read from the live settings at each request: a
/// reload (`SIGHUP`) changes it for the next request.
pub struct Authz {
    plugins: Arc<Plugins>,
    live: Arc<Live>,
    left: Left,
}

/// Managed plugins that were found disabled: out of the chain for the
/// daemon's life, as dockerd's `RemovePlugin` on disable.
type Left = Arc<std::sync::RwLock<std::collections::HashSet<String>>>;

/// What a plugin is shown (`authorization.Request`); every field is left
/// out when empty, as Go's `omitempty` does, and bodies are base64 as Go
/// writes a `[]byte`.
#[derive(Serialize, Default, Clone, Debug)]
struct Shown {
    #[serde(rename = "User", skip_serializing_if = "String::is_empty")]
    user: String,
    #[serde(rename = "UserAuthNMethod", skip_serializing_if = "String::is_empty")]
    user_authn_method: String,
    #[serde(rename = "RequestMethod", skip_serializing_if = "String::is_empty")]
    request_method: String,
    #[serde(rename = "RequestUri", skip_serializing_if = "String::is_empty")]
    request_uri: String,
    #[serde(
        rename = "RequestBody",
        skip_serializing_if = "Option::is_none",
        serialize_with = "base64"
    )]
    request_body: Option<Bytes>,
    #[serde(rename = "RequestHeaders", skip_serializing_if = "BTreeMap::is_empty")]
    request_headers: BTreeMap<String, String>,
    /// Each certificate as PEM, base64 (Go marshals the PEM as `[]byte`).
    #[serde(
        rename = "RequestPeerCertificates",
        skip_serializing_if = "Vec::is_empty"
    )]
    request_peer_certificates: Vec<String>,
    #[serde(rename = "ResponseStatusCode", skip_serializing_if = "is_zero")]
    response_status_code: u16,
    #[serde(
        rename = "ResponseBody",
        skip_serializing_if = "Option::is_none",
        serialize_with = "base64"
    )]
    response_body: Option<Bytes>,
    #[serde(rename = "ResponseHeaders", skip_serializing_if = "BTreeMap::is_empty")]
    response_headers: BTreeMap<String, String>,
}

fn is_zero(n: &u16) -> bool {
    *n == 0
}

fn base64<S: Serializer>(b: &Option<Bytes>, s: S) -> Result<S::Ok, S::Error> {
    match b {
        Some(b) => s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b)),
        None => s.serialize_none(),
    }
}

/// A plugin's verdict (`authorization.Response`). Go matches field names
/// without regard to case, hence the aliases; `Err` is not heeded by
/// dockerd on a 200 answer (only `Allow` decides).
#[derive(Deserialize, Default, Debug)]
struct Verdict {
    #[serde(rename = "Allow", alias = "allow", default)]
    allow: Option<bool>,
    #[serde(rename = "Msg", alias = "msg", default)]
    msg: Option<String>,
}

/// Why a request (or its answer) was refused.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// The plugin said no: 403.
    Denied { plugin: String, msg: String },
    /// The plugin could not be asked: 500.
    Failed { plugin: String, error: String },
}

impl Refusal {
    fn into_error(self) -> ApiError {
        match self {
            Refusal::Denied { plugin, msg } => ApiError::new(
                StatusCode::FORBIDDEN,
                format!("authorization denied by plugin {plugin}: {msg}"),
            ),
            Refusal::Failed { plugin, error } => {
                ApiError::internal(format!("plugin {plugin} failed with error: {error}"))
            }
        }
    }

    /// For the log.
    fn describe(&self) -> String {
        match self {
            Refusal::Denied { plugin, msg } => format!("denied by plugin {plugin}: {msg}"),
            Refusal::Failed { plugin, error } => format!("plugin {plugin} failed: {error}"),
        }
    }

    /// The answer to the client: dockerd writes it outside the middlewares
    /// that add the common headers.
    fn into_response(self) -> Resp {
        CommonHeaders::Omitted.mark(self.into_error().into_response())
    }
}

/// A request the plugins allowed, kept to show them its answer.
pub struct Pending {
    plugins: Arc<Plugins>,
    names: Arc<[String]>,
    left: Left,
    shown: Shown,
    /// `/auth`: no bodies either way.
    auth_endpoint: bool,
}

impl Authz {
    pub fn new(plugins: Arc<Plugins>, live: Arc<Live>) -> Self {
        Self {
            plugins,
            live,
            left: Left::default(),
        }
    }

    /// The chain now; empty when no plugin is configured (the middleware
    /// then costs one load of the settings).
    fn chain(&self) -> Arc<[String]> {
        let live = self.live.get();
        let mut names: Vec<String> = Vec::new();
        for n in &live.authorization_plugins {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        names.into()
    }

    /// Shows the request to every plugin, in order, before its handler
    /// runs. The body, when it is shown, is read here and put back for the
    /// handler. `Err` is the refusal to send to the client.
    /// `Ok(None)`: no plugin is configured.
    pub async fn request(&self, req: &mut Request<ReqBody>) -> Result<Option<Pending>, Resp> {
        if self.live.get().authorization_plugins.is_empty() {
            return Ok(None);
        }
        let names = self.chain();
        let uri = req.uri().to_string();
        let auth_endpoint = is_auth_endpoint(req.uri().path());
        let body = if !auth_endpoint && wants_body(req.headers()) {
            match read_body(req.body_mut()).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(method = %req.method(), %uri, "authorization: {e}");
                    return Err(CommonHeaders::Omitted.mark(
                        ApiError::internal(format!("reading request body: {e}")).into_response(),
                    ));
                }
            }
        } else {
            None
        };
        let mut shown = Shown {
            request_method: req.method().to_string(),
            request_uri: uri,
            request_body: body,
            request_headers: flatten(req.headers()),
            ..Shown::default()
        };
        if let Some(TlsPeer(certs)) = req.extensions().get::<TlsPeer>() {
            if let Some(cn) = certs.first().and_then(|c| common_name(c)) {
                shown.user = cn;
                shown.user_authn_method = "TLS".into();
            }
            shown.request_peer_certificates = certs
                .iter()
                .map(|c| base64::engine::general_purpose::STANDARD.encode(pem(c)))
                .collect();
        }
        let pending = Pending {
            plugins: self.plugins.clone(),
            names,
            left: self.left.clone(),
            shown,
            auth_endpoint,
        };
        match pending.ask(REQUEST) {
            Ok(()) => Ok(Some(pending)),
            Err(r) => {
                tracing::warn!(method = %req.method(), uri = %pending.shown.request_uri, "AuthZRequest refused: {}", r.describe());
                Err(r.into_response())
            }
        }
    }
}

impl Pending {
    /// Puts `method` to every plugin in order; the first that does not
    /// allow decides. Blocks (the plugin client steps out of the runtime).
    fn ask(&self, method: &str) -> Result<(), Refusal> {
        for name in self.names.iter() {
            // A disabled managed plugin leaves the chain for good, as
            // dockerd takes it out on disable.
            if self
                .left
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains(name)
            {
                continue;
            }
            if self.plugins.is_disabled(name) {
                self.left
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name.clone());
                continue;
            }
            let plugin = self.plugins.get(name, AUTHZ).map_err(|e| Refusal::Failed {
                plugin: name.clone(),
                error: e.to_string(),
            })?;
            // Named as configured (a managed plugin's full name ends in
            // `:latest`; dockerd words refusals with the name it was given).
            let v: Verdict = plugin
                .call(method, &self.shown)
                .map_err(|e| Refusal::Failed {
                    plugin: name.clone(),
                    error: e.to_string(),
                })?;
            if v.allow != Some(true) {
                return Err(Refusal::Denied {
                    plugin: name.clone(),
                    msg: v.msg.unwrap_or_default(),
                });
            }
        }
        Ok(())
    }

    /// Shows the handler's answer to the plugins. `failed`: the handler
    /// returned an error, which stands whatever they say.
    pub async fn respond(mut self, mut resp: Resp, failed: bool) -> Resp {
        self.shown.response_headers = flatten(resp.headers());
        if failed {
            // dockerd writes a handler's error after the middleware: the
            // plugins saw only the headers set so far.
            self.shown.response_headers.remove("Content-Type");
            if let Err(r) = self.ask(RESPONSE) {
                tracing::warn!(uri = %self.shown.request_uri, "AuthZResponse refused an error answer (not heeded): {}", r.describe());
                // dockerd's middleware then skips copying the headers the
                // version middleware set.
                strip_common_headers(resp.headers_mut());
            }
            return resp;
        }
        let status = resp.status();
        let hijack =
            status == StatusCode::SWITCHING_PROTOCOLS || resp.version() == http::Version::HTTP_10;
        let exact = hyper::body::Body::size_hint(resp.body()).exact();
        match exact {
            Some(n) if !hijack => {
                self.shown.response_status_code = status.as_u16();
                let (parts, body) = resp.into_parts();
                let bytes = match body.collect().await {
                    Ok(c) => c.to_bytes(),
                    Err(e) => {
                        return CommonHeaders::Omitted.mark(
                            ApiError::internal(format!("reading the response: {e}"))
                                .into_response(),
                        )
                    }
                };
                if !self.auth_endpoint
                    && n as usize <= MAX_RESPONSE_BODY
                    && !bytes.is_empty()
                    && is_json(&parts.headers)
                {
                    self.shown.response_body = Some(bytes.clone());
                }
                match self.ask(RESPONSE) {
                    Ok(()) => Resp::from_parts(parts, full(bytes)),
                    Err(r) => {
                        tracing::warn!(uri = %self.shown.request_uri, "AuthZResponse refused: {}", r.describe());
                        r.into_response()
                    }
                }
            }
            _ => {
                self.shown.response_status_code = status.as_u16();
                if hijack {
                    audit_later(self);
                    resp
                } else {
                    resp.map(|b| Audited::new(b, self).boxed_unsync())
                }
            }
        }
    }
}

/// Shows a stream's or hijack's answer to the plugins off the runtime;
/// their verdict can only be logged (the answer is out).
fn audit_later(p: Pending) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn_blocking(move || {
        if let Err(r) = p.ask(RESPONSE) {
            tracing::warn!(uri = %p.shown.request_uri, "AuthZResponse refused a streamed answer (already sent): {}", r.describe());
        }
    });
}

/// A streamed answer that shows itself to the plugins when it ends (or
/// the client leaves).
struct Audited {
    inner: Body,
    pending: Option<Pending>,
}

impl Audited {
    fn new(inner: Body, pending: Pending) -> Self {
        Self {
            inner,
            pending: Some(pending),
        }
    }
}

impl hyper::body::Body for Audited {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = r {
            if let Some(p) = self.pending.take() {
                audit_later(p);
            }
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Audited {
    fn drop(&mut self) {
        if let Some(p) = self.pending.take() {
            audit_later(p);
        }
    }
}

/// `/auth` (any version prefix, any suffix): dockerd never shows its
/// bodies, which carry a password.
fn is_auth_endpoint(path: &str) -> bool {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let rest = match rest.split_once('/') {
        Some((v, tail))
            if v.len() > 1
                && v.starts_with('v')
                && v[1..].starts_with(|c: char| c.is_ascii_digit())
                && v[1..].chars().all(|c| c.is_ascii_digit() || c == '.') =>
        {
            tail
        }
        _ => rest,
    };
    rest.starts_with("auth")
}

fn is_json(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
        .unwrap_or(false)
}

/// dockerd 20.10 (with the CVE-2024-41110 fix): a JSON body with a length
/// under the limit, or chunked; a zero or missing length is no body.
fn wants_body(h: &HeaderMap) -> bool {
    if !is_json(h) {
        return false;
    }
    let chunked = h.get_all(header::TRANSFER_ENCODING).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.to_ascii_lowercase().contains("chunked"))
    });
    let len = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if chunked {
        return true;
    }
    matches!(len, Some(n) if n > 0 && n < MAX_BODY as u64)
}

/// Reads up to the limit of the body; what was read goes back in front of
/// the rest. The body is shown only when it ended under the limit.
async fn read_body(body: &mut ReqBody) -> Result<Option<Bytes>, hyper::Error> {
    let Some(mut rest) = body.take_incoming() else {
        return Ok(None);
    };
    let mut buf = BytesMut::new();
    let mut ended = false;
    while buf.len() < MAX_BODY {
        match rest.frame().await {
            None => {
                ended = true;
                break;
            }
            Some(f) => {
                if let Ok(d) = f?.into_data() {
                    buf.extend_from_slice(&d);
                }
            }
        }
    }
    let head = buf.freeze();
    let shown = (ended && head.len() < MAX_BODY && !head.is_empty()).then(|| head.clone());
    *body = ReqBody::resumed(head, (!ended).then_some(rest));
    Ok(shown)
}

/// Headers as dockerd flattens them for plugins: Go's canonical names,
/// the last value of each, without the credentials (`Authorization`,
/// `X-Registry-Auth`, `X-Registry-Config`) nor what Go's server takes out
/// of the map (`Host`, `Transfer-Encoding`).
fn flatten(h: &HeaderMap) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in h {
        let k = k.as_str();
        if matches!(
            k,
            "authorization"
                | "x-registry-auth"
                | "x-registry-config"
                | "host"
                | "transfer-encoding"
        ) {
            continue;
        }
        out.insert(
            canonical(k),
            String::from_utf8_lossy(v.as_bytes()).into_owned(),
        );
    }
    out
}

/// Go's `CanonicalMIMEHeaderKey`: `content-type` → `Content-Type`.
fn canonical(k: &str) -> String {
    let mut up = true;
    k.chars()
        .map(|c| {
            let c2 = if up {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            up = c == '-';
            c2
        })
        .collect()
}

fn strip_common_headers(h: &mut HeaderMap) {
    for k in ["api-version", "ostype", "docker-experimental", "server"] {
        h.remove(k);
    }
}

/// The subject's common name of a DER certificate.
fn common_name(der: &CertificateDer<'_>) -> Option<String> {
    let x = openssl::x509::X509::from_der(der.as_ref()).ok()?;
    let e = x
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()?;
    e.data().to_string().ok()
}

/// A certificate as Go's `pem.EncodeToMemory` writes it.
fn pem(der: &CertificateDer<'_>) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut s = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        s.push_str(&String::from_utf8_lossy(line));
        s.push('\n');
    }
    s.push_str("-----END CERTIFICATE-----\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn auth_endpoint_with_and_without_version() {
        assert!(is_auth_endpoint("/auth"));
        assert!(is_auth_endpoint("/v1.41/auth"));
        assert!(is_auth_endpoint("/v1.41/auth/x"));
        assert!(!is_auth_endpoint("/containers/auth"));
        assert!(!is_auth_endpoint("/v1.41/containers/create"));
    }

    #[test]
    fn body_only_for_json_under_the_limit() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("10"));
        assert!(!wants_body(&h), "no content type");
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert!(wants_body(&h));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        assert!(!wants_body(&h), "empty");
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("1048576"));
        assert!(!wants_body(&h), "1 MiB");
        h.remove(header::CONTENT_LENGTH);
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        assert!(wants_body(&h), "chunked");
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-tar"),
        );
        assert!(!wants_body(&h), "not JSON");
    }

    #[test]
    fn headers_flattened_without_credentials() {
        let mut h = HeaderMap::new();
        h.insert("x-registry-auth", HeaderValue::from_static("secret"));
        h.insert("authorization", HeaderValue::from_static("Basic x"));
        h.insert("X-Registry-Config", HeaderValue::from_static("secret"));
        h.insert("host", HeaderValue::from_static("docker"));
        h.insert("user-agent", HeaderValue::from_static("Docker-Client/28"));
        h.append("x-a-b", HeaderValue::from_static("1"));
        h.append("x-a-b", HeaderValue::from_static("2"));
        let f = flatten(&h);
        assert_eq!(
            f.into_iter().collect::<Vec<_>>(),
            vec![
                ("User-Agent".to_string(), "Docker-Client/28".to_string()),
                ("X-A-B".to_string(), "2".to_string()),
            ]
        );
    }

    #[test]
    fn shown_as_go_marshals_it() {
        let s = Shown {
            request_method: "POST".into(),
            request_uri: "/v1.50/containers/create".into(),
            request_body: Some(Bytes::from_static(b"{}")),
            ..Shown::default()
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"RequestMethod":"POST","RequestUri":"/v1.50/containers/create","RequestBody":"e30="}"#
        );
    }

    #[test]
    fn verdicts() {
        let v: Verdict = serde_json::from_str(r#"{"allow":true}"#).unwrap();
        assert_eq!(v.allow, Some(true));
        let v: Verdict = serde_json::from_str(r#"{"Allow":false,"Msg":null,"Err":"x"}"#).unwrap();
        assert_eq!((v.allow, v.msg), (Some(false), None));
    }

    #[test]
    fn pem_lines_of_64() {
        let der = CertificateDer::from(vec![7u8; 100]);
        let p = pem(&der);
        let lines: Vec<&str> = p.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last().copied(), Some("-----END CERTIFICATE-----"));
    }
}
