//! The generated Kotlin and Python bindings, run by their real hosts (the JVM
//! through JNA, CPython through ctypes) against the SDK's shared library and a
//! real gateway and relay on loopback: `client-sdk/tests/kotlin/Lifecycle.kt`
//! and `client-sdk/tests/python/lifecycle.py` walk the whole lifecycle and the
//! bad input; this driver starts the nodes, hands the programs their
//! addresses and keys, and publishes the upload when a program says it posted.
//!
//! Needs a JDK, JNA and kotlinc (`.ci/install-bindings.sh`) and python3. A
//! missing tool fails the test with that hint, unless `TRACELESS_SKIP_BINDINGS=1`
//! opts out explicitly.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use traceless_protocol::venue::{
    complete_trace, create_venue, PreTrace, VenueDescription, WarningBatch,
};
use traceless_protocol::{AuthorityKey, Clock, GatewaySealKey};
use traceless_sim::http::request;
use traceless_sim::nodes::{Nodes, ORIGIN};

const DAY: u32 = 19_675;
const NOON: u64 = DAY as u64 * 86_400 + 12 * 3600;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The SDK's shared library cargo built for this test run (every crate type of
/// a dependency lands in `target/<profile>/deps/`, beside the test executables).
fn library_dir() -> PathBuf {
    let dir = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    let lib = dir.join(format!(
        "{}traceless_sdk{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    assert!(lib.exists(), "{} is missing", lib.display());
    dir
}

/// `false` (skip) only when the tool is missing and the opt-out is set.
fn have(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("TRACELESS_SKIP_BINDINGS").is_some(),
            "`{tool}` is not installed: run `bash .ci/install-bindings.sh` \
             (or set TRACELESS_SKIP_BINDINGS=1 to skip the binding tests)"
        );
        eprintln!("TRACELESS_SKIP_BINDINGS is set and {tool} is missing: skipped");
    }
    found
}

/// A pharmacy's poster URL and the authority's signed warning for a case
/// there from `visit` to 30 minutes after (as the venue owner and the
/// authority would make it, SPEC.md §12): the host checks in at `visit` and
/// syncs the warning later.
fn venue_and_warning(authority: &AuthorityKey, visit: u64, now: u64) -> (String, Vec<u8>) {
    let seal = GatewaySealKey::generate();
    let poster = VenueDescription::new("Apotheke am Markt", "Marktplatz 3, Leipzig", 3, 15, 120);
    let venue = create_venue(&poster, &seal.public_bytes()).unwrap();
    let pre = venue
        .trace_secret
        .pre_trace(visit, visit + 30 * 60, now)
        .unwrap();
    let pre = PreTrace::decode(&pre.encode()).unwrap();
    let traced = complete_trace(&pre, &seal, "Bitte testen lassen", 8, now).unwrap();
    let batch = WarningBatch {
        origin: authority.origin.clone(),
        sequence: 1,
        created_at: now,
        warnings: traced.warnings,
    }
    .sign(authority)
    .unwrap()
    .encode();
    (venue.entry.to_url("https://traceless.example/c"), batch)
}

/// Starts a gateway and a relay, runs `host` with their addresses and keys (and
/// a venue's URL with a warning for it), answers its `UPLOADED` by publishing,
/// and checks it ends with `OK`.
fn run_lifecycle(mut host: Command) {
    let tmp = tempfile::tempdir().unwrap();
    let nodes = Nodes::start(&tmp.path().join("nodes"), 1, NOON, 1, 86_400).unwrap();
    let relay = format!("http://{}", nodes.relays[0].http_addr);
    let gateway = format!("http://{}", nodes.gateway.http_addr);
    let keys = request(nodes.gateway.http_addr, "GET", "/v1/gateway-keys", b"")
        .unwrap()
        .try_json()
        .unwrap();
    let files = tmp.path().join("phones");
    std::fs::create_dir_all(&files).unwrap();
    let visit = NOON - 86_400;
    let (venue_url, warning) = venue_and_warning(&nodes.authority, visit, NOON);
    let started = Instant::now();
    let mut child = host
        .args([
            relay.as_str(),
            gateway.as_str(),
            ORIGIN,
            &hex::encode(nodes.authority.verifying_key().to_bytes()),
            keys["seal_public_key"].as_str().unwrap(),
            keys["token_keys"][0]["public_key"].as_str().unwrap(),
            &nodes.codes[0],
            files.to_str().unwrap(),
            &visit.to_string(),
            &venue_url,
            &hex::encode(warning),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line == "UPLOADED" {
            // The gateway publishes at the next period boundary (its own job
            // may get there first).
            nodes.clock.advance(3_600);
            nodes.release_due();
            wait_for_batch(&nodes);
            writeln!(stdin, "PUBLISHED {}", nodes.clock.now()).unwrap();
            stdin.flush().unwrap();
        }
        lines.push(line);
    }
    let status = child.wait().unwrap();
    eprintln!("host program ran {:.1} s", started.elapsed().as_secs_f64());
    assert!(status.success(), "the host program failed: {lines:?}");
    assert_eq!(
        lines.last().map(String::as_str),
        Some("OK"),
        "output: {lines:?}"
    );
    nodes.shutdown();
}

/// Waits (at most 20 s) until the relay lists every batch the gateway published
/// (a period publishes several: one per day, padding included).
fn wait_for_batch(nodes: &Nodes) {
    let end = Instant::now() + Duration::from_secs(20);
    let path = format!("/v1/batches?origin={ORIGIN}&after=0");
    let count = |addr| {
        request(addr, "GET", &path, b"")
            .unwrap()
            .try_json()
            .unwrap()["batches"]
            .as_array()
            .map_or(0, Vec::len)
    };
    while Instant::now() < end {
        let published = count(nodes.gateway.http_addr);
        if published > 0 && count(nodes.relays[0].http_addr) == published {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the batch never reached the relay");
}

#[test]
fn kotlin_on_the_jvm_walks_the_lifecycle_against_real_nodes() {
    if !have("kotlinc") || !have("java") {
        return;
    }
    let sdk = repo().join("client-sdk");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kotlin");
    std::fs::create_dir_all(&out).unwrap();
    let jar = out.join("lifecycle.jar");
    let jna = std::env::var("JNA_JAR").unwrap_or_else(|_| "/usr/share/java/jna.jar".into());
    // One kotlinc invocation: the generated bindings and the program together.
    let started = Instant::now();
    let status = Command::new("kotlinc")
        .arg(sdk.join("bindings/kotlin/uniffi/traceless_sdk/traceless_sdk.kt"))
        .arg(sdk.join("tests/kotlin/Lifecycle.kt"))
        .args(["-nowarn", "-include-runtime", "-cp", &jna, "-d"])
        .arg(&jar)
        .status()
        .unwrap();
    assert!(status.success(), "kotlinc failed");
    eprintln!("kotlinc took {:.1} s", started.elapsed().as_secs_f64());
    let mut java = Command::new("java");
    java.arg(format!("-Djna.library.path={}", library_dir().display()))
        .arg("-cp")
        .arg(format!("{}:{jna}", jar.display()))
        .arg("LifecycleKt");
    run_lifecycle(java);
}

#[test]
fn python_walks_the_lifecycle_against_real_nodes() {
    if !have("python3") {
        return;
    }
    let sdk = repo().join("client-sdk");
    // The generated module loads the library from its own directory.
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("python");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(
        sdk.join("bindings/python/traceless_sdk.py"),
        out.join("traceless_sdk.py"),
    )
    .unwrap();
    let lib = format!(
        "{}traceless_sdk{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    std::fs::copy(library_dir().join(&lib), out.join(&lib)).unwrap();
    let mut python = Command::new("python3");
    python
        .arg(sdk.join("tests/python/lifecycle.py"))
        .env("PYTHONPATH", &out);
    run_lifecycle(python);
}

/// Sync rate through Kotlin/JNA against the same sync in Rust, in one run: 14
/// signed daily batches of 2,000 keys each against 2,000 stored sightings, on
/// disk, both on the library this test run built. Prints both and the ratio.
/// Run: `cargo test -p traceless-tests --test bindings -- --ignored --nocapture`.
#[test]
#[ignore = "a benchmark: prints the Kotlin-vs-Rust sync ratio"]
fn kotlin_sync_rate_against_rust() {
    use rand::{Rng, RngCore};
    use std::sync::Arc;
    use traceless_protocol::{Batch, DiagnosisKey, ManualClock, Tek};
    use traceless_sdk::{MasterKey, Sdk, SdkConfig};

    if !have("kotlinc") || !have("java") {
        return;
    }
    const FIRST_DAY: u32 = 20_400;
    const DAYS: u32 = 14;
    const KEYS_PER_DAY: usize = 2_000;
    const SIGHTINGS: usize = 2_000;
    let now = u64::from(FIRST_DAY + DAYS) * 86_400 + 3_600;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut rng = rand::thread_rng();
    let mut sightings = Vec::new();
    for _ in 0..SIGHTINGS {
        let mut payload = [0u8; 20];
        rng.fill_bytes(&mut payload);
        let at = u64::from(FIRST_DAY) * 86_400 + rng.gen_range(0..u64::from(DAYS) * 86_400);
        sightings.push((payload, at));
    }
    let lines: Vec<String> = sightings
        .iter()
        .map(|(p, at)| format!("{} {at}", hex::encode(p)))
        .collect();
    std::fs::write(data.join("sightings.txt"), lines.join("\n")).unwrap();
    let authority = traceless_protocol::AuthorityKey::generate(ORIGIN, 1);
    let mut batches = Vec::new();
    for (i, day) in (FIRST_DAY..FIRST_DAY + DAYS).enumerate() {
        let keys = (0..KEYS_PER_DAY)
            .map(|_| {
                let mut tek = [0u8; 16];
                rng.fill_bytes(&mut tek);
                DiagnosisKey {
                    tek: Tek(tek),
                    rolling_start: day * 144,
                    rolling_period: 144,
                    transmission_risk: 3,
                    days_since_onset: 0,
                }
            })
            .collect();
        let batch = Batch {
            origin: ORIGIN.into(),
            sequence: i as u64 + 1,
            created_at: now - 60,
            day,
            keys,
        };
        let bytes = batch.sign(&authority).unwrap().encode();
        std::fs::write(data.join(format!("batch-{i:03}.bin")), &bytes).unwrap();
        batches.push(bytes);
    }
    let authority_hex = hex::encode(authority.verifying_key().to_bytes());

    // Rust, in process.
    let mut sdk = Sdk::open(
        &tmp.path().join("rust-phone"),
        &MasterKey([7; 32]),
        SdkConfig::default(),
        Arc::new(ManualClock::new(now)),
    )
    .unwrap();
    sdk.trust_authority(ORIGIN, 1, authority.verifying_key())
        .expect("valid origin");
    for (payload, at) in &sightings {
        sdk.record_sighting(payload, -60, None, *at).unwrap();
    }
    let started = Instant::now();
    let keys: usize = batches
        .iter()
        .map(|b| sdk.sync_batch(b).unwrap().keys)
        .sum();
    let rust_ms = started.elapsed().as_secs_f64() * 1e3;
    assert_eq!(keys, KEYS_PER_DAY * DAYS as usize);
    drop(sdk);

    // Kotlin on the JVM through JNA, same data.
    let sdk_dir = repo().join("client-sdk");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kotlin-bench");
    std::fs::create_dir_all(&out).unwrap();
    let jar = out.join("bench.jar");
    let jna = std::env::var("JNA_JAR").unwrap_or_else(|_| "/usr/share/java/jna.jar".into());
    let status = Command::new("kotlinc")
        .arg(sdk_dir.join("bindings/kotlin/uniffi/traceless_sdk/traceless_sdk.kt"))
        .arg(sdk_dir.join("tests/kotlin/SyncBench.kt"))
        .args(["-nowarn", "-include-runtime", "-cp", &jna, "-d"])
        .arg(&jar)
        .status()
        .unwrap();
    assert!(status.success(), "kotlinc failed");
    let output = Command::new("java")
        .arg(format!("-Djna.library.path={}", library_dir().display()))
        .arg("-cp")
        .arg(format!("{}:{jna}", jar.display()))
        .arg("SyncBenchKt")
        .args([
            data.to_str().unwrap(),
            ORIGIN,
            &authority_hex,
            &now.to_string(),
        ])
        .arg(tmp.path().join("kotlin-phone"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let field = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(field("KEYS ") as usize, keys);
    let kotlin_ms = field("SYNC_MS ");
    let total = keys as f64;
    println!(
        "sync of {keys} keys against {SIGHTINGS} sightings: Rust {rust_ms:.0} ms \
         ({:.0} keys/s), Kotlin/JNA {kotlin_ms:.0} ms ({:.0} keys/s), ratio Kotlin/Rust {:.2}",
        total / rust_ms * 1e3,
        total / kotlin_ms * 1e3,
        kotlin_ms / rust_ms
    );
}
