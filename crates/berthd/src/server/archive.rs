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

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use serde_json::json;

    use super::*;
    use crate::engine::EngineError;
    use crate::server::testing::{self, answer, get, Asked};

    /// A backend whose container `web` has one file, `/etc/hostname`.
    #[derive(Default)]
    struct Fake {
        asked: Asked,
    }

    impl Fake {
        fn stat(&self, key: &str, path: &str) -> Result<PathStat> {
            if key != "web" {
                return Err(EngineError::not_found(format!("No such container: {key}")));
            }
            if path != "/etc/hostname" {
                return Err(EngineError::not_found(format!(
                    "Could not find the file {path} in container {key}"
                )));
            }
            Ok(PathStat {
                name: "hostname".into(),
                size: 13,
                mode: 0o644,
                mtime: "2026-01-01T00:00:00Z".into(),
                link_target: String::new(),
            })
        }
    }

    impl Backend for Fake {
        async fn archive_stat(self: &Arc<Self>, key: &str, path: &str) -> Result<PathStat> {
            self.stat(key, path)
        }
        async fn archive_get(
            self: &Arc<Self>,
            key: &str,
            path: &str,
            _: Box<dyn Write + Send>,
        ) -> Result<PathStat> {
            self.stat(key, path)
        }
        async fn archive_put(
            self: &Arc<Self>,
            key: &str,
            path: &str,
            opts: PutOptions,
            _: Box<dyn Read + Send>,
        ) -> Result<()> {
            self.asked.note(format!(
                "put {key} {path} noOverwrite={} uidgid={}",
                opts.no_overwrite_dir_non_dir, opts.copy_uid_gid
            ));
            Ok(())
        }
    }

    #[tokio::test]
    async fn head_sends_the_stat_header_and_a_missing_path_is_a_404() {
        let b = Arc::new(Fake::default());
        let (status, headers, body) =
            answer(head(&b, get("path=/etc/hostname"), "web").await).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.is_empty());
        let raw = base64::engine::general_purpose::STANDARD
            .decode(headers[STAT_HEADER].as_bytes())
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(
            v,
            json!({"name": "hostname", "size": 13, "mode": 0o644,
                   "mtime": "2026-01-01T00:00:00Z", "linkTarget": ""})
        );
        let (status, v) = testing::json(head(&b, get("path=/nope"), "web").await).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            v["message"],
            "Could not find the file /nope in container web"
        );
        let (status, v) = testing::json(get_missing(&b).await).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            v["message"],
            "Could not find the file /nope in container web"
        );
        let (status, v) = testing::json(head(&b, get("path="), "web").await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(v["message"], "Path cannot be empty");
    }

    async fn get_missing(b: &Arc<Fake>) -> ApiResult {
        super::get(b, testing::get("path=/nope"), "web").await
    }

    #[tokio::test]
    async fn put_passes_its_options() {
        let b = Arc::new(Fake::default());
        let r = testing::with_body(
            testing::req(
                http::Method::PUT,
                "path=/tmp&noOverwriteDirNonDir=1&copyUIDGID=true",
                berth_api::version::ApiVersion::new(1, 50),
            ),
            "",
        );
        assert_eq!(answer(put(&b, r, "web").await).await.0, StatusCode::OK);
        assert_eq!(b.asked.all(), ["put web /tmp noOverwrite=true uidgid=true"]);
    }
}
