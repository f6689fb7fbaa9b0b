//! Bridges being made: a daemon killed between creating a network's bridge
//! and recording the network leaves a bridge nobody knows, possibly before
//! it carries berth's mark (the kernel takes an alias only in a second
//! call). So an empty file named after the bridge is written first, under
//! `<exec-root>/network-pending`, and removed once the network is on record
//! or the bridge is gone; the next start removes the bridges still named
//! there that no network claims. The exec root is cleared by a reboot, as
//! the bridges are.

use std::path::{Path, PathBuf};

pub struct Pending {
    dir: PathBuf,
}

impl Pending {
    pub fn new(exec_root: &Path) -> Self {
        Pending {
            dir: exec_root.join("network-pending"),
        }
    }

    /// Records that `bridge` is about to be made. A failure to record is
    /// a failure to create: without the record a crash could leak it.
    pub fn begin(&self, bridge: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        // No fsync: what must survive is a killed daemon, not a power cut
        // (which takes the bridge with it).
        std::fs::write(self.dir.join(bridge), b"")
    }

    pub fn end(&self, bridge: &str) {
        let _ = std::fs::remove_file(self.dir.join(bridge));
        // Nothing of berth's stays in the exec root once its work is done
        // (an empty directory too); this fails while another is pending.
        let _ = std::fs::remove_dir(&self.dir);
    }

    /// The bridges a previous run began and did not end.
    pub fn left(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_begun_and_not_ended_is_left() {
        let d = tempfile::tempdir().unwrap();
        let p = Pending::new(d.path());
        assert!(p.left().is_empty());
        p.begin("br-0123456789ab").unwrap();
        p.begin("mybr").unwrap();
        p.end("mybr");
        assert_eq!(p.left(), vec!["br-0123456789ab".to_string()]);
        p.end("br-0123456789ab");
        assert!(p.left().is_empty());
        assert!(!d.path().join("network-pending").exists());
    }
}
