//! Snapshots of every fragment Herald renders, and of the raw SSE frame of each message kind.

mod common;

use std::time::Duration;

use common::{redact, spawn_app, spawn_app_with};
use herald::board::input::Typed;
use herald::board::{BoardForm, BoardMessage, MessageView};
use herald::hub::list_html;
use herald::notify::{Kind, Notification, NotifyForm, Toast, live};
use herald::web::error::FieldError;
use insta::assert_snapshot;

const AT: i64 = 1_795_258_433_120;

fn note(id: i64, kind: Kind, title: &str) -> Notification {
    Notification {
        id,
        kind,
        title: title.into(),
        body: "Body with <em>markup</em> & \"quotes\"".into(),
        created_at: AT,
    }
}

#[test]
fn board_fragments() {
    let message = BoardMessage {
        message: "Hello <script>x()</script>".into(),
        set_at: AT,
    };
    assert_snapshot!("board_message", MessageView::new(Some(&message)).html());
    assert_snapshot!("board_message_none", MessageView::new(None).html());
    assert_snapshot!("board_form_blank", BoardForm::blank(100).html());
    assert_snapshot!("board_form_sent", BoardForm::sent(100).html());
    assert_snapshot!(
        "board_form_failed",
        BoardForm::failed(
            100,
            &Typed {
                message: "<b>kept</b>".into()
            },
            FieldError::new("message", "message must not be empty").into()
        )
        .html()
    );
}

#[test]
fn notification_fragments() {
    let limits = common::test_config("x".as_ref()).limits;
    assert_snapshot!(
        "toast",
        Toast::new(&note(7, Kind::Warning, "<b>Heads up</b>")).html()
    );
    let recent = [
        note(2, Kind::Error, "Second"),
        note(1, Kind::Success, "First"),
    ];
    assert_snapshot!("recent_list", list_html(&recent));
    assert_eq!(
        list_html::<Notification>(&[]),
        "",
        "the page says the list is empty"
    );
    // A third notification where the list keeps two: its toast, its entry first, the oldest
    // entry gone.
    let third = note(3, Kind::Info, "Third");
    let before = ["note-2".to_string(), "note-1".to_string()];
    assert_snapshot!(
        "notification_live",
        live(&third, &before, &[third.clone(), recent[0].clone()])
    );
    assert_snapshot!("notify_form_blank", NotifyForm::blank(&limits).html());
    assert_snapshot!(
        "notify_form_sent",
        NotifyForm::sent(&limits, Kind::Error).html()
    );
}

#[test]
fn error_fragments() {
    use askama::Template;
    use herald::web::negotiate::{Alert, ErrorPage};
    let page = ErrorPage {
        assets: "/static/test".into(),
        title: "Unprocessable Entity",
        message: "page must be <b>whole</b>".into(),
        unknown_path: None,
    };
    assert_snapshot!("error_page", page.render().unwrap());
    let not_found = ErrorPage {
        assets: "/static/test".into(),
        title: "Not found",
        message: String::new(),
        unknown_path: Some("/nowhere/<b>".into()),
    };
    assert_snapshot!("error_page_not_found", not_found.render().unwrap());
    let alert = Alert {
        message: "page must be <b>whole</b>".into(),
    };
    assert_snapshot!("error_alert", alert.render().unwrap());
}

#[tokio::test]
async fn failed_notification_form() {
    let app = spawn_app().await;
    let resp = app
        .client()
        .post_form(
            "/send-notification",
            &[("type", "success"), ("title", ""), ("body", "<i>kept</i>")],
        )
        .await;
    assert_snapshot!("notify_form_failed", resp.body);
}

#[tokio::test]
async fn status_fragment() {
    let render = herald::web::page::status_html(15);
    assert_snapshot!("status", redact(&render()));
}

#[test]
fn presence_fragment() {
    assert_snapshot!("presence_one", herald::web::presence::presence_partial(1));
    assert_snapshot!(
        "presence_many",
        herald::web::presence::presence_partial(250_000)
    );
}

#[tokio::test]
async fn frames_of_each_message_kind() {
    let app = spawn_app_with(|c| c.hub.heartbeat = Duration::from_secs(1)).await;
    let client = app.client();
    let tab = client.open_tab().await;
    let mut stream = client.stream(&tab.stream_url).await;
    stream.next().await.unwrap();
    assert_snapshot!("frame_first", redact(&stream.last_frame));

    client.get("/send?message=framed%20%3Cb%3E").await;
    stream.until("board-message").await;
    assert_snapshot!("frame_board", redact(&stream.last_frame));

    client
        .post_json(
            "/send-notification",
            r#"{"type":"success","title":"Done","body":"All good"}"#,
        )
        .await;
    stream.until("toast").await;
    assert_snapshot!("frame_notification", redact(&stream.last_frame));

    loop {
        if stream.next().await.unwrap().comment {
            break;
        }
    }
    assert_snapshot!("frame_heartbeat", redact(&stream.last_frame));

    let mut resync = client
        .stream_with(&tab.stream_url, &[("last-event-id", "0-0-0")])
        .await;
    resync.next().await.unwrap();
    assert_snapshot!("frame_resync", redact(&resync.last_frame));

    let mut event = client.stream("/event").await;
    event.next().await.unwrap();
    assert_snapshot!("frame_event", redact(&event.last_frame));

    let mut ping = client.stream("/ping").await;
    ping.next().await.unwrap();
    assert_snapshot!("frame_ping", ping.last_frame.clone());
}
