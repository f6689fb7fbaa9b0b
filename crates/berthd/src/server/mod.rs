//! The HTTP layer: thin. It parses requests, calls the engine and serializes
//! the answer; one router file per API section.

mod archive;
pub mod authz;
mod build;
mod buildkit;
mod containers;
pub mod error;
mod exec;
mod hijack;
pub mod http;
mod images;
pub mod listen;
pub mod metrics;
mod networks;
pub mod peer;
mod plugins;
mod router;
mod system;
#[cfg(test)]
mod testing;
pub mod tls;
mod volumes;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::http::{HeaderValue, Request, StatusCode};
use berth_api::version::{check_supported, split_version_prefix};
use berth_api::{ApiVersion, API_VERSION};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, watch};

use crate::engine::Engine;
use error::ApiError;
use http::{Query, Req, Resp};
pub use listen::Listener;

/// What every handler gets.
pub struct Ctx {
    pub engine: Arc<Engine>,
    /// `/grpc` and `/session`: shared by every connection.
    pub buildkit: Arc<crate::buildkit::BuildKit>,
    /// Authorization plugins (a pass-through when none is configured).
    pub authz: authz::Authz,
    /// True once the daemon's start-up (networks, reconciliation, plugins,
    /// live restore) is done. `/_ping` answers before; every other request
    /// waits for it (see `daemon::run`).
    pub ready: watch::Receiver<bool>,
}

/// `/_ping` (`GET` or `HEAD`): the one route answered while the daemon is
/// still starting; its answer depends on nothing the start-up sets up.
fn answers_before_ready(method: &::http::Method, path: &str) -> bool {
    path == "/_ping" && (method == ::http::Method::GET || method == ::http::Method::HEAD)
}

/// Waits until the start-up is done; false if it failed (the daemon is
/// exiting).
async fn until_ready(ready: &watch::Receiver<bool>) -> bool {
    if *ready.borrow() {
        return true;
    }
    let mut r = ready.clone();
    let ok = r.wait_for(|v| *v).await.is_ok();
    ok
}

const SERVER_HEADER: &str = concat!("Berth/", env!("CARGO_PKG_VERSION"), " (linux)");

/// Which of the common headers (`Server`, `Api-Version`, `Ostype`,
/// `Docker-Experimental`) a response carries, as dockerd sends them: a
/// response without this extension gets all four. dockerd's version check
/// runs outside the middleware that adds `Docker-Experimental`, unknown routes
/// bypass its middlewares, and a hijacked attach writes its own status line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommonHeaders {
    /// All but `Docker-Experimental` (an unsupported API version).
    NoExperimental,
    /// None of them (unknown route; attach).
    Omitted,
}

impl CommonHeaders {
    pub fn mark(self, mut r: Resp) -> Resp {
        r.extensions_mut().insert(self);
        r
    }
}

async fn handle(ctx: Arc<Ctx>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let started = Instant::now();
    let mut req = req.map(http::ReqBody::new);
    // dockerd's authorization middleware wraps its version check.
    let authz = match ctx.authz.request(&mut req).await {
        Ok(pending) => pending,
        Err(refused) => return Ok(refused),
    };
    let status_fix = (req.version() == ::http::Version::HTTP_11)
        .then(|| req.extensions().get::<hijack::StatusFix>().cloned())
        .flatten();
    let method = req.method().clone();
    let raw_path = req.uri().path().to_string();
    let (ver, rest) = split_version_prefix(&raw_path);
    let version = match ver {
        None => Ok(API_VERSION),
        Some(v) => v
            .parse::<ApiVersion>()
            .map_err(|_| ApiError::bad_request(format!("invalid API version {v:?}")))
            .and_then(|v| check_supported(v).map(|_| v).map_err(ApiError::bad_request)),
    };
    // `failed`: the answer is a handler's error (what the authorization
    // middleware sees differently); `route`: the matched route's template.
    let (resp, failed, route) = match version {
        Err(e) => (
            CommonHeaders::NoExperimental.mark(e.into_response()),
            true,
            "other",
        ),
        Ok(version) => {
            let upgrade = req
                .headers()
                .contains_key(::http::header::UPGRADE)
                .then(|| hyper::upgrade::on(&mut req));
            let (parts, body) = req.into_parts();
            let starting =
                !answers_before_ready(&parts.method, rest) && !until_ready(&ctx.ready).await;
            let peer = parts.extensions.get::<peer::Peer>().copied();
            let r = Req {
                method: parts.method,
                version,
                versioned: ver.is_some(),
                path: if rest.is_empty() {
                    "/".to_string()
                } else {
                    rest.to_string()
                },
                query: Query::parse(parts.uri.query()),
                headers: parts.headers,
                body: Some(body),
                upgrade,
                peer,
            };
            if starting {
                (
                    ApiError::internal("the daemon failed to start").into_response(),
                    true,
                    "other",
                )
            } else {
                match router::route(&ctx, r).await {
                    (route, Ok(r)) => (r, false, route),
                    (route, Err(e)) => (e.into_response(), true, route),
                }
            }
        }
    };
    let mut resp = resp;
    if resp.version() == ::http::Version::HTTP_10 {
        // A plain hijack (see `hijack::plain`): dockerd's status line.
        if let Some(f) = status_fix {
            f.arm();
        }
    }
    add_common_headers(&mut resp);
    if let Some(pending) = authz {
        resp = pending.respond(resp, failed).await;
    }
    let status = resp.status();
    crate::memtrim::note_activity();
    crate::engine::metrics::get().request(
        &crate::engine::metrics::RequestLabels {
            route,
            method: metrics::method_label(&method),
            code: status.as_u16(),
        },
        started.elapsed(),
    );
    if status.is_server_error() {
        tracing::warn!(%method, path = %raw_path, status = status.as_u16(), ms = started.elapsed().as_millis() as u64, "request");
    } else {
        tracing::debug!(%method, path = %raw_path, status = status.as_u16(), us = started.elapsed().as_micros() as u64, "request");
    }
    Ok(resp)
}

/// The headers dockerd adds to its answers, as the response's
/// [`CommonHeaders`] mark says.
fn add_common_headers(resp: &mut Resp) {
    let which = resp.extensions().get::<CommonHeaders>().copied();
    if which == Some(CommonHeaders::Omitted) {
        return;
    }
    let h = resp.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static("1.50"));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    if which.is_none() {
        h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    }
    h.insert(
        ::http::header::SERVER,
        HeaderValue::from_static(SERVER_HEADER),
    );
}

/// Serves every listener until `stop` flips, then stops accepting, lets
/// in-flight requests finish (bounded by `grace`) and returns. Requests
/// other than `/_ping` wait until `ready` is true.
pub async fn serve(
    engine: Arc<Engine>,
    listeners: Vec<Listener>,
    mut stop: watch::Receiver<bool>,
    ready: watch::Receiver<bool>,
    grace: Duration,
) {
    let ctx = Arc::new(Ctx {
        ready,
        engine: engine.clone(),
        buildkit: crate::buildkit::BuildKit::new(engine.clone()),
        authz: authz::Authz::new(engine.plugins.clone(), engine.live.clone()),
    });
    // Each connection task holds a clone; when all are gone, recv() yields None.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let limit = listen::connection_limit();
    tracing::debug!(limit, "connection limit");
    let slots = Arc::new(tokio::sync::Semaphore::new(limit));
    let mut accept_tasks = Vec::new();
    for l in listeners {
        let ctx = ctx.clone();
        let alive = alive_tx.clone();
        let stop = stop.clone();
        let slots = slots.clone();
        accept_tasks.push(tokio::spawn(async move {
            let stop2 = stop.clone();
            l.accept_loop(
                move |io, slot| spawn_conn(ctx.clone(), io, slot, alive.clone(), stop2.clone()),
                slots,
                stop,
            )
            .await
        }));
    }
    drop(alive_tx);
    stopped(&mut stop).await;
    engine.begin_shutdown();
    // Let each accept loop see the stop itself (a unix listener removes its
    // socket on the way out); abort only the ones that do not finish soon.
    // Aborting at once raced with that cleanup and left the socket behind.
    for t in &mut accept_tasks {
        let _ = tokio::time::timeout(Duration::from_millis(100), t).await;
    }
    for t in &accept_tasks {
        t.abort();
    }
    let _ = tokio::time::timeout(grace, alive_rx.recv()).await;
}

/// Largest request head (request line and headers) read: Go's
/// `DefaultMaxHeaderBytes`, which dockerd serves with. Past it the client
/// gets 431 and the connection closes.
pub const MAX_HEADER_BYTES: usize = 1 << 20;

/// Time a client gets to send a request's head: dockerd's
/// `ReadHeaderTimeout` (5 minutes). Bodies are not timed (uploads may be
/// slow, as with dockerd); a client trickling its headers is cut off here.
/// hyper also counts a keep-alive connection's idle wait for the next
/// request against it, so idle connections close after this; a long value
/// keeps that rare for clients that pool connections.
/// `BERTH_HEADER_READ_TIMEOUT` (seconds) overrides it, for tests.
fn header_read_timeout() -> Duration {
    static TIMEOUT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *TIMEOUT.get_or_init(|| {
        std::env::var("BERTH_HEADER_READ_TIMEOUT")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(300))
    })
}

fn spawn_conn(
    ctx: Arc<Ctx>,
    io: listen::BoxIo,
    slot: listen::Slot,
    alive: mpsc::Sender<()>,
    mut stop: watch::Receiver<bool>,
) {
    let peer = peer::Peer(io.raw_fd());
    // Only authorization plugins are shown the client's certificates (a
    // reload may configure them while the connection lives).
    let tls_peer = io
        .peer_certificates()
        .map(|c| authz::TlsPeer(c.iter().map(|c| c.clone().into_owned()).collect()));
    tokio::spawn(async move {
        let _alive = alive;
        // Held until the connection ends (or is hijacked: an upgraded
        // stream no longer counts).
        let _slot = slot;
        let fix = hijack::StatusFix::default();
        let armed = fix.clone();
        let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(armed.clone());
            req.extensions_mut().insert(peer);
            if let Some(t) = &tls_peer {
                req.extensions_mut().insert(t.clone());
            }
            handle(ctx.clone(), req)
        });
        // Half-close: a client may shut its write side as soon as its
        // request is out (hijacking clients do), and still wants the answer.
        let conn = hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .half_close(true)
            // Header names as Go writes them (`Content-Type`, `Api-Version`),
            // for clients that read the raw response.
            .title_case_headers(true)
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(header_read_timeout())
            .max_header_size(MAX_HEADER_BYTES)
            // The read buffer must hold a whole head of that size.
            .max_buf_size(MAX_HEADER_BYTES + (64 << 10))
            .serve_connection(TokioIo::new(hijack::FixStatusLine::new(io, fix)), svc)
            .with_upgrades();
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => { if let Err(e) = r { tracing::debug!(error = %e, "connection ended"); } }
            _ = crate::server::stopped(&mut stop) => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
    });
}

/// Resolves once `stop` flips (the guard `wait_for` returns is not Send).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Not found, in Docker's words.
pub fn page_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "page not found")
}
