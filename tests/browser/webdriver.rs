//! Debian's `chromium-driver` driven with fantoccini (default features off: plain HTTP to a
//! driver on localhost, no TLS stack). What fantoccini leaves to us is here: starting
//! chromedriver and Chromium with our flags, a deadline on every command, the answers the tests
//! expect as `Option`s (an element that is not there or went stale), chromedriver's console log
//! endpoint, and closing the browser from `Drop`.
//!
//! Everything that starts a process or a browser is owned by a guard whose `Drop` ends it, so a
//! failing test still closes its browser and driver.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::error::CmdError;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand, WindowHandle};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper::Method;
use hyper_util::client::legacy::connect::HttpConnector;
use serde::Deserialize;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::runtime::{Handle, RuntimeFlavor};

pub use fantoccini::elements::Element;

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long any single driver command may take (starting a browser is the slow one).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long closing a browser through its driver may take before its processes are killed.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(20);

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

/// A running `chromedriver` on a free port; killed on drop.
pub struct Driver {
    addr: SocketAddr,
    child: Child,
}

impl Driver {
    /// Starts chromedriver and waits until it accepts connections.
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
            child,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(driver.addr).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver not ready in time"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        driver
    }

    /// A new browser with its own profile (so its own cookies and connection pool).
    pub async fn browser(&self) -> Browser {
        self.browser_with(&[]).await
    }

    /// [`Driver::browser`] with more Chromium flags.
    pub async fn browser_with(&self, extra: &[&str]) -> Browser {
        let profile = TempDir::new().expect("profile dir");
        let mut args: Vec<String> = CHROME_ARGS
            .iter()
            .chain(extra)
            .map(|a| a.to_string())
            .collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps: Capabilities = serde_json::from_value(json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }))
        .expect("capabilities are an object");
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(caps);
        let url = format!("http://{}", self.addr);
        // Chromium's start-up can fail now and then on a loaded machine: try again, then fail.
        let mut attempt = 1;
        let client = loop {
            let session = tokio::time::timeout(COMMAND_TIMEOUT, builder.connect(&url)).await;
            let error = match session {
                Ok(Ok(client)) => break client,
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer in {COMMAND_TIMEOUT:?}"),
            };
            assert!(attempt < 3, "new session: {error}");
            eprintln!("new session failed (attempt {attempt}): {error}; retrying");
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        Browser { client, profile }
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

/// One browser session; closed (and its processes killed if that fails) on drop.
pub struct Browser {
    client: Client,
    profile: TempDir,
}

/// A console message Chromium logged.
#[derive(Debug, Clone, Deserialize)]
pub struct LogEntry {
    pub level: String,
    pub message: String,
}

/// chromedriver's `POST /session/{id}/se/log` for the browser's console (not in W3C WebDriver,
/// so not in fantoccini).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.expect("a session")))
    }

    fn method_and_body(&self, _: &url::Url) -> (Method, Option<String>) {
        (Method::POST, Some(json!({"type": "browser"}).to_string()))
    }
}

/// Awaits one driver command for at most [`COMMAND_TIMEOUT`].
async fn within<T>(
    what: &str,
    command: impl Future<Output = Result<T, CmdError>>,
) -> Result<T, CmdError> {
    tokio::time::timeout(COMMAND_TIMEOUT, command)
        .await
        .unwrap_or_else(|_| panic!("webdriver: {what}: no answer in {COMMAND_TIMEOUT:?}"))
}

/// Awaits one driver command that must succeed.
async fn run<T>(what: &str, command: impl Future<Output = Result<T, CmdError>>) -> T {
    within(what, command)
        .await
        .unwrap_or_else(|e| panic!("webdriver: {what}: {e}"))
}

impl Browser {
    /// This browser's profile folder (its `--user-data-dir`).
    pub fn profile(&self) -> &Path {
        self.profile.path()
    }

    pub async fn goto(&self, url: &str) {
        run(url, self.client.goto(url)).await
    }

    /// The first element matching `css`, if any.
    pub async fn find(&self, css: &str) -> Option<Element> {
        match within(css, self.client.find(Locator::Css(css))).await {
            Ok(el) => Some(el),
            Err(e) if e.is_no_such_element() => None,
            Err(e) => panic!("find {css}: {e}"),
        }
    }

    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        run(css, self.client.find_all(Locator::Css(css))).await
    }

    pub async fn click(&self, el: &Element) {
        run("click", el.click()).await
    }

    pub async fn clear(&self, el: &Element) {
        run("clear", el.clear()).await
    }

    pub async fn send_keys(&self, el: &Element, text: &str) {
        run("send keys", el.send_keys(text)).await
    }

    /// The element's rendered text (what a reader sees; hidden parts left out). `None` if the
    /// element was replaced since it was found.
    pub async fn text(&self, el: &Element) -> Option<String> {
        match within("text", el.text()).await {
            Ok(text) => Some(text),
            Err(e) if e.is_stale_element_reference() => None,
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
        run(name, el.attr(name)).await
    }

    /// A DOM property (a string or a boolean, as text; `null` if the element has none).
    pub async fn property(&self, el: &Element, name: &str) -> Value {
        Value::from(run(name, el.prop(name)).await)
    }

    /// Runs `script` (a function body; `arguments` holds `args`, an element as `json!(el)`) for
    /// inspecting the page from the test. The app itself never runs script of ours.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        run(script, self.client.execute(script, args)).await
    }

    /// The cookies the browser holds for the current page's site (with their flags).
    pub async fn cookies(&self) -> Vec<fantoccini::cookies::Cookie<'static>> {
        run("cookies", self.client.get_all_cookies()).await
    }

    /// Console messages logged since the last call (Chromium clears the buffer as it is read).
    pub async fn console(&self) -> Vec<LogEntry> {
        let list = run("console log", self.client.issue_cmd(BrowserLog)).await;
        serde_json::from_value(list).expect("a list of log entries")
    }

    /// A PNG of the current window, written to `path` (parent folders created).
    pub async fn screenshot(&self, path: &Path) {
        let png = run("screenshot", self.client.screenshot()).await;
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "screenshot is a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot folder");
        }
        std::fs::write(path, png).expect("screenshot written");
    }

    pub async fn window(&self) -> WindowHandle {
        run("window", self.client.window()).await
    }

    /// Opens a new window (not a tab) and returns its handle; the current window does not
    /// change.
    pub async fn new_window(&self) -> WindowHandle {
        run("new window", self.client.new_window(false))
            .await
            .handle
    }

    pub async fn switch_to(&self, handle: &WindowHandle) {
        run(
            "switch window",
            self.client.switch_to_window(handle.clone()),
        )
        .await
    }

    /// Minimises the current window: the page becomes hidden, as a background tab does.
    pub async fn minimize(&self) {
        run("minimize", self.client.minimize_window()).await
    }

    /// Restores the current window to `width`×`height` (from minimised, it becomes visible).
    pub async fn resize(&self, width: u32, height: u32) {
        run("resize", self.client.set_window_size(width, height)).await
    }

    /// Closes the current window (its page and its connections' use go with it).
    pub async fn close_window(&self) {
        run("close window", self.client.close_window()).await
    }

    pub async fn windows(&self) -> Vec<WindowHandle> {
        run("windows", self.client.windows()).await
    }

    /// Asks chromedriver to end the session, which closes Chromium. fantoccini's `close` does
    /// not say whether the driver managed (it cannot when it has died): `Drop` checks.
    /// `Drop` cannot await: this blocks the test's thread while the runtime's workers carry the
    /// request, which needs the multi-threaded runtime every browser test runs on.
    fn close(&self) {
        let Ok(runtime) = Handle::try_current() else {
            return;
        };
        if runtime.runtime_flavor() != RuntimeFlavor::MultiThread {
            return;
        }
        let client = self.client.clone();
        let _ = tokio::task::block_in_place(|| {
            runtime.block_on(tokio::time::timeout(CLOSE_TIMEOUT, client.close()))
        });
    }
}

impl Drop for Browser {
    /// Closes the session, then kills whatever of this browser still runs (all of it when
    /// chromedriver has died or hangs, nothing when it closed Chromium).
    fn drop(&mut self) {
        self.close();
        kill_browser(self.profile.path());
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
