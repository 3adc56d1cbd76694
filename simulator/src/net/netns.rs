//! Where the nodes live: one Linux network namespace per node, each joined to
//! the simulator's (root) namespace by its own veth pair, or plain loopback
//! when namespaces are unavailable (no root, no `ip`).
//!
//! Node `i` gets the /30 `10.A.(i / 64).(4 (i % 64))`: the root end of its veth
//! is `.1`, the node's end `.2`. A namespace has a route only to its own /30,
//! so a node can reach nothing but the simulator's link emulators listening on
//! its `.1` address: every byte between two nodes crosses an emulated link,
//! and a partition cannot leak through a direct route.
//!
//! Teardown: [`Host`] deletes its namespaces (which removes their veths) when
//! dropped; SIGINT/SIGTERM run the same teardown before exiting; and every run
//! first removes namespaces left by runs whose process is gone (`kill -9`), as
//! names carry the owning process id, killing the nodes still running in them.
//! (On loopback a simulator killed with SIGKILL leaves its nodes running.)

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once};

use super::NetError;

/// Namespace names of every live [`Host`] in this process, for the signal handler.
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Hosts created by this process, for unique names.
static RUNS: AtomicU32 = AtomicU32::new(0);
/// Prefix of every namespace this simulator creates.
const PREFIX: &str = "tlsim";

/// How nodes are isolated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Isolation {
    /// One network namespace per node, veth pairs to the simulator.
    Namespaces,
    /// Every node on 127.0.0.1 (no root or no `ip`): the same links are
    /// emulated, but a node could dial another's listen address directly.
    Loopback,
}

/// The nodes' network: namespaces with addresses, or loopback.
pub struct Host {
    isolation: Isolation,
    /// Namespace names, one per node (empty on loopback).
    names: Vec<String>,
    /// Second octet of this run's 10.A.0.0/16.
    octet: u8,
    /// Why namespaces were not used, if they were not.
    pub fallback_reason: Option<String>,
}

fn ip(args: &[&str]) -> Result<(), NetError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| NetError::Setup(format!("ip {}: {e}", args.join(" "))))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetError::Setup(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn ip_output(args: &[&str]) -> String {
    Command::new("ip")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Whether this process may create namespaces: root and a working `ip netns`.
fn namespaces_usable() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid0 = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        == Some("0");
    if !uid0 {
        return Err("not running as root".into());
    }
    let probe = format!("{PREFIX}probe{}", std::process::id());
    ip(&["netns", "add", &probe]).map_err(|e| e.to_string())?;
    let _ = ip(&["netns", "del", &probe]);
    Ok(())
}

/// Removes namespaces of runs whose process no longer exists.
pub fn sweep_stale() {
    for line in ip_output(&["netns", "list"]).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid = rest.split('r').next().and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            {
                delete_all(&[name.to_owned()]);
            }
        }
    }
}

/// Kills every process still inside the namespaces named (a node outlives a
/// simulator killed with SIGKILL), then deletes them (their veths go with them).
fn delete_all(names: &[String]) {
    for n in names {
        for pid in ip_output(&["netns", "pids", n]).split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
        let _ = ip(&["netns", "del", n]);
    }
}

fn install_signal_teardown() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::thread::spawn(|| {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut int), Ok(mut term)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) else {
                    return;
                };
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                let names = LIVE.lock().map(|l| l.clone()).unwrap_or_default();
                delete_all(&names);
                eprintln!(
                    "traceless-sim net: interrupted, removed {} namespaces",
                    names.len()
                );
                std::process::exit(130);
            });
        });
    });
}

/// A free 10.A.0.0/16 (A in 64..=127) no interface of this machine uses.
fn free_octet(run: u32) -> u8 {
    let used = ip_output(&["-o", "-4", "addr"]);
    let start = (std::process::id().wrapping_mul(7) + run) % 64;
    (0..64)
        .map(|k| 64 + ((start + k) % 64) as u8)
        .find(|a| !used.contains(&format!("inet 10.{a}.")))
        .unwrap_or(64)
}

impl Host {
    /// Namespaces for `nodes` nodes if this process can make them (`force_loopback`
    /// skips trying), loopback otherwise.
    pub fn new(nodes: usize, force_loopback: bool) -> Result<Host, NetError> {
        let run = RUNS.fetch_add(1, Ordering::Relaxed);
        let usable = if force_loopback {
            Err("loopback requested".to_string())
        } else {
            namespaces_usable()
        };
        if let Err(reason) = usable {
            return Ok(Host {
                isolation: Isolation::Loopback,
                names: Vec::new(),
                octet: 0,
                fallback_reason: Some(reason),
            });
        }
        if nodes > 64 * 256 {
            return Err(NetError::Setup(format!("{nodes} nodes do not fit one /16")));
        }
        install_signal_teardown();
        sweep_stale();
        let octet = free_octet(run);
        let mut host = Host {
            isolation: Isolation::Namespaces,
            names: Vec::new(),
            octet,
            fallback_reason: None,
        };
        let pid = std::process::id();
        for i in 0..nodes {
            let name = format!("{PREFIX}{pid}r{run}n{i}");
            ip(&["netns", "add", &name])?;
            host.names.push(name.clone());
            if let Ok(mut l) = LIVE.lock() {
                l.push(name.clone());
            }
            // veth names are at most 15 bytes: unique per run by pid and run.
            let tag = (pid.wrapping_mul(31).wrapping_add(run)) % 0x10000;
            let outer = format!("tl{tag:04x}h{i}");
            let inner = format!("tl{tag:04x}n{i}");
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ])?;
            ip(&["link", "set", &inner, "netns", &name])?;
            let (root, node) = (host.root_ip(i), host.node_ip(i));
            ip(&["addr", "add", &format!("{root}/30"), "dev", &outer])?;
            ip(&["link", "set", &outer, "up"])?;
            let ns = |args: &[&str]| {
                let mut a = vec!["-n", name.as_str()];
                a.extend_from_slice(args);
                ip(&a)
            };
            ns(&["addr", "add", &format!("{node}/30"), "dev", &inner])?;
            ns(&["link", "set", &inner, "up"])?;
            ns(&["link", "set", "lo", "up"])?;
        }
        Ok(host)
    }

    /// Namespaces or loopback.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// The simulator's address on node `i`'s link (where its emulated links
    /// listen); 127.0.0.1 on loopback.
    pub fn root_ip(&self, i: usize) -> IpAddr {
        self.link_ip(i, 1)
    }

    /// Node `i`'s own address; 127.0.0.1 on loopback.
    pub fn node_ip(&self, i: usize) -> IpAddr {
        self.link_ip(i, 2)
    }

    /// Host `host` (1: root end, 2: node end) of node `i`'s /30.
    fn link_ip(&self, i: usize, host: usize) -> IpAddr {
        match self.isolation {
            Isolation::Loopback => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Isolation::Namespaces => IpAddr::V4(Ipv4Addr::new(
                10,
                self.octet,
                (i / 64) as u8,
                (i % 64 * 4 + host) as u8,
            )),
        }
    }

    /// The command prefix that runs a program inside node `i`'s namespace.
    pub fn exec_prefix(&self, i: usize) -> Vec<String> {
        match self.isolation {
            Isolation::Loopback => Vec::new(),
            Isolation::Namespaces => vec![
                "ip".into(),
                "netns".into(),
                "exec".into(),
                self.names[i].clone(),
            ],
        }
    }

    /// Namespace names (empty on loopback).
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        delete_all(&self.names);
        if let Ok(mut l) = LIVE.lock() {
            l.retain(|n| !self.names.contains(n));
        }
    }
}

/// Whether `ip` is an address [`Host`] hands out (10.64.0.0 – 10.127.255.255):
/// the simulator's HTTP client talks to these and to loopback, nothing else.
pub fn is_sim_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            o[0] == 10 && (64..=127).contains(&o[1])
        }
        IpAddr::V6(_) => false,
    }
}

/// Whether the kernel has the `netem` qdisc (tested on a scratch veth pair in a
/// scratch namespace): `Some(true|false)`, `None` without namespaces.
pub fn netem_available(host: &Host) -> Option<bool> {
    let name = host.names.first()?;
    let ok = ip(&["-n", name, "link", "add", "tlprobe0", "type", "dummy"]).is_ok()
        && Command::new("tc")
            .args([
                "-n", name, "qdisc", "add", "dev", "tlprobe0", "root", "netem", "delay", "1ms",
            ])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
    let _ = ip(&["-n", name, "link", "del", "tlprobe0"]);
    Some(ok)
}
