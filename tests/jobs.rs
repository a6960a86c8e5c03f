//! Background jobs over real HTTP: the page's stream, the JSON API and event streams, cancel,
//! fail and retry, a restart mid-job, and bad input.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::regions::region_html;
use common::{Client, Sse, WAIT, create_job, spawn_app, spawn_app_with};
use herald::hub::list_html;
use herald::jobs::input::Typed;
use herald::jobs::{Job, JobCard, JobForm, JobProgress, JobState, Limits, live_cards};
use herald::store::call;
use hyper::StatusCode;
use serde_json::{Value, json};

async fn job(client: &Client, id: i64) -> Value {
    let resp = client.get(&format!("/jobs/{id}")).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    resp.json()
}

/// Every `(job id, moved, total)` a message shows, from cards, lists and progress partials.
fn bars(data: &str) -> Vec<(i64, u32, u32)> {
    data.match_indices("<progress ")
        .map(|(at, _)| {
            let tag = &data[at..at + data[at..].find('>').unwrap()];
            let attr = |name: &str| {
                let start = tag.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                tag[start..start + tag[start..].find('"').unwrap()].to_string()
            };
            let label = attr("aria-label");
            let id = label
                .trim_start_matches("Job #")
                .trim_end_matches(" progress");
            (
                id.parse().unwrap(),
                attr("value").parse().unwrap(),
                attr("max").parse().unwrap(),
            )
        })
        .collect()
}

fn card_state(data: &str, id: i64) -> Option<&str> {
    let prefix = format!("id=\"job-{id}\" class=\"job job-");
    let start = data.find(&prefix)? + prefix.len();
    Some(&data[start..start + data[start..].find('"')?])
}

/// What a tab saw of each job: every progress value in order, and every state in order.
#[derive(Default)]
struct Seen {
    moved: HashMap<i64, Vec<u32>>,
    states: HashMap<i64, Vec<String>>,
    /// Every state change of every job, in the order the tab saw them.
    transitions: Vec<(i64, String)>,
    /// Messages that carried a progress partial (not a whole card) per job.
    progress_messages: HashMap<i64, usize>,
}

impl Seen {
    fn record(&mut self, data: &str, ids: &[i64]) {
        for (id, moved, _) in bars(data) {
            self.moved.entry(id).or_default().push(moved);
        }
        for id in ids {
            if let Some(state) = card_state(data, *id) {
                let states = self.states.entry(*id).or_default();
                if states.last().map(String::as_str) != Some(state) {
                    states.push(state.to_string());
                    self.transitions.push((*id, state.to_string()));
                }
            }
            if data.contains(&format!("hx-target=\"#job-{id}-progress\"")) {
                *self.progress_messages.entry(*id).or_default() += 1;
            }
        }
    }

    fn when(&self, id: i64, state: &str) -> usize {
        self.transitions
            .iter()
            .position(|(i, s)| *i == id && s == state)
            .unwrap_or_else(|| panic!("job {id} never {state}: {:?}", self.transitions))
    }

    fn last_state(&self, id: i64) -> Option<&str> {
        self.states.get(&id)?.last().map(String::as_str)
    }

    /// Reads the tab's stream until every job in `ids` shows `state`.
    async fn until_all(&mut self, stream: &mut Sse, ids: &[i64], state: &str) {
        while !ids.iter().all(|id| self.last_state(*id) == Some(state)) {
            let event = stream.next_data().await;
            self.record(&event.data, ids);
        }
    }
}

fn assert_monotonic(values: &[u32]) {
    assert!(
        values.windows(2).all(|w| w[0] <= w[1]),
        "progress went backwards: {values:?}"
    );
}

#[tokio::test]
async fn two_jobs_progress_independently_to_100_percent() {
    let app = spawn_app().await;
    let client = app.client();
    let tab = client.open_tab().await;
    let mut stream = client.stream(&tab.stream_url).await;

    let a = create_job(&client, json!({"total": 30, "interval_ms": 10})).await;
    let b = create_job(&client, json!({"total": 17, "interval_ms": 15})).await;
    let mut seen = Seen::default();
    seen.until_all(&mut stream, &[a, b], "done").await;

    assert!(
        seen.when(b, "running") < seen.when(a, "done"),
        "both ran at once: {:?}",
        seen.transitions
    );
    for (id, total) in [(a, 30), (b, 17)] {
        let moved = &seen.moved[&id];
        assert_monotonic(moved);
        assert_eq!(moved.first(), Some(&0));
        assert_eq!(moved.last(), Some(&total));
        assert!(moved.iter().any(|m| 0 < *m && *m < total), "{moved:?}");
        assert_eq!(seen.states[&id], ["queued", "running", "done"]);
        let json = job(&client, id).await;
        assert_eq!(
            (json["moved"].as_u64(), json["state"].as_str()),
            (Some(total.into()), Some("done"))
        );
    }
    assert!(
        seen.moved[&a].iter().all(|m| *m <= 30) && seen.moved[&b].iter().all(|m| *m <= 17),
        "each bar counts its own steps"
    );
    let page = client.open_tab().await.page;
    assert!(page.contains("30 / 30 · 100.00%") && page.contains("17 / 17 · 100.00%"));
}

#[tokio::test]
async fn jobs_beyond_the_concurrency_limit_wait_in_line() {
    let app = spawn_app_with(|c| c.job_concurrency = 1).await;
    let client = app.client();
    let tab = client.open_tab().await;
    let mut stream = client.stream(&tab.stream_url).await;

    let a = create_job(&client, json!({"total": 20, "interval_ms": 20})).await;
    let b = create_job(&client, json!({"total": 5, "interval_ms": 5})).await;
    let mut seen = Seen::default();
    seen.until_all(&mut stream, &[a], "running").await;
    assert_eq!(job(&client, b).await["state"], "queued");
    seen.until_all(&mut stream, &[a, b], "done").await;
    assert_eq!(seen.states[&b], ["queued", "running", "done"]);
    assert!(
        seen.when(a, "done") < seen.when(b, "running"),
        "one at a time: {:?}",
        seen.transitions
    );
}

#[tokio::test]
async fn fast_steps_publish_at_most_about_ten_times_a_second() {
    let app = spawn_app().await;
    let client = app.client();
    let tab = client.open_tab().await;
    let mut stream = client.stream(&tab.stream_url).await;

    let started = tokio::time::Instant::now();
    let id = create_job(&client, json!({"total": 500, "interval_ms": 1})).await;
    let mut seen = Seen::default();
    seen.until_all(&mut stream, &[id], "done").await;
    let elapsed = started.elapsed();

    let messages = seen.progress_messages.get(&id).copied().unwrap_or(0);
    let allowed = (elapsed.as_millis() / 100) as usize + 1;
    assert!(messages >= 2, "progress shown while running: {messages}");
    assert!(
        messages <= allowed,
        "{messages} progress messages in {elapsed:?} (500 steps)"
    );
    assert_monotonic(&seen.moved[&id]);
}

#[tokio::test]
async fn a_job_can_be_cancelled_while_running_or_queued_but_not_after() {
    let app = spawn_app_with(|c| c.job_concurrency = 1).await;
    let client = app.client();
    let tab = client.open_tab().await;
    let mut stream = client.stream(&tab.stream_url).await;

    let running = create_job(&client, json!({"total": 1000, "interval_ms": 5})).await;
    let queued = create_job(&client, json!({"total": 5, "interval_ms": 5})).await;
    let mut seen = Seen::default();
    while seen
        .moved
        .get(&running)
        .is_none_or(|m| m.iter().all(|v| *v == 0))
    {
        seen.record(&stream.next_data().await.data, &[running, queued]);
    }

    let resp = client
        .post_json(&format!("/jobs/{queued}/cancel"), "")
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert_eq!(resp.json()["state"], "cancelled");

    // The page's button gets a line for the notice under the form.
    let resp = client
        .post_form(&format!("/jobs/{running}/cancel"), &[])
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    assert!(
        resp.body.contains(&format!("Job #{running} cancelled.")),
        "{}",
        resp.body
    );
    seen.until_all(&mut stream, &[running, queued], "cancelled")
        .await;
    assert_eq!(seen.states[&queued], ["queued", "cancelled"], "never ran");

    let stopped_at = job(&client, running).await["moved"].as_u64().unwrap();
    assert!(0 < stopped_at && stopped_at < 1000, "{stopped_at}");
    // The job's own stream ends at once with where it stopped.
    let mut events = client.stream(&format!("/jobs/{running}/events")).await;
    let end = events.next().await.unwrap();
    assert_eq!(end.event.as_deref(), Some("end"));
    let end: Value = serde_json::from_str(&end.data).unwrap();
    assert_eq!(end["state"], "cancelled");
    assert_eq!(end["moved"].as_u64(), Some(stopped_at));
    assert!(events.next().await.is_none(), "the stream ends");

    let again = client
        .post_json(&format!("/jobs/{running}/cancel"), "")
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(
        again.json()["error"]
            .as_str()
            .unwrap()
            .contains("is cancelled")
    );
    let form = client
        .post_form(&format!("/jobs/{running}/cancel"), &[])
        .await;
    assert_eq!(form.status, StatusCode::CONFLICT);
    assert!(form.body.contains("class=\"form-error\""), "{}", form.body);
    assert_eq!(
        job(&client, running).await["moved"].as_u64(),
        Some(stopped_at),
        "a cancelled job stays where it stopped"
    );
}

#[tokio::test]
async fn a_failed_job_shows_its_error_and_a_retry_resumes_after_the_last_step() {
    let app = spawn_app().await;
    let client = app.client();
    let tab = client.open_tab().await;
    let mut stream = client.stream(&tab.stream_url).await;

    let id = create_job(
        &client,
        json!({"total": 12, "interval_ms": 5, "fail_at": 7}),
    )
    .await;
    let mut seen = Seen::default();
    seen.until_all(&mut stream, &[id], "failed").await;
    let failed = job(&client, id).await;
    assert_eq!(failed["moved"], 6);
    assert_eq!(failed["error"], "simulated failure at step 7");
    let page = client.open_tab().await.page;
    assert!(page.contains("simulated failure at step 7 (after step 6)"));
    assert!(page.contains("Retry from step 7"));

    let running = client.post_json(&format!("/jobs/{id}/retry"), "").await;
    assert_eq!(running.status, StatusCode::OK, "{}", running.body);
    let retried = running.json();
    assert_eq!(
        (retried["state"].as_str(), retried["moved"].as_u64()),
        (Some("queued"), Some(6))
    );
    assert_eq!(retried["fail_at"], Value::Null, "fails only once");

    let before = seen.moved[&id].len();
    seen.until_all(&mut stream, &[id], "done").await;
    let after_retry = &seen.moved[&id][before..];
    assert_eq!(after_retry.first(), Some(&6), "resumes where it failed");
    assert_eq!(after_retry.last(), Some(&12));
    assert_monotonic(&seen.moved[&id]);
    assert_eq!(
        seen.states[&id],
        ["queued", "running", "failed", "queued", "running", "done"]
    );

    let again = client.post_json(&format!("/jobs/{id}/retry"), "").await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(
        again.json()["error"],
        format!("job {id} is done; only failed jobs can be retried")
    );
}

#[tokio::test]
async fn a_restart_mid_job_resumes_from_the_last_stored_step() {
    let mut app = spawn_app().await;
    let client = app.client();
    let id = create_job(&client, json!({"total": 40, "interval_ms": 30})).await;
    let mut events = client.stream(&format!("/jobs/{id}/events")).await;
    let mut seen_before = 0;
    while seen_before < 5 {
        let e = events.next_data().await;
        seen_before = serde_json::from_str::<Value>(&e.data).unwrap()["moved"]
            .as_u64()
            .unwrap();
    }

    app.stop().await;
    assert!(
        events.next().await.is_none(),
        "job streams end with the app"
    );
    let store = app.state.store.clone();
    let stored = call(&store, move |s| s.job(id)).await.unwrap().unwrap();
    assert!(
        u64::from(stored.moved) >= seen_before,
        "progress shown was stored"
    );
    assert_eq!(stored.state, JobState::Running);
    // A stopped app's runner writes nothing more.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let later = call(&store, move |s| s.job(id)).await.unwrap().unwrap();
    assert_eq!(later, stored);

    let app = app.restart().await;
    let client = app.client();
    let resumed = job(&client, id).await;
    assert!(
        ["queued", "running"].contains(&resumed["state"].as_str().unwrap()),
        "{resumed}"
    );
    assert!(resumed["moved"].as_u64().unwrap() >= u64::from(stored.moved));
    let page = client.open_tab().await.page;
    assert!(
        page.contains(&format!("id=\"job-{id}\"")),
        "the page shows the job"
    );

    let mut events = client.stream(&format!("/jobs/{id}/events")).await;
    let mut moved = Vec::new();
    let end = loop {
        let e = events.next_data().await;
        let data: Value = serde_json::from_str(&e.data).unwrap();
        moved.push(data["moved"].as_u64().unwrap());
        if e.event.as_deref() == Some("end") {
            break data;
        }
    };
    assert!(
        moved[0] >= u64::from(stored.moved),
        "resumed, not restarted: {moved:?}"
    );
    assert_eq!(end["state"], "done");
    assert_eq!(end["moved"], 40);
}

#[tokio::test]
async fn events_stream_the_original_demo_progress() {
    let app = spawn_app().await;
    let client = app.client();
    let mut events = client.stream("/events").await;
    let start = tokio::time::Instant::now();
    for moved in 0..4 {
        let e = events.next().await.unwrap();
        assert_eq!(e.event, None);
        assert_eq!(
            e.data,
            format!(r#"{{"moved":{moved},"total":100,"percent":"{moved}.00"}}"#)
        );
    }
    assert!(
        start.elapsed() >= Duration::from_millis(280),
        "one step per 100 ms"
    );
    assert!(
        events.raw.starts_with("data: {\"moved\":0,"),
        "{}",
        events.raw
    );
}

#[tokio::test]
async fn a_jobs_event_stream_follows_it_to_its_end() {
    let app = spawn_app().await;
    let client = app.client();
    let id = create_job(&client, json!({"total": 25, "interval_ms": 8})).await;
    let mut events = client.stream(&format!("/jobs/{id}/events")).await;
    let mut moved = Vec::new();
    let end = loop {
        let e = events.next().await.expect("ends with an end message");
        if e.event.as_deref() == Some("end") {
            break serde_json::from_str::<Value>(&e.data).unwrap();
        }
        let data: Value = serde_json::from_str(&e.data).unwrap();
        let keys: Vec<&str> = data
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["moved", "percent", "total"]);
        assert_eq!(data["total"], 25);
        let m = data["moved"].as_u64().unwrap() as u32;
        assert_eq!(data["percent"], format!("{:.2}", f64::from(m) * 4.0));
        moved.push(m);
    };
    assert_monotonic(&moved);
    assert_eq!(
        end,
        json!({"moved": 25, "total": 25, "percent": "100.00", "state": "done"})
    );
    assert!(events.next().await.is_none());

    let failing = create_job(&client, json!({"total": 3, "interval_ms": 1, "fail_at": 2})).await;
    let mut events = client.stream(&format!("/jobs/{failing}/events")).await;
    let end = loop {
        let e = events.next().await.unwrap();
        if e.event.as_deref() == Some("end") {
            break serde_json::from_str::<Value>(&e.data).unwrap();
        }
    };
    assert_eq!(
        end,
        json!({"moved": 1, "total": 3, "percent": "33.33", "state": "failed",
               "error": "simulated failure at step 2"})
    );

    for path in [
        "/jobs/999/events",
        "/jobs/abc/events",
        "/jobs/999",
        "/jobs/-1/events",
    ] {
        let resp = client.get(path).await;
        assert_eq!(resp.status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            resp.json()["error"].as_str().unwrap().contains("job"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_page_form_starts_a_job_that_every_tab_sees() {
    let app = spawn_app().await;
    let (alice, bob) = (app.client(), app.client());
    let b = bob.open_tab().await;
    assert!(b.page.contains("No jobs yet"));
    assert_eq!(region_html(&b.page, "jobs-list"), "");
    let mut b_stream = bob.stream(&b.stream_url).await;

    let resp = alice
        .post_form(
            "/jobs",
            &[("total", "4"), ("interval_ms", "10"), ("fail_at", "")],
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    assert!(resp.body.contains("Job #1 queued."), "{}", resp.body);
    assert!(resp.body.contains("<form"), "the form comes back, emptied");
    let mut seen = Seen::default();
    seen.until_all(&mut b_stream, &[1], "done").await;
    assert_eq!(seen.moved[&1].last(), Some(&4));
}

#[tokio::test]
async fn bad_input_is_refused_with_a_reason_and_starts_nothing() {
    let app = spawn_app().await;
    let client = app.client();
    let cases = [
        (json!({"total": "lots"}), "total"),
        (json!({"total": 0}), "total"),
        (json!({"total": -3}), "total"),
        (json!({"total": 1_000_000_000_000u64}), "total"),
        (json!({"total": 10, "interval_ms": 0}), "interval_ms"),
        (
            json!({"total": 10, "interval_ms": 86_400_000}),
            "interval_ms",
        ),
        (json!({"total": 10, "interval_ms": "soon"}), "interval_ms"),
        (json!({"total": 10, "fail_at": 11}), "fail_at"),
    ];
    for (body, field) in cases {
        let resp = client.post_json("/jobs", &body.to_string()).await;
        assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(resp.json()["field"], field, "{body}");
        assert!(resp.json()["error"].as_str().unwrap().starts_with(field));
    }
    let broken = client.post_json("/jobs", "{\"total\": ").await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST);
    assert!(broken.json()["error"].is_string());

    let form = client
        .post_form("/jobs", &[("total", "-5"), ("interval_ms", "abc")])
        .await;
    assert_eq!(form.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        form.body.contains("total must be at least 1"),
        "{}",
        form.body
    );
    assert!(
        form.body.contains("value=\"-5\""),
        "keeps the input: {}",
        form.body
    );
    assert!(form.body.contains("aria-invalid=\"true\""));

    for path in ["/jobs/1/cancel", "/jobs/1/retry", "/jobs/x/cancel"] {
        let resp = client.post_json(path, "").await;
        assert_eq!(resp.status, StatusCode::NOT_FOUND, "{path}");
    }
    let page = client.open_tab().await.page;
    assert!(page.contains("No jobs yet"), "nothing half-written");
    assert_eq!(region_html(&page, "jobs-list"), "", "nothing half-written");

    let id = create_job(&client, json!({"total": 1000, "interval_ms": 50})).await;
    let resp = client.post_json(&format!("/jobs/{id}/retry"), "").await;
    assert_eq!(resp.status, StatusCode::CONFLICT);
    assert!(
        resp.json()["error"]
            .as_str()
            .unwrap()
            .contains("only failed jobs")
    );
}

#[tokio::test]
async fn at_most_a_hundred_jobs_wait_or_run_at_once() {
    let app = spawn_app_with(|c| c.job_concurrency = 1).await;
    let client = app.client();
    let slow = json!({"total": 10_000, "interval_ms": 10_000});
    let mut ids = Vec::new();
    for _ in 0..100 {
        ids.push(create_job(&client, slow.clone()).await);
    }
    let full = client.post_json("/jobs", &slow.to_string()).await;
    assert_eq!(full.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(full.json()["error"].as_str().unwrap().contains("100 jobs"));
    let resp = client
        .post_json(&format!("/jobs/{}/cancel", ids[50]), "")
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    create_job(&client, slow).await;
}

#[tokio::test]
async fn a_waiting_jobs_stream_is_kept_alive() {
    let app = spawn_app_with(|c| {
        c.job_concurrency = 1;
        c.hub.heartbeat = Duration::from_millis(200);
    })
    .await;
    let client = app.client();
    create_job(&client, json!({"total": 1000, "interval_ms": 100})).await;
    let waiting = create_job(&client, json!({"total": 5, "interval_ms": 5})).await;
    let mut events = client.stream(&format!("/jobs/{waiting}/events")).await;
    let first = events.next().await.unwrap();
    assert_eq!(first.data, r#"{"moved":0,"total":5,"percent":"0.00"}"#);
    let next = events.next().await.unwrap();
    assert!(next.comment && next.data.is_empty(), "{next:?}");
}

#[tokio::test]
async fn the_job_runner_ends_with_its_app() {
    let mut app = spawn_app().await;
    let client = app.client();
    let id = create_job(&client, json!({"total": 10_000, "interval_ms": 1})).await;
    let mut events = client.stream(&format!("/jobs/{id}/events")).await;
    events.next_data().await;
    tokio::time::timeout(WAIT, app.stop()).await.expect("stops");
    assert!(events.next().await.is_none());
}

#[tokio::test]
async fn a_progress_message_as_every_tab_receives_it() {
    let app = spawn_app().await;
    let client = app.client();
    let tab = client.open_tab().await;
    let mut stream = client.stream(&tab.stream_url).await;
    // Steps slower than the publish cadence: every step is sent, so the first one is step 1.
    let id = create_job(&client, json!({"total": 3, "interval_ms": 150})).await;
    let event = stream.until(&format!("#job-{id}-progress")).await;
    assert!(event.id.is_some());
    insta::assert_snapshot!(event.data);
}

fn sample(state: JobState, moved: u32, error: Option<&str>) -> Job {
    Job {
        id: 7,
        state,
        total: 40,
        moved,
        interval_ms: 25,
        fail_at: Some(31),
        error: error.map(str::to_string),
        runner: 1,
        lease_until: 0,
        created_at: 0,
        updated_at: 0,
    }
}

#[test]
fn job_cards_in_every_state() {
    let cards = [
        sample(JobState::Queued, 0, None),
        sample(JobState::Running, 18, None),
        sample(JobState::Done, 40, None),
        sample(JobState::Failed, 30, Some("simulated failure at step 31")),
        sample(JobState::Cancelled, 12, None),
    ];
    for job in &cards {
        insta::assert_snapshot!(
            format!("card_{}", job.state.as_str()),
            JobCard::new(job).html()
        );
    }
}

#[test]
fn progress_fragment_and_list() {
    insta::assert_snapshot!(JobProgress::new(&sample(JobState::Running, 18, None)).html());
    assert_eq!(list_html::<Job>(&[]), "", "the page says the list is empty");
}

/// The live messages of changes that move cards, in a list that shows two finished jobs.
#[test]
fn card_messages() {
    let job = |id: i64, state: JobState| Job {
        id,
        moved: match state {
            JobState::Done => 40,
            _ if id == 8 => 12,
            _ => 0,
        },
        fail_at: None,
        ..sample(state, 0, None)
    };
    let ids = |jobs: &[i64]| -> Vec<String> { jobs.iter().map(|id| format!("job-{id}")).collect() };
    let cases = [
        (
            "created: its card first",
            live_cards(
                &ids(&[6]),
                &[job(7, JobState::Queued), job(6, JobState::Done)],
                7,
            ),
        ),
        (
            "done: its card replaced, the oldest finished one gone",
            live_cards(
                &ids(&[9, 8, 7]),
                &[job(9, JobState::Done), job(8, JobState::Done)],
                9,
            ),
        ),
        (
            "retried: the finished one that comes back goes after it, then its card is replaced",
            live_cards(
                &ids(&[9, 8]),
                &[
                    job(9, JobState::Done),
                    job(8, JobState::Queued),
                    job(7, JobState::Done),
                ],
                8,
            ),
        ),
        (
            "cancelled, older than the finished ones shown: its card gone",
            live_cards(
                &ids(&[9, 8, 3]),
                &[job(9, JobState::Done), job(8, JobState::Done)],
                3,
            ),
        ),
    ];
    let shown: Vec<String> = cases
        .iter()
        .map(|(case, html)| format!("{case}:\n{html}"))
        .collect();
    insta::assert_snapshot!(shown.join("\n\n"));
}

#[test]
fn job_form_blank_started_and_failed() {
    let limits = Limits::STANDARD;
    insta::assert_snapshot!("form_blank", JobForm::blank(&limits).html());
    insta::assert_snapshot!("form_started", JobForm::started(&limits, 3).html());
    let raw: Typed =
        serde_json::from_value(json!({"total": "<b>9</b>", "interval_ms": "10"})).unwrap();
    let error = raw.validate(&limits).unwrap_err().into();
    insta::assert_snapshot!("form_failed", JobForm::failed(&limits, &raw, error).html());
}
