//! The soak: steady uploads (and the watchers' steady list downloads from every
//! node) for a bounded time, with a partition-and-heal and a churn of 30 % of
//! the relays every `fault_every_s`; the figure is each node's memory and
//! descriptor growth after warm-up.

use std::path::Path;

use traceless_node::config::StorageConfig;

use super::link::LinkParams;
use super::report::{Growth, NetReport};
use super::scenario::{Fault, NetScenario, Topology, Uploads};
use super::{run, NetError, NetOptions};

/// `traceless-sim net soak`.
#[derive(clap::Args, Debug, Clone)]
pub struct SoakArgs {
    /// Length, minutes.
    #[arg(long, default_value_t = 30.0)]
    pub minutes: f64,
    /// Nodes (node 0 is the gateway).
    #[arg(long, default_value_t = 10)]
    pub nodes: usize,
    /// Milliseconds between uploads.
    #[arg(long, default_value_t = 500)]
    pub upload_interval_ms: u64,
    /// Seconds between faults (alternately a partition healed after a third
    /// of the period, and a churn).
    #[arg(long, default_value_t = 60.0)]
    pub fault_every_s: f64,
    /// Seconds of warm-up before growth is measured.
    #[arg(long, default_value_t = 60.0)]
    pub warmup_s: f64,
    /// Every node's database page cache, MiB (`[storage] cache_mib`; default
    /// the node's).
    #[arg(long)]
    pub cache_mib: Option<u64>,
    /// Minutes of uploads (default: the whole run). Stopping them earlier
    /// keeps the store at one size while faults and downloads go on, so that
    /// growth then is what time adds, not what the store adds.
    #[arg(long)]
    pub upload_minutes: Option<f64>,
}

/// The soak as a scenario.
pub fn scenario(a: &SoakArgs) -> NetScenario {
    let secs = a.minutes * 60.0;
    let mut faults = Vec::new();
    let mut t = a.fault_every_s;
    let mut k = 0;
    let half: Vec<usize> = (0..a.nodes / 2).collect();
    while t + a.fault_every_s / 3.0 < secs {
        if k % 2 == 0 {
            faults.push(Fault::Partition {
                at_s: t,
                groups: vec![half.clone()],
            });
            faults.push(Fault::Heal {
                at_s: t + a.fault_every_s / 3.0,
            });
        } else {
            faults.push(Fault::Churn {
                at_s: t,
                fraction: 0.3,
                down_s: a.fault_every_s / 3.0,
            });
        }
        t += a.fault_every_s;
        k += 1;
    }
    NetScenario {
        name: "net-soak".into(),
        seed: 7,
        nodes: a.nodes,
        topology: Topology::Full,
        regions: 0,
        inter_region_links: 0,
        link: LinkParams {
            latency_ms: 5.0,
            jitter_ms: 2.0,
            ..LinkParams::default()
        },
        inter_region: LinkParams::default(),
        gateways: vec![0],
        uploads: Uploads {
            per_gateway: ((a.upload_minutes.unwrap_or(a.minutes).min(a.minutes) * 60_000.0)
                / a.upload_interval_ms.max(1) as f64) as usize,
            interval_ms: a.upload_interval_ms,
            start_s: 0.0,
        },
        faults,
        catchup_interval_secs: 2,
        heartbeat_ms: 200,
        settle_s: 60.0,
        sample_ms: 5000,
        storage: StorageConfig {
            cache_mib: a.cache_mib.unwrap_or(StorageConfig::default().cache_mib),
        },
    }
}

/// Runs the soak; returns the report and the growth after warm-up.
pub fn run_soak(
    a: &SoakArgs,
    opts: &NetOptions,
    dir: &Path,
) -> Result<(NetReport, Growth), NetError> {
    let r = run(&scenario(a), opts, dir)?;
    let g = r.growth(a.warmup_s);
    Ok((r, g))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_stop_where_asked_while_faults_run_to_the_end() {
        let short = SoakArgs {
            minutes: 10.0,
            nodes: 4,
            upload_interval_ms: 500,
            fault_every_s: 60.0,
            warmup_s: 60.0,
            cache_mib: Some(8),
            upload_minutes: Some(4.0),
        };
        let s = scenario(&short);
        assert_eq!(s.uploads.per_gateway, 480);
        assert_eq!(s.storage.cache_mib, 8);
        let last_fault = s.faults.iter().map(Fault::at_s).fold(0.0, f64::max);
        assert!((540.0..600.0).contains(&last_fault), "{last_fault}");
        let whole = scenario(&SoakArgs {
            cache_mib: None,
            upload_minutes: None,
            ..short
        });
        assert_eq!(whole.uploads.per_gateway, 1200);
        assert_eq!(whole.storage, StorageConfig::default());
    }
}
