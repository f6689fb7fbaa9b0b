//! `POST /grpc` and `POST /session`: BuildKit's two hijacks. Both answer
//! `101` with `Upgrade: h2c` and hand the raw connection to the BuildKit
//! service (h2c with prior knowledge follows, not an RFC 7540 upgrade).
//! The refusals are dockerd's: 500 on `/grpc`, 400 on `/session`.

use http::{header, HeaderValue, Response, StatusCode};

use super::error::ApiError;
use super::http::{empty, ApiResult, Req};
use super::Ctx;
use crate::buildkit::SessionInfo;

/// The `Upgrade` a BuildKit hijack needs, or dockerd's refusal with `status`.
fn check_upgrade(req: &Req, status: StatusCode) -> Result<(), ApiError> {
    match req.header("Upgrade").unwrap_or("") {
        "h2c" if req.upgrade.is_some() => Ok(()),
        "" | "h2c" => Err(ApiError::new(status, "no upgrade proto in request")),
        other => Err(ApiError::new(
            status,
            format!("protocol {other} not supported"),
        )),
    }
}

/// dockerd's 101: nothing but the two upgrade headers.
fn switching() -> ApiResult {
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
    Ok(r)
}

pub async fn grpc(ctx: &Ctx, mut req: Req) -> ApiResult {
    check_upgrade(&req, StatusCode::INTERNAL_SERVER_ERROR)?;
    let Some(on) = req.upgrade.take() else {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no upgrade proto in request",
        ));
    };
    let bk = ctx.buildkit.clone();
    tokio::spawn(async move {
        match on.await {
            Ok(io) => bk.serve_grpc(io).await,
            Err(e) => tracing::debug!(error = %e, "/grpc upgrade failed"),
        }
    });
    switching()
}

pub async fn session(ctx: &Ctx, mut req: Req) -> ApiResult {
    check_upgrade(&req, StatusCode::BAD_REQUEST)?;
    let id = req
        .header("X-Docker-Expose-Session-Uuid")
        .unwrap_or("")
        .to_string();
    if id.is_empty() {
        return Err(ApiError::bad_request("no session id in request"));
    }
    if ctx.buildkit.has_session(&id) {
        return Err(ApiError::bad_request(format!(
            "session {id} already exists"
        )));
    }
    let methods = req
        .headers
        .get_all("X-Docker-Expose-Session-Grpc-Method")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .collect();
    let info = SessionInfo {
        id,
        shared_key: req
            .header("X-Docker-Expose-Session-Sharedkey")
            .unwrap_or("")
            .to_string(),
        methods,
    };
    let Some(on) = req.upgrade.take() else {
        return Err(ApiError::bad_request("no upgrade proto in request"));
    };
    let bk = ctx.buildkit.clone();
    tokio::spawn(async move {
        match on.await {
            Ok(io) => bk.serve_session(io, info).await,
            Err(e) => tracing::debug!(error = %e, "/session upgrade failed"),
        }
    });
    switching()
}
