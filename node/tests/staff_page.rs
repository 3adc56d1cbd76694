//! The case-worker pages of a gateway (SPEC.md §8.4) against the real gateway
//! over real HTTP: log in, issue 3 codes, each redeems exactly once at
//! `/v1/upload`, log out; refusals with their exact status and reason; the
//! throttle; session expiry on an injected clock; the audit entries.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;

use common::*;
use traceless_node::operators::{parse_roles, Actor, Staff};
use traceless_node::{ManualClock, RunningNode};
use traceless_protocol::log::Event;

const PASSWORD: &str = "correct horse battery";

fn form(addr: SocketAddr, path: &str, cookie: Option<&str>, origin: bool, body: &str) -> Response {
    let o = format!("http://{addr}");
    let c = cookie.map(|c| format!("traceless_staff={c}"));
    let mut h = vec![("Content-Type", "application/x-www-form-urlencoded")];
    if origin {
        h.push(("Origin", o.as_str()));
    }
    if let Some(c) = &c {
        h.push(("Cookie", c.as_str()));
    }
    http(addr, "POST", path, &h, body.as_bytes())
}

fn reason(r: &Response) -> String {
    let t = r.text();
    let key = "data-reason=\"";
    t.find(key)
        .map(|i| t[i + key.len()..].split('"').next().unwrap().to_owned())
        .unwrap_or_default()
}

fn login(addr: SocketAddr, name: &str, password: &str) -> Response {
    form(
        addr,
        "/staff/login",
        None,
        true,
        &format!("name={name}&password={}", password.replace(' ', "+")),
    )
}

/// Logs in; returns the session cookie and the CSRF token of its forms.
fn session(addr: SocketAddr, name: &str) -> (String, String) {
    let r = login(addr, name, PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
    let set = r.header("set-cookie").unwrap().to_owned();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/staff"] {
        assert!(set.contains(attr), "{set}");
    }
    let id = set
        .strip_prefix("traceless_staff=")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 64, "256-bit session id");
    let c = format!("traceless_staff={id}");
    let home = http(addr, "GET", "/staff/", &[("Cookie", &c)], &[]);
    let t = home.text();
    let key = "name=\"csrf\" value=\"";
    let csrf = t[t.find(key).unwrap() + key.len()..]
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    (id, csrf)
}

fn codes_of(r: &Response) -> Vec<String> {
    r.text()
        .split("<li class=\"code\"><code>")
        .skip(1)
        .map(|s| s.split('<').next().unwrap().to_owned())
        .collect()
}

/// A real gateway on an injected clock with staff accounts `(name, roles)`,
/// each with [`PASSWORD`], created from the command line.
struct StaffedGateway {
    node: RunningNode,
    clock: ManualClock,
    _dir: tempfile::TempDir,
}

async fn staffed_gateway(accounts: &[(&str, &str)]) -> StaffedGateway {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let node = start_node(gateway_config(dir.path()), &clock).await;
    let staff = Staff::open(node.core.log.db()).accounts;
    for (name, roles) in accounts {
        let roles = parse_roles(roles).unwrap();
        staff
            .create(&node.core.log, Actor::Cli, name, roles, PASSWORD, NOW)
            .unwrap();
    }
    StaffedGateway {
        node,
        clock,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn case_worker_issues_codes_that_redeem_once() {
    let g = staffed_gateway(&[
        ("lead.1", "manage-operators,issue-codes"),
        ("case-worker.7", "issue-codes"),
        ("auditor", "read-audit"),
    ])
    .await;
    let core = g.node.core.clone();
    let addr = g.node.http_addr;
    let core2 = core.clone();
    tokio::task::spawn_blocking(move || {
        let core = core2;
        // Every staff answer: no-store and the CSP, including the login form.
        let home = get(addr, "/staff/");
        assert_eq!(home.status, 200);
        assert_eq!(home.header("cache-control"), Some("no-store"));
        assert!(home
            .header("content-security-policy")
            .unwrap()
            .contains("default-src 'none'"));
        assert!(home.text().contains("id=\"login\""));

        // A wrong password and an unknown account get the same answer.
        let wrong = login(addr, "case-worker.7", "not the password");
        let unknown = login(addr, "nobody", "not the password");
        assert_eq!((wrong.status, reason(&wrong)), (401, "login-failed".into()));
        assert_eq!(wrong.status, unknown.status);
        assert_eq!(wrong.text(), unknown.text());

        let (cookie, csrf) = session(addr, "case-worker.7");
        // CSRF token missing, wrong; no Origin: refused, nothing issued.
        let r = form(addr, "/staff/issue", Some(&cookie), true, "count=3");
        assert_eq!((r.status, reason(&r)), (403, "csrf-token".into()));
        let r = form(addr, "/staff/issue", Some(&cookie), true, "count=3&csrf=00");
        assert_eq!((r.status, reason(&r)), (403, "csrf-token".into()));
        let body = format!("count=3&csrf={csrf}");
        let r = form(addr, "/staff/issue", Some(&cookie), false, &body);
        assert_eq!((r.status, reason(&r)), (403, "origin".into()));
        let r = form(
            addr,
            "/staff/issue",
            Some(&cookie),
            true,
            &format!("count=21&csrf={csrf}"),
        );
        assert_eq!((r.status, reason(&r)), (400, "count".into()));
        let before = core.log.size().unwrap();

        let r = form(addr, "/staff/issue", Some(&cookie), true, &body);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let codes = codes_of(&r);
        assert_eq!(codes.len(), 3, "{}", r.text());
        // Logged before shown: one entry, with the actor and the count only.
        let entry = core.log.entry(before).unwrap().unwrap();
        assert_eq!(
            Event::decode(&entry).unwrap(),
            Event::CodesIssued {
                actor: "case-worker.7".into(),
                count: 3,
                at: NOW
            }
        );
        for c in &codes {
            assert!(!String::from_utf8_lossy(&entry).contains(c.as_str()));
        }
        // Each code redeems exactly once.
        for c in &codes {
            let r = http(
                addr,
                "POST",
                "/v1/upload",
                &[],
                &upload_body(c, keys_of_day(TODAY - 1, 1)),
            );
            assert_eq!(r.status, 200, "{}", r.text());
            let r = http(
                addr,
                "POST",
                "/v1/upload",
                &[],
                &upload_body(c, keys_of_day(TODAY - 1, 1)),
            );
            assert_eq!(r.status, 403);
            assert!(r.text().contains("unknown or already used"));
        }
        // Log out: the session is gone.
        let r = form(
            addr,
            "/staff/logout",
            Some(&cookie),
            true,
            &format!("csrf={csrf}"),
        );
        assert_eq!(r.status, 200);
        assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
        let r = form(addr, "/staff/issue", Some(&cookie), true, &body);
        assert_eq!((r.status, reason(&r)), (401, "not-logged-in".into()));

        // An account without issue-codes cannot issue; it can read the audit.
        let (cookie, csrf) = session(addr, "auditor");
        let r = form(
            addr,
            "/staff/issue",
            Some(&cookie),
            true,
            &format!("count=1&csrf={csrf}"),
        );
        assert_eq!((r.status, reason(&r)), (403, "not-permitted".into()));
        let c = format!("traceless_staff={cookie}");
        let audit = http(addr, "GET", "/staff/audit", &[("Cookie", &c)], &[]).json();
        let kinds: Vec<&str> = audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["account", "account", "account", "codes-issued"]);

        // Escalation: a manager grants or takes only roles it holds, never
        // raises its own, never leaves no manager.
        let (cookie, csrf) = session(addr, "lead.1");
        let act = |body: &str| {
            form(
                addr,
                "/staff/accounts",
                Some(&cookie),
                true,
                &format!("csrf={csrf}&{body}"),
            )
        };
        let r = act("action=create&name=new.1&roles=read-audit");
        assert_eq!((r.status, reason(&r)), (403, "escalation".into()));
        let r =
            act("action=set-roles&name=lead.1&roles=manage-operators%2Cissue-codes%2Cread-audit");
        assert_eq!((r.status, reason(&r)), (403, "escalation".into()));
        let r = act("action=disable&name=auditor");
        assert_eq!((r.status, reason(&r)), (403, "escalation".into()));
        let r = act("action=set-roles&name=lead.1&roles=issue-codes");
        assert_eq!((r.status, reason(&r)), (409, "last-manager".into()));
        let r = act("action=create&name=new.1&roles=issue-codes");
        assert_eq!(r.status, 200, "{}", r.text());
        let r = act("action=disable&name=case-worker.7");
        assert_eq!(r.status, 200, "{}", r.text());
        let r = login(addr, "case-worker.7", PASSWORD);
        assert_eq!((r.status, reason(&r)), (401, "login-failed".into()));
    })
    .await
    .unwrap();
    let actions: Vec<String> = core
        .log
        .all_entries()
        .unwrap()
        .iter()
        .filter(|e| e.starts_with(b"account "))
        .map(|e| String::from_utf8_lossy(e).trim_end().to_owned())
        .collect();
    assert_eq!(
        actions[3..],
        [
            format!("account lead.1 created new.1 issue-codes {NOW}"),
            format!("account lead.1 disabled case-worker.7 - {NOW}"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logins_are_throttled_and_sessions_expire() {
    let g = staffed_gateway(&[("cw", "issue-codes")]).await;
    let addr = g.node.http_addr;
    let c = g.clock.clone();
    tokio::task::spawn_blocking(move || {
        let (cookie, csrf) = session(addr, "cw");
        // 29 minutes idle: alive. Then 30 minutes idle: over.
        c.set(NOW + 29 * 60);
        let ck = format!("traceless_staff={cookie}");
        assert!(http(addr, "GET", "/staff/", &[("Cookie", &ck)], &[])
            .text()
            .contains("id=\"who\""));
        c.set(NOW + 59 * 60);
        let r = form(
            addr,
            "/staff/issue",
            Some(&cookie),
            true,
            &format!("count=1&csrf={csrf}"),
        );
        assert_eq!((r.status, reason(&r)), (401, "not-logged-in".into()));

        // Three failures lock the account name (and the address) for 2 s,
        // even for the right password; then 4 s after the next failure.
        let t = NOW + 3600;
        c.set(t);
        for _ in 0..3 {
            let r = login(addr, "cw", "wrong password!");
            assert_eq!((r.status, reason(&r)), (401, "login-failed".into()));
        }
        let r = login(addr, "cw", PASSWORD);
        assert_eq!((r.status, reason(&r)), (429, "throttled".into()));
        assert_eq!(r.header("retry-after"), Some("2"));
        // Another account from the same address is throttled too.
        let r = login(addr, "someone-else", PASSWORD);
        assert_eq!((r.status, reason(&r)), (429, "throttled".into()));
        c.set(t + 2);
        let r = login(addr, "cw", "wrong password!");
        assert_eq!(r.status, 401);
        let r = login(addr, "cw", PASSWORD);
        assert_eq!(r.header("retry-after"), Some("4"));
        c.set(t + 6);
        let r = login(addr, "cw", PASSWORD);
        assert_eq!(r.status, 303, "{}", r.text());
    })
    .await
    .unwrap();
}
