//! Anonymous upload end to end over real nodes: the authority's issuer hands out
//! VOPRF tokens for a patient's code, the phone seals its upload to the gateway
//! and posts it to a relay, the relay forwards opaque bytes over libp2p, the
//! gateway redeems the token once and publishes, and a contact gets notified.
//! Also what each party holds: the issuer and the gateway share nothing that
//! joins an issuance to an upload; the gateway never sees the phone's address;
//! the relay never sees plaintext; real and dummy uploads look the same.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use traceless_node::config::{GatewayConfig, TokenKeyFile, UploadGateway};
use traceless_node::{upload_codes, Config, Role, RunningNode};
use traceless_protocol::sealed::SEAL_KEY_LEN;
use traceless_protocol::*;
use traceless_sdk::{Sdk, SdkConfig};
use traceless_sim::http::{request, Response};

const ORIGIN: &str = "anon.health";
const DAY: u32 = 19_675;
const NOON: u64 = DAY as u64 * 86_400 + 12 * 3600;
/// The phone's own loopback address, distinct from the nodes' 127.0.0.1.
const PHONE_IP: [u8; 4] = [127, 0, 0, 77];

struct Net {
    _tmp: tempfile::TempDir,
    gateway_dir: std::path::PathBuf,
    relay_dir: std::path::PathBuf,
    gateway: RunningNode,
    relay: RunningNode,
    authority: AuthorityKey,
    codes: Vec<String>,
}

fn config(dir: &Path, authority: &AuthorityKey) -> Config {
    common::node_config(dir, ORIGIN, authority, &[])
}

async fn network(codes: usize, clock: &ManualClock) -> Net {
    let tmp = tempfile::tempdir().unwrap();
    let gateway_dir = tmp.path().join("gateway");
    let relay_dir = tmp.path().join("relay");
    std::fs::create_dir_all(&gateway_dir).unwrap();
    let authority = AuthorityKey::generate(ORIGIN, 1);
    let key_file = gateway_dir.join("authority.key");
    traceless_node::keys::write_authority_key(&key_file, &authority).unwrap();
    let token_file = gateway_dir.join("tokens-1.key");
    traceless_node::keys::write_token_key(&token_file, &TokenKey::generate(1)).unwrap();
    let (codes, records) = upload_codes::issue(codes, NOON + 86_400);
    upload_codes::write_incoming(&gateway_dir.join("issuer"), &records).unwrap();
    let mut g = config(&gateway_dir, &authority);
    g.role = Role::Gateway;
    g.gateway = Some(GatewayConfig {
        origin: ORIGIN.into(),
        authority_key_file: key_file,
        uploads_per_minute: 100_000,
        token_keys: vec![TokenKeyFile {
            epoch: 1,
            file: token_file,
        }],
        response_delay_ms: 50,
        export_key_file: None,
        risk_config_file: None,
    });
    let gateway = traceless_node::start(g, Arc::new(clock.clone()))
        .await
        .unwrap();
    let mut r = config(&relay_dir, &authority);
    r.p2p.upload_gateways = vec![UploadGateway {
        origin: ORIGIN.into(),
        address: gateway.p2p_addrs[0].to_string(),
    }];
    let relay = traceless_node::start(r, Arc::new(clock.clone()))
        .await
        .unwrap();
    Net {
        _tmp: tmp,
        gateway_dir,
        relay_dir,
        gateway,
        relay,
        authority,
        codes,
    }
}

/// POST from the phone's own loopback address (bound before connecting), timed.
async fn post_from_phone(addr: SocketAddr, path: &str, body: &[u8]) -> (Response, Duration) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((PHONE_IP, 0))).unwrap();
    let started = Instant::now();
    let mut stream = socket.connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw)).await;
    let elapsed = started.elapsed();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let status = String::from_utf8_lossy(&raw[..split])
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let response = Response {
        status,
        headers: Vec::new(),
        body: raw[split + 4..].to_vec(),
        wire_bytes: raw.len(),
    };
    (response, elapsed)
}

struct GatewayKeys {
    seal: [u8; SEAL_KEY_LEN],
    token: TokenPublicKey,
}

fn gateway_keys(net: &Net) -> GatewayKeys {
    let keys = request(net.gateway.http_addr, "GET", "/v1/gateway-keys", b"")
        .unwrap()
        .try_json()
        .unwrap();
    GatewayKeys {
        seal: hex::decode(keys["seal_public_key"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap(),
        token: TokenPublicKey {
            epoch: keys["token_keys"][0]["epoch"].as_u64().unwrap() as u32,
            key: hex::decode(keys["token_keys"][0]["public_key"].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap(),
        },
    }
}

/// Alice's tokens: a request with her code to the issuer, verified and kept.
fn get_tokens(net: &Net, phone: &mut Sdk, code: &str, count: usize, keys: &GatewayKeys) -> Vec<u8> {
    let body = phone
        .token_request(keys.token.epoch, count, code.as_bytes())
        .unwrap();
    let r = request(net.gateway.http_addr, "POST", "/v1/tokens", &body).unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(phone.token_finalize(&r.body, &keys.token).unwrap(), count);
    body
}

fn dir_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(dir_bytes(&p));
        } else {
            out.extend(std::fs::read(&p).unwrap_or_default());
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Opens a sealed upload with the gateway's key file, as only the gateway can.
fn open_at_gateway(net: &Net, sealed: &[u8]) -> Upload {
    let secret = std::fs::read(net.gateway_dir.join("gateway-seal.key")).unwrap();
    let plain = GatewaySealKey::from_secret(&secret)
        .unwrap()
        .open(sealed)
        .unwrap();
    Upload::decode(&plain, NOON).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_upload_through_a_relay_notifies_a_contact_and_links_nothing() {
    let clock = ManualClock::new(NOON);
    let net = network(2, &clock).await;
    let keys = gateway_keys(&net);

    let phone_clock = ManualClock::new(NOON - 86_400);
    let new_phone = || Sdk::in_memory(SdkConfig::default(), Arc::new(phone_clock.clone())).unwrap();
    let (mut alice, mut bob, mut carol) = (new_phone(), new_phone(), new_phone());
    for _ in 0..8 {
        let ad = alice.advertisement().unwrap();
        bob.record_sighting(&ad.to_bytes(), -58, None, phone_clock.now())
            .unwrap();
        phone_clock.advance(240);
    }
    phone_clock.set(NOON);
    alice.advertisement().unwrap();

    // Tokens: the code buys them once.
    let issuance = get_tokens(&net, &mut alice, &net.codes[0], 2, &keys);
    let again = alice.token_request(1, 2, net.codes[0].as_bytes()).unwrap();
    let r = request(net.gateway.http_addr, "POST", "/v1/tokens", &again).unwrap();
    assert_eq!(r.status, 403, "a code buys tokens once");

    // The sealed upload and a dummy go to the relay from the phone's address.
    let sealed = alice
        .sealed_diagnosis_upload(&keys.seal, DAY - 1, &[])
        .unwrap();
    let dummy = carol.sealed_dummy_upload(&keys.seal).unwrap();
    assert_eq!(sealed.len(), SEALED_UPLOAD_LEN);
    assert_eq!(dummy.len(), SEALED_UPLOAD_LEN);
    let relay_path = format!("/v1/relay/{ORIGIN}");
    let (real_r, _) = post_from_phone(net.relay.http_addr, &relay_path, &sealed).await;
    let (dummy_r, _) = post_from_phone(net.relay.http_addr, &relay_path, &dummy).await;
    assert_eq!(
        real_r.status,
        200,
        "{}",
        String::from_utf8_lossy(&real_r.body)
    );
    assert_eq!(
        (dummy_r.status, &dummy_r.body),
        (real_r.status, &real_r.body),
        "same answer"
    );
    let (replay, _) = post_from_phone(net.relay.http_addr, &relay_path, &sealed).await;
    assert_eq!(replay.status, 409, "a token is redeemed once");
    let (replay_dummy, _) = post_from_phone(net.relay.http_addr, &relay_path, &dummy).await;
    assert_eq!(
        replay_dummy.status, 409,
        "a replayed dummy looks like a replayed upload"
    );

    // Bob syncs from the relay and learns of yesterday's exposure, once the
    // period's boundary has passed (SPEC.md §6.4).
    clock.set(NOON + 3600);
    bob.trust_authority(ORIGIN, 1, net.authority.verifying_key())
        .expect("valid origin");
    let synced = common::eventually(|| {
        (common::sync_from(net.relay.http_addr, ORIGIN, &mut bob) > 0).then_some(())
    })
    .await
    .is_some();
    assert!(synced, "the batch never reached the relay");
    let days = bob.exposure_summary().unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].day, DAY - 1);

    // What each party holds.
    let upload = open_at_gateway(&net, &sealed);
    let token = upload.token.unwrap();
    assert!(
        upload.upload_code.is_empty(),
        "no code travels with the upload"
    );
    let spent_id: [u8; 32] = Sha256::digest(token.input).into();
    let issuer_db = dir_bytes(&net.gateway_dir.join("issuer"));
    let gateway_db = dir_bytes(&net.gateway_dir.join("db"));
    assert!(
        contains(&gateway_db, &spent_id),
        "control: the gateway keeps the spent id"
    );
    for field in [&token.input[..], &token.output[..], &spent_id[..]] {
        assert!(
            !contains(&issuer_db, field),
            "the issuer holds a redemption field"
        );
    }
    let request = traceless_protocol::token::TokenIssueRequest::decode(&issuance).unwrap();
    for blinded in &request.blinded {
        assert!(
            !contains(&gateway_db, blinded),
            "the gateway holds an issuance field"
        );
        assert!(
            !contains(&issuer_db, blinded),
            "the issuer keeps what it evaluated"
        );
    }
    assert!(!contains(&gateway_db, net.codes[0].as_bytes()));
    let phone_ip = b"127.0.0.77";
    for dir in [&net.gateway_dir, &net.relay_dir] {
        assert!(
            !contains(&dir_bytes(dir), phone_ip),
            "a node stored the phone's address"
        );
    }
    let gateway_metrics = request_text(net.gateway.http_addr, "/metrics");
    assert!(
        !gateway_metrics.contains("/v1/relay"),
        "the phone never talked to the gateway"
    );
    // The relay saw only sealed bytes: no key in clear, and today's key (still
    // under embargo) is nowhere in its database.
    for key in &upload.keys {
        assert!(!contains(&sealed, &key.tek.0));
    }
    let todays = upload
        .keys
        .iter()
        .find(|k| k.rolling_start / 144 == DAY)
        .unwrap();
    assert!(!contains(&dir_bytes(&net.relay_dir), &todays.tek.0));

    net.relay.shutdown().await;
    net.gateway.shutdown().await;
}

/// The filter form through the same anonymous path: Alice leaves out her
/// evening, so Dave, whom she met then, is not told; Bob, met in the morning, is.
/// The gateway publishes entries it derived itself and keeps no TEK or RPI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_form_upload_publishes_only_chosen_intervals_and_keeps_no_key() {
    let clock = ManualClock::new(NOON);
    let net = network(1, &clock).await;
    let keys = gateway_keys(&net);
    let yesterday = u64::from(DAY - 1) * 86_400;
    let phone_clock = ManualClock::new(yesterday);
    let new_phone = || Sdk::in_memory(SdkConfig::default(), Arc::new(phone_clock.clone())).unwrap();
    let (mut alice, mut bob, mut dave) = (new_phone(), new_phone(), new_phone());
    let meet = |alice: &mut Sdk, other: &mut Sdk, from: u64| {
        phone_clock.set(from);
        for _ in 0..8 {
            let ad = alice.advertisement().unwrap();
            other
                .record_sighting(&ad.to_bytes(), -58, None, phone_clock.now())
                .unwrap();
            phone_clock.advance(240);
        }
    };
    meet(&mut alice, &mut bob, yesterday + 9 * 3600);
    meet(&mut alice, &mut dave, yesterday + 20 * 3600);
    phone_clock.set(NOON);
    alice.advertisement().unwrap();
    get_tokens(&net, &mut alice, &net.codes[0], 1, &keys);
    let evening = (yesterday + 19 * 3600, yesterday + 22 * 3600);
    let sealed = alice
        .sealed_filter_upload(&keys.seal, DAY - 1, &[evening])
        .unwrap();
    assert_eq!(sealed.len(), SEALED_UPLOAD_LEN, "as long as any upload");
    let (r, _) =
        post_from_phone(net.relay.http_addr, &format!("/v1/relay/{ORIGIN}"), &sealed).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    // The gateway folds the entries (their embargo has passed) and gossips the filter.
    let built = net.gateway.core.rebuild_filters().unwrap();
    assert!(built.iter().any(|f| f.day == DAY - 1), "{built:?}");
    let path = format!("/v1/filters/{ORIGIN}/{}", DAY - 1);
    let served = common::eventually(|| {
        let r = request(net.relay.http_addr, "GET", &path, b"").ok()?;
        (r.status == 200).then_some(r.body)
    })
    .await
    .expect("the filter never reached the relay");
    // Every part built (of any day) has reached the relay before phones sync,
    // so the second sync below can only find nothing new.
    common::eventually(|| {
        built
            .iter()
            .all(|f| {
                net.relay
                    .core
                    .store
                    .get_filter(&f.origin, f.day, f.revision)
                    .ok()
                    .flatten()
                    .is_some()
            })
            .then_some(())
    })
    .await
    .expect("every part reaches the relay");
    let at_gateway = request(net.gateway.http_addr, "GET", &path, b"").unwrap();
    assert_eq!(
        served, at_gateway.body,
        "relay and gateway serve identical bytes"
    );

    phone_clock.set(NOON + 600);
    for phone in [&mut bob, &mut dave] {
        phone
            .trust_authority(ORIGIN, 1, net.authority.verifying_key())
            .expect("valid origin");
        assert!(common::sync_filters_from(net.relay.http_addr, ORIGIN, phone) >= 1);
        assert_eq!(
            common::sync_filters_from(net.relay.http_addr, ORIGIN, phone),
            0,
            "parts held are not downloaded again"
        );
    }
    let bob_days = bob.exposure_summary().unwrap();
    assert_eq!(bob_days.len(), 1, "{bob_days:?}");
    assert_eq!(bob_days[0].day, DAY - 1);
    assert!(bob_days[0].high_risk, "{bob_days:?}");
    assert!(
        dave.exposure_summary().unwrap().is_empty(),
        "Dave was met only in the excluded evening"
    );

    // The upload carried TEKs and masks; the gateway kept neither TEKs nor RPIs.
    let upload = open_at_gateway(&net, &sealed);
    assert_eq!(upload.filter_intervals.len(), upload.keys.len());
    let gateway_db = dir_bytes(&net.gateway_dir);
    let relay_db = dir_bytes(&net.relay_dir);
    for (key, mask) in upload.keys.iter().zip(&upload.filter_intervals) {
        for db in [&gateway_db, &relay_db] {
            assert!(!contains(db, &key.tek.0), "a node stored a TEK");
        }
        let rpik = key.tek.rpik();
        for j in 0..key.rolling_period {
            let rpi = rpik.rpi(key.rolling_start + j);
            assert!(!contains(&gateway_db, &rpi.0), "the gateway stored an RPI");
            let in_evening =
                (evening.0..evening.1).contains(&interval_start_seconds(key.rolling_start + j));
            if in_evening {
                assert!(!mask.get(j), "an excluded interval was uploaded");
            }
        }
    }
    net.relay.shutdown().await;
    net.gateway.shutdown().await;
}

fn request_text(addr: SocketAddr, path: &str) -> String {
    String::from_utf8_lossy(&request(addr, "GET", path, b"").unwrap().body).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sealed_uploads_get_clear_errors_and_store_nothing() {
    let clock = ManualClock::new(NOON);
    let net = network(1, &clock).await;
    let keys = gateway_keys(&net);
    let path = format!("/v1/relay/{ORIGIN}");
    let post = |body: Vec<u8>| {
        let addr = net.relay.http_addr;
        let path = path.clone();
        async move { post_from_phone(addr, &path, &body).await.0 }
    };
    assert_eq!(post(vec![0; 100]).await.status, 400, "short");
    assert_eq!(
        post(vec![0; SEALED_UPLOAD_LEN + 1]).await.status,
        413,
        "oversized"
    );
    assert_eq!(
        post(vec![1; SEALED_UPLOAD_LEN]).await.status,
        400,
        "not HPKE"
    );
    let wrong_key = GatewaySealKey::generate();
    let real = |token: UploadToken| {
        Upload {
            token: Some(token),
            keys: vec![DiagnosisKey {
                tek: Tek([5; 16]),
                rolling_start: (DAY - 1) * 144,
                rolling_period: 144,
                transmission_risk: 6,
                days_since_onset: 0,
            }],
            ..Default::default()
        }
        .encode_padded()
        .unwrap()
    };
    let forged = UploadToken {
        epoch: 1,
        input: [3; 32],
        output: [4; 64],
    };
    let expired = UploadToken { epoch: 9, ..forged };
    let r = post(seal_upload(&wrong_key.public_bytes(), &real(forged)).unwrap()).await;
    assert_eq!(r.status, 400, "sealed to another gateway key");
    let r = post(seal_upload(&keys.seal, &real(forged)).unwrap()).await;
    assert_eq!(r.status, 403, "forged token");
    let r = post(seal_upload(&keys.seal, &real(expired)).unwrap()).await;
    assert_eq!(r.status, 403, "token of an unknown or expired epoch");
    let unknown = post_from_phone(
        net.relay.http_addr,
        "/v1/relay/other.health",
        &vec![0; SEALED_UPLOAD_LEN],
    )
    .await
    .0;
    assert_eq!(
        unknown.status, 404,
        "no gateway for that origin: the client's mistake"
    );
    assert!(
        !contains(&dir_bytes(&net.gateway_dir.join("db")), &[5; 16]),
        "nothing stored"
    );
    let list = request(
        net.gateway.http_addr,
        "GET",
        &format!("/v1/batches?origin={ORIGIN}"),
        b"",
    )
    .unwrap()
    .try_json()
    .unwrap();
    assert!(list["batches"].as_array().unwrap().is_empty());
    net.relay.shutdown().await;
    net.gateway.shutdown().await;
}

/// Features an observer of the phone's traffic sees: request size, response
/// size, response time. Returns the accuracy on held-out samples of the best
/// single-threshold classifier per feature, trained on the other half.
fn best_classifier_accuracy(real: &[(f64, f64, f64)], dummy: &[(f64, f64, f64)]) -> f64 {
    let feature = |s: &(f64, f64, f64), f: usize| [s.0, s.1, s.2][f];
    let (train_r, test_r) = real.split_at(real.len() / 2);
    let (train_d, test_d) = dummy.split_at(dummy.len() / 2);
    let mut best = 0.5f64;
    for f in 0..3 {
        let mut candidates: Vec<f64> = train_r
            .iter()
            .chain(train_d)
            .map(|s| feature(s, f))
            .collect();
        candidates.sort_by(f64::total_cmp);
        let mut best_train = (0.0, 0.0, true);
        for &t in &candidates {
            for real_above in [true, false] {
                let ok = train_r
                    .iter()
                    .filter(|s| (feature(s, f) > t) == real_above)
                    .count()
                    + train_d
                        .iter()
                        .filter(|s| (feature(s, f) > t) != real_above)
                        .count();
                let acc = ok as f64 / (train_r.len() + train_d.len()) as f64;
                if acc > best_train.0 {
                    best_train = (acc, t, real_above);
                }
            }
        }
        let (_, t, real_above) = best_train;
        let ok = test_r
            .iter()
            .filter(|s| (feature(s, f) > t) == real_above)
            .count()
            + test_d
                .iter()
                .filter(|s| (feature(s, f) > t) != real_above)
                .count();
        best = best.max(ok as f64 / (test_r.len() + test_d.len()) as f64);
    }
    best
}

async fn indistinguishability(n: usize) -> (f64, Duration, f64, f64) {
    let clock = ManualClock::new(NOON);
    let net = network(n, &clock).await;
    let keys = gateway_keys(&net);
    let phone_clock = ManualClock::new(NOON - 3600);
    let new_phone = || Sdk::in_memory(SdkConfig::default(), Arc::new(phone_clock.clone())).unwrap();
    let mut carol = new_phone();
    let path = format!("/v1/relay/{ORIGIN}");
    let (mut real, mut dummy, mut latencies) = (Vec::new(), Vec::new(), Vec::new());
    let (mut issuing, mut relaying) = (Duration::ZERO, Duration::ZERO);
    for code in &net.codes {
        // Every real upload from a new patient: one code, one token, one upload.
        let mut patient = new_phone();
        patient.advertisement().unwrap();
        let started = Instant::now();
        get_tokens(&net, &mut patient, code, 1, &keys);
        issuing += started.elapsed();
        let sealed = patient
            .sealed_diagnosis_upload(&keys.seal, DAY, &[])
            .unwrap();
        let (r, t) = post_from_phone(net.relay.http_addr, &path, &sealed).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        real.push((sealed.len() as f64, r.body.len() as f64, t.as_secs_f64()));
        latencies.push(t);
        let d = carol.sealed_dummy_upload(&keys.seal).unwrap();
        let (r, u) = post_from_phone(net.relay.http_addr, &path, &d).await;
        assert_eq!(r.status, 200);
        dummy.push((d.len() as f64, r.body.len() as f64, u.as_secs_f64()));
        relaying += t + u;
    }
    let issuance_rate = n as f64 / issuing.as_secs_f64();
    let redemption_rate = (2 * n) as f64 / relaying.as_secs_f64();
    latencies.sort();
    net.relay.shutdown().await;
    net.gateway.shutdown().await;
    (
        best_classifier_accuracy(&real, &dummy),
        latencies[latencies.len() / 2],
        issuance_rate,
        redemption_rate,
    )
}

/// Smoke version: 160 real and 160 dummy uploads. With 160 held-out samples
/// the accuracy of a coin is 50 % ± 4 % (1 σ), and the best of three features
/// is taken, so the bound here is loose (with 60 of each it was crossed by
/// chance: 0.70 and 0.82 were seen on unchanged code); the ignored test below
/// measures the figure with 1,000 of each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_and_dummy_uploads_are_indistinguishable_on_the_wire() {
    let (accuracy, p50, _, _) = indistinguishability(160).await;
    println!(
        "classifier accuracy {:.1} %, upload latency p50 {p50:?}",
        accuracy * 100.0
    );
    assert!(
        accuracy < 0.70,
        "a classifier told real from dummy uploads: {accuracy}"
    );
}

/// `cargo test -p traceless-tests --test anonymous_upload -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: ~2 minutes"]
async fn measure_indistinguishability_and_rates() {
    let (accuracy, p50, issuance, redemption) = indistinguishability(1000).await;
    println!(
        "1000 real + 1000 dummy uploads through a relay: best classifier accuracy {:.1} %, \
         end-to-end upload latency p50 {p50:?}, issuance {issuance:.0} tokens/s (one per HTTP request), \
         relayed redemptions {redemption:.1}/s (sequential, 50 ms response floor)",
        accuracy * 100.0
    );
    assert!(accuracy <= 0.52, "{accuracy}");
}
