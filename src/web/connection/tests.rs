//! Herald's request-head handling against hyper's, on random and mangled heads: whatever Herald
//! serves itself, hyper serves as the very same request (so nothing hyper would refuse or read
//! differently, the stuff of request smuggling, is answered here); a head Herald waits on,
//! hyper waits on too; everything else is handed to hyper, whose answer it then is.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::http::{Response, Version};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

const LIMIT: usize = 16 * 1024;

/// Limits for tests: generous times, a 16 KB head (also the accept loop's tests).
pub(in crate::web) fn limits() -> ConnectionLimits {
    ConnectionLimits {
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(10),
        max_header_bytes: LIMIT,
        send_timeout: Duration::from_secs(10),
        shutdown_grace: Duration::from_secs(10),
        max_connections: None,
    }
}

/// A request as the router would see it.
#[derive(Debug, PartialEq)]
struct Seen {
    method: String,
    uri: String,
    version: Version,
    headers: Vec<(String, Vec<u8>)>,
    without_body: bool,
}

impl Seen {
    fn of<B: hyper::body::Body>(request: &Request<B>) -> Seen {
        Seen {
            method: request.method().to_string(),
            uri: request.uri().to_string(),
            version: request.version(),
            headers: request
                .headers()
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
            without_body: request.body().is_end_stream(),
        }
    }
}

#[derive(Debug)]
enum Hyper {
    Served(Seen),
    /// Answered without asking the service: hyper's own error status.
    Refused(String),
    /// Waiting for more (the client's end of input then closed it).
    Incomplete,
}

/// What hyper, set up as for a handed-over connection, makes of `bytes` followed by the end of
/// input.
async fn hyper_verdict(bytes: &[u8]) -> Hyper {
    let (mut client, server) = tokio::io::duplex(1 << 20);
    let seen = Arc::new(Mutex::new(None));
    let record = seen.clone();
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        // The first request: bytes after it are the next one.
        record
            .lock()
            .unwrap()
            .get_or_insert_with(|| Seen::of(&request));
        async { Ok::<_, Infallible>(Response::new(String::from("ok"))) }
    });
    let conn =
        tokio::spawn(hyper_builder(&limits()).serve_connection(TokioIo::new(server), service));
    client.write_all(bytes).await.unwrap();
    client.shutdown().await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut answer))
        .await
        .expect("hyper answers or closes")
        .unwrap();
    let _ = conn.await;
    if let Some(seen) = seen.lock().unwrap().take() {
        return Hyper::Served(seen);
    }
    match answer.is_empty() {
        true => Hyper::Incomplete,
        false => Hyper::Refused(String::from_utf8_lossy(&answer).into_owned()),
    }
}

/// Checks Herald's verdict on `bytes` against hyper's.
fn agree(runtime: &tokio::runtime::Runtime, bytes: &[u8]) -> Result<(), TestCaseError> {
    let hyper = runtime.block_on(hyper_verdict(bytes));
    match (parse(bytes, LIMIT), hyper) {
        (Parsed::Native { request, .. }, Hyper::Served(seen)) => {
            prop_assert_eq!(Seen::of(&request), seen);
        }
        (Parsed::Native { request, .. }, Hyper::Refused(answer)) => {
            let served = Seen::of(&request);
            prop_assert!(false, "Herald serves {served:?}, hyper answers {answer:?}");
        }
        (Parsed::Native { request, .. }, Hyper::Incomplete) => {
            let served = Seen::of(&request);
            prop_assert!(false, "Herald serves {served:?}, hyper waits for more");
        }
        (Parsed::Partial, Hyper::Incomplete) | (Parsed::Other, _) => {}
        (Parsed::Partial, Hyper::Served(seen)) => {
            prop_assert!(false, "Herald waits for more, hyper serves {seen:?}");
        }
        (Parsed::Partial, Hyper::Refused(answer)) => {
            prop_assert!(false, "Herald waits for more, hyper answers {answer:?}");
        }
    }
    Ok(())
}

fn method() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "GET", "GET", "GET", "POST", "HEAD", "PUT", "get", "G\tET", "", "GET GET", "CONNECT",
    ])
}

fn target() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "/",
        "/csv?rows=1",
        "/sse/7d6f?cursor=1-2-3",
        "*",
        "http://herald.test/x",
        "/a%20b",
        "/é",
        "//x",
        "/a b",
        "",
        "/\x7f",
        "/?a=\"b\"",
    ])
}

fn version() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "HTTP/1.1",
        "HTTP/1.1",
        "HTTP/1.1",
        "HTTP/1.0",
        "HTTP/2",
        "HTTP/1.2",
        "http/1.1",
        "HTTP/1.1 ",
        "HTTP/1",
    ])
}

/// Header lines, ordinary and hostile: framing in every spelling, folding, control bytes.
fn header() -> impl Strategy<Value = Vec<u8>> {
    let fixed = prop::sample::select(vec![
        "Host: herald.test",
        "Content-Length: 0",
        "Content-Length: 5",
        "Content-Length: 00",
        "Content-Length: +0",
        "Content-Length: 0, 0",
        "Content-Length:0",
        "Content-Length: 0 ",
        "content-length: 0",
        "Transfer-Encoding: chunked",
        "Transfer-Encoding: identity",
        "Transfer-Encoding : chunked",
        "Transfer-Encoding: chunked, identity",
        "Connection: close",
        "Connection: keep-alive, Close",
        "Connection: upgrade",
        "Upgrade: h2c",
        "Expect: 100-continue",
        "Last-Event-ID: 1-2-3",
        "Cookie: herald_session=x",
        "X-A: b",
        "X-A:",
        "X-A: \tb\t",
        " X-A: folded",
        "X-A: b\r\n c",
        "X-\u{1}: b",
        "X-A: \u{1}",
        "X-A: a\0b",
        "Bad Header",
        ":x",
        "X-A: é",
    ])
    .prop_map(|h| h.as_bytes().to_vec());
    let name = prop::collection::vec(prop::sample::select(b"abcXYZ-_0!~ :".to_vec()), 0..8);
    let value = prop::collection::vec(any::<u8>(), 0..12);
    let random = (name, value).prop_map(|(mut name, value)| {
        name.extend_from_slice(b": ");
        name.extend(value);
        name
    });
    prop_oneof![4 => fixed, 1 => random]
}

/// A head: request line and headers with mixed line endings, then maybe a mangled byte, a cut,
/// or bytes after it.
fn head() -> impl Strategy<Value = Vec<u8>> {
    let ending = || prop::sample::select(vec!["\r\n", "\r\n", "\r\n", "\n", "\r"]);
    (
        method(),
        target(),
        version(),
        prop::collection::vec((header(), ending()), 0..6),
        ending(),
        ending(),
        prop::option::weighted(0.2, (any::<prop::sample::Index>(), any::<u8>())),
        prop::option::weighted(0.2, any::<prop::sample::Index>()),
        prop::sample::select(vec!["", "", "GET / HTTP/1.1\r\n\r\n", "hello"]),
    )
        .prop_map(
            |(method, target, version, headers, first, last, mangle, cut, after)| {
                let mut bytes = format!("{method} {target} {version}{first}").into_bytes();
                for (line, end) in headers {
                    bytes.extend(line);
                    bytes.extend_from_slice(end.as_bytes());
                }
                bytes.extend_from_slice(last.as_bytes());
                if let Some((at, byte)) = mangle {
                    let at = at.index(bytes.len());
                    bytes[at] = byte;
                }
                if let Some(at) = cut {
                    bytes.truncate(at.index(bytes.len()));
                }
                bytes.extend_from_slice(after.as_bytes());
                bytes
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn herald_serves_only_what_hyper_serves_the_same_way(bytes in head()) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        agree(&runtime, &bytes)?;
    }
}

#[test]
fn the_heads_the_properties_rest_on() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for head in [
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
        "GET / HTTP/1.1\nHost: a\n\n",
        "GET * HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n",
    ] {
        agree(&runtime, head.as_bytes()).unwrap();
    }
    // Herald's own verdicts on a few: served, waited on, handed over.
    assert!(matches!(
        parse(b"GET / HTTP/1.1\r\n\r\n", LIMIT),
        Parsed::Native { .. }
    ));
    assert!(matches!(
        parse(b"GET / HTTP/1.1\r\n", LIMIT),
        Parsed::Partial
    ));
    assert!(matches!(
        parse(
            b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            LIMIT
        ),
        Parsed::Other
    ));
    let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(LIMIT));
    assert!(matches!(parse(big.as_bytes(), LIMIT), Parsed::Other));
}
