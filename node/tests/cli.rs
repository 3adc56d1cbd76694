//! The command line on the real binary: `codes issue` refuses what cannot work,
//! short codes for a phone hotline upload, `authority token-keygen` prints a
//! line that resolves, `id` names the node `run` starts, `retention run`.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use common::process::*;
use common::*;
use traceless_protocol::*;

/// Runs the CLI in `cwd`; returns (success, stdout, stderr).
fn cli_in(cwd: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .current_dir(cwd)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn codes_issue_needs_a_gateway_config_and_writes_nothing_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    // No --config: refused by the parser, nothing written where it ran.
    let (ok, out, err) = cli_in(dir.path(), &["codes", "issue"]);
    assert!(!ok && out.is_empty(), "{out}");
    assert!(err.contains("--config"), "{err}");
    // A relay's config: refused with a reason.
    let relay = dir.path().join("relay.toml");
    cli(&["init", "--out", relay.to_str().unwrap()]);
    let (ok, out, err) = cli_in(dir.path(), &["codes", "issue", "--config", "relay.toml"]);
    assert!(!ok && out.is_empty(), "{out}");
    assert!(err.contains("not a gateway's configuration"), "{err}");
    // --tokens on a gateway without token keys: refused too.
    let gw = gateway_via_cli(&dir.path().join("gw").tap_mkdir());
    let (ok, _, err) = cli_in(
        dir.path(),
        &[
            "codes",
            "issue",
            "--tokens",
            "--config",
            gw.to_str().unwrap(),
        ],
    );
    assert!(!ok && err.contains("token_keys"), "{err}");
    assert!(!dir.path().join("data").exists(), "wrote ./data");
    assert!(
        !dir.path().join("gw/data").exists(),
        "wrote the gateway's data dir"
    );
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}

impl TapMkdir for std::path::PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}

#[test]
fn a_short_code_read_out_over_the_phone_authorises_one_upload() {
    let dir = tempfile::tempdir().unwrap();
    let config = gateway_via_cli(dir.path());
    let code = cli(&[
        "codes",
        "issue",
        "--form",
        "short",
        "--config",
        config.to_str().unwrap(),
    ]);
    let code = code.trim();
    assert_eq!(code.len(), 14, "{code}");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let upload = |code: &str| {
        Upload {
            upload_code: code.as_bytes().to_vec(),
            token: None,
            keys: keys_of_day(day_of_unix(now) - 2, 1),
            dummy: false,
            filter_intervals: Vec::new(),
            stays: Default::default(),
        }
        .encode_padded()
        .unwrap()
    };
    let (_node, addr) = spawn_node(&config);
    // As typed by the person on the hotline: lower case, spaces for dashes.
    let typed = code.to_lowercase().replace('-', " ");
    let r = http(addr, "POST", "/v1/upload", &[], &upload(&typed));
    assert_eq!(r.status, 200, "{}", r.text());
    // Single use, whatever the spelling.
    let r = http(addr, "POST", "/v1/upload", &[], &upload(code));
    assert_eq!(r.status, 403, "{}", r.text());
}

#[test]
fn token_keygen_prints_a_config_line_that_resolves_from_the_config_dir() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("gw")).unwrap();
    let (ok, out, err) = cli_in(
        dir.path(),
        &[
            "authority",
            "token-keygen",
            "--epoch",
            "1",
            "--out",
            "gw/x.key",
        ],
    );
    assert!(ok, "{err}");
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("# token_keys = "))
        .unwrap();
    // The line as a gateway config in gw/ would read it.
    let text = format!("token_keys = {line}\n");
    let value: toml::Value = toml::from_str(&text).unwrap();
    let file = Path::new(value["token_keys"][0]["file"].as_str().unwrap());
    let resolved = dir.path().join("gw").join(file);
    assert!(
        resolved.is_file(),
        "{line} resolves to {}",
        resolved.display()
    );
    assert_eq!(
        resolved.canonicalize().unwrap(),
        dir.path().join("gw/x.key").canonicalize().unwrap()
    );
}

#[test]
fn id_prints_the_peer_id_run_then_uses_and_init_has_fixed_ports() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.toml");
    cli(&["init", "--out", config.to_str().unwrap()]);
    let example = std::fs::read_to_string(&config).unwrap();
    assert!(example.contains("/tcp/4001") && example.contains("upload_gateways"));
    let config = gateway_via_cli(&dir.path().join("n").tap_mkdir());
    let id = cli(&["id", "--config", config.to_str().unwrap()]);
    let mut lines = id.lines();
    let peer_id = lines.next().unwrap().to_owned();
    let addrs: Vec<&str> = lines.collect();
    assert!(!addrs.is_empty());
    assert!(
        addrs
            .iter()
            .all(|a| a.ends_with(&format!("/p2p/{peer_id}"))),
        "{id}"
    );
    // `run` comes up as the same peer.
    let mut node = Spawn::new(&config);
    node.log = "info";
    let (child, _) = node.start();
    drop(child);
    let again = cli(&["id", "--config", config.to_str().unwrap()]);
    assert_eq!(again, id, "the identity is stable across id and run");
}

#[test]
fn retention_run_runs_on_a_stopped_node_and_refuses_a_running_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = gateway_via_cli(dir.path());
    let (node, _) = spawn_node(&config);
    let (ok, _, err) = cli_in(
        dir.path(),
        &["retention", "run", "--config", config.to_str().unwrap()],
    );
    assert!(!ok && err.contains("stop the node first"), "{err}");
    drop(node);
    let out = cli(&["retention", "run", "--config", config.to_str().unwrap()]);
    assert_eq!(out.trim(), "nothing past retention");
}
