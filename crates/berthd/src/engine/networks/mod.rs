//! Networks. So far: the per-container network namespace with loopback
//! only (NetworkMode `none` semantics).

pub mod netns;
