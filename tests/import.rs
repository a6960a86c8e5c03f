//! CSV import over real HTTP: the upload (API and form), the tab's stream, bad input, isolation
//! between tabs, cancel, paging, reconnects and the mock CSV endpoint.

mod common;

use std::time::Duration;

use common::{Client, Event, Sse, TestApp, WAIT, spawn_app, spawn_app_with};
use hyper::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DATA: &str = include_str!("../data.csv");
const BOUNDARY: &str = "herald-test-boundary";

fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, file_name, content) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let disposition = match file_name {
            Some(f) => format!("form-data; name=\"{name}\"; filename=\"{f}\""),
            None => format!("form-data; name=\"{name}\""),
        };
        body.extend_from_slice(format!("Content-Disposition: {disposition}\r\n").as_bytes());
        body.extend_from_slice(b"Content-Type: text/csv\r\n\r\n");
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn content_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// `curl -F file=@<name> …/upload/<client>`.
async fn upload(client: &Client, tab: &str, name: &str, csv: &[u8]) -> common::Response {
    let body = multipart(&[("file", Some(name), csv)]);
    client
        .request(
            Method::POST,
            &format!("/upload/{tab}"),
            &[("content-type", &content_type())],
            body,
        )
        .await
}

/// The page's form, as htmx posts it.
async fn upload_form(client: &Client, tab: &str, name: &str, csv: &[u8]) -> common::Response {
    let body = multipart(&[("file", Some(name), csv)]);
    let headers = [
        ("content-type", content_type()),
        ("hx-request", "true".into()),
        ("sec-fetch-site", "same-origin".into()),
    ];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    client
        .request(Method::POST, &format!("/upload/{tab}"), &headers, body)
        .await
}

/// A tab's stream, past its opening (status) message.
async fn open(client: &Client, url: &str) -> Sse {
    let mut stream = client.stream(url).await;
    let greeting = stream.next_data().await;
    assert!(greeting.data.contains("#status"), "{}", greeting.data);
    stream
}

/// Reads the stream until the import's last message, returning every message on the way.
async fn until_finished(stream: &mut Sse) -> Vec<Event> {
    let mut events = Vec::new();
    loop {
        let event = stream.next_data().await;
        let last = event.data.contains("toast-title\">Import ");
        let last = last && !event.data.contains("Import started");
        events.push(event);
        if last {
            return events;
        }
    }
}

/// The cells of each `<tr>` appended to the live table, in stream order.
/// Uploads `data.csv`, reads the tab's stream until ten rows have arrived, then drops the
/// stream mid-import: what arrived, and the `Last-Event-ID` a browser would reconnect with.
async fn drop_after_ten_rows(browser: &Client, tab: &common::Tab) -> (Vec<Event>, String) {
    let mut stream = open(browser, &tab.stream_url).await;
    upload(browser, &tab.client, "data.csv", DATA.as_bytes()).await;
    let mut before = Vec::new();
    while live_rows(&before).len() < 10 {
        before.push(stream.next_data().await);
    }
    let last_id = before.last().unwrap().id.clone().unwrap();
    (before, last_id)
}

fn live_rows(events: &[Event]) -> Vec<Vec<String>> {
    events
        .iter()
        .flat_map(|e| e.data.split("<hx-partial ").skip(1))
        .filter(|p| p.starts_with("hx-target=\"#import-rows\" hx-swap=\"beforeend\""))
        .map(cells_of)
        .collect()
}

fn cells_of(html: &str) -> Vec<String> {
    html.split("<td>")
        .skip(1)
        .map(|c| c.split("</td>").next().unwrap().to_string())
        .collect()
}

/// Rows of a table rendered in one fragment (a resync or a page), in order.
fn table_rows(html: &str) -> Vec<Vec<String>> {
    html.split("<tr>")
        .skip(1)
        .filter(|r| r.contains("<td>"))
        .map(cells_of)
        .collect()
}

fn data_rows(csv: &str) -> Vec<Vec<String>> {
    csv.lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .map(|c| c.replace('\'', "&#39;"))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn mock_csv(rows: u64) -> String {
    let mut out = herald::import::mock::HEADER.to_string();
    for id in 1..=rows {
        herald::import::mock::push_row(&mut out, id);
    }
    out
}

async fn wait_until_idle(app: &TestApp, tab: &str) {
    let client = tab.parse().unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while app.state.imports.is_running(client) {
        assert!(tokio::time::Instant::now() < deadline, "import did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn data_csv_streams_every_row_once_in_order_to_its_tab() {
    let app = spawn_app().await;
    let browser = app.client();
    let tab = browser.open_tab().await;
    assert!(
        tab.page.contains("href=\"/data.csv\""),
        "the page links the sample"
    );
    assert!(
        tab.page.contains("href=\"/csv?rows=1000\""),
        "and the generator"
    );
    assert!(
        tab.page
            .contains(&format!("hx-post=\"/upload/{}\"", tab.client))
    );
    assert!(tab.page.contains("hx-encoding=\"multipart/form-data\""));
    let mut stream = open(&browser, &tab.stream_url).await;

    let resp = upload(&browser, &tab.client, "data.csv", DATA.as_bytes()).await;
    assert_eq!(resp.status, StatusCode::ACCEPTED, "{}", resp.body);
    assert!(
        resp.body.contains("Import of data.csv started"),
        "{}",
        resp.body
    );

    let events = until_finished(&mut stream).await;
    let opening = &events[0].data;
    assert!(opening.contains("hx-target=\"#import-region\" hx-swap=\"innerHTML\""));
    assert!(opening.contains("<th scope=\"col\">id</th><th scope=\"col\">name</th>"));
    assert!(opening.contains("Import started"), "start toast: {opening}");
    assert_eq!(
        live_rows(&events),
        data_rows(DATA),
        "every row once, in order"
    );
    let all: String = events.iter().map(|e| e.data.as_str()).collect();
    assert!(all.contains("value=\"100\""), "progress reaches 100%");
    let last = &events.last().unwrap().data;
    assert!(last.contains("Import finished"), "{last}");
    assert!(last.contains("100 rows imported, 0 rejected in"), "{last}");
    assert!(events.iter().all(|e| e.id.is_some()));

    // A reload of the region (a resync) shows what the stream built.
    let mut resync = browser
        .stream_with(&tab.stream_url, &[("last-event-id", "0-0-0")])
        .await;
    let region = resync.until("#import-region").await.data;
    assert_eq!(table_rows(&region), data_rows(DATA));
    assert!(region.contains("100 rows imported, 0 rejected"));
}

#[tokio::test]
async fn the_form_answers_with_itself() {
    let app = spawn_app().await;
    let browser = app.client();
    let tab = browser.open_tab().await;
    let ok = upload_form(&browser, &tab.client, "data.csv", DATA.as_bytes()).await;
    assert_eq!(ok.status, StatusCode::ACCEPTED);
    assert!(ok.body.contains("<form id=\"import-form\""), "{}", ok.body);
    assert!(
        ok.body.contains("Import of data.csv started"),
        "{}",
        ok.body
    );
    wait_until_idle(&app, &tab.client).await;

    let bad = upload_form(&browser, &tab.client, "empty.csv", b"").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.body.contains("<form id=\"import-form\""),
        "{}",
        bad.body
    );
    assert!(
        bad.body.contains("role=\"alert\">the file is empty"),
        "{}",
        bad.body
    );
}

#[tokio::test]
async fn bad_files_are_refused_with_a_reason_and_nothing_starts() {
    let app = spawn_app().await;
    let browser = app.client();
    let tab = browser.open_tab().await;
    let mut stream = open(&browser, &tab.stream_url).await;
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01";
    let cases: [(&str, &[u8], StatusCode, &str); 5] = [
        (
            "pic.png",
            png,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not a CSV file",
        ),
        (
            "empty.csv",
            b"",
            StatusCode::UNPROCESSABLE_ENTITY,
            "the file is empty",
        ),
        (
            "head.csv",
            b"id,name\n",
            StatusCode::UNPROCESSABLE_ENTITY,
            "header but no rows",
        ),
        (
            "latin1.csv",
            b"caf\xe9,name\n1,2\n",
            StatusCode::UNPROCESSABLE_ENTITY,
            "the header row is invalid: not valid UTF-8",
        ),
        (
            "wide.csv",
            "c,".repeat(30).as_bytes().to_vec().leak(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "the header has 31 columns; the limit is 20",
        ),
    ];
    for (name, body, status, message) in cases {
        let resp = upload(&browser, &tab.client, name, body).await;
        assert_eq!(resp.status, status, "{name}: {}", resp.body);
        let error = resp.json()["error"].as_str().unwrap().to_string();
        assert!(error.contains(message), "{name}: {error}");
    }

    let no_file = multipart(&[("other", None, b"hello")]);
    let resp = browser
        .request(
            Method::POST,
            &format!("/upload/{}", tab.client),
            &[("content-type", &content_type())],
            no_file,
        )
        .await;
    assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(resp.json()["field"], "file");
    assert!(
        resp.json()["error"]
            .as_str()
            .unwrap()
            .contains("part named \"file\"")
    );

    let resp = browser
        .post_json(&format!("/upload/{}", tab.client), "{\"file\": \"a,b\"}")
        .await;
    assert_eq!(resp.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    stream.expect_quiet(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn bad_rows_are_rejected_one_by_one_and_the_import_goes_on() {
    let app = spawn_app().await;
    let browser = app.client();
    let tab = browser.open_tab().await;
    let mut stream = open(&browser, &tab.stream_url).await;
    let long = "x".repeat(201);
    let csv = format!(
        "a,b,c\n1,<script>alert(1)</script>,<b>x</b>\n2,only-two\n3,caf\u{e9},ok\n4,{long},z\n\
         5,too,many,fields\n6,\"quoted, comma\",\"multi\nline\"\n7,a\n8,b\n9,c\n10,d\n"
    );
    let mut bytes = csv.into_bytes();
    let latin1 = b"11,caf\xe9,x\n";
    bytes.extend_from_slice(latin1);
    let resp = upload(&browser, &tab.client, "mixed.csv", &bytes).await;
    assert_eq!(resp.status, StatusCode::ACCEPTED, "{}", resp.body);

    let events = until_finished(&mut stream).await;
    let all: String = events.iter().map(|e| e.data.as_str()).collect();
    let rows = live_rows(&events);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(
        rows[0],
        [
            "1",
            "&#60;script&#62;alert(1)&#60;/script&#62;",
            "&#60;b&#62;x&#60;/b&#62;"
        ]
    );
    assert!(!all.contains("<script>"), "cells are shown as text");
    assert_eq!(rows[1], ["3", "café", "ok"]);
    assert_eq!(rows[2], ["6", "quoted, comma", "multi\nline"]);
    for expected in [
        "<li>Row 3: expected 3 fields, found 2</li>",
        "<li>Row 5: field 2 is 201 characters long; the limit is 200</li>",
        "<li>Row 6: expected 3 fields, found 4</li>",
        "<li>Row 12: not valid UTF-8 text</li>",
    ] {
        assert!(all.contains(expected), "missing {expected}");
    }
    assert_eq!(
        all.matches("toast-title\">Row ").count(),
        3,
        "three reject toasts"
    );
    assert!(
        all.contains("toast-title\">5 more rows rejected"),
        "then one for the rest"
    );
    assert!(all.contains("3 rows imported, 8 rejected"), "{all}");
    let metrics = browser.get("/metrics").await.body;
    let rows = |outcome: &str| {
        common::sample(
            &metrics,
            &format!("herald_import_rows_total{{outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!((rows("stored"), rows("rejected")), (Some(3.0), Some(8.0)));
}

#[tokio::test]
async fn files_over_the_limit_get_413_before_they_are_read() {
    let app = spawn_app_with(|c| c.import.max_upload_bytes = 10_000).await;
    let browser = app.client();
    let first = browser.get("/").await;
    let cookie = first
        .header("set-cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let tab = browser.open_tab().await;
    let mut stream = open(&browser, &tab.stream_url).await;

    // Announced too large: answered at once, though not one byte of the body was sent.
    let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /upload/{} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nContent-Type: {}\r\nContent-Length: 50000000\r\n\r\n",
        tab.client,
        content_type()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0; 4096];
    let n = tokio::time::timeout(WAIT, tcp.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("larger than the 0 MB limit") || answer.contains("limit"),
        "{answer}"
    );

    // Not announced (chunked): refused while streaming, once the limit is passed.
    let csv = mock_csv(400);
    let body = multipart(&[("file", Some("big.csv"), csv.as_bytes())]);
    let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /upload/{} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nContent-Type: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        tab.client,
        content_type()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    for piece in body.chunks(4000) {
        let chunk = [format!("{:x}\r\n", piece.len()).as_bytes(), piece, b"\r\n"].concat();
        if tcp.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let _ = tcp.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("the file is larger than the"), "{answer}");

    // The tab saw the import start and stop, with the reason.
    let stopped = stream.until("Import stopped").await.data;
    assert!(stopped.contains("the file is larger than the"), "{stopped}");
}

#[tokio::test]
async fn an_import_is_private_to_its_tab() {
    let app = spawn_app().await;
    let (alice, bob) = (app.client(), app.client());
    let (a1, a2, b) = (
        alice.open_tab().await,
        alice.open_tab().await,
        bob.open_tab().await,
    );
    let mut a1_stream = open(&alice, &a1.stream_url).await;
    let mut a2_stream = open(&alice, &a2.stream_url).await;
    let mut b_stream = open(&bob, &b.stream_url).await;

    assert_eq!(
        upload(&bob, &a1.client, "x.csv", DATA.as_bytes())
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        upload(&bob, "not-a-uuid", "x.csv", DATA.as_bytes())
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let resp = bob.get(&format!("/sse/{}", a1.client)).await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND);
    assert_eq!(
        bob.get("/sse/not-a-uuid").await.status,
        StatusCode::NOT_FOUND
    );

    let resp = upload(&alice, &a1.client, "data.csv", DATA.as_bytes()).await;
    assert_eq!(resp.status, StatusCode::ACCEPTED);
    let events = until_finished(&mut a1_stream).await;
    assert_eq!(live_rows(&events).len(), 100);
    a2_stream.expect_quiet(Duration::from_millis(300)).await;
    b_stream.expect_quiet(Duration::from_millis(100)).await;

    let page = bob.get(&format!("/import/{}/rows?page=1", a1.client)).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    let page = alice
        .get(&format!("/import/{}/rows?page=1", a1.client))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(table_rows(&page.body).len(), 100);
}

#[tokio::test]
async fn an_api_caller_without_a_cookie_claims_a_fresh_client_id() {
    let app = spawn_app().await;
    let curl = app.client();
    let id = uuid::Uuid::new_v4().to_string();
    let resp = upload(&curl, &id, "data.csv", DATA.as_bytes()).await;
    assert_eq!(resp.status, StatusCode::ACCEPTED, "{}", resp.body);
    assert!(resp.header("set-cookie").contains("herald_session="));
    wait_until_idle(&app, &id).await;
    // The same caller (its cookie) may now read that client's stream; a stranger may not.
    let mut stream = curl
        .stream_with(&format!("/sse/{id}"), &[("last-event-id", "0-0-0")])
        .await;
    let region = stream.until("#import-region").await.data;
    assert_eq!(table_rows(&region), data_rows(DATA));
    assert_eq!(
        app.client().get(&format!("/sse/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn big_files_stream_a_page_of_rows_then_progress_and_are_paged_from_the_store() {
    let app = spawn_app_with(|c| c.import.live_rows = 10).await;
    let browser = app.client();
    let tab = browser.open_tab().await;
    let mut stream = open(&browser, &tab.stream_url).await;
    let csv = mock_csv(5_000);
    let resp = upload(&browser, &tab.client, "big.csv", csv.as_bytes()).await;
    assert_eq!(resp.status, StatusCode::ACCEPTED);
    let events = until_finished(&mut stream).await;
    let expected = data_rows(&csv);
    assert_eq!(
        live_rows(&events),
        expected[..10],
        "only the first page streams row by row"
    );
    let last = &events.last().unwrap().data;
    assert!(last.contains("5,000 rows imported, 0 rejected"), "{last}");
    assert!(last.contains("page 1 of 500"), "{last}");
    assert!(
        events.len() < 10 + 2 + 100,
        "progress is throttled: {} messages",
        events.len()
    );

    let page = browser
        .get(&format!("/import/{}/rows?page=321", tab.client))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(table_rows(&page.body), expected[3200..3210]);
    assert!(
        page.body
            .contains("rows 3,201–3,210 of 5,000 · page 321 of 500"),
        "{}",
        page.body
    );
    assert!(page.body.contains("rows?page=320") && page.body.contains("rows?page=322"));
    let beyond = browser
        .get(&format!("/import/{}/rows?page=9999", tab.client))
        .await;
    assert_eq!(table_rows(&beyond.body), expected[4990..]);
}

#[tokio::test]
async fn cancel_stops_the_import_and_a_second_upload_waits_its_turn() {
    let app = spawn_app_with(|c| c.import.row_delay = Duration::from_millis(30)).await;
    let browser = app.client();
    let tab = browser.open_tab().await;
    let mut stream = open(&browser, &tab.stream_url).await;
    let cancel_path = format!("/upload/{}/cancel", tab.client);

    let idle = browser.request(Method::POST, &cancel_path, &[], "").await;
    assert_eq!(idle.status, StatusCode::CONFLICT);

    assert_eq!(
        upload(&browser, &tab.client, "data.csv", DATA.as_bytes())
            .await
            .status,
        StatusCode::ACCEPTED
    );
    stream.until("<td>3</td>").await;
    let second = upload(&browser, &tab.client, "data.csv", DATA.as_bytes()).await;
    assert_eq!(second.status, StatusCode::CONFLICT);
    assert!(
        second.json()["error"]
            .as_str()
            .unwrap()
            .contains("already running in this tab")
    );

    let resp = browser.request(Method::POST, &cancel_path, &[], "").await;
    assert_eq!(resp.status, StatusCode::ACCEPTED);
    let cancelled = stream.until("Import cancelled").await.data;
    assert!(cancelled.contains("Cancelled"), "{cancelled}");
    wait_until_idle(&app, &tab.client).await;
    let again = upload(&browser, &tab.client, "data.csv", DATA.as_bytes()).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "the tab is free again");
}

#[tokio::test]
async fn a_reconnect_mid_import_replays_exactly_the_missed_rows() {
    let app = spawn_app_with(|c| c.import.row_delay = Duration::from_millis(10)).await;
    let browser = app.client();
    let tab = browser.open_tab().await;
    let (before, last_id) = drop_after_ten_rows(&browser, &tab).await;
    assert!(
        app.state.imports.is_running(tab.client.parse().unwrap()),
        "still importing"
    );

    let mut stream = browser
        .stream_with(&tab.stream_url, &[("last-event-id", &last_id)])
        .await;
    let after = until_finished(&mut stream).await;
    assert!(
        after.iter().all(|e| !e.data.contains("#import-region")),
        "history covered the gap: no resync"
    );
    let mut rows = live_rows(&before);
    rows.extend(live_rows(&after));
    assert_eq!(rows, data_rows(DATA), "no gaps, no duplicates");
}

#[tokio::test]
async fn a_reconnect_past_the_history_resyncs_the_import_region() {
    let app = spawn_app_with(|c| {
        c.import.row_delay = Duration::from_millis(5);
        c.hub.client_history.messages = 8;
        // On PostgreSQL the event log replays what the hub forgot; keep it short as well.
        c.event_log.messages = 8;
    })
    .await;
    let browser = app.client();
    let tab = browser.open_tab().await;
    let (_, last_id) = drop_after_ten_rows(&browser, &tab).await;
    wait_until_idle(&app, &tab.client).await;

    let mut stream = browser
        .stream_with(&tab.stream_url, &[("last-event-id", &last_id)])
        .await;
    let resync = stream.until("#import-region").await.data;
    assert_eq!(
        table_rows(&resync),
        data_rows(DATA),
        "the whole table, once, in order"
    );
    assert!(resync.contains("100 rows imported, 0 rejected"), "{resync}");
    stream.expect_quiet(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn csv_endpoint_streams_mock_rows() {
    let app = spawn_app_with(|c| c.import.max_mock_rows = 5_000).await;
    let client = app.client();
    let resp = client.get("/csv?rows=3000").await;
    assert_eq!(resp.status, StatusCode::OK);
    assert!(resp.header("content-type").starts_with("text/csv"));
    assert_eq!(resp.body, mock_csv(3000));
    assert_eq!(
        client.get("/csv").await.body,
        DATA,
        "data.csv is /csv's default sample"
    );
    assert_eq!(
        client.get("/csv?rows=0").await.body,
        "id,name,email,city,amount,date\n"
    );
    let over = client.get("/csv?rows=5001").await;
    assert_eq!(over.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        over.json()["error"]
            .as_str()
            .unwrap()
            .contains("limit is 5,000")
    );
    assert_eq!(
        client.get("/csv?rows=lots").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let sample = client.get("/data.csv").await;
    assert_eq!(sample.body, DATA);
}

#[tokio::test]
async fn old_imports_are_pruned_so_the_database_stays_bounded() {
    let app = spawn_app_with(|c| c.import.keep = 2).await;
    let browser = app.client();
    let tabs = [
        browser.open_tab().await,
        browser.open_tab().await,
        browser.open_tab().await,
    ];
    let page = |tab: &str| format!("/import/{tab}/rows?page=1");
    for tab in &tabs[..2] {
        upload(&browser, &tab.client, "data.csv", DATA.as_bytes()).await;
        wait_until_idle(&app, &tab.client).await;
    }
    // A tab's new import replaces its previous one.
    let small = "id,name\n1,only\n";
    upload(&browser, &tabs[1].client, "small.csv", small.as_bytes()).await;
    wait_until_idle(&app, &tabs[1].client).await;
    let second = browser.get(&page(&tabs[1].client)).await;
    assert_eq!(table_rows(&second.body), [["1", "only"]]);
    let first = browser.get(&page(&tabs[0].client)).await;
    assert_eq!(table_rows(&first.body).len(), 100, "other tabs keep theirs");
    // Past `keep` imports, the oldest goes.
    upload(&browser, &tabs[2].client, "data.csv", DATA.as_bytes()).await;
    wait_until_idle(&app, &tabs[2].client).await;
    assert_eq!(
        browser.get(&page(&tabs[0].client)).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        browser.get(&page(&tabs[1].client)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        browser.get(&page(&tabs[2].client)).await.status,
        StatusCode::OK
    );
}

#[test]
fn an_import_running_when_the_server_stops_is_shown_as_interrupted() {
    use herald::import::{Batch, ImportRecord, ImportStore, Status};
    use herald::store::SqliteStore;
    let dir = tempfile::TempDir::new().unwrap();
    let db = dir.path().join("herald.db");
    let client = herald::hub::ClientId(uuid::Uuid::new_v4());
    let store = SqliteStore::open(&db).unwrap();
    let record = ImportRecord {
        id: 0,
        client,
        file_name: "data.csv".into(),
        header: vec!["id".into()],
        status: Status::Running,
        live_rows: 100,
        total_bytes: None,
        bytes: 0,
        rows: 0,
        rejected: 0,
        started_at: 0,
        finished_at: None,
        message: None,
    };
    let id = store.begin_import(&record, 10).unwrap();
    let batch = Batch {
        first: 1,
        rows: &["2:42".to_string()],
        rejects: &[],
        progress: None,
    };
    store.store_import_batch(id, &batch).unwrap();
    drop(store);
    let reopened = SqliteStore::open(&db).unwrap();
    let found = reopened.latest_import(client).unwrap().unwrap();
    assert_eq!(found.status, Status::Interrupted);
    assert_eq!(reopened.import_rows(id, 1, 10).unwrap(), ["2:42"]);
}
