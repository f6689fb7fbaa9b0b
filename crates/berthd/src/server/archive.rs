//! `docker cp`: `HEAD`/`GET`/`PUT /containers/{id}/archive`, against the
//! narrow `Backend` they need (moby's `router/container`'s copy backend).

use std::future::Future;
use std::io::{Read, Write};
use std::sync::Arc;

use http::{HeaderValue, StatusCode};

use super::error::ApiError;
use super::http::{status_only, stream_fallible, ApiResult, ChannelWriter, Req};
use crate::engine::containers::archive::{PathStat, PutOptions};
use crate::engine::containers::Containers;
use crate::engine::Result;

/// What the archive routes ask of the container service.
pub trait Backend: Send + Sync + 'static {
    /// What is at `path` in the container (a missing one is a 404).
    fn archive_stat(
        self: &Arc<Self>,
        key: &str,
        path: &str,
    ) -> impl Future<Output = Result<PathStat>> + Send;
    /// Checks `path`, then writes its tar to `sink` (on its own task: an
    /// error past the first bytes ends the stream).
    fn archive_get(
        self: &Arc<Self>,
        key: &str,
        path: &str,
        sink: Box<dyn Write + Send>,
    ) -> impl Future<Output = Result<PathStat>> + Send;
    /// Extracts the tar `body` into the directory `path`.
    fn archive_put(
        self: &Arc<Self>,
        key: &str,
        path: &str,
        opts: PutOptions,
        body: Box<dyn Read + Send>,
    ) -> impl Future<Output = Result<()>> + Send;
}

impl Backend for Containers {
    async fn archive_stat(self: &Arc<Self>, key: &str, path: &str) -> Result<PathStat> {
        Containers::archive_stat(self, key, path).await
    }
    async fn archive_get(
        self: &Arc<Self>,
        key: &str,
        path: &str,
        sink: Box<dyn Write + Send>,
    ) -> Result<PathStat> {
        Containers::archive_get(self, key, path, sink).await
    }
    async fn archive_put(
        self: &Arc<Self>,
        key: &str,
        path: &str,
        opts: PutOptions,
        body: Box<dyn Read + Send>,
    ) -> Result<()> {
        Containers::archive_put(self, key, path, opts, body).await
    }
}

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

pub async fn head<B: Backend>(b: &Arc<B>, req: Req, id: &str) -> ApiResult {
    let st = b.archive_stat(id, &path_of(&req)?).await?;
    let mut r = status_only(StatusCode::OK)?;
    r.headers_mut().insert(STAT_HEADER, stat_header(&st)?);
    Ok(r)
}

pub async fn get<B: Backend>(b: &Arc<B>, req: Req, id: &str) -> ApiResult {
    let path = path_of(&req)?;
    let (tx, mut resp) = stream_fallible(StatusCode::OK, "application/x-tar");
    let st = b
        .archive_get(id, &path, Box::new(ChannelWriter::new(tx)))
        .await?;
    resp.headers_mut().insert(STAT_HEADER, stat_header(&st)?);
    Ok(resp)
}

pub async fn put<B: Backend>(b: &Arc<B>, mut req: Req, id: &str) -> ApiResult {
    let path = path_of(&req)?;
    let opts = PutOptions {
        no_overwrite_dir_non_dir: req.query.bool("noOverwriteDirNonDir"),
        copy_uid_gid: req.query.bool("copyUIDGID"),
    };
    // An upload refused early (no such directory, read-only) is drained,
    // so the CLI prints the error instead of a broken pipe.
    let body = req.body_reader_draining(64 << 20);
    b.archive_put(id, &path, opts, Box::new(body)).await?;
    status_only(StatusCode::OK)
}
