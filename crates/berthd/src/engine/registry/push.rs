//! `POST /images/{name}/push`: pushing an image's tags to a registry.
//!
//! Per layer (top first, as Docker lists them; at most
//! `max-concurrent-uploads` at once): a blob the distribution metadata
//! knows for this registry is checked with `HEAD` in the target repository
//! (`Layer already exists`), then offered as a cross-repository mount from
//! the repository it was seen in (`Mounted from …`); otherwise the layer's
//! tar is gzip-compressed on the fly and streamed in one `PATCH` of a
//! chunked upload, then committed with `PUT ?digest=` (`Pushed`). The config
//! goes up monolithically, then the Docker schema 2 manifest.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_api::jsonmessage::JsonMessage;
use bytes::Bytes;
use http::{header, Method, StatusCode};
use tokio::sync::{mpsc, Semaphore};

use super::auth::{repo_scope, AuthConfig, Session};
use super::client::{self, RegistryError};
use super::metadata::BlobSum;
use super::pull::{MT_DOCKER_CONFIG, MT_DOCKER_LAYER_GZIP};
use super::{Progress, Registries};
use crate::engine::images::content::Hasher;
use crate::engine::images::reference::Reference;
use crate::engine::images::spec::{self, Descriptor, Manifest};
use crate::engine::images::{Image, ImageService};
use crate::engine::{EngineError, Result};

const PROGRESS_EVERY: Duration = Duration::from_millis(100);
const CHUNK: usize = 1 << 20;

pub struct PushRequest {
    /// The repository, with the tag to push (none: every tag).
    pub reference: Reference,
    pub creds: AuthConfig,
}

fn short(digest: &str) -> String {
    let hex = digest.split_once(':').map(|(_, h)| h).unwrap_or(digest);
    hex[..hex.len().min(12)].to_string()
}

fn plain(e: EngineError) -> EngineError {
    match e {
        EngineError::Unauthorized(m) | EngineError::Unavailable(m) => EngineError::Internal(m),
        e => e,
    }
}

impl Registries {
    /// Pushes; every line (and the error, if any) goes to `out`.
    pub async fn push(self: &Arc<Self>, req: PushRequest, out: Progress) -> Result<()> {
        push_inner(self, req, &out).await.map_err(plain)
    }
}

async fn push_inner(regs: &Arc<Registries>, req: PushRequest, out: &Progress) -> Result<()> {
    let r = req.reference;
    let mut name = r.clone();
    name.tag = None;
    name.digest = None;
    out.send(JsonMessage::status(format!(
        "The push refers to repository [{}]",
        name.name()
    )))
    .await;
    let all = regs.images.references_by_name(&name);
    if all.is_empty() {
        return Err(EngineError::not_found(format!(
            "An image does not exist locally with the tag: {}",
            name.familiar_name()
        )));
    }
    let todo: Vec<(Reference, String)> = match &r.tag {
        Some(_) => match all.into_iter().find(|(x, _)| x == &r) {
            Some(t) => vec![t],
            None => {
                return Err(EngineError::not_found(format!(
                    "tag does not exist: {}",
                    r.familiar()
                )))
            }
        },
        None => {
            let v: Vec<_> = all.into_iter().filter(|(x, _)| x.tag.is_some()).collect();
            if v.is_empty() {
                return Err(EngineError::not_found(format!(
                    "no tags to push for {}",
                    name.familiar_name()
                )));
            }
            v
        }
    };
    let eps = regs.ordered(regs.endpoints().endpoints(&r.domain, false).await);
    let scopes = vec![repo_scope(&r.path, "pull,push")];
    let mut session = None;
    let mut last = None;
    for ep in eps {
        match Session::open(
            regs.transports.clone(),
            ep.clone(),
            &scopes,
            req.creds.clone(),
        )
        .await
        {
            Ok(s) => {
                regs.remember_scheme(&ep.host, ep.scheme == "http");
                session = Some(Arc::new(s));
                break;
            }
            Err(e @ EngineError::Unavailable(_)) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    let session = match session {
        Some(s) => s,
        None => return Err(last.unwrap_or_else(|| EngineError::internal("no registry endpoint"))),
    };
    for (tag_ref, id) in todo {
        let img = regs
            .images
            .get(&id)
            .ok_or_else(|| EngineError::not_found(format!("No such image: {id}")))?;
        push_tag(regs, &session, &tag_ref, img, out).await?;
    }
    Ok(())
}

async fn push_tag(
    regs: &Arc<Registries>,
    session: &Arc<Session>,
    r: &Reference,
    img: Arc<Image>,
    out: &Progress,
) -> Result<()> {
    // Pin the layers for the duration.
    let _pins: Vec<_> = img
        .chain_ids
        .iter()
        .map(|c| {
            regs.images
                .layers
                .lease(c)
                .ok_or_else(|| EngineError::internal(format!("layer {c} is missing")))
        })
        .collect::<Result<_>>()?;
    let diff_ids = img.config.rootfs.diff_ids.clone();
    for d in diff_ids.iter().rev() {
        out.send(JsonMessage::layer_status("Preparing", short(d)))
            .await;
    }
    let sem = Arc::new(Semaphore::new(regs.max_concurrent_uploads()));
    let mut tasks = Vec::new();
    for d in diff_ids.iter().rev() {
        let permit = match sem.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                out.send(JsonMessage::layer_status("Waiting", short(d)))
                    .await;
                None
            }
        };
        let (regs, s, o, d, sem, r) = (
            regs.clone(),
            session.clone(),
            out.clone(),
            d.clone(),
            sem.clone(),
            r.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = match permit {
                Some(p) => p,
                None => sem
                    .acquire_owned()
                    .await
                    .map_err(|_| EngineError::internal("upload queue closed"))?,
            };
            push_layer(regs, s, r, d, o).await
        }));
    }
    let mut layers: Vec<Descriptor> = Vec::new();
    let mut err = None;
    for t in tasks {
        match t.await {
            Ok(Ok(d)) => layers.push(d),
            Ok(Err(e)) => {
                err.get_or_insert(e);
            }
            Err(e) => {
                err.get_or_insert(EngineError::internal(format!("upload failed: {e}")));
            }
        }
    }
    if let Some(e) = err {
        return Err(e);
    }
    layers.reverse();
    // The config.
    let cfg = Bytes::from(img.raw_config.clone());
    if !blob_exists(session, &r.path, &img.id).await? {
        upload_bytes(session, &r.path, &img.id, cfg.clone()).await?;
    }
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(spec::MT_DOCKER_MANIFEST.into()),
        config: Descriptor {
            media_type: MT_DOCKER_CONFIG.into(),
            digest: img.id.clone(),
            size: cfg.len() as i64,
            ..Default::default()
        },
        layers,
    };
    // Docker indents its manifests with three spaces.
    let mut bytes = Vec::new();
    {
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"   ");
        let mut ser = serde_json::Serializer::with_formatter(&mut bytes, fmt);
        serde::Serialize::serialize(&manifest, &mut ser)?;
    }
    let digest = crate::engine::images::content::sha256_digest(&bytes);
    let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
    let url = session.url(&format!("/v2/{}/manifests/{tag}", r.path));
    let resp = session
        .request(
            Method::PUT,
            &url,
            &[(header::CONTENT_TYPE, spec::MT_DOCKER_MANIFEST.to_string())],
            Some(Bytes::from(bytes.clone())),
        )
        .await?;
    if !resp.status().is_success() {
        let e = RegistryError::from_response(resp).await;
        return Err(EngineError::internal(format!("Put \"{url}\": {e}")));
    }
    let _ = client::read_body(resp, 64 << 10).await;
    out.send(JsonMessage::status(format!(
        "{tag}: digest: {digest} size: {}",
        bytes.len()
    )))
    .await;
    out.send(JsonMessage {
        progress_detail: Some(Default::default()),
        aux: Some(serde_json::json!({"Tag": tag, "Digest": digest, "Size": bytes.len()})),
        ..Default::default()
    })
    .await;
    // As after a pull: the image is known by `name@digest` now.
    let mut dref = r.clone();
    dref.tag = None;
    dref.digest = Some(digest);
    let images = regs.images.clone();
    let raw = img.raw_config.clone();
    let _ = tokio::task::spawn_blocking(move || images.create_image(raw.as_bytes(), &[dref])).await;
    regs.images.publish("push", &img, &r.familiar());
    Ok(())
}

pub(super) async fn blob_exists(s: &Session, path: &str, digest: &str) -> Result<bool> {
    let url = s.url(&format!("/v2/{path}/blobs/{digest}"));
    let resp = s.request(Method::HEAD, &url, &[], None).await?;
    Ok(resp.status() == StatusCode::OK)
}

fn is_gzip(mt: &str) -> bool {
    mt == MT_DOCKER_LAYER_GZIP || mt == "application/vnd.oci.image.layer.v1.tar+gzip"
}

/// One layer: already there, mounted, or uploaded. Returns its descriptor.
async fn push_layer(
    regs: Arc<Registries>,
    s: Arc<Session>,
    r: Reference,
    diff_id: String,
    out: Progress,
) -> Result<Descriptor> {
    let id = short(&diff_id);
    let known: Vec<BlobSum> = regs
        .metadata
        .get(&diff_id)
        .into_iter()
        .filter(|b| b.domain == r.domain && is_gzip(&b.media_type))
        .collect();
    let desc = |b: &BlobSum| Descriptor {
        media_type: MT_DOCKER_LAYER_GZIP.into(),
        digest: b.digest.clone(),
        size: b.size,
        ..Default::default()
    };
    let record = |digest: &str, size: i64| {
        let sum = BlobSum {
            digest: digest.to_string(),
            media_type: MT_DOCKER_LAYER_GZIP.into(),
            size,
            domain: r.domain.clone(),
            repo: r.path.clone(),
        };
        if let Err(e) = regs.metadata.add(&diff_id, sum) {
            tracing::warn!(error = %e, "recording distribution metadata");
        }
    };
    let mut seen = std::collections::HashSet::new();
    for b in &known {
        if seen.insert(b.digest.clone()) && blob_exists(&s, &r.path, &b.digest).await? {
            out.send(JsonMessage::layer_status("Layer already exists", &id))
                .await;
            record(&b.digest, b.size);
            return Ok(desc(b));
        }
    }
    let mut upload_at: Option<String> = None;
    for b in known.iter().filter(|b| b.repo != r.path) {
        let url = s.url(&format!(
            "/v2/{}/blobs/uploads/?mount={}&from={}",
            r.path, b.digest, b.repo
        ));
        let resp = s.request(Method::POST, &url, &[], None).await?;
        match resp.status() {
            StatusCode::CREATED => {
                let _ = client::read_body(resp, 64 << 10).await;
                out.send(JsonMessage::layer_status(
                    format!("Mounted from {}", b.repo),
                    &id,
                ))
                .await;
                record(&b.digest, b.size);
                return Ok(desc(b));
            }
            StatusCode::ACCEPTED => {
                // The registry started an upload instead: use it.
                upload_at = location(&s, &resp);
                let _ = client::read_body(resp, 64 << 10).await;
                break;
            }
            _ => {
                let _ = client::read_body(resp, 64 << 10).await;
            }
        }
    }
    let (digest, size) = upload_layer(&regs.images, &s, &r.path, &diff_id, upload_at, &out).await?;
    out.send(JsonMessage::layer_status("Pushed", &id)).await;
    record(&digest, size);
    Ok(Descriptor {
        media_type: MT_DOCKER_LAYER_GZIP.into(),
        digest,
        size,
        ..Default::default()
    })
}

fn location(s: &Session, resp: &http::Response<hyper::body::Incoming>) -> Option<String> {
    let loc = resp.headers().get(header::LOCATION)?.to_str().ok()?;
    let base = url::Url::parse(&s.url("/")).ok()?;
    base.join(loc).ok().map(|u| u.to_string())
}

async fn start_upload(s: &Session, path: &str) -> Result<String> {
    let url = s.url(&format!("/v2/{path}/blobs/uploads/"));
    let resp = s.request(Method::POST, &url, &[], None).await?;
    if resp.status() != StatusCode::ACCEPTED {
        let e = RegistryError::from_response(resp).await;
        return Err(EngineError::internal(format!("Post \"{url}\": {e}")));
    }
    let loc = location(s, &resp)
        .ok_or_else(|| EngineError::internal("the registry gave no upload location"))?;
    let _ = client::read_body(resp, 64 << 10).await;
    Ok(loc)
}

fn with_digest(loc: &str, digest: &str) -> Result<String> {
    let mut u = url::Url::parse(loc)
        .map_err(|e| EngineError::internal(format!("invalid upload location {loc:?}: {e}")))?;
    u.query_pairs_mut().append_pair("digest", digest);
    Ok(u.to_string())
}

async fn finish_upload(s: &Session, loc: &str, digest: &str, body: Option<Bytes>) -> Result<()> {
    let url = with_digest(loc, digest)?;
    let headers = [(header::CONTENT_TYPE, "application/octet-stream".to_string())];
    let resp = s.request(Method::PUT, &url, &headers, body).await?;
    if resp.status() != StatusCode::CREATED {
        let e = RegistryError::from_response(resp).await;
        return Err(EngineError::internal(format!("Put \"{url}\": {e}")));
    }
    let _ = client::read_body(resp, 64 << 10).await;
    Ok(())
}

/// A small blob in one request (monolithic upload).
pub(super) async fn upload_bytes(s: &Session, path: &str, digest: &str, b: Bytes) -> Result<()> {
    let loc = start_upload(s, path).await?;
    finish_upload(s, &loc, digest, Some(b)).await
}

/// Compresses the layer tar and streams it up: `PATCH` (one chunk holding
/// the whole stream), then `PUT ?digest=`.
async fn upload_layer(
    images: &ImageService,
    s: &Session,
    path: &str,
    diff_id: &str,
    started: Option<String>,
    out: &Progress,
) -> Result<(String, i64)> {
    let loc = match started {
        Some(l) => l,
        None => start_upload(s, path).await?,
    };
    let id = short(diff_id);
    let file = images.content.open_blob(diff_id)?;
    let total = file.metadata()?.len() as i64;
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(8);
    let o = out.clone();
    let worker = tokio::task::spawn_blocking(move || -> Result<(String, i64)> {
        let mut rd = std::io::BufReader::with_capacity(CHUNK, file);
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(CHUNK),
            flate2::Compression::default(),
        );
        let mut h = Hasher::default();
        let mut buf = vec![0u8; CHUNK];
        let mut done: i64 = 0;
        let mut last = Instant::now() - PROGRESS_EVERY;
        let emit = |b: Vec<u8>, h: &mut Hasher| -> Result<()> {
            if b.is_empty() {
                return Ok(());
            }
            h.update(&b);
            tx.blocking_send(Ok(Bytes::from(b)))
                .map_err(|_| EngineError::internal("upload aborted"))
        };
        loop {
            let n = rd.read(&mut buf)?;
            if n == 0 {
                break;
            }
            gz.write_all(&buf[..n])?;
            done += n as i64;
            let chunk = std::mem::take(gz.get_mut());
            emit(chunk, &mut h)?;
            if last.elapsed() >= PROGRESS_EVERY {
                last = Instant::now();
                o.blocking_send(JsonMessage::progress_bar("Pushing", &id, done, total));
            }
        }
        let rest = gz.finish()?;
        emit(rest, &mut h)?;
        o.blocking_send(JsonMessage::progress_bar("Pushing", &id, done, total));
        let size = h.len as i64;
        Ok((h.digest(), size))
    });
    let resp = s
        .request_stream(
            Method::PATCH,
            &loc,
            &[(header::CONTENT_TYPE, "application/octet-stream".to_string())],
            client::channel(rx),
        )
        .await;
    let produced = worker
        .await
        .map_err(|e| EngineError::internal(format!("upload worker failed: {e}")));
    // A failed request also stops the worker: its error is the one to tell.
    let resp = resp?;
    let (digest, size) = produced??;
    if resp.status() != StatusCode::ACCEPTED && !resp.status().is_success() {
        let e = RegistryError::from_response(resp).await;
        return Err(EngineError::internal(format!("Patch \"{loc}\": {e}")));
    }
    let next = location(s, &resp).unwrap_or(loc);
    let _ = client::read_body(resp, 64 << 10).await;
    finish_upload(s, &next, &digest, None).await?;
    Ok((digest, size))
}
