//! The timing loops the hand-rolled benches share, on the CPU time of the measuring
//! thread: this machine is shared, and wall-clock rates of single-threaded work
//! sink with the load of other processes.

use std::time::Duration;

/// CPU time the calling thread has used.
pub fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Calls `f` repeatedly for at least `budget` as measured by `clock`, reading the
/// clock only between batches of calls that double until a batch takes 5 ms (a
/// thread-CPU-time read is a system call, too slow to make per call of fast work).
/// Returns the calls made and the time they took, in seconds.
pub fn time_slice(
    clock: impl Fn() -> Duration,
    budget: Duration,
    mut f: impl FnMut(),
) -> (usize, f64) {
    let started = clock();
    let mut calls = 0;
    let mut batch = 1;
    loop {
        let batch_started = clock();
        for _ in 0..batch {
            f();
        }
        calls += batch;
        let now = clock();
        if now - started >= budget {
            return (calls, (now - started).as_secs_f64());
        }
        if now - batch_started < Duration::from_millis(5) {
            batch *= 2;
        }
    }
}

/// Runs `f` (one warm-up call, then repeatedly for a second of thread CPU time),
/// prints `label` with the rate of `per_iter` units per call, and returns that rate
/// per second.
#[allow(dead_code)] // not every bench including this file uses it
pub fn rate(label: &str, per_iter: usize, mut f: impl FnMut()) -> f64 {
    f();
    let (calls, secs) = time_slice(thread_cpu_time, Duration::from_secs(1), f);
    let r = (calls * per_iter) as f64 / secs;
    println!("  {label:<52} {r:>12.0} /s");
    r
}
