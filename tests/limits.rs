//! Nobody holds Herald hostage: every limit on a connection, tried over raw TCP as a hostile or
//! broken client would, on Herald's own HTTP/1.1 loop and on connections hyper serves. Each
//! test shortens its limit through the test configuration instead of sleeping for long.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use common::process::{Running, herald};
use common::raw::{Conn, find, flood_board, get};
use common::{TestApp, WAIT, spawn_app_with};
use herald::config::Config;
use http_body_util::BodyExt;
use hyper::service::Service as _;
use hyper::{Request, StatusCode};
use hyper_util::service::TowerToHyperService;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn spawn(adjust: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_with(adjust).await
}

/// A connection that hyper serves: a `HEAD` hands it over for good.
async fn handed_to_hyper(app: &TestApp) -> Conn {
    let mut conn = Conn::open(app).await;
    conn.send(b"HEAD / HTTP/1.1\r\nHost: herald.test\r\n\r\n")
        .await;
    assert_eq!(conn.head_response().await.status, 200);
    conn
}

#[tokio::test]
async fn a_head_not_finished_in_time_gets_408_and_the_connection_closes() {
    let app = spawn(|c| c.connections.header_timeout = ms(300)).await;

    // On Herald's loop: part of a GET.
    let mut native = Conn::open(&app).await;
    native
        .send(b"GET /csv?rows=1 HTTP/1.1\r\nHost: herald.test\r\n")
        .await;
    let resp = native.response().await;
    assert_eq!(resp.status, 408, "{resp:?}");
    assert_eq!(resp.header("connection"), "close");
    native.expect_eof().await;

    // Inside hyper: part of a POST's head.
    let mut handed = handed_to_hyper(&app).await;
    handed
        .send(b"POST /send-notification HTTP/1.1\r\nHost: herald.test\r\nContent-Le")
        .await;
    let resp = handed.response().await;
    assert_eq!(resp.status, 408, "{resp:?}");
    handed.expect_eof().await;

    // A connection that never sends anything is closed, with nothing to answer.
    let mut silent = Conn::open(&app).await;
    silent.expect_eof().await;
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let app = spawn(|c| c.connections.idle_timeout = ms(300)).await;
    let mut conn = Conn::open(&app).await;
    conn.send(get("/csv?rows=1").as_bytes()).await;
    assert_eq!(conn.response().await.status, 200);
    // The header timeout (10 s) would not close it within the wait; the idle timeout does.
    conn.expect_eof().await;

    // A connection hyper serves is closed once idle too (by the header timeout there).
    let app = spawn(|c| c.connections.header_timeout = ms(300)).await;
    let mut handed = handed_to_hyper(&app).await;
    handed.expect_eof().await;
}

#[tokio::test]
async fn a_head_over_the_limit_gets_431_on_both_paths_and_the_connection_closes() {
    let app = spawn(|c| c.connections.max_header_bytes = 16384).await;
    let padded = |method: &str, size: usize| {
        format!(
            "{method} /csv?rows=1 HTTP/1.1\r\nHost: herald.test\r\nX-Pad: {}\r\n\r\n",
            "a".repeat(size)
        )
    };

    // Within the limit: served.
    let mut conn = Conn::open(&app).await;
    conn.send(padded("GET", 15_000).as_bytes()).await;
    assert_eq!(conn.response().await.status, 200);

    // Over it: a GET on Herald's loop, and a POST on a connection hyper serves.
    let mut native = Conn::open(&app).await;
    let _ = native.tcp.try_write(padded("GET", 17_000).as_bytes());
    let resp = native.response().await;
    assert_eq!(resp.status, 431, "{resp:?}");
    native.until_closed().await;

    let mut handed = handed_to_hyper(&app).await;
    let _ = handed.tcp.try_write(padded("POST", 17_000).as_bytes());
    let resp = handed.response().await;
    assert_eq!(resp.status, 431, "{resp:?}");
    handed.until_closed().await;

    // A head that never ends is refused once it passes the limit, not held in memory.
    let mut endless = Conn::open(&app).await;
    endless
        .send(format!("GET / HTTP/1.1\r\nX-Pad: {}", "a".repeat(32 * 1024)).as_bytes())
        .await;
    let resp = endless.response().await;
    assert_eq!(resp.status, 431, "{resp:?}");
}

#[tokio::test]
async fn past_the_connection_cap_new_connections_get_503_until_one_closes() {
    let app = spawn(|c| c.connections.max_connections = Some(3)).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut conn = Conn::open(&app).await;
        conn.send(get("/csv?rows=1").as_bytes()).await;
        assert_eq!(conn.response().await.status, 200);
        held.push(conn);
    }
    let mut refused = Conn::open(&app).await;
    refused.send(get("/csv?rows=1").as_bytes()).await;
    let resp = refused.response().await;
    assert_eq!(resp.status, 503, "{resp:?}");
    assert_eq!(resp.header("retry-after"), "5");
    refused.until_closed().await;

    // The held ones are still served, and once one closes there is room again.
    held[0].send(get("/csv?rows=2").as_bytes()).await;
    assert_eq!(held[0].response().await.status, 200);
    drop(held.pop());
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut conn = Conn::open(&app).await;
        conn.send(get("/csv?rows=1").as_bytes()).await;
        match conn.response().await.status {
            200 => break,
            503 => assert!(tokio::time::Instant::now() < deadline, "no room again"),
            other => panic!("status {other}"),
        }
        tokio::time::sleep(ms(20)).await;
    }
}

#[tokio::test]
async fn bytes_sent_up_a_tab_stream_disconnect_it_at_once() {
    let app = spawn(|_| {}).await;
    let mut conn = Conn::open(&app).await;
    let stream_request = conn.load_page().await;
    conn.send(stream_request.as_bytes()).await;
    conn.wait_for("retry:").await;
    // The first message is written; give the stream a moment to park before the junk.
    tokio::time::sleep(ms(50)).await;
    conn.send(b"junk junk junk").await;
    conn.until_closed().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while app.state.hub.client_logs() != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stream not released"
        );
        tokio::time::sleep(ms(10)).await;
    }
}

/// The `id:` of the last message that arrived whole (what a browser sends as `Last-Event-ID`).
fn last_complete_id(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let whole = &text[..text.rfind("\n\n").expect("a whole message") + 2];
    whole
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("id: "))
        .expect("an id")
        .to_string()
}

#[tokio::test]
async fn a_tab_that_takes_nothing_is_cut_loose_others_keep_receiving_and_it_resumes_later() {
    let app = spawn(|c| {
        c.connections.send_timeout = ms(400);
        c.limits.message_chars = 200_000;
        c.limits.request_bytes = 1 << 20;
    })
    .await;
    let (mut stalled, stream_request) = Conn::narrow_tab(&app).await;

    let client = app.client();
    let tab = client.open_tab().await;
    let mut fast = client.stream(&tab.stream_url).await;
    flood_board(&client, &mut fast, 40).await;
    // Taking nothing for several send timeouts, the stalled tab is cut loose: reading now
    // gets what its socket held and then the end.
    tokio::time::sleep(ms(1200)).await;
    stalled.until_closed().await;
    assert!(
        find(&stalled.buf, b"m39-").is_none(),
        "the stalled tab was written to to the end"
    );
    // Its socket took less than a message: it fell behind the fan-out, and the metrics say so.
    let behind = common::sample(&app.metrics().await, "herald_streams_behind_total");
    assert!(behind >= Some(1.0), "{behind:?}");
    assert_eq!(client.get("/send?message=after").await.status, 200);
    fast.until(">after</blockquote>").await;

    // Back, it resumes from the last message it received whole and gets what it missed.
    let last_id = last_complete_id(&stalled.buf);
    let mut back = Conn::open(&app).await;
    let resume = stream_request.replacen(
        "\r\n\r\n",
        &format!("\r\nLast-Event-ID: {last_id}\r\n\r\n"),
        1,
    );
    back.send(resume.as_bytes()).await;
    back.wait_for(">after</blockquote>").await;
}

#[tokio::test]
async fn at_shutdown_what_is_still_open_at_the_end_of_the_grace_is_closed() {
    let mut app = spawn(|c| c.connections.shutdown_grace = ms(500)).await;
    // A big response nobody reads, and a tab stream nobody reads.
    let mut csv = Conn::open_narrow(&app).await;
    csv.send(get("/csv?rows=1000000").as_bytes()).await;
    let mut tab = Conn::open_narrow(&app).await;
    let stream_request = tab.load_page().await;
    tab.send(stream_request.as_bytes()).await;
    // A healthy tab ends cleanly with its pending messages.
    let client = app.client();
    let healthy = client.open_tab().await;
    let mut healthy = client.stream(&healthy.stream_url).await;
    healthy.until("status").await;
    tokio::time::sleep(ms(200)).await;

    let started = Instant::now();
    app.stop().await;
    let took = started.elapsed();
    assert!(
        took < ms(1500),
        "stopping took {took:?}, past the grace plus a second"
    );
    assert!(
        tokio::time::timeout(WAIT, async { while healthy.next().await.is_some() {} })
            .await
            .is_ok(),
        "the healthy stream ended"
    );
    csv.until_closed().await;
    tab.until_closed().await;
}

#[test]
fn after_sigterm_the_process_exits_within_the_grace_even_with_a_reader_that_stalled() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("herald.db");
    let addr: SocketAddr = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        free.local_addr().unwrap()
    };
    let server = Running::start(herald(
        &[
            "--db",
            db.to_str().unwrap(),
            "--addr",
            &addr.to_string(),
            "--shutdown-grace-secs",
            "1",
            // No drain before the streams close: this is about the grace that follows it.
            "--drain-secs",
            "0",
        ],
        &[],
    ));
    let deadline = Instant::now() + WAIT;
    let mut stalled = loop {
        match std::net::TcpStream::connect(addr) {
            Ok(tcp) => break tcp,
            Err(_) => {
                assert!(Instant::now() < deadline, "herald did not listen in time");
                std::thread::sleep(ms(50));
            }
        }
    };
    use std::io::{Read, Write};
    stalled
        .write_all(get("/csv?rows=1000000").as_bytes())
        .unwrap();
    let mut first = [0u8; 64];
    stalled.read_exact(&mut first).unwrap();
    assert!(first.starts_with(b"HTTP/1.1 200"), "{first:?}");
    std::thread::sleep(ms(300));

    server.terminate();
    let started = Instant::now();
    let out = server.exited();
    let took = started.elapsed();
    assert!(out.status.success(), "{out:?}");
    assert!(
        took < ms(2000),
        "exited {took:?} after SIGTERM with a 1 s grace"
    );
    drop(stalled);
}

#[tokio::test]
async fn a_request_body_that_stops_coming_is_refused_and_the_connection_closed() {
    let app = spawn(|c| c.connections.send_timeout = ms(300)).await;
    let upload = "/upload/7d6f1a52-8c4e-4a57-9a3f-3d1e2b6a0c11";
    for (path, content_type, status) in [
        ("/send-notification", "application/json", 400),
        (upload, "multipart/form-data; boundary=x", 408),
    ] {
        let mut conn = Conn::open(&app).await;
        conn.send(
            format!(
                "POST {path} HTTP/1.1\r\nHost: herald.test\r\nSec-Fetch-Site: same-origin\r\n\
                 Content-Type: {content_type}\r\nContent-Length: 1000\r\n\r\n--x\r\n{{\"ty"
            )
            .as_bytes(),
        )
        .await;
        let resp = conn.response().await;
        assert_eq!(resp.status, status, "{path}: {}", resp.text());
        assert!(resp.text().contains("\"error\""), "{}", resp.text());
        conn.until_closed().await;
    }
}

/// The database's size on disk: the file and its write-ahead log.
fn database_bytes(db: &std::path::Path) -> u64 {
    let wal = db.with_extension("db-wal");
    [db, wal.as_path()]
        .iter()
        .filter_map(|path| std::fs::metadata(path).ok())
        .map(|meta| meta.len())
        .sum()
}

/// Loads the page as a browser without a cookie does, then connects the tab's stream with the
/// cookie and stream URL it got.
async fn anonymous_visit(service: &TowerToHyperService<axum::Router>) {
    let request = Request::get("/").body(Body::empty()).unwrap();
    let page = service.call(request).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let cookie = page.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let html = page.into_body().collect().await.unwrap().to_bytes();
    let html = String::from_utf8_lossy(&html);
    let start = html.find("hx-sse:connect=\"").unwrap() + "hx-sse:connect=\"".len();
    let url = html[start..][..html[start..].find('"').unwrap()].replace("&#38;", "&");
    let request = Request::get(url)
        .header("cookie", cookie)
        .body(Body::empty())
        .unwrap();
    let stream = service.call(request).await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
}

/// 100,000 anonymous page loads must grow the database by less than 1 MB: here fewer visits (a
/// page and its stream each), within the same bound per visit. (The README has the number for
/// 100,000.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_page_loads_and_their_streams_write_nothing_lasting() {
    const VISITS: usize = 2_000;
    const WORKERS: usize = 4;
    let app = spawn(|_| {}).await;
    let service = TowerToHyperService::new(app.router.clone());
    let before = database_bytes(&app.db);
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move {
                for _ in 0..VISITS / WORKERS {
                    anonymous_visit(&service).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let grown = database_bytes(&app.db) - before;
    let bound = (VISITS as u64) * (1 << 20) / 100_000;
    assert!(
        grown < bound,
        "{VISITS} visits grew the database by {grown} bytes (bound {bound})"
    );
}
