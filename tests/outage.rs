//! The database going away and coming back, with its own PostgreSQL cluster (stopping it would
//! disturb every other test of a binary): writes answer 503 and store nothing while it is down,
//! `/readyz` answers 503 meanwhile, streams stay open and keep their heartbeat, and when it
//! returns every instance catches up with nothing lost and nothing repeated. And a database that
//! cannot be reached at start is a clear error naming its host and database, never its
//! password.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{board_texts, pg, spawn_postgres_with, tab_following};
use hyper::StatusCode;

#[tokio::test]
async fn writes_answer_503_while_the_database_is_down_and_streams_catch_up_after() {
    let heartbeat = |c: &mut herald::config::Config| c.hub.heartbeat = Duration::from_secs(1);
    let a = spawn_postgres_with(heartbeat).await;
    let b = a.another().await;
    let (writer, mut stream) = tab_following(&a, &b).await;

    pg::cluster().pg_ctl("stop");
    let refused = writer.get("/send?message=lost").await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.body
    );
    assert!(
        refused.json()["error"]
            .as_str()
            .unwrap()
            .contains("unreachable")
    );
    let form = writer.post_form("/send", &[("message", "lost too")]).await;
    assert_eq!(form.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        form.body.contains("unreachable"),
        "an inline error: {}",
        form.body
    );
    let offer = writer
        .post_json("/offers", r#"{"id":7,"description":"lost","value":1}"#)
        .await;
    assert_eq!(offer.status, StatusCode::SERVICE_UNAVAILABLE);
    // The stream stays open: its heartbeat goes on.
    let beat = stream.next().await.expect("still open");
    assert!(beat.comment, "{beat:?}");
    // A load balancer sends no new tabs here; a supervisor sees the process alive.
    let ready = writer.get("/readyz").await;
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        ready.body
    );
    assert!(ready.body.contains("store"), "{}", ready.body);
    assert_eq!(writer.get("/healthz").await.status, StatusCode::OK);

    pg::cluster().pg_ctl("start");
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let sent = writer.get("/send?message=after").await;
        if sent.status == StatusCode::OK {
            break;
        }
        assert_eq!(sent.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(tokio::time::Instant::now() < deadline, "never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(writer.get("/readyz").await.status, StatusCode::OK);
    assert_eq!(
        board_texts(&mut stream, 1).await,
        ["after"],
        "nothing lost, nothing repeated, nothing half-stored"
    );
    stream.expect_quiet(Duration::from_millis(500)).await;
    let page = b.client().open_tab().await.page;
    assert!(page.contains("after") && !page.contains("lost"), "{page}");
    let offers = writer.get("/offers").await.json();
    assert_eq!(offers["total"], 0, "the refused offer was not stored");
}

#[test]
fn an_unreachable_database_at_start_is_a_clear_error_without_the_password() {
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .env_clear()
        .env("HERALD_ADDR", "127.0.0.1:0")
        .env(
            "HERALD_DATABASE_URL",
            "postgres://herald:sekrit-pw-1@127.0.0.1:1/orders_db?connect_timeout=2",
        )
        .stdin(Stdio::null())
        .output()
        .expect("herald runs");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(message.contains("orders_db"), "{message}");
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(!message.contains("sekrit-pw-1"), "{message}");
}
