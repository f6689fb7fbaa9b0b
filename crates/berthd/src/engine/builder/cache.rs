//! The build cache: one entry per executed step, keyed by what determines
//! the step's result (the parent image ID, the instruction after
//! substitution, the build args a RUN sees, the content hash of COPY/ADD
//! sources), pointing at the step's image. Kept in the `buildcache` table,
//! with an in-memory index for lookups.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use berth_api::models::{BuildCache as BuildCacheItem, BuildCacheTypeEnum};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::engine::store::{Store, Table};
use crate::engine::Result;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Entry {
    /// The step's image.
    pub image: String,
    /// The image the step ran on (empty for `FROM scratch`).
    pub parent: String,
    pub description: String,
    /// Bytes of the layer the step added (0 for metadata-only steps).
    pub size: i64,
    pub created: String,
    pub last_used: String,
    pub usage: i64,
}

pub struct Cache {
    store: Arc<Store>,
    index: Mutex<HashMap<String, Entry>>,
}

/// The key of a step.
pub fn key(parent: &str, step: &str, extra: &str) -> String {
    let mut h = Sha256::new();
    h.update(parent.as_bytes());
    h.update([0]);
    h.update(step.as_bytes());
    h.update([0]);
    h.update(extra.as_bytes());
    hex::encode(h.finalize())
}

impl Cache {
    pub fn open(store: Arc<Store>) -> Result<Self> {
        let all: Vec<(String, Entry)> = store.load_all(Table::BuildCache)?;
        Ok(Self {
            store,
            index: Mutex::new(all.into_iter().collect()),
        })
    }

    fn idx(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &str) -> Option<Entry> {
        self.idx().get(key).cloned()
    }

    /// Records a hit (last use and count).
    pub fn touch(&self, key: &str) {
        let e = {
            let mut idx = self.idx();
            let Some(e) = idx.get_mut(key) else { return };
            e.last_used = super::now();
            e.usage += 1;
            e.clone()
        };
        if let Err(err) = self.store.put(Table::BuildCache, key, &e) {
            tracing::warn!(error = %err, "build cache: recording a hit");
        }
    }

    pub fn put(&self, key: &str, e: Entry) -> Result<()> {
        self.store.put(Table::BuildCache, key, &e)?;
        self.idx().insert(key.to_string(), e);
        Ok(())
    }

    pub fn remove(&self, keys: &[String]) -> Result<()> {
        self.store.write(|t| {
            for k in keys {
                t.delete(Table::BuildCache, k)?;
            }
            Ok(())
        })?;
        let mut idx = self.idx();
        for k in keys {
            idx.remove(k);
        }
        Ok(())
    }

    pub fn all(&self) -> Vec<(String, Entry)> {
        let mut v: Vec<(String, Entry)> = self
            .idx()
            .iter()
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        v.sort_by(|a, b| a.1.created.cmp(&b.1.created).then(a.0.cmp(&b.0)));
        v
    }

    /// The `/system/df` view: `shared` when the entry's image is also kept
    /// by something other than the cache (a tag, a container, a child).
    pub fn items(
        &self,
        live: impl Fn(&Entry) -> bool,
        shared: impl Fn(&Entry) -> bool,
    ) -> Vec<BuildCacheItem> {
        let by_image: HashMap<String, String> = self
            .all()
            .into_iter()
            .map(|(k, e)| (e.image.clone(), k))
            .collect();
        self.all()
            .into_iter()
            .filter(|(_, e)| live(e))
            .map(|(k, e)| {
                let parent = by_image.get(&e.parent).cloned();
                BuildCacheItem {
                    id: Some(k[..k.len().min(25)].to_string()),
                    parent: parent.clone(),
                    parents: parent.map(|p| vec![p]),
                    typ: Some(BuildCacheTypeEnum::REGULAR),
                    description: Some(e.description.clone()),
                    in_use: Some(false),
                    shared: Some(shared(&e)),
                    size: Some(e.size),
                    created_at: Some(e.created.clone()),
                    last_used_at: Some(e.last_used.clone()),
                    usage_count: Some(e.usage),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_persist_and_keys_differ() {
        let d = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(d.path()).unwrap());
        let c = Cache::open(store.clone()).unwrap();
        let k = key("sha256:a", "RUN x", "");
        assert_ne!(k, key("sha256:a", "RUN x", "A=1"));
        assert_ne!(k, key("sha256:b", "RUN x", ""));
        c.put(
            &k,
            Entry {
                image: "sha256:i".into(),
                ..Default::default()
            },
        )
        .unwrap();
        c.touch(&k);
        drop(c);
        let c = Cache::open(store).unwrap();
        let e = c.get(&k).unwrap();
        assert_eq!((e.image.as_str(), e.usage), ("sha256:i", 1));
        c.remove(std::slice::from_ref(&k)).unwrap();
        assert!(c.get(&k).is_none());
    }
}
