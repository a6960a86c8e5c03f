//! A small W3C WebDriver client for Debian's `chromium-driver`, over the hyper client the tests
//! already use. fantoccini and thirtyfour would pull in TLS stacks for a driver on localhost.
//!
//! Everything that starts a process or a browser is owned by a guard whose `Drop` ends it, so a
//! failing test still closes its browser and driver.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tempfile::TempDir;

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The key W3C WebDriver uses for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long any single driver command may take (starting a browser is the slow one).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Flags for Chromium on a machine with no internet and no display.
const CHROME_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
];

type Http = HyperClient<HttpConnector, Full<Bytes>>;

/// A running `chromedriver` on a free port; killed on drop.
pub struct Driver {
    addr: SocketAddr,
    http: Http,
    child: Child,
}

impl Driver {
    /// Starts chromedriver and waits until it reports ready.
    pub async fn start() -> Driver {
        assert!(
            Path::new(CHROMEDRIVER).exists(),
            "{CHROMEDRIVER} is missing: apt-get install -y chromium chromium-driver"
        );
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            http: HyperClient::builder(TokioExecutor::new()).build_http(),
            child,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(status) = call(&driver.http, driver.addr, Method::GET, "/status", None).await
                && status["ready"] == true
            {
                return driver;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver not ready in time"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A new browser with its own profile (so its own cookies and connection pool).
    pub async fn browser(&self) -> Browser {
        let profile = TempDir::new().expect("profile dir");
        let mut args: Vec<String> = CHROME_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        // Chromium's start-up can fail now and then on a loaded machine: try again, then fail.
        let mut attempt = 1;
        let value = loop {
            match call(
                &self.http,
                self.addr,
                Method::POST,
                "/session",
                Some(caps.clone()),
            )
            .await
            {
                Ok(value) => break value,
                Err(e) if attempt < 3 => {
                    eprintln!("new session failed (attempt {attempt}): {e}; retrying");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => panic!("new session: {e}"),
            }
        };
        let id = value["sessionId"].as_str().expect("session id").to_string();
        Browser {
            addr: self.addr,
            http: self.http.clone(),
            id,
            profile,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// One WebDriver command. `Err` carries the driver's error message.
async fn call(
    http: &Http,
    addr: SocketAddr,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = tokio::time::timeout(COMMAND_TIMEOUT, async {
        let resp = http.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((status, bytes))
    })
    .await
    .map_err(|_| format!("{path}: no answer in {COMMAND_TIMEOUT:?}"))??;
    let (status, bytes) = resp;
    let json: Value = serde_json::from_slice(&bytes).map_err(|e| format!("{path}: {e}"))?;
    let value = json["value"].clone();
    if status.is_success() {
        Ok(value)
    } else {
        Err(format!("{path}: {} {}", value["error"], value["message"]))
    }
}

/// One browser session; deleted (closing Chromium) on drop.
pub struct Browser {
    addr: SocketAddr,
    http: Http,
    id: String,
    profile: TempDir,
}

/// A reference to an element in the current window.
#[derive(Clone, Debug)]
pub struct Element(String);

impl Element {
    /// The element as an argument to [`Browser::execute`].
    pub fn to_json(&self) -> Value {
        let mut reference = serde_json::Map::new();
        reference.insert(ELEMENT.to_string(), Value::from(self.0.as_str()));
        Value::Object(reference)
    }
}

/// A console message Chromium logged.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub level: String,
    pub message: String,
}

impl Browser {
    async fn cmd(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        self.try_cmd(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("webdriver: {e}"))
    }

    async fn try_cmd(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let path = format!("/session/{}{path}", self.id);
        call(&self.http, self.addr, method, &path, body).await
    }

    /// This browser's profile folder (its `--user-data-dir`).
    pub fn profile(&self) -> &Path {
        self.profile.path()
    }

    pub async fn goto(&self, url: &str) {
        self.cmd(Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// The first element matching `css`, if any.
    pub async fn find(&self, css: &str) -> Option<Element> {
        let body = json!({"using": "css selector", "value": css});
        match self.try_cmd(Method::POST, "/element", Some(body)).await {
            Ok(v) => Some(Element(v[ELEMENT].as_str().expect("element").to_string())),
            Err(e) if e.contains("no such element") => None,
            Err(e) => panic!("find {css}: {e}"),
        }
    }

    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let body = json!({"using": "css selector", "value": css});
        let list = self.cmd(Method::POST, "/elements", Some(body)).await;
        list.as_array()
            .expect("element list")
            .iter()
            .map(|v| Element(v[ELEMENT].as_str().expect("element").to_string()))
            .collect()
    }

    pub async fn click(&self, el: &Element) {
        self.cmd(
            Method::POST,
            &format!("/element/{}/click", el.0),
            Some(json!({})),
        )
        .await;
    }

    pub async fn clear(&self, el: &Element) {
        self.cmd(
            Method::POST,
            &format!("/element/{}/clear", el.0),
            Some(json!({})),
        )
        .await;
    }

    pub async fn send_keys(&self, el: &Element, text: &str) {
        let path = format!("/element/{}/value", el.0);
        self.cmd(Method::POST, &path, Some(json!({"text": text})))
            .await;
    }

    /// The element's rendered text (what a reader sees; hidden parts left out). `None` if the
    /// element was replaced since it was found.
    pub async fn text(&self, el: &Element) -> Option<String> {
        let path = format!("/element/{}/text", el.0);
        match self.try_cmd(Method::GET, &path, None).await {
            Ok(v) => Some(v.as_str().unwrap_or_default().to_string()),
            Err(e) if e.contains("stale element") => None,
            Err(e) => panic!("text: {e}"),
        }
    }

    /// The rendered text of the first element matching `css`, or `None` if there is none.
    pub async fn text_of(&self, css: &str) -> Option<String> {
        match self.find(css).await {
            Some(el) => self.text(&el).await,
            None => None,
        }
    }

    pub async fn attribute(&self, el: &Element, name: &str) -> Option<String> {
        let path = format!("/element/{}/attribute/{name}", el.0);
        self.cmd(Method::GET, &path, None)
            .await
            .as_str()
            .map(str::to_string)
    }

    pub async fn property(&self, el: &Element, name: &str) -> Value {
        let path = format!("/element/{}/property/{name}", el.0);
        self.cmd(Method::GET, &path, None).await
    }

    /// Runs `script` (a function body; `arguments` holds `args`) for inspecting the page from the
    /// test. The app itself never runs script of ours.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        let body = json!({"script": script, "args": args});
        self.cmd(Method::POST, "/execute/sync", Some(body)).await
    }

    /// Console messages logged since the last call (Chromium clears the buffer as it is read).
    pub async fn console(&self) -> Vec<LogEntry> {
        let body = json!({"type": "browser"});
        let list = self.cmd(Method::POST, "/se/log", Some(body)).await;
        list.as_array()
            .expect("log list")
            .iter()
            .map(|e| LogEntry {
                level: e["level"].as_str().unwrap_or_default().to_string(),
                message: e["message"].as_str().unwrap_or_default().to_string(),
            })
            .collect()
    }

    /// A PNG of the current window, written to `path` (parent folders created).
    pub async fn screenshot(&self, path: &Path) {
        let encoded = self.cmd(Method::GET, "/screenshot", None).await;
        let png = base64_decode(encoded.as_str().expect("base64 screenshot"));
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "screenshot is a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot folder");
        }
        std::fs::write(path, png).expect("screenshot written");
    }

    pub async fn window(&self) -> String {
        let handle = self.cmd(Method::GET, "/window", None).await;
        handle.as_str().expect("window handle").to_string()
    }

    /// Opens a new window (`"window"`) or tab (`"tab"`) and returns its handle; the current
    /// window does not change.
    pub async fn new_window(&self, kind: &str) -> String {
        let value = self
            .cmd(Method::POST, "/window/new", Some(json!({"type": kind})))
            .await;
        value["handle"].as_str().expect("window handle").to_string()
    }

    pub async fn switch_to(&self, handle: &str) {
        self.cmd(Method::POST, "/window", Some(json!({"handle": handle})))
            .await;
    }

    /// Minimises the current window: the page becomes hidden, as a background tab does.
    pub async fn minimize(&self) {
        self.cmd(Method::POST, "/window/minimize", Some(json!({})))
            .await;
    }

    /// Restores the current window to `width`×`height` (from minimised, it becomes visible).
    pub async fn resize(&self, width: u32, height: u32) {
        let rect = json!({"width": width, "height": height});
        self.cmd(Method::POST, "/window/rect", Some(rect)).await;
    }

    pub async fn windows(&self) -> Vec<String> {
        let list = self.cmd(Method::GET, "/window/handles", None).await;
        list.as_array()
            .expect("handles")
            .iter()
            .map(|h| h.as_str().expect("handle").to_string())
            .collect()
    }
}

impl Drop for Browser {
    /// Deletes the session so chromedriver closes Chromium; if chromedriver cannot (it hangs or
    /// has died), kills this browser's processes itself. Plain blocking I/O: `Drop` cannot
    /// await, and only chromedriver (another process) is involved.
    fn drop(&mut self) {
        if !self.delete_session() {
            kill_browser(self.profile.path());
        }
    }
}

impl Browser {
    fn delete_session(&self) -> bool {
        let Ok(mut conn) = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)) else {
            return false;
        };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(20)));
        let request = format!(
            "DELETE /session/{} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            self.id, self.addr
        );
        conn.write_all(request.as_bytes()).is_ok()
            && read_answer(&mut conn).starts_with("HTTP/1.1 200")
    }
}

/// Reads one HTTP answer to its end (chromedriver keeps the connection open regardless); what
/// arrived before an error or timeout otherwise.
fn read_answer(conn: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Ok(n @ 1..) = conn.read(&mut chunk) else {
            return String::from_utf8_lossy(&answer).into_owned();
        };
        answer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length = text[..head_end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if answer.len() >= head_end + 4 + length {
                return text.into_owned();
            }
        }
    }
}

/// Kills the Chromium processes started with `profile` as their user data dir.
fn kill_browser(profile: &Path) {
    for pid in browser_processes(profile) {
        let _ = Command::new("kill").args(["-9", &pid]).status();
    }
}

/// The ids of the processes running with `profile` as their user data dir (a fresh temp dir
/// per browser, so nothing else matches).
pub fn browser_processes(profile: &Path) -> Vec<String> {
    let flag = format!("--user-data-dir={}", profile.display());
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_string_lossy().into_owned();
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let ours = pid.bytes().all(|b| b.is_ascii_digit())
                && cmdline.split(|b| *b == 0).any(|arg| arg == flag.as_bytes());
            ours.then_some(pid)
        })
        .collect()
}

/// Standard base64 (screenshots); the only place the tests need it.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .map(value)
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, d)| n | (u32::from(*d) << (18 - 6 * i)));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[test]
fn base64_decodes_padded_and_unpadded_input() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGk"), b"hi");
    assert_eq!(base64_decode("YWJj"), b"abc");
}
