//! Wire types shared by the daemon and the CLI.
//!
//! Models come from the pinned `bollard-stubs` 1.49 (the closest published
//! generation to API 1.50); this crate adds only what the stubs lack: the
//! per-version wire shapes of JSON answers (`shape`, `shapes`), stream
//! framings, JSON-message progress lines, the event wire shape, `filters`
//! parsing and API-version arithmetic; and the text formats Docker's Go
//! libraries define, so the daemon and the CLI read and print them alike:
//! Go durations, go-units sizes, image references, `path.Match` and
//! detach keys. With the `tls` feature, also the one TLS set-up (PEM files,
//! roots, client configurations) the daemon and the CLI share.

#![warn(missing_docs)]

pub mod detach;
pub mod dockerignore;
pub mod duration;
pub mod events;
pub mod filters;
pub mod jsonmessage;
pub mod links;
pub mod logentry;
pub mod pattern;
pub mod reference;
pub mod shape;
pub mod shapes;
pub mod shim;
pub mod stdcopy;
#[cfg(feature = "tls")]
pub mod tls;
pub mod units;
pub mod version;

pub use bollard_stubs::models;
pub use version::{ApiVersion, API_VERSION, MIN_API_VERSION};
