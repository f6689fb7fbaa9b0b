//! Container configuration → OCI runtime spec with Docker's defaults.
//!
//! Filled by the containers issue (#4); nothing here pretends to work yet.
