//! The one place where engine errors become HTTP statuses and Docker's
//! `{"message": ...}` bodies (with `Content-Type: application/json` exactly:
//! the docker CLI compares that header with `==`).

use http::{header, HeaderValue, Response, StatusCode};
use serde::Serialize;

use super::http::{full, Resp};
use crate::engine::EngineError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

#[derive(Serialize)]
struct Message<'a> {
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, m)
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, m)
    }

    pub fn into_response(self) -> Resp {
        if self.status == StatusCode::NOT_MODIFIED {
            // 304 carries no body.
            let mut r = Response::new(super::http::empty());
            *r.status_mut() = self.status;
            return r;
        }
        let body = serde_json::to_vec(&Message {
            message: &self.message,
        })
        .unwrap_or_else(|_| b"{\"message\":\"internal error\"}".to_vec());
        let mut r = Response::new(full(body));
        *r.status_mut() = self.status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    }
}

impl From<berth_api::reference::ReferenceError> for ApiError {
    fn from(e: berth_api::reference::ReferenceError) -> Self {
        EngineError::from(e).into()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let status = match &e {
            EngineError::NotFound(_) => StatusCode::NOT_FOUND,
            EngineError::InvalidParameter(_) => StatusCode::BAD_REQUEST,
            EngineError::Conflict(_) => StatusCode::CONFLICT,
            EngineError::NotModified(_) => StatusCode::NOT_MODIFIED,
            EngineError::Forbidden(_) => StatusCode::FORBIDDEN,
            EngineError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            EngineError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            EngineError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            EngineError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            EngineError::StartFailed { kind, .. } => match kind {
                berth_api::shim::ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            },
        };
        if status.is_server_error() {
            tracing::error!(error = %e, "request failed");
        }
        Self::new(status, e.to_string())
    }
}

impl From<berth_api::filters::FilterError> for ApiError {
    fn from(e: berth_api::filters::FilterError) -> Self {
        Self::bad_request(e.to_string())
    }
}
