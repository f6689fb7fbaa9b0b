//! The container's root file system: the image's layers mounted under the
//! container's rw layer (`fs::snapshot`), with the shim as the mount
//! helper for long layer chains.

use crate::engine::fs::snapshot::RwLayer;
use crate::engine::{containers::Containers, Result};

impl Containers {
    /// Prepares and mounts `rw` over the layers of `image_id` (none for an
    /// empty ID: `FROM scratch`). A `discardable` layer is dropped after
    /// use (see `RwLayer::mount`).
    pub fn mount_rw(&self, rw: &RwLayer, image_id: &str, discardable: bool) -> Result<()> {
        let lowers = self.images.lowers(image_id)?;
        rw.prepare()?;
        rw.mount(&lowers, || self.shim_bin.command(), discardable)
    }
}
