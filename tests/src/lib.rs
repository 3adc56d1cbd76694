//! Shared fixtures for Traceless's cross-crate tests: a protocol-level phone that
//! broadcasts and hears tokens, and an authority that publishes keys.

pub mod fixtures;
