//! The plugin volumes mounted, per holder (a container's ID, a `cp`
//! session), persisted so that a daemon that died with some mounted can
//! send each one's `Unmount` when it starts again (for holders that no
//! longer run), as Docker does for a container's active mount points.
//! Only what a `Mount` answered is held, so an `Unmount` always matches a
//! `Mount` (a plugin may count them).

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::engine::store::{Store, Table};

/// The `Meta` key the list is kept under.
const KEY: &str = "volume_plugin_mounts";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub volume: String,
    pub driver: String,
    pub holder: String,
}

pub struct HeldMounts {
    store: Arc<Store>,
    list: Mutex<Vec<Held>>,
}

impl HeldMounts {
    pub fn open(store: Arc<Store>) -> Self {
        let list = match store.get::<Vec<Held>>(Table::Meta, KEY) {
            Ok(l) => l.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "reading the plugin volumes mounted");
                Vec::new()
            }
        };
        Self {
            store,
            list: Mutex::new(list),
        }
    }

    fn save(&self, list: &[Held]) {
        if let Err(e) = self.store.put(Table::Meta, KEY, &list) {
            tracing::warn!(error = %e, "recording the plugin volumes mounted");
        }
    }

    /// A `Mount` succeeded (one entry per `Mount`: a holder may mount a
    /// volume twice, at two destinations).
    pub fn add(&self, h: Held) {
        let mut l = self.list.lock().unwrap_or_else(|e| e.into_inner());
        l.push(h);
        self.save(&l);
    }

    /// Takes one entry of `holder` for `volume`; `None` when that holder
    /// has no `Mount` to undo.
    pub fn take(&self, volume: &str, holder: &str) -> Option<Held> {
        let mut l = self.list.lock().unwrap_or_else(|e| e.into_inner());
        let i = l
            .iter()
            .position(|h| h.volume == volume && h.holder == holder)?;
        let h = l.remove(i);
        self.save(&l);
        Some(h)
    }

    /// Whether a volume of driver `driver` is mounted (`x` and `x:latest`
    /// are one plugin).
    pub fn any_of_driver(&self, driver: &str) -> bool {
        let short = |n: &str| n.strip_suffix(":latest").unwrap_or(n).to_string();
        let want = short(driver);
        let l = self.list.lock().unwrap_or_else(|e| e.into_inner());
        l.iter().any(|h| short(&h.driver) == want)
    }

    /// Takes every entry whose holder `keep` does not keep.
    pub fn take_stale(&self, keep: &dyn Fn(&str) -> bool) -> Vec<Held> {
        let mut l = self.list.lock().unwrap_or_else(|e| e.into_inner());
        let (kept, stale): (Vec<Held>, Vec<Held>) = l.drain(..).partition(|h| keep(&h.holder));
        *l = kept;
        self.save(&l);
        stale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(volume: &str, holder: &str) -> Held {
        Held {
            volume: volume.into(),
            driver: "p".into(),
            holder: holder.into(),
        }
    }

    #[test]
    fn mounts_pair_with_unmounts_and_survive_a_restart() {
        let t = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(t.path()).unwrap());
        let h = HeldMounts::open(store.clone());
        h.add(held("v", "c1"));
        h.add(held("v", "c1"));
        h.add(held("w", "c2"));
        h.add(held("v", "cp:x"));
        assert_eq!(h.take("v", "c1"), Some(held("v", "c1")));
        // Nothing to undo for a holder that never mounted.
        assert_eq!(h.take("v", "c9"), None);
        drop(h);
        // The next daemon sees what was left: c2 still runs, c1 and the
        // cp session do not.
        let h = HeldMounts::open(store);
        let stale = h.take_stale(&|holder| holder == "c2");
        assert_eq!(stale, [held("v", "c1"), held("v", "cp:x")]);
        assert!(h.take_stale(&|holder| holder == "c2").is_empty());
        assert_eq!(h.take("w", "c2"), Some(held("w", "c2")));
    }
}
