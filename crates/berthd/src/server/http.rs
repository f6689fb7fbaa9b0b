//! Request/response plumbing shared by every router file: body types,
//! query parsing, bounded body reads, JSON and stream responses.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use berth_api::shape::Shape;
use berth_api::ApiVersion;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use hyper::body::{Frame, Incoming};
use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::mpsc;

use super::error::ApiError;

pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;
pub type Resp = Response<Body>;
pub type ApiResult = Result<Resp, ApiError>;

/// Upper bound for JSON request bodies (create bodies are a few KiB).
pub const MAX_JSON_BODY: usize = 16 << 20;

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|e: Infallible| match e {})
        .boxed_unsync()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

/// A body fed by a channel: each message is one chunk, flushed as it comes.
pub struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// A streaming response; the handler keeps the sender and writes chunks.
/// Headers go out at once because the body starts out pending.
pub fn stream(status: StatusCode, content_type: &'static str) -> (mpsc::Sender<Bytes>, Resp) {
    let (tx, rx) = mpsc::channel(64);
    (tx, stream_of(status, content_type, rx))
}

/// A streaming response whose chunks come from a channel the engine
/// already fills; dropping the response (the client went away) closes it.
pub fn stream_of(
    status: StatusCode,
    content_type: &'static str,
    rx: mpsc::Receiver<Bytes>,
) -> Resp {
    let mut r = Response::new(ChannelBody { rx }.boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

pub fn json<T: Serialize + ?Sized>(status: StatusCode, v: &T) -> ApiResult {
    let body = serde_json::to_vec(v).map_err(|e| ApiError::internal(e.to_string()))?;
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

pub fn ok_json<T: Serialize + ?Sized>(v: &T) -> ApiResult {
    json(StatusCode::OK, v)
}

/// A JSON answer in dockerd's shape for the negotiated version: every
/// always-emitted field present (see `berth_api::shape`).
pub fn shaped<T: Serialize + ?Sized>(
    status: StatusCode,
    v: &T,
    shape: &'static Shape,
    version: ApiVersion,
) -> ApiResult {
    let body = shape
        .to_vec(v, version)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

/// `shaped` with 200 OK.
pub fn ok_shaped<T: Serialize + ?Sized>(
    v: &T,
    shape: &'static Shape,
    version: ApiVersion,
) -> ApiResult {
    shaped(StatusCode::OK, v, shape, version)
}

pub fn no_content() -> ApiResult {
    status_only(StatusCode::NO_CONTENT)
}

pub fn status_only(status: StatusCode) -> ApiResult {
    let mut r = Response::new(empty());
    *r.status_mut() = status;
    Ok(r)
}

pub fn text(status: StatusCode, s: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(full(s));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Query parameters, repeated keys kept.
#[derive(Debug, Default, Clone)]
pub struct Query(HashMap<String, Vec<String>>);

impl Query {
    pub fn parse(q: Option<&str>) -> Self {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        if let Some(q) = q {
            for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
                m.entry(k.into_owned()).or_default().push(v.into_owned());
            }
        }
        Self(m)
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).and_then(|v| v.first()).map(String::as_str)
    }

    pub fn all(&self, k: &str) -> &[String] {
        self.0.get(k).map(Vec::as_slice).unwrap_or(&[])
    }

    /// moby's `BoolValue`: absent, "", "0", "no", "false", "none" are false.
    pub fn bool(&self, k: &str) -> bool {
        match self.get(k) {
            None => false,
            Some(v) => !matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "" | "0" | "no" | "false" | "none"
            ),
        }
    }

    /// Like `bool` but with a default when the key is absent.
    pub fn bool_or(&self, k: &str, default: bool) -> bool {
        if self.get(k).is_none() {
            default
        } else {
            self.bool(k)
        }
    }

    pub fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("invalid value for {k}: {v:?}"))),
        }
    }

    pub fn filters(&self) -> Result<berth_api::filters::Filters, ApiError> {
        berth_api::filters::Filters::parse(self.get("filters").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body exceeds the {limit} byte limit"),
    )
}

/// A request's body: the connection's, behind what was already read of it
/// (by the authorization middleware, which shows plugins the body).
pub struct ReqBody {
    head: Option<Bytes>,
    rest: Option<Incoming>,
}

impl ReqBody {
    pub fn new(body: Incoming) -> Self {
        Self {
            head: None,
            rest: Some(body),
        }
    }

    /// The connection's body, when nothing was read ahead of it.
    pub fn take_incoming(&mut self) -> Option<Incoming> {
        if self.head.is_some() {
            return None;
        }
        self.rest.take()
    }

    /// `head` (already read), then whatever of the body is left.
    pub fn resumed(head: Bytes, rest: Option<Incoming>) -> Self {
        Self {
            head: (!head.is_empty()).then_some(head),
            rest,
        }
    }
}

impl hyper::body::Body for ReqBody {
    type Data = Bytes;
    type Error = hyper::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if let Some(h) = self.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(h))));
        }
        match self.rest.as_mut() {
            Some(r) => Pin::new(r).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.rest.as_ref().is_none_or(|r| r.is_end_stream())
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        let head = self.head.as_ref().map_or(0, |h| h.len() as u64);
        let mut hint = match &self.rest {
            Some(r) => r.size_hint(),
            None => hyper::body::SizeHint::with_exact(0),
        };
        // Upper first: a lower bound past the upper one panics.
        if let Some(u) = hint.upper() {
            hint.set_upper(u + head);
        }
        hint.set_lower(hint.lower() + head);
        hint
    }
}

/// One parsed request, handed to the router.
pub struct Req {
    pub method: Method,
    pub version: ApiVersion,
    /// Whether the path carried a `/vX.Y` prefix (berth's own `/_berth/*`
    /// routes are unversioned: a versioned one is not found).
    pub versioned: bool,
    pub path: String,
    pub query: Query,
    pub headers: HeaderMap,
    pub body: Option<ReqBody>,
    pub upgrade: Option<hyper::upgrade::OnUpgrade>,
    /// The connection's socket, to notice the client leaving.
    pub peer: Option<super::peer::Peer>,
}

impl Req {
    /// Resolves once the client has gone (never, when that cannot be told).
    pub fn client_gone(&self) -> super::peer::Gone {
        match self.peer {
            Some(p) => p.watch(),
            None => super::peer::Gone::never(),
        }
    }
}

impl Req {
    /// Reads the whole body, refusing more than `limit` bytes.
    pub async fn bytes(&mut self, limit: usize) -> Result<Bytes, ApiError> {
        let Some(body) = self.body.take() else {
            return Ok(Bytes::new());
        };
        // A declared length past the limit is refused before reading any of it.
        if hyper::body::Body::size_hint(&body)
            .exact()
            .is_some_and(|n| n > limit as u64)
        {
            return Err(too_large(limit));
        }
        // Frames are copied out as they come and dropped, so a body costs
        // its size once, not twice as with `collect`.
        let declared = hyper::body::Body::size_hint(&body).lower();
        let mut buf =
            bytes::BytesMut::with_capacity(usize::try_from(declared).unwrap_or(0).min(limit));
        let mut limited = http_body_util::Limited::new(body, limit);
        while let Some(frame) = limited.frame().await {
            match frame {
                Ok(f) => {
                    if let Ok(data) = f.into_data() {
                        buf.extend_from_slice(&data);
                    }
                }
                Err(e)
                    if e.downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some() =>
                {
                    return Err(too_large(limit));
                }
                Err(e) => return Err(ApiError::bad_request(format!("reading request body: {e}"))),
            }
        }
        Ok(buf.freeze())
    }

    /// Parses a JSON body; malformed input is a 400 naming the problem.
    pub async fn json<T: DeserializeOwned>(&mut self) -> Result<T, ApiError> {
        let b = self.bytes(MAX_JSON_BODY).await?;
        if b.iter().all(|c| c.is_ascii_whitespace()) {
            return Err(ApiError::bad_request("invalid JSON: request body is empty"));
        }
        serde_json::from_slice(&b).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
    }

    /// Like `json`, but an empty body yields `T::default()`.
    pub async fn json_or_default<T: DeserializeOwned + Default>(&mut self) -> Result<T, ApiError> {
        let b = self.bytes(MAX_JSON_BODY).await?;
        if b.iter().all(|c| c.is_ascii_whitespace()) {
            return Ok(T::default());
        }
        serde_json::from_slice(&b).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A request body read from blocking engine code (import, load, cp, build):
/// an async task feeds body frames through a small channel.
pub struct BodyReader {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    cur: Bytes,
}

impl std::io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        bytes::Buf::advance(&mut self.cur, n);
        Ok(n)
    }
}

impl Req {
    /// Hands the body to blocking code as a `Read`. Must be called from
    /// within the runtime; read it from `spawn_blocking`.
    pub fn body_reader(&mut self) -> BodyReader {
        self.body_reader_draining(0)
    }

    /// Like `body_reader`, but when the reader is dropped early (the
    /// request failed), up to `drain` more bytes are read and discarded,
    /// so a client still sending gets the error response rather than a
    /// broken pipe.
    pub fn body_reader_draining(&mut self, drain: usize) -> BodyReader {
        let (tx, rx) = mpsc::channel(16);
        if let Some(mut body) = self.body.take() {
            tokio::spawn(async move {
                let mut left = drain;
                let mut dropped = false;
                while let Some(frame) = body.frame().await {
                    match frame {
                        Ok(f) => {
                            if let Ok(data) = f.into_data() {
                                if dropped {
                                    if data.len() > left {
                                        return;
                                    }
                                    left -= data.len();
                                } else if !data.is_empty() && tx.send(Ok(data)).await.is_err() {
                                    if drain == 0 {
                                        return;
                                    }
                                    dropped = true;
                                }
                            }
                        }
                        Err(e) => {
                            let _ = tx
                                .send(Err(std::io::Error::new(
                                    std::io::ErrorKind::UnexpectedEof,
                                    format!("reading request body: {e}"),
                                )))
                                .await;
                            return;
                        }
                    }
                }
            });
        }
        BodyReader {
            rx,
            cur: Bytes::new(),
        }
    }
}

/// A body fed by a channel that may end in an error: the error aborts the
/// response (no final chunk), so the client sees a failed transfer rather
/// than a short, well-terminated one.
pub struct FallibleChannelBody {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
}

impl hyper::body::Body for FallibleChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}

/// Like `stream`, for bodies whose producer can fail midway (`save`).
pub fn stream_fallible(
    status: StatusCode,
    content_type: &'static str,
) -> (mpsc::Sender<std::io::Result<Bytes>>, Resp) {
    let (tx, rx) = mpsc::channel(16);
    let mut r = Response::new(FallibleChannelBody { rx }.boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    (tx, r)
}

/// A blocking `Write` into a streaming response, in chunks of `CHUNK`.
/// Writes fail with `BrokenPipe` once the client has gone.
pub struct ChannelWriter {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    const CHUNK: usize = 1 << 20;

    /// Ends the response with an error (see `FallibleChannelBody`).
    pub fn fail(self, e: std::io::Error) {
        let _ = self.tx.blocking_send(Err(e));
    }

    pub fn new(tx: mpsc::Sender<std::io::Result<Bytes>>) -> Self {
        Self {
            tx,
            buf: Vec::with_capacity(Self::CHUNK),
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(Self::CHUNK));
        self.tx
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + b.len() > Self::CHUNK {
            self.send()?;
        }
        if b.len() >= Self::CHUNK {
            self.tx
                .blocking_send(Ok(Bytes::copy_from_slice(b)))
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away")
                })?;
        } else {
            self.buf.extend_from_slice(b);
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}
