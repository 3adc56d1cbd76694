//! What `docs/operators.md` tells operators to do, done: TLS through nginx with
//! the guide's own `docs/nginx-traceless.conf` (nginx from
//! `.ci/install-nginx.sh`, a self-signed certificate made with `openssl`, a
//! client that trusts only that certificate), the systemd unit checked by
//! `systemd-analyze verify`, and a backup of a stopped node's data dir restored
//! elsewhere serving the same batches.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::process::Node;
use common::*;
use traceless_node::ManualClock;

const NGINX: &str = "/usr/sbin/nginx";

fn docs(file: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(file)
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `curl` over HTTPS trusting only `ca`; the body, or `None` if it failed.
fn https_get(port: u16, ca: &Path, path: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["--silent", "--fail", "--max-time", "5", "--cacert"])
        .arg(ca)
        .arg(format!("https://localhost:{port}{path}"))
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_nginx_config_serves_the_node_over_tls() {
    assert!(
        Path::new(NGINX).exists(),
        "{NGINX} missing: run .ci/install-nginx.sh"
    );
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let node = start_node(relay_config(&dir.path().join("node")), &clock).await;

    let tls = dir.path().join("tls");
    std::fs::create_dir_all(tls.join("logs")).unwrap();
    run(Command::new("openssl").current_dir(&tls).args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "privkey.pem",
        "-out",
        "fullchain.pem",
        "-days",
        "2",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost",
    ]));
    // The guide's file with only its CHANGE lines substituted.
    let port = free_port();
    let example = std::fs::read_to_string(docs("nginx-traceless.conf")).unwrap();
    let site = example
        .replace(
            "server 127.0.0.1:8080;",
            &format!("server {};", node.http_addr),
        )
        .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{port} ssl;"))
        .replace("/etc/ssl/traceless", tls.to_str().unwrap());
    assert_ne!(site, example);
    assert_eq!(site.matches(tls.to_str().unwrap()).count(), 2);
    std::fs::write(tls.join("site.conf"), site).unwrap();
    let t = tls.display();
    std::fs::write(
        tls.join("nginx.conf"),
        format!(
            "daemon off;\nmaster_process off;\npid {t}/nginx.pid;\nerror_log {t}/logs/error.log;\n\
             events {{}}\nhttp {{\n client_body_temp_path {t}/body;\n proxy_temp_path {t}/proxy;\n\
             fastcgi_temp_path {t}/fcgi;\n uwsgi_temp_path {t}/uwsgi;\n scgi_temp_path {t}/scgi;\n\
             include {t}/site.conf;\n}}\n"
        ),
    )
    .unwrap();
    let mut nginx = Node(
        Command::new(NGINX)
            .arg("-p")
            .arg(&tls)
            .arg("-c")
            .arg(tls.join("nginx.conf"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let ca = tls.join("fullchain.pem");
    let mut body = None;
    let up = wait_until(Duration::from_secs(10), || {
        body = https_get(port, &ca, "/healthz");
        body.is_some()
    })
    .await;
    let log = std::fs::read_to_string(tls.join("logs/error.log")).unwrap_or_default();
    assert!(up, "no HTTPS answer through nginx: {log}");
    assert_eq!(body.unwrap(), "ok\n");
    // The transparency page comes through too, and a client that does not
    // trust this certificate is refused (control: TLS is really checked).
    assert!(https_get(port, &ca, "/").unwrap().contains("Traceless"));
    let untrusted = Command::new("curl")
        .args(["--silent", "--fail", "--max-time", "5"])
        .arg(format!("https://localhost:{port}/healthz"))
        .status()
        .unwrap();
    assert!(!untrusted.success());
    // No access log: nginx writes no client address.
    assert!(!tls.join("logs/access.log").exists());
    let _ = nginx.0.kill();
    let _ = nginx.0.wait();
    node.shutdown().await;
}

#[test]
fn the_guides_systemd_unit_verifies() {
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        panic!("systemd-analyze missing (Debian package systemd)");
    };
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let check = |unit: &str| -> String {
        let path = dir.path().join("traceless-node.service");
        std::fs::write(&path, unit).unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .unwrap();
        let mut said = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            said.push_str("(failed)");
        }
        said
    };
    // The unit as shipped, with the binary this test built where the guide
    // installs it.
    let unit = std::fs::read_to_string(docs("traceless-node.service"))
        .unwrap()
        .replace("/usr/local/bin/traceless-node", common::process::BIN);
    let said = check(&unit);
    assert!(said.is_empty(), "systemd-analyze: {said}");
    // Control: a misspelt key is reported.
    let said = check(&unit.replace("KillSignal=", "KilSignal="));
    assert!(said.contains("KilSignal"), "systemd-analyze said {said:?}");
}

/// Copies a directory tree (what `cp -a` does for the guide's backup).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Every batch a node serves: its listing and each batch's bytes.
fn served(addr: std::net::SocketAddr) -> (serde_json::Value, Vec<Vec<u8>>) {
    let list = get(addr, &format!("/v1/batches?origin={ORIGIN}&after=0")).json();
    let bytes = list["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| get(addr, b["url"].as_str().unwrap()).body)
        .collect();
    (list, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_a_stopped_nodes_data_dir_restores_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let (live, restored) = (dir.path().join("live"), dir.path().join("restored"));
    let clock = ManualClock::new(NOW);
    let node = start_node(relay_config(&live), &clock).await;
    let key = authority();
    for seq in 1..=5 {
        node.core
            .ingest(&signed_batch(&key, seq, TODAY - 2, 3, NOW - 60))
            .unwrap();
    }
    let before = served(node.http_addr);
    assert_eq!(before.0["batches"].as_array().unwrap().len(), 5);
    let node_id = get(node.http_addr, "/v1/deletion-log").json()["node_id"].clone();
    node.shutdown().await;

    copy_tree(&live, &restored);
    std::fs::remove_dir_all(&live).unwrap();
    let node = start_node(relay_config(&restored), &clock).await;
    assert_eq!(served(node.http_addr), before, "same batches, same bytes");
    // Same keys too: the restored node signs as the old one.
    assert_eq!(
        get(node.http_addr, "/v1/deletion-log").json()["node_id"],
        node_id
    );
    node.shutdown().await;
}
