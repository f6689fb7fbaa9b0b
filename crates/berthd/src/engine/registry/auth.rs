//! Registry authentication: the `X-Registry-Auth` credentials, the
//! `WWW-Authenticate` challenge of `GET /v2/`, bearer tokens from the
//! registry's token server (Docker Hub's flow), basic auth (htpasswd
//! registries), and an authorised [`Session`] that every pull and push
//! request goes through.

use std::collections::BTreeSet;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use super::client::{self, go_method, read_body, RegistryError, ReqBody, Transports};
use super::endpoint::Endpoint;
use crate::engine::{EngineError, Result};

pub(super) const USER_AGENT: &str = concat!("berth/", env!("CARGO_PKG_VERSION"));

/// Docker's `registry.AuthConfig`, as the CLI sends it (base64url JSON in
/// `X-Registry-Auth`, or the body of `POST /auth`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuthConfig {
    #[serde(default, alias = "Username", deserialize_with = "null_is_empty")]
    pub username: String,
    #[serde(default, alias = "Password", deserialize_with = "null_is_empty")]
    pub password: String,
    /// base64 of `user:password`.
    #[serde(default, alias = "Auth", deserialize_with = "null_is_empty")]
    pub auth: String,
    #[serde(default, alias = "Email", deserialize_with = "null_is_empty")]
    pub email: String,
    #[serde(default, alias = "ServerAddress", deserialize_with = "null_is_empty")]
    pub serveraddress: String,
    /// A refresh token from an earlier login (OAuth2).
    #[serde(default, alias = "IdentityToken", deserialize_with = "null_is_empty")]
    pub identitytoken: String,
    /// A bearer token to send as is.
    #[serde(default, alias = "RegistryToken", deserialize_with = "null_is_empty")]
    pub registrytoken: String,
}

/// Go's decoder leaves a string field empty for a JSON `null`; clients
/// such as bollard send every unset field as `null`.
fn null_is_empty<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

impl AuthConfig {
    /// Decodes `X-Registry-Auth` (base64url JSON, padded or not; `{}` or
    /// absent means anonymous).
    pub fn from_header(v: Option<&str>) -> Result<Self> {
        let v = v.map(str::trim).unwrap_or("");
        if v.is_empty() {
            return Ok(Self::default());
        }
        let engines = [
            base64::engine::general_purpose::URL_SAFE,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::STANDARD_NO_PAD,
        ];
        let raw = engines
            .iter()
            .find_map(|e| e.decode(v).ok())
            .ok_or_else(|| {
                EngineError::invalid("failed to decode credentials: invalid X-Registry-Auth header")
            })?;
        let mut c: AuthConfig = serde_json::from_slice(&raw)
            .map_err(|e| EngineError::invalid(format!("failed to decode credentials: {e}")))?;
        c.fill_from_auth();
        Ok(c)
    }

    /// Fills username/password from `auth` when they are empty.
    pub fn fill_from_auth(&mut self) {
        if self.username.is_empty() && !self.auth.is_empty() {
            if let Ok(b) = base64::engine::general_purpose::STANDARD.decode(self.auth.trim()) {
                if let Some((u, p)) = String::from_utf8_lossy(&b).split_once(':') {
                    self.username = u.to_string();
                    self.password = p.to_string();
                }
            }
        }
    }

    fn has_basic(&self) -> bool {
        !self.username.is_empty() && !self.password.is_empty()
    }

    pub(super) fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// One `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Bearer realm="…",service="…",scope="…"` / `Basic realm="…"`.
pub fn parse_challenge(h: &str) -> Challenge {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params: Vec<(String, String)> = Vec::new();
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b' ' || b[i] == b',') {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' {
            i += 1;
        }
        let key = rest[ks..i].trim().to_ascii_lowercase();
        if i >= b.len() || b[i] != b'=' {
            continue;
        }
        i += 1;
        let mut val = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                val.push(b[i] as char);
                i += 1;
            }
            i += 1;
        } else {
            let vs = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            val = rest[vs..i].trim().to_string();
        }
        params.push((key, val));
    }
    let get = |k: &str| params.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Challenge::Basic,
        "bearer" => match get("realm") {
            Some(realm) => Challenge::Bearer {
                realm,
                service: get("service"),
                scope: get("scope"),
            },
            None => Challenge::None,
        },
        _ => Challenge::None,
    }
}

fn challenge_of(h: &HeaderMap) -> Challenge {
    let mut found = Challenge::None;
    for v in h.get_all(header::WWW_AUTHENTICATE) {
        if let Ok(s) = v.to_str() {
            match parse_challenge(s) {
                c @ Challenge::Bearer { .. } => return c,
                Challenge::Basic => found = Challenge::Basic,
                Challenge::None => {}
            }
        }
    }
    found
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: String,
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    refresh_token: String,
}

/// The token server's answer: the bearer token and, for logins that asked
/// for offline access, a refresh token (Docker's `IdentityToken`).
pub struct Token {
    pub token: String,
    pub refresh: String,
}

/// Fetches a bearer token for `scopes` (Docker's token flow: GET with basic
/// credentials, or POST an OAuth2 refresh token).
pub async fn fetch_token(
    transports: &Transports,
    realm: &str,
    service: Option<&str>,
    scopes: &BTreeSet<String>,
    creds: &AuthConfig,
    offline: bool,
) -> Result<Token> {
    if !creds.registrytoken.is_empty() {
        return Ok(Token {
            token: creds.registrytoken.clone(),
            refresh: String::new(),
        });
    }
    let mut u = url::Url::parse(realm)
        .map_err(|e| EngineError::internal(format!("invalid token realm {realm:?}: {e}")))?;
    let host = match u.port() {
        Some(p) => format!("{}:{p}", u.host_str().unwrap_or("")),
        None => u.host_str().unwrap_or("").to_string(),
    };
    let t = transports.get(&host, false)?;
    let req = if !creds.identitytoken.is_empty() {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "refresh_token");
        form.append_pair("refresh_token", &creds.identitytoken);
        form.append_pair("client_id", "docker");
        if let Some(s) = service {
            form.append_pair("service", s);
        }
        if !scopes.is_empty() {
            form.append_pair(
                "scope",
                &scopes.iter().cloned().collect::<Vec<_>>().join(" "),
            );
        }
        if offline {
            form.append_pair("access_type", "offline");
        }
        Request::builder()
            .method(Method::POST)
            .uri(u.as_str())
            .header(header::USER_AGENT, USER_AGENT)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(client::full(form.finish()))
    } else {
        {
            let mut q = u.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in scopes {
                q.append_pair("scope", s);
            }
            if creds.has_basic() {
                q.append_pair("account", &creds.username);
            }
            if offline {
                q.append_pair("offline_token", "true");
                q.append_pair("client_id", "docker");
            }
        }
        let mut b = Request::builder()
            .method(Method::GET)
            .uri(u.as_str())
            .header(header::USER_AGENT, USER_AGENT);
        if creds.has_basic() {
            b = b.header(header::AUTHORIZATION, creds.basic_header());
        }
        b.body(client::empty())
    }
    .map_err(|e| EngineError::internal(format!("token request: {e}")))?;
    let method = go_method(req.method());
    let shown = u.to_string();
    let resp = t.send(req).await?;
    if resp.status() != StatusCode::OK {
        let status = resp.status();
        let e = RegistryError::from_response(resp).await;
        let msg = format!("{method} \"{shown}\": {e}");
        return Err(if status == StatusCode::UNAUTHORIZED {
            EngineError::Unauthorized(msg)
        } else {
            EngineError::internal(msg)
        });
    }
    let body = read_body(resp, 1 << 20).await?;
    let tr: TokenResponse = serde_json::from_slice(&body)
        .map_err(|e| EngineError::internal(format!("invalid token response: {e}")))?;
    let token = if tr.token.is_empty() {
        tr.access_token
    } else {
        tr.token
    };
    if token.is_empty() {
        return Err(EngineError::internal(
            "the token server returned no token".to_string(),
        ));
    }
    Ok(Token {
        token,
        refresh: tr.refresh_token,
    })
}

/// `repository:<path>:<actions>`
pub fn repo_scope(path: &str, actions: &str) -> String {
    format!("repository:{path}:{actions}")
}

struct Authz {
    header: Option<String>,
    scopes: BTreeSet<String>,
    /// A basic challenge with no credentials to answer it.
    no_basic: bool,
}

/// An authorised conversation with one registry endpoint.
pub struct Session {
    transports: Arc<Transports>,
    pub endpoint: Endpoint,
    creds: AuthConfig,
    challenge: Challenge,
    authz: tokio::sync::Mutex<Authz>,
}

pub struct Ping {
    pub status: StatusCode,
    pub challenge: Challenge,
}

/// `GET /v2/`: whether the endpoint answers, and how it wants to be
/// authenticated.
pub async fn ping(transports: &Transports, ep: &Endpoint) -> Result<Ping> {
    let t = transports.get(&ep.host, ep.skip_verify)?;
    let req = Request::builder()
        .method(Method::GET)
        .uri(ep.url("/v2/"))
        .header(header::USER_AGENT, USER_AGENT)
        .body(client::empty())
        .map_err(|e| EngineError::internal(format!("request: {e}")))?;
    let resp = t.send(req).await?;
    let status = resp.status();
    let challenge = if status == StatusCode::UNAUTHORIZED {
        challenge_of(resp.headers())
    } else {
        Challenge::None
    };
    // Drain so the connection goes back to the pool.
    let _ = read_body(resp, 64 << 10).await;
    Ok(Ping { status, challenge })
}

impl Session {
    /// Pings the endpoint and obtains credentials for `scopes`.
    pub async fn open(
        transports: Arc<Transports>,
        endpoint: Endpoint,
        scopes: &[String],
        creds: AuthConfig,
    ) -> Result<Self> {
        let p = ping(&transports, &endpoint).await?;
        let s = Self {
            transports,
            endpoint,
            creds,
            challenge: p.challenge,
            authz: tokio::sync::Mutex::new(Authz {
                header: None,
                scopes: BTreeSet::new(),
                no_basic: false,
            }),
        };
        s.authorize(scopes.iter().cloned().collect()).await?;
        Ok(s)
    }

    async fn authorize(&self, scopes: BTreeSet<String>) -> Result<()> {
        let mut a = self.authz.lock().await;
        match &self.challenge {
            Challenge::None => {}
            Challenge::Basic => {
                if self.creds.has_basic() {
                    a.header = Some(self.creds.basic_header());
                } else {
                    a.no_basic = true;
                }
            }
            Challenge::Bearer { realm, service, .. } => {
                let mut all = a.scopes.clone();
                all.extend(scopes);
                let tok = fetch_token(
                    &self.transports,
                    realm,
                    service.as_deref(),
                    &all,
                    &self.creds,
                    false,
                )
                .await?;
                a.header = Some(format!("Bearer {}", tok.token));
                a.scopes = all;
            }
        }
        Ok(())
    }

    pub fn url(&self, path: &str) -> String {
        self.endpoint.url(path)
    }

    fn same_host(&self, uri: &http::Uri) -> bool {
        uri.authority().map(|a| a.as_str()) == Some(self.endpoint.host.as_str())
    }

    async fn build(
        &self,
        method: &Method,
        url: &str,
        headers: &[(header::HeaderName, String)],
        body: ReqBody,
    ) -> Result<Request<ReqBody>> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| EngineError::internal(format!("invalid URL {url:?}: {e}")))?;
        let mut b = Request::builder()
            .method(method.clone())
            .uri(uri.clone())
            .header(header::USER_AGENT, USER_AGENT);
        for (k, v) in headers {
            b = b.header(k, v);
        }
        if self.same_host(&uri) {
            let a = self.authz.lock().await;
            if a.no_basic {
                return Err(EngineError::Unauthorized(format!(
                    "{} \"{url}\": no basic auth credentials",
                    go_method(method)
                )));
            }
            if let Some(h) = &a.header {
                b = b.header(header::AUTHORIZATION, h);
            }
        }
        b.body(body)
            .map_err(|e| EngineError::internal(format!("request: {e}")))
    }

    fn transport_for(&self, uri: &http::Uri) -> Result<Arc<client::Transport>> {
        if self.same_host(uri) {
            self.transports
                .get(&self.endpoint.host, self.endpoint.skip_verify)
        } else {
            let host = uri.authority().map(|a| a.to_string()).unwrap_or_default();
            self.transports.get(&host, false)
        }
    }

    /// A request with a replayable body: redirects (GET/HEAD) are followed,
    /// dropping credentials when they leave the registry, and a 401 asking
    /// for more scope gets a new token and one retry.
    pub async fn request(
        &self,
        method: Method,
        url: &str,
        headers: &[(header::HeaderName, String)],
        body: Option<Bytes>,
    ) -> Result<Response<Incoming>> {
        let mut url = url.to_string();
        let mut retried = false;
        for _ in 0..10 {
            let b = match &body {
                Some(b) => client::full(b.clone()),
                None => client::empty(),
            };
            let req = self.build(&method, &url, headers, b).await?;
            let uri = req.uri().clone();
            let t = self.transport_for(&uri)?;
            let resp = t.send(req).await?;
            let st = resp.status();
            if st == StatusCode::UNAUTHORIZED && !retried && self.same_host(&uri) {
                if let Challenge::Bearer { scope: Some(s), .. } = challenge_of(resp.headers()) {
                    let missing = {
                        let a = self.authz.lock().await;
                        s.split(' ').any(|x| !a.scopes.contains(x))
                    };
                    if missing {
                        retried = true;
                        let _ = read_body(resp, 64 << 10).await;
                        self.authorize(s.split(' ').map(str::to_string).collect())
                            .await?;
                        continue;
                    }
                }
            }
            if st.is_redirection() && (method == Method::GET || method == Method::HEAD) {
                if let Some(loc) = resp.headers().get(header::LOCATION) {
                    let loc = loc.to_str().unwrap_or("").to_string();
                    let base = url::Url::parse(&url)
                        .map_err(|e| EngineError::internal(format!("invalid URL: {e}")))?;
                    let next = base.join(&loc).map_err(|e| {
                        EngineError::internal(format!("invalid redirect {loc:?}: {e}"))
                    })?;
                    let _ = read_body(resp, 64 << 10).await;
                    url = next.to_string();
                    continue;
                }
            }
            return Ok(resp);
        }
        Err(EngineError::internal(format!(
            "{} \"{url}\": stopped after 10 redirects",
            go_method(&method)
        )))
    }

    /// A request with a streamed body: no redirects, no retries.
    pub async fn request_stream(
        &self,
        method: Method,
        url: &str,
        headers: &[(header::HeaderName, String)],
        body: ReqBody,
    ) -> Result<Response<Incoming>> {
        let req = self.build(&method, url, headers, body).await?;
        let t = self.transport_for(req.uri())?;
        t.send(req).await
    }
}

/// `POST /auth`: checks credentials against a registry as `docker login`
/// does. Returns the identity token (a refresh token) when the token
/// server issued one.
pub async fn login(
    transports: &Transports,
    endpoints: &[Endpoint],
    creds: &AuthConfig,
) -> Result<String> {
    let mut last: Option<EngineError> = None;
    for ep in endpoints {
        match login_one(transports, ep, creds).await {
            Ok(t) => return Ok(t),
            Err(e @ EngineError::Unavailable(_)) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(match last {
        Some(EngineError::Unavailable(m)) => EngineError::Internal(m),
        Some(e) => e,
        None => EngineError::internal("no registry endpoint to log in to"),
    })
}

async fn login_one(transports: &Transports, ep: &Endpoint, creds: &AuthConfig) -> Result<String> {
    let p = ping(transports, ep).await?;
    let url = ep.url("/v2/");
    let failed = |status: StatusCode| {
        EngineError::Unauthorized(format!(
            "login attempt to {url} failed with status: {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ))
    };
    let (header, refresh) = match &p.challenge {
        Challenge::None => {
            return if p.status.is_success() {
                Ok(String::new())
            } else {
                Err(failed(p.status))
            }
        }
        Challenge::Basic => {
            if !creds.has_basic() {
                return Err(EngineError::Unauthorized(format!(
                    "Get \"{url}\": no basic auth credentials"
                )));
            }
            (creds.basic_header(), String::new())
        }
        Challenge::Bearer { realm, service, .. } => {
            let t = fetch_token(
                transports,
                realm,
                service.as_deref(),
                &BTreeSet::new(),
                creds,
                true,
            )
            .await?;
            (format!("Bearer {}", t.token), t.refresh)
        }
    };
    let t = transports.get(&ep.host, ep.skip_verify)?;
    let req = Request::builder()
        .method(Method::GET)
        .uri(&url)
        .header(header::USER_AGENT, USER_AGENT)
        .header(
            header::AUTHORIZATION,
            HeaderValue::from_str(&header)
                .map_err(|_| EngineError::invalid("credentials contain invalid characters"))?,
        )
        .body(client::empty())
        .map_err(|e| EngineError::internal(format!("request: {e}")))?;
    let resp = t.send(req).await?;
    let status = resp.status();
    let _ = read_body(resp, 64 << 10).await;
    if status.is_success() {
        Ok(refresh)
    } else {
        Err(failed(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_fields_decode_as_empty() {
        // What bollard sends for anonymous credentials.
        let json = r#"{"username":null,"password":null,"auth":null,"email":null,"serveraddress":null,"identitytoken":null,"registrytoken":null}"#;
        let h = base64::engine::general_purpose::URL_SAFE.encode(json);
        let c = AuthConfig::from_header(Some(&h)).unwrap();
        assert!(c.username.is_empty() && c.password.is_empty() && !c.has_basic());
        let json = r#"{"username":"u","password":"p","email":null}"#;
        let h = base64::engine::general_purpose::URL_SAFE.encode(json);
        let c = AuthConfig::from_header(Some(&h)).unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p"));
    }

    #[test]
    fn challenges_parse() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#
            ),
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull,push".into()),
            }
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Challenge::Basic
        );
        assert_eq!(parse_challenge("Negotiate"), Challenge::None);
    }

    #[test]
    fn registry_auth_header_decodes() {
        assert!(AuthConfig::from_header(Some("e30="))
            .unwrap()
            .username
            .is_empty());
        assert!(AuthConfig::from_header(None).unwrap().username.is_empty());
        let enc = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"username":"u","password":"p?>","serveraddress":"h:1"}"#);
        let c = AuthConfig::from_header(Some(&enc)).unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p?>"));
        let enc = base64::engine::general_purpose::STANDARD.encode(r#"{"auth":"dTpwOng="}"#);
        let c = AuthConfig::from_header(Some(&enc)).unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p:x"));
        assert!(AuthConfig::from_header(Some("!!!")).is_err());
    }
}
