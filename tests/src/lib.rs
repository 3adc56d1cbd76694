//! Shared fixtures for Traceless's cross-crate tests: a protocol-level phone that
//! broadcasts and hears tokens, an authority that publishes keys, and a minimal
//! HTTP client for talking to real nodes on loopback.

pub mod fixtures;
pub mod http;
