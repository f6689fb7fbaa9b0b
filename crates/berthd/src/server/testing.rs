//! Support for the handlers' unit tests: requests made without a
//! connection, and answers read back whole.

use std::sync::Mutex;

use berth_api::version::ApiVersion;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;

use super::http::{ApiResult, Query, Req, ReqBody};

/// A request at API `version` with `query` (`a=1&b=2`) and no body.
pub fn req(method: Method, query: &str, version: ApiVersion) -> Req {
    Req {
        method,
        version,
        versioned: true,
        path: String::new(),
        query: Query::parse(Some(query)),
        headers: Default::default(),
        body: None,
        upgrade: None,
        peer: None,
    }
}

/// A request at the current API version.
pub fn get(query: &str) -> Req {
    req(Method::GET, query, ApiVersion::new(1, 50))
}

/// `r` with `body` as its body.
pub fn with_body(mut r: Req, body: impl Into<Bytes>) -> Req {
    r.body = Some(ReqBody::resumed(body.into(), None));
    r
}

/// The status, headers and whole body of an answer (an error as the
/// client sees it).
pub async fn answer(r: ApiResult) -> (StatusCode, HeaderMap, Bytes) {
    let resp = r.unwrap_or_else(|e| e.into_response());
    let (parts, body) = resp.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    (parts.status, parts.headers, bytes)
}

/// The status and the JSON body of an answer (`null` when not JSON).
pub async fn json(r: ApiResult) -> (StatusCode, Value) {
    let (status, _, bytes) = answer(r).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The JSON lines of a streamed answer.
pub async fn lines(r: ApiResult) -> (StatusCode, Vec<Value>) {
    let (status, _, bytes) = answer(r).await;
    let lines = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap_or(Value::Null))
        .collect();
    (status, lines)
}

/// What a fake backend was asked, in order.
#[derive(Default)]
pub struct Asked(Mutex<Vec<String>>);

impl Asked {
    pub fn note(&self, s: impl Into<String>) {
        self.0.lock().unwrap().push(s.into());
    }
    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}
