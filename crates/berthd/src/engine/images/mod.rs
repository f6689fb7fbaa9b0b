//! Images: the local half of Docker's image management.
//!
//! [`ImageService`] owns the content store (blobs by digest), the layer
//! store (unpacked layers by chain ID) and an in-memory index of images and
//! references that serves every read. Every change is one redb transaction
//! (`images` and `tags` tables) applied to the index after it commits.

pub mod content;
mod delete;
mod feed;
mod import;
pub mod layers;
pub mod lease;
mod load;
mod query;
pub mod reference;
mod save;
pub mod spec;

use crate::engine::fs::snapshot::Lowers;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::{Deserialize, Serialize};

use super::events::EventBus;
use super::store::{Store, Table};
use super::{EngineError, Result};
use content::{digest_hex, sha256_digest, ContentStore};
pub use delete::DeleteOptions;
pub use import::{apply_changes, ImportOptions};
pub use layers::{LayerInfo, LayerRecord, LayerStore};
pub use query::{parse_until, ImageDetails, ListOptions};
use reference::{AnyRef, Reference};
pub use save::SavePlan;
pub use spec::ImageSpec;

/// One image, as the index holds it. Immutable: a change of tags replaces
/// the `Arc` in the index.
#[derive(Debug, Clone)]
pub struct Image {
    /// `sha256:<hex>`: the digest of `raw_config`.
    pub id: String,
    /// The parsed config (`config.Env/Cmd/Entrypoint/...`, `rootfs.diff_ids`,
    /// `history`, `os`, `architecture`, `created`).
    pub config: ImageSpec,
    /// The config exactly as stored (its digest is the ID).
    pub raw_config: String,
    /// The OCI manifest of the image's uncompressed form.
    pub manifest: String,
    /// Chain IDs, bottom layer first.
    pub chain_ids: Vec<String>,
    /// Familiar `name:tag` references, sorted.
    pub repo_tags: Vec<String>,
    /// Familiar `name@digest` references, sorted.
    pub repo_digests: Vec<String>,
    /// Sum of the layer sizes.
    pub size: i64,
    pub last_tag_time: Option<String>,
    /// The image this one was built on (classic builder steps), as moby
    /// keeps it beside the config: untagged parents with children are
    /// intermediate images, hidden from `images` and removed with their
    /// last child.
    pub parent: Option<String>,
}

impl Image {
    /// The 12-character short ID.
    pub fn short_id(&self) -> &str {
        let hex = self.id.strip_prefix("sha256:").unwrap_or(&self.id);
        &hex[..hex.len().min(12)]
    }
}

/// A container that uses an image, as the containers side reports it.
#[derive(Debug, Clone)]
pub struct ImageUser {
    pub container_id: String,
    pub running: bool,
}

/// Tags that moved to a new image, each with the ID it left.
type MovedTags = Vec<(Reference, String)>;

/// Set by the containers side: the containers using an image ID.
pub type UsageChecker = Box<dyn Fn(&str) -> Vec<ImageUser> + Send + Sync>;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ImageRecord {
    config: String,
    manifest: String,
    #[serde(default)]
    last_tag_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parent: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TagRecord {
    id: String,
}

#[derive(Default)]
struct Index {
    images: HashMap<String, Arc<Image>>,
    /// Full reference string → (reference, image ID).
    refs: BTreeMap<String, (Reference, String)>,
}

impl Index {
    fn refs_of(&self, id: &str) -> Vec<Reference> {
        self.refs
            .values()
            .filter(|(_, i)| i == id)
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// Rebuilds an image's tag lists from the reference map.
    fn refresh(&mut self, id: &str) {
        let refs = self.refs_of(id);
        if let Some(img) = self.images.get(id) {
            let mut new = (**img).clone();
            new.repo_tags = refs
                .iter()
                .filter(|r| r.tag.is_some() && r.digest.is_none())
                .map(Reference::familiar)
                .collect();
            new.repo_digests = refs
                .iter()
                .filter(|r| r.digest.is_some())
                .map(Reference::familiar)
                .collect();
            new.repo_tags.sort();
            new.repo_digests.sort();
            self.images.insert(id.to_string(), Arc::new(new));
        }
    }
}

pub struct ImageService {
    data_root: PathBuf,
    store: Arc<Store>,
    events: Arc<EventBus>,
    pub content: ContentStore,
    pub layers: LayerStore,
    index: RwLock<Index>,
    /// Serialises changes (create, tag, delete, collection) so each sees a
    /// stable index; reads never take it.
    write: Mutex<()>,
    usage: RwLock<Option<UsageChecker>>,
}

pub use crate::engine::clock::now as now_rfc3339;

impl ImageService {
    pub fn open(data_root: &Path, store: Arc<Store>, events: Arc<EventBus>) -> Result<Self> {
        let content = ContentStore::open(data_root)?;
        let layers = LayerStore::open(data_root, store.clone())?;
        let svc = Self {
            data_root: data_root.to_path_buf(),
            store,
            events,
            content,
            layers,
            index: RwLock::new(Index::default()),
            write: Mutex::new(()),
            usage: RwLock::new(None),
        };
        svc.load_index()?;
        // Whatever an interrupted operation left unreferenced goes now.
        svc.collect_garbage()?;
        Ok(svc)
    }

    fn load_index(&self) -> Result<()> {
        let mut idx = Index::default();
        for (hex, rec) in self.store.load_all::<ImageRecord>(Table::Images)? {
            let id = format!("sha256:{hex}");
            match self.build_image(&id, &rec) {
                Ok(img) => {
                    idx.images.insert(id, Arc::new(img));
                }
                Err(e) => tracing::warn!(image = %id, error = %e, "skipping unusable image"),
            }
        }
        for (key, rec) in self.store.load_all::<TagRecord>(Table::Tags)? {
            match Reference::parse(&key) {
                Ok(r) if idx.images.contains_key(&rec.id) => {
                    idx.refs.insert(key, (r, rec.id));
                }
                _ => tracing::warn!(reference = %key, "skipping a dangling reference"),
            }
        }
        let ids: Vec<String> = idx.images.keys().cloned().collect();
        for id in ids {
            idx.refresh(&id);
        }
        *self.write_index() = idx;
        Ok(())
    }

    fn build_image(&self, id: &str, rec: &ImageRecord) -> Result<Image> {
        let config = ImageSpec::parse(rec.config.as_bytes())?;
        let chain_ids = spec::chain_ids(&config.rootfs.diff_ids);
        let mut size = 0i64;
        for c in &chain_ids {
            let l = self
                .layers
                .get(c)
                .ok_or_else(|| EngineError::internal(format!("layer {c} of {id} is missing")))?;
            size += l.size as i64;
        }
        Ok(Image {
            id: id.to_string(),
            config,
            raw_config: rec.config.clone(),
            manifest: rec.manifest.clone(),
            chain_ids,
            repo_tags: vec![],
            repo_digests: vec![],
            size,
            last_tag_time: rec.last_tag_time.clone(),
            parent: rec.parent.clone(),
        })
    }

    fn read_index(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_index(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    fn write_lock(&self) -> MutexGuard<'_, ()> {
        self.write.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn data_root(&self) -> &Path {
        &self.data_root
    }

    /// Every image, in no particular order.
    pub fn images(&self) -> Vec<Arc<Image>> {
        self.read_index().images.values().cloned().collect()
    }

    pub fn count(&self) -> usize {
        self.read_index().images.len()
    }

    /// An image by full ID (`sha256:<hex>`).
    pub fn get(&self, id: &str) -> Option<Arc<Image>> {
        self.read_index().images.get(id).cloned()
    }

    /// Finds an image as Docker does: a reference (`busybox` meaning
    /// `busybox:latest`, `name@sha256:…`), a full ID with or without
    /// `sha256:`, or an unambiguous ID prefix. A miss is NotFound with
    /// Docker's message (`No such image: busybox:latest`).
    pub fn resolve(&self, reference: &str) -> Result<Arc<Image>> {
        let idx = self.read_index();
        Self::lookup(&idx, reference)
    }

    fn lookup(idx: &Index, s: &str) -> Result<Arc<Image>> {
        let any = AnyRef::parse(s);
        match &any {
            Ok(AnyRef::Id(hex)) => {
                return idx
                    .images
                    .get(&format!("sha256:{hex}"))
                    .cloned()
                    .ok_or_else(|| reference::no_such_image(s));
            }
            Ok(AnyRef::Named(r)) => {
                let key = r.clone().with_default_tag().to_string();
                if let Some((_, id)) = idx.refs.get(&key) {
                    if let Some(img) = idx.images.get(id) {
                        return Ok(img.clone());
                    }
                }
            }
            Err(_) => {}
        }
        // A short ID, with or without `sha256:`.
        let prefix = s.strip_prefix("sha256:").unwrap_or(s);
        if !prefix.is_empty()
            && prefix.len() < 64
            && prefix
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            let full = format!("sha256:{prefix}");
            let mut hits = idx.images.iter().filter(|(id, _)| id.starts_with(&full));
            if let Some((_, img)) = hits.next() {
                if hits.next().is_some() {
                    return Err(EngineError::invalid(format!(
                        "ambiguous image ID prefix {s}: it matches more than one image"
                    )));
                }
                return Ok(img.clone());
            }
        }
        match any {
            Err(e) => Err(e.into()),
            Ok(_) => Err(reference::no_such_image(s)),
        }
    }

    /// The image a reference names exactly (no ID prefixes, no default
    /// tag), if any.
    pub fn reference_target(&self, r: &Reference) -> Option<String> {
        self.read_index()
            .refs
            .get(&r.to_string())
            .map(|(_, id)| id.clone())
    }

    /// Every reference (tags and digests) of a repository, with its image.
    pub fn references_by_name(&self, name: &Reference) -> Vec<(Reference, String)> {
        let n = name.name();
        self.read_index()
            .refs
            .values()
            .filter(|(r, _)| r.name() == n)
            .cloned()
            .collect()
    }

    /// The layer diff directories from TOP to BOTTOM, ready to be overlay
    /// `lowerdir`s.
    pub fn lower_dirs(&self, image_id: &str) -> Result<Vec<PathBuf>> {
        let img = self.resolve(image_id)?;
        img.chain_ids
            .iter()
            .rev()
            .map(|c| self.layers.diff_dir(c))
            .collect()
    }

    /// The short link names of the layers, TOP to BOTTOM: mount with the
    /// working directory at [`Self::short_links_dir`] and
    /// `lowerdir=NAME1:NAME2:…` to keep the option string short.
    pub fn lower_short_names(&self, image_id: &str) -> Result<Vec<String>> {
        let img = self.resolve(image_id)?;
        img.chain_ids
            .iter()
            .rev()
            .map(|c| {
                self.layers
                    .get(c)
                    .map(|r| r.short)
                    .ok_or_else(|| EngineError::internal(format!("layer {c} is missing")))
            })
            .collect()
    }

    /// The layers a root of `image_id` mounts (none for an empty ID:
    /// `FROM scratch`).
    pub fn lowers(&self, image_id: &str) -> Result<Lowers> {
        let links_dir = self.short_links_dir().to_path_buf();
        if image_id.is_empty() {
            return Ok(Lowers {
                links_dir,
                ..Lowers::default()
            });
        }
        Ok(Lowers {
            dirs: self.lower_dirs(image_id)?,
            short: self.lower_short_names(image_id)?,
            links_dir,
        })
    }

    /// `<data-root>/l`, where the short links live.
    pub fn short_links_dir(&self) -> &Path {
        self.layers.links_dir()
    }

    /// Creates a layer from a tar stream (plain, gzip or zstd) on top of the
    /// `parent` chain. The returned [`LayerInfo`] pins the layer until it is
    /// dropped: register the image with [`Self::create_image`] before that.
    pub fn create_layer<R: Read>(&self, parent: Option<&str>, reader: R) -> Result<LayerInfo> {
        self.layers.create(&self.content, parent, reader)
    }

    /// Registers an image from its config (whose `rootfs.diff_ids` must name
    /// layers already in the store, in order) and points `tags` at it.
    pub fn create_image(&self, config: &[u8], tags: &[Reference]) -> Result<Arc<Image>> {
        self.create_image_moving(config, tags, None)
            .map(|(img, _)| img)
    }

    /// As `create_image`, recording `parent` (an image ID) as the image's
    /// parent (the classic builder's step images).
    pub fn create_child_image(
        &self,
        config: &[u8],
        tags: &[Reference],
        parent: Option<&str>,
    ) -> Result<Arc<Image>> {
        self.create_image_moving(config, tags, parent)
            .map(|(img, _)| img)
    }

    /// Images whose parent is `id`.
    pub fn children(&self, id: &str) -> Vec<String> {
        self.read_index()
            .images
            .values()
            .filter(|i| i.parent.as_deref() == Some(id))
            .map(|i| i.id.clone())
            .collect()
    }

    /// As `create_image`, also returning each tag that moved here from
    /// another image, with that image's ID.
    fn create_image_moving(
        &self,
        config: &[u8],
        tags: &[Reference],
        parent: Option<&str>,
    ) -> Result<(Arc<Image>, MovedTags)> {
        let text = std::str::from_utf8(config)
            .map_err(|_| EngineError::invalid("invalid image config: not UTF-8"))?;
        let spec = ImageSpec::parse(config)?;
        let id = sha256_digest(config);
        let hex = digest_hex(&id)?.to_string();
        let chains = spec::chain_ids(&spec.rootfs.diff_ids);
        let _w = self.write_lock();
        let mut layer_blobs = Vec::new();
        for (c, d) in chains.iter().zip(&spec.rootfs.diff_ids) {
            if !self.layers.exists(c) {
                return Err(EngineError::invalid(format!(
                    "layer {d} of image {id} is not in the layer store"
                )));
            }
            layer_blobs.push((d.clone(), self.content.size(d).unwrap_or(0)));
        }
        let existing = self.read_index().images.get(&id).cloned();
        let rec = ImageRecord {
            config: text.to_string(),
            manifest: match &existing {
                Some(img) => img.manifest.clone(),
                None => spec::build_manifest(&id, config.len(), &layer_blobs),
            },
            last_tag_time: match (&existing, tags.is_empty()) {
                (_, false) => Some(now_rfc3339()),
                (Some(img), true) => img.last_tag_time.clone(),
                (None, true) => None,
            },
            parent: match (&existing, parent) {
                (_, Some(p)) if p != id => Some(p.to_string()),
                (Some(img), _) => img.parent.clone(),
                _ => None,
            },
        };
        let tags: Vec<Reference> = tags.iter().map(|t| t.clone().with_default_tag()).collect();
        let mut moved = Vec::new();
        {
            let idx = self.read_index();
            for t in &tags {
                if let Some((_, old)) = idx.refs.get(&t.to_string()) {
                    if *old != id {
                        moved.push((t.clone(), old.clone()));
                    }
                }
            }
        }
        self.store.write(|txn| {
            txn.put(Table::Images, &hex, &rec)?;
            for t in &tags {
                txn.put(Table::Tags, &t.to_string(), &TagRecord { id: id.clone() })?;
            }
            Ok(())
        })?;
        let img = self.build_image(&id, &rec)?;
        let mut idx = self.write_index();
        idx.images.insert(id.clone(), Arc::new(img));
        for t in &tags {
            idx.refs.insert(t.to_string(), (t.clone(), id.clone()));
        }
        idx.refresh(&id);
        for (_, old) in &moved {
            idx.refresh(old);
        }
        let img = idx
            .images
            .get(&id)
            .cloned()
            .ok_or_else(|| EngineError::internal("image vanished"))?;
        Ok((img, moved))
    }

    /// `POST /images/{name}/tag`: points `repo[:tag]` at the image.
    pub fn tag(&self, source: &str, repo: &str, tag: &str) -> Result<()> {
        if repo.is_empty() {
            return Err(EngineError::invalid(
                "repository name must have at least one component",
            ));
        }
        let target = Reference::parse_repo_tag(repo, tag)?;
        if target.digest.is_some() {
            return Err(EngineError::invalid(format!(
                "refusing to create a tag with a digest reference: {}",
                target.familiar()
            )));
        }
        let target = target.with_default_tag();
        let img = self.resolve(source)?;
        let _w = self.write_lock();
        let now = now_rfc3339();
        let rec = ImageRecord {
            config: img.raw_config.clone(),
            manifest: img.manifest.clone(),
            last_tag_time: Some(now.clone()),
            parent: img.parent.clone(),
        };
        self.store.write(|txn| {
            txn.put(Table::Images, digest_hex(&img.id)?, &rec)?;
            txn.put(
                Table::Tags,
                &target.to_string(),
                &TagRecord { id: img.id.clone() },
            )
        })?;
        {
            let mut idx = self.write_index();
            let old = idx
                .refs
                .insert(target.to_string(), (target.clone(), img.id.clone()));
            if let Some(i) = idx.images.get(&img.id) {
                let mut n = (**i).clone();
                n.last_tag_time = Some(now);
                idx.images.insert(img.id.clone(), Arc::new(n));
            }
            idx.refresh(&img.id);
            if let Some((_, old_id)) = old {
                idx.refresh(&old_id);
            }
        }
        self.publish("tag", &img, &target.familiar());
        Ok(())
    }

    /// Lets the containers side report which containers use an image.
    pub fn set_usage_checker(&self, f: UsageChecker) {
        *self.usage.write().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    pub fn users(&self, image_id: &str) -> Vec<ImageUser> {
        match &*self.usage.read().unwrap_or_else(|p| p.into_inner()) {
            Some(f) => f(image_id),
            None => vec![],
        }
    }

    /// An image event, with the image's labels as attributes (as Docker).
    pub(crate) fn publish(&self, action: &str, img: &Image, name: &str) {
        let mut attrs: HashMap<String, String> = img.config.labels().cloned().unwrap_or_default();
        attrs.insert("name".into(), name.to_string());
        self.events.publish("image", action, &img.id, attrs);
    }

    /// Removes layers no image references and blobs no layer needs, except
    /// what in-flight operations have leased. Returns the removed layers.
    pub fn collect_garbage(&self) -> Result<Vec<LayerRecord>> {
        let _w = self.write_lock();
        self.collect_locked()
    }

    fn collect_locked(&self) -> Result<Vec<LayerRecord>> {
        let used: HashSet<String> = self
            .read_index()
            .images
            .values()
            .flat_map(|i| i.chain_ids.iter().cloned())
            .collect();
        let removed = self.layers.collect(|c| used.contains(c))?;
        let needed: HashSet<String> = self.layers.all().into_iter().map(|r| r.diff_id).collect();
        for d in self.content.list()? {
            if !needed.contains(&d) && !self.content.is_leased(&d) {
                self.content.delete(&d)?;
            }
        }
        Ok(removed)
    }

    /// How many images use a layer (its reference count; see `layers.rs`
    /// for why it is derived rather than stored).
    pub fn layer_refcount(&self, chain_id: &str) -> usize {
        self.read_index()
            .images
            .values()
            .filter(|i| i.chain_ids.iter().any(|c| c == chain_id))
            .count()
    }

    /// Disk use of all layers (for `/system/df`).
    pub fn layers_size(&self) -> i64 {
        self.layers.all().iter().map(|l| l.size as i64).sum()
    }
}
