//! `POST /images/create?fromImage=…`: pulling an image.
//!
//! Two phases, as in moby: [`Registries::prepare_pull`] finds an endpoint that answers,
//! authenticates and fetches the first manifest; its errors are plain HTTP
//! errors. [`PreparedPull::run`] then streams Docker's progress lines while
//! it resolves the platform, fetches the config and the layers, and any
//! failure from there on travels in `errorDetail`.
//!
//! Each missing layer is downloaded on its own task (at most
//! `max-concurrent-downloads` at once) and handed, chunk by chunk, to a
//! blocking thread that hashes the compressed stream, decompresses it
//! (gzip, zstd or plain), hashes the tar (the diff ID) and unpacks it into a
//! staging directory, all in one pass. A layer is committed to the store,
//! bottom first, only once both digests matched; on any failure the staged
//! layers are dropped and whatever blob they wrote is collected.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_api::jsonmessage::JsonMessage;
use bytes::Bytes;
use http::{header, Method, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::{mpsc, Semaphore};

use super::auth::{repo_scope, AuthConfig, Session};
use super::client::{read_body, RegistryError};
use super::metadata::BlobSum;
use super::platform::Platform;
use super::{Progress, Registries};
use crate::engine::images::content::{sha256_digest, HashReader};
use crate::engine::images::layers::{LayerInfo, StagedLayer};
use crate::engine::images::reference::Reference;
use crate::engine::images::spec::{self, Descriptor, ImageSpec, Manifest};
use crate::engine::images::ImageService;
use crate::engine::{EngineError, Result};

const MAX_MANIFEST: usize = 4 << 20;
const MAX_CONFIG: usize = 16 << 20;
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

pub const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MT_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const MT_DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const MT_DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

const ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

pub struct PullRequest {
    /// The name with a tag or a digest; name only pulls every tag.
    pub reference: Reference,
    pub platform: Option<Platform>,
    pub creds: AuthConfig,
}

pub(super) struct Fetched {
    pub(super) bytes: Bytes,
    pub(super) media_type: String,
    pub(super) digest: String,
}

pub struct PreparedPull {
    /// The service the transfer runs in: spawned tasks hold it.
    regs: Arc<Registries>,
    pub(super) session: Arc<Session>,
    reference: Reference,
    platform: Option<Platform>,
    /// Each tag or digest to pull, with its manifest when already fetched.
    pub(super) targets: Vec<(Reference, Option<Fetched>)>,
}

/// The 12-character ID Docker shows for a blob.
fn short(digest: &str) -> String {
    let hex = digest.split_once(':').map(|(_, h)| h).unwrap_or(digest);
    hex[..hex.len().min(12)].to_string()
}

/// What `Pulling from` names the target by: the tag or the digest.
fn tag_or_digest(r: &Reference) -> String {
    r.digest
        .clone()
        .or_else(|| r.tag.clone())
        .unwrap_or_default()
}

/// Pull errors are never 401s: the docker CLI would answer one by
/// prompting for a login. Docker reports them as plain failures.
fn not_401(e: EngineError) -> EngineError {
    match e {
        EngineError::Unauthorized(m) | EngineError::Unavailable(m) => EngineError::Internal(m),
        e => e,
    }
}

/// moby's translation of manifest errors (`notFoundError`).
fn manifest_error(e: RegistryError, r: &Reference, method: &str, url: &str) -> EngineError {
    if e.has_code("MANIFEST_UNKNOWN") || (e.errors.is_empty() && e.status == 404) {
        let cause = if e.errors.is_empty() {
            "manifest unknown: manifest unknown".to_string()
        } else {
            e.first()
        };
        return EngineError::not_found(format!("manifest for {} not found: {cause}", r.familiar()));
    }
    if e.has_code("NAME_UNKNOWN") {
        return EngineError::not_found(format!(
            "repository {} not found: {}",
            r.familiar_name(),
            e.first()
        ));
    }
    if e.has_code("DENIED") {
        return EngineError::not_found(format!(
            "pull access denied for {}, repository does not exist or may require 'docker login': {}",
            r.familiar_name(),
            e.first()
        ));
    }
    EngineError::internal(format!("{method} \"{url}\": {e}"))
}

pub(super) async fn fetch_manifest(s: &Session, r: &Reference, target: &str) -> Result<Fetched> {
    let url = s.url(&format!("/v2/{}/manifests/{target}", r.path));
    let resp = s
        .request(
            Method::GET,
            &url,
            &[(header::ACCEPT, ACCEPT.to_string())],
            None,
        )
        .await?;
    if resp.status() != StatusCode::OK {
        let e = RegistryError::from_response(resp).await;
        return Err(manifest_error(e, r, "Get", &url));
    }
    let media_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
        .unwrap_or_default();
    let bytes = read_body(resp, MAX_MANIFEST).await?;
    let digest = sha256_digest(&bytes);
    if target.starts_with("sha256:") && digest != target {
        return Err(EngineError::internal(format!(
            "manifest verification failed for digest {target}"
        )));
    }
    // The body's own mediaType wins over a generic Content-Type.
    let declared = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| {
            v.get("mediaType")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        });
    let media_type = match declared {
        Some(m) if !m.is_empty() => m,
        _ => media_type,
    };
    Ok(Fetched {
        bytes,
        media_type,
        digest,
    })
}

#[derive(serde::Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

async fn list_tags(s: &Session, r: &Reference) -> Result<Vec<String>> {
    let url = s.url(&format!("/v2/{}/tags/list", r.path));
    let resp = s.request(Method::GET, &url, &[], None).await?;
    if resp.status() != StatusCode::OK {
        let e = RegistryError::from_response(resp).await;
        return Err(manifest_error(e, r, "Get", &url));
    }
    let body = read_body(resp, MAX_MANIFEST).await?;
    let l: TagList = serde_json::from_slice(&body)
        .map_err(|e| EngineError::internal(format!("invalid tag list: {e}")))?;
    let mut tags = l.tags.unwrap_or_default();
    tags.sort();
    Ok(tags)
}

impl Registries {
    /// Phase one of a pull: an endpoint that answers (mirrors first for
    /// Docker Hub, https before http for insecure registries), credentials,
    /// and the first manifest (or, for a name alone, the tag list).
    pub async fn prepare_pull(self: &Arc<Self>, req: PullRequest) -> Result<PreparedPull> {
        prepare_inner(self, req).await.map_err(not_401)
    }
}

/// [`Registries::prepare_pull`] with the registry's own error kinds (a 401
/// stays a 401), for `distribution_inspect`.
pub(super) async fn prepare_inner(
    regs: &Arc<Registries>,
    req: PullRequest,
) -> Result<PreparedPull> {
    let r = req.reference;
    let eps = regs.ordered(regs.endpoints().endpoints(&r.domain, true).await);
    let scopes = vec![repo_scope(&r.path, "pull")];
    let mut last: Option<EngineError> = None;
    for ep in eps {
        let mirror = ep.mirror;
        let session = match Session::open(
            regs.transports.clone(),
            ep.clone(),
            &scopes,
            req.creds.clone(),
        )
        .await
        {
            Ok(s) => Arc::new(s),
            Err(e @ EngineError::Unavailable(_)) => {
                last = Some(e);
                continue;
            }
            Err(e) if mirror => {
                tracing::info!(mirror = %ep.host, error = %e, "mirror failed; trying the next endpoint");
                last = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        regs.remember_scheme(&ep.host, ep.scheme == "http");
        let targets = if r.is_name_only() {
            list_tags(&session, &r).await.map(|tags| {
                tags.into_iter()
                    .map(|t| {
                        let mut x = r.clone();
                        x.tag = Some(t);
                        (x, None)
                    })
                    .collect::<Vec<_>>()
            })
        } else {
            fetch_manifest(&session, &r, &tag_or_digest(&r))
                .await
                .map(|f| vec![(r.clone(), Some(f))])
        };
        match targets {
            Ok(targets) => {
                return Ok(PreparedPull {
                    regs: regs.clone(),
                    session,
                    reference: r,
                    platform: req.platform,
                    targets,
                })
            }
            Err(e) if mirror => {
                tracing::info!(mirror = %ep.host, error = %e, "mirror failed; trying the next endpoint");
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| EngineError::internal("no registry endpoint answered")))
}

/// Feeds a blocking reader from the download task.
struct ChanReader {
    rx: mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl Read for ChanReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.cur = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

fn verification_failed(digest: &str) -> EngineError {
    EngineError::internal(format!(
        "filesystem layer verification failed for digest {digest}"
    ))
}

/// Downloads one layer blob and stages it, verifying its digest.
async fn download(
    images: Arc<ImageService>,
    session: Arc<Session>,
    path: String,
    desc: Descriptor,
    out: Progress,
) -> Result<StagedLayer> {
    let id = short(&desc.digest);
    let url = session.url(&format!("/v2/{path}/blobs/{}", desc.digest));
    let resp = session.request(Method::GET, &url, &[], None).await?;
    if resp.status() != StatusCode::OK {
        let e = RegistryError::from_response(resp).await;
        return Err(EngineError::internal(format!("Get \"{url}\": {e}")));
    }
    let total = if desc.size > 0 {
        desc.size
    } else {
        resp.headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let (tx, rx) = mpsc::channel::<Bytes>(32);
    let worker = tokio::task::spawn_blocking(move || {
        let mut hr = HashReader::new(ChanReader {
            rx,
            cur: Bytes::new(),
        });
        let staged = images
            .layers
            .stage_with(&images.content, &mut hr, false, false);
        // What the unpacking left unread (or everything after a failure)
        // still counts for the digest.
        let drained = std::io::copy(&mut hr, &mut std::io::sink());
        let digest = std::mem::take(&mut hr.hasher).digest();
        (staged, drained, digest)
    });
    let mut body = resp.into_body();
    let mut got: i64 = 0;
    let mut last = Instant::now() - PROGRESS_EVERY;
    let mut failed: Option<EngineError> = None;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                failed = Some(EngineError::internal(format!(
                    "error pulling layer {}: {e}",
                    desc.digest
                )));
                break;
            }
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        got += data.len() as i64;
        crate::engine::metrics::get().pull_bytes(data.len() as u64);
        if desc.size > 0 && got > desc.size {
            failed = Some(verification_failed(&desc.digest));
            break;
        }
        if tx.send(data).await.is_err() {
            break;
        }
        if last.elapsed() >= PROGRESS_EVERY || got == total {
            last = Instant::now();
            out.send(JsonMessage::progress_bar("Downloading", &id, got, total))
                .await;
        }
    }
    drop(tx);
    let (staged, drained, digest) = worker
        .await
        .map_err(|e| EngineError::internal(format!("layer worker failed: {e}")))?;
    if let Some(e) = failed {
        return Err(e);
    }
    out.send(JsonMessage::layer_status("Verifying Checksum", &id))
        .await;
    if digest != desc.digest || (desc.size > 0 && got != desc.size) {
        return Err(verification_failed(&desc.digest));
    }
    drained.map_err(|e| EngineError::internal(format!("reading layer {}: {e}", desc.digest)))?;
    let staged = staged?;
    out.send(JsonMessage::layer_status("Download complete", &id))
        .await;
    Ok(staged)
}

pub(super) async fn fetch_config(s: &Session, path: &str, desc: &Descriptor) -> Result<Bytes> {
    let url = s.url(&format!("/v2/{path}/blobs/{}", desc.digest));
    let resp = s.request(Method::GET, &url, &[], None).await?;
    if resp.status() != StatusCode::OK {
        let e = RegistryError::from_response(resp).await;
        return Err(EngineError::internal(format!("Get \"{url}\": {e}")));
    }
    let b = read_body(resp, MAX_CONFIG).await?;
    if sha256_digest(&b) != desc.digest {
        return Err(EngineError::internal(format!(
            "image config verification failed for digest {}",
            desc.digest
        )));
    }
    Ok(b)
}

pub(super) fn is_index(mt: &str) -> bool {
    mt == spec::MT_OCI_INDEX || mt == spec::MT_DOCKER_LIST
}

impl PreparedPull {
    /// Phase two: the progress stream. Returns whether anything changed
    /// locally (`Downloaded newer image` rather than `Image is up to date`).
    pub async fn run(self, out: Progress) -> Result<()> {
        let mut updated = false;
        let PreparedPull {
            regs,
            session,
            reference,
            platform,
            targets,
        } = self;
        for (r, first) in targets {
            let res = pull_one(&regs, &session, &r, first, platform.as_ref(), &out).await;
            match res {
                Ok(u) => updated |= u,
                Err(e) => {
                    // Blobs and layers nobody took are garbage now.
                    let images = regs.images.clone();
                    let _ = tokio::task::spawn_blocking(move || images.collect_garbage()).await;
                    return Err(not_401(e));
                }
            }
        }
        let shown = reference.familiar();
        out.send(JsonMessage::status(if updated {
            format!("Status: Downloaded newer image for {shown}")
        } else {
            format!("Status: Image is up to date for {shown}")
        }))
        .await;
        Ok(())
    }
}

async fn pull_one(
    regs: &Arc<Registries>,
    session: &Arc<Session>,
    r: &Reference,
    first: Option<Fetched>,
    platform: Option<&Platform>,
    out: &Progress,
) -> Result<bool> {
    let top = match first {
        Some(f) => f,
        None => fetch_manifest(session, r, &tag_or_digest(r)).await?,
    };
    out.send(JsonMessage::status_id(
        format!("Pulling from {}", r.path),
        tag_or_digest(r),
    ))
    .await;
    let top_digest = top.digest.clone();
    let from_index = is_index(&top.media_type);
    let m = if from_index {
        let idx: spec::Index = serde_json::from_slice(&top.bytes)
            .map_err(|e| EngineError::internal(format!("invalid image index: {e}")))?;
        let want = platform.cloned().unwrap_or_else(Platform::host);
        let pick = idx
            .manifests
            .iter()
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| want.matches(&p.os, &p.architecture, p.variant.as_deref()))
                    && !is_index(&d.media_type)
            })
            .ok_or_else(|| {
                EngineError::not_found(format!(
                    "no matching manifest for {want} in the manifest list entries"
                ))
            })?;
        fetch_manifest(session, r, &pick.digest).await?
    } else {
        top
    };
    if m.media_type == MT_DOCKER_SCHEMA1 || m.media_type == MT_DOCKER_SCHEMA1_SIGNED {
        return Err(EngineError::invalid(format!(
            "Docker Image Format v1 and Docker Image manifest version 2, schema 1 support has been removed. Suggest the author of {} to upgrade the image to the OCI Format or Docker Image manifest v2, schema 2.",
            r.familiar()
        )));
    }
    if is_index(&m.media_type) {
        return Err(EngineError::invalid(
            "nested image indexes are not supported",
        ));
    }
    let manifest: Manifest = serde_json::from_slice(&m.bytes)
        .map_err(|e| EngineError::internal(format!("invalid manifest: {e}")))?;
    if manifest.schema_version != 2 {
        return Err(EngineError::invalid(format!(
            "unsupported manifest schema version {}",
            manifest.schema_version
        )));
    }
    let config = fetch_config(session, &r.path, &manifest.config).await?;
    let spec = ImageSpec::parse(&config)?;
    if let (Some(p), false) = (platform, from_index) {
        if !p.matches(&spec.os, &spec.architecture, spec.variant.as_deref()) {
            let actual = Platform::new(&spec.os, &spec.architecture, spec.variant.as_deref());
            return Err(EngineError::not_found(format!(
                "image with reference {} was found but its platform ({actual}) does not match the specified platform ({p})",
                r.familiar()
            )));
        }
    }
    if spec.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(EngineError::internal(
            "layers from manifest don't match image configuration",
        ));
    }
    let id = manifest.config.digest.clone();
    let held = if regs.images.get(&id).is_some() {
        Vec::new()
    } else {
        fetch_layers(regs, session, r, &manifest, &spec, out).await?
    };
    // The requested tag (or digest) and `name@<manifest digest>`.
    let mut refs = vec![r.clone()];
    if r.digest.is_none() {
        let mut d = r.without_digest();
        d.tag = None;
        d.digest = Some(top_digest.clone());
        refs.push(d);
    }
    let updated = regs.images.reference_target(r).as_deref() != Some(id.as_str());
    let images = regs.images.clone();
    let img = tokio::task::spawn_blocking(move || images.create_image(&config, &refs))
        .await
        .map_err(|e| EngineError::internal(format!("worker failed: {e}")))??;
    drop(held);
    regs.images.publish("pull", &img, &r.familiar());
    out.send(JsonMessage::status(format!("Digest: {top_digest}")))
        .await;
    Ok(updated)
}

/// Downloads the layers the store lacks and commits them bottom first.
/// Returns leases on every layer of the image.
async fn fetch_layers(
    regs: &Registries,
    session: &Arc<Session>,
    r: &Reference,
    manifest: &Manifest,
    spec: &ImageSpec,
    out: &Progress,
) -> Result<Vec<LayerInfo>> {
    let chains = spec::chain_ids(&spec.rootfs.diff_ids);
    let mut held: Vec<Option<LayerInfo>> = Vec::with_capacity(chains.len());
    for (c, desc) in chains.iter().zip(&manifest.layers) {
        let have = regs.images.layers.lease(c);
        let msg = if have.is_some() {
            "Already exists"
        } else {
            "Pulling fs layer"
        };
        out.send(JsonMessage::layer_status(msg, short(&desc.digest)))
            .await;
        held.push(have);
    }
    let sem = Arc::new(Semaphore::new(regs.max_concurrent_downloads()));
    let mut tasks: Vec<Option<tokio::task::JoinHandle<Result<StagedLayer>>>> = Vec::new();
    for (i, desc) in manifest.layers.iter().enumerate() {
        if held[i].is_some() {
            tasks.push(None);
            continue;
        }
        let permit = match sem.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                out.send(JsonMessage::layer_status("Waiting", short(&desc.digest)))
                    .await;
                None
            }
        };
        let (images, s, o, d, sem) = (
            regs.images.clone(),
            session.clone(),
            out.clone(),
            desc.clone(),
            sem.clone(),
        );
        let path = r.path.clone();
        tasks.push(Some(tokio::spawn(async move {
            let _permit = match permit {
                Some(p) => p,
                None => sem
                    .acquire_owned()
                    .await
                    .map_err(|_| EngineError::internal("download queue closed"))?,
            };
            download(images, s, path, d, o).await
        })));
    }
    let abort_all = |tasks: &mut Vec<Option<tokio::task::JoinHandle<Result<StagedLayer>>>>| {
        for t in tasks.iter().flatten() {
            t.abort();
        }
    };
    let mut parent: Option<String> = None;
    let mut done: Vec<LayerInfo> = Vec::with_capacity(chains.len());
    for i in 0..chains.len() {
        if let Some(l) = held[i].take() {
            parent = Some(l.chain_id.clone());
            done.push(l);
            continue;
        }
        let desc = &manifest.layers[i];
        let id = short(&desc.digest);
        let Some(handle) = tasks[i].take() else {
            continue;
        };
        let staged = match handle.await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                abort_all(&mut tasks);
                return Err(e);
            }
            Err(e) => {
                abort_all(&mut tasks);
                return Err(EngineError::internal(format!("layer download failed: {e}")));
            }
        };
        let want = &spec.rootfs.diff_ids[i];
        if staged.diff_id.as_deref() != Some(want.as_str()) {
            abort_all(&mut tasks);
            return Err(EngineError::internal(format!(
                "layer {} has diff ID {}, but the image config says {want}",
                desc.digest,
                staged.diff_id.as_deref().unwrap_or("?")
            )));
        }
        out.send(JsonMessage::progress_bar(
            "Extracting",
            &id,
            desc.size,
            desc.size,
        ))
        .await;
        let images = regs.images.clone();
        let p = parent.clone();
        let committed = tokio::task::spawn_blocking(move || {
            images.layers.sync()?;
            images.layers.commit(p.as_deref(), staged)
        })
        .await
        .map_err(|e| EngineError::internal(format!("worker failed: {e}")));
        let info = match committed {
            Ok(Ok(info)) => info,
            Ok(Err(e)) | Err(e) => {
                abort_all(&mut tasks);
                return Err(e);
            }
        };
        if let Err(e) = regs.metadata.add(
            want,
            BlobSum {
                digest: desc.digest.clone(),
                media_type: desc.media_type.clone(),
                size: desc.size,
                domain: r.domain.clone(),
                repo: r.path.clone(),
            },
        ) {
            tracing::warn!(error = %e, "recording distribution metadata");
        }
        out.send(JsonMessage::layer_status("Pull complete", &id))
            .await;
        parent = Some(info.chain_id.clone());
        done.push(info);
    }
    Ok(done)
}
