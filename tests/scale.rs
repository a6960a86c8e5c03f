//! Several instances on one PostgreSQL database, as behind a load balancer: a write on any
//! instance reaches the tabs on every other, a tab moving between instances resumes exactly
//! where it was (a JSON stream too, from the events table), an upload to one streams to the
//! tab on another, a lost `LISTEN` connection is caught up, concurrent publishers on two
//! instances are seen everywhere in one order, and two instances racing on one offer id or tab
//! id get what one instance gives.

mod common;

use std::time::Duration;

use common::{
    Client, TestApp, board_messages, board_texts, pg, sample, spawn_postgres_with, tab_following,
};
use hyper::{Method, StatusCode};

const DATA: &str = include_str!("../data.csv");

async fn cluster(instances: usize) -> Vec<TestApp> {
    let first = spawn_postgres_with(|_| {}).await;
    let mut apps = Vec::new();
    for _ in 1..instances {
        apps.push(first.another().await);
    }
    apps.insert(0, first);
    apps
}

#[tokio::test]
async fn a_write_on_one_instance_reaches_the_tabs_on_every_other_once_and_in_order() {
    let apps = cluster(3).await;
    let mut streams = Vec::new();
    for app in &apps {
        let browser = app.client();
        let tab = browser.open_tab().await;
        streams.push(browser.stream(&tab.stream_url).await);
    }
    // Written on all three, interleaved: every tab gets all of them in one order.
    for i in 0..9 {
        let app = &apps[i % 3];
        let sent = app.client().get(&format!("/send?message=m{i}")).await;
        assert_eq!(sent.status, StatusCode::OK);
    }
    let mut orders = Vec::new();
    for stream in &mut streams {
        orders.push(board_texts(stream, 9).await);
        stream.expect_quiet(Duration::from_millis(300)).await;
    }
    let expected: Vec<String> = (0..9).map(|i| format!("m{i}")).collect();
    assert!(orders.iter().all(|o| *o == expected), "{orders:?}");

    // A notification through the form on the third reaches the first.
    let note = r#"{"type":"info","title":"Across","body":"instances"}"#;
    let sent = apps[2].client().post_json("/send-notification", note).await;
    assert_eq!(sent.status, StatusCode::CREATED);
    streams[0].until("Across").await;
    // A page rendered by any instance shows the same state.
    for app in &apps {
        let page = app.client().open_tab().await.page;
        assert!(page.contains("m8") && page.contains("Across"), "{page}");
    }
}

/// A message counts as published on the instance that stored it, once over the cluster, and as
/// applied on every instance; its bytes are delivered where its tabs are.
#[tokio::test]
async fn metrics_count_a_message_where_it_was_published_and_where_it_was_delivered() {
    let apps = cluster(2).await;
    let browser = apps[1].client();
    let tab = browser.open_tab().await;
    let mut stream = browser.stream(&tab.stream_url).await;
    for text in ["from-a", "from-a-again"] {
        let sent = apps[0].client().get(&format!("/send?message={text}")).await;
        assert_eq!(sent.status, StatusCode::OK);
    }
    assert_eq!(
        board_texts(&mut stream, 2).await,
        ["from-a", "from-a-again"]
    );
    // The follower of the first instance may still be reading; the second has read both.
    let deadline = tokio::time::Instant::now() + common::WAIT;
    let (writer, reader) = loop {
        let writer = apps[0].client().get("/metrics").await.body;
        let reader = apps[1].client().get("/metrics").await.body;
        if sample(&writer, "herald_messages_applied_total") == Some(2.0) {
            break (writer, reader);
        }
        assert!(tokio::time::Instant::now() < deadline, "{writer}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let count = |text: &str, series: &str| sample(text, series).unwrap();
    assert_eq!(count(&writer, "herald_messages_published_total"), 2.0);
    assert_eq!(count(&reader, "herald_messages_published_total"), 0.0);
    assert_eq!(count(&reader, "herald_messages_applied_total"), 2.0);
    assert_eq!(count(&writer, "herald_delivered_bytes_total"), 0.0);
    assert!(
        count(&reader, "herald_delivered_bytes_total") >= stream.raw.len() as f64,
        "{reader}"
    );
}

#[tokio::test]
async fn concurrent_publishers_on_two_instances_reach_every_tab_in_one_order_once() {
    const PUBLISHERS: usize = 6;
    const EACH: usize = 15;
    let apps = cluster(2).await;
    let mut streams = Vec::new();
    for app in apps.iter().chain(&apps) {
        let browser = app.client();
        let tab = browser.open_tab().await;
        streams.push(browser.stream(&tab.stream_url).await);
    }
    // Publishers on both instances at once, so each instance's changes share transactions and
    // the two instances' transactions interleave.
    let mut publishers = tokio::task::JoinSet::new();
    for p in 0..PUBLISHERS {
        let client = apps[p % 2].client();
        publishers.spawn(async move {
            for i in 0..EACH {
                let sent = client.get(&format!("/send?message=p{p}m{i}")).await;
                assert_eq!(sent.status, StatusCode::OK);
            }
        });
    }
    // Tabs opened meanwhile: each page's state and its stream's cursor come from one snapshot.
    let mut joined = Vec::new();
    for t in 0..12 {
        let browser = apps[t % 2].client();
        let tab = browser.open_tab().await;
        joined.push((shown(&tab.page), browser.stream(&tab.stream_url).await));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    while let Some(done) = publishers.join_next().await {
        done.expect("a publisher");
    }
    let total = PUBLISHERS * EACH;
    let mut orders = Vec::new();
    for stream in &mut streams {
        let messages = board_messages(stream, total).await;
        stream.expect_quiet(Duration::from_millis(300)).await;
        let ids: Vec<u64> = messages.iter().map(|(id, _)| cursor(id)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        orders.push(
            messages
                .into_iter()
                .map(|(_, text)| text)
                .collect::<Vec<_>>(),
        );
    }
    assert!(orders.iter().all(|o| *o == orders[0]), "{orders:?}");
    let texts = &orders[0];
    // Exactly once each, and each publisher's in the order it sent them.
    for p in 0..PUBLISHERS {
        let own: Vec<String> = texts
            .iter()
            .filter(|t| t.starts_with(&format!("p{p}m")))
            .cloned()
            .collect();
        let sent: Vec<String> = (0..EACH).map(|i| format!("p{p}m{i}")).collect();
        assert_eq!(own, sent);
    }
    // The state changed in the log's order: a tab opened at any point showed the message its
    // stream's cursor follows, and got exactly the ones after it; both instances show the last.
    for (page, mut stream) in joined {
        let after = page
            .as_ref()
            .map_or(0, |text| 1 + texts.iter().position(|t| t == text).unwrap());
        let rest = board_texts(&mut stream, total - after).await;
        assert_eq!(rest, texts[after..], "after {page:?}");
    }
    for app in &apps {
        let page = app.client().open_tab().await.page;
        assert_eq!(shown(&page).as_ref(), texts.last());
    }
}

/// The board message a page shows.
fn shown(page: &str) -> Option<String> {
    let text = page.split("<blockquote class=\"board-text\">").nth(1)?;
    Some(text.split('<').next()?.to_string())
}

/// The broadcast position an event id carries (`epoch-broadcast-private`).
fn cursor(id: &str) -> u64 {
    let broadcast = id.split('-').nth(1);
    broadcast
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no cursor in {id:?}"))
}

#[tokio::test]
async fn a_tab_moving_to_another_instance_gets_exactly_what_it_missed() {
    let apps = cluster(2).await;
    let (a, b) = (&apps[0], &apps[1]);
    let on_a = a.client();
    let tab = on_a.open_tab().await;
    let mut stream = on_a.stream(&tab.stream_url).await;
    on_a.get("/send?message=one").await;
    let (last_id, _) = board_messages(&mut stream, 1).await.remove(0);
    drop(stream);
    // Published while the tab is away, on both instances.
    on_a.get("/send?message=two").await;
    b.client().get("/send?message=three").await;

    // The load balancer sends the reconnect to B; same browser, same cookie, same URL.
    let on_b = on_a.at(b.addr);
    let mut moved = on_b
        .stream_with(&tab.stream_url, &[("last-event-id", &last_id)])
        .await;
    assert_eq!(board_texts(&mut moved, 2).await, ["two", "three"]);
    moved.expect_quiet(Duration::from_millis(300)).await;
    on_a.get("/send?message=four").await;
    assert_eq!(board_texts(&mut moved, 1).await, ["four"]);

    // Its page's cursor is good on B as well: nothing in between is lost.
    let fresh = on_a.open_tab().await;
    a.client().get("/send?message=five").await;
    let mut from_page = on_b.stream(&fresh.stream_url).await;
    assert_eq!(board_texts(&mut from_page, 1).await, ["five"]);
}

/// The board messages of a JSON stream (`board.message` events), with their ids, until `n`.
async fn json_board_messages(stream: &mut common::Sse, n: usize) -> Vec<(String, String)> {
    let mut got = Vec::new();
    while got.len() < n {
        let event = stream.next().await.expect("stream still open");
        match event.event.as_deref() {
            Some("board.message") => {
                let data: serde_json::Value = serde_json::from_str(&event.data).unwrap();
                let text = data["message"].as_str().unwrap().to_string();
                got.push((event.id.expect("an id"), text));
            }
            Some(other) => panic!("{other} instead of the board messages: {}", event.data),
            None => {}
        }
    }
    got
}

#[tokio::test]
async fn a_json_stream_moving_to_another_instance_replays_what_memory_no_longer_holds() {
    let apps = cluster(2).await;
    let (a, b) = (&apps[0], &apps[1]);
    let on_a = a.client();
    let mut stream = on_a.stream("/api/stream?topics=board").await;
    // Without a cursor a stream starts with the state.
    while stream.next().await.expect("open").event.as_deref() != Some("resync") {}
    on_a.get("/send?message=before").await;
    let (last_id, _) = json_board_messages(&mut stream, 1).await.remove(0);
    drop(stream);
    // More than the 64 messages each instance keeps in memory (the test configuration): only
    // the events table still holds the first of them.
    let missed: Vec<String> = (0..70).map(|n| format!("m{n}")).collect();
    for (n, text) in missed.iter().enumerate() {
        let writer = if n % 2 == 0 { a } else { b };
        writer.client().get(&format!("/send?message={text}")).await;
    }

    let on_b = on_a.at(b.addr);
    let mut moved = on_b
        .stream_with("/api/stream?topics=board", &[("last-event-id", &last_id)])
        .await;
    let replayed = json_board_messages(&mut moved, missed.len()).await;
    let texts: Vec<&str> = replayed.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, missed, "replayed in order, no resync");
    let ids: Vec<u64> = replayed.iter().map(|(id, _)| cursor(id)).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    moved.expect_quiet(Duration::from_millis(300)).await;
    a.client().get("/send?message=live").await;
    let live = json_board_messages(&mut moved, 1).await;
    assert_eq!(live[0].1, "live");
}

#[tokio::test]
async fn an_upload_to_one_instance_streams_to_the_tab_on_another() {
    let apps = cluster(2).await;
    let (a, b) = (&apps[0], &apps[1]);
    let on_b = b.client();
    let tab = on_b.open_tab().await;
    let mut stream = on_b.stream(&tab.stream_url).await;
    stream.next_data().await;

    let boundary = "herald-scale-boundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"data.csv\"\r\n\
         Content-Type: text/csv\r\n\r\n{DATA}\r\n--{boundary}--\r\n"
    );
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let upload = on_b
        .at(a.addr)
        .request(
            Method::POST,
            &format!("/upload/{}", tab.client),
            &[("content-type", &content_type)],
            body,
        )
        .await;
    assert_eq!(upload.status, StatusCode::ACCEPTED, "{}", upload.body);
    let done = stream.until("rows imported").await;
    assert!(
        done.data.contains("100 rows imported, 0 rejected"),
        "{}",
        done.data
    );
    let rows = stream
        .raw
        .matches("hx-target=\"#import-rows\" hx-swap=\"beforeend\"")
        .count();
    assert_eq!(rows, 100, "every live row once");
    // Another browser's tab on A sees none of it.
    let other = a.client();
    let theirs = other.open_tab().await;
    assert!(!theirs.page.contains("rows imported"));
}

#[tokio::test]
async fn a_lost_listening_connection_is_caught_up_with_nothing_lost_or_repeated() {
    let apps = cluster(2).await;
    let (a, b) = (&apps[0], &apps[1]);
    let (writer, mut stream) = tab_following(a, b).await;

    let killed = pg::sql(
        &a.database_url(),
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'herald-follower'",
    )
    .await;
    assert_eq!(killed, ["2"], "both instances' followers");
    for i in 0..5 {
        writer.get(&format!("/send?message=during{i}")).await;
    }
    assert_eq!(
        board_texts(&mut stream, 5).await,
        ["during0", "during1", "during2", "during3", "during4"]
    );
    stream.expect_quiet(Duration::from_millis(500)).await;
    let followers = pg::sql(
        &a.database_url(),
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'herald-follower'",
    )
    .await;
    assert_eq!(followers, ["2"], "both listen again");
}

/// Sends `request` to both instances at once; the two statuses, sorted.
async fn race<F, Fut>(apps: &[TestApp], request: F) -> Vec<StatusCode>
where
    F: Fn(Client) -> Fut,
    Fut: std::future::Future<Output = common::Response>,
{
    let (one, two) = tokio::join!(request(apps[0].client()), request(apps[1].client()));
    let mut statuses = vec![one.status, two.status];
    statuses.sort();
    statuses
}

#[tokio::test]
async fn two_instances_racing_get_what_one_instance_gives() {
    let apps = cluster(2).await;
    for id in 1..=10 {
        let body = format!(r#"{{"id":{id},"description":"raced","value":1}}"#);
        let statuses = race(&apps, |c| {
            let body = body.clone();
            async move { c.post_json("/offers", &body).await }
        })
        .await;
        assert_eq!(
            statuses,
            [StatusCode::CREATED, StatusCode::CONFLICT],
            "offer {id}"
        );
        let statuses = race(&apps, |c| async move {
            c.request(Method::DELETE, &format!("/offers/{id}"), &[], "")
                .await
        })
        .await;
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::NOT_FOUND],
            "offer {id}"
        );
    }
    let job = apps[0]
        .client()
        .post_json("/jobs", r#"{"total":1000,"interval_ms":1000}"#)
        .await
        .json();
    let id = job["id"].as_i64().unwrap();
    let statuses = race(&apps, |c| async move {
        c.post_json(&format!("/jobs/{id}/cancel"), "{}").await
    })
    .await;
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);

    // Two browsers (each request a new session) claiming one fresh tab id, one on each
    // instance: one owns it.
    let tab = uuid::Uuid::new_v4();
    let statuses = race(&apps, |c| async move {
        c.post_json(&format!("/upload/{tab}/cancel"), "{}").await
    })
    .await;
    assert_eq!(
        statuses,
        [StatusCode::NOT_FOUND, StatusCode::CONFLICT],
        "one claims it (no import: 409), the other does not own it (404)"
    );
}

/// Follows `/jobs/{id}/events` on `client` to its end: every `moved` seen, and the end.
async fn job_to_the_end(client: &Client, id: i64) -> (Vec<u64>, serde_json::Value) {
    let mut events = client.stream(&format!("/jobs/{id}/events")).await;
    let mut moved = Vec::new();
    loop {
        let e = events.next_data().await;
        let data: serde_json::Value = serde_json::from_str(&e.data).unwrap();
        moved.push(data["moved"].as_u64().unwrap());
        if e.event.as_deref() == Some("end") {
            return (moved, data);
        }
    }
}

async fn wait_for_progress(client: &Client, id: i64, at_least: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let job = client.get(&format!("/jobs/{id}")).await.json();
        let moved = job["moved"].as_u64().unwrap();
        if moved >= at_least {
            assert_eq!(job["state"], "running");
            return moved;
        }
        assert!(tokio::time::Instant::now() < deadline, "no progress: {job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_job_whose_instance_stops_renewing_is_finished_by_another() {
    let lease = |c: &mut herald::config::Config| c.job_lease = Duration::from_secs(1);
    let a = spawn_postgres_with(lease).await;
    let client = a.client();
    let job = client
        .post_json("/jobs", r#"{"total":40,"interval_ms":40}"#)
        .await
        .json();
    let id = job["id"].as_i64().unwrap();
    let reached = wait_for_progress(&client, id, 5).await;
    let b = a.another().await;
    let watcher = b.client();
    let tab = watcher.open_tab().await;
    let mut page = watcher.stream(&tab.stream_url).await;

    // A's tasks stop as if it died: no more steps, no renewal, its lease left to lapse.
    a.state.hub.close();
    let (moved, end) = job_to_the_end(&watcher, id).await;
    assert_eq!(end["state"], "done", "{end}");
    assert_eq!(end["moved"], 40);
    assert!(
        moved[0] >= reached,
        "resumed after its stored step: {moved:?}"
    );
    assert!(moved.windows(2).all(|w| w[0] <= w[1]), "{moved:?}");
    page.until(&format!("job-{id}")).await;
    drop(a);
}

/// A real Herald process on `url`, listening on a free port.
struct Process {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

impl Process {
    fn start(url: &str) -> Process {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .env_clear()
            .env("HERALD_ADDR", addr.to_string())
            .env("HERALD_DATABASE_URL", url)
            .env("HERALD_JOB_LEASE_SECS", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("herald starts");
        Process { child, addr }
    }

    async fn ready(&self) {
        let deadline = tokio::time::Instant::now() + common::WAIT;
        while tokio::net::TcpStream::connect(self.addr).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "herald never listened"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_job_whose_instance_is_killed_is_finished_by_another() {
    let url = pg::fresh_database().await;
    let mut doomed = Process::start(&url);
    doomed.ready().await;
    let client = Client::new(doomed.addr);
    let job = client
        .post_json("/jobs", r#"{"total":40,"interval_ms":40}"#)
        .await
        .json();
    let id = job["id"].as_i64().unwrap();
    let reached = wait_for_progress(&client, id, 5).await;

    let survivor = spawn_postgres_with(|c| {
        c.database_url = Some(url.clone().into());
        c.job_lease = Duration::from_secs(1);
    })
    .await;
    doomed.child.kill().unwrap(); // SIGKILL: no goodbye, its lease simply stops being renewed
    doomed.child.wait().unwrap();
    let (moved, end) = job_to_the_end(&survivor.client(), id).await;
    assert_eq!(end["state"], "done", "{end}");
    assert_eq!(end["moved"], 40);
    assert!(
        moved[0] >= reached,
        "resumed after its stored step: {moved:?}"
    );
    assert!(moved.windows(2).all(|w| w[0] <= w[1]), "{moved:?}");
}

#[tokio::test]
async fn presence_counts_the_tabs_on_every_instance() {
    let apps = cluster(2).await;
    let tabs = |n: &str| format!("hx-target=\"#presence\" hx-swap=\"innerHTML\">{n}<");
    let on_a = apps[0].client();
    let mut a = on_a.stream(&on_a.open_tab().await.stream_url).await;
    let on_b = apps[1].client();
    let mut b = on_b.stream(&on_b.open_tab().await.stream_url).await;
    let mut b2 = on_b.stream(&on_b.open_tab().await.stream_url).await;
    a.until(&tabs("3 tabs open")).await;
    b.until(&tabs("3 tabs open")).await;
    drop(b2.until(&tabs("3 tabs open")).await);
    drop(b2);
    a.until(&tabs("2 tabs open")).await;
    b.until(&tabs("2 tabs open")).await;
}
