//! How the figures move with adoption rate, case load and publication form: the
//! scenario is rerun once per value in its `[sweep]` section, each rerun against
//! fresh nodes.

use std::path::Path;

use indicatif::ProgressBar;

use crate::report::{FormFigures, Report, SweepPoint};
use crate::run::{run, RunError, RunOptions};
use crate::scenario::Scenario;

/// The figures of `r` as one sweep point.
pub fn point(parameter: &str, value: f64, r: &Report) -> SweepPoint {
    let o = &r.outcome;
    SweepPoint {
        parameter: parameter.into(),
        value,
        infected: o.infected,
        uploads: o.uploads,
        truly_close: o.truly_close,
        notified: o.notified,
        precision: o.precision,
        recall: o.recall,
        population_coverage: if o.truly_close_all_people == 0 {
            0.0
        } else {
            o.true_positives as f64 / o.truly_close_all_people as f64
        },
        download_bytes_per_phone_per_day: r.cost.download_bytes_per_phone_per_day,
        delay_hours_p50: o.delay_hours_p50,
    }
}

/// Runs `s`, then its sweep; the sweep points go into the main report.
pub fn run_with_sweep(s: &Scenario, opts: &RunOptions, work: &Path) -> Result<Report, RunError> {
    let mut report = run(s, opts, work)?;
    report.forms.push(FormFigures::of(&report));
    let mut forms: Vec<Scenario> = Vec::new();
    for &f in &s.sweep.publication {
        if f != s.app.publication && forms.iter().all(|v| v.app.publication != f) {
            let mut v = s.clone();
            v.app.publication = f;
            forms.push(v);
        }
    }
    let mut variants: Vec<(&str, f64, Scenario)> = Vec::new();
    for &a in &s.sweep.adoption {
        let mut v = s.clone();
        v.app.adoption = a;
        variants.push(("adoption", a, v));
    }
    for &i in &s.sweep.initial_infected {
        let mut v = s.clone();
        v.epidemic.initial_infected = i;
        variants.push(("initial_infected", f64::from(i), v));
    }
    let bar = if opts.progress && variants.len() + forms.len() > 0 {
        ProgressBar::new((variants.len() + forms.len()) as u64).with_message("sweep")
    } else {
        ProgressBar::hidden()
    };
    for v in forms {
        let r = run(&v, &RunOptions::default(), work)?;
        report.forms.push(FormFigures::of(&r));
        bar.inc(1);
    }
    for (name, value, v) in variants {
        let r = run(&v, &RunOptions::default(), work)?;
        report.sweep.push(point(name, value, &r));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(report)
}
