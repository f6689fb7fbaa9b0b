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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusual_methods_share_a_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "other");
    }
}
