//! Hijacked connections (attach, exec start): answer `101 UPGRADED` at once
//! and hand the raw connection to the engine.

use std::future::Future;

use berth_api::ApiVersion;
use http::{header, HeaderValue, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::error::ApiError;
use super::http::{empty, ApiResult, Req};

pub type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

/// The stream type the CLI expects to be told (it frames by `Tty` anyway).
pub fn stream_content_type(version: ApiVersion, tty: bool) -> &'static str {
    if !tty && version.at_least(1, 42) {
        "application/vnd.docker.multiplexed-stream"
    } else {
        "application/vnd.docker.raw-stream"
    }
}

/// Upgrades the connection and runs `f` on it. Requests without an
/// `Upgrade` header get `Err(req)` back for a plain streaming answer.
pub fn upgrade<F, Fut>(req: &mut Req, tty: bool, f: F) -> Option<ApiResult>
where
    F: FnOnce(Upgraded) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let on = req.upgrade.take()?;
    let ct = stream_content_type(req.version, tty);
    tokio::spawn(async move {
        match on.await {
            Ok(up) => f(TokioIo::new(up)).await,
            Err(e) => tracing::debug!(error = %e, "upgrade failed"),
        }
    });
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    r.extensions_mut()
        .insert(hyper::ext::ReasonPhrase::from_static(b"UPGRADED"));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    Some(Ok(r))
}

pub fn no_upgrade() -> ApiError {
    ApiError::bad_request("this endpoint needs a hijacked connection (Upgrade: tcp)")
}
