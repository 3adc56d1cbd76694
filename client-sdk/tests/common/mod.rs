//! Shared fixtures: a manual clock, phones that meet, an authority that signs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use traceless_protocol::wire::Publication;
use traceless_protocol::{
    day_of_interval, AuthorityKey, Batch, Clock, DiagnosisKey, ManualClock, PeriodBatch, Upload,
};
use traceless_sdk::{Sdk, SdkConfig};

/// 2023-11-14 00:00 UTC.
pub const DAY0: u32 = 19_675;

/// Unix seconds of `minute` on `day`.
pub fn at(day: u32, minute: u64) -> u64 {
    u64::from(day) * 86_400 + minute * 60
}

/// An in-memory phone on `clock`.
pub fn phone(clock: &ManualClock) -> Sdk {
    Sdk::in_memory(SdkConfig::default(), Arc::new(clock.clone())).expect("in-memory SDK opens")
}

/// `listener` hears `speaker` every `step` seconds for `minutes` from now, at `rssi`.
pub fn meet(clock: &ManualClock, speaker: &mut Sdk, listener: &mut Sdk, minutes: u64, rssi: i8) {
    let end = clock.now() + minutes * 60;
    while clock.now() < end {
        let ad = speaker.advertisement().expect("advertises");
        listener
            .record_sighting(&ad.to_bytes(), rssi, None, clock.now())
            .expect("records");
        clock.advance(240);
    }
}

/// A health authority signing batches with consecutive sequence numbers.
pub struct Authority {
    pub key: AuthorityKey,
    pub next_sequence: u64,
}

impl Authority {
    pub fn new(origin: &str) -> Self {
        Authority {
            key: AuthorityKey::generate(origin, 1),
            next_sequence: 1,
        }
    }

    /// Trusts this authority on `sdk`.
    pub fn trusted_by(&self, sdk: &mut Sdk) {
        sdk.trust_authority(&self.key.origin, self.key.key_id, self.key.verifying_key())
            .expect("valid origin");
    }

    /// Signs `keys` of one day into a batch published at `now`.
    pub fn batch(&mut self, keys: Vec<DiagnosisKey>, now: u64) -> Vec<u8> {
        let day = day_of_interval(keys[0].rolling_start);
        let batch = Batch {
            origin: self.key.origin.clone(),
            sequence: self.next_sequence,
            created_at: now,
            day,
            keys,
        };
        self.next_sequence += 1;
        batch.sign(&self.key).expect("origin matches").encode()
    }

    /// What a gateway publishing period batches (SPEC.md §5.9) does with
    /// upload bundles: one batch of all their keys, as phones are served it.
    pub fn publish_period(&mut self, bundles: &[&[u8]], now: u64) -> Vec<u8> {
        let keys = bundles
            .iter()
            .flat_map(|b| Upload::decode(b, now).expect("bundle decodes").keys)
            .collect();
        let batch = PeriodBatch::from_keys(self.key.origin.clone(), self.next_sequence, now, keys);
        self.next_sequence += 1;
        batch
            .sign_with(&self.key, Publication::default())
            .expect("origin matches")
            .encode()
    }

    /// What a gateway does with an upload bundle: one batch per key day.
    pub fn publish_upload(&mut self, bundle: &[u8], now: u64) -> Vec<Vec<u8>> {
        let upload = Upload::decode(bundle, now).expect("bundle decodes");
        let mut days: Vec<u32> = upload
            .keys
            .iter()
            .map(|k| day_of_interval(k.rolling_start))
            .collect();
        days.sort_unstable();
        days.dedup();
        days.into_iter()
            .map(|d| {
                let keys = upload
                    .keys
                    .iter()
                    .filter(|k| day_of_interval(k.rolling_start) == d)
                    .cloned()
                    .collect();
                self.batch(keys, now)
            })
            .collect()
    }
}

/// valgrind as the C programs run under it: memory errors and definite or
/// indirect leaks fail the run (exit code 3).
pub const VALGRIND: [&str; 5] = [
    "valgrind",
    "--quiet",
    "--error-exitcode=3",
    "--leak-check=full",
    "--errors-for-leak-kinds=definite,indirect",
];

/// Runs `exe` with `args`, behind `prefix` (e.g. [`VALGRIND`], checked to be
/// installed) if not empty; asserts it succeeded and printed "OK" last, and
/// returns its output.
pub fn run_c(prefix: &[&str], exe: &Path, args: &[&std::ffi::OsStr]) -> String {
    let mut cmd = match prefix.split_first() {
        Some((p, rest)) => {
            let installed = Command::new(p).arg("--version").output();
            assert!(
                installed.is_ok_and(|o| o.status.success()),
                "{p} is not installed (.ci/install-sdk.sh installs it)"
            );
            let mut c = Command::new(p);
            c.args(rest).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    let out = cmd.args(args).output().expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} {args:?} failed: {stdout}\n{stderr}",
        exe.display()
    );
    assert!(stdout.trim_end().ends_with("OK"), "{stdout}");
    stdout
}

/// Compiles `tests/c/<program>.c` with the system C compiler against the
/// static library cargo built for this test run (it compiles the lib with
/// every crate type into `target/<profile>/deps/`, beside the test executables).
pub fn compile_c(program: &str, out: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exe = std::env::current_exe().expect("test executable path");
    let lib = exe
        .parent()
        .expect("in a directory")
        .join("libtraceless_sdk.a");
    assert!(lib.exists(), "{} is missing", lib.display());
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g", "-I"])
        .arg(root.join("include"))
        .arg(root.join(format!("tests/c/{program}.c")))
        .arg(&lib)
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(out)
        .status()
        .expect("a C compiler (cc) is installed");
    assert!(status.success(), "compiling {program}.c failed");
}

/// Every file under `dir`, recursively.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files.extend(walk(&p));
        } else {
            files.push(p);
        }
    }
    files
}

/// The bytes of every file under `dir`, concatenated (what a thief of the
/// phone's storage can scan).
pub fn all_bytes(dir: &Path) -> Vec<u8> {
    walk(dir)
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
