//! berthd: a Docker-compatible container engine daemon.

pub mod config;
pub mod daemon;
pub mod engine;
pub mod server;
