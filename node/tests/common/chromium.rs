//! Real headless Chromium for the page tests, started one way: run to
//! completion on one URL ([`run`]: `--dump-dom`, `--screenshot`), or driven over
//! the DevTools protocol ([`Browser`]) on `--remote-debugging-pipe`, where
//! messages are JSON ending in a NUL byte on file descriptors 3 (in) and 4
//! (out). The pipe needs no WebSocket client: a `sh` wrapper moves the child's
//! stdin and stdout there. Every wait is bounded.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

/// The browser under test.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// How long one browser run, one DevTools answer or one page load may take.
const BOUND: Duration = Duration::from_secs(90);

/// Whether the page tests can run: a missing Chromium fails the test, unless
/// the person running it says out loud that they skip it
/// (`TRACELESS_SKIP_CHROMIUM=1`; then this prints SKIPPED and returns false).
pub fn available() -> bool {
    if Path::new(CHROMIUM).exists() {
        return true;
    }
    assert_eq!(
        std::env::var("TRACELESS_SKIP_CHROMIUM").as_deref(),
        Ok("1"),
        "{CHROMIUM} is missing: install it with .ci/install-node.sh, or set \
         TRACELESS_SKIP_CHROMIUM=1 to skip this test"
    );
    eprintln!("SKIPPED (TRACELESS_SKIP_CHROMIUM=1): {CHROMIUM} is missing");
    false
}

/// The flags of every run: headless, no sandbox (containers), nothing that
/// talks to the network on its own, the profile in `profile`.
fn flags(profile: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

/// Waits for `child` at most [`BOUND`]; kills it and panics past that.
fn wait_bounded(child: &mut Child) {
    let end = Instant::now() + BOUND;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs Chromium with `extra` args on `url` to completion; returns stdout.
pub fn run(profile: &Path, extra: &[String], url: &str) -> String {
    let mut child = Command::new(CHROMIUM)
        .args(flags(profile))
        .args(extra)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    wait_bounded(&mut child);
    reader.join().unwrap()
}

/// A Chromium driven over the DevTools protocol, attached to its one page.
pub struct Browser {
    child: Child,
    input: ChildStdin,
    messages: Receiver<Value>,
    /// Events that arrived while waiting for an answer, oldest first.
    events: Vec<Value>,
    next_id: u64,
    session: String,
}

impl Browser {
    /// Starts Chromium on `about:blank` with a `width` x `height` window and
    /// attaches to its page.
    pub fn launch(profile: &Path, width: u32, height: u32) -> Browser {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("exec \"$0\" \"$@\" 3<&0 4>&1 </dev/null >/dev/null")
            .arg(CHROMIUM)
            .args(flags(profile))
            .arg(format!("--window-size={width},{height}"))
            .arg("--remote-debugging-pipe")
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let input = child.stdin.take().unwrap();
        let mut output = child.stdout.take().unwrap();
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let mut pending = Vec::new();
            let mut buf = [0u8; 64 << 10];
            while let Ok(n @ 1..) = output.read(&mut buf) {
                pending.extend_from_slice(&buf[..n]);
                while let Some(end) = pending.iter().position(|b| *b == 0) {
                    let message: Vec<u8> = pending.drain(..=end).collect();
                    let value = serde_json::from_slice(&message[..end]).unwrap();
                    if tx.send(value).is_err() {
                        return;
                    }
                }
            }
        });
        let mut b = Browser {
            child,
            input,
            messages,
            events: Vec::new(),
            next_id: 0,
            session: String::new(),
        };
        let targets = b.send(None, "Target.getTargets", json!({}));
        let page = targets["targetInfos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .unwrap()["targetId"]
            .clone();
        let attached = b.send(
            None,
            "Target.attachToTarget",
            json!({ "targetId": page, "flatten": true }),
        );
        b.session = attached["sessionId"].as_str().unwrap().to_owned();
        b.call("Page.enable", json!({}));
        b
    }

    fn next(&mut self, end: Instant) -> Value {
        let left = end.saturating_duration_since(Instant::now());
        self.messages
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no DevTools message within {BOUND:?}: {e}"))
    }

    /// Sends `method` (to the page's session, or to the browser) and returns
    /// its result; panics on a protocol error.
    fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut m = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            m["sessionId"] = s.into();
        }
        let mut bytes = serde_json::to_vec(&m).unwrap();
        bytes.push(0);
        self.input.write_all(&bytes).unwrap();
        self.input.flush().unwrap();
        let end = Instant::now() + BOUND;
        loop {
            let m = self.next(end);
            if m["id"] == id {
                assert!(m.get("error").is_none(), "{method}: {m}");
                return m["result"].clone();
            }
            if m.get("method").is_some() {
                self.events.push(m);
            }
        }
    }

    /// Sends `method` to the page and returns its result.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(Some(&session), method, params)
    }

    /// Waits for the page event `method` (one that came after the last wait).
    fn wait_event(&mut self, method: &str) -> Value {
        if let Some(i) = self.events.iter().position(|e| e["method"] == method) {
            return self.events.drain(..=i).next_back().unwrap();
        }
        self.events.clear();
        let end = Instant::now() + BOUND;
        loop {
            let m = self.next(end);
            if m["method"] == method && m["sessionId"] == self.session.as_str() {
                return m;
            }
        }
    }

    /// Runs `action`, then waits until the page it leads to has loaded.
    fn and_load(&mut self, action: impl FnOnce(&mut Browser)) {
        self.events.clear();
        action(self);
        self.wait_event("Page.loadEventFired");
    }

    /// Opens `url` and waits until it has loaded.
    pub fn open(&mut self, url: &str) {
        self.and_load(|b| {
            let r = b.call("Page.navigate", json!({ "url": url }));
            assert!(r.get("errorText").is_none(), "{url}: {r}");
        });
    }

    /// The value of `expression` evaluated in the page (by DevTools, outside
    /// the page's Content-Security-Policy).
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        );
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    /// Clicks the middle of the element `selector` with the mouse.
    pub fn click(&mut self, selector: &str) {
        let at = self.eval(&format!(
            "(() => {{ const r = document.querySelector({}).getBoundingClientRect(); \
             return [r.x + r.width / 2, r.y + r.height / 2]; }})()",
            json!(selector)
        ));
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": at[0], "y": at[1], "button": "left", "clickCount": 1 }),
            );
        }
    }

    /// Clicks `selector` and waits until the page it leads to has loaded.
    pub fn click_and_load(&mut self, selector: &str) {
        self.and_load(|b| b.click(selector));
    }

    /// Clicks the input `selector`, empties it and types `text` into it.
    pub fn type_into(&mut self, selector: &str, text: &str) {
        self.click(selector);
        self.eval(&format!(
            "document.querySelector({}).value = ''",
            json!(selector)
        ));
        self.call("Input.insertText", json!({ "text": text }));
    }

    /// The page's DOM as HTML.
    pub fn dom(&mut self) -> String {
        self.eval("document.documentElement.outerHTML")
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The browser's cookie `name` for `url` (HttpOnly ones included).
    pub fn cookie(&mut self, url: &str, name: &str) -> Option<Value> {
        let r = self.call("Network.getCookies", json!({ "urls": [url] }));
        r["cookies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
    }

    /// Saves a PNG screenshot of the page to `path`.
    pub fn screenshot(&mut self, path: &Path) {
        let r = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "screenshot is a PNG");
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Asks the browser to close; kills it if it does not within the bound.
        let _ = self
            .input
            .write_all(b"{\"id\":0,\"method\":\"Browser.close\"}\0");
        let _ = self.input.flush();
        let end = Instant::now() + BOUND;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
