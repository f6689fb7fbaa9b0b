//! Serving: the accept loop (plain HTTP on loopback, HTTPS with the given
//! certificate), routing each request through `auth` to the page, an asset,
//! the Engine API proxy or the exec WebSocket, and the page's security
//! headers. Ends on SIGINT or SIGTERM.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::auth::{self, Auth, Refusal};
use super::reply::{self, Body};
use super::{assets, fanin, proxy, ws};
use crate::raw::Raw;

struct State {
    auth: Auth,
    raw: Raw,
}

pub fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let certs = berth_api::tls::read_certs(cert)?;
    let key = berth_api::tls::read_key(key)?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(berth_api::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("loading the dashboard's TLS certificate")?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    auth: Auth,
    raw: Raw,
) -> anyhow::Result<()> {
    let state = Arc::new(State { auth, raw });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let (sock, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                // Out of descriptors and the like: keep serving the others.
                Err(_) => continue,
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
        };
        let _ = sock.set_nodelay(true);
        let state = state.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection(TokioIo::new(sock), state).await,
                Some(acc) => {
                    if let Ok(s) = acc.accept(sock).await {
                        connection(TokioIo::new(s), state).await
                    }
                }
            }
        });
    }
}

async fn connection<I>(io: I, state: Arc<State>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, std::convert::Infallible>(route(&state, req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, svc)
        .with_upgrades()
        .await;
}

fn refused(r: Refusal) -> Response<Body> {
    match r {
        Refusal::Unauthorized(m) => reply::error(StatusCode::UNAUTHORIZED, m),
        Refusal::Forbidden(m) => reply::error(StatusCode::FORBIDDEN, m),
    }
}

async fn route(state: &State, req: Request<Incoming>) -> Response<Body> {
    // Origin-form requests only: no absolute-form or authority tricks.
    if req.uri().scheme().is_some() || req.method() == Method::CONNECT {
        return reply::error(StatusCode::BAD_REQUEST, "origin-form requests only");
    }
    let path = req.uri().path().to_string();
    let mut r = route_path(state, req, &path).await;
    let h = r.headers_mut();
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

async fn route_path(state: &State, req: Request<Incoming>, path: &str) -> Response<Body> {
    let (parts, body) = req.into_parts();
    if let Some(rest) = path.strip_prefix(proxy::PREFIX) {
        if let Err(r) = state.auth.api(&parts) {
            return refused(r);
        }
        return proxy::forward(&state.raw, Request::from_parts(parts, body), rest).await;
    }
    if path == fanin::PATH {
        if let Err(r) = state.auth.api(&parts) {
            return refused(r);
        }
        if parts.method != Method::GET {
            return reply::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        return fanin::serve(&state.raw, parts.uri.query());
    }
    if let Some(id) = path.strip_prefix(ws::EXEC_PREFIX) {
        if let Err(r) = state.auth.websocket(&parts) {
            return refused(r);
        }
        return ws::exec(&state.raw, Request::from_parts(parts, body), id).await;
    }
    if path == "/" || path == "/index.html" {
        if let Err(r) = state.auth.page(&parts) {
            return refused(r);
        }
        if parts.method != Method::GET && parts.method != Method::HEAD {
            return reply::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        return page(state, &parts);
    }
    if let Some(rest) = path.strip_prefix("/assets/") {
        if let Err(r) = state.auth.asset(&parts) {
            return refused(r);
        }
        if parts.method != Method::GET && parts.method != Method::HEAD {
            return reply::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        return asset(&parts, rest);
    }
    // Nothing else exists; a stranger learns no more than that.
    if let Err(r) = state.auth.asset(&parts) {
        return refused(r);
    }
    reply::error(StatusCode::NOT_FOUND, "page not found")
}

fn page(state: &State, parts: &http::request::Parts) -> Response<Body> {
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'-' | b'[' | b']'))
        })
        .unwrap_or("");
    let csp = format!(
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data: blob:; connect-src 'self' ws://{host} wss://{host}; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'none'; object-src 'none'"
    );
    let mut r = Response::new(reply::full(assets::index()));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert("content-security-policy", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{}={}; HttpOnly; SameSite=Strict; Path=/",
        auth::COOKIE,
        state.auth.token()
    )) {
        h.insert(header::SET_COOKIE, v);
    }
    r
}

fn asset(parts: &http::request::Parts, rest: &str) -> Response<Body> {
    let Some((a, etag)) = assets::get(rest) else {
        return reply::error(StatusCode::NOT_FOUND, "no such asset");
    };
    let fresh = parts
        .headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let mut r = if fresh {
        let mut r = Response::new(reply::full(""));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        Response::new(reply::full(a.bytes))
    };
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.ctype));
    h.insert(header::ETAG, HeaderValue::from_static(etag));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}
