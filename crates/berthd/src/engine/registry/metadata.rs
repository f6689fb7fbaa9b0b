//! Distribution metadata: for each layer (by diff ID), the compressed
//! blobs it is known by in registries, and where they were seen. A pull
//! records the blob it downloaded; a push records what it uploaded. Push
//! uses it to skip layers a registry already has (a `HEAD` of the known
//! digest) and to mount them from another repository of the same registry
//! instead of uploading them again, as Docker's v2 metadata service does.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::engine::store::{Store, Table};
use crate::engine::Result;

/// Entries kept per layer, newest first.
const MAX_PER_LAYER: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobSum {
    /// The compressed blob's digest.
    pub digest: String,
    pub media_type: String,
    pub size: i64,
    /// Repository domain (`docker.io`, `127.0.0.1:5000`).
    pub domain: String,
    /// Repository path (`library/busybox`).
    pub repo: String,
}

pub struct Metadata {
    store: Arc<Store>,
}

impl Metadata {
    pub fn new(store: Arc<Store>) -> Self {
        Self { store }
    }

    pub fn get(&self, diff_id: &str) -> Vec<BlobSum> {
        self.store
            .get::<Vec<BlobSum>>(Table::Distribution, diff_id)
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Records that `diff_id` is stored as `sum` (newest first, deduplicated).
    pub fn add(&self, diff_id: &str, sum: BlobSum) -> Result<()> {
        self.store.write(|t| {
            let mut v: Vec<BlobSum> = t.get(Table::Distribution, diff_id)?.unwrap_or_default();
            v.retain(|s| s != &sum);
            v.insert(0, sum);
            v.truncate(MAX_PER_LAYER);
            t.put(Table::Distribution, diff_id, &v)
        })
    }
}
