//! Image routes: parse → engine → serialize. Archive work (import, load,
//! save) runs on blocking threads fed by, or feeding, the HTTP body.

use std::io::Write;

use berth_api::jsonmessage::JsonMessage;
use berth_api::shapes;
use berth_api::ApiVersion;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use super::error::ApiError;
use super::http::{
    full, ok_json, ok_shaped, status_only, stream, stream_fallible, ApiResult, ChannelWriter, Req,
};
use super::Ctx;
use crate::engine::images::reference::{self, Reference};
use crate::engine::images::{DeleteOptions, ImportOptions, ListOptions};
use crate::engine::registry::{self, AuthConfig, Platform, Progress, PullRequest, PushRequest};
use crate::engine::{EngineError, Result};

/// The image name from the path segments between `/images/` and the verb.
pub fn name_of(segs: &[&str]) -> String {
    // The router has decoded each segment already: decoding again would
    // turn `%252F` into `/`.
    segs.join("/")
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EngineError::internal(format!("worker failed: {e}")))?
}

pub async fn list(ctx: &Ctx, req: Req) -> ApiResult {
    let opts = ListOptions {
        all: req.query.bool("all"),
        shared_size: req.query.bool("shared-size"),
        count_containers: false,
        filters: req.query.filters()?,
    };
    let mut out = ctx.engine.images.list(&opts)?;
    untagged_placeholders(&mut out, req.version);
    if !req.version.at_least(1, 44) {
        for s in &mut out {
            s.virtual_size = Some(s.size);
        }
    }
    ok_shaped(&out, &shapes::IMAGE_LIST, req.version)
}

/// Below API 1.43 an image with neither tags nor digests is listed as
/// `<none>:<none>` / `<none>@<none>` (the docker CLI of that era printed
/// those); from 1.43 on both are `[]`.
pub fn untagged_placeholders(images: &mut [berth_api::models::ImageSummary], v: ApiVersion) {
    if v.at_least(1, 43) {
        return;
    }
    for i in images {
        if i.repo_tags.is_empty() && i.repo_digests.is_empty() {
            i.repo_tags = vec!["<none>:<none>".to_string()];
            i.repo_digests = vec!["<none>@<none>".to_string()];
        }
    }
}

pub async fn inspect(ctx: &Ctx, req: Req, name: &str) -> ApiResult {
    let mut v = ctx.engine.images.inspect(name)?;
    if !req.version.at_least(1, 44) {
        v.inspect.virtual_size = v.inspect.size;
    }
    ok_shaped(&v, &shapes::IMAGE_INSPECT, req.version)
}

pub async fn history(ctx: &Ctx, req: Req, name: &str) -> ApiResult {
    ok_shaped(
        &ctx.engine.images.history(name)?,
        &shapes::IMAGE_HISTORY,
        req.version,
    )
}

pub async fn tag(ctx: &Ctx, req: Req, name: &str) -> ApiResult {
    let repo = req.query.get("repo").unwrap_or("");
    let tag = req.query.get("tag").unwrap_or("");
    ctx.engine.images.tag(name, repo, tag)?;
    status_only(StatusCode::CREATED)
}

pub async fn delete(ctx: &Ctx, req: Req, name: &str) -> ApiResult {
    let opts = DeleteOptions {
        force: req.query.bool("force"),
        noprune: req.query.bool("noprune"),
    };
    let engine = ctx.engine.clone();
    let name = name.to_string();
    let out = blocking(move || engine.images.delete(&name, &opts)).await?;
    ok_json(&out)
}

pub async fn prune(ctx: &Ctx, req: Req) -> ApiResult {
    let filters = req.query.filters()?;
    let engine = ctx.engine.clone();
    let out = blocking(move || engine.images.prune(&filters)).await?;
    ok_shaped(&out, &shapes::IMAGE_PRUNE, req.version)
}

/// `GET /images/search?term=…&limit=…&filters=…`: the registry's v1
/// search, filtered by the daemon.
pub async fn search(ctx: &Ctx, req: Req) -> ApiResult {
    let term = req.query.get("term").unwrap_or("");
    let limit = match req.query.get("limit").filter(|l| !l.is_empty()) {
        None => registry::search::DEFAULT_LIMIT,
        // dockerd hands Go's untyped `strconv.Atoi` error on: a 500.
        Some(l) => l.parse().map_err(|_| {
            EngineError::internal(format!("strconv.Atoi: parsing {l:?}: invalid syntax"))
        })?,
    };
    let filters = req.query.get("filters").unwrap_or("");
    // For a search, undecodable credentials mean anonymous (as dockerd).
    let creds = registry_auth(&req).unwrap_or_default();
    ok_json(
        &ctx.engine
            .registries
            .search(term, limit, filters, &creds)
            .await?,
    )
}

/// The credentials of `X-Registry-Auth` (anonymous when absent).
fn registry_auth(req: &Req) -> Result<AuthConfig> {
    AuthConfig::from_header(
        req.headers
            .get("X-Registry-Auth")
            .and_then(|v| v.to_str().ok()),
    )
}

/// `GET /distribution/{name}/json`: the registry's descriptor and platforms
/// for a reference (tag `latest` when none), with the caller's credentials.
pub async fn distribution(ctx: &Ctx, req: Req, name: &str) -> ApiResult {
    let r = Reference::parse(name)?;
    let creds = registry_auth(&req)?;
    ok_json(&ctx.engine.registries.distribution_inspect(r, creds).await?)
}

/// `POST /images/{name}/push?tag=…`: a progress stream; every failure,
/// including "no such image", travels in `errorDetail` (as in moby, the
/// first line is already out by then).
pub async fn push(ctx: &Ctx, req: Req, name: &str) -> ApiResult {
    let mut r = Reference::parse(name)?;
    if let Some(tag) = req.query.get("tag").filter(|t| !t.is_empty()) {
        if !reference::valid_tag(tag) {
            return Err(ApiError::bad_request(format!(
                "invalid tag format: {tag:?}"
            )));
        }
        r.tag = Some(tag.to_string());
    }
    if r.digest.is_some() {
        return Err(ApiError::bad_request("cannot push a digest reference"));
    }
    let creds = registry_auth(&req)?;
    let (tx, resp) = stream(StatusCode::OK, "application/json");
    let registries = ctx.engine.registries.clone();
    tokio::spawn(async move {
        let out = Progress(tx);
        let req = PushRequest {
            reference: r,
            creds,
        };
        if let Err(e) = registries.push(req, out.clone()).await {
            out.send(JsonMessage::error(e.to_string(), None)).await;
        }
    });
    Ok(resp)
}

/// `fromImage` (+ `tag`, which may be a digest): a pull. Errors before the
/// first manifest is in hand are plain HTTP errors; later ones travel in
/// `errorDetail`.
async fn pull(ctx: &Ctx, req: &Req, image: &str) -> ApiResult {
    let q = &req.query;
    let mut r = Reference::parse(image)?;
    if let Some(tag) = q.get("tag").filter(|t| !t.is_empty()) {
        if tag.contains(':') && reference::validate_digest(tag).is_ok() {
            r.tag = None;
            r.digest = Some(tag.to_string());
        } else if reference::valid_tag(tag) {
            r.tag = Some(tag.to_string());
        } else {
            return Err(ApiError::bad_request(format!(
                "invalid tag format: {tag:?}"
            )));
        }
    }
    let platform = match q.get("platform").filter(|p| !p.is_empty()) {
        Some(p) => Some(Platform::parse(p)?),
        None => None,
    };
    let creds = registry_auth(req)?;
    let prepared = ctx
        .engine
        .registries
        .prepare_pull(PullRequest {
            reference: r,
            platform,
            creds,
        })
        .await?;
    let (tx, resp) = stream(StatusCode::OK, "application/json");
    tokio::spawn(async move {
        let out = Progress(tx);
        if let Err(e) = prepared.run(out.clone()).await {
            out.send(JsonMessage::error(e.to_string(), None)).await;
        }
    });
    Ok(resp)
}

fn json_line_response(msg: &JsonMessage) -> ApiResult {
    let mut r = Response::new(full(msg.to_line()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

/// `POST /images/create`: `fromImage` pulls from a registry; `fromSrc=-`
/// imports the body.
pub async fn create(ctx: &Ctx, mut req: Req) -> ApiResult {
    let q = req.query.clone();
    if let Some(image) = q.get("fromImage").filter(|s| !s.is_empty()) {
        return pull(ctx, &req, image).await;
    }
    let src = q.get("fromSrc").unwrap_or("");
    if src.is_empty() {
        return Err(ApiError::bad_request(
            "either fromSrc or fromImage must be given",
        ));
    }
    if src != "-" {
        return Err(ApiError::bad_request(format!(
            "importing from {src:?} is not supported: send the archive as the request body (fromSrc=-)"
        )));
    }
    if let Some(p) = q.get("platform").filter(|p| !p.is_empty()) {
        if !p.starts_with("linux") {
            return Err(ApiError::bad_request(format!("unsupported platform {p:?}")));
        }
    }
    let repo = q.get("repo").unwrap_or("");
    let tag = if repo.is_empty() {
        None
    } else {
        let r = Reference::parse_repo_tag(repo, q.get("tag").unwrap_or(""))?;
        if r.digest.is_some() {
            return Err(ApiError::bad_request("cannot import digest reference"));
        }
        Some(r)
    };
    let opts = ImportOptions {
        tag,
        changes: q.all("changes").to_vec(),
        message: q.get("message").unwrap_or("").to_string(),
        source: src.to_string(),
    };
    // An import refused early (a bad --change) still reads the upload, so
    // the client sees the error rather than a broken pipe.
    let mut reader = req.body_reader_draining(1 << 32);
    let engine = ctx.engine.clone();
    // Nothing is written before the import finishes, so a failure is a
    // proper status (400 for a bad or unsafe archive), as in Docker.
    let img = blocking(move || {
        let r = engine.images.import(&mut reader, &opts);
        if r.is_err() {
            // Read the rest: answering while the client still uploads
            // would show it a broken pipe instead of the error.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        }
        r
    })
    .await?;
    json_line_response(&JsonMessage::status(img.id.clone()))
}

/// `POST /images/load`: a progress stream; errors after the 200 travel in
/// `errorDetail`, the only place the CLI looks.
pub async fn load(ctx: &Ctx, mut req: Req) -> ApiResult {
    // dockerd's default when the parameter is absent: no per-layer progress.
    let quiet = req.query.bool_or("quiet", true);
    let mut reader = req.body_reader();
    let (tx, resp) = stream(StatusCode::OK, "application/json");
    let engine = ctx.engine.clone();
    tokio::task::spawn_blocking(move || {
        let send = |m: JsonMessage| {
            let _ = tx.blocking_send(Bytes::from(m.to_line()));
        };
        let mut out = send;
        if let Err(e) = engine.images.load(&mut reader, quiet, &mut out) {
            // Read the rest so the client, still uploading, sees the answer.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
            out(JsonMessage::error(e.to_string(), None));
        }
    });
    Ok(resp)
}

/// `GET /images/get?names=…` and `GET /images/{name}/get`.
pub async fn save(ctx: &Ctx, req: Req, one: Option<&str>) -> ApiResult {
    let names: Vec<String> = match one {
        Some(n) => vec![n.to_string()],
        None => req.query.all("names").to_vec(),
    };
    let plan = ctx.engine.images.prepare_save(&names)?;
    let (tx, resp) = stream_fallible(StatusCode::OK, "application/x-tar");
    let engine = ctx.engine.clone();
    tokio::task::spawn_blocking(move || {
        let w = ChannelWriter::new(tx.clone());
        match engine.images.write_save(&plan, w) {
            Ok(mut w) => {
                let _ = w.flush();
            }
            Err(e) => {
                tracing::warn!(error = %e, "save stopped");
                ChannelWriter::new(tx).fail(std::io::Error::other(e.to_string()));
            }
        }
    });
    Ok(resp)
}
