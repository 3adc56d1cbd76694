//! The node's edges, on the real binary: an idle-connection flood under a low
//! open-file limit, a body trickling in, SIGTERM, and what the log never holds
//! (a client address) even at `trace`.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::process::*;
use common::*;
use traceless_protocol::*;

/// A relay config file in `dir`, HTTP on port 0 with short HTTP deadlines.
fn relay_with_short_deadlines(dir: &Path) -> PathBuf {
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        "data_dir = \"data\"\n[http]\nlisten = \"127.0.0.1:0\"\nheader_timeout_secs = 2\nrequest_timeout_secs = 2\n[p2p]\nlisten = [\"/ip4/127.0.0.1/tcp/0\"]\n",
    )
    .unwrap();
    config
}

/// `GET /healthz` over a fresh connection, waiting at most `timeout` for the answer.
fn healthz_within(addr: SocketAddr, timeout: Duration) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(timeout)).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn an_idle_connection_flood_beyond_the_fd_limit_does_not_stop_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let config = relay_with_short_deadlines(dir.path());
    // 256 descriptors for the node; the default cap is half of that.
    let (mut child, addr) = Spawn {
        wrapper: &["prlimit", "--nofile=256:256"],
        ..Spawn::new(&config)
    }
    .start();
    // Control: the node answers before the flood.
    assert!(healthz_within(addr, Duration::from_secs(5))
        .unwrap()
        .starts_with("HTTP/1.1 200"));
    // 400 connections that never send a byte: more than the node has descriptors.
    let idle: Vec<TcpStream> = (0..400)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    // Without the cap, the node ran out of descriptors and /healthz waited
    // behind connections held forever; with it, idle ones are closed after the
    // 2 s head deadline and /healthz is answered after a few rounds of that.
    let started = Instant::now();
    let answer = healthz_within(addr, Duration::from_secs(20));
    assert!(
        answer
            .as_deref()
            .is_some_and(|a| a.starts_with("HTTP/1.1 200")),
        "healthz under the flood: {answer:?} after {:?}",
        started.elapsed()
    );
    // The node closed the idle connections it accepted (EOF, not a timeout).
    let mut first = idle.into_iter().next().unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(first.read(&mut [0; 16]).unwrap(), 0);
    signal(&child, "-TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(10)).is_some_and(|s| s.success()));
}

#[test]
fn a_body_trickling_in_is_cut_off_at_the_request_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let config = relay_with_short_deadlines(dir.path());
    let (mut child, addr) = spawn_node(&config);
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"POST /v1/relay/test.health HTTP/1.1\r\nHost: x\r\nContent-Length: 1073\r\n\r\n")
        .unwrap();
    // One byte every 200 ms (the whole body would take 214 s), from a thread;
    // the server's answer is read here.
    let mut writer = s.try_clone().unwrap();
    std::thread::spawn(move || {
        for _ in 0..1073 {
            if writer.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .expect("the server closes the connection within 10 s");
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    assert!(out.contains(r#"{"error":"#), "{out}");
    assert!(started.elapsed() < Duration::from_secs(10));
    signal(&child, "-TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(10)).is_some_and(|s| s.success()));
}

#[test]
fn sigterm_exits_0_and_acknowledged_uploads_survive_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = gateway_via_cli(dir.path());
    let code = cli(&["codes", "issue", "--config", config.to_str().unwrap()]);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Keys of two and three days ago: past any embargo whatever the hour.
    let today = day_of_unix(now);
    let keys = [keys_of_day(today - 2, 1), keys_of_day(today - 3, 1)].concat();
    let body = Upload {
        upload_code: code.trim().as_bytes().to_vec(),
        token: None,
        keys: keys.clone(),
        dummy: false,
        filter_intervals: Vec::new(),
        stays: Default::default(),
    }
    .encode_padded()
    .unwrap();

    let (mut child, addr) = spawn_node(&config);
    assert_eq!(http(addr, "POST", "/v1/upload", &[], &body).status, 200);
    signal(&child, "-TERM");
    let status = wait_exit(&mut child, Duration::from_secs(10)).expect("exited on SIGTERM");
    assert_eq!(status.code(), Some(0), "{status:?}");

    // Restarted with one-second periods, it publishes the pool at once.
    set_publication(&config, 1, 0);
    let (mut child, addr) = spawn_node(&config);
    let list = wait_for_batches(addr, 1);
    let mut served = Vec::new();
    for b in list["batches"].as_array().unwrap() {
        let body = get(addr, b["url"].as_str().unwrap()).body;
        served.extend(batch_keys(&body, &trust_of(&config), now + 60));
    }
    for k in &keys {
        assert!(served.iter().any(|s| s.tek == k.tek), "{list}");
    }
    // SIGINT (Ctrl-C) stops it the same way.
    signal(&child, "-INT");
    let status = wait_exit(&mut child, Duration::from_secs(10)).expect("exited on SIGINT");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn a_trace_log_holds_no_client_address() {
    let dir = tempfile::tempdir().unwrap();
    let config = gateway_via_cli(dir.path());
    let code = cli(&["codes", "issue", "--config", config.to_str().unwrap()]);
    let log_path = dir.path().join("node.log");
    let (mut child, addr) = Spawn {
        log: "trace",
        stderr: Stdio::from(std::fs::File::create(&log_path).unwrap()),
        ..Spawn::new(&config)
    }
    .start();
    // A phone at 127.0.0.23 uploads with a code (a wrong one and a real one).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let phone: SocketAddr = "127.0.0.23:0".parse().unwrap();
    let mut used = Vec::new();
    for upload_code in ["not-a-code", code.trim()] {
        let body = Upload {
            upload_code: upload_code.as_bytes().to_vec(),
            token: None,
            keys: keys_of_day(day_of_unix(now_secs()) - 2, 1),
            dummy: false,
            filter_intervals: Vec::new(),
            stays: Default::default(),
        }
        .encode_padded()
        .unwrap();
        let (local, status) = rt.block_on(async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let sock = tokio::net::TcpSocket::new_v4().unwrap();
            sock.bind(phone).unwrap();
            let mut s = sock.connect(addr).await.unwrap();
            let local = s.local_addr().unwrap();
            let head = format!(
                "POST /v1/upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            s.write_all(head.as_bytes()).await.unwrap();
            s.write_all(&body).await.unwrap();
            let mut out = Vec::new();
            s.read_to_end(&mut out).await.unwrap();
            (local, String::from_utf8_lossy(&out).into_owned())
        });
        used.push((local, status));
    }
    // Control: the requests really came from that address and were answered.
    assert!(used.iter().all(|(l, _)| l.ip().to_string() == "127.0.0.23"));
    assert!(used[0].1.starts_with("HTTP/1.1 400"), "{}", used[0].1);
    assert!(used[1].1.starts_with("HTTP/1.1 200"), "{}", used[1].1);
    signal(&child, "-TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(10)).is_some());
    let log = std::fs::read_to_string(&log_path).unwrap();
    // Control: the log is the trace log, and it does name addresses it knows
    // (its own listen address).
    assert!(log.contains("TRACE"), "not a trace log");
    assert!(
        log.contains(&addr.to_string()),
        "the node's own address is logged"
    );
    assert!(
        !log.contains("\x1b["),
        "ANSI colours in a log that is not a terminal"
    );
    assert!(
        !log.contains("127.0.0.23"),
        "the log holds the client address {}",
        used[1].0
    );
}

#[test]
fn the_json_log_is_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = relay_with_short_deadlines(dir.path());
    let log_path = dir.path().join("node.log");
    let (mut child, _) = Spawn {
        log: "info",
        stderr: Stdio::from(std::fs::File::create(&log_path).unwrap()),
        global_args: &["--log-format", "json"],
        ..Spawn::new(&config)
    }
    .start();
    signal(&child, "-TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(10)).is_some_and(|s| s.success()));
    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "node started"),
        "{log}"
    );
    assert!(lines
        .iter()
        .any(|l| l["fields"]["message"] == "stopped cleanly"));
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
