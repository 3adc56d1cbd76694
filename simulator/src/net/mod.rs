//! `traceless-sim net`: real `traceless-node` processes, one per Linux network
//! namespace, joined through emulated links (latency, jitter, loss, bandwidth),
//! driven with uploads while a timeline injects faults (partitions, churn),
//! with a report of propagation, convergence, bytes, rejections and memory.
//!
//! - [`netns`]: namespaces and veth pairs, teardown on every exit path, and the
//!   loopback fallback without root;
//! - [`link`]: the userspace link emulator (the kernel here has no `netem`);
//! - [`cluster`]: node keys, configs and processes;
//! - [`scenario`]: the scenario TOML; [`run`]: the driver; [`report`]: figures.
//!
//! See `simulator/docs/net.md`.

pub mod cli;
pub mod cluster;
pub mod disk;
pub mod flood;
pub mod link;
pub mod netns;
pub mod report;
pub mod run;
pub mod scenario;
pub mod skew;
pub mod soak;
pub mod withhold;

pub use cluster::NodeProgram;
pub use netns::is_sim_address;
pub use report::NetReport;
pub use run::{run, NetOptions};
pub use scenario::NetScenario;

/// Why a network run failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Creating namespaces, links, files or processes failed.
    #[error("setting up the network: {0}")]
    Setup(String),
    /// Files or sockets.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The scenario file is wrong.
    #[error("scenario: {0}")]
    Scenario(String),
    /// Some node had no peer 30 s after start.
    #[error("the nodes did not all connect to a peer within 30 s")]
    NotConnected,
}
