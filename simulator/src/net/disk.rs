//! Disk full: a gateway whose data directory is a small tmpfs, filled to the
//! last byte while it takes uploads, then freed. Needs root (mount).
//!
//! The check: while full, uploads are refused (503) and none is acknowledged
//! that is not durable; reads keep working; after space frees, uploads are
//! taken again; after a `kill -9` and restart every acknowledged upload's
//! batch is still there.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use traceless_node::config::StorageConfig;

use super::cluster::{Cluster, ClusterPlan};
use super::link::LinkParams;
use super::netns::Host;
use super::run::{upload_body, NetOptions};
use super::scenario::NetScenario;
use super::NetError;
use crate::http;

/// What the disk-full run saw.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DiskFullReport {
    /// Size of the gateway's tmpfs, bytes.
    pub volume_bytes: u64,
    /// Uploads answered 200 before the disk filled.
    pub accepted_before: u64,
    /// Uploads answered 200 after the filler took the last byte (sled had room
    /// in its open segment), before the first refusal.
    pub accepted_while_filling: u64,
    /// Status of every refused upload while full (count per status).
    pub refused_while_full: Vec<(u16, u64)>,
    /// The first refusal's body.
    pub first_refusal: String,
    /// `GET /v1/batches` and one batch download answered 200 while full.
    pub reads_ok_while_full: bool,
    /// Uploads answered 200 after the filler was removed.
    pub accepted_after_free: u64,
    /// Seconds from freeing space to the first accepted upload.
    pub recovery_s: Option<f64>,
    /// Acknowledged keys not published after `kill -9` and restart.
    pub lost_after_kill9: u64,
    /// Acknowledged (pooled) keys in all.
    pub acknowledged: u64,
}

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Posts one upload: status, keys the gateway pooled, body.
fn post(addr: std::net::SocketAddr, code: &str) -> (u16, u64, String) {
    match http::request(addr, "POST", "/v1/upload", &upload_body(code)) {
        Ok(r) => {
            let pooled = r
                .try_json()
                .and_then(|j| j["pooled_keys"].as_u64())
                .unwrap_or(0);
            (
                r.status,
                pooled,
                String::from_utf8_lossy(&r.body).into_owned(),
            )
        }
        Err(e) => (0, 0, e.to_string()),
    }
}

/// (sequence, key count) of every batch `addr` lists for `origin`.
fn listed(addr: std::net::SocketAddr, origin: &str) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let path = format!("/v1/batches?origin={origin}&after={after}&limit=1000");
        let Some(j) = http::request(addr, "GET", &path, b"")
            .ok()
            .and_then(|r| r.try_json())
        else {
            return out;
        };
        let page: Vec<(u64, u64)> = j["batches"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| Some((b["sequence"].as_u64()?, b["key_count"].as_u64()?)))
            .collect();
        let Some(&(last, _)) = page.last() else {
            return out;
        };
        out.extend(page);
        after = last;
    }
}

/// Keys in the batches `addr` lists, once they reach `want` (bounded wait:
/// the gateway publishes at its next period boundary).
fn published_keys(addr: std::net::SocketAddr, origin: &str, want: u64) -> u64 {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let n = listed(addr, origin).iter().map(|b| b.1).sum();
        if n >= want || Instant::now() > end {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the disk-full check with a `volume_bytes` tmpfs; `Ok(None)` if this
/// process cannot mount (not root).
pub fn run(
    opts: &NetOptions,
    dir: &Path,
    volume_bytes: u64,
) -> Result<Option<DiskFullReport>, NetError> {
    let gw_dir = dir.join("node-0");
    std::fs::create_dir_all(&gw_dir)?;
    let mounted = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={volume_bytes}"),
            "tmpfs",
        ])
        .arg(&gw_dir)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !mounted {
        return Ok(None);
    }
    let _mount = Mount(gw_dir.clone());
    let host = Host::new(2, opts.force_loopback)?;
    let origin = NetScenario::origin(0);
    let plan = ClusterPlan {
        nodes: 2,
        gateways: vec![(0, origin.clone())],
        links: vec![(0, 1, LinkParams::default())],
        catchup_interval_secs: 2,
        heartbeat_ms: 200,
        codes_per_gateway: 5000,
        skew_secs: Vec::new(),
        storage: StorageConfig::default(),
    };
    let mut cluster = Cluster::start(&plan, host, opts.program.clone(), dir, 1)?;
    let mut codes = cluster.codes[&origin].clone().into_iter();
    let mut next_code = || codes.next().unwrap_or_default();
    let gw = |c: &Cluster| {
        c.nodes[0]
            .http
            .ok_or_else(|| NetError::Setup("gateway down".into()))
    };
    let mut r = DiskFullReport {
        volume_bytes,
        ..Default::default()
    };
    let mut acked = 0u64;
    for _ in 0..5 {
        let (status, pooled, body) = post(gw(&cluster)?, &next_code());
        if status != 200 {
            return Err(NetError::Setup(format!(
                "upload before filling: {status} {body}"
            )));
        }
        r.accepted_before += 1;
        acked += pooled;
    }
    // Published at the next boundary: there is a batch to read while full.
    published_keys(gw(&cluster)?, &origin, acked);
    // Fill the volume to the last byte.
    let filler = gw_dir.join("filler");
    {
        let mut f = std::fs::File::create(&filler)?;
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        let byte = [0u8; 1];
        while f.write_all(&byte).is_ok() {}
    }
    let mut refused: std::collections::BTreeMap<u16, u64> = Default::default();
    for _ in 0..2000 {
        let (status, pooled, body) = post(gw(&cluster)?, &next_code());
        if status == 200 {
            r.accepted_while_filling += 1;
            acked += pooled;
            continue;
        }
        if r.first_refusal.is_empty() {
            r.first_refusal = format!("{status} {body}");
        }
        *refused.entry(status).or_default() += 1;
        if refused.values().sum::<u64>() >= 20 {
            break;
        }
    }
    r.refused_while_full = refused.into_iter().collect();
    let a = gw(&cluster)?;
    let list_ok = http::request(
        a,
        "GET",
        &format!("/v1/batches?origin={origin}&after=0"),
        b"",
    )
    .is_ok_and(|x| x.status == 200);
    let get_ok = listed(a, &origin).first().is_some_and(|(s, _)| {
        http::request(a, "GET", &format!("/v1/batches/{origin}/{s}"), b"")
            .is_ok_and(|x| x.status == 200)
    });
    r.reads_ok_while_full = list_ok && get_ok;
    std::fs::remove_file(&filler)?;
    let freed = Instant::now();
    while freed.elapsed() < Duration::from_secs(20) && r.accepted_after_free < 5 {
        let (status, pooled, _) = post(gw(&cluster)?, &next_code());
        if status == 200 {
            r.recovery_s.get_or_insert(freed.elapsed().as_secs_f64());
            r.accepted_after_free += 1;
            acked += pooled;
        } else {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    cluster.kill(0);
    cluster.spawn(0)?;
    let after = published_keys(gw(&cluster)?, &origin, acked);
    r.acknowledged = acked;
    r.lost_after_kill9 = acked.saturating_sub(after);
    drop(cluster);
    Ok(Some(r))
}
