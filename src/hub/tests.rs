//! The hub's behaviour seen from a stream: replay, resync, lag, heartbeat, close.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use uuid::Uuid;

use super::*;

/// Regions whose HTML says how often they were rendered, so tests see resyncs and caching.
struct Counted {
    renders: AtomicUsize,
}

impl Regions for Counted {
    fn broadcast(&self) -> BoxFuture<'static, Vec<Region>> {
        let n = self.renders.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move {
            vec![Region {
                id: "shared",
                html: format!("render {n}"),
            }]
        })
    }

    fn private(&self, client: ClientId) -> BoxFuture<'static, Vec<Region>> {
        Box::pin(async move {
            vec![Region {
                id: "mine",
                html: format!("for {client}"),
            }]
        })
    }
}

fn config(history: usize) -> HubConfig {
    let limits = Limits {
        messages: history,
        bytes: 1 << 20,
    };
    HubConfig {
        history: limits,
        client_history: limits,
        heartbeat: Duration::from_secs(3600),
        retry: Duration::from_millis(1500),
        client_idle: Duration::from_secs(3600),
    }
}

fn hub(history: usize) -> (Hub, Arc<Counted>) {
    let hub = Hub::new(config(history), || "<i>status</i>".to_string());
    (
        hub,
        Arc::new(Counted {
            renders: AtomicUsize::new(0),
        }),
    )
}

fn client() -> ClientId {
    ClientId(Uuid::new_v4())
}

async fn publish(hub: &Hub, audience: Audience, html: &str) {
    hub.change().await.publish(audience, html);
}

async fn next(stream: &mut LiveStream) -> String {
    let chunk = tokio::time::timeout(Duration::from_secs(5), stream.next_chunk())
        .await
        .expect("a chunk in time")
        .expect("stream open");
    String::from_utf8(chunk.to_vec()).unwrap()
}

/// `(id, data)` of each message in a chunk.
fn messages(chunk: &str) -> Vec<(String, String)> {
    chunk
        .split("\n\n")
        .filter(|m| !m.is_empty())
        .map(|m| {
            let id = m
                .lines()
                .find_map(|l| l.strip_prefix("id: "))
                .unwrap_or("")
                .to_string();
            let data: Vec<&str> = m.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
            (id, data.join("\n"))
        })
        .collect()
}

#[tokio::test]
async fn first_message_carries_retry_id_and_status() {
    let (hub, regions) = hub(8);
    let mut stream = hub.stream(client(), None, regions);
    let first = next(&mut stream).await;
    assert!(first.starts_with("retry: 1500\nid: "), "{first}");
    assert!(first.ends_with("data: <i>status</i>\n\n"), "{first}");
}

#[tokio::test]
async fn replays_exactly_the_missed_messages_in_order_once() {
    let (hub, regions) = hub(8);
    let me = client();
    let page = hub.snapshot(me, Scope::ALL, &*regions).await;
    publish(&hub, Audience::Everyone, "b1").await;
    publish(&hub, Audience::Client(me), "p1").await;
    publish(&hub, Audience::Everyone, "b2").await;

    let mut stream = hub.stream(me, Some(&page.cursor.to_string()), regions.clone());
    next(&mut stream).await;
    let replay = messages(&next(&mut stream).await);
    let data: Vec<&str> = replay.iter().map(|(_, d)| d.as_str()).collect();
    assert_eq!(data, ["b1", "b2", "p1"]);

    // Reconnecting from the id of the first replayed message sends only the two after it.
    let mut again = hub.stream(me, Some(&replay[0].0), regions.clone());
    next(&mut again).await;
    let rest = messages(&next(&mut again).await);
    let data: Vec<&str> = rest.iter().map(|(_, d)| d.as_str()).collect();
    assert_eq!(data, ["b2", "p1"]);
    assert_eq!(
        regions.renders.load(Ordering::SeqCst),
        1,
        "replay needs no resync"
    );
}

#[tokio::test]
async fn private_messages_reach_only_their_client() {
    let (hub, regions) = hub(8);
    let (me, other) = (client(), client());
    let mut mine = hub.stream(me, None, regions.clone());
    let mut theirs = hub.stream(other, None, regions.clone());
    next(&mut mine).await;
    next(&mut theirs).await;
    publish(&hub, Audience::Client(me), "secret").await;
    publish(&hub, Audience::Everyone, "hello").await;
    let mine_got = messages(&next(&mut mine).await);
    assert_eq!(
        mine_got.iter().map(|m| m.1.as_str()).collect::<Vec<_>>(),
        ["hello", "secret"]
    );
    let theirs_got = messages(&next(&mut theirs).await);
    assert_eq!(
        theirs_got.iter().map(|m| m.1.as_str()).collect::<Vec<_>>(),
        ["hello"]
    );
}

#[tokio::test]
async fn a_cursor_older_than_history_gets_a_resync_then_goes_live() {
    let (hub, regions) = hub(3);
    let me = client();
    let page = hub.snapshot(me, Scope::ALL, &*regions).await;
    for i in 0..5 {
        publish(&hub, Audience::Everyone, &format!("m{i}")).await;
    }
    let mut stream = hub.stream(me, Some(&page.cursor.to_string()), regions.clone());
    next(&mut stream).await;
    let resync = messages(&next(&mut stream).await);
    assert_eq!(resync.len(), 1);
    assert!(
        resync[0]
            .1
            .contains(r##"hx-target="#shared" hx-swap="innerHTML""##),
        "{resync:?}"
    );
    assert!(
        !resync[0].1.contains("#mine"),
        "the private log still covers the cursor"
    );
    assert!(
        resync[0].0.contains("-5-"),
        "cursor moves to the head: {}",
        resync[0].0
    );

    publish(&hub, Audience::Everyone, "after").await;
    let live = messages(&next(&mut stream).await);
    assert_eq!(live[0].1, "after");
}

#[tokio::test]
async fn a_cursor_from_another_run_or_garbage_resyncs_everything_at_once() {
    let (hub, regions) = hub(8);
    publish(&hub, Audience::Everyone, "old").await;
    for requested in ["ffff-1-1", "not a cursor"] {
        let mut stream = hub.stream(client(), Some(requested), regions.clone());
        let first = next(&mut stream).await;
        assert!(first.starts_with("retry: "), "{first}");
        assert!(
            first.contains("#shared") && first.contains("#mine"),
            "{first}"
        );
        assert!(
            first.contains("id: ") && !first.contains("id: ffff"),
            "{first}"
        );
    }
}

#[tokio::test]
async fn a_lagging_stream_costs_nobody_else_and_is_resynced() {
    let (hub, regions) = hub(4);
    let me = client();
    let mut slow = hub.stream(me, None, regions.clone());
    next(&mut slow).await;
    // Publishing never waits for the stream that is not reading.
    for i in 0..1000 {
        publish(&hub, Audience::Everyone, &format!("m{i}")).await;
    }
    let mut fast = hub.stream(
        client(),
        Some(
            &hub.snapshot(me, Scope::ALL, &*regions)
                .await
                .cursor
                .to_string(),
        ),
        regions.clone(),
    );
    next(&mut fast).await;
    publish(&hub, Audience::Everyone, "fresh").await;
    assert_eq!(messages(&next(&mut fast).await)[0].1, "fresh");

    let caught_up = messages(&next(&mut slow).await);
    assert!(
        caught_up.iter().all(|(_, d)| !d.starts_with('m')),
        "no stale replay: {caught_up:?}"
    );
    assert!(caught_up[0].1.contains("#shared"), "{caught_up:?}");
}

#[tokio::test]
async fn snapshots_wait_for_changes_in_progress() {
    let (hub, regions) = hub(8);
    let change = hub.change().await;
    let snapshot = {
        let hub = hub.clone();
        let regions = regions.clone();
        tokio::spawn(async move { hub.snapshot(client(), Scope::ALL, &*regions).await.cursor })
    };
    tokio::task::yield_now().await;
    change.publish(Audience::Everyone, "x");
    assert!(!snapshot.is_finished());
    drop(change);
    let cursor = snapshot.await.unwrap();
    assert_eq!(
        cursor.broadcast, 1,
        "the snapshot includes the finished change"
    );
}

#[tokio::test]
async fn broadcast_regions_render_once_per_state() {
    let (hub, regions) = hub(8);
    for _ in 0..3 {
        hub.snapshot(client(), Scope::ALL, &*regions).await;
    }
    assert_eq!(regions.renders.load(Ordering::SeqCst), 1);
    publish(&hub, Audience::Everyone, "change").await;
    hub.snapshot(client(), Scope::ALL, &*regions).await;
    assert_eq!(regions.renders.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn heartbeats_carry_a_comment_the_status_and_the_cursor() {
    let mut config = config(8);
    config.heartbeat = Duration::from_millis(50);
    let hub = Hub::new(config, || "beat".to_string());
    let regions = Arc::new(Counted {
        renders: AtomicUsize::new(0),
    });
    let mut stream = hub.stream(client(), None, regions);
    next(&mut stream).await;
    let beat = next(&mut stream).await;
    assert!(beat.starts_with("id: "), "{beat}");
    assert!(beat.ends_with(": heartbeat\ndata: beat\n\n"), "{beat}");
}

#[tokio::test]
async fn closing_ends_every_stream() {
    let (hub, regions) = hub(8);
    let mut stream = hub.stream(client(), None, regions);
    next(&mut stream).await;
    hub.close();
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next_chunk())
        .await
        .unwrap();
    assert!(end.is_none());
}

#[tokio::test]
async fn idle_private_logs_are_dropped_but_open_ones_kept() {
    let mut config = config(8);
    config.heartbeat = Duration::from_millis(20);
    config.client_idle = Duration::from_millis(1);
    let hub = Hub::new(config, String::new);
    let regions = Arc::new(Counted {
        renders: AtomicUsize::new(0),
    });
    let open = hub.stream(client(), None, regions.clone());
    for _ in 0..10 {
        hub.snapshot(client(), Scope::ALL, &*regions).await;
    }
    assert_eq!(hub.client_logs(), 11);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while hub.client_logs() > 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "idle logs were never dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(open);
}

#[tokio::test]
async fn changes_publish_in_the_order_they_were_made() {
    let (hub, _) = hub(8);
    let first = hub.change().await;
    let second = {
        let hub = hub.clone();
        tokio::spawn(async move { hub.change().await.publish(Audience::Everyone, "second") })
    };
    tokio::task::yield_now().await;
    assert!(!second.is_finished(), "a second change waits for the first");
    assert_eq!(first.publish(Audience::Everyone, "first"), 1);
    drop(first);
    assert_eq!(second.await.unwrap(), 2);
}

#[tokio::test]
async fn a_change_publishes_once_its_work_succeeded_and_nothing_when_it_failed() {
    let (hub, regions) = hub(8);
    let me = client();
    let mut stream = hub.stream(me, None, regions);
    next(&mut stream).await;
    let failed: Result<(), &str> = hub
        .commit(|| async { Err::<((), Publish), _>("refused") })
        .await;
    assert_eq!(failed, Err("refused"));
    let snapshot = {
        let hub = hub.clone();
        let regions = Arc::new(Counted {
            renders: AtomicUsize::new(0),
        });
        move || {
            let (hub, regions) = (hub.clone(), regions.clone());
            tokio::spawn(async move { hub.snapshot(me, Scope::ALL, &*regions).await.cursor })
        }
    };
    let value = hub
        .commit(|| async {
            let during = snapshot();
            tokio::task::yield_now().await;
            assert!(!during.is_finished(), "the work runs under the change lock");
            let publish = Publish::everyone("<p>one</p>".into())
                .and(Audience::Everyone, String::new())
                .and(Audience::Client(me), "<p>two</p>".into());
            Ok::<_, ()>((7, publish))
        })
        .await;
    assert_eq!(value, Ok(7));
    let data: Vec<String> = messages(&next(&mut stream).await)
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    assert_eq!(
        data,
        ["<p>one</p>", "<p>two</p>"],
        "in order, nothing from the failed one"
    );
    assert_eq!(snapshot().await.unwrap().broadcast, 1);
}

#[tokio::test]
async fn an_unused_private_log_goes_with_its_last_stream() {
    let (hub, regions) = hub(8);
    let (quiet, busy) = (client(), client());
    let first = hub.stream(quiet, None, regions.clone());
    let second = hub.stream(quiet, None, regions.clone());
    let mut kept = hub.stream(busy, None, regions.clone());
    publish(&hub, Audience::Client(busy), "<p>for busy</p>").await;
    assert_eq!(hub.client_logs(), 2);
    drop(first);
    assert_eq!(hub.client_logs(), 2, "another stream still reads it");
    drop(second);
    assert_eq!(
        hub.client_logs(),
        1,
        "an unused log goes with its last stream"
    );
    let cursor = {
        let chunk = next(&mut kept).await;
        let opened = next(&mut kept).await;
        assert!(opened.contains("for busy"), "{chunk}{opened}");
        messages(&opened).last().unwrap().0.clone()
    };
    drop(kept);
    assert_eq!(
        hub.client_logs(),
        1,
        "a log with history waits for the idle sweep"
    );
    let mut again = hub.stream(busy, Some(&cursor), regions);
    let resumed = next(&mut again).await;
    assert!(
        !resumed.contains("for busy"),
        "nothing replayed twice: {resumed}"
    );
}

#[tokio::test]
async fn a_dropped_unused_log_resyncs_its_tab_at_worst() {
    let (hub, regions) = hub(8);
    let (quiet, other) = (client(), client());
    let mut stream = hub.stream(quiet, None, regions.clone());
    let cursor = messages(&next(&mut stream).await)[0].0.clone();
    drop(stream);
    assert_eq!(hub.client_logs(), 0);
    // Other tabs' private messages move the shared sequence past the dropped log's start.
    publish(&hub, Audience::Client(other), "<p>elsewhere</p>").await;
    publish(&hub, Audience::Client(quiet), "<p>new for quiet</p>").await;
    let mut back = hub.stream(quiet, Some(&cursor), regions);
    let first = next(&mut back).await;
    let rest = next(&mut back).await;
    let all = format!("{first}{rest}");
    assert!(
        all.contains(&format!("hx-swap=\"innerHTML\">for {quiet}")),
        "the tab's private regions are re-rendered: {all}"
    );
    assert!(!all.contains("elsewhere"), "{all}");
}

/// Text that is often nearly valid: pieces of valid text (`valid`), characters that matter to
/// the grammar (`specials`) and any character at all, run together.
pub(super) fn nearly(
    specials: Vec<&'static str>,
    valid: impl Strategy<Value = String>,
) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        prop::sample::select(specials).prop_map(str::to_string),
        any::<char>().prop_map(String::from),
        valid,
    ];
    prop::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
}

mod client_ids {
    use super::*;

    proptest! {
        #[test]
        fn any_text_is_a_client_id_that_round_trips_or_refused_without_panicking(text in nearly(
            vec!["-", "0", "f", "F", "g", "{", "}", "urn:uuid:", " "],
            any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string()),
        )) {
            if let Ok(client) = text.parse::<ClientId>() {
                prop_assert_eq!(client.to_string().parse::<ClientId>(), Ok(client));
                prop_assert_eq!(client.to_string().len(), 36);
            }
        }
    }
}
