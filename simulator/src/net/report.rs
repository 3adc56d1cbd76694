//! The network run's report: `report.json`, `report.html` and SVG plots
//! (propagation per node, memory and file descriptors per node over time,
//! bytes per node).

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::{RGBColor, BLUE, GREEN, RED};

use super::netns::Isolation;
use crate::plots::{line_chart, Series};
use crate::report::esc;

/// One node's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeFigures {
    /// Index.
    pub node: usize,
    /// Region.
    pub region: usize,
    /// The origin it is the gateway for.
    pub gateway: Option<String>,
    /// Batches it lists at the end.
    pub batches: u64,
    /// Published batches it never listed.
    pub missing: u64,
    /// Batches listed twice or under two contents, plus its conflict counter.
    pub duplicates: u64,
    /// Batches published on the other side of a partition that it listed
    /// before the heal (0 unless the partition leaked).
    pub partition_leaks: u64,
    /// Median publication-to-listing delay, ms.
    pub propagation_p50_ms: f64,
    /// 99th percentile of that delay, ms.
    pub propagation_p99_ms: f64,
    /// Bytes its links carried.
    pub bytes: u64,
    /// Gossip messages it rejected (`traceless_gossip_rejected_total`).
    pub gossip_rejected: u64,
    /// Catch-up answers it rejected.
    pub catchup_rejected: u64,
    /// Batches it took by catch-up.
    pub catchup_batches: u64,
}

/// One memory sample.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Sample {
    /// Node.
    pub node: usize,
    /// Seconds from the start of the run.
    pub t_s: f64,
    /// Resident memory, KiB.
    pub rss_kib: u64,
    /// Open file descriptors.
    pub fds: u64,
}

/// The flood's figures: honest propagation before and during it, in one run.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct FloodFigures {
    /// Sybil peers started / connected to their relay.
    pub sybils: usize,
    /// Sybils that connected.
    pub connected: u64,
    /// Messages the Sybils sent.
    pub sent: u64,
    /// Messages per second actually sent.
    pub sent_per_s: f64,
    /// Publications the Sybils' own gossipsub refused (no peer left).
    pub refused: u64,
    /// Messages the nodes rejected after reading them (summed; the rest were
    /// dropped unread once the sender's score fell below the graylist).
    pub rejected_by_nodes: u64,
    /// Honest propagation p50 / p99 before the flood, ms.
    pub baseline_p50_ms: f64,
    /// p99 before the flood.
    pub baseline_p99_ms: f64,
    /// Honest propagation p50 during the flood, ms.
    pub flood_p50_ms: f64,
    /// p99 during the flood.
    pub flood_p99_ms: f64,
}

/// The withholding peer's figures.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct WithholdFigures {
    /// The node it connected to.
    pub target: usize,
    /// Whether it connected.
    pub connected: bool,
    /// Summary requests it answered with its false advertisement.
    pub summaries: u64,
    /// Fetch requests it answered with nothing.
    pub fetches: u64,
    /// Batches the target never got.
    pub target_missing: u64,
}

/// Everything a network run measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NetReport {
    /// Scenario name.
    pub scenario: String,
    /// Namespaces or loopback.
    pub isolation: Isolation,
    /// Why not namespaces.
    pub fallback_reason: Option<String>,
    /// Whether the kernel has `netem` (`None`: not probed, no namespaces).
    pub netem_available: Option<bool>,
    /// What emulated the links.
    pub link_emulator: String,
    /// The node program run.
    pub node_program: String,
    /// Nodes.
    pub nodes: usize,
    /// Links.
    pub links: usize,
    /// Seconds to create namespaces, links and start every node.
    pub setup_s: f64,
    /// Batches the gateways published (a period's uploads of one day share a
    /// batch).
    pub published: u64,
    /// Keys in them.
    pub published_keys: u64,
    /// Uploads the gateways did not answer 200.
    pub upload_errors: Vec<String>,
    /// Whether every node listed every published batch in time.
    pub converged: bool,
    /// Converged, and every node lists the same batches with the same contents.
    pub identical_everywhere: bool,
    /// Seconds from the start when every node had every batch.
    pub converged_at_s: Option<f64>,
    /// Seconds from the heal until the last node had the last batch.
    pub catch_up_after_heal_s: Option<f64>,
    /// Publication-to-listing delay over every (batch, node), ms.
    pub propagation_p50_ms: f64,
    /// Its 99th percentile, ms.
    pub propagation_p99_ms: f64,
    /// The flood, if the scenario had one.
    pub flood: Option<FloodFigures>,
    /// The withholding peer, if the scenario had one.
    pub withholding: Option<WithholdFigures>,
    /// The fault timeline as applied.
    pub events: Vec<String>,
    /// Per node.
    pub per_node: Vec<NodeFigures>,
    /// Memory and descriptors over time.
    pub samples: Vec<Sample>,
}

/// Growth of a per-node series after warm-up.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Growth {
    /// Largest RSS growth of any node from the end of warm-up to the end, KiB.
    pub max_rss_growth_kib: i64,
    /// Largest descriptor growth, likewise.
    pub max_fd_growth: i64,
    /// Mean RSS per node at the end, KiB.
    pub mean_rss_kib: u64,
}

impl NetReport {
    /// Memory and descriptor growth from `warmup_s` to the end (per node, the
    /// first sample after warm-up against the last sample).
    pub fn growth(&self, warmup_s: f64) -> Growth {
        let mut g = Growth::default();
        let mut rss_sum = 0;
        for n in 0..self.nodes {
            let mine: Vec<&Sample> = self.samples.iter().filter(|s| s.node == n).collect();
            let first = mine.iter().find(|s| s.t_s >= warmup_s);
            let Some(last) = mine.last() else { continue };
            rss_sum += last.rss_kib;
            if let Some(f) = first {
                g.max_rss_growth_kib = g
                    .max_rss_growth_kib
                    .max(last.rss_kib as i64 - f.rss_kib as i64);
                g.max_fd_growth = g.max_fd_growth.max(last.fds as i64 - f.fds as i64);
            }
        }
        g.mean_rss_kib = rss_sum / self.nodes.max(1) as u64;
        g
    }

    /// The headline, a few lines.
    pub fn headline(&self) -> String {
        let mut h = String::new();
        match self.isolation {
            Isolation::Namespaces => {
                let _ = write!(
                    h,
                    "{}: {} nodes in network namespaces, {} links",
                    self.scenario, self.nodes, self.links
                );
            }
            Isolation::Loopback => {
                let _ = write!(
                    h,
                    "{}: namespaces unavailable ({}): loopback fallback, {} nodes, {} links",
                    self.scenario,
                    self.fallback_reason.as_deref().unwrap_or("?"),
                    self.nodes,
                    self.links
                );
            }
        }
        let netem = match self.netem_available {
            Some(true) => "netem available (not used)",
            Some(false) => "netem unavailable",
            None => "netem not probed",
        };
        let _ = write!(
            h,
            "\nlinks: {} ({netem})\npublished {} batches ({} keys), {} upload errors; converged: {} (at {:.1} s), identical everywhere: {}\npropagation p50 {:.0} ms, p99 {:.0} ms",
            self.link_emulator,
            self.published,
            self.published_keys,
            self.upload_errors.len(),
            self.converged,
            self.converged_at_s.unwrap_or(f64::NAN),
            self.identical_everywhere,
            self.propagation_p50_ms,
            self.propagation_p99_ms,
        );
        if let Some(f) = &self.flood {
            let _ = write!(
                h,
                "\nflood: {} Sybils ({} connected) sent {} messages ({:.0}/s), nodes rejected {}; honest p99 {:.0} ms during vs {:.0} ms before (p50 {:.0} vs {:.0})",
                f.sybils, f.connected, f.sent, f.sent_per_s, f.rejected_by_nodes,
                f.flood_p99_ms, f.baseline_p99_ms, f.flood_p50_ms, f.baseline_p50_ms
            );
        }
        if let Some(w) = &self.withholding {
            let _ = write!(
                h,
                "\nwithholding peer on node {}: connected {}, asked {} summaries and {} fetches, served nothing; node {} missing {}",
                w.target, w.connected, w.summaries, w.fetches, w.target, w.target_missing
            );
        }
        if let Some(c) = self.catch_up_after_heal_s {
            let _ = write!(h, "\ncatch-up after heal: {c:.1} s");
        }
        let g = self.growth(0.0);
        let _ = write!(
            h,
            "\nmean RSS per node at the end: {:.1} MiB",
            g.mean_rss_kib as f64 / 1024.0
        );
        h
    }

    /// Writes report.json, report.html and the plots into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join("report.json"),
            serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?,
        )?;
        let mut plots = Vec::new();
        let mut chart = |file: &str, title: &str, x: &str, y: &str, series: &[Series<'_>]| {
            line_chart(&dir.join(file), title, x, y, None, series)
                .map_err(std::io::Error::other)?;
            plots.push(file.to_owned());
            Ok::<_, std::io::Error>(())
        };
        let per = |f: &dyn Fn(&NodeFigures) -> f64| -> Vec<(f64, f64)> {
            self.per_node
                .iter()
                .map(|n| (n.node as f64, f(n)))
                .collect()
        };
        chart(
            "propagation.svg",
            "Propagation to each node",
            "node",
            "ms from publication",
            &[
                ("p50", per(&|n| n.propagation_p50_ms), BLUE),
                ("p99", per(&|n| n.propagation_p99_ms), RED),
            ],
        )?;
        chart(
            "bytes.svg",
            "Bytes over each node's links",
            "node",
            "bytes",
            &[("bytes", per(&|n| n.bytes as f64), GREEN)],
        )?;
        let over_time = |f: &dyn Fn(&Sample) -> f64| -> Vec<Series<'static>> {
            (0..self.nodes)
                .map(|n| {
                    let shade = (40 + (n * 160 / self.nodes.max(1))) as u8;
                    let pts = self
                        .samples
                        .iter()
                        .filter(|s| s.node == n)
                        .map(|s| (s.t_s, f(s)))
                        .collect();
                    ("", pts, RGBColor(shade, 60, 200 - shade / 2))
                })
                .collect()
        };
        chart(
            "memory.svg",
            "Resident memory per node",
            "s",
            "MiB",
            &over_time(&|s| s.rss_kib as f64 / 1024.0),
        )?;
        chart(
            "fds.svg",
            "Open file descriptors per node",
            "s",
            "descriptors",
            &over_time(&|s| s.fds as f64),
        )?;
        let mut html = String::new();
        let _ = write!(
            html,
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>traceless-sim net: {name}</title>\
             <style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}pre{{background:#f4f4f4;padding:1em}}\
             img{{max-width:100%}}</style></head><body><h1>traceless-sim net: {name}</h1><pre>{head}</pre>",
            name = esc(&self.scenario),
            head = esc(&self.headline())
        );
        for p in &plots {
            let _ = write!(html, "<h2>{p}</h2><img src=\"{p}\" alt=\"{p}\">");
        }
        let _ = write!(
            html,
            "<h2>Timeline</h2><pre>{}</pre>",
            esc(&self.events.join("\n"))
        );
        let _ = write!(html, "</body></html>");
        std::fs::write(dir.join("report.html"), html)?;
        Ok(plots)
    }
}
