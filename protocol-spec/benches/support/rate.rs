//! The timing loops the hand-rolled benches share, on the CPU time of the measuring
//! thread: this machine is shared, and wall-clock rates of single-threaded work
//! sink with the load of other processes.
//!
//! Each bench includes this file as its own module and uses a part of it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

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

/// What a measurement is timed by.
#[allow(dead_code)] // not every bench including this file times by the wall clock
#[derive(Clone, Copy)]
pub enum Timer {
    /// CPU time of the measuring thread: single-threaded work, unaffected by
    /// other processes taking turns on the core (this machine is shared).
    ThreadCpu,
    /// Wall-clock time: work spread over threads (affected by machine load).
    Wall,
}

impl Timer {
    pub fn now(self) -> Duration {
        match self {
            Timer::ThreadCpu => thread_cpu_time(),
            Timer::Wall => EPOCH.elapsed(),
        }
    }
}

static EPOCH: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

/// Round-robin timing: each measurement runs for a ~0.1 s slice in every round and
/// keeps its best rate, so all of them see the same machine conditions.
#[derive(Default)]
pub struct Contest<'a> {
    runs: Vec<Run<'a>>,
}

/// Units of work per call, its timer, and the work.
type Run<'a> = (usize, Timer, Box<dyn FnMut() + 'a>);

impl<'a> Contest<'a> {
    /// Adds `run`, which does `units` units of work per call; returns its slot.
    pub fn add(&mut self, units: usize, timer: Timer, run: impl FnMut() + 'a) -> usize {
        self.runs.push((units, timer, Box::new(run)));
        self.runs.len() - 1
    }

    /// Best units per second of each run, by slot.
    pub fn run(mut self, rounds: usize) -> Vec<f64> {
        let mut best = vec![0.0f64; self.runs.len()];
        for (_, _, run) in &mut self.runs {
            run(); // warm-up
        }
        for _ in 0..rounds {
            for ((units, timer, run), best) in self.runs.iter_mut().zip(&mut best) {
                let (calls, secs) =
                    time_slice(|| timer.now(), Duration::from_millis(100), &mut *run);
                *best = best.max((calls * *units) as f64 / secs);
            }
        }
        best
    }
}
