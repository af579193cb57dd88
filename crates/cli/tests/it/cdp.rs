//! A small Chrome DevTools Protocol client for the dashboard tests: headless Debian `chromium`
//! started with a debugging port, one page attached over its WebSocket (flattened sessions), and
//! the few commands the tests need: navigate, evaluate, wait for a condition, screenshot. The
//! page's console errors and uncaught exceptions are collected, so a test can assert there were none.

use base64::Engine as _;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

pub struct Browser {
    child: Child,
    ws: WebSocket<TcpStream>,
    next: u64,
    session: String,
    /// Console errors and exceptions the page reported.
    pub errors: Vec<String>,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts `binary` headless with one blank page, attached.
    pub fn launch(binary: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-port=0",
            ])
            .arg("--remote-debugging-address=127.0.0.1")
            .arg("--window-size=1280,1600")
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        let ws_url = loop {
            line.clear();
            assert!(err.read_line(&mut line).unwrap() > 0, "chromium exited before listening");
            if let Some(i) = line.find("ws://") {
                break line[i..].trim().to_owned();
            }
        };
        // Keep draining stderr so chromium never blocks on a full pipe.
        std::thread::spawn(move || for _ in err.lines() {});
        let addr = ws_url.trim_start_matches("ws://").split('/').next().unwrap().to_owned();
        let stream = TcpStream::connect(&addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let (ws, _) = tungstenite::client(ws_url.as_str(), stream).expect("DevTools WebSocket");
        let mut b = Browser { child, ws, next: 0, session: String::new(), errors: Vec::new(), _profile: profile };
        let targets = b.call_browser("Target.getTargets", json!({}));
        let page = targets["targetInfos"].as_array().unwrap().iter().find(|t| t["type"] == "page").expect("a page")["targetId"].clone();
        let attached = b.call_browser("Target.attachToTarget", json!({"targetId": page, "flatten": true}));
        b.session = attached["sessionId"].as_str().unwrap().to_owned();
        for m in ["Page.enable", "Runtime.enable", "Log.enable"] {
            b.call(m, json!({}));
        }
        b.call("Emulation.setDeviceMetricsOverride", json!({"width": 1280, "height": 1600, "deviceScaleFactor": 1, "mobile": false}));
        b
    }

    fn send(&mut self, method: &str, params: Value, session: bool) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if session {
            msg["sessionId"] = Value::String(self.session.clone());
        }
        self.ws.send(Message::text(msg.to_string())).unwrap();
        loop {
            let m = self.ws.read().expect("DevTools message");
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {}", v["error"]);
                return v["result"].clone();
            }
            self.event(&v);
        }
    }

    fn event(&mut self, v: &Value) {
        match v["method"].as_str() {
            Some("Runtime.exceptionThrown") => self.errors.push(v["params"]["exceptionDetails"].to_string()),
            Some("Runtime.consoleAPICalled") if v["params"]["type"] == "error" => self.errors.push(v["params"]["args"].to_string()),
            Some("Log.entryAdded") if v["params"]["entry"]["level"] == "error" => {
                let text = v["params"]["entry"]["text"].as_str().unwrap_or_default().to_owned();
                // A cancelled events stream (leaving a page) is not a page error.
                if !text.contains("ERR_ABORTED") {
                    self.errors.push(text);
                }
            }
            _ => {}
        }
    }

    fn call_browser(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, false)
    }

    /// A command to the page.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, true)
    }

    /// Opens `url` and waits for the document to load.
    pub fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
        self.wait_for("document.readyState === 'complete'", Duration::from_secs(20));
    }

    /// The value of a JavaScript expression (promises awaited).
    pub fn eval(&mut self, js: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({"expression": js, "awaitPromise": true, "returnByValue": true}));
        assert!(r.get("exceptionDetails").is_none(), "`{js}` threw: {}", r["exceptionDetails"]);
        r["result"]["value"].clone()
    }

    /// Waits until `js` is true; panics with the page's text when it is not within `limit`. An
    /// expression that throws (an element the page is re-rendering is momentarily absent) is
    /// "not yet", and its last error is reported if time runs out.
    pub fn wait_for(&mut self, js: &str, limit: Duration) {
        let t = Instant::now();
        let mut threw = None;
        loop {
            let r = self.call("Runtime.evaluate", json!({"expression": format!("!!({js})"), "awaitPromise": true, "returnByValue": true}));
            match r.get("exceptionDetails") {
                Some(e) => threw = Some(e.to_string()),
                None if r["result"]["value"] == Value::Bool(true) => return,
                None => {}
            }
            if t.elapsed() > limit {
                let text = self.eval("document.body ? document.body.innerText : ''");
                panic!(
                    "`{js}` not true within {limit:?} (last error: {}); the page says:\n{}",
                    threw.as_deref().unwrap_or("none"),
                    text.as_str().unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Saves a PNG of the page.
    pub fn screenshot(&mut self, path: &Path) {
        let r = self.call("Page.captureScreenshot", json!({"format": "png", "captureBeyondViewport": true}));
        let png = base64::engine::general_purpose::STANDARD.decode(r["data"].as_str().unwrap()).unwrap();
        assert!(png.len() > 10_000, "a blank screenshot ({} bytes)", png.len());
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
