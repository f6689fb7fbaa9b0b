//! Snapshots: a container's root is an overlay of read-only layers under
//! its own upper directory, and the one way an upper directory becomes a
//! layer (`docker commit` and a build's RUN step alike: moby's builder
//! commits a RUN container exactly as `docker commit` does, so there is
//! one rule set).

use std::io::PipeReader;
use std::path::{Path, PathBuf};

use crate::engine::{EngineError, Result};

use super::pack::{pack, packs_nothing, PackOptions};

/// The empty files the runtime leaves in a container's rw layer as its
/// mount points; Docker keeps them in the init layer, so they are never
/// part of a committed layer.
pub const MOUNT_STUBS: &[&str] = &[
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
    ".dockerenv",
    "sbin/docker-init",
];

/// Directories that hold only those stubs in the rw layer (or are mounted
/// over): not committed unless something else changed in them.
pub const MOUNT_DIRS: &[&str] = &["dev", "proc", "sys", "etc", "sbin"];

/// What wrote to an upper directory, which decides what in it is content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upper {
    /// A container ran on it (`commit`, a build's RUN): the runtime's
    /// mount stubs are not content.
    Container,
    /// Only the engine wrote to it (a build's COPY, ADD, WORKDIR): there
    /// are no stubs, so an empty `/etc/hosts` put there is content.
    Scratch,
}

/// How an upper directory is packed as a layer: whiteouts as `.wh.`
/// entries, and for a container's the runtime's mount stubs left out.
pub fn layer_rules(upper: Upper) -> PackOptions {
    let (files, dirs) = match upper {
        Upper::Container => (MOUNT_STUBS, MOUNT_DIRS),
        Upper::Scratch => (&[][..], &[][..]),
    };
    PackOptions {
        overlay_whiteouts: true,
        skip_empty_files: files.iter().map(PathBuf::from).collect(),
        skip_vacant_dirs: dirs.iter().map(PathBuf::from).collect(),
    }
}

/// Packs `upper` into a layer that `store` makes from the tar stream (the
/// layer store, on top of the parent it knows); `None` when nothing but
/// mount stubs changed (moby then records an empty layer). Blocking: the
/// packer runs on its own thread, `store` on this one.
pub fn commit_upper<T>(
    upper: &Path,
    kind: Upper,
    store: impl FnOnce(PipeReader) -> Result<T>,
) -> Result<Option<T>> {
    let rules = layer_rules(kind);
    if packs_nothing(upper, &rules) {
        return Ok(None);
    }
    let (reader, writer) =
        std::io::pipe().map_err(|e| EngineError::internal(format!("pipe: {e}")))?;
    let up = upper.to_path_buf();
    let packer = std::thread::spawn(move || pack(&up, writer, &rules).map(drop));
    let made = store(reader);
    let packed = packer
        .join()
        .map_err(|_| EngineError::internal("the layer packer panicked"))?;
    // The layer store's failure first: when it stops reading (a full
    // disk), the packer only sees a broken pipe.
    let made = made?;
    packed.map_err(|e| EngineError::internal(format!("packing a layer: {e}")))?;
    Ok(Some(made))
}
