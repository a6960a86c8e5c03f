//! Scenario 8: a front end on another origin follows Herald with nothing but `EventSource`.
//!
//! Two fixtures stand in for the world outside Herald: a static page served by the test on a
//! port of its own (a second origin; not part of Herald), and a TCP proxy in front of Herald
//! that can cut every connection through it and hold new ones back, so the page's stream can
//! be dropped and kept away while changes are made.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::common::{Client, spawn_app_with};
use crate::dashboard::{LIVE, console_errors, wait_for, wait_for_or};
use crate::serial;
use crate::webdriver::{Browser, Driver};

/// The front end: an `EventSource` on the stream named in the URL's fragment, with credentials,
/// that keeps every event it receives in `window.got`.
const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Another origin</title></head>
<body><ol id="events"></ol>
<script>
window.got = [];
window.opens = 0;
window.errors = 0;
window.es = new EventSource(location.hash.slice(1), {withCredentials: true});
for (const type of ["resync", "offer.created", "offer.updated", "offer.deleted"]) {
  window.es.addEventListener(type, (e) => {
    window.got.push({type, id: e.lastEventId, data: JSON.parse(e.data)});
    const li = document.createElement("li");
    li.textContent = type + " " + e.data;
    document.getElementById("events").append(li);
  });
}
window.es.onopen = () => window.opens++;
window.es.onerror = () => window.errors++;
</script></body></html>"#;

/// A server that answers `GET /` with [`PAGE`] and anything else with 404.
struct FrontPage {
    origin: String,
    task: JoinHandle<()>,
}

impl FrontPage {
    async fn start() -> FrontPage {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(serve_page(tcp));
            }
        });
        FrontPage { origin, task }
    }
}

impl Drop for FrontPage {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_page(mut tcp: TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(LIVE, tcp.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => return,
        }
    }
    let (status, body) = if head.starts_with(b"GET / ") {
        ("200 OK", PAGE)
    } else {
        ("404 Not Found", "")
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tcp.write_all(response.as_bytes()).await;
}

/// A TCP proxy to Herald that records each connection's first bytes (its request head).
struct Proxy {
    addr: String,
    /// `true` while new connections are held back (not yet passed to Herald).
    held: watch::Sender<bool>,
    /// Bumped to cut every open connection.
    cuts: watch::Sender<u64>,
    heads: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: std::net::SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let held = watch::Sender::new(false);
        let cuts = watch::Sender::new(0);
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (held_rx, cuts_rx, log) = (held.subscribe(), cuts.subscribe(), heads.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let conn = relay(
                    client,
                    upstream,
                    held_rx.clone(),
                    cuts_rx.clone(),
                    log.clone(),
                );
                tokio::spawn(conn);
            }
        });
        Proxy {
            addr,
            held,
            cuts,
            heads,
            task,
        }
    }

    /// Cuts every open connection and holds new ones back until [`Proxy::release`].
    fn cut_and_hold(&self) {
        self.held.send_replace(true);
        self.cuts.send_modify(|n| *n += 1);
    }

    fn release(&self) {
        self.held.send_replace(false);
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cuts.send_modify(|n| *n += 1);
    }
}

async fn relay(
    mut client: TcpStream,
    upstream: std::net::SocketAddr,
    mut held: watch::Receiver<bool>,
    mut cuts: watch::Receiver<u64>,
    heads: Arc<Mutex<Vec<String>>>,
) {
    cuts.mark_unchanged();
    if held.wait_for(|held| !held).await.is_err() {
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let mut first = vec![0; 8192];
    let Ok(n) = client.read(&mut first).await else {
        return;
    };
    heads
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&first[..n]).into_owned());
    if server.write_all(&first[..n]).await.is_err() {
        return;
    }
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = cuts.changed() => {}
    }
}

/// What the page's `EventSource` has received: `(type, id, data)` of each event.
async fn received(page: &Browser) -> Vec<(String, String, Value)> {
    let got = page.execute("return window.got", vec![]).await;
    got.as_array()
        .expect("a list")
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (text("type"), text("id"), e["data"].clone())
        })
        .collect()
}

/// Waits until the page has received `count` events; returns them all.
async fn wait_events(page: &Browser, count: usize) -> Vec<(String, String, Value)> {
    let last = Mutex::new(Vec::new());
    let found = wait_for_or(LIVE, async || {
        let got = received(page).await;
        *last.lock().unwrap() = got.clone();
        (got.len() >= count).then_some(got)
    })
    .await;
    found.unwrap_or_else(|| {
        panic!(
            "timed out waiting for {count} events; got {:#?}",
            last.lock().unwrap()
        )
    })
}

async fn number(page: &Browser, script: &str) -> i64 {
    page.execute(script, vec![]).await.as_i64().unwrap_or(-1)
}

async fn post(api: &Client, json: Value) -> Value {
    let resp = api.post_json("/offers", &json.to_string()).await;
    assert!(resp.status.is_success(), "{} {}", resp.status, resp.body);
    resp.json()
}

async fn send(api: &Client, method: hyper::Method, path: &str, json: Option<Value>) -> Value {
    let headers = [("content-type", "application/json")];
    let body = json.map(|j| j.to_string()).unwrap_or_default();
    let resp = api.request(method, path, &headers, body).await;
    assert!(resp.status.is_success(), "{} {}", resp.status, resp.body);
    resp.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_on_another_origin_follows_offers_live_and_catches_up_after_a_drop() {
    let _turn = serial().await;
    let front = FrontPage::start().await;
    let unlisted = FrontPage::start().await;
    let listed = vec![front.origin.clone()];
    let app = spawn_app_with(move |c| c.cors_origins = listed).await;
    let proxy = Proxy::start(app.addr).await;
    let stream = format!("http://{}/api/stream?topics=offers", proxy.addr);
    let api = app.client();
    let driver = Driver::start().await;
    let (page, stranger) = (driver.browser().await, driver.browser().await);
    page.goto(&format!("{}/#{stream}", front.origin)).await;
    stranger
        .goto(&format!("{}/#{stream}", unlisted.origin))
        .await;

    let opened = wait_events(&page, 1).await;
    assert_eq!(opened[0].0, "resync");
    assert_eq!(opened[0].2["offers"]["total"], 0, "{:?}", opened[0]);

    let first = post(&api, json!({"description": "Live <b>one</b>", "value": 10})).await;
    let second = post(&api, json!({"description": "Live two", "value": 20})).await;
    let change = json!({"description": "Live one, cheaper", "value": 9.5});
    let updated = send(&api, hyper::Method::PUT, "/offers/1", Some(change)).await;
    let live = wait_events(&page, 4).await;
    let shown: Vec<(&str, &Value)> = live[1..].iter().map(|(t, _, d)| (t.as_str(), d)).collect();
    assert_eq!(
        shown,
        [
            ("offer.created", &first),
            ("offer.created", &second),
            ("offer.updated", &updated),
        ]
    );
    assert_eq!(number(&page, "return window.opens").await, 1);
    let page_text = page.text_of("#events").await.unwrap_or_default();
    assert!(page_text.contains("Live <b>one</b>"), "{page_text}");

    // The connection drops; while the page is kept away, two changes are made.
    proxy.cut_and_hold();
    wait_for("the page to see its stream drop", LIVE, async || {
        (number(&page, "return window.errors").await >= 1).then_some(())
    })
    .await;
    let third = post(&api, json!({"description": "Made while away", "value": 30})).await;
    let deleted = send(&api, hyper::Method::DELETE, "/offers/2", None).await;
    proxy.release();

    let all = wait_events(&page, 6).await;
    let caught_up: Vec<(&str, &Value)> = all[4..].iter().map(|(t, _, d)| (t.as_str(), d)).collect();
    assert_eq!(
        caught_up,
        [("offer.created", &third), ("offer.deleted", &deleted)],
        "exactly what was missed, replayed (no second resync)"
    );
    let ids: Vec<u64> = all
        .iter()
        .map(|(_, id, _)| id.split('-').nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(number(&page, "return window.opens").await, 2);
    let heads = proxy.heads();
    let reconnect = heads
        .iter()
        .rev()
        .find(|h| h.starts_with("GET /api/stream"))
        .expect("the reconnect went through the proxy")
        .to_ascii_lowercase();
    let last_seen = &live[3].1;
    assert!(
        reconnect.contains(&format!("last-event-id: {last_seen}")),
        "the browser resumed from the last event it saw: {reconnect}"
    );
    assert!(
        reconnect.contains(&format!("origin: {}", front.origin)),
        "{reconnect}"
    );

    // Live again.
    let fourth = post(&api, json!({"description": "Live again", "value": 40})).await;
    let again = wait_events(&page, 7).await;
    assert_eq!(again[6].0, "offer.created");
    assert_eq!(again[6].2, fourth);

    // The page on an origin that is not listed never read a thing: its browser refused.
    assert_eq!(received(&stranger).await, []);
    assert_eq!(
        number(&stranger, "return window.es.readyState").await,
        2,
        "EventSource.CLOSED"
    );
    let cors_errors: Vec<String> = console_errors(&page)
        .await
        .into_iter()
        .filter(|e| e.contains("CORS") || e.contains("Access-Control"))
        .collect();
    assert_eq!(cors_errors, Vec::<String>::new());
    let refused = console_errors(&stranger).await;
    assert!(
        refused.iter().any(|e| e.contains("CORS")),
        "the stranger's browser says why: {refused:#?}"
    );
}
