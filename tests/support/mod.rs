//! Code shared by test binaries.

pub mod catalog_runner;
