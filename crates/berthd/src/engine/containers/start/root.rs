//! Stage 1 of a start: the container's root file system, its image's
//! layers under its own writable layer, mounted at `Paths::rw.merged`.

use super::super::{Paths, Record};
use crate::engine::{Engine, Result};

impl Engine {
    pub(in crate::engine::containers) fn mount_root(&self, r: &Record, p: &Paths) -> Result<()> {
        let hc = &r.host_config;
        let lowers = self.images.lower_dirs(&r.image_id)?;
        let short = self.images.lower_short_names(&r.image_id)?;
        p.rw.create()?;
        p.rw.mount(
            &lowers,
            &short,
            self.images.short_links_dir(),
            &self.containers.shim_bin,
            hc.auto_remove == Some(true),
        )?;
        Ok(())
    }
}
