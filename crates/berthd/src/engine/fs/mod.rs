//! The engine's one file-system layer: everything that reads or writes a
//! tree of files on behalf of a container, an image or a build.
//!
//! - `confined`: paths resolved inside a root (`openat2(RESOLVE_IN_ROOT)`),
//!   for `cp`, archive and copy-up.
//! - `pack`: the one tar packer (layers, `export`, `cp`, copy-up).
//! - `unpack`: safe tar extraction, with overlayfs whiteouts for layers.
//! - `snapshot`: a container's rw layer (upper/work/merged overlay) and
//!   the one way an upper directory becomes a layer.
//! - `driver`: the storage driver (overlay2 or fuse-overlayfs).
//! - `xattr`, `compression`, `error`, `sys`: what those share.
//!
//! A leaf: nothing here knows containers, networks, volumes or builds.

pub mod compression;
pub mod confined;
pub mod driver;
pub mod error;
pub mod pack;
pub mod snapshot;
pub mod sys;
pub mod unpack;
pub mod xattr;

#[cfg(test)]
mod tests;

pub use compression::{decompress, detect_compression, Compression};
pub use confined::{clean, components, go_file_mode, Root};
pub use error::ArchiveError;
pub use pack::{pack, packs_nothing, PackOptions, Packer};
pub use sys::{fd_path, fstat, is_dir, is_symlink, open_at, start_writeback, Stat};
pub use unpack::{unpack, unpack_fd, ExtractOptions, UnpackOptions, UnpackStats};
