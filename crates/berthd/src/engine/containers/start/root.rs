//! Stage 1 of a start: the container's root file system, its image's
//! layers under its own writable layer, mounted at `Paths::rw.merged`.

use super::super::{Paths, Record};
use crate::engine::{containers::Containers, Result};

impl Containers {
    pub(in crate::engine::containers) fn mount_root(&self, r: &Record, p: &Paths) -> Result<()> {
        let hc = &r.host_config;
        self.mount_rw(&p.rw, &r.image_id, hc.auto_remove == Some(true))?;
        Ok(())
    }
}
