//! Live offers over real HTTP: the original JSON call, the page's form, live create / update /
//! delete on every open stream, paging, restarts, bad input and the API token.

mod common;

use std::time::Duration;

use common::regions::Regions;
use common::{Client, Response, Sse, TestApp, Writers, redact, spawn_app, spawn_app_with};
use herald::offers::money::Money;
use herald::offers::{BODY_REGION, Offer, OfferForm, OfferRow, OfferRows, OffersPage};
use herald::web::error::FieldError;
use hyper::{Method, StatusCode};

const SEED: &str = r#"{"id": 1, "description": "Special Offer", "value": 1000000}"#;

async fn post(client: &Client, json: &str) -> Response {
    client.post_json("/offers", json).await
}

async fn put(client: &Client, path: &str, json: &str) -> Response {
    let headers = [("content-type", "application/json")];
    client
        .request(Method::PUT, path, &headers, json.to_string())
        .await
}

async fn delete(client: &Client, path: &str) -> Response {
    client.request(Method::DELETE, path, &[], "").await
}

async fn list(client: &Client, query: &str) -> serde_json::Value {
    let resp = client.get(&format!("/offers{query}")).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    resp.json()
}

/// A tab with its stream open and its first message (status) read.
async fn open_stream(client: &Client) -> Sse {
    let tab = client.open_tab().await;
    let mut stream = client.stream(&tab.stream_url).await;
    stream.next_data().await;
    stream
}

fn offer(id: i64, description: &str, cents: i64) -> Offer {
    Offer {
        id,
        description: description.to_string(),
        value: Money::from_cents(cents).unwrap(),
        created_at: 1_795_258_433_120,
        updated_at: 1_795_258_433_120,
    }
}

// ---- fragments ----------------------------------------------------------------------------

#[test]
fn row_fragment() {
    insta::assert_snapshot!(
        "row_fresh",
        OfferRow::fresh(&offer(1, "Special <b>Offer</b> & more", 100_000_000)).html()
    );
}

#[test]
fn table_fragment() {
    let rows = [
        offer(3, "Third", 1999),
        offer(2, "Second", 5),
        offer(1, "First", 0),
    ];
    insta::assert_snapshot!("rows", OfferRows::new(&rows).html());
    insta::assert_snapshot!("rows_empty", OfferRows::new(&[]).html());
}

#[test]
fn form_fragments() {
    insta::assert_snapshot!("form_blank", OfferForm::blank(60).html());
    insta::assert_snapshot!("form_added", OfferForm::added(60, 7).html());
    let typed = herald::offers::input::Typed {
        description: "Cheap <i>thing</i>".into(),
        value: "-3".into(),
        ..Default::default()
    };
    let error = FieldError::new("value", "value must not be negative").into();
    let failed = OfferForm::failed(60, &typed, error);
    insta::assert_snapshot!("form_failed", failed.html());
}

#[test]
fn list_page_fragment() {
    use askama::Template;
    let page = OffersPage {
        assets: "/static/test".into(),
        rows: OffersPage::rows(&[offer(2, "Second", 250), offer(1, "First", 100)]),
        page: 2,
        pages: 3,
        total: 5,
        prev: Some("/offers?page=1&per_page=2".into()),
        next: Some("/offers?page=3&per_page=2".into()),
    };
    insta::assert_snapshot!("list_page", page.render().unwrap());
}

#[tokio::test]
async fn an_offer_message_is_one_frame_with_a_prepended_row() {
    let app = spawn_app().await;
    let client = app.client();
    let mut stream = open_stream(&client).await;
    let before = stream.raw.len();
    assert_eq!(post(&client, SEED).await.status, StatusCode::CREATED);
    stream.until("offers-body").await;
    insta::assert_snapshot!("sse_frame_create", redact(&stream.raw[before..]));
}

// ---- creating -----------------------------------------------------------------------------

#[tokio::test]
async fn the_seed_json_creates_an_offer_that_reaches_two_open_streams() {
    let app = spawn_app().await;
    let (alice, bob) = (app.client(), app.client());
    let mut a = open_stream(&alice).await;
    let mut b = open_stream(&bob).await;

    // Exactly what the original's curl sends: no browser headers, no token.
    let resp = Client::new(app.addr)
        .request(
            Method::POST,
            "/offers",
            &[("content-type", "application/json")],
            SEED,
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.body);
    let body = resp.json();
    assert_eq!(body["id"], 1);
    assert_eq!(body["description"], "Special Offer");
    assert_eq!(body["value"], 1_000_000);
    assert!(body["created_at"].is_i64());
    assert!(resp.body.contains("\"value\":1000000"), "{}", resp.body);

    for stream in [&mut a, &mut b] {
        let event = stream.until("offer-1").await;
        assert!(
            event
                .data
                .contains(r##"hx-target="#offers-body" hx-swap="afterbegin""##)
        );
        assert!(event.data.contains("1,000,000.00"), "{}", event.data);
        assert!(
            event.data.contains("offer-fresh"),
            "highlighted: {}",
            event.data
        );
        assert!(event.id.is_some());
    }

    let page = alice.open_tab().await.page;
    assert!(page.contains(r#"id="offer-1""#) && page.contains("1,000,000.00"));
    assert!(
        !page.contains("offer-fresh"),
        "a page load highlights nothing"
    );
}

#[tokio::test]
async fn money_is_exact_and_fractions_beyond_cents_are_refused() {
    let app = spawn_app().await;
    let client = app.client();
    let resp = post(&client, r#"{"description": "Coffee", "value": 19.99}"#).await;
    assert_eq!(resp.status, StatusCode::CREATED);
    assert!(resp.body.contains("\"value\":19.99"), "{}", resp.body);
    let resp = post(&client, r#"{"description": "Tea", "value": 0.1}"#).await;
    assert!(resp.body.contains("\"value\":0.1,"), "{}", resp.body);

    let resp = post(&client, r#"{"description": "Gum", "value": 0.005}"#).await;
    assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(resp.json()["field"], "value");
    assert!(
        resp.json()["error"]
            .as_str()
            .unwrap()
            .contains("two decimal places")
    );

    let page = client.get("/offers").await.body;
    assert!(page.contains("19.99") && page.contains("0.1"));
    let html = client
        .request(Method::GET, "/offers", &[("accept", "text/html")], "")
        .await
        .body;
    assert!(html.contains("19.99") && html.contains("0.10"), "{html}");
}

#[tokio::test]
async fn client_ids_are_honoured_and_a_duplicate_answers_409_with_the_existing_offer() {
    let app = spawn_app().await;
    let client = app.client();
    let first = post(
        &client,
        r#"{"id": 42, "description": "Answer", "value": 42}"#,
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(first.json()["id"], 42);

    let again = post(&client, r#"{"id": 42, "description": "Other", "value": 1}"#).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let body = again.json();
    assert_eq!(body["field"], "id");
    assert!(body["error"].as_str().unwrap().contains("42"));
    assert_eq!(body["offer"], first.json(), "the existing offer, untouched");

    let assigned = post(&client, r#"{"description": "Next", "value": 1}"#).await;
    assert_eq!(assigned.status, StatusCode::CREATED);
    assert_eq!(
        assigned.json()["id"],
        43,
        "the server picks the next free id"
    );
    assert_eq!(list(&client, "").await["total"], 2);
}

#[tokio::test]
async fn the_form_resets_and_confirms_or_keeps_input_with_inline_errors() {
    let app = spawn_app().await;
    let client = app.client();
    let mut stream = open_stream(&client).await;

    let ok = client
        .post_form(
            "/offers",
            &[("description", "Spring <sale>"), ("value", "1,000,000")],
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    assert!(
        ok.body.contains("Offer 1 added to every open page"),
        "{}",
        ok.body
    );
    assert!(
        ok.body.contains(r#"name="description" value="""#),
        "reset: {}",
        ok.body
    );
    let event = stream.until("offer-1").await;
    assert!(
        event.data.contains("Spring &#60;sale&#62;"),
        "{}",
        event.data
    );
    assert!(event.data.contains("1,000,000.00"));

    let bad = client
        .post_form("/offers", &[("description", "Cheap"), ("value", "-3")])
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.body.contains("<form"),
        "the form comes back: {}",
        bad.body
    );
    assert!(
        bad.body.contains("value must not be negative"),
        "{}",
        bad.body
    );
    assert!(bad.body.contains(r#"value="Cheap""#) && bad.body.contains(r#"value="-3""#));
    assert!(bad.body.contains(r#"aria-invalid="true""#));

    let empty = client
        .post_form("/offers", &[("description", " "), ("value", "5")])
        .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(empty.body.contains("description must not be empty"));

    let odd = client
        .post_form(
            "/offers",
            &[("description", "x"), ("value", "5"), ("price", "1")],
        )
        .await;
    assert_eq!(odd.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(odd.body.contains("unknown field"), "{}", odd.body);

    let huge = "x".repeat(70_000);
    let too_big = client
        .post_form("/offers", &[("description", &huge), ("value", "1")])
        .await;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        too_big.body.contains("65536-byte limit"),
        "{}",
        too_big.body
    );
    assert!(
        too_big.body.contains("<form"),
        "still a form: {}",
        too_big.body
    );

    assert_eq!(
        list(&client, "").await["total"],
        1,
        "only the good one stored"
    );
}

// ---- updating and deleting ----------------------------------------------------------------

#[tokio::test]
async fn updates_and_deletes_arrive_live() {
    let app = spawn_app().await;
    let (alice, bob) = (app.client(), app.client());
    let mut watcher = open_stream(&bob).await;
    post(&alice, SEED).await;
    post(&alice, r#"{"description": "Second", "value": 5}"#).await;
    watcher.until("offer-2").await;

    let resp = put(
        &alice,
        "/offers/1",
        r#"{"description": "Even better", "value": 2500.5}"#,
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert_eq!(resp.json()["description"], "Even better");
    assert_eq!(resp.json()["value"], 2500.5);
    let event = watcher.until("Even better").await;
    assert!(
        event
            .data
            .contains(r##"hx-target="#offer-1" hx-swap="outerHTML""##),
        "{}",
        event.data
    );
    assert!(event.data.contains("2,500.50"));

    let resp = delete(&alice, "/offers/1").await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.json()["id"], 1);
    let event = watcher.until("hx-swap=\"delete\"").await;
    assert!(
        event
            .data
            .contains(r##"<hx-partial hx-target="#offer-1" hx-swap="delete"></hx-partial>"##),
        "{}",
        event.data
    );

    let page = alice.open_tab().await.page;
    assert!(!page.contains(r#"id="offer-1""#) && page.contains(r#"id="offer-2""#));
    assert_eq!(
        delete(&alice, "/offers/1").await.status,
        StatusCode::NOT_FOUND
    );
    let missing = put(&alice, "/offers/99", r#"{"description": "x", "value": 1}"#).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.json()["error"].is_string());
    let mismatch = put(
        &alice,
        "/offers/2",
        r#"{"id": 3, "description": "x", "value": 1}"#,
    )
    .await;
    assert_eq!(mismatch.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(mismatch.json()["field"], "id");
}

/// The ids of the rows a page's offers table shows, in order.
fn region_rows(page: &str) -> Vec<String> {
    Regions::from_page(page, &[BODY_REGION]).ids(BODY_REGION)
}

#[tokio::test]
async fn live_updates_keep_the_bounded_table_equal_to_a_fresh_render() {
    let app = spawn_app().await;
    let client = app.client();
    let tab = client.open_tab().await;
    let mut model = Regions::from_page(&tab.page, &[BODY_REGION]);
    let mut stream = client.stream(&tab.stream_url).await;

    // 25 creates overflow the 20 shown rows; then delete inside and outside the window, and
    // update a shown and a hidden offer.
    for n in 1..=25 {
        let resp = post(
            &client,
            &format!(r#"{{"description": "Offer {n}", "value": {n}}}"#),
        )
        .await;
        assert_eq!(resp.status, StatusCode::CREATED);
    }
    assert_eq!(delete(&client, "/offers/20").await.status, StatusCode::OK);
    assert_eq!(delete(&client, "/offers/2").await.status, StatusCode::OK);
    assert_eq!(
        put(
            &client,
            "/offers/10",
            r#"{"description": "Shown, changed", "value": 1}"#
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        put(
            &client,
            "/offers/1",
            r#"{"description": "Hidden, changed", "value": 1}"#
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(delete(&client, "/offers/25").await.status, StatusCode::OK);
    post(&client, r#"{"description": "Last", "value": 1}"#).await;

    loop {
        let event = stream.next_data().await;
        model.apply(&event.data);
        if event.data.contains("offer-26") {
            break;
        }
    }
    let fresh = region_rows(&client.open_tab().await.page);
    assert_eq!(fresh.len(), 20);
    assert_eq!(fresh.first().map(String::as_str), Some("offer-26"));
    assert_eq!(
        model.ids(BODY_REGION),
        fresh,
        "live updates and a fresh render agree"
    );

    // A stream whose cursor no longer means anything is resynced to the same rows.
    let mut resynced = client
        .stream_with(&tab.stream_url, &[("last-event-id", "not-a-cursor")])
        .await;
    let first = resynced.next_data().await;
    let mut from_resync = Regions::from_page(&tab.page, &[BODY_REGION]);
    from_resync.apply(&first.data);
    assert_eq!(from_resync.ids(BODY_REGION), fresh);
}

// ---- listing ------------------------------------------------------------------------------

#[tokio::test]
async fn get_offers_pages_newest_first_as_json_or_html() {
    let app = spawn_app().await;
    let client = app.client();
    for n in 1..=25 {
        post(
            &client,
            &format!(r#"{{"description": "Offer {n}", "value": {n}}}"#),
        )
        .await;
    }
    let first = list(&client, "?per_page=10").await;
    let ids: Vec<i64> = first["offers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (16..=25).rev().collect::<Vec<_>>());
    assert_eq!(first["total"], 25);
    assert_eq!(first["next"], "/offers?page=2&per_page=10");
    assert!(first["prev"].is_null());
    let last = list(&client, "?page=3&per_page=10").await;
    assert_eq!(last["offers"].as_array().unwrap().len(), 5);
    assert!(last["next"].is_null());

    let html = client
        .request(
            Method::GET,
            "/offers?page=2&per_page=10",
            &[("accept", "text/html,application/xhtml+xml")],
            "",
        )
        .await;
    assert_eq!(html.status, StatusCode::OK);
    assert!(html.header("content-type").starts_with("text/html"));
    assert!(html.body.contains("page 2 of 3"), "{}", html.body);
    assert!(html.body.contains(r#"id="offer-15""#) && !html.body.contains(r#"id="offer-16""#));
    assert_eq!(html.header("vary"), "Accept");

    for bad in ["?page=0", "?page=x", "?per_page=1000"] {
        let resp = client.get(&format!("/offers{bad}")).await;
        assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert!(resp.json()["field"].is_string(), "{bad}");
    }
}

// ---- durability ---------------------------------------------------------------------------

#[tokio::test]
async fn a_restart_on_the_same_database_keeps_the_offers() {
    let app = spawn_app().await;
    let client = app.client();
    post(&client, SEED).await;
    post(&client, r#"{"description": "Coffee", "value": 19.99}"#).await;
    let before = list(&client, "").await;

    let app: TestApp = app.restart().await;
    let client = app.client();
    assert_eq!(list(&client, "").await, before);
    let page = client.open_tab().await.page;
    assert_eq!(region_rows(&page), ["offer-2", "offer-1"]);
    assert!(page.contains("19.99"));
    assert_eq!(post(&client, SEED).await.status, StatusCode::CONFLICT);
    let next = post(&client, r#"{"description": "After", "value": 1}"#).await;
    assert_eq!(next.json()["id"], 3);
}

// ---- bad input ----------------------------------------------------------------------------

#[tokio::test]
async fn every_bad_input_is_refused_and_nothing_is_written() {
    let app = spawn_app().await;
    let client = app.client();
    let mut stream = open_stream(&client).await;
    let long = "d".repeat(61);
    let huge = format!(r#"{{"description": "{}", "value": 1}}"#, "x".repeat(70_000));
    let cases: Vec<(&str, String, StatusCode, Option<&str>)> = vec![
        (
            "malformed",
            r#"{"description": "x", "value": "#.into(),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            "NaN",
            r#"{"description": "x", "value": NaN}"#.into(),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            "value as string",
            r#"{"description": "x", "value": "1000"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("value"),
        ),
        (
            "id as string",
            r#"{"id": "1", "description": "x", "value": 1}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("id"),
        ),
        (
            "id fractional",
            r#"{"id": 1.5, "description": "x", "value": 1}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("id"),
        ),
        (
            "id negative",
            r#"{"id": -1, "description": "x", "value": 1}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("id"),
        ),
        (
            "negative value",
            r#"{"description": "x", "value": -5}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("value"),
        ),
        (
            "non-finite value",
            r#"{"description": "x", "value": 1e999}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("value"),
        ),
        (
            "too large",
            r#"{"description": "x", "value": 1e13}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("value"),
        ),
        (
            "missing value",
            r#"{"description": "x"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("value"),
        ),
        (
            "missing description",
            r#"{"value": 1}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("description"),
        ),
        (
            "blank description",
            r#"{"description": "  ", "value": 1}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("description"),
        ),
        (
            "description not text",
            r#"{"description": 7, "value": 1}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("description"),
        ),
        (
            "over-long description",
            format!(r#"{{"description": "{long}", "value": 1}}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("description"),
        ),
        (
            "unknown field",
            r#"{"description": "x", "value": 1, "price": 2}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("price"),
        ),
        (
            "not an object",
            "[1, 2]".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
        ),
        (
            "over the body limit",
            huge,
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
        ),
    ];
    for (name, body, status, field) in cases {
        let resp = post(&client, &body).await;
        assert_eq!(resp.status, status, "{name}: {}", resp.body);
        let json = resp.json();
        assert!(
            json["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{name}: {json}"
        );
        assert_eq!(json["field"].as_str(), field, "{name}: {json}");
    }
    let too_big = post(
        &client,
        &format!(r#"{{"description": "{}"}}"#, "x".repeat(70_000)),
    )
    .await;
    assert!(
        too_big.json()["error"]
            .as_str()
            .unwrap()
            .contains("65536-byte limit")
    );

    let wrong_type = client
        .request(
            Method::POST,
            "/offers",
            &[("content-type", "text/plain")],
            SEED,
        )
        .await;
    assert_eq!(wrong_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(wrong_type.json()["error"].is_string());
    let no_type = client.request(Method::POST, "/offers", &[], SEED).await;
    assert_eq!(no_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    assert_eq!(list(&client, "").await["total"], 0, "nothing was written");
    stream.expect_quiet(Duration::from_millis(200)).await;

    // An update is checked the same way and leaves the offer as it was.
    post(&client, SEED).await;
    stream.until("offer-1").await;
    let bad = put(
        &client,
        "/offers/1",
        r#"{"description": "x", "value": "9"}"#,
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.json()["field"], "value");
    let partial = put(&client, "/offers/1", r#"{"description": "only this"}"#).await;
    assert_eq!(partial.status, StatusCode::UNPROCESSABLE_ENTITY);
    let plain = client
        .request(
            Method::PUT,
            "/offers/1",
            &[("content-type", "text/plain")],
            "x",
        )
        .await;
    assert_eq!(plain.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        delete(&client, "/offers/abc").await.status,
        StatusCode::NOT_FOUND
    );
    let stored = &list(&client, "").await["offers"][0];
    assert_eq!(stored["description"], "Special Offer");
    assert_eq!(stored["value"], 1_000_000);
    stream.expect_quiet(Duration::from_millis(200)).await;
}

// ---- the API token ------------------------------------------------------------------------

#[tokio::test]
async fn with_a_token_json_writes_need_it_and_the_page_needs_none() {
    let app = spawn_app_with(|c| c.api_token = Some("s3cret".into())).await;
    let client = app.client();
    let json = [("content-type", "application/json")];

    let anonymous = client.request(Method::POST, "/offers", &json, SEED).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(anonymous.json()["error"].is_string());
    let wrong = [json[0], ("authorization", "Bearer nope")];
    assert_eq!(
        client
            .request(Method::POST, "/offers", &wrong, SEED)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let right = [json[0], ("authorization", "Bearer s3cret")];
    assert_eq!(
        client
            .request(Method::POST, "/offers", &right, SEED)
            .await
            .status,
        StatusCode::CREATED
    );
    let update = r#"{"description": "x", "value": 1}"#;
    assert_eq!(
        client
            .request(Method::PUT, "/offers/1", &json, update)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        client
            .request(Method::DELETE, "/offers/1", &[], "")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        client
            .request(Method::PUT, "/offers/1", &right, update)
            .await
            .status,
        StatusCode::OK
    );

    // The page's form: same-origin browser, no token.
    let form = client
        .post_form(
            "/offers",
            &[("description", "From the page"), ("value", "3")],
        )
        .await;
    assert_eq!(form.status, StatusCode::CREATED, "{}", form.body);
    let cross = client
        .request(
            Method::DELETE,
            "/offers/1",
            &[("sec-fetch-site", "cross-site")],
            "",
        )
        .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    let same = client
        .request(
            Method::DELETE,
            "/offers/1",
            &[("sec-fetch-site", "same-origin"), ("hx-request", "true")],
            "",
        )
        .await;
    assert_eq!(same.status, StatusCode::OK);
    assert_eq!(
        list(&client, "").await["total"],
        1,
        "reading needs no token"
    );
}

// ---- benchmark ----------------------------------------------------------------------------

/// Concurrent writers, two tabs reading live: both tabs end up showing exactly what a fresh page
/// shows (a tab that fell behind history is resynced, which is equally correct).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_leave_every_tab_in_step() {
    const WRITERS: usize = 4;
    const EACH: usize = 50;
    let app = spawn_app().await;
    let last = format!("offer-{}\"", WRITERS * EACH);
    let mut readers = Vec::new();
    for _ in 0..2 {
        let client = app.client();
        let tab = client.open_tab().await;
        let mut stream = client.stream(&tab.stream_url).await;
        let mut model = Regions::from_page(&tab.page, &[BODY_REGION]);
        let last = last.clone();
        readers.push(tokio::spawn(async move {
            loop {
                let event = stream.next_data().await;
                model.apply(&event.data);
                if event.data.contains(&last) {
                    return model.ids(BODY_REGION);
                }
            }
        }));
    }
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let client = app.client();
        writers.push(tokio::spawn(async move {
            for n in 0..EACH {
                let body = format!(r#"{{"description": "w{w} n{n}", "value": {n}.5}}"#);
                assert_eq!(post(&client, &body).await.status, StatusCode::CREATED);
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let fresh = region_rows(&app.client().open_tab().await.page);
    for reader in readers {
        assert_eq!(
            reader.await.unwrap(),
            fresh,
            "the tab shows what a fresh page shows"
        );
    }
}

/// Deletes and creates at once (on PostgreSQL from two instances): each message says which
/// row moves up into the table or is pushed out of it, so no two may read the table at once.
#[tokio::test]
async fn deletes_and_creates_at_once_leave_every_tab_in_step() {
    let app = spawn_app().await;
    let writers = Writers::new(&app).await;
    let client = app.client();
    for n in 1..=45 {
        let body = format!(r#"{{"description": "Offer {n}", "value": {n}}}"#);
        assert_eq!(post(&client, &body).await.status, StatusCode::CREATED);
    }
    let tab = client.open_tab().await;
    let mut model = Regions::from_page(&tab.page, &[BODY_REGION]);
    let mut stream = client.stream(&tab.stream_url).await;

    let mut changes = Vec::new();
    for n in 0..30 {
        let writer = writers.nth(n);
        changes.push(tokio::spawn(async move {
            if n % 3 == 2 {
                let body = format!(r#"{{"description": "At once {n}", "value": {n}}}"#);
                assert_eq!(post(&writer, &body).await.status, StatusCode::CREATED);
            } else {
                let id = 45 - n;
                assert_eq!(
                    delete(&writer, &format!("/offers/{id}")).await.status,
                    StatusCode::OK
                );
            }
        }));
    }
    for change in changes {
        change.await.unwrap();
    }
    let last = post(&client, r#"{"description": "Last", "value": 1}"#).await;
    let last = format!("offer-{}\"", last.json()["id"]);
    loop {
        let event = stream.next_data().await;
        model.apply(&event.data);
        if event.data.contains(&last) {
            break;
        }
    }
    let fresh = region_rows(&client.open_tab().await.page);
    assert_eq!(fresh.len(), 20);
    assert_eq!(
        model.ids(BODY_REGION),
        fresh,
        "the tab shows what a fresh page shows"
    );
}
