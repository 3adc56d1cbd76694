//! `traceless-node bench`: ingest, download and propagation figures.

/// Benchmark options.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {}

/// Runs the benchmarks.
pub async fn run(_args: BenchArgs) -> Result<(), String> {
    Err("not yet".into())
}
