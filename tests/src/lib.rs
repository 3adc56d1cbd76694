//! Shared fixtures for Traceless's cross-crate tests: a protocol-level phone that
//! broadcasts and hears tokens and an authority that publishes keys. (Tests talk
//! to real nodes with the simulator's loopback HTTP client, `traceless_sim::http`.)

pub mod fixtures;
