//! The C ABI from C: `tests/c/full_day.c` compiled with the system C compiler,
//! linked against the static library, run once natively and once under valgrind.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::*;
use traceless_protocol::filter::{filter_entries, FILTER_SEED_LEN};
use traceless_protocol::{
    day_of_interval, Clock, DayFilter, EntryFilter, FilterEntry, ManualClock, RiskConfig,
    RiskParameters, Upload,
};

/// Alice's broadcasts of 09:00-09:30 as heard by the C phone, her batch, her
/// day filter, the authority's trust entry and the times.
fn write_inputs(dir: &Path) {
    let clock = ManualClock::new(at(DAY0, 9 * 60));
    let mut alice = phone(&clock);
    let mut heard = Vec::new();
    for _ in 0..7 {
        let ad = alice.advertisement().unwrap();
        heard.extend_from_slice(&clock.now().to_le_bytes());
        heard.extend_from_slice(&ad.to_bytes());
        clock.advance(300);
    }
    let published_at = at(DAY0 + 1, 6 * 60);
    clock.set(published_at);
    let bundle = alice.diagnosis_upload(b"code", DAY0, &[]).unwrap();
    let mut authority = Authority::new("c.health");
    let day0 = Upload::decode(&bundle, published_at)
        .unwrap()
        .keys
        .into_iter()
        .filter(|k| k.rolling_start / 144 == DAY0)
        .collect();
    let batch = authority.batch(day0, published_at);
    // The same visit in the filter form: a day filter of every DAY0 interval.
    let bundle = alice.filter_diagnosis_upload(b"code", DAY0, &[]).unwrap();
    let upload = Upload::decode(&bundle, published_at).unwrap();
    let entries: Vec<FilterEntry> = upload
        .keys
        .iter()
        .zip(&upload.filter_intervals)
        .flat_map(|(k, m)| filter_entries(k, m))
        .filter(|&(i, _)| day_of_interval(i) == DAY0)
        .map(|(_, e)| e)
        .collect();
    let filter = DayFilter {
        origin: "c.health".into(),
        day: DAY0,
        revision: 1,
        created_at: published_at,
        filter: EntryFilter::build(&entries, [5; FILTER_SEED_LEN]).unwrap(),
    }
    .sign(&authority.key)
    .unwrap()
    .encode();
    // As a node serves it: the part in a `FilterParts`.
    let filter = traceless_protocol::FilterParts {
        parts: vec![filter],
    }
    .encode();
    let mut trust = b"c.health\0".to_vec();
    trust.extend_from_slice(&authority.key.key_id.to_le_bytes());
    trust.extend_from_slice(authority.key.verifying_key().as_bytes());
    let mut times = at(DAY0, 0).to_le_bytes().to_vec();
    times.extend_from_slice(&published_at.to_le_bytes());
    std::fs::write(dir.join("heard.bin"), heard).unwrap();
    std::fs::write(dir.join("batch.bin"), batch).unwrap();
    std::fs::write(dir.join("filter.bin"), filter).unwrap();
    std::fs::write(dir.join("authority.bin"), trust).unwrap();
    std::fs::write(dir.join("times.bin"), times).unwrap();
    let risk = RiskConfig {
        origin: "c.health".into(),
        revision: 1,
        created_at: published_at,
        parameters: RiskParameters {
            threshold: 1000.0,
            ..RiskParameters::default()
        },
    }
    .sign(&authority.key)
    .unwrap()
    .encode();
    std::fs::write(dir.join("risk.bin"), risk).unwrap();
}

fn run(prefix: &[&str], exe: &Path, tmp: &Path, name: &str) -> String {
    run_c(prefix, exe, &[tmp.join(name).as_os_str(), tmp.as_os_str()])
}

#[test]
fn a_c_program_drives_a_full_day_through_the_static_library() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = tmp.path().join("full_day");
    compile_c("full_day", &exe);
    write_inputs(tmp.path());
    let out = run(&[], &exe, tmp.path(), "native");
    // 7 scans 5 minutes apart over 4 tokens of one key: 30 minutes from the
    // first to the last scan plus one 5-minute cadence.
    assert!(
        out.contains(&format!("day={DAY0} minutes=35.0 high_risk=1")),
        "{out}"
    );
    // The filter of the same visit matched, and was not counted a second time.
    assert!(
        out.contains(&format!("after filter: day={DAY0} minutes=35.0")),
        "{out}"
    );
    assert!(out.contains("upload_len=1024"), "{out}");
    assert!(out.contains("sealed_len=1073"), "{out}");
    // Nothing is past retention the morning after; 15 days on, DAY0 is shredded.
    assert!(out.contains("expired after sync: 0"), "{out}");
    assert!(out.contains("expired 15 days on: 1"), "{out}");
}

#[test]
fn the_c_program_runs_clean_under_valgrind() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = tmp.path().join("full_day");
    compile_c("full_day", &exe);
    write_inputs(tmp.path());
    run(&VALGRIND, &exe, tmp.path(), "valgrind");
}
