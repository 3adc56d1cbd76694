//! The case-worker pages of a gateway (SPEC.md §8.4) against the real gateway
//! over real HTTP: log in, issue 3 codes, each redeems exactly once at
//! `/v1/upload`, log out; refusals with their exact status and reason; the
//! throttle; session expiry on an injected clock; the audit entries. And the
//! same pages in a real headless Chromium: a case worker logs in and issues
//! codes through the forms, a cross-site form post is refused; screenshots are
//! saved as test artifacts.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use common::chromium::Browser;
use common::*;
use traceless_node::http::staff::COOKIE;
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

/// Serves `html` to every request on `ip` (another origin for the browser),
/// one thread per connection (the browser may open some it never uses), from
/// threads that live as long as the test binary.
fn serve_page(ip: &str, html: String) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let html = std::sync::Arc::new(html);
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let html = html.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
                    html.len()
                );
            });
        }
    });
    addr
}

/// The HTTP status of the page the browser shows, and its refusal's
/// `data-reason`.
fn shown_refusal(b: &mut Browser) -> (serde_json::Value, serde_json::Value) {
    (
        b.eval("performance.getEntriesByType('navigation')[0].responseStatus"),
        b.eval("document.querySelector('#error')?.dataset.reason ?? null"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn case_worker_in_headless_chromium() {
    if !chromium::available() {
        return;
    }
    let g = staffed_gateway(&[("case-worker.7", "issue-codes")]).await;
    let core = g.node.core.clone();
    let addr = g.node.http_addr;
    tokio::task::spawn_blocking(move || {
        let profile = tempfile::tempdir().unwrap();
        let mut b = Browser::launch(profile.path(), 900, 700);
        let home = format!("http://{addr}/staff/");
        b.open(&home);
        assert!(b.dom().contains("id=\"login\""));

        // Log in through the form, typing as a person would.
        b.type_into("#name", "case-worker.7");
        b.type_into("#password", PASSWORD);
        b.click_and_load("#login-button");
        assert_eq!(b.eval("location.href"), home.as_str(), "303 to the home page");
        assert_eq!(
            b.eval("document.querySelector('#who').dataset.account"),
            "case-worker.7"
        );
        let cookie = b.cookie(&home, COOKIE).unwrap();
        assert_eq!(
            (&cookie["httpOnly"], &cookie["secure"], &cookie["sameSite"]),
            (&true.into(), &true.into(), &"Strict".into()),
            "{cookie}"
        );
        // The page the browser got carries the session's CSRF token, in each
        // of its forms: the one the node shows that session.
        let tokens = b.eval("[...document.querySelectorAll('input[name=csrf]')].map(e => e.value)");
        let tokens: Vec<&str> = tokens
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert_eq!(tokens.len(), 2, "issue and logout forms");
        let csrf = tokens[0].to_owned();
        assert!(csrf.len() >= 32 && tokens.iter().all(|t| *t == csrf), "{tokens:?}");
        let session = format!("{COOKIE}={}", cookie["value"].as_str().unwrap());
        let raw = http(addr, "GET", "/staff/", &[("Cookie", &session)], &[]);
        assert!(raw
            .text()
            .contains(&format!("name=\"csrf\" value=\"{csrf}\"")));
        let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR"));
        b.screenshot(&artifacts.join("staff-home.png"));

        // Issue 3 codes through the form; read them off the page.
        let before = core.log.size().unwrap();
        b.type_into("#count", "3");
        b.click_and_load("#issue-button");
        let codes: Vec<String> = b
            .eval("[...document.querySelectorAll('#codes li.code code')].map(e => e.textContent)")
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(codes.len(), 3, "{}", b.dom());
        b.screenshot(&artifacts.join("staff-codes.png"));
        eprintln!("screenshots saved to {}/staff-{{home,codes}}.png", artifacts.display());
        assert_eq!(
            Event::decode(&core.log.entry(before).unwrap().unwrap()).unwrap(),
            Event::CodesIssued {
                actor: "case-worker.7".into(),
                count: 3,
                at: NOW
            }
        );
        // The codes the page shows are the ones issued: each redeems once.
        for c in &codes {
            let body = upload_body(c, keys_of_day(TODAY - 1, 1));
            assert_eq!(http(addr, "POST", "/v1/upload", &[], &body).status, 200);
            assert_eq!(http(addr, "POST", "/v1/upload", &[], &body).status, 403);
        }

        // Control: the same form, same site, without its token: refused.
        b.open(&home);
        b.eval("document.querySelector('#issue input[name=csrf]').remove()");
        b.click_and_load("#issue-button");
        assert_eq!(shown_refusal(&mut b), (403.into(), "csrf-token".into()));

        // Another origin (127.0.0.2) posts the issue form, even with the
        // session's token: refused as cross-site, nothing issued.
        let evil = serve_page(
            "127.0.0.2",
            format!(
                "<!doctype html><title>Win a prize</title><form method=\"post\" action=\"http://{addr}/staff/issue\">\
                 <input type=\"hidden\" name=\"count\" value=\"5\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <button id=\"go\" type=\"submit\">Claim</button></form>"
            ),
        );
        b.open(&format!("http://{evil}/"));
        b.click_and_load("#go");
        assert_eq!(b.eval("location.href"), format!("http://{addr}/staff/issue").as_str());
        assert_eq!(
            shown_refusal(&mut b),
            (403.into(), "origin".into()),
            "{}",
            b.dom()
        );
        assert_eq!(core.log.size().unwrap(), before + 1, "nothing else issued");
    })
    .await
    .unwrap();
}
