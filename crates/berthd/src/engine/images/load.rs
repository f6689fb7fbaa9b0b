//! `docker load`: a docker-archive (`manifest.json`) or an OCI image layout
//! (`index.json`), gzip-compressed or not, read as one stream.
//!
//! The archive is read once, front to back: small files (JSON) stay in
//! memory, large ones stream into the content store while a worker hashes
//! them (verifying `blobs/sha256/<hex>` names) and unpacks those that look
//! like layers, as they arrive. Once the index is known the unpacked layers
//! are committed in order. A blob whose digest does not match its
//! name, or a layer whose diff ID does not match the config, fails the load
//! and leaves nothing behind.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};

use berth_api::jsonmessage::JsonMessage;

use super::content::{sha256_digest, BlobWriter, HashReader};
use super::feed::{self, FeedReader};
use super::layers::{LayerInfo, StagedLayer};
use super::lease::Lease;
use super::reference::Reference;
use super::spec::{self, ArchiveManifestEntry, ImageSpec, Manifest};
use super::{Image, ImageService};
use crate::engine::fs;
use crate::engine::host::go_arch;
use crate::engine::{EngineError, Result};

/// Files up to this size are kept in memory (configs, manifests, indexes).
const SMALL: u64 = 1 << 20;
/// Configs and manifests larger than this are refused.
const MAX_JSON: u64 = 16 << 20;
const PROGRESS_EVERY: u64 = 8 << 20;

enum Src {
    Mem(Vec<u8>),
    Blob { digest: String, size: u64 },
}

#[derive(Default)]
struct Archive {
    files: HashMap<String, Src>,
    links: HashMap<String, String>,
    leases: Vec<Lease>,
}

fn invalid(m: impl Into<String>) -> EngineError {
    EngineError::invalid(m)
}

/// `./a//b/` → `a/b`; `None` for names that climb out.
fn normalize(name: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(name);
    let mut out: Vec<&str> = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out.join("/"))
}

/// The digest a `blobs/<alg>/<hex>` path promises.
fn promised_digest(path: &str) -> Option<String> {
    let rest = path.strip_prefix("blobs/sha256/")?;
    (rest.len() == 64 && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| format!("sha256:{rest}"))
}

/// Reads until `buf` is full or the reader ends; the bytes read.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Whether a blob's first bytes look like a layer: gzip, zstd or a tar
/// header (`ustar` magic). Configs and manifests start with `{`.
fn looks_like_layer(head: &[u8]) -> bool {
    matches!(
        fs::detect_compression(head),
        fs::Compression::Gzip | fs::Compression::Zstd
    ) || head.get(257..262) == Some(b"ustar".as_slice())
}

impl Archive {
    fn resolve(&self, path: &str) -> Option<&Src> {
        let mut p = normalize(path.as_bytes())?;
        for _ in 0..16 {
            if let Some(s) = self.files.get(&p) {
                return Some(s);
            }
            let target = self.links.get(&p)?;
            let dir = p.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            p = if target.starts_with('/') {
                normalize(target.as_bytes())?
            } else {
                normalize(format!("{dir}/{target}").as_bytes())?
            };
        }
        None
    }

    fn read_small(&self, svc: &ImageService, path: &str) -> Result<Vec<u8>> {
        match self.resolve(path) {
            Some(Src::Mem(b)) => Ok(b.clone()),
            Some(Src::Blob { digest, size }) => {
                if *size > MAX_JSON {
                    return Err(invalid(format!("invalid archive: {path} is too large")));
                }
                let mut v = Vec::new();
                svc.content.open_blob(digest)?.read_to_end(&mut v)?;
                Ok(v)
            }
            None => Err(invalid(format!(
                "invalid archive: {path} not found in the archive"
            ))),
        }
    }
}

/// Counts bytes through a reader and reports progress.
struct Progress<'a, R> {
    inner: R,
    done: u64,
    last: u64,
    total: u64,
    id: String,
    out: Option<&'a mut dyn FnMut(JsonMessage)>,
}

impl<R: Read> Read for Progress<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if self.done - self.last >= PROGRESS_EVERY {
            self.last = self.done;
            if let Some(out) = self.out.as_mut() {
                out(JsonMessage::progress(
                    "Loading layer",
                    &self.id,
                    self.done as i64,
                    Some(self.total as i64),
                ));
            }
        }
        Ok(n)
    }
}

/// A large file handed from `ingest` to a worker as it arrives; its
/// writer (the bytes written to the content store) comes at the end.
struct Job {
    path: String,
    feed: FeedReader<BlobWriter>,
    promised: Option<String>,
    layer: bool,
}

/// What a worker made of a [`Job`].
struct Ingested {
    path: String,
    digest: String,
    size: u64,
    lease: Lease,
    /// The layer unpacked from it, when it looked like one.
    staged: Option<Result<StagedLayer>>,
}

struct Candidate {
    config: Vec<u8>,
    layers: Vec<String>,
    tags: Vec<Reference>,
}

impl ImageService {
    /// `POST /images/load`. Progress (and, unless `quiet`, per-layer
    /// progress) goes to `out`; the loaded images are returned.
    pub fn load<R: Read>(
        &self,
        reader: R,
        quiet: bool,
        out: &mut dyn FnMut(JsonMessage),
    ) -> Result<Vec<Arc<Image>>> {
        let result = self.load_inner(reader, quiet, out);
        // Blobs and layers this load made but no image took are garbage now
        // (leases were dropped with the archive).
        if let Err(e) = self.collect_garbage() {
            tracing::warn!(error = %e, "collecting after load");
        }
        result
    }

    fn load_inner<R: Read>(
        &self,
        reader: R,
        quiet: bool,
        out: &mut dyn FnMut(JsonMessage),
    ) -> Result<Vec<Arc<Image>>> {
        // The receiving thread only parses the archive and writes large
        // files to disk, handing each one's bytes on as they arrive (see
        // `feed`); two workers hash them (verifying `blobs/sha256/<hex>`
        // names) and, when the file looks like a layer, unpack it in the
        // same pass. A single stream cannot be split, but layers can: a
        // worker starts on a layer while it arrives, and the next layer goes
        // to the other worker, which keeps both cores busy.
        let results: Mutex<Vec<Result<Ingested>>> = Mutex::new(Vec::new());
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(4);
        let rx = Mutex::new(rx);
        let chunks = feed::Chunks::default();
        let ar = std::thread::scope(|scope| {
            for _ in 0..2 {
                let (rx, results) = (&rx, &results);
                scope.spawn(move || loop {
                    let job = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
                        Ok(j) => j,
                        Err(_) => return,
                    };
                    let r = self.verify_and_stage(job);
                    results.lock().unwrap_or_else(|p| p.into_inner()).push(r);
                });
            }
            let r = self.ingest(reader, &tx, &chunks);
            // Closing the queue lets the workers finish and the scope end.
            drop(tx);
            r
        });
        let mut ar = ar?;
        let mut pre: HashMap<String, Result<StagedLayer>> = HashMap::new();
        for r in results.into_inner().unwrap_or_else(|p| p.into_inner()) {
            let ing = r?;
            if let Some(staged) = ing.staged {
                pre.insert(ing.digest.clone(), staged);
            }
            ar.leases.push(ing.lease);
            ar.files.insert(
                ing.path,
                Src::Blob {
                    digest: ing.digest,
                    size: ing.size,
                },
            );
        }
        // One flush for every layer unpacked above, before any is committed.
        if !pre.is_empty() {
            self.layers.sync()?;
        }
        let candidates = if ar.files.contains_key("manifest.json") {
            self.docker_archive(&ar)?
        } else if ar.files.contains_key("index.json") {
            self.oci_layout(&ar)?
        } else {
            return Err(invalid(
                "invalid archive: it has neither manifest.json (docker-archive) nor index.json (OCI layout)",
            ));
        };
        let mut loaded = Vec::new();
        for c in candidates {
            let img = self.load_one(&ar, c, quiet, out, &mut pre)?;
            loaded.push(img);
        }
        Ok(loaded)
    }

    /// Hashes a large file as `ingest` hands it over and (if it looks like
    /// a layer) unpacks it on the way, then commits the blob.
    fn verify_and_stage(&self, job: Job) -> Result<Ingested> {
        let mut feed = job.feed;
        let mut hr = HashReader::new(&mut feed);
        let staged = job
            .layer
            .then(|| self.layers.stage_with(&self.content, &mut hr, true, false));
        // Whatever the unpacking left unread still counts for the digest.
        std::io::copy(&mut hr, &mut std::io::sink())
            .map_err(|e| invalid(format!("invalid archive: reading {}: {e}", job.path)))?;
        let digest = std::mem::take(&mut hr.hasher).digest();
        let writer = feed.end().ok_or_else(|| {
            invalid(format!(
                "invalid archive: reading {}: it ended early",
                job.path
            ))
        })?;
        let (digest, size, lease) = writer
            .commit_hashed(digest, job.promised.as_deref())
            .map_err(|e| invalid(format!("invalid archive: {}: {e}", job.path)))?;
        Ok(Ingested {
            path: job.path,
            digest,
            size,
            lease,
            staged,
        })
    }

    /// Reads the whole archive once.
    fn ingest<R: Read>(
        &self,
        reader: R,
        jobs: &SyncSender<Job>,
        chunks: &feed::Chunks,
    ) -> Result<Archive> {
        let (_, rd) =
            fs::decompress(reader).map_err(|e| invalid(format!("invalid archive: {e}")))?;
        let mut tar = tar::Archive::new(rd);
        let mut ar = Archive::default();
        let entries = tar
            .entries()
            .map_err(|e| invalid(format!("invalid archive: {e}")))?;
        for e in entries {
            let mut e = e.map_err(|e| invalid(format!("invalid archive: {e}")))?;
            let Some(path) = normalize(&e.path_bytes()) else {
                continue;
            };
            match e.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {}
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    if let Some(t) = e.link_name_bytes() {
                        let t = String::from_utf8_lossy(&t).into_owned();
                        // Hard link names are archive paths; symlinks are relative.
                        let t = if e.header().entry_type() == tar::EntryType::Link {
                            format!("/{t}")
                        } else {
                            t
                        };
                        ar.links.insert(path, t);
                    }
                    continue;
                }
                _ => continue,
            }
            let size = e.size();
            let promised = promised_digest(&path);
            if size <= SMALL {
                let mut v = Vec::with_capacity(size as usize);
                e.read_to_end(&mut v)
                    .map_err(|err| invalid(format!("invalid archive: reading {path}: {err}")))?;
                if let Some(p) = &promised {
                    let got = sha256_digest(&v);
                    if *p != got {
                        return Err(invalid(format!(
                            "invalid archive: {path}: digest mismatch: expected {p}, got {got}"
                        )));
                    }
                }
                ar.files.insert(path, Src::Mem(v));
                continue;
            }
            let mut w = self.content.deferred_writer()?;
            let (mut tx, rx) = feed::channel(chunks);
            let name = path.clone();
            let mut job = Some((path, rx, promised));
            loop {
                let mut chunk = chunks.take();
                let n = fill(&mut e, &mut chunk)
                    .map_err(|err| invalid(format!("invalid archive: reading {name}: {err}")))?;
                if n == 0 {
                    break;
                }
                w.write_all(&chunk[..n])?;
                // The first chunk (a whole tar header at least, as the file
                // is larger than a chunk) tells whether it is a layer.
                if let Some((path, feed, promised)) = job.take() {
                    let layer = looks_like_layer(&chunk[..n.min(512)]);
                    let job = Job {
                        path,
                        feed,
                        promised,
                        layer,
                    };
                    if jobs.send(job).is_err() {
                        return Err(EngineError::internal("load workers stopped"));
                    }
                }
                tx.send(chunk, n);
            }
            tx.finish(w);
        }
        Ok(ar)
    }

    fn docker_archive(&self, ar: &Archive) -> Result<Vec<Candidate>> {
        let m = ar.read_small(self, "manifest.json")?;
        let entries: Vec<ArchiveManifestEntry> = serde_json::from_slice(&m)
            .map_err(|e| invalid(format!("invalid archive: manifest.json: {e}")))?;
        entries
            .into_iter()
            .map(|e| {
                let tags = e
                    .repo_tags
                    .unwrap_or_default()
                    .iter()
                    .map(|t| Reference::parse(t).map(Reference::with_default_tag))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Candidate {
                    config: ar.read_small(self, &e.config)?,
                    layers: e.layers,
                    tags,
                })
            })
            .collect()
    }

    fn oci_layout(&self, ar: &Archive) -> Result<Vec<Candidate>> {
        let blob_path = |d: &str| -> Result<String> {
            let (alg, hex) = d
                .split_once(':')
                .ok_or_else(|| invalid(format!("invalid archive: bad digest {d:?}")))?;
            Ok(format!("blobs/{alg}/{hex}"))
        };
        let read_json = |path: &str| -> Result<serde_json::Value> {
            let b = ar.read_small(self, path)?;
            serde_json::from_slice(&b).map_err(|e| invalid(format!("invalid archive: {path}: {e}")))
        };
        let index: spec::Index = serde_json::from_value(read_json("index.json")?)
            .map_err(|e| invalid(format!("invalid archive: index.json: {e}")))?;
        let mut out = Vec::new();
        for desc in index.manifests {
            let mut tags = Vec::new();
            let ann = desc.annotations.clone().unwrap_or_default();
            if let Some(n) = ann.get(spec::ANNOTATION_CONTAINERD_NAME) {
                tags.push(Reference::parse(n)?.with_default_tag());
            } else if let Some(n) = ann.get(spec::ANNOTATION_REF_NAME) {
                // A bare tag (`latest`) names no repository: only full
                // references count.
                if n.contains(['/', ':']) {
                    if let Ok(r) = Reference::parse(n) {
                        tags.push(r.with_default_tag());
                    }
                }
            }
            // Follow nested indexes to the manifest for this platform.
            let mut d = desc;
            for _ in 0..4 {
                let is_index =
                    d.media_type == spec::MT_OCI_INDEX || d.media_type == spec::MT_DOCKER_LIST;
                if !is_index {
                    break;
                }
                let nested: spec::Index =
                    serde_json::from_value(read_json(&blob_path(&d.digest)?)?).map_err(|e| {
                        invalid(format!("invalid archive: index {}: {e}", d.digest))
                    })?;
                let pick = nested
                    .manifests
                    .iter()
                    .find(|m| {
                        m.platform
                            .as_ref()
                            .is_some_and(|p| p.os == "linux" && p.architecture == go_arch())
                    })
                    .or_else(|| nested.manifests.first())
                    .cloned()
                    .ok_or_else(|| invalid("invalid archive: an empty image index"))?;
                d = pick;
            }
            let m: Manifest = serde_json::from_value(read_json(&blob_path(&d.digest)?)?)
                .map_err(|e| invalid(format!("invalid archive: manifest {}: {e}", d.digest)))?;
            let layers = m
                .layers
                .iter()
                .map(|l| blob_path(&l.digest))
                .collect::<Result<Vec<_>>>()?;
            out.push(Candidate {
                config: ar.read_small(self, &blob_path(&m.config.digest)?)?,
                layers,
                tags,
            });
        }
        Ok(out)
    }

    fn load_one(
        &self,
        ar: &Archive,
        c: Candidate,
        quiet: bool,
        out: &mut dyn FnMut(JsonMessage),
        pre: &mut HashMap<String, Result<StagedLayer>>,
    ) -> Result<Arc<Image>> {
        let spec = ImageSpec::parse(&c.config)?;
        let diff_ids = &spec.rootfs.diff_ids;
        if diff_ids.len() != c.layers.len() {
            return Err(invalid(format!(
                "invalid manifest, layers length mismatch: expected {}, got {}",
                diff_ids.len(),
                c.layers.len()
            )));
        }
        let mut held: Vec<LayerInfo> = Vec::new();
        for (path, want) in c.layers.iter().zip(diff_ids) {
            let parent = held.last().map(|l| l.chain_id.clone());
            let chain = spec::chain_id(parent.as_deref(), want);
            let short = want.strip_prefix("sha256:").unwrap_or(want)[..12].to_string();
            if let Some(info) = self.layers.lease(&chain) {
                held.push(info);
                continue;
            }
            let src = ar
                .resolve(path)
                .ok_or_else(|| invalid(format!("invalid archive: layer {path} not found")))?;
            let (total, staged) = match src {
                Src::Mem(b) => {
                    let total = b.len() as u64;
                    let p = Progress {
                        inner: std::io::Cursor::new(b.as_slice()),
                        done: 0,
                        last: 0,
                        total,
                        id: short.clone(),
                        out: (!quiet).then_some(&mut *out),
                    };
                    (total, self.layers.stage(&self.content, p, false)?)
                }
                Src::Blob { digest, size } if pre.contains_key(digest) => {
                    let mut staged = pre
                        .remove(digest)
                        .unwrap_or_else(|| Err(invalid("lost layer")))?;
                    if staged.diff_id.is_none() {
                        staged.diff_id = Some(digest.clone());
                    }
                    (*size, staged)
                }
                Src::Blob { digest, size } => {
                    let f =
                        std::io::BufReader::with_capacity(1 << 20, self.content.open_blob(digest)?);
                    let p = Progress {
                        inner: f,
                        done: 0,
                        last: 0,
                        total: *size,
                        id: short.clone(),
                        out: (!quiet).then_some(&mut *out),
                    };
                    let mut staged = self.layers.stage(&self.content, p, true)?;
                    if staged.diff_id.is_none() {
                        // Stored uncompressed: the blob's digest is the diff ID.
                        staged.diff_id = Some(digest.clone());
                    }
                    (*size, staged)
                }
            };
            let got = staged.diff_id.clone().unwrap_or_default();
            if &got != want {
                return Err(invalid(format!(
                    "invalid archive: layer {path} has diff ID {got}, but the image config says {want}"
                )));
            }
            if !quiet {
                out(JsonMessage::progress(
                    "Loading layer",
                    &short,
                    total as i64,
                    Some(total as i64),
                ));
            }
            held.push(self.layers.commit(parent.as_deref(), staged)?);
        }
        let (img, moved) = self.create_image_moving(&c.config, &c.tags, None)?;
        drop(held);
        for (tag, old) in moved {
            out(JsonMessage::stream(format!(
                "The image {} already exists, renaming the old one with ID {old} to empty string\n",
                tag.familiar()
            )));
        }
        if c.tags.is_empty() {
            out(JsonMessage::stream(format!(
                "Loaded image ID: {}\n",
                img.id
            )));
        } else {
            for t in &c.tags {
                out(JsonMessage::stream(format!(
                    "Loaded image: {}\n",
                    t.familiar()
                )));
            }
        }
        self.publish("load", &img, &img.id);
        Ok(img)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_normalise() {
        assert_eq!(super::normalize(b"./a//b/").as_deref(), Some("a/b"));
        assert_eq!(super::normalize(b"a/../b").as_deref(), Some("b"));
        assert_eq!(super::normalize(b"../b"), None);
        assert_eq!(
            super::promised_digest(&format!("blobs/sha256/{}", "a".repeat(64))),
            Some(format!("sha256:{}", "a".repeat(64)))
        );
    }
}
