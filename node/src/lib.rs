//! # traceless-node
//!
//! A Traceless relay node. It stores, serves and forwards batches of published
//! diagnosis keys, each signed by a health authority; a *gateway* node also accepts
//! uploads for one authority and signs them into batches. Nodes federate over
//! libp2p (gossipsub push with application-level validation and peer scoring,
//! catch-up by per-origin sequence numbers, identify, Kademlia), keep everything in
//! sled, delete keys 14 days after their validity ended with a signed, hash-chained
//! deletion log, and serve phones over HTTP with a plain-words transparency page.
//!
//! Filter-form uploads (SPEC.md §5.8) take the same gateway paths; the gateway
//! keeps only hashed per-interval entries (never the TEK), folds the publishable
//! ones into a signed Bloom filter per day on a schedule, and nodes gossip, catch
//! up on, serve and delete those filters like batches, byte for byte.
//!
//! What a node never holds: a client IP address, a user agent, or anything else
//! that identifies a phone; access counts are aggregate. A batch is trusted only
//! because its authority signature verifies under the configured trust list, never
//! because of who forwarded it. Cryptography and wire formats are those of
//! `traceless-protocol`.

pub mod app;
pub mod bench;
pub mod cli;
pub mod clock;
pub mod config;
pub mod core;
pub mod embargo;
pub mod export_keys;
pub mod federation;
pub mod gateway;
pub mod http;
pub mod issuer;
pub mod keys;
pub mod log;
pub mod logging;
pub mod operators;
pub mod retention;
pub mod storage;
pub mod upload_codes;
pub mod venue;

pub use app::{start, RunningNode, StartError};
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use config::{Config, Role};
pub use core::Core;
