//! The one-second rate loop the hand-rolled benches share.

use std::time::Instant;

/// Runs `f` (one warm-up call, then repeatedly for a second), prints `label` with
/// the rate of `per_iter` units per call, and returns that rate per second.
pub fn rate(label: &str, per_iter: usize, mut f: impl FnMut()) -> f64 {
    f();
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed().as_secs_f64() < 1.0 {
        f();
        n += per_iter;
    }
    let r = n as f64 / started.elapsed().as_secs_f64();
    println!("  {label:<52} {r:>12.0} /s");
    r
}
