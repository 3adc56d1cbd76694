//! Helpers shared by the end-to-end tests that run real nodes.

use std::path::Path;

use traceless_node::config::TrustEntry;
use traceless_node::Config;
use traceless_protocol::AuthorityKey;

/// A node config in `dir` trusting `authority` for `origin`, HTTP on port 0,
/// fast gossip heartbeats and catch-up, and `bootstrap` as its peers.
pub fn node_config(
    dir: &Path,
    origin: &str,
    authority: &AuthorityKey,
    bootstrap: &[String],
) -> Config {
    let mut c = Config {
        data_dir: dir.to_owned(),
        ..Config::default()
    };
    c.http.listen = "127.0.0.1:0".parse().unwrap();
    c.p2p.heartbeat_ms = 100;
    c.p2p.catchup_interval_secs = 1;
    c.p2p.bootstrap = bootstrap.to_vec();
    c.trust.push(TrustEntry {
        origin: origin.into(),
        key_id: authority.key_id,
        public_key: hex::encode(authority.verifying_key().to_bytes()),
    });
    c
}
