//! Herald's own HTTPS: HTTP/2 and HTTP/1.1 by ALPN with a certificate made at test time, many
//! streams on one connection, the limits, and the certificate reloaded on SIGHUP without
//! dropping a stream.

mod common;

use std::time::Duration;

use common::process::herald;
use common::tls::{Https, TestCert, self_signed};
use common::{Client, TestApp, spawn_app_with};
use hyper::{StatusCode, Version};
use tempfile::TempDir;
use tokio::io::AsyncReadExt;

async fn spawn_https(dir: &TempDir) -> (TestApp, TestCert) {
    let cert = self_signed(dir.path(), "herald");
    let files = herald::config::TlsFiles {
        cert: cert.cert.clone(),
        key: cert.key.clone(),
    };
    let app = spawn_app_with(|c| c.ops.tls = Some(files)).await;
    (app, cert)
}

#[tokio::test]
async fn over_http2_ten_streams_share_one_connection_and_a_form_is_answered_at_once() {
    let dir = TempDir::new().unwrap();
    let (app, cert) = spawn_https(&dir).await;
    let browser = Client::https(app.addr, Https::new(&cert.der, &[b"h2", b"http/1.1"]));
    let page = browser.get("/").await;
    assert_eq!(page.version, Version::HTTP_2);
    let cookie = page.header("set-cookie");
    assert!(
        cookie.ends_with("; Secure"),
        "HTTPS makes the cookie Secure: {cookie}"
    );

    let mut streams = Vec::new();
    for _ in 0..10 {
        let tab = browser.open_tab().await;
        let mut stream = browser.stream(&tab.stream_url).await;
        stream.next_data().await;
        streams.push(stream);
    }
    let text = browser.get("/metrics").await.body;
    assert_eq!(common::sample(&text, "herald_streams_open"), Some(10.0));
    assert_eq!(
        common::sample(&text, "herald_connections_open"),
        Some(1.0),
        "ten streams, the page, the form and the scrape: one connection"
    );

    let answer = tokio::time::timeout(
        Duration::from_secs(2),
        browser.post_form("/send", &[("message", "over one connection")]),
    )
    .await
    .expect("the form is answered while ten streams are open");
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.body.contains("Posted to every open page"));
    for stream in &mut streams {
        stream.until("over one connection").await;
    }
}

#[tokio::test]
async fn over_tls_http11_is_served_when_the_client_offers_only_it() {
    let dir = TempDir::new().unwrap();
    let (app, cert) = spawn_https(&dir).await;
    let browser = Client::https(app.addr, Https::new(&cert.der, &[b"http/1.1"]));
    let tab = browser.open_tab().await;
    let mut stream = browser.stream(&tab.stream_url).await;
    stream.next_data().await;
    let posted = Client::https(app.addr, Https::new(&cert.der, &[b"http/1.1"]))
        .post_json("/send", r#"{"message":"tls and http/1.1"}"#)
        .await;
    assert_eq!(posted.version, Version::HTTP_11);
    assert_eq!(posted.status, StatusCode::OK);
    stream.until("tls and http/1.1").await;
    // Nothing answers plain HTTP on the HTTPS address.
    let mut plain = common::raw::Conn::open(&app).await;
    plain.send(common::raw::get("/").as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(common::WAIT, plain.tcp.read_to_end(&mut answer)).await;
    assert!(!answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
}

#[tokio::test]
async fn the_handshake_and_request_heads_keep_their_limits() {
    let dir = TempDir::new().unwrap();
    let cert = self_signed(dir.path(), "herald");
    let files = herald::config::TlsFiles {
        cert: cert.cert.clone(),
        key: cert.key.clone(),
    };
    let app = spawn_app_with(|c| {
        c.ops.tls = Some(files);
        c.connections.header_timeout = Duration::from_millis(500);
        // Below hyper's own defaults (16 KB on HTTP/2), so the limit is Herald's.
        c.connections.max_header_bytes = 12_000;
    })
    .await;
    // A client that connects and never says hello is closed after the header timeout.
    let mut silent = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let mut scrap = [0; 16];
    let closed = tokio::time::timeout(common::WAIT, silent.read(&mut scrap)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");

    // A head over the limit is refused on both protocols; one under it is served.
    for alpn in [&b"h2"[..], b"http/1.1"] {
        let https = Https::new(&cert.der, &[alpn]);
        let protocol = String::from_utf8_lossy(alpn);
        assert!(
            refused_head(&https, &app, &"x".repeat(14_000)).await,
            "{protocol}: a 14 KB head must be refused"
        );
        assert!(
            !refused_head(&https, &app, &"x".repeat(4_000)).await,
            "{protocol}: a 4 KB head is fine"
        );
    }
}

/// Whether a request with a `big` header is refused (431, or the stream or connection reset).
async fn refused_head(https: &Https, app: &TestApp, big: &str) -> bool {
    let io = https.connect(app.addr).await.unwrap();
    let h2 = io.alpn() == Some(b"h2");
    let io = hyper_util::rt::TokioIo::new(io);
    let request = hyper::Request::builder()
        .uri(format!("https://{}/healthz", app.addr))
        .header("x-big", big)
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let answer = if h2 {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .unwrap();
        tokio::spawn(conn);
        send.send_request(request).await
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        send.send_request(request).await
    };
    match answer {
        Ok(resp) => resp.status() != StatusCode::OK,
        Err(_) => true,
    }
}

#[test]
fn sighup_reloads_the_certificate_for_new_connections_and_open_streams_stay() {
    let dir = TempDir::new().unwrap();
    let first = self_signed(dir.path(), "herald");
    let args = [
        "--tls-cert",
        first.cert.to_str().unwrap(),
        "--tls-key",
        first.key.to_str().unwrap(),
        "--drain-secs",
        "0",
    ];
    let (server, addr) = common::process::serve(dir.path(), &args, &[]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let trusting_first = Https::new(&first.der, &[b"h2"]);
        assert_eq!(
            trusting_first
                .connect(addr)
                .await
                .unwrap()
                .server_certificate(),
            first.der
        );
        let browser = Client::https(addr, trusting_first.clone());
        let tab = browser.open_tab().await;
        let mut stream = browser.stream(&tab.stream_url).await;
        stream.next_data().await;

        // A renewal: new files in place of the old, then SIGHUP.
        let renewed_dir = TempDir::new().unwrap();
        let second = self_signed(renewed_dir.path(), "renewed");
        std::fs::copy(&second.cert, &first.cert).unwrap();
        std::fs::copy(&second.key, &first.key).unwrap();
        server.signal("HUP");
        let trusting_second = Https::new(&second.der, &[b"h2"]);
        let deadline = tokio::time::Instant::now() + common::WAIT;
        loop {
            if let Ok(io) = trusting_second.connect(addr).await {
                assert_eq!(io.server_certificate(), second.der);
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "never reloaded");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            trusting_first.connect(addr).await.is_err(),
            "new connections get the new certificate only"
        );

        // The stream opened before the reload is still live on its connection.
        let posted = Client::https(addr, trusting_second)
            .post_json("/send", r#"{"message":"after the reload"}"#)
            .await;
        assert_eq!(posted.status, StatusCode::OK);
        stream.until("after the reload").await;

        // A reload that fails (a key that is not a key) keeps the certificate in use.
        std::fs::write(&first.key, "not a key").unwrap();
        server.signal("HUP");
        let again = Https::new(&second.der, &[b"h2"]);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            again.connect(addr).await.unwrap().server_certificate(),
            second.der
        );
    });
    // Closing the client's connections (HTTP/2 waits for a client's answer to its goodbye).
    drop(runtime);
    server.terminate();
    let out = server.exited();
    assert!(out.status.success(), "{out:?}");
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(logs.contains("reloaded the TLS certificate"), "{logs}");
    assert!(logs.contains("kept the TLS certificate in use"), "{logs}");
    assert!(logs.contains("https://"), "{logs}");
}

#[test]
fn unreadable_or_mismatched_certificates_stop_herald_at_start() {
    let dir = TempDir::new().unwrap();
    let one = self_signed(dir.path(), "one");
    let other = self_signed(dir.path(), "other");
    let db = dir.path().join("herald.db");
    let missing = dir.path().join("missing.pem");
    let cases = [
        (
            missing.as_path(),
            one.key.as_path(),
            "cannot read the certificate",
        ),
        (
            one.cert.as_path(),
            other.key.as_path(),
            "does not go with the certificate",
        ),
    ];
    for (cert, key, expected) in cases {
        let out = common::process::finish(herald(
            &[
                "--db",
                db.to_str().unwrap(),
                "--addr",
                "127.0.0.1:0",
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                key.to_str().unwrap(),
            ],
            &[],
        ));
        assert!(!out.status.success());
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains(expected), "{said}");
    }
}

#[tokio::test]
async fn at_shutdown_http2_streams_end_cleanly() {
    let dir = TempDir::new().unwrap();
    let (mut app, cert) = spawn_https(&dir).await;
    let browser = Client::https(app.addr, Https::new(&cert.der, &[b"h2"]));
    let tab = browser.open_tab().await;
    let mut stream = browser.stream(&tab.stream_url).await;
    stream.next_data().await;
    let (_, ended) = tokio::join!(app.stop(), stream.next_within(common::WAIT));
    assert_eq!(
        ended,
        Ok(None),
        "a clean end of the stream, so the browser reconnects"
    );
}

/// Over HTTP/2 the body hyper polls counts what it hands the connection: at shutdown, exactly
/// what the client read.
#[tokio::test]
async fn over_http2_delivered_bytes_are_what_the_client_read() {
    let dir = TempDir::new().unwrap();
    let (mut app, cert) = spawn_https(&dir).await;
    let browser = Client::https(app.addr, Https::new(&cert.der, &[b"h2"]));
    let mut stream = common::replayed_then_live(&browser).await;
    app.stop().await;
    while stream.next().await.is_some() {}
    let text = app.metrics().await;
    assert_eq!(
        common::sample(&text, "herald_messages_published_total"),
        Some(3.0)
    );
    assert_eq!(
        common::sample(&text, "herald_delivered_bytes_total"),
        Some(stream.raw.len() as f64),
        "{}",
        stream.raw
    );
}
