//! Who may use the dashboard: the holder of the one-time token printed with
//! the URL. The page request carries it in the query and gets it back as an
//! HttpOnly cookie (for the page's own asset loads only); API calls carry it
//! in `X-Berth-Token` (a cookie alone is never enough, so a cross-site page
//! cannot ride on it); state-changing calls must also come from our own
//! origin with a JSON (or no) body; WebSocket upgrades carry it in the query
//! and must come from our origin. The `Host` of a loopback server must be
//! a loopback name (no DNS rebinding).

use std::net::SocketAddr;

use base64::Engine as _;
use http::request::Parts;
use http::{header, Method};
use subtle::ConstantTimeEq;

pub const COOKIE: &str = "berth_ui";
pub const HEADER: &str = "x-berth-token";

/// Why a request is refused: 401 (no or wrong token) or 403 (cross-site).
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    Unauthorized(&'static str),
    Forbidden(&'static str),
}

pub struct Auth {
    token: String,
    scheme: &'static str,
    bound: SocketAddr,
}

impl Auth {
    /// A fresh token: 32 bytes from the OS RNG, URL-safe base64.
    pub fn new(scheme: &'static str, bound: SocketAddr) -> anyhow::Result<Self> {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("reading the OS RNG: {e}"))?;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        Ok(Self::with_token(token, scheme, bound))
    }

    pub fn with_token(token: String, scheme: &'static str, bound: SocketAddr) -> Self {
        Self {
            token,
            scheme,
            bound,
        }
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    fn matches(&self, given: &str) -> bool {
        // Constant time over the token's bytes (lengths are not secret).
        given.len() == self.token.len() && bool::from(given.as_bytes().ct_eq(self.token.as_bytes()))
    }

    /// `GET /?token=T`: the page (and the cookie for its assets).
    pub fn page(&self, p: &Parts) -> Result<(), Refusal> {
        self.host(p)?;
        match query_token(p) {
            Some(t) if self.matches(&t) => Ok(()),
            _ => Err(Refusal::Unauthorized("missing or wrong token")),
        }
    }

    /// `/assets/…`: the cookie or `?token=`.
    pub fn asset(&self, p: &Parts) -> Result<(), Refusal> {
        self.host(p)?;
        let ok = cookie_token(p).is_some_and(|t| self.matches(&t))
            || query_token(p).is_some_and(|t| self.matches(&t));
        if ok {
            Ok(())
        } else {
            Err(Refusal::Unauthorized("missing or wrong token"))
        }
    }

    /// `/api/…`: the header, and for state changes our origin and no form.
    pub fn api(&self, p: &Parts) -> Result<(), Refusal> {
        self.host(p)?;
        let given = p.headers.get(HEADER).and_then(|v| v.to_str().ok());
        if !given.is_some_and(|t| self.matches(t)) {
            return Err(Refusal::Unauthorized(
                "missing or wrong X-Berth-Token header",
            ));
        }
        if p.method == Method::GET || p.method == Method::HEAD {
            return Ok(());
        }
        if let Some(o) = p.headers.get(header::ORIGIN) {
            if !self.own_origin(p, o.to_str().unwrap_or("")) {
                return Err(Refusal::Forbidden("cross-origin request refused"));
            }
        }
        if p.headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"cross-site")
        {
            return Err(Refusal::Forbidden("cross-site request refused"));
        }
        match p.headers.get(header::CONTENT_TYPE) {
            None => Ok(()),
            Some(v) if is_json(v.to_str().unwrap_or("")) => Ok(()),
            Some(_) => Err(Refusal::Forbidden(
                "only JSON bodies are accepted (no form posts)",
            )),
        }
    }

    /// `/api/ws/…?token=T`: a WebSocket from our own page.
    pub fn websocket(&self, p: &Parts) -> Result<(), Refusal> {
        self.host(p)?;
        if !query_token(p).is_some_and(|t| self.matches(&t)) {
            return Err(Refusal::Unauthorized("missing or wrong token"));
        }
        let origin = p.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        match origin {
            Some(o) if self.own_origin(p, o) => Ok(()),
            _ => Err(Refusal::Forbidden("cross-origin WebSocket refused")),
        }
    }

    /// A loopback server answers only to loopback names: a rebinding DNS
    /// name would otherwise make a hostile page "same origin".
    fn host(&self, p: &Parts) -> Result<(), Refusal> {
        if !self.bound.ip().is_loopback() {
            return Ok(());
        }
        let host = host_of(p).unwrap_or_default();
        if self.loopback_hosts().contains(&host) {
            Ok(())
        } else {
            Err(Refusal::Forbidden("unexpected Host header"))
        }
    }

    fn loopback_hosts(&self) -> Vec<String> {
        let port = self.bound.port();
        vec![
            self.bound.to_string(),
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
        ]
    }

    /// `Origin` equals `scheme://Host` of this very request (the `Host`
    /// itself having been checked).
    fn own_origin(&self, p: &Parts, origin: &str) -> bool {
        match host_of(p) {
            Some(h) => origin == format!("{}://{h}", self.scheme),
            None => false,
        }
    }
}

fn host_of(p: &Parts) -> Option<String> {
    p.headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.to_ascii_lowercase())
        .or_else(|| p.uri.authority().map(|a| a.as_str().to_ascii_lowercase()))
}

fn is_json(ct: &str) -> bool {
    ct.split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// `token=` from the query string.
pub fn query_token(p: &Parts) -> Option<String> {
    let q = p.uri.query()?;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == "token").then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

fn cookie_token(p: &Parts) -> Option<String> {
    p.headers.get_all(header::COOKIE).iter().find_map(|v| {
        v.to_str().ok()?.split(';').find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == COOKIE).then(|| v.to_string())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "secret-token-0123456789abcdefghijklmnop";

    fn auth() -> Auth {
        Auth::with_token(T.into(), "http", "127.0.0.1:8080".parse().unwrap())
    }

    fn req(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "127.0.0.1:8080");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn tokens_compare_whole() {
        let a = auth();
        assert!(a.matches(T));
        assert!(!a.matches(""));
        assert!(!a.matches(&T[..T.len() - 1]));
        assert!(!a.matches(&format!("{T}x")));
        assert!(!a.matches(&T.replace('s', "S")));
        let fresh = Auth::new("http", "127.0.0.1:1".parse().unwrap()).unwrap();
        assert!(fresh.token().len() >= 43);
        assert_ne!(fresh.token(), T);
    }

    #[test]
    fn page_needs_the_query_token() {
        let a = auth();
        assert!(a.page(&req("GET", &format!("/?token={T}"), &[])).is_ok());
        assert_eq!(
            a.page(&req("GET", "/", &[])),
            Err(Refusal::Unauthorized("missing or wrong token"))
        );
        assert!(a.page(&req("GET", "/?token=nope", &[])).is_err());
        // The cookie is for assets, not the page.
        let c = format!("{COOKIE}={T}");
        assert!(a.page(&req("GET", "/", &[("cookie", &c)])).is_err());
        assert!(a
            .asset(&req("GET", "/assets/app.js", &[("cookie", &c)]))
            .is_ok());
        assert!(a.asset(&req("GET", "/assets/app.js", &[])).is_err());
    }

    #[test]
    fn api_needs_the_header_not_the_cookie() {
        let a = auth();
        let c = format!("{COOKIE}={T}");
        assert!(matches!(
            a.api(&req("GET", "/api/engine/info", &[("cookie", &c)])),
            Err(Refusal::Unauthorized(_))
        ));
        assert!(a
            .api(&req("GET", "/api/engine/info", &[(HEADER, T)]))
            .is_ok());
    }

    #[test]
    fn state_changes_need_our_origin_and_no_form() {
        let a = auth();
        let post = |h: &[(&str, &str)]| {
            let mut all = vec![(HEADER, T)];
            all.extend_from_slice(h);
            a.api(&req("POST", "/api/engine/containers/x/stop", &all))
        };
        assert!(post(&[]).is_ok());
        assert!(post(&[("origin", "http://127.0.0.1:8080")]).is_ok());
        assert!(post(&[("content-type", "application/json; charset=utf-8")]).is_ok());
        assert!(matches!(
            post(&[("origin", "http://evil.example")]),
            Err(Refusal::Forbidden(_))
        ));
        assert!(matches!(
            post(&[("origin", "null")]),
            Err(Refusal::Forbidden(_))
        ));
        assert!(matches!(
            post(&[("origin", "https://127.0.0.1:8080")]),
            Err(Refusal::Forbidden(_))
        ));
        for ct in [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/plain",
        ] {
            assert!(
                matches!(post(&[("content-type", ct)]), Err(Refusal::Forbidden(_))),
                "{ct}"
            );
        }
        assert!(matches!(
            post(&[("sec-fetch-site", "cross-site")]),
            Err(Refusal::Forbidden(_))
        ));
    }

    #[test]
    fn loopback_server_checks_host() {
        let a = auth();
        let p = http::Request::builder()
            .uri(format!("/?token={T}"))
            .header("host", "rebound.example:8080")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        assert!(matches!(a.page(&p), Err(Refusal::Forbidden(_))));
    }

    #[test]
    fn websocket_needs_token_and_our_origin() {
        let a = auth();
        let uri = format!("/api/ws/exec/abc?token={T}");
        assert!(a
            .websocket(&req("GET", &uri, &[("origin", "http://127.0.0.1:8080")]))
            .is_ok());
        assert!(matches!(
            a.websocket(&req("GET", &uri, &[])),
            Err(Refusal::Forbidden(_))
        ));
        assert!(matches!(
            a.websocket(&req("GET", &uri, &[("origin", "http://evil.example")])),
            Err(Refusal::Forbidden(_))
        ));
        assert!(matches!(
            a.websocket(&req(
                "GET",
                "/api/ws/exec/abc",
                &[("origin", "http://127.0.0.1:8080")]
            )),
            Err(Refusal::Unauthorized(_))
        ));
    }
}
