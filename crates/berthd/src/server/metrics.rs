//! Metrics over HTTP: the `--metrics-addr` listener (`GET /metrics`, the
//! Prometheus text format, as dockerd's), the same text on the API socket
//! at berth's own unversioned `GET /_berth/metrics` (for the dashboard;
//! dockerd answers 404 there), and the route templates API requests are
//! timed by. A template, not the raw path, labels a request
//! (`/containers/{id}/start`): the label set stays bounded whatever clients
//! send, and anything unknown is one label, `other`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use ::http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use tokio::sync::{oneshot, watch};

use berth_api::version::split_version_prefix;

use super::http::{text, ApiResult};
use crate::engine::Engine;

/// Binds the metrics listener. dockerd allows any address; one that is not
/// loopback is served with a warning (the metrics are not authenticated).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let l = tokio::net::TcpListener::bind(addr).await?;
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "metrics are served on a non-loopback address, without authentication");
    }
    let bound = l.local_addr()?;
    tracing::info!("metrics API listening on {bound}");
    Ok(l)
}

/// Connections the metrics listener keeps at once. dockerd's plain
/// `http.Server` has no bound; a scraper needs one connection, so 64
/// leaves room for several while a flood of idle connections (each a
/// socket, a task and buffers) stays small.
pub const MAX_CONNECTIONS: usize = 64;

/// The connections served, oldest first: each one's ID and the sender
/// whose drop closes it.
type Open = Arc<std::sync::Mutex<std::collections::VecDeque<(u64, oneshot::Sender<()>)>>>;

/// Serves `GET /metrics` until `stop` flips. At [`MAX_CONNECTIONS`] a
/// new connection closes the oldest one rather than waiting: idle
/// connections held open (up to the 30 s header timeout each) cannot
/// keep a scrape out, as refusing new connections would.
pub fn serve(engine: Arc<Engine>, l: tokio::net::TcpListener, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let open: Open = Arc::default();
        let mut next_id = 0u64;
        loop {
            let (io, _) = tokio::select! {
                r = l.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(error = %e, "metrics accept");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = super::stopped(&mut stop) => return,
            };
            next_id += 1;
            let id = next_id;
            let (close_tx, close_rx) = oneshot::channel::<()>();
            if let Ok(mut o) = open.lock() {
                while o.len() >= MAX_CONNECTIONS {
                    // Dropping its sender closes the oldest.
                    o.pop_front();
                }
                o.push_back((id, close_tx));
            }
            let engine = engine.clone();
            let open = open.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let engine = engine.clone();
                    async move { Ok::<_, Infallible>(answer(&engine, &req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(std::time::Duration::from_secs(30))
                    .serve_connection(TokioIo::new(io), svc);
                tokio::select! {
                    _ = conn => {}
                    _ = close_rx => {}
                }
                if let Ok(mut o) = open.lock() {
                    o.retain(|(i, _)| *i != id);
                }
            });
        }
    });
}

async fn answer(engine: &Arc<Engine>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let plain = |code: StatusCode, body: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *r.status_mut() = code;
        r
    };
    if req.uri().path() != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "404 page not found\n");
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    let mut r = Response::new(Full::new(Bytes::from(scrape(engine).await)));
    r.headers_mut().insert(
        ::http::header::CONTENT_TYPE,
        ::http::HeaderValue::from_static(EXPOSITION),
    );
    r
}

/// The Prometheus text format's content type, as Go's client sends it.
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The exposition, encoded now. A scrape walks `/proc`: off the runtime's
/// workers.
async fn scrape(engine: &Arc<Engine>) -> String {
    let e = engine.clone();
    tokio::task::spawn_blocking(move || e.metrics_text())
        .await
        .unwrap_or_default()
}

/// `GET`/`HEAD /_berth/metrics` on the API socket: what the metrics
/// listener serves, behind the API's authorization and ready gate (the
/// registry records whether or not `--metrics-addr` is set).
pub async fn api(engine: &Arc<Engine>) -> ApiResult {
    let mut r = text(StatusCode::OK, scrape(engine).await);
    r.headers_mut().insert(
        ::http::header::CONTENT_TYPE,
        ::http::HeaderValue::from_static(EXPOSITION),
    );
    Ok(r)
}

/// The latency metric's route label of a raw request path: berth's own
/// unversioned `/_berth/metrics`, else the API route's template.
pub fn route_label(raw_path: &str) -> &'static str {
    match split_version_prefix(raw_path) {
        (None, "/_berth/metrics") => "/_berth/metrics",
        (_, rest) => route_template(rest),
    }
}

/// The method as a label (anything unusual is `other`).
pub fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The route template of an API path (without its `/v1.xx` prefix). The
/// segments are matched on the stack: nothing is allocated.
pub fn route_template(path: &str) -> &'static str {
    let mut buf = [""; 8];
    let mut n = 0;
    for s in path.trim_start_matches('/').split('/') {
        if n == buf.len() {
            return "other";
        }
        buf[n] = s;
        n += 1;
    }
    match &buf[..n] {
        [""] => "/",
        ["_ping"] => "/_ping",
        ["version"] => "/version",
        ["info"] => "/info",
        ["auth"] => "/auth",
        ["events"] => "/events",
        ["build"] => "/build",
        ["build", "prune"] => "/build/prune",
        ["build", "cancel"] => "/build/cancel",
        ["session"] => "/session",
        ["grpc"] => "/grpc",
        ["commit"] => "/commit",
        ["system", "df"] => "/system/df",
        ["containers", rest @ ..] => container_route(rest),
        ["exec", _, "start"] => "/exec/{id}/start",
        ["exec", _, "resize"] => "/exec/{id}/resize",
        ["exec", _, "json"] => "/exec/{id}/json",
        ["images", rest @ ..] => image_route(rest),
        ["networks"] => "/networks",
        ["networks", "create"] => "/networks/create",
        ["networks", "prune"] => "/networks/prune",
        ["networks", _] => "/networks/{id}",
        ["networks", _, "connect"] => "/networks/{id}/connect",
        ["networks", _, "disconnect"] => "/networks/{id}/disconnect",
        ["volumes"] => "/volumes",
        ["volumes", "create"] => "/volumes/create",
        ["volumes", "prune"] => "/volumes/prune",
        ["volumes", _] => "/volumes/{name}",
        ["plugins", ..] => "/plugins/…",
        ["distribution", .., "json"] => "/distribution/{name}/json",
        _ => "other",
    }
}

fn container_route(rest: &[&str]) -> &'static str {
    match rest {
        ["create"] => "/containers/create",
        ["json"] => "/containers/json",
        ["prune"] => "/containers/prune",
        [_] => "/containers/{id}",
        [_, "attach", "ws"] => "/containers/{id}/attach/ws",
        [_, action] => match *action {
            "json" => "/containers/{id}/json",
            "start" => "/containers/{id}/start",
            "stop" => "/containers/{id}/stop",
            "restart" => "/containers/{id}/restart",
            "kill" => "/containers/{id}/kill",
            "pause" => "/containers/{id}/pause",
            "unpause" => "/containers/{id}/unpause",
            "rename" => "/containers/{id}/rename",
            "wait" => "/containers/{id}/wait",
            "attach" => "/containers/{id}/attach",
            "resize" => "/containers/{id}/resize",
            "logs" => "/containers/{id}/logs",
            "top" => "/containers/{id}/top",
            "changes" => "/containers/{id}/changes",
            "export" => "/containers/{id}/export",
            "stats" => "/containers/{id}/stats",
            "update" => "/containers/{id}/update",
            "exec" => "/containers/{id}/exec",
            "archive" => "/containers/{id}/archive",
            _ => "other",
        },
        _ => "other",
    }
}

/// Image names carry `/`: the action is the last segment.
fn image_route(rest: &[&str]) -> &'static str {
    match rest {
        ["create"] => "/images/create",
        ["json"] => "/images/json",
        ["load"] => "/images/load",
        ["get"] => "/images/get",
        ["search"] => "/images/search",
        ["prune"] => "/images/prune",
        [] => "other",
        [.., "json"] => "/images/{name}/json",
        [.., "history"] => "/images/{name}/history",
        [.., "push"] => "/images/{name}/push",
        [.., "tag"] => "/images/{name}/tag",
        [.., "get"] => "/images/{name}/get",
        _ => "/images/{name}",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_bounded() {
        assert_eq!(
            route_template("/containers/abc/start"),
            "/containers/{id}/start"
        );
        assert_eq!(route_template("/containers/json"), "/containers/json");
        assert_eq!(route_template("/containers/abc"), "/containers/{id}");
        assert_eq!(
            route_template("/images/library/busybox:1/json"),
            "/images/{name}/json"
        );
        assert_eq!(route_template("/images/a/b/c"), "/images/{name}");
        assert_eq!(route_template("/nope/x/y"), "other");
        assert_eq!(route_template("/containers/abc/weird"), "other");
        assert_eq!(route_template("/_ping"), "/_ping");
        assert_eq!(method_label(&Method::PATCH), "other");
        assert_eq!(route_label("/_berth/metrics"), "/_berth/metrics");
        assert_eq!(route_label("/v1.50/_berth/metrics"), "other");
        assert_eq!(route_label("/_berth/other"), "other");
        assert_eq!(
            route_label("/v1.50/containers/x/start"),
            "/containers/{id}/start"
        );
    }
}
