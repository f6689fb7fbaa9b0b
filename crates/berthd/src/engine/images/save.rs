//! `docker save`: one or many images as one tar that `docker load` and OCI
//! tools both read, laid out as Docker 25+ writes it: `oci-layout`,
//! `index.json` and `blobs/sha256/…` (an OCI image layout) plus
//! `manifest.json` and `repositories` (docker-archive) pointing at the same
//! blobs. Layers are the uncompressed tars kept in the content store, so
//! the archive streams at disk speed and every digest is the stored one.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};
use std::sync::Arc;

use serde_json::json;

use super::content::{digest_hex, sha256_digest};
use super::layers::LayerInfo;
use super::reference::{AnyRef, Reference};
use super::spec::{
    ArchiveManifestEntry, Descriptor, Index, ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME,
    MT_OCI_INDEX, MT_OCI_MANIFEST,
};
use super::{Image, ImageService};
use crate::engine::{EngineError, Result};

/// What to save, resolved up front (so a bad name fails before any byte
/// is sent) and pinned against concurrent removal.
pub struct SavePlan {
    entries: Vec<(Arc<Image>, Vec<Reference>)>,
    _pins: Vec<LayerInfo>,
}

impl SavePlan {
    pub fn images(&self) -> impl Iterator<Item = &Arc<Image>> {
        self.entries.iter().map(|(i, _)| i)
    }
}

fn header(path: &str, size: u64, dir: bool) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(if dir {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    h.set_mode(if dir { 0o755 } else { 0o644 });
    h.set_size(size);
    // Epoch mtimes: the same images give the same archive.
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    let _ = h.set_path(path);
    h.set_cksum();
    h
}

fn werr(e: io::Error) -> EngineError {
    EngineError::internal(format!("writing the archive: {e}"))
}

impl ImageService {
    pub fn prepare_save(&self, names: &[String]) -> Result<SavePlan> {
        if names.is_empty() {
            return Err(EngineError::invalid("no images specified"));
        }
        let mut entries: Vec<(Arc<Image>, Vec<Reference>)> = Vec::new();
        let mut add = |img: Arc<Image>, tag: Option<Reference>| {
            let pos = match entries.iter().position(|(i, _)| i.id == img.id) {
                Some(p) => p,
                None => {
                    entries.push((img, vec![]));
                    entries.len() - 1
                }
            };
            if let Some(t) = tag {
                if !entries[pos].1.contains(&t) {
                    entries[pos].1.push(t);
                }
            }
        };
        for name in names {
            match AnyRef::parse(name) {
                Ok(AnyRef::Named(r)) if r.is_name_only() => {
                    let tags = self.tags_of_repo(&r);
                    if tags.is_empty() {
                        add(self.resolve(name)?, None);
                    }
                    for (t, id) in tags {
                        if let Some(img) = self.get(&id) {
                            add(img, Some(t));
                        }
                    }
                }
                Ok(AnyRef::Named(r)) => {
                    let img = self.resolve(name)?;
                    let r = r.with_default_tag();
                    let named = self.read_index().refs.contains_key(&r.to_string());
                    add(img, (named && r.digest.is_none()).then_some(r));
                }
                _ => add(self.resolve(name)?, None),
            }
        }
        let mut pins = Vec::new();
        for (img, _) in &entries {
            for c in &img.chain_ids {
                pins.push(
                    self.layers
                        .lease(c)
                        .ok_or_else(|| EngineError::internal(format!("layer {c} is missing")))?,
                );
            }
        }
        Ok(SavePlan {
            entries,
            _pins: pins,
        })
    }

    /// Streams the archive for `plan` into `w`.
    pub fn write_save<W: Write>(&self, plan: &SavePlan, w: W) -> Result<W> {
        let mut b = tar::Builder::new(w);
        for d in ["blobs/", "blobs/sha256/"] {
            b.append(&header(d, 0, true), io::empty()).map_err(werr)?;
        }
        let mut written: HashSet<String> = HashSet::new();
        let mut put_bytes = |b: &mut tar::Builder<W>, digest: &str, bytes: &[u8]| -> Result<()> {
            if written.insert(digest.to_string()) {
                let path = format!("blobs/sha256/{}", digest_hex(digest)?);
                b.append(&header(&path, bytes.len() as u64, false), bytes)
                    .map_err(werr)?;
            }
            Ok(())
        };
        let mut index = Index {
            schema_version: 2,
            media_type: Some(MT_OCI_INDEX.into()),
            manifests: vec![],
        };
        let mut docker_manifest = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut blobs_done: HashSet<String> = HashSet::new();
        for (img, tags) in &plan.entries {
            for d in &img.config.rootfs.diff_ids {
                if !blobs_done.insert(d.clone()) {
                    continue;
                }
                let f = self.content.open_blob(d)?;
                let size = f.metadata()?.len();
                let path = format!("blobs/sha256/{}", digest_hex(d)?);
                let rd = io::BufReader::with_capacity(1 << 20, f);
                b.append(&header(&path, size, false), rd).map_err(werr)?;
            }
            put_bytes(&mut b, &img.id, img.raw_config.as_bytes())?;
            let mdigest = sha256_digest(img.manifest.as_bytes());
            put_bytes(&mut b, &mdigest, img.manifest.as_bytes())?;
            let desc = |ann: Option<BTreeMap<String, String>>| Descriptor {
                media_type: MT_OCI_MANIFEST.into(),
                digest: mdigest.clone(),
                size: img.manifest.len() as i64,
                annotations: ann,
                platform: None,
            };
            if tags.is_empty() {
                index.manifests.push(desc(None));
            }
            for t in tags {
                let mut ann = BTreeMap::new();
                ann.insert(ANNOTATION_CONTAINERD_NAME.to_string(), t.to_string());
                ann.insert(
                    ANNOTATION_REF_NAME.to_string(),
                    t.tag.clone().unwrap_or_default(),
                );
                index.manifests.push(desc(Some(ann)));
                if let Some(top) = img.config.rootfs.diff_ids.last() {
                    repositories.entry(t.familiar_name()).or_default().insert(
                        t.tag.clone().unwrap_or_default(),
                        digest_hex(top)?.to_string(),
                    );
                }
            }
            docker_manifest.push(ArchiveManifestEntry {
                config: format!("blobs/sha256/{}", digest_hex(&img.id)?),
                repo_tags: (!tags.is_empty())
                    .then(|| tags.iter().map(Reference::familiar).collect()),
                layers: img
                    .config
                    .rootfs
                    .diff_ids
                    .iter()
                    .map(|d| Ok(format!("blobs/sha256/{}", digest_hex(d)?)))
                    .collect::<Result<Vec<_>>>()?,
            });
        }
        let files: Vec<(&str, Vec<u8>)> = vec![
            ("index.json", serde_json::to_vec(&index)?),
            ("manifest.json", serde_json::to_vec(&docker_manifest)?),
            (
                "oci-layout",
                serde_json::to_vec(&json!({"imageLayoutVersion": "1.0.0"}))?,
            ),
        ];
        for (name, bytes) in files {
            b.append(&header(name, bytes.len() as u64, false), bytes.as_slice())
                .map_err(werr)?;
        }
        if !repositories.is_empty() {
            let bytes = serde_json::to_vec(&repositories)?;
            b.append(
                &header("repositories", bytes.len() as u64, false),
                bytes.as_slice(),
            )
            .map_err(werr)?;
        }
        let w = b.into_inner().map_err(werr)?;
        for (img, _) in &plan.entries {
            self.publish("save", img, &img.id);
        }
        Ok(w)
    }
}
