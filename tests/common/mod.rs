//! Test harness: spawns the real app on port 0 with its own database, and talks to it the way a
//! browser tab does (cookies, the page's stream URL, `Last-Event-ID`).
#![allow(dead_code)] // each test binary uses part of the harness

pub mod pg;
pub mod process;
pub mod raw;
pub mod regions;
pub mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use herald::config::Config;
use herald::{App, AppState};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const WAIT: Duration = Duration::from_secs(10);

/// The defaults (`herald::config`, as `--help` shows them) with the smaller limits and faster
/// pacing the tests rely on; HERALD_* variables in the test's environment are ignored.
pub fn test_config(db: &Path) -> Config {
    let args = [
        ("addr", "127.0.0.1:0"),
        ("db", db.to_str().expect("UTF-8 temp path")),
        ("max-message-chars", "100"),
        ("max-title-chars", "40"),
        ("max-body-chars", "200"),
        ("max-description-chars", "60"),
        ("max-upload-bytes", "1048576"),
        ("max-import-rows", "100000"),
        ("max-import-columns", "20"),
        ("max-field-chars", "200"),
        ("history-messages", "64"),
        ("history-bytes", "1048576"),
        ("client-history-messages", "64"),
        ("client-history-bytes", "1048576"),
        ("retry-ms", "500"),
        ("client-idle-secs", "60"),
        // Above the 16 KB Herald's own loop parses, so heads between the two go to hyper and
        // are served (tests/http1.rs); tests/limits.rs sets the default.
        ("max-header-bytes", "65536"),
        ("drain-secs", "0"),
    ];
    let flags = args
        .iter()
        .flat_map(|(flag, value)| [format!("--{flag}"), value.to_string()]);
    Config::from_args_without_env(std::iter::once("herald".to_string()).chain(flags))
        .expect("test configuration parses")
}

pub struct TestApp {
    pub addr: SocketAddr,
    /// `https` when the configuration names a certificate.
    pub scheme: &'static str,
    /// Herald's HTTPS, to reload its certificate as SIGHUP does.
    pub tls: Option<herald::web::tls::Tls>,
    /// Where `/metrics` is served when the configuration gives it an address of its own.
    pub metrics_addr: Option<SocketAddr>,
    pub db: PathBuf,
    pub state: AppState,
    /// The app's router, to call without a connection.
    pub router: axum::Router,
    dir: Arc<TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Spawns with a fresh database, after `adjust` has changed the test configuration: a SQLite
/// file, or a PostgreSQL database when the run selects it (`HERALD_TEST_STORE=postgres`).
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    if pg::selected() {
        spawn_postgres_with(adjust).await
    } else {
        let dir = Arc::new(TempDir::new().unwrap());
        let mut config = test_config(&dir.path().join("herald.db"));
        adjust(&mut config);
        start(config, dir, "127.0.0.1:0".parse().unwrap()).await
    }
}

/// Spawns on a fresh PostgreSQL database, whichever store the run selects.
pub async fn spawn_postgres_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let dir = Arc::new(TempDir::new().unwrap());
    let mut config = test_config(&dir.path().join("unused.db"));
    config.database_url = Some(pg::fresh_database().await.into());
    adjust(&mut config);
    start(config, dir, "127.0.0.1:0".parse().unwrap()).await
}

async fn start(config: Config, dir: Arc<TempDir>, addr: SocketAddr) -> TestApp {
    let db = config.db.clone();
    let App { router, state } = herald::build(config).await.expect("app builds");
    let listener = TcpListener::bind(addr).await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let metrics = match state.config.ops.metrics_addr {
        Some(at) => Some(TcpListener::bind(at).await.expect("bind metrics")),
        None => None,
    };
    let metrics_addr = metrics.as_ref().map(|l| l.local_addr().unwrap());
    let tls = state.config.ops.tls.as_ref().map(|files| {
        herald::web::tls::Tls::load(&files.cert, &files.key).expect("the certificate loads")
    });
    let scheme = if tls.is_some() { "https" } else { "http" };
    let (stop, stopped) = oneshot::channel::<()>();
    let app = App {
        router: router.clone(),
        state: state.clone(),
    };
    let listeners = herald::Listeners {
        app: listener,
        metrics,
        tls: tls.clone(),
    };
    let task = tokio::spawn(herald::serve(listeners, app, async {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        scheme,
        tls,
        metrics_addr,
        db,
        state,
        router,
        dir,
        stop: Some(stop),
        task: Some(task),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// Starts a graceful shutdown, as SIGTERM does, without waiting for it.
    pub fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Graceful shutdown, as on SIGTERM; returns once the server has drained.
    pub async fn stop(&mut self) {
        self.signal_stop();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(WAIT, task)
                .await
                .expect("server drains in time")
                .unwrap()
                .unwrap();
        }
    }

    /// Another instance on the same (PostgreSQL) database and configuration, on its own port.
    pub async fn another(&self) -> TestApp {
        let config = (*self.state.config).clone();
        start(config, self.dir.clone(), "127.0.0.1:0".parse().unwrap()).await
    }

    /// Stops this server and starts a new one on the same port and database file.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        let mut config = (*self.state.config).clone();
        config.db = self.db.clone();
        start(config, self.dir.clone(), self.addr).await
    }

    /// `/metrics` asked of the app's router without a connection: also once the server has
    /// stopped, when every stream's client has read all that was written to it.
    pub async fn metrics(&self) -> String {
        use tower::ServiceExt as _;
        let request = Request::get("/metrics")
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = self.router.clone().oneshot(request).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    pub fn client(&self) -> Client {
        Client::new(self.addr)
    }

    /// The PostgreSQL database this instance runs on.
    pub fn database_url(&self) -> String {
        self.state
            .config
            .database_url
            .as_deref()
            .expect("a PostgreSQL instance")
            .to_string()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub struct Response {
    pub status: StatusCode,
    pub version: hyper::Version,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// One browser (a cookie jar) talking to the app.
#[derive(Clone)]
pub struct Client {
    addr: SocketAddr,
    scheme: &'static str,
    http: Transport,
    cookie: Arc<Mutex<Option<String>>>,
}

/// Plain HTTP/1.1, or HTTPS with HTTP/2 or HTTP/1.1 as ALPN chose.
#[derive(Clone)]
enum Transport {
    Plain(HyperClient<HttpConnector, Full<Bytes>>),
    Tls(HyperClient<tls::Https, Full<Bytes>>),
}

/// A tab: its client id and the stream URL its page rendered.
pub struct Tab {
    pub client: String,
    pub stream_url: String,
    pub page: String,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client {
            addr,
            scheme: "http",
            http: Transport::Plain(HyperClient::builder(TokioExecutor::new()).build_http()),
            cookie: Arc::new(Mutex::new(None)),
        }
    }

    /// A browser on HTTPS through `https` (HTTP/2 when it negotiates it: then every request
    /// and stream of this client shares one connection).
    pub fn https(addr: SocketAddr, https: tls::Https) -> Client {
        Client {
            addr,
            scheme: "https",
            http: Transport::Tls(HyperClient::builder(TokioExecutor::new()).build(https)),
            cookie: Arc::new(Mutex::new(None)),
        }
    }

    /// The same browser (its cookie) talking to another server: a tab moving between
    /// instances behind a load balancer.
    pub fn at(&self, addr: SocketAddr) -> Client {
        Client {
            addr,
            ..self.clone()
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Response {
        let (head, bytes) = self.request_bytes(method, path, headers, body).await;
        Response {
            status: head.status,
            version: head.version,
            headers: head.headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// An answer with its body as bytes (compressed bodies are not text).
    pub async fn request_bytes(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> (hyper::http::response::Parts, Bytes) {
        let (head, body) = self.send(method, path, headers, body).await.into_parts();
        let bytes = tokio::time::timeout(WAIT, body.collect())
            .await
            .expect("body in time")
            .expect("body")
            .to_bytes();
        (head, bytes)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> hyper::Response<Incoming> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}://{}{path}", self.scheme, self.addr));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(cookie) = self.cookie.lock().unwrap().clone() {
            req = req.header("cookie", cookie);
        }
        let req = req.body(Full::new(body.into())).unwrap();
        let sent = match &self.http {
            Transport::Plain(http) => http.request(req),
            Transport::Tls(http) => http.request(req),
        };
        let resp = tokio::time::timeout(WAIT, sent)
            .await
            .expect("response in time")
            .expect("request succeeds");
        if let Some(set) = resp.headers().get("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_string();
            *self.cookie.lock().unwrap() = Some(pair);
        }
        resp
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path, &[], Bytes::new()).await
    }

    pub async fn post_json(&self, path: &str, json: &str) -> Response {
        self.request(
            Method::POST,
            path,
            &[("content-type", "application/json")],
            json.to_string(),
        )
        .await
    }

    /// A form post as the page's htmx sends it.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        let body = serde_urlencoded::to_string(fields).unwrap();
        let headers = [
            ("content-type", "application/x-www-form-urlencoded"),
            ("hx-request", "true"),
            ("sec-fetch-site", "same-origin"),
        ];
        self.request(Method::POST, path, &headers, body).await
    }

    /// Loads the dashboard, as opening a tab does.
    pub async fn open_tab(&self) -> Tab {
        let page = self.get("/").await;
        assert_eq!(page.status, StatusCode::OK);
        let stream_url = attribute(&page.body, "hx-sse:connect=\"").replace("&#38;", "&");
        let client = stream_url
            .trim_start_matches("/sse/")
            .split('?')
            .next()
            .unwrap()
            .to_string();
        Tab {
            client,
            stream_url,
            page: page.body,
        }
    }

    pub async fn stream(&self, path: &str) -> Sse {
        self.stream_with(path, &[]).await
    }

    pub async fn stream_with(&self, path: &str, headers: &[(&str, &str)]) -> Sse {
        let resp = self.send(Method::GET, path, headers, Bytes::new()).await;
        assert_eq!(resp.status(), StatusCode::OK, "stream {path}");
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        Sse {
            headers: resp.headers().clone(),
            body: resp.into_body(),
            buffer: String::new(),
            raw: String::new(),
            last_frame: String::new(),
            ended: false,
        }
    }
}

fn attribute(html: &str, prefix: &str) -> String {
    let start = html
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} in page"))
        + prefix.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_string()
}

/// One parsed SSE message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub retry: Option<u64>,
    pub comment: bool,
}

/// Reads an SSE body message by message.
pub struct Sse {
    pub headers: hyper::HeaderMap,
    body: Incoming,
    buffer: String,
    /// Everything received, byte for byte.
    pub raw: String,
    /// The last message exactly as framed, for snapshotting frames.
    pub last_frame: String,
    pub ended: bool,
}

impl Sse {
    /// The next message (comments included), or `None` when the stream ends.
    pub async fn next(&mut self) -> Option<Event> {
        self.next_within(WAIT).await.expect("an event in time")
    }

    /// `Err` if nothing complete arrives within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Result<Option<Event>, ()> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                self.last_frame = self.buffer.drain(..end + 2).collect();
                return Ok(Some(parse(&self.last_frame)));
            }
            if self.ended {
                return Ok(None);
            }
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) => return Err(()),
                Ok(None) => self.ended = true,
                Ok(Some(Err(e))) => panic!("stream broke: {e}"),
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        let text = std::str::from_utf8(&data).expect("utf-8 stream");
                        self.raw.push_str(text);
                        self.buffer.push_str(text);
                    }
                }
            }
        }
    }

    /// The next message that carries data, skipping heartbeats that only carry status.
    pub async fn next_data(&mut self) -> Event {
        loop {
            let event = self.next().await.expect("stream still open");
            if !event.comment && !event.data.is_empty() {
                return event;
            }
        }
    }

    /// Reads until a message's data contains `needle`; panics after `WAIT`.
    pub async fn until(&mut self, needle: &str) -> Event {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Ok(Some(event)) if event.data.contains(needle) => return event,
                Ok(Some(_)) => continue,
                Ok(None) => panic!("stream ended before {needle:?}"),
                Err(()) => panic!("no message with {needle:?} in time; got:\n{}", self.raw),
            }
        }
    }

    /// Asserts nothing but heartbeats arrives within `wait`.
    pub async fn expect_quiet(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Err(()) => return,
                Ok(Some(e)) if e.comment => continue,
                Ok(other) => panic!("expected silence, got {other:?}"),
            }
        }
    }
}

/// Clients that make changes at once: to `app`, and on PostgreSQL also to a second instance on
/// its database, as behind a load balancer (the second runs while this lives).
pub struct Writers {
    _second: Option<TestApp>,
    clients: Vec<Client>,
}

impl Writers {
    pub async fn new(app: &TestApp) -> Writers {
        let second = if pg::selected() {
            Some(app.another().await)
        } else {
            None
        };
        let clients = std::iter::once(app)
            .chain(&second)
            .map(TestApp::client)
            .collect();
        Writers {
            _second: second,
            clients,
        }
    }

    /// Writer `n`'s client, taking the instances in turn.
    pub fn nth(&self, n: usize) -> Client {
        self.clients[n % self.clients.len()].clone()
    }
}

/// Starts a job through `POST /jobs`; its id.
pub async fn create_job(client: &Client, body: serde_json::Value) -> i64 {
    let resp = client.post_json("/jobs", &body.to_string()).await;
    assert_eq!(resp.status, StatusCode::ACCEPTED, "{}", resp.body);
    resp.json()["id"].as_i64().expect("an id")
}

/// A tab's stream that has replayed one board message (sent before it opened, so its task
/// wrote it) and then received two live ones (the fan-out writes those on a plain connection).
pub async fn replayed_then_live(client: &Client) -> Sse {
    let tab = client.open_tab().await;
    client.get("/send?message=replayed").await;
    let mut stream = client.stream(&tab.stream_url).await;
    stream.until("replayed").await;
    for text in ["live-one", "live-two"] {
        client.get(&format!("/send?message={text}")).await;
        stream.until(text).await;
    }
    stream
}

/// The texts of the next `count` board messages on a stream.
pub async fn board_texts(stream: &mut Sse, count: usize) -> Vec<String> {
    let messages = board_messages(stream, count).await;
    messages.into_iter().map(|(_, text)| text).collect()
}

/// A tab on `reader` whose stream has received a board message written through `writer` (two
/// instances, or one): the writer's client and the tab's stream.
pub async fn tab_following(writer: &TestApp, reader: &TestApp) -> (Client, Sse) {
    let browser = reader.client();
    let tab = browser.open_tab().await;
    let mut stream = browser.stream(&tab.stream_url).await;
    let writing = writer.client();
    writing.get("/send?message=before").await;
    assert_eq!(board_texts(&mut stream, 1).await, ["before"]);
    (writing, stream)
}

/// The next `count` board messages on a stream: each one's id and text.
pub async fn board_messages(stream: &mut Sse, count: usize) -> Vec<(String, String)> {
    let mut got = Vec::new();
    while got.len() < count {
        let e = stream.next_data().await;
        if e.data.contains("board-message") {
            let text = e
                .data
                .split("<blockquote class=\"board-text\">")
                .nth(1)
                .unwrap();
            got.push((e.id.unwrap(), text.split('<').next().unwrap().to_string()));
        }
    }
    got
}

fn parse(block: &str) -> Event {
    let mut event = Event::default();
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines() {
        if line.starts_with(':') {
            event.comment = true;
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => event.id = Some(value.to_string()),
            "event" => event.event = Some(value.to_string()),
            "data" => data.push(value),
            "retry" => event.retry = value.parse().ok(),
            _ => {}
        }
    }
    event.data = data.join("\n");
    event
}

/// The value of one sample in Prometheus text: `series` is the name with its labels as
/// written (`herald_http_requests_total{method="GET",route="/",status="200"}`).
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
}

/// Replaces what changes from run to run (cursors, times, the tabs open, which depends on when
/// presence was last counted) so frames can be snapshotted.
pub fn redact(raw: &str) -> String {
    let mut out = String::new();
    for line in raw.split_inclusive('\n') {
        if line.starts_with("id: ") {
            out.push_str("id: [cursor]\n");
        } else {
            out.push_str(&redact_presence(&redact_times(line)));
        }
    }
    out
}

fn redact_presence(line: &str) -> String {
    const REGION: &str = "hx-target=\"#presence\" hx-swap=\"innerHTML\">";
    let Some(start) = line.find(REGION).map(|at| at + REGION.len()) else {
        return line.to_string();
    };
    let end = start + line[start..].find('<').unwrap_or(0);
    format!("{}[tabs]{}", &line[..start], &line[end..])
}

fn redact_times(line: &str) -> String {
    let bytes = line.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        // 2026-11-21T10:43:53.12Z (with or without fraction)
        if let Some(len) = datetime_at(&bytes[i..]) {
            out.push_str("[datetime]");
            i += len;
        } else if bytes.len() - i >= 8 && is_hms(&bytes[i..i + 8]) {
            out.push_str("[time]");
            i += 8;
        } else {
            let c = line[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn is_hms(b: &[u8]) -> bool {
    b[0].is_ascii_digit()
        && b[1].is_ascii_digit()
        && b[2] == b':'
        && b[3].is_ascii_digit()
        && b[4].is_ascii_digit()
        && b[5] == b':'
        && b[6].is_ascii_digit()
        && b[7].is_ascii_digit()
}

fn datetime_at(b: &[u8]) -> Option<usize> {
    if b.len() < 20 || !(b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[10] == b'T') {
        return None;
    }
    b.iter().position(|c| *c == b'Z').map(|z| z + 1)
}
