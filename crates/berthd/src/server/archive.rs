//! `docker cp`: `HEAD`/`GET`/`PUT /containers/{id}/archive`.

use http::{HeaderValue, StatusCode};

use super::error::ApiError;
use super::http::{status_only, stream_fallible, ApiResult, ChannelWriter, Req};
use super::Ctx;
use crate::engine::containers::archive::{PathStat, PutOptions};

const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

fn path_of(req: &Req) -> Result<String, ApiError> {
    match req.query.get("path") {
        Some(p) if !p.is_empty() => Ok(p.to_string()),
        _ => Err(ApiError::bad_request("Path cannot be empty")),
    }
}

fn stat_header(st: &PathStat) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(&st.header_value()).map_err(|e| ApiError::internal(e.to_string()))
}

pub async fn head(ctx: &Ctx, req: Req, id: &str) -> ApiResult {
    let st = ctx
        .engine
        .containers
        .archive_stat(id, &path_of(&req)?)
        .await?;
    let mut r = status_only(StatusCode::OK)?;
    r.headers_mut().insert(STAT_HEADER, stat_header(&st)?);
    Ok(r)
}

pub async fn get(ctx: &Ctx, req: Req, id: &str) -> ApiResult {
    let path = path_of(&req)?;
    let (tx, mut resp) = stream_fallible(StatusCode::OK, "application/x-tar");
    let st = ctx
        .engine
        .containers
        .archive_get(id, &path, Box::new(ChannelWriter::new(tx)))
        .await?;
    resp.headers_mut().insert(STAT_HEADER, stat_header(&st)?);
    Ok(resp)
}

pub async fn put(ctx: &Ctx, mut req: Req, id: &str) -> ApiResult {
    let path = path_of(&req)?;
    let opts = PutOptions {
        no_overwrite_dir_non_dir: req.query.bool("noOverwriteDirNonDir"),
        copy_uid_gid: req.query.bool("copyUIDGID"),
    };
    // An upload refused early (no such directory, read-only) is drained,
    // so the CLI prints the error instead of a broken pipe.
    let body = req.body_reader_draining(64 << 20);
    ctx.engine
        .containers
        .archive_put(id, &path, opts, Box::new(body))
        .await?;
    status_only(StatusCode::OK)
}
