//! Hijacked connections (attach, exec start): answer `101 UPGRADED` at once
//! and hand the raw connection to the engine.

use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use berth_api::ApiVersion;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, DuplexStream, ReadBuf};

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
/// such a close-delimited body only in an HTTP/1.0 response (whose status
/// line `FixStatusLine` turns back into dockerd's HTTP/1.1 one). The type is
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

/// Armed on a connection while a plain hijack's head is on its way out.
#[derive(Clone, Default)]
pub struct StatusFix(Arc<AtomicBool>);

impl StatusFix {
    pub fn arm(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A connection's IO that writes a plain hijack's `HTTP/1.0` status line
/// (only to make hyper delimit the body by the close) as dockerd's
/// `HTTP/1.1`; everything else passes through untouched.
pub struct FixStatusLine<IO> {
    inner: IO,
    fix: StatusFix,
}

impl<IO> FixStatusLine<IO> {
    pub fn new(inner: IO, fix: StatusFix) -> Self {
        Self { inner, fix }
    }

    /// The head to write instead, when armed and `b` starts one.
    fn fixed(&self, b: &[u8]) -> Option<Vec<u8>> {
        const OLD: &[u8] = b"HTTP/1.0 ";
        if !b.starts_with(OLD) || !self.fix.0.load(Ordering::SeqCst) {
            return None;
        }
        let mut v = b.to_vec();
        v[7] = b'1';
        Some(v)
    }

    fn wrote(&self, r: &Poll<std::io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = r {
            if *n >= 9 {
                self.fix.0.store(false, Ordering::SeqCst);
            }
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for FixStatusLine<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for FixStatusLine<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.fixed(buf) {
            None => Pin::new(&mut self.inner).poll_write(cx, buf),
            Some(b) => {
                let r = Pin::new(&mut self.inner).poll_write(cx, &b);
                self.wrote(&r);
                r
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let first = bufs.iter().position(|b| !b.is_empty());
        match first.and_then(|i| self.fixed(&bufs[i]).map(|b| (i, b))) {
            None => Pin::new(&mut self.inner).poll_write_vectored(cx, bufs),
            Some((i, b)) => {
                let mut v: Vec<IoSlice<'_>> = bufs.to_vec();
                v[i] = IoSlice::new(&b);
                let r = Pin::new(&mut self.inner).poll_write_vectored(cx, &v);
                self.wrote(&r);
                r
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn an_armed_connection_writes_one_http11_status_line() {
        let fix = StatusFix::default();
        let mut w = FixStatusLine::new(Vec::new(), fix.clone());
        w.write_all(b"HTTP/1.0 200 OK\r\n\r\n").await.unwrap();
        fix.arm();
        w.write_all(b"HTTP/1.0 200 OK\r\n\r\n").await.unwrap();
        // Disarmed after one head: body bytes pass untouched.
        w.write_all(b"HTTP/1.0 body").await.unwrap();
        assert_eq!(
            w.inner,
            b"HTTP/1.0 200 OK\r\n\r\nHTTP/1.1 200 OK\r\n\r\nHTTP/1.0 body"
        );
    }

    #[tokio::test]
    async fn vectored_writes_are_fixed_in_their_first_slice() {
        let fix = StatusFix::default();
        fix.arm();
        let mut w = FixStatusLine::new(Vec::new(), fix);
        let bufs = [
            IoSlice::new(b""),
            IoSlice::new(b"HTTP/1.0 404 Not Found\r\n\r\n"),
            IoSlice::new(b"x"),
        ];
        let n = w.write_vectored(&bufs).await.unwrap();
        assert!(n > 9, "{n}");
        assert!(
            w.inner.starts_with(b"HTTP/1.1 404 Not Found\r\n"),
            "{:?}",
            w.inner
        );
    }
}
