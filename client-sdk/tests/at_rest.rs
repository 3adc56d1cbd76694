//! What is on disk: sealed records, crypto-shredding after 14 days, wrong keys,
//! damaged files, and durability across a crash.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use traceless_protocol::{Clock, ManualClock, Upload};
use traceless_sdk::{MasterKey, MemoryStorage, Sdk, SdkConfig, SdkError, Storage, Table};

const CODE: &[u8] = b"0123456789abcdef-0123456789abcdef0123456789abcdef";
const MASTER: MasterKey = MasterKey([7; 32]);

fn open(dir: &Path, clock: &ManualClock, master: &MasterKey) -> Result<Sdk, SdkError> {
    Sdk::open(dir, master, SdkConfig::default(), Arc::new(clock.clone()))
}

/// Every byte of every file under `dir`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &target);
        } else {
            std::fs::copy(&p, &target).unwrap();
        }
    }
}

const SLOT_LEN: usize = 80;
fn slot_of(keyring: &[u8], day: u32) -> Vec<u8> {
    let off = 64 + (day % 16) as usize * SLOT_LEN;
    keyring[off..off + SLOT_LEN].to_vec()
}

#[test]
fn expired_days_are_crypto_shredded_and_nothing_is_ever_stored_in_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("phone");
    let clock = ManualClock::new(at(DAY0, 600));
    let mut alice = phone(&clock);
    let mut bob = open(&dir, &clock, &MASTER).unwrap();
    bob.advertisement().unwrap();
    let mut heard = Vec::new();
    for _ in 0..5 {
        let ad = alice.advertisement().unwrap();
        heard.push(ad.rpi.0);
        bob.record_sighting(&ad.to_bytes(), -60, None, clock.now())
            .unwrap();
        clock.advance(600);
    }
    let bundle = bob.diagnosis_upload(CODE, DAY0, &[]).unwrap();
    let own_tek = Upload::decode(&bundle, clock.now()).unwrap().keys[0].tek.0;
    bob.flush().unwrap();

    let before = all_bytes(&dir);
    for rpi in &heard {
        assert!(!contains(&before, rpi), "a heard token is on disk in clear");
    }
    assert!(
        !contains(&before, &own_tek),
        "the phone's TEK is on disk in clear"
    );
    let wrapped = slot_of(&std::fs::read(dir.join("keyring")).unwrap(), DAY0);
    assert!(wrapped.iter().any(|&b| b != 0), "the day key is stored");
    assert!(contains(&before, &wrapped[8..]));
    assert_eq!(bob.status().unwrap().scan_instances, 5);

    // What sled might keep around: a copy of the database as it is now.
    let snapshot = tmp.path().join("snapshot");
    copy_dir(&dir, &snapshot);

    clock.set(at(DAY0 + 14, 600));
    assert_eq!(bob.expire().unwrap(), Vec::<u32>::new(), "14 days are kept");
    clock.set(at(DAY0 + 15, 0));
    assert_eq!(bob.expire().unwrap(), vec![DAY0]);
    assert_eq!(bob.status().unwrap().scan_instances, 0);
    drop(bob);

    let after = all_bytes(&dir);
    assert!(
        !contains(&after, &wrapped[8..]),
        "the wrapped day key is still on disk"
    );
    assert!(slot_of(&std::fs::read(dir.join("keyring")).unwrap(), DAY0)
        .iter()
        .all(|&b| b == 0));
    for rpi in &heard {
        assert!(!contains(&after, rpi));
    }

    // The old database bytes are readable with the old keyring...
    clock.set(at(DAY0, 700));
    let mut old = open(&snapshot, &clock, &MASTER).unwrap();
    assert_eq!(old.status().unwrap().scan_instances, 5);
    drop(old);
    // ...and not with the keyring as it is on disk now.
    std::fs::copy(dir.join("keyring"), snapshot.join("keyring")).unwrap();
    let mut shredded = open(&snapshot, &clock, &MASTER).unwrap();
    let status = shredded.status().unwrap();
    assert_eq!(status.scan_instances, 0);
    assert!(!status.days_kept.contains(&DAY0));
}

#[test]
fn a_wrong_master_key_is_refused_and_the_data_stays_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(DAY0, 600));
    let mut p = open(tmp.path(), &clock, &MASTER).unwrap();
    p.record_sighting(&[3u8; 20], -60, None, clock.now())
        .unwrap();
    drop(p);
    assert!(matches!(
        open(tmp.path(), &clock, &MasterKey([8; 32])),
        Err(SdkError::WrongMasterKey)
    ));
    let mut p = open(tmp.path(), &clock, &MASTER).unwrap();
    assert_eq!(p.status().unwrap().scan_instances, 1);
}

/// sled lets go of its lock file only after its background threads drop their
/// references; a host that reopens right away must not be refused for that.
/// Several stores at once keep those threads busy, as a loaded phone does.
#[test]
fn a_dropped_store_reopens_at_once_even_after_a_refused_open() {
    const ROUNDS: usize = 30;
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(DAY0, 600));
    std::thread::scope(|s| {
        for store in 0..4u8 {
            let dir = tmp.path().join(format!("store-{store}"));
            let clock = clock.clone();
            s.spawn(move || {
                for round in 0..ROUNDS {
                    let mut p = open(&dir, &clock, &MASTER)
                        .unwrap_or_else(|e| panic!("store {store}, round {round}: {e}"));
                    for i in 0..50u8 {
                        p.record_sighting(&[round as u8, i].repeat(10), -60, None, clock.now())
                            .unwrap();
                    }
                    p.flush().unwrap();
                    drop(p);
                    match open(&dir, &clock, &MasterKey([8; 32])) {
                        Err(SdkError::WrongMasterKey) => {}
                        other => panic!("store {store}, round {round}: {:?}", other.err()),
                    }
                }
                let mut p = open(&dir, &clock, &MASTER).unwrap();
                assert_eq!(p.status().unwrap().scan_instances, ROUNDS * 50);
            });
        }
    });
}

#[test]
fn damaged_files_give_clear_errors_and_are_not_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(DAY0, 600));
    let mut p = open(tmp.path(), &clock, &MASTER).unwrap();
    p.record_sighting(&[3u8; 20], -60, None, clock.now())
        .unwrap();
    drop(p);

    let keyring = tmp.path().join("keyring");
    let good = std::fs::read(&keyring).unwrap();
    let mut bad = good.clone();
    bad[0] ^= 0xff;
    std::fs::write(&keyring, &bad).unwrap();
    match open(tmp.path(), &clock, &MASTER) {
        Err(SdkError::Corrupt(m)) => assert!(m.contains("keyring"), "{m}"),
        other => panic!("expected Corrupt, got {:?}", other.err()),
    }
    assert_eq!(std::fs::read(&keyring).unwrap(), bad, "left as found");
    let mut bad_slot = good.clone();
    let off = 64 + (DAY0 % 16) as usize * SLOT_LEN + 40;
    bad_slot[off] ^= 1;
    std::fs::write(&keyring, &bad_slot).unwrap();
    assert!(matches!(
        open(tmp.path(), &clock, &MASTER),
        Err(SdkError::Corrupt(_))
    ));
    std::fs::write(&keyring, &good).unwrap();

    let data = tmp.path().join("db").join("db");
    let data_good = std::fs::read(&data).unwrap();
    for damage in [
        |b: &mut Vec<u8>| b.iter_mut().for_each(|x| *x = 0xAB),
        |b: &mut Vec<u8>| b.iter_mut().take(4096).for_each(|x| *x ^= 0x5A),
    ] {
        let mut bad = data_good.clone();
        damage(&mut bad);
        std::fs::write(&data, &bad).unwrap();
        match open(tmp.path(), &clock, &MASTER) {
            Err(SdkError::Corrupt(m)) => assert!(m.contains("corrupt"), "{m}"),
            other => panic!("expected Corrupt, got {:?}", other.err()),
        }
        assert_eq!(std::fs::read(&data).unwrap(), bad, "left as found");
        std::fs::write(&data, &data_good).unwrap();
    }

    let mut p = open(tmp.path(), &clock, &MASTER).unwrap();
    assert_eq!(
        p.status().unwrap().scan_instances,
        1,
        "data intact after the failures"
    );
}

/// A damaged record (one segment of a day's tokens) is counted; the tokens of
/// the other segments still load.
#[test]
fn a_damaged_record_is_counted_and_the_rest_still_works() {
    let clock = ManualClock::new(at(DAY0, 600));
    let storage = Arc::new(MemoryStorage::new());
    let mut p = Sdk::with_storage(
        storage.clone(),
        &MASTER,
        SdkConfig::default(),
        Arc::new(clock.clone()),
    )
    .unwrap();
    // Tokens until they fill at least two records.
    let mut tokens = 0;
    while tokens < 4 || storage.scan(Table::Sightings, &[]).unwrap().len() < 2 {
        p.record_sighting(&[tokens; 20], -60, None, clock.now())
            .unwrap();
        tokens += 1;
    }
    let (key, mut value) = storage.scan(Table::Sightings, &[]).unwrap().remove(0);
    let last = value.len() - 1;
    value[last] ^= 1;
    storage.put(Table::Sightings, &key, &value).unwrap();
    let status = p.status().unwrap();
    assert_eq!(status.unreadable_records, 1);
    assert!(
        (1..usize::from(tokens)).contains(&status.scan_instances),
        "{} of {tokens} tokens left",
        status.scan_instances
    );
}

/// Child half of the crash test: records, flushes, says so, then waits to be killed.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("TRACELESS_SDK_CRASH_DIR") else {
        return;
    };
    let clock = ManualClock::new(at(DAY0, 600));
    let mut p = open(Path::new(&dir), &clock, &MASTER).unwrap();
    for i in 0..50u8 {
        p.record_sighting(&[i; 20], -60, None, clock.now()).unwrap();
    }
    p.flush().unwrap();
    println!("FLUSHED");
    std::thread::sleep(std::time::Duration::from_secs(60));
}

#[test]
fn what_was_flushed_survives_kill_9() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env("TRACELESS_SDK_CRASH_DIR", tmp.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let flushed = BufReader::new(stdout)
        .lines()
        .take(50)
        .any(|l| l.is_ok_and(|l| l.contains("FLUSHED")));
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(flushed, "the child never reported its flush");

    let clock = ManualClock::new(at(DAY0, 700));
    let mut p = open(tmp.path(), &clock, &MASTER).unwrap();
    assert_eq!(p.status().unwrap().scan_instances, 50);
}

#[test]
fn an_own_key_is_not_printed_by_debug() {
    let key = traceless_sdk::OwnKey {
        tek: [0xab; 16],
        rolling_start: 7,
        rolling_period: 144,
        retired: false,
    };
    let shown = format!("{key:?}");
    assert!(shown.contains("rolling_start: 7"), "{shown}");
    assert!(
        !shown.contains("171") && !shown.to_lowercase().contains("ab"),
        "{shown}"
    );
}
