//! The classic builder.
pub mod dockerfile;
