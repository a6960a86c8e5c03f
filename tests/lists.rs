//! Live lists as one-item messages: a notification sends its entry, a job change its card, and
//! a tab that applies them, as htmx does, shows exactly what a fresh page renders.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::regions::{Regions, elements};
use common::{Client, Event, Sse, WAIT, Writers, create_job, spawn_app};
use herald::hub::{Listed, list_changes, list_html, list_ids};
use hyper::StatusCode;
use proptest::prelude::*;
use serde_json::{Value, json};
use tokio::sync::mpsc;

const NOTES: &str = "notifications-list";
const JOBS: &str = "jobs-list";

// ---- the list diff: exact messages, and against the model ---------------------------------

/// Element `e{0}`, in version `{1}`.
struct Item(u32, u32);

impl Listed for Item {
    fn element_id(&self) -> String {
        format!("e{}", self.0)
    }

    fn element(&self) -> String {
        format!("<i id=\"e{}\">{}</i>", self.0, self.1)
    }
}

fn changes(before: &[u32], after: &[u32], changed: Option<&str>) -> String {
    let before: Vec<String> = before.iter().map(|n| format!("e{n}")).collect();
    let after: Vec<Item> = after.iter().map(|n| Item(*n, 1)).collect();
    list_changes("list", &before, &after, changed)
}

#[test]
fn a_new_first_element_is_prepended_and_the_one_pushed_out_deleted() {
    assert_eq!(
        changes(&[3, 2, 1], &[4, 3, 2], None),
        concat!(
            r##"<hx-partial hx-target="#e1" hx-swap="delete"></hx-partial>"##,
            r##"<hx-partial hx-target="#list" hx-swap="afterbegin"><i id="e4">1</i></hx-partial>"##,
        )
    );
}

#[test]
fn new_neighbours_go_in_one_insert_before_the_replacement_they_follow() {
    assert_eq!(
        changes(&[9, 5, 1], &[9, 7, 6, 5, 1], Some("e9")),
        concat!(
            r##"<hx-partial hx-target="#e9" hx-swap="afterend"><i id="e7">1</i><i id="e6">1</i></hx-partial>"##,
            r##"<hx-partial hx-target="#e9" hx-swap="outerHTML"><i id="e9">1</i></hx-partial>"##,
        )
    );
}

#[test]
fn a_changed_element_that_leaves_is_only_deleted() {
    assert_eq!(
        changes(&[3, 2, 1], &[3, 2], Some("e1")),
        r##"<hx-partial hx-target="#e1" hx-swap="delete"></hx-partial>"##
    );
    assert_eq!(changes(&[3, 2], &[3, 2], None), "", "nothing changed");
}

#[test]
fn elements_that_swap_places_resend_the_region() {
    assert_eq!(
        changes(&[1, 2], &[2, 1], None),
        r##"<hx-partial hx-target="#list" hx-swap="innerHTML"><i id="e2">1</i><i id="e1">1</i></hx-partial>"##
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever a list was and is now, the partials turn a page showing the one into exactly
    /// the other, the changed element's new content included.
    #[test]
    fn list_changes_turn_any_list_into_any_other(
        before in proptest::collection::btree_set(0u32..30, 0..12),
        after in proptest::collection::btree_set(0u32..30, 0..12),
        changed in 0u32..30,
    ) {
        let was: Vec<Item> = before.iter().rev().map(|n| Item(*n, 0)).collect();
        let now: Vec<Item> = after.iter().rev().map(|n| Item(*n, u32::from(*n == changed))).collect();
        let page = format!("<ul id=\"list\">{}</ul>", list_html(&was));
        let data = list_changes("list", &list_ids(&was), &now, Some(&format!("e{changed}")));
        let mut model = Regions::from_page(&page, &["list"]);
        model.apply(&data);
        prop_assert_eq!(model.elements("list"), elements(&list_html(&now)));
        prop_assert!(model.missed.is_empty(), "{:?}", model.missed);
        prop_assert!(
            model.swaps.iter().all(|(_, swap)| swap != "innerHTML"),
            "one item at a time: {}", data
        );
    }
}

// ---- over HTTP ------------------------------------------------------------------------------

/// Reads a tab's stream in the background, so it never falls behind while the test acts.
fn read_on(mut stream: Sse) -> mpsc::UnboundedReceiver<Event> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(event) = stream
            .next_within(Duration::from_secs(60))
            .await
            .ok()
            .flatten()
        {
            if tx.send(event).is_err() {
                return;
            }
        }
    });
    rx
}

/// A tab following the lists: its model and the messages that built it.
struct Tab {
    /// The page it opened with, and its stream's URL.
    page: String,
    stream_url: String,
    model: Regions,
    /// The broadcast sequence number of the last message applied.
    seen: u64,
    events: mpsc::UnboundedReceiver<Event>,
    messages: usize,
}

impl Tab {
    async fn open(client: &Client) -> Tab {
        let tab = client.open_tab().await;
        let stream = client.stream(&tab.stream_url).await;
        Tab {
            model: Regions::from_page(&tab.page, &[NOTES, JOBS]),
            seen: broadcast(&tab.stream_url),
            page: tab.page,
            stream_url: tab.stream_url,
            events: read_on(stream),
            messages: 0,
        }
    }

    /// Applies messages until `done` holds for one; returns it.
    async fn until(&mut self, done: impl Fn(&Event) -> bool) -> Event {
        loop {
            let event = tokio::time::timeout(WAIT, self.events.recv())
                .await
                .expect("a message in time")
                .expect("stream open");
            if event.data.is_empty() {
                continue;
            }
            self.model.apply(&event.data);
            self.messages += 1;
            if done(&event) {
                return event;
            }
        }
    }

    /// Follows the stream up to where a page opened now stands, and compares the lists.
    async fn agrees_with_a_fresh_page(&mut self, client: &Client) -> Regions {
        let fresh = client.open_tab().await;
        let at = broadcast(&fresh.stream_url);
        if self.seen < at {
            let last = self
                .until(|e| e.id.as_deref().is_some_and(|id| broadcast(id) >= at))
                .await;
            self.seen = broadcast(last.id.as_deref().unwrap());
        }
        assert_eq!(self.seen, at, "the page's cursor is a message's id");
        let fresh = Regions::from_page(&fresh.page, &[NOTES, JOBS]);
        for region in [NOTES, JOBS] {
            let context = format!("{region} after {} messages", self.messages);
            assert_eq!(self.model.ids(region), fresh.ids(region), "{context}");
            assert_eq!(
                self.model.elements(region),
                fresh.elements(region),
                "{context}: live messages and a fresh render agree"
            );
        }
        fresh
    }
}

/// The broadcast sequence number in a cursor, or in a stream URL that carries one.
fn broadcast(cursor: &str) -> u64 {
    let cursor = cursor.rsplit("cursor=").next().unwrap();
    cursor.split('-').nth(1).unwrap().parse().unwrap()
}

async fn notify(client: &Client, title: &str) {
    let body = json!({"type": "info", "title": title, "body": format!("about {title}")});
    let resp = client
        .post_json("/send-notification", &body.to_string())
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.body);
}

async fn act(client: &Client, id: i64, what: &str) {
    let resp = client.post_json(&format!("/jobs/{id}/{what}"), "").await;
    assert_eq!(resp.status, StatusCode::OK, "{what} {id}: {}", resp.body);
}

/// Waits until every job in `ids` is in `state`.
async fn settled(client: &Client, ids: &[i64], state: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    for id in ids {
        loop {
            let job = client.get(&format!("/jobs/{id}")).await.json();
            if job["state"] == state {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "job {id}: {job}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn quick(fail: bool) -> Value {
    if fail {
        json!({"total": 2, "interval_ms": 5, "fail_at": 2})
    } else {
        json!({"total": 2, "interval_ms": 5})
    }
}

fn forever() -> Value {
    json!({"total": 10_000, "interval_ms": 40})
}

/// Notifications past the 20 shown, and jobs created, started, progressing, finishing,
/// failing, cancelled (queued and running) and retried (shown and pushed out), past the 20
/// finished shown: the tab, fed only one-item messages, ends up showing what a fresh page does.
#[tokio::test]
async fn after_many_mixed_changes_the_lists_equal_a_fresh_render() {
    let app = spawn_app().await;
    let client = app.client();
    let mut tab = Tab::open(&client).await;

    for n in 0..3 {
        notify(&client, &format!("early {n}")).await;
    }
    let old_failed = create_job(&client, json!({"total": 3, "interval_ms": 5, "fail_at": 2})).await;
    settled(&client, &[old_failed], "failed").await;
    tab.agrees_with_a_fresh_page(&client).await;
    // Holds one of the two slots until cancelled; its progress keeps coming meanwhile.
    let long = create_job(&client, forever()).await;
    let mut finished = Vec::new();
    for k in 0..22 {
        finished.push(create_job(&client, quick(k % 5 == 0)).await);
        notify(&client, &format!("note {k}")).await;
        if k % 4 == 0 {
            tab.agrees_with_a_fresh_page(&client).await;
        }
    }
    for (k, id) in finished.iter().enumerate() {
        let state = if k % 5 == 0 { "failed" } else { "done" };
        settled(&client, &[*id], state).await;
    }
    tab.agrees_with_a_fresh_page(&client).await;

    // Pushed out of the list: back in as it runs again, then out once done.
    act(&client, old_failed, "retry").await;
    tab.agrees_with_a_fresh_page(&client).await;
    settled(&client, &[old_failed], "done").await;
    tab.agrees_with_a_fresh_page(&client).await;
    // Shown: stays, and the newest finished job past the 20 comes back until it is done.
    let shown_failed = finished[10];
    act(&client, shown_failed, "retry").await;
    tab.agrees_with_a_fresh_page(&client).await;
    settled(&client, &[shown_failed], "done").await;
    tab.agrees_with_a_fresh_page(&client).await;
    // Cancelled while running and while queued: the newest finished, so shown.
    let running = create_job(&client, forever()).await;
    settled(&client, &[running], "running").await;
    let queued = create_job(&client, forever()).await;
    act(&client, queued, "cancel").await;
    tab.agrees_with_a_fresh_page(&client).await;
    act(&client, running, "cancel").await;
    // The oldest running job finishes past the 20 finished shown: it leaves.
    act(&client, long, "cancel").await;
    notify(&client, "last").await;
    let fresh = tab.agrees_with_a_fresh_page(&client).await;
    assert!(tab.messages >= 50, "{} messages", tab.messages);
    assert_eq!(fresh.ids(NOTES).len(), 20);
    assert_eq!(
        fresh.ids(JOBS).len(),
        20,
        "no job runs now: the 20 finished"
    );

    let whole: Vec<_> = tab
        .model
        .swaps
        .iter()
        .filter(|(target, swap)| [NOTES, JOBS].contains(&target.as_str()) && swap == "innerHTML")
        .collect();
    assert!(whole.is_empty(), "a list was re-sent whole: {whole:?}");
    let missed: Vec<_> = tab
        .model
        .missed
        .iter()
        .filter(|target| !["status", "presence", "toasts"].contains(&target.as_str()))
        .collect();
    assert!(missed.is_empty(), "partials that found nothing: {missed:?}");
    let kinds: BTreeSet<&str> = tab
        .model
        .swaps
        .iter()
        .map(|(_, swap)| swap.as_str())
        .collect();
    for kind in ["afterbegin", "afterend", "delete", "outerHTML", "innerHTML"] {
        assert!(kinds.contains(kind), "no {kind} in {:?}", tab.model.swaps);
    }

    // The tab, back with a cursor that means nothing, is resynced to the same lists.
    let mut resync = client
        .stream_with(&tab.stream_url, &[("last-event-id", "not-a-cursor")])
        .await;
    let mut resynced = Regions::from_page(&tab.page, &[NOTES, JOBS]);
    resynced.apply(&resync.next_data().await.data);
    for region in [NOTES, JOBS] {
        assert_eq!(
            resynced.elements(region),
            fresh.elements(region),
            "{region}"
        );
    }
}

/// Changes made at once (on PostgreSQL by two instances, each running jobs): every message is
/// the difference from the list the message before it left, so no change may read the list
/// while another is changing it (`store::ListStore`).
#[tokio::test]
async fn changes_made_at_once_add_up_to_a_fresh_render() {
    let app = spawn_app().await;
    let writers = Writers::new(&app).await;
    let client = app.client();
    let mut tab = Tab::open(&client).await;
    for n in 0..20 {
        notify(&client, &format!("before {n}")).await;
    }

    let notes: Vec<_> = (0..30)
        .map(|n| {
            let writer = writers.nth(n);
            tokio::spawn(async move { notify(&writer, &format!("at once {n}")).await })
        })
        .collect();
    let jobs: Vec<_> = (0..24)
        .map(|n| {
            let writer = writers.nth(n);
            tokio::spawn(async move { (n, create_job(&writer, quick(n % 3 == 0)).await) })
        })
        .collect();
    for note in notes {
        note.await.unwrap();
    }
    for job in jobs {
        let (n, id) = job.await.unwrap();
        let state = if n % 3 == 0 { "failed" } else { "done" };
        settled(&client, &[id], state).await;
    }

    let fresh = tab.agrees_with_a_fresh_page(&client).await;
    assert_eq!(fresh.ids(NOTES).len(), 20);
    assert_eq!(fresh.ids(JOBS).len(), 20);
}

/// What one change costs on the wire to every tab (`cargo test --test lists message_sizes --
/// --nocapture` prints it): a notification with a 200-character body when the recent list is
/// full of such, and a job's state change with 20 finished jobs listed.
#[tokio::test]
async fn message_sizes() {
    let app = spawn_app().await;
    let client = app.client();
    let tab = client.open_tab().await;
    let mut stream = client.stream(&tab.stream_url).await;
    let body = "x".repeat(200);
    for n in 0..21 {
        let note = json!({"type": "info", "title": format!("Deploy {n}"), "body": body});
        let resp = client
            .post_json("/send-notification", &note.to_string())
            .await;
        assert_eq!(resp.status, StatusCode::CREATED);
    }
    let note = stream.until("Deploy 20<").await;
    let note = (note.data.len(), stream.last_frame.len());

    let mut finished = Vec::new();
    for _ in 0..20 {
        finished.push(create_job(&client, quick(false)).await);
    }
    settled(&client, &finished, "done").await;
    let running = create_job(&client, forever()).await;
    settled(&client, &[running], "running").await;
    act(&client, running, "cancel").await;
    let cancelled = format!("id=\"job-{running}\" class=\"job job-cancelled\"");
    let job = stream.until(&cancelled).await;
    let job = (job.data.len(), stream.last_frame.len());

    println!("notification, 200-character body, list full: {note:?} bytes (data, frame)");
    println!("job cancelled, 20 finished listed: {job:?} bytes (data, frame)");
    assert!(note.1 < 1_200, "one entry, not the list: {note:?}");
    assert!(job.1 < 1_500, "one card, not the list: {job:?}");
}
