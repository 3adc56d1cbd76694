//! # traceless-sim
//!
//! A city of phones running the real `traceless-sdk` against real `traceless-node`
//! relays. A scenario (`scenarios/*.toml`) describes the people (households,
//! workplaces and schools, transit, venues), the Bluetooth channel (path loss,
//! pocket loss, fading, scan duty cycles), the disease (transmission by distance
//! and duration, incubation, testing and upload adherence) and the app. The
//! simulator derives the ground truth of who was truly close to whom, drives one
//! SDK instance per phone that can matter (every app user, or at scale every phone
//! that received an uploader's advertisement plus a full-sync sample), uploads on
//! the anonymous path (a token bought with the patient's code, the upload sealed to
//! the gateway and posted over HTTP to a relay, which forwards it over libp2p), lets
//! the batches spread over libp2p, downloads them from the relays over HTTP, and
//! reports precision and recall of notifications, delays, bytes, CPU, node
//! storage, propagation, and what K Bluetooth sniffers could link. Venue
//! check-ins (a share of app users scans QR codes, cases' venues are traced
//! through the gateway) report venue recall beside proximity recall and what a
//! paper register would expose against each party.
//!
//! Every random choice comes from the scenario seed, so the same seed gives the
//! same outcome (wall-time figures aside). `load` mode drives a running node over
//! loopback HTTP and reports throughput and latency.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod calibration;
pub mod channel;
pub mod epidemic;
pub mod http;
pub mod load;
pub mod mobility;
pub mod net;
pub mod nodes;
pub mod phones;
pub mod plots;
pub mod population;
pub mod privacy;
pub mod report;
pub mod run;
pub mod scenario;
pub mod seed;
pub mod sweep;
pub mod venue_figures;
pub mod venues;

pub use report::Report;
pub use run::{run, RunError, RunOptions};
pub use scenario::Scenario;
pub use sweep::run_with_sweep;
