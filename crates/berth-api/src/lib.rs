//! Wire types shared by the daemon and the CLI.
//!
//! Models come from the pinned `bollard-stubs` 1.49 (the closest published
//! generation to API 1.50); this crate adds only what the stubs lack: stream
//! framings, JSON-message progress lines, the event wire shape, `filters`
//! parsing and API-version arithmetic.

pub mod dockerignore;
pub mod events;
pub mod filters;
pub mod jsonmessage;
pub mod links;
pub mod shim;
pub mod stdcopy;
pub mod version;

pub use bollard_stubs::models;
pub use version::{ApiVersion, API_VERSION, MIN_API_VERSION};
