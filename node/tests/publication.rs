//! The publication schedule (SPEC.md §6.4) over real nodes, real sled and real
//! HTTP on a `ManualClock`: keys appear only at the period boundary, mixed and
//! padded to k; nothing public moves between boundaries, whether a sealed upload
//! was real or a dummy; clock jumps publish no period twice and none silently;
//! a full pool refuses uploads with a typed answer.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use rand::{Rng, SeedableRng};
use traceless_node::config::{TokenKeyFile, UploadGateway};
use traceless_node::{upload_codes, Config, ManualClock, RunningNode};
use traceless_protocol::*;

/// A period boundary some minutes after [`NOW`].
fn first_boundary() -> u64 {
    (NOW / 3600 + 1) * 3600
}

/// The days of the batches of [`ORIGIN`] served by `addr`, each decoded as a
/// one-day batch.
fn served_batches(addr: SocketAddr, now: u64) -> Vec<Batch> {
    let list = get(addr, &format!("/v1/batches?origin={ORIGIN}&after=0")).json();
    list["batches"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| batch_days(&get(addr, b["url"].as_str().unwrap()).body, &trust(), now))
        .collect()
}

/// A gateway with k = `k` and `codes` upload codes.
async fn gateway(
    dir: &Path,
    clock: &ManualClock,
    k: u64,
    codes: usize,
) -> (RunningNode, Vec<String>) {
    let mut c = gateway_config(dir);
    c.publication.min_keys = k;
    let (codes, records) = upload_codes::issue(codes, NOW + 10 * 86_400);
    upload_codes::write_incoming(dir, &records).unwrap();
    (start_node(c, clock).await, codes)
}

fn keys_with_teks(day: u32, n: usize, rng: &mut impl Rng) -> Vec<DiagnosisKey> {
    (0..n)
        .map(|_| DiagnosisKey {
            tek: Tek(rng.gen()),
            rolling_start: day_start_interval(day),
            rolling_period: 144,
            transmission_risk: 4,
            days_since_onset: 1,
        })
        .collect()
}

/// Keys uploaded in a period appear only at its boundary, with `created_at` the
/// boundary, every upload's keys of a day in one batch, in an order that keeps
/// nothing of the arrival order. (Before: one batch per upload per day, at once,
/// `created_at` the second of the POST.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_appear_at_the_boundary_mixed_in_one_batch_per_day() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let (node, codes) = gateway(dir.path(), &clock, 0, 10).await;
    let addr = node.http_addr;
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    let mut arrival = Vec::new();
    for (i, code) in codes.iter().enumerate() {
        let mut keys = keys_with_teks(TODAY - 2, 10, &mut rng);
        keys.extend(keys_with_teks(TODAY - 3, 1, &mut rng));
        arrival.extend(
            keys.iter()
                .filter(|k| k.rolling_start == day_start_interval(TODAY - 2))
                .map(|k| (k.tek.clone(), i)),
        );
        clock.set(NOW + 60 * i as u64);
        let r = http(addr, "POST", "/v1/upload", &[], &upload_body(code, keys));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["pooled_keys"], 11);
        assert!(
            served_batches(addr, clock.now()).is_empty(),
            "nothing before the boundary"
        );
    }
    clock.set(first_boundary() - 1);
    assert!(node.core.run_period().unwrap().is_none(), "not yet");
    assert!(served_batches(addr, clock.now()).is_empty());

    let report = next_period(&node.core, &clock).expect("the period is published");
    assert_eq!(report.boundary, first_boundary());
    assert_eq!((report.real_keys, report.padding_keys), (110, 0));
    let batches = served_batches(addr, clock.now());
    assert_eq!(batches.len(), 2, "two days, not one batch per upload");
    assert!(
        batches.iter().all(|b| b.sequence == batches[0].sequence),
        "one period batch"
    );
    assert!(batches.iter().all(|b| b.created_at == first_boundary()));
    let big = batches.iter().find(|b| b.day == TODAY - 2).unwrap();
    assert_eq!(big.keys.len(), 100);
    // Which upload each served key came from, in served order: adjacent keys of
    // one upload happen by chance (9/99 ≈ 0.09 for a random order); in arrival
    // order they are 90/99.
    let owner: Vec<usize> = big
        .keys
        .iter()
        .map(|k| arrival.iter().find(|(t, _)| *t == k.tek).unwrap().1)
        .collect();
    let same = owner.windows(2).filter(|w| w[0] == w[1]).count() as f64 / 99.0;
    assert!(same < 0.3, "adjacent keys of one upload: {same}");
    assert_ne!(
        big.keys.iter().map(|k| k.tek.clone()).collect::<Vec<_>>(),
        arrival.iter().map(|(t, _)| t.clone()).collect::<Vec<_>>()
    );
    node.shutdown().await;
}

/// A period is padded to k with random keys shaped like real ones, counted on
/// the transparency page and in `/metrics`; a period without uploads is padded
/// too, so an empty period looks like a busy one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn periods_are_padded_to_k_and_nothing_public_counts_the_padding() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let (node, codes) = gateway(dir.path(), &clock, 50, 1).await;
    let addr = node.http_addr;
    let real = keys_of_day(TODAY - 4, 3);
    let r = http(
        addr,
        "POST",
        "/v1/upload",
        &[],
        &upload_body(&codes[0], real.clone()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let first = next_period(&node.core, &clock).unwrap();
    assert_eq!(first.real_keys, 3);
    assert!(
        (47..=52).contains(&first.padding_keys),
        "{}",
        first.padding_keys
    );
    let served: Vec<DiagnosisKey> = served_batches(addr, clock.now())
        .into_iter()
        .flat_map(|b| b.keys)
        .collect();
    assert_eq!(served.len(), 3 + first.padding_keys);
    for k in &real {
        assert!(served.contains(k));
    }
    // Padding copies the real keys' shape (here: all of day TODAY-4, risk 4).
    assert!(served
        .iter()
        .all(|k| k.rolling_start == real[0].rolling_start
            && k.transmission_risk == 4
            && k.days_since_onset == 1));

    let empty = next_period(&node.core, &clock).unwrap();
    assert_eq!(empty.real_keys, 0);
    assert!((50..=55).contains(&empty.padding_keys));
    // Nothing public counts the padding or the pool: with them, each period's
    // figures would tell its real keys (published minus padding) and its
    // uploads (the pool's growth).
    let page = get(addr, "/").text();
    assert!(page.contains("data-min-keys=\"50\""), "{page}");
    assert!(!page.contains("padding-keys"), "{page}");
    let metrics = get(addr, "/metrics").text();
    for leak in ["padding", "pool", "dummy"] {
        assert!(
            !metrics
                .lines()
                .any(|l| l.starts_with("traceless_") && l.contains(leak)),
            "/metrics exposes {leak}: {metrics}"
        );
    }
    node.shutdown().await;
}

/// The clock going back publishes nothing again; going forward by hours
/// publishes the missed periods once, together, at the current boundary
/// (reported as several periods, and logged), and then the schedule goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clock_jumps_publish_no_period_twice_and_none_silently() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let (node, codes) = gateway(dir.path(), &clock, 0, 3).await;
    let addr = node.http_addr;
    let up = |code: &str, keys: Vec<DiagnosisKey>| {
        let r = http(addr, "POST", "/v1/upload", &[], &upload_body(code, keys));
        assert_eq!(r.status, 200, "{}", r.text());
    };
    up(&codes[0], keys_of_day(TODAY - 2, 2));
    // Forward five hours at once: one publication covering five periods.
    clock.set(first_boundary() + 4 * 3600 + 10);
    let r = node.core.run_period().unwrap().unwrap();
    assert_eq!(
        (r.boundary, r.periods, r.real_keys),
        (first_boundary() + 4 * 3600, 5, 2)
    );
    assert!(node.core.run_period().unwrap().is_none(), "once");
    let after_jump = served_batches(addr, clock.now());
    assert_eq!(after_jump.len(), 1);

    // Back three hours: an upload there waits; no period is published again.
    clock.set(first_boundary() + 3600 + 5);
    up(&codes[1], keys_of_day(TODAY - 2, 1));
    assert!(node.core.run_period().unwrap().is_none());
    clock.set(first_boundary() + 4 * 3600 + 3599);
    assert!(node.core.run_period().unwrap().is_none());
    assert_eq!(
        served_batches(addr, clock.now()),
        after_jump,
        "nothing moved"
    );
    // The next boundary after the last published one publishes it, once.
    clock.set(first_boundary() + 5 * 3600);
    let r = node.core.run_period().unwrap().unwrap();
    assert_eq!((r.periods, r.real_keys), (1, 1));
    assert_eq!(served_batches(addr, clock.now()).len(), 2);
    node.shutdown().await;
}

/// A pool at its bound refuses an upload whole, with 503 and a reason, and
/// spends nothing: the same code is accepted once the period is published.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_pool_refuses_uploads_as_busy_and_keeps_the_code() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let mut c = gateway_config(dir.path());
    c.publication.pool_max_keys = 5;
    let (codes, records) = upload_codes::issue(2, NOW + 86_400);
    upload_codes::write_incoming(dir.path(), &records).unwrap();
    let node = start_node(c, &clock).await;
    let addr = node.http_addr;
    let r = http(
        addr,
        "POST",
        "/v1/upload",
        &[],
        &upload_body(&codes[0], keys_of_day(TODAY - 2, 4)),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let body = upload_body(&codes[1], keys_of_day(TODAY - 3, 2));
    let r = http(addr, "POST", "/v1/upload", &[], &body);
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        r.text().contains("publication pool holds 4 keys"),
        "{}",
        r.text()
    );
    assert_eq!(
        node.core.store.pending_count().unwrap(),
        4,
        "nothing dropped"
    );
    next_period(&node.core, &clock).unwrap();
    assert_eq!(node.core.store.pending_count().unwrap(), 0);
    let r = http(addr, "POST", "/v1/upload", &[], &body);
    assert_eq!(r.status, 200, "the code was not spent: {}", r.text());
    node.shutdown().await;
}

/// Every public endpoint of a node, fetched.
fn public_bytes(addr: SocketAddr) -> Vec<(String, u16, String)> {
    let mut paths: Vec<String> = [
        "/",
        "/metrics",
        "/healthz",
        "/v1/origins",
        "/v1/filters",
        "/v1/deletion-log",
        "/v1/gateway-keys",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    paths.push(format!("/v1/batches?origin={ORIGIN}&after=0"));
    for day in TODAY - 14..=TODAY {
        paths.push(format!("/v1/exports/{day}"));
        paths.push(format!("/v1/filters/{ORIGIN}/{day}"));
    }
    paths
        .into_iter()
        .map(|p| {
            let r = get(addr, &p);
            (p, r.status, String::from_utf8_lossy(&r.body).into_owned())
        })
        .collect()
}

/// A sealed upload through a relay, timed.
fn post_sealed(relay: SocketAddr, sealed: &[u8]) -> (u16, Vec<u8>, Duration) {
    let started = Instant::now();
    let r = http(relay, "POST", &format!("/v1/relay/{ORIGIN}"), &[], sealed);
    (r.status, r.body, started.elapsed())
}

/// A gateway taking sealed uploads (token key known to the test) and a relay
/// forwarding to it, both on `clock`.
struct SealedNet {
    _tmp: tempfile::TempDir,
    gateway: RunningNode,
    relay: RunningNode,
    token_key: TokenKey,
}

impl SealedNet {
    async fn start(clock: &ManualClock, period_seconds: u64, k: u64, delay_ms: u64) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let gw_dir = tmp.path().join("gateway");
        let mut g: Config = gateway_config(&gw_dir);
        let token_key = TokenKey::generate(1);
        let token_file = gw_dir.join("tokens-1.key");
        traceless_node::keys::write_token_key(&token_file, &token_key).unwrap();
        let gc = g.gateway.as_mut().unwrap();
        gc.token_keys = vec![TokenKeyFile {
            epoch: 1,
            file: token_file,
        }];
        gc.response_delay_ms = delay_ms;
        gc.uploads_per_minute = 100_000;
        g.publication.min_keys = k;
        g.publication.period_seconds = period_seconds;
        let gateway = start_node(g, clock).await;
        let mut r = relay_config(&tmp.path().join("relay"));
        r.p2p.upload_gateways = vec![UploadGateway {
            origin: ORIGIN.into(),
            address: gateway.p2p_addrs[0].to_string(),
        }];
        r.p2p.bootstrap = gateway.p2p_addrs.iter().map(|a| a.to_string()).collect();
        let relay = start_node(r, clock).await;
        assert!(wait_for_peers(&relay, 1).await);
        SealedNet {
            _tmp: tmp,
            gateway,
            relay,
            token_key,
        }
    }

    /// `n` tokens, as a phone gets them from the issuer (here straight from the key).
    fn tokens(&self, n: usize) -> Vec<UploadToken> {
        let mut out = Vec::new();
        while out.len() < n {
            let request = TokenRequest::new(
                1,
                (n - out.len()).min(traceless_protocol::token::MAX_TOKENS_PER_ISSUANCE),
            )
            .unwrap();
            let response = self.token_key.issue(&request.blinded).unwrap();
            out.extend(
                request
                    .finalize(&response, &self.token_key.public_key())
                    .unwrap(),
            );
        }
        out
    }

    /// A sealed upload (real with `keys`, or a dummy) for the gateway.
    fn sealed(&self, token: &UploadToken, keys: Vec<DiagnosisKey>, dummy: bool) -> Vec<u8> {
        let body = Upload {
            upload_code: Vec::new(),
            token: Some(*token),
            keys,
            dummy,
            filter_intervals: Vec::new(),
            stays: Default::default(),
        }
        .encode_padded()
        .unwrap();
        let seal_key = self
            .gateway
            .core
            .gateway
            .as_ref()
            .unwrap()
            .seal_public_key();
        seal_upload(&seal_key, &body).unwrap()
    }

    async fn shutdown(self) {
        self.relay.shutdown().await;
        self.gateway.shutdown().await;
    }
}

/// Nothing public moves per upload: between boundaries, after a real sealed
/// upload and after a dummy, every public endpoint of the gateway and the relay
/// answers the same bytes as before, and the two uploads got the same answer
/// after the same fixed delay. At the boundary the batch list moves (the
/// control: the fetches would see a change). (Before: the batch list, the
/// transparency page and both nodes' `/metrics` moved on the real upload.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_public_moves_between_boundaries_for_real_or_dummy_uploads() {
    let clock = ManualClock::new(NOW);
    let net = SealedNet::start(&clock, 3600, 20, 300).await;
    let (gateway, relay) = (&net.gateway, &net.relay);
    let tokens = net.tokens(2);
    let sealed = |t, keys, dummy| net.sealed(t, keys, dummy);
    let real_keys = keys_of_day(TODAY - 2, 3);
    let real = sealed(&tokens[0], real_keys.clone(), false);
    let dummy = sealed(&tokens[1], Vec::new(), true);

    let nodes = [gateway.http_addr, relay.http_addr];
    let before: Vec<_> = nodes.iter().map(|a| public_bytes(*a)).collect();
    let real_answer = post_sealed(relay.http_addr, &real);
    let after_real: Vec<_> = nodes.iter().map(|a| public_bytes(*a)).collect();
    let dummy_answer = post_sealed(relay.http_addr, &dummy);
    let after_dummy: Vec<_> = nodes.iter().map(|a| public_bytes(*a)).collect();
    assert_eq!(real_answer.0, 200);
    assert_eq!(
        (real_answer.0, &real_answer.1),
        (dummy_answer.0, &dummy_answer.1),
        "the same answer"
    );
    assert!(
        real_answer.2 >= Duration::from_millis(300) && dummy_answer.2 >= Duration::from_millis(300)
    );
    for (i, node) in ["gateway", "relay"].iter().enumerate() {
        for ((b, r), d) in before[i].iter().zip(&after_real[i]).zip(&after_dummy[i]) {
            assert_eq!(b, r, "{node} {} moved after a real upload", b.0);
            assert_eq!(b, d, "{node} {} moved after a dummy upload", b.0);
        }
    }
    assert_eq!(
        gateway.core.store.pending_count().unwrap(),
        3,
        "the real one is pooled"
    );

    // The boundary: the keys are published, padded, and reach the relay.
    let report = next_period(&gateway.core, &clock).unwrap();
    assert_eq!(report.real_keys, 3);
    assert!(report.padding_keys >= 17);
    assert_ne!(
        public_bytes(gateway.http_addr),
        before[0],
        "the control: the gateway moved"
    );
    assert!(
        wait_until(Duration::from_secs(30), || {
            relay.core.store.all_batches().unwrap().len() == report.batches.len()
        })
        .await,
        "the relay got the period's batches"
    );
    let served: Vec<_> = served_batches(relay.http_addr, clock.now())
        .into_iter()
        .flat_map(|b| b.keys)
        .collect();
    assert!(real_keys.iter().all(|k| served.contains(k)));
    net.shutdown().await;
}

/// What the linkage observer achieved, next to chance.
#[derive(Debug)]
struct Linkage {
    /// Best accuracy at telling real uploads from dummies.
    real_vs_dummy: f64,
    /// Always guessing the more common kind.
    real_vs_dummy_chance: f64,
    /// Share of published real keys attributed to their upload.
    attribution: f64,
    /// Attributing each key to a uniformly drawn upload.
    attribution_chance: f64,
}

/// What the observer polls after every upload: each node's batch list,
/// `/metrics` and transparency page.
fn observed(net: &SealedNet) -> Vec<String> {
    let mut out = Vec::new();
    for addr in [net.gateway.http_addr, net.relay.http_addr] {
        for p in [
            format!("/v1/batches?origin={ORIGIN}&after=0"),
            "/metrics".into(),
            "/".into(),
        ] {
            out.push(String::from_utf8_lossy(&get(addr, &p).body).into_owned());
        }
    }
    out
}

/// The linkage experiment (issue 13): a relay forwards `uploads` sealed
/// uploads (one in four real, three keys each), `gap` seconds apart, and after
/// each — once the nodes' period job has run at the clock's new value — polls
/// every public endpoint. It calls an upload real when new keys appeared after
/// it, or when anything it polls changed after it, or calls every upload a
/// dummy, whichever is right most often; and attributes each new key to the
/// last upload before it appeared.
async fn linkage(period_seconds: u64, k: u64, uploads: usize, gap: u64) -> Linkage {
    let clock = ManualClock::new(first_boundary());
    let net = SealedNet::start(&clock, period_seconds, k, 0).await;
    let tokens = net.tokens(uploads);
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    let mut owner = std::collections::HashMap::new();
    let mut real = Vec::new();
    let mut known = std::collections::HashSet::new();
    let mut called_real = vec![false; uploads];
    let mut changed = vec![false; uploads];
    let mut attributed_right = 0usize;
    let mut last = observed(&net);
    for (i, token) in tokens.iter().enumerate() {
        let is_real = rng.gen_ratio(1, 4);
        let keys = if is_real {
            keys_of_day(TODAY - 2 - (i % 5) as u32, 3)
        } else {
            Vec::new()
        };
        for key in &keys {
            owner.insert(key.tek.clone(), i);
        }
        real.push(is_real);
        let (status, _, _) = post_sealed(net.relay.http_addr, &net.sealed(token, keys, !is_real));
        assert_eq!(status, 200);
        let last_upload = i + 1 == uploads;
        // Time passes until the next upload (after the last one: to its period's end).
        let next = if last_upload {
            net.gateway.core.schedule().publication_of(clock.now())
        } else {
            clock.now() + gap
        };
        clock.set(next);
        net.gateway.core.run_period().unwrap();
        net.relay.core.run_period().unwrap();
        let now = observed(&net);
        changed[i] = now != last;
        let new: Vec<Tek> = served_batches(net.gateway.http_addr, clock.now() + 60)
            .into_iter()
            .flat_map(|b| b.keys)
            .map(|k| k.tek)
            .filter(|t| known.insert(t.clone()))
            .collect();
        if !new.is_empty() {
            called_real[i] = true;
            // The upload right before the change is the best timing guess.
            attributed_right += new.iter().filter(|t| owner.get(*t) == Some(&i)).count();
        }
        last = now;
    }
    let n = uploads as f64;
    let reals = real.iter().filter(|r| **r).count();
    let accuracy =
        |calls: &[bool]| real.iter().zip(calls).filter(|(r, c)| r == c).count() as f64 / n;
    let detector = accuracy(&called_real).max(accuracy(&changed));
    let chance = (reals.max(uploads - reals)) as f64 / n;
    net.shutdown().await;
    Linkage {
        real_vs_dummy: detector.max(chance),
        real_vs_dummy_chance: chance,
        attribution: attributed_right as f64 / (3 * reals) as f64,
        attribution_chance: 1.0 / n,
    }
}

/// The control (one-second periods, no padding: the old per-upload
/// publication) links every upload; the default schedule leaves the observer
/// at chance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_links_uploads_without_the_schedule_and_not_with_it() {
    let control = linkage(1, 0, 24, 2).await;
    assert!(control.real_vs_dummy >= 0.95, "{control:?}");
    assert!(control.attribution >= 0.95, "{control:?}");
    let default = linkage(3600, 140, 24, 60).await;
    assert!(
        default.real_vs_dummy <= default.real_vs_dummy_chance + 0.05,
        "{default:?}"
    );
    assert!(default.attribution <= 0.2, "{default:?}");
}

/// `cargo test -p traceless-node --test publication -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "measurement: ~1 minute"]
async fn measure_linkage() {
    for (name, period, k, gap) in [
        ("control: no padding, 1 s periods", 1, 0, 2),
        ("default k=140, hourly", 3600, 140, 120),
    ] {
        let l = linkage(period, k, 100, gap).await;
        println!(
            "{name}: real vs dummy {:.1} % (chance {:.1} %), key attribution {:.1} % (chance {:.1} %)",
            l.real_vs_dummy * 100.0,
            l.real_vs_dummy_chance * 100.0,
            l.attribution * 100.0,
            l.attribution_chance * 100.0
        );
    }
}
