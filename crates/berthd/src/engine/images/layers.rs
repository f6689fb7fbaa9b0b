//! The layer store: each layer unpacked once under
//! `<data-root>/layers/<chain-id hex>/diff`, shared by every image that has
//! it. Records (diff ID, parent, size, short link name) live in redb's
//! `layers` table.
//!
//! Reference counts are derived, not stored: a layer's count is the number
//! of images whose chain includes it (the image service computes it from its
//! index), plus in-memory leases held by operations that made a layer but
//! have not yet registered the image. A stored counter could drift from the
//! truth after a crash between two transactions; a derived one cannot, and
//! collection after a crash needs no repair step.
//!
//! Every layer also gets a short symlink `<data-root>/l/<26 chars>` →
//! `../layers/<chain>/diff`, so a container's overlay mount can name 100+
//! lower dirs with relative paths and stay under the page-size limit of the
//! mount options.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::content::{digest_hex, ContentStore};
use super::lease::{Lease, Leases};
use super::spec::chain_id;
use crate::engine::fs::{self, Compression, UnpackOptions};
use crate::engine::store::{Store, Table};
use crate::engine::{EngineError, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerRecord {
    pub chain_id: String,
    pub diff_id: String,
    #[serde(default)]
    pub parent: Option<String>,
    /// Docker's layer size: bytes of the non-directory entries.
    pub size: u64,
    /// Name of the short link under `<data-root>/l`.
    pub short: String,
}

/// A layer that exists in the store, pinned by `lease` until the caller has
/// referenced it from an image (or gives up).
#[derive(Debug, Clone)]
pub struct LayerInfo {
    pub diff_id: String,
    pub chain_id: String,
    pub size: u64,
    pub lease: Lease,
}

/// A layer unpacked into a staging directory, not yet in the store.
/// Dropped without `commit`, it is removed.
pub struct StagedLayer {
    dir: PathBuf,
    /// The uncompressed stream's digest, when it was hashed here.
    pub diff_id: Option<String>,
    pub size: u64,
    pub compression: Compression,
    _blob: Option<Lease>,
    done: bool,
}

impl StagedLayer {
    pub fn diff_dir(&self) -> PathBuf {
        self.dir.join("diff")
    }
}

impl Drop for StagedLayer {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub struct LayerStore {
    root: PathBuf,
    links: PathBuf,
    store: Arc<Store>,
    index: Mutex<HashMap<String, LayerRecord>>,
    leases: Leases,
}

const SHORT_LEN: usize = 26;

fn short_name() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let raw = crate::engine::ids::random_hex(SHORT_LEN);
    raw.as_bytes()
        .chunks(2)
        .map(|c| {
            let b = u8::from_str_radix(std::str::from_utf8(c).unwrap_or("00"), 16).unwrap_or(0);
            ALPHABET[b as usize % ALPHABET.len()] as char
        })
        .collect()
}

fn syncfs(dir: &Path) -> Result<()> {
    let f = std::fs::File::open(dir)?;
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscall on a valid fd.
    if unsafe { libc::syncfs(f.as_raw_fd()) } < 0 {
        return Err(EngineError::internal(format!(
            "syncfs {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// A reader that copies what it reads into a blob writer.
struct Tee<'a, R> {
    inner: R,
    out: &'a mut super::content::BlobWriter,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        std::io::Write::write_all(self.out, &buf[..n])?;
        Ok(n)
    }
}

/// Staging directories and unrecorded layers: leftovers of a crash.
fn unfinished(root: &Path, known: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| !known(&format!("sha256:{}", e.file_name().to_string_lossy())))
        .map(|e| e.path())
        .collect()
}

/// What `LayerStore::open` would remove (for `berthd --check`): unfinished
/// layer directories and partial downloads.
pub fn leftovers(data_root: &Path, store: &Store) -> Result<Vec<(String, usize)>> {
    let recorded: std::collections::HashSet<String> = store
        .load_all::<LayerRecord>(Table::Layers)?
        .into_iter()
        .map(|(_, r)| r.chain_id)
        .collect();
    let mut out = Vec::new();
    let dirs = unfinished(&data_root.join("layers"), |c| recorded.contains(c));
    if !dirs.is_empty() {
        out.push((
            format!("{} unfinished layer directories", dirs.len()),
            dirs.len(),
        ));
    }
    let partial = std::fs::read_dir(data_root.join("content/tmp"))
        .map(|rd| rd.count())
        .unwrap_or(0);
    if partial > 0 {
        out.push((
            format!("{partial} partial downloads in content/tmp"),
            partial,
        ));
    }
    Ok(out)
}

impl LayerStore {
    pub fn open(data_root: &Path, store: Arc<Store>) -> Result<Self> {
        let root = data_root.join("layers");
        let links = data_root.join("l");
        for d in [&root, &links] {
            std::fs::create_dir_all(d)
                .map_err(|e| EngineError::internal(format!("creating {}: {e}", d.display())))?;
        }
        let mut index = HashMap::new();
        for (hex, rec) in store.load_all::<LayerRecord>(Table::Layers)? {
            if root.join(&hex).join("diff").is_dir() {
                index.insert(rec.chain_id.clone(), rec);
            } else {
                tracing::warn!(layer = %hex, "layer directory missing; forgetting the layer");
                store.delete(Table::Layers, &hex)?;
            }
        }
        for dir in unfinished(&root, |chain| index.contains_key(chain)) {
            tracing::info!(dir = %dir.display(), "removing unfinished layer directory");
            let _ = std::fs::remove_dir_all(dir);
        }
        let shorts: std::collections::HashSet<&str> =
            index.values().map(|r| r.short.as_str()).collect();
        for e in std::fs::read_dir(&links)?.flatten() {
            if !shorts.contains(e.file_name().to_string_lossy().as_ref()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(Self {
            root,
            links,
            store,
            index: Mutex::new(index),
            leases: Leases::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, LayerRecord>> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, chain_id: &str) -> Option<LayerRecord> {
        self.lock().get(chain_id).cloned()
    }

    pub fn exists(&self, chain_id: &str) -> bool {
        self.lock().contains_key(chain_id)
    }

    pub fn all(&self) -> Vec<LayerRecord> {
        self.lock().values().cloned().collect()
    }

    /// Pins an existing layer; `None` when it is not in the store.
    pub fn lease(&self, chain_id: &str) -> Option<LayerInfo> {
        let idx = self.lock();
        let rec = idx.get(chain_id)?;
        Some(LayerInfo {
            diff_id: rec.diff_id.clone(),
            chain_id: rec.chain_id.clone(),
            size: rec.size,
            lease: self.leases.acquire(chain_id),
        })
    }

    pub fn diff_dir(&self, chain_id: &str) -> Result<PathBuf> {
        Ok(self.root.join(digest_hex(chain_id)?).join("diff"))
    }

    /// The directory holding the short links.
    pub fn links_dir(&self) -> &Path {
        &self.links
    }

    /// Unpacks a layer stream (plain, gzip or zstd tar) into a staging
    /// directory. Unless `raw_is_stored` says the caller already keeps the
    /// exact stream as a blob, the uncompressed tar is hashed (giving the
    /// diff ID) and written to the content store as it is unpacked, so
    /// `save` can later stream the same bytes.
    pub fn stage<R: Read>(
        &self,
        content: &ContentStore,
        reader: R,
        raw_is_stored: bool,
    ) -> Result<StagedLayer> {
        self.stage_with(content, reader, raw_is_stored, true)
    }

    /// As `stage`; with `sync` false the caller must call [`Self::sync`]
    /// before committing (a load stages several layers at once, and
    /// concurrent `syncfs` calls would each wait for all the others' data).
    pub fn stage_with<R: Read>(
        &self,
        content: &ContentStore,
        reader: R,
        raw_is_stored: bool,
        sync: bool,
    ) -> Result<StagedLayer> {
        let dir = self
            .root
            .join(format!("tmp-{}", crate::engine::ids::random_hex(8)));
        std::fs::create_dir(&dir)
            .map_err(|e| EngineError::internal(format!("creating {}: {e}", dir.display())))?;
        let mut staged = StagedLayer {
            dir,
            diff_id: None,
            size: 0,
            compression: Compression::None,
            _blob: None,
            done: false,
        };
        let diff = staged.diff_dir();
        std::fs::create_dir(&diff)?;
        let opts = UnpackOptions {
            overlay_whiteouts: true,
        };
        let (compression, rd) = fs::decompress(reader)
            .map_err(|e| EngineError::invalid(format!("reading layer: {e}")))?;
        staged.compression = compression;
        if compression == Compression::None && raw_is_stored {
            staged.size = fs::unpack(rd, &diff, &opts)?.size;
        } else {
            let mut w = content.writer()?;
            let stats = {
                let tee = Tee {
                    inner: rd,
                    out: &mut w,
                };
                // The blob writer hashes what passes through it: that
                // digest is the diff ID.
                fs::unpack(tee, &diff, &opts)?
            };
            staged.size = stats.size;
            let (digest, _, lease) = w.commit(None)?;
            staged.diff_id = Some(digest);
            staged._blob = Some(lease);
        }
        // One flush for the whole layer rather than an fsync per file.
        if sync {
            syncfs(&staged.dir)?;
        }
        Ok(staged)
    }

    /// Flushes the file system holding the layers (see `stage_with`).
    pub fn sync(&self) -> Result<()> {
        syncfs(&self.root)
    }

    /// Moves a staged layer into the store on top of `parent` (a chain ID).
    /// When the resulting chain already exists the staged copy is dropped
    /// and the existing layer is returned.
    pub fn commit(&self, parent: Option<&str>, mut staged: StagedLayer) -> Result<LayerInfo> {
        let diff_id = staged
            .diff_id
            .clone()
            .ok_or_else(|| EngineError::internal("staged layer has no diff ID"))?;
        let chain = chain_id(parent, &diff_id);
        let hex = digest_hex(&chain)?.to_string();
        let mut idx = self.lock();
        if let Some(p) = parent {
            if !idx.contains_key(p) {
                return Err(EngineError::not_found(format!(
                    "parent layer {p} not found"
                )));
            }
        }
        let lease = self.leases.acquire(&chain);
        if let Some(rec) = idx.get(&chain) {
            return Ok(LayerInfo {
                diff_id,
                chain_id: chain,
                size: rec.size,
                lease,
            });
        }
        let dest = self.root.join(&hex);
        if dest.exists() {
            let _ = std::fs::remove_dir_all(&dest);
        }
        std::fs::rename(&staged.dir, &dest)
            .map_err(|e| EngineError::internal(format!("storing layer {chain}: {e}")))?;
        staged.done = true;
        let short = short_name();
        let link = self.links.join(&short);
        let undo = |dest: &Path, link: &Path| {
            let _ = std::fs::remove_file(link);
            let _ = std::fs::remove_dir_all(dest);
        };
        if let Err(e) = std::os::unix::fs::symlink(format!("../layers/{hex}/diff"), &link) {
            undo(&dest, &link);
            return Err(EngineError::internal(format!("creating layer link: {e}")));
        }
        let rec = LayerRecord {
            chain_id: chain.clone(),
            diff_id: diff_id.clone(),
            parent: parent.map(str::to_string),
            size: staged.size,
            short,
        };
        if let Err(e) = self.store.put(Table::Layers, &hex, &rec) {
            undo(&dest, &link);
            return Err(e);
        }
        idx.insert(chain.clone(), rec);
        Ok(LayerInfo {
            diff_id,
            chain_id: chain,
            size: staged.size,
            lease,
        })
    }

    /// Stages and commits in one step: a layer from a tar stream on top of
    /// `parent`.
    pub fn create<R: Read>(
        &self,
        content: &ContentStore,
        parent: Option<&str>,
        reader: R,
    ) -> Result<LayerInfo> {
        let staged = self.stage(content, reader, false)?;
        self.commit(parent, staged)
    }

    /// Removes every layer `keep` rejects that no lease pins and no other
    /// layer names as parent. Returns the removed records.
    pub fn collect(&self, keep: impl Fn(&str) -> bool) -> Result<Vec<LayerRecord>> {
        let mut idx = self.lock();
        let mut doomed: Vec<LayerRecord> = idx
            .values()
            .filter(|r| !keep(&r.chain_id) && !self.leases.is_leased(&r.chain_id))
            .cloned()
            .collect();
        // A parent goes only together with all its children.
        loop {
            let doomed_set: std::collections::HashSet<&str> =
                doomed.iter().map(|r| r.chain_id.as_str()).collect();
            let still_parent: std::collections::HashSet<String> = idx
                .values()
                .filter(|r| !doomed_set.contains(r.chain_id.as_str()))
                .filter_map(|r| r.parent.clone())
                .collect();
            let before = doomed.len();
            doomed.retain(|r| !still_parent.contains(&r.chain_id));
            if doomed.len() == before {
                break;
            }
        }
        if doomed.is_empty() {
            return Ok(vec![]);
        }
        self.store.write(|t| {
            for r in &doomed {
                t.delete(Table::Layers, digest_hex(&r.chain_id)?)?;
            }
            Ok(())
        })?;
        for r in &doomed {
            idx.remove(&r.chain_id);
        }
        drop(idx);
        for r in &doomed {
            let _ = std::fs::remove_file(self.links.join(&r.short));
            if let Ok(hex) = digest_hex(&r.chain_id) {
                // Rename first so a crash mid-delete leaves an unrecorded
                // directory that start-up removes.
                let dir = self.root.join(hex);
                let trash = self
                    .root
                    .join(format!("tmp-del-{}", crate::engine::ids::random_hex(8)));
                let target = if std::fs::rename(&dir, &trash).is_ok() {
                    trash
                } else {
                    dir
                };
                if let Err(e) = std::fs::remove_dir_all(&target) {
                    tracing::warn!(layer = %r.chain_id, error = %e, "removing layer directory");
                }
            }
        }
        Ok(doomed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn layers_are_shared_leased_and_collected() {
        let d = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(d.path()).unwrap());
        let cs = ContentStore::open(d.path()).unwrap();
        let ls = LayerStore::open(d.path(), store.clone()).unwrap();
        let t = tar_with(&[("a", b"hello")]);
        let l1 = ls
            .create(&cs, None, std::io::Cursor::new(t.clone()))
            .unwrap();
        assert_eq!(l1.diff_id, super::super::content::sha256_digest(&t));
        assert_eq!(l1.chain_id, l1.diff_id);
        assert_eq!(l1.size, 5);
        assert!(cs.exists(&l1.diff_id), "the uncompressed tar is kept");
        let dir = ls.diff_dir(&l1.chain_id).unwrap();
        assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"hello");
        let short = ls.get(&l1.chain_id).unwrap().short;
        assert_eq!(short.len(), 26);
        assert_eq!(
            std::fs::read(d.path().join("l").join(&short).join("a")).unwrap(),
            b"hello"
        );
        // The same layer again is the same layer; no second directory.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &t).unwrap();
        let l1b = ls
            .create(&cs, None, std::io::Cursor::new(gz.finish().unwrap()))
            .unwrap();
        assert_eq!(l1b.chain_id, l1.chain_id);
        let l2 = ls
            .create(
                &cs,
                Some(&l1.chain_id),
                std::io::Cursor::new(tar_with(&[("b", b"x")])),
            )
            .unwrap();
        assert_ne!(l2.chain_id, l2.diff_id);
        assert_eq!(
            std::fs::read_dir(d.path().join("layers")).unwrap().count(),
            2
        );
        // Leased layers survive a collection; released ones go (children first).
        assert!(ls.collect(|_| false).unwrap().is_empty());
        drop((l1, l1b));
        assert!(
            ls.collect(|_| false).unwrap().is_empty(),
            "l1 is l2's parent"
        );
        drop(l2);
        assert_eq!(ls.collect(|_| false).unwrap().len(), 2);
        assert_eq!(
            std::fs::read_dir(d.path().join("layers")).unwrap().count(),
            0
        );
        assert_eq!(std::fs::read_dir(d.path().join("l")).unwrap().count(), 0);
    }

    #[test]
    fn a_bad_layer_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(d.path()).unwrap());
        let cs = ContentStore::open(d.path()).unwrap();
        let ls = LayerStore::open(d.path(), store).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_entry_type(tar::EntryType::Regular);
        h.as_old_mut().name[..4].copy_from_slice(b"../x");
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        let err = ls
            .create(&cs, None, std::io::Cursor::new(b.into_inner().unwrap()))
            .unwrap_err();
        assert!(matches!(err, EngineError::InvalidParameter(_)), "{err}");
        assert_eq!(
            std::fs::read_dir(d.path().join("layers")).unwrap().count(),
            0
        );
        assert!(cs.list().unwrap().is_empty());
        assert!(!d.path().join("x").exists());
    }
}
