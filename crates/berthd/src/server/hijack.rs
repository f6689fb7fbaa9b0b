//! Hijacked connections (attach, exec start): answer `101 UPGRADED` at once
//! and hand the raw connection to the engine.

use std::future::Future;

use berth_api::ApiVersion;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, DuplexStream};

use super::error::ApiError;
use super::http::{empty, stream, ApiResult, Req, Resp};

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

/// The answer to an attach or exec start sent without `Upgrade`: dockerd
/// hijacks those too, writing `200 OK` and then the stream until it closes
/// the connection, with neither chunking nor a length, so a client reading
/// the socket directly sees the same bytes as after a 101. hyper writes
/// such a close-delimited body only in an HTTP/1.0 response. The type is
/// always the raw one here, whatever the framing and version (moby's rule).
pub fn plain<F, Fut>(f: F) -> Resp
where
    F: FnOnce(DuplexStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, mut resp) = stream(StatusCode::OK, "application/vnd.docker.raw-stream");
    *resp.version_mut() = Version::HTTP_10;
    let (mut ours, theirs) = tokio::io::duplex(64 * 1024);
    tokio::spawn(f(theirs));
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match ours.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    resp
}

/// A refused attach as moby answers it: the status, the raw-stream type
/// and the message as text up to the close (it has hijacked the
/// connection by then).
pub fn refused(e: ApiError) -> Resp {
    let (tx, mut r) = stream(e.status, "application/vnd.docker.raw-stream");
    *r.version_mut() = Version::HTTP_10;
    let _ = tx.try_send(Bytes::from(format!("{}\r\n", e.message)));
    r
}

pub fn no_upgrade() -> ApiError {
    ApiError::bad_request("this endpoint needs a hijacked connection (Upgrade: tcp)")
}
