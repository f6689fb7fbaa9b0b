//! `/api/engine/<path>?<query>` → the Engine API's `/<path>?<query>`, over
//! the CLI's own connection to the daemon (unix socket, TCP or TLS, as for
//! any other command). Method, body, `Content-Type` and `X-Registry-Auth`
//! go through; the daemon's status, content type and body come back as they
//! arrive (logs, events, stats and pull progress are endless streams).
//! Paths that could name anything but an Engine API endpoint are refused.

use bytes::Bytes;
use futures_util::stream;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::body::{Frame, Incoming};

use super::reply::{self, Body};
use crate::raw::Raw;

pub const PREFIX: &str = "/api/engine/";
/// Request bodies are JSON documents; nothing the page sends is larger.
const MAX_BODY: usize = 16 << 20;

/// The daemon path for `rest` (after `/api/engine/`) and the query, or
/// why not: every segment non-empty, of URL-safe characters, and not `.`
/// or `..` (nor a `/` or `\` hidden behind percent-encoding).
pub fn target(rest: &str, query: Option<&str>) -> Result<String, &'static str> {
    if rest.is_empty() {
        return Err("no Engine API path");
    }
    for seg in rest.split('/') {
        if seg.is_empty() {
            return Err("empty path segment");
        }
        if !seg.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'_' | b'.' | b'~' | b':' | b'@' | b'%' | b'+' | b',' | b'='
                )
        }) {
            return Err("invalid character in path");
        }
        let decoded = percent_encoding::percent_decode_str(seg).collect::<Vec<u8>>();
        if decoded == b"." || decoded == b".." {
            return Err("dot segment in path");
        }
        if decoded
            .iter()
            .any(|b| matches!(b, b'/' | b'\\') || b.is_ascii_control())
        {
            return Err("encoded separator in path");
        }
    }
    let mut t = format!("/{rest}");
    if let Some(q) = query {
        if q.bytes()
            .any(|b| b.is_ascii_control() || b == b' ' || b == b'#')
        {
            return Err("invalid character in query");
        }
        if !q.is_empty() {
            t.push('?');
            t.push_str(q);
        }
    }
    Ok(t)
}

/// A pull the page sent without credentials gets the user's own for that
/// registry, as `docker pull` would (the dashboard's user is the CLI's).
fn pull_auth(method: &Method, path: &str) -> Option<String> {
    if method != Method::POST {
        return None;
    }
    let query = path.strip_prefix("/images/create?")?;
    let image = query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == "fromImage").then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })?;
    let r = berth_api::reference::Reference::parse(&image).ok()?;
    Some(crate::creds::registry_auth_header(&r.domain))
}

/// The daemon's response headers worth passing on.
fn passed_back(name: &str) -> bool {
    matches!(
        name,
        "content-type" | "api-version" | "ostype" | "docker-experimental"
    ) || name.starts_with("x-docker-")
}

pub async fn forward(raw: &Raw, req: Request<Incoming>, rest: &str) -> Response<Body> {
    let path = match target(rest, req.uri().query()) {
        Ok(p) => p,
        Err(why) => return reply::error(StatusCode::BAD_REQUEST, why),
    };
    let method = req.method().clone();
    if ![
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
    ]
    .contains(&method)
    {
        return reply::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let mut extra = Vec::new();
    if let Some(a) = req
        .headers()
        .get("x-registry-auth")
        .and_then(|v| v.to_str().ok())
    {
        extra.push(("X-Registry-Auth", a.to_string()));
    } else if let Some(auth) = pull_auth(&method, &path) {
        extra.push(("X-Registry-Auth", auth));
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => return reply::error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
    };
    let body = (!body.is_empty() || method != Method::GET).then_some((ctype.as_str(), body));
    let r = match raw
        .send_with(method.as_str(), &path, body, false, &extra)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            return reply::error(
                StatusCode::BAD_GATEWAY,
                &format!("cannot reach the daemon: {e:#}"),
            )
        }
    };
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers: Vec<(String, String)> = r
        .headers()
        .iter()
        .filter(|(k, _)| passed_back(k))
        .cloned()
        .collect();
    let out: Body = if method == Method::HEAD {
        reply::full(Bytes::new())
    } else {
        let chunks = stream::unfold(Some(r.into_body()), |b| async move {
            let mut b = b?;
            match b.chunk().await {
                Ok(Some(c)) => Some((Ok(Frame::data(Bytes::from(c))), Some(b))),
                Ok(None) => None,
                Err(e) => Some((Err(std::io::Error::other(format!("{e:#}"))), None)),
            }
        });
        StreamBody::new(chunks).boxed_unsync()
    };
    let mut resp = Response::new(out);
    *resp.status_mut() = status;
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::target;

    #[test]
    fn maps_paths_and_queries() {
        assert_eq!(
            target("containers/json", Some("all=1")).unwrap(),
            "/containers/json?all=1"
        );
        assert_eq!(target("info", None).unwrap(), "/info");
        assert_eq!(target("info", Some("")).unwrap(), "/info");
        // berth's own metrics (the Host page).
        assert_eq!(target("_berth/metrics", None).unwrap(), "/_berth/metrics");
        assert_eq!(
            target("images/library/busybox:latest/json", None).unwrap(),
            "/images/library/busybox:latest/json"
        );
        assert_eq!(
            target(
                "containers/abc/logs",
                Some("follow=1&filters=%7B%22a%22%3A1%7D")
            )
            .unwrap(),
            "/containers/abc/logs?follow=1&filters=%7B%22a%22%3A1%7D"
        );
        assert_eq!(target("v1.47/version", None).unwrap(), "/v1.47/version");
    }

    #[test]
    fn pulls_carry_the_users_credentials() {
        use http::Method;
        assert!(
            super::pull_auth(&Method::POST, "/images/create?fromImage=busybox&tag=latest")
                .is_some()
        );
        assert!(super::pull_auth(&Method::GET, "/images/create?fromImage=busybox").is_none());
        assert!(super::pull_auth(&Method::POST, "/images/json").is_none());
        assert!(super::pull_auth(&Method::POST, "/images/create?tag=x").is_none());
    }

    #[test]
    fn refuses_escapes() {
        for bad in [
            "",
            "../x",
            "containers/../../x",
            "containers/%2e%2e/x",
            "containers/%2E%2e",
            ".",
            "a/./b",
            "a/%2fb",
            "a/%5cb",
            "a/%00",
            "/evil.example/x",
            "a//b",
            "a/",
            "http://evil/x",
            "a b",
            "a\\b",
            "a?b",
            "a#b",
        ] {
            assert!(target(bad, None).is_err(), "{bad:?} must be refused");
        }
        assert!(target("info", Some("a=1\r\nHost: x")).is_err());
        assert!(target("info", Some("a=b c")).is_err());
    }
}
