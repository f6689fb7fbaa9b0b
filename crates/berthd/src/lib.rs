//! berthd: a Docker-compatible container engine daemon.

// A request must never panic the daemon: errors are values outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod activation;
pub mod buildkit;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod manpage;
pub mod memtrim;
pub mod reload;
pub mod rootless;
pub mod server;
