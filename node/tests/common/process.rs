//! The real `traceless-node` binary as a child process: CLI calls, a gateway
//! configured through the CLI alone, start-up that reads the HTTP address from
//! stdout, signals.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::ORIGIN;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_traceless-node");

/// Runs the CLI with `args`; panics unless it succeeds; returns its stdout.
pub fn cli(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A gateway for [`ORIGIN`] set up in `dir` by `init` and `authority keygen`
/// only, HTTP on port 0; returns the config file.
pub fn gateway_via_cli(dir: &Path) -> PathBuf {
    let config = dir.join("node.toml");
    cli(&["init", "--out", config.to_str().unwrap()]);
    let entry = cli(&[
        "authority",
        "keygen",
        "--origin",
        ORIGIN,
        "--out",
        dir.join("authority.key").to_str().unwrap(),
    ]);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = text
        .replace("role = \"relay\"", "role = \"gateway\"")
        .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
        .replace("/tcp/4001", "/tcp/0")
        .replace("/udp/4001", "/udp/0");
    text.push_str(&format!(
        "\n{}\n[gateway]\norigin = \"{ORIGIN}\"\nauthority_key_file = \"authority.key\"\n",
        entry
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    ));
    std::fs::write(&config, text).unwrap();
    config
}

/// Sets the publication period and k of a config file written by `init`.
pub fn set_publication(config: &Path, period_seconds: u64, min_keys: u64) {
    let text = std::fs::read_to_string(config).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("period_seconds = ") {
            out.push_str(&format!("period_seconds = {period_seconds}"));
        } else if line.starts_with("min_keys = ") {
            out.push_str(&format!("min_keys = {min_keys}"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    std::fs::write(config, out).unwrap();
}

/// A running node process; killed when dropped (a failing test leaves no
/// orphan holding the test's pipes).
pub struct Node(pub Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Node {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Node {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// How to start the binary.
pub struct Spawn<'a> {
    /// The config file.
    pub config: &'a Path,
    /// `RUST_LOG`.
    pub log: &'a str,
    /// Where stderr (the log) goes.
    pub stderr: Stdio,
    /// A program to run the node under (e.g. `["prlimit", "--nofile=256"]`).
    pub wrapper: &'a [&'a str],
    /// Arguments before `run` (e.g. `["--log-format", "json"]`).
    pub global_args: &'a [&'a str],
    /// Arguments after `run --config …` (e.g. `["--start-time", "…"]`).
    pub run_args: &'a [&'a str],
}

impl<'a> Spawn<'a> {
    /// The node on `config`, logging warnings to the test's stderr.
    pub fn new(config: &'a Path) -> Self {
        Spawn {
            config,
            log: "warn",
            stderr: Stdio::inherit(),
            wrapper: &[],
            global_args: &[],
            run_args: &[],
        }
    }

    /// Starts the node and reads its HTTP address from stdout (bounded by the
    /// node's own start-up; a failed start closes stdout).
    pub fn start(self) -> (Node, SocketAddr) {
        let mut cmd = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let mut child = cmd
            .args(self.global_args)
            .args(["run", "--config", self.config.to_str().unwrap()])
            .args(self.run_args)
            .env("RUST_LOG", self.log)
            .stdout(Stdio::piped())
            .stderr(self.stderr)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("node printed its address").unwrap();
        let addr = first
            .strip_prefix("traceless-node: HTTP on http://")
            .unwrap()
            .trim_end_matches('/')
            .parse()
            .unwrap();
        // Keep draining stdout so the node never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        (Node(child), addr)
    }
}

/// Starts the node on `config` (see [`Spawn`]).
pub fn spawn_node(config: &Path) -> (Node, SocketAddr) {
    Spawn::new(config).start()
}

/// Sends `signal` (e.g. `"-9"`, `"-TERM"`) to the child.
pub fn signal(child: &Child, signal: &str) {
    let st = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

/// SIGKILL, then reap.
pub fn kill9(mut child: Node) {
    signal(&child, "-9");
    child.wait().unwrap();
}

/// Waits (at most `timeout`) for the child to exit; `None` if it did not (it is
/// then killed).
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}
