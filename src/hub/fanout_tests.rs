//! Parked streams: what the fan-out writes to their sockets, and when it hands them back.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uuid::Uuid;

use super::*;

/// A socket that takes `room` bytes and then blocks.
struct Wire {
    taken: Mutex<Vec<u8>>,
    room: AtomicUsize,
    writes: AtomicUsize,
}

impl Wire {
    fn new(room: usize) -> Arc<Wire> {
        Arc::new(Wire {
            taken: Mutex::new(Vec::new()),
            room: AtomicUsize::new(room),
            writes: AtomicUsize::new(0),
        })
    }

    /// Writes that took bytes.
    fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    fn text(&self) -> String {
        String::from_utf8(self.taken.lock().unwrap().clone()).unwrap()
    }
}

impl Sink for Wire {
    fn fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }

    fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        let room = self.room.load(Ordering::SeqCst);
        if room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = room.min(bytes.len());
        self.room.fetch_sub(n, Ordering::SeqCst);
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.taken.lock().unwrap().extend_from_slice(&bytes[..n]);
        Ok(n)
    }
}

struct Nothing;

impl Regions for Nothing {
    fn broadcast(&self) -> BoxFuture<'static, Vec<Region>> {
        Box::pin(async { Vec::new() })
    }
    fn private(&self, _: ClientId) -> BoxFuture<'static, Vec<Region>> {
        Box::pin(async { Vec::new() })
    }
}

fn hub_with(heartbeat: Duration) -> Hub {
    let limits = Limits {
        messages: 1024,
        bytes: 1 << 20,
    };
    Hub::new(
        HubConfig {
            history: limits,
            client_history: limits,
            heartbeat,
            retry: Duration::from_millis(1500),
            client_idle: Duration::from_secs(3600),
        },
        || "beat".to_string(),
    )
}

fn hub() -> Hub {
    hub_with(Duration::from_secs(3600))
}

/// A stream past its first message and caught up.
async fn caught_up(hub: &Hub, client: ClientId) -> LiveStream {
    let mut live = hub.stream(client, None, Arc::new(Nothing));
    assert!(matches!(live.due().await, Due::Chunk(_)), "first message");
    assert!(matches!(live.due().await, Due::CaughtUp));
    live
}

fn parked(live: LiveStream, sink: &Arc<impl Sink>) -> Parked {
    match Box::new(live).park(sink.clone()) {
        Park::Parked(parked) => parked,
        Park::Behind(_) => panic!("a caught-up stream parks"),
    }
}

fn client() -> ClientId {
    ClientId(Uuid::new_v4())
}

async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn woken(parked: &mut Parked) {
    tokio::time::timeout(Duration::from_secs(5), parked.woken())
        .await
        .expect("woken in time");
}

/// The broadcast and private positions of each `id:` line.
fn ids_of(text: &str) -> Vec<(u64, u64)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|id| id.parse::<Cursor>().unwrap())
        .map(|c| (c.broadcast, c.private))
        .collect()
}

fn data_of(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect()
}

#[tokio::test]
async fn a_parked_stream_gets_broadcasts_written_to_its_socket_once_and_in_order() {
    let hub = hub();
    let wire = Wire::new(usize::MAX);
    let me = client();
    let mut parked = parked(caught_up(&hub, me).await, &wire);
    for n in 1..=3 {
        hub.change()
            .await
            .publish(Audience::Everyone, &format!("m{n}"));
    }
    eventually("three messages on the wire", || {
        data_of(&wire.text()).len() == 3
    })
    .await;
    let text = wire.text();
    assert_eq!(data_of(&text), ["m1", "m2", "m3"]);
    let ids: Vec<Cursor> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|id| id.parse().unwrap())
        .collect();
    assert_eq!(
        ids.iter().map(|c| c.broadcast).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    // Nothing was handed back, and the task resumes exactly where the fan-out stopped.
    assert!(
        tokio::time::timeout(Duration::from_millis(50), parked.woken())
            .await
            .is_err()
    );
    let (mut live, unwritten) = parked.resume();
    assert!(unwritten.is_empty());
    assert!(matches!(live.due().await, Due::CaughtUp), "no repeat");
    hub.change().await.publish(Audience::Everyone, "m4");
    let Due::Chunk(chunk) = live.due().await else {
        panic!("the resumed task reads the next message");
    };
    assert_eq!(data_of(std::str::from_utf8(&chunk).unwrap()), ["m4"]);
    assert_eq!(
        data_of(&wire.text()).len(),
        3,
        "the fan-out no longer writes"
    );
}

#[tokio::test]
async fn a_heartbeat_rides_on_the_next_broadcast_in_the_same_write() {
    let hub = hub();
    let wire = Wire::new(usize::MAX);
    let _parked = parked(caught_up(&hub, client()).await, &wire);
    hub.beat_now();
    // Well within the window (a second), and long enough for a pass of its own to have run.
    tokio::time::sleep(Duration::from_millis(100)).await;
    hub.change().await.publish(Audience::Everyone, "m1");
    eventually("the message and the heartbeat after it", || {
        data_of(&wire.text()) == ["m1", "beat"]
    })
    .await;
    assert_eq!(wire.writes(), 1, "one write for both");
    // With no broadcast to ride on, the heartbeat goes out alone once the window has passed.
    hub.beat_now();
    eventually("a heartbeat alone", || {
        data_of(&wire.text()) == ["m1", "beat", "beat"]
    })
    .await;
    assert_eq!(wire.writes(), 2);
}

#[tokio::test]
async fn streams_parked_at_different_cursors_each_get_their_own_ids() {
    let hub = hub();
    // Every private message moves the counter new tabs' logs start from, so each pair of
    // streams parks at its own private position; 130 streams fill every shard twice over.
    let mut streams = Vec::new();
    for n in 0..130 {
        if n % 2 == 0 {
            hub.change()
                .await
                .publish(Audience::Client(client()), "elsewhere");
        }
        let wire = Wire::new(usize::MAX);
        let mut live = hub.stream(client(), None, Arc::new(Nothing));
        let Due::Chunk(first) = live.due().await else {
            panic!("first message");
        };
        let private = ids_of(std::str::from_utf8(&first).unwrap())[0].1;
        assert!(matches!(live.due().await, Due::CaughtUp));
        streams.push((parked(live, &wire), wire, private));
    }
    hub.change().await.publish(Audience::Everyone, "m1");
    hub.change().await.publish(Audience::Everyone, "m2");
    eventually("both messages on every wire", || {
        streams
            .iter()
            .all(|(_, wire, _)| data_of(&wire.text()).len() == 2)
    })
    .await;
    for (_, wire, private) in &streams {
        assert_eq!(ids_of(&wire.text()), [(1, *private), (2, *private)]);
        assert_eq!(data_of(&wire.text()), ["m1", "m2"]);
    }
    assert_eq!(
        streams
            .iter()
            .map(|(_, _, p)| p)
            .collect::<std::collections::HashSet<_>>()
            .len(),
        65
    );
}

#[tokio::test]
async fn a_socket_that_takes_part_hands_the_stream_back_with_the_rest() {
    let hub = hub();
    let wire = Wire::new(10);
    let mut parked = parked(caught_up(&hub, client()).await, &wire);
    hub.change()
        .await
        .publish(Audience::Everyone, "a message longer than ten bytes");
    woken(&mut parked).await;
    let (mut live, unwritten) = parked.resume();
    let whole = wire.text() + std::str::from_utf8(&unwritten).unwrap();
    assert_eq!(wire.text().len(), 10);
    assert_eq!(data_of(&whole), ["a message longer than ten bytes"]);
    assert!(matches!(live.due().await, Due::CaughtUp), "written once");
}

#[tokio::test]
async fn a_socket_that_takes_nothing_hands_back_the_whole_message() {
    let hub = hub();
    let wire = Wire::new(0);
    let mut parked = parked(caught_up(&hub, client()).await, &wire);
    hub.change().await.publish(Audience::Everyone, "blocked");
    woken(&mut parked).await;
    let (_, unwritten) = parked.resume();
    assert_eq!(
        data_of(std::str::from_utf8(&unwritten).unwrap()),
        ["blocked"]
    );
}

#[tokio::test]
async fn a_private_message_wakes_the_parked_stream_and_its_task_writes_it() {
    let hub = hub();
    let wire = Wire::new(usize::MAX);
    let me = client();
    let mut parked = parked(caught_up(&hub, me).await, &wire);
    hub.change().await.publish(Audience::Client(me), "for me");
    woken(&mut parked).await;
    let (mut live, unwritten) = parked.resume();
    assert!(unwritten.is_empty());
    let Due::Chunk(chunk) = live.due().await else {
        panic!("the private message is due");
    };
    assert_eq!(data_of(std::str::from_utf8(&chunk).unwrap()), ["for me"]);
    assert_eq!(wire.text(), "", "private messages are the task's");
}

#[tokio::test]
async fn a_stream_behind_the_log_does_not_park() {
    let hub = hub();
    let live = caught_up(&hub, client()).await;
    hub.change().await.publish(Audience::Everyone, "since");
    let Park::Behind(mut live) = Box::new(live).park(Wire::new(usize::MAX)) else {
        panic!("parked behind the log");
    };
    let Due::Chunk(chunk) = live.due().await else {
        panic!("the missed message is due");
    };
    assert_eq!(data_of(std::str::from_utf8(&chunk).unwrap()), ["since"]);
}

#[tokio::test]
async fn a_backlog_longer_than_a_batch_is_handed_back_whole() {
    let hub = hub();
    let wire = Wire::new(usize::MAX);
    let mut parked = parked(caught_up(&hub, client()).await, &wire);
    {
        // Every shard held: the fan-out's thread cannot run a pass before all are appended.
        let held = hub.inner.fanout.hold();
        let change = hub.change().await;
        for n in 0..100 {
            change.publish(Audience::Everyone, &format!("m{n}"));
        }
        drop((change, held));
    }
    woken(&mut parked).await;
    let (mut live, unwritten) = parked.resume();
    assert!(unwritten.is_empty());
    assert_eq!(wire.text(), "");
    let Due::Chunk(chunk) = live.due().await else {
        panic!("the backlog is due");
    };
    let expected: Vec<String> = (0..100).map(|n| format!("m{n}")).collect();
    assert_eq!(data_of(std::str::from_utf8(&chunk).unwrap()), expected);
}

#[tokio::test]
async fn heartbeats_are_written_to_parked_streams() {
    let hub = hub_with(Duration::from_millis(20));
    let wire = Wire::new(usize::MAX);
    let _parked = parked(caught_up(&hub, client()).await, &wire);
    eventually("a heartbeat on the wire", || {
        wire.text().contains(": heartbeat\ndata: beat\n\n")
    })
    .await;
    assert!(wire.text().starts_with("id: "), "{}", wire.text());
}

#[tokio::test]
async fn closing_wakes_parked_streams_and_ends_them() {
    let hub = hub();
    let wire = Wire::new(usize::MAX);
    let mut parked = parked(caught_up(&hub, client()).await, &wire);
    hub.close();
    woken(&mut parked).await;
    let (mut live, _) = parked.resume();
    assert!(matches!(live.due().await, Due::Closed));
}

#[tokio::test]
async fn a_dropped_parked_stream_leaves_the_fan_out() {
    let hub = hub();
    let wire = Wire::new(usize::MAX);
    let me = client();
    let parked = parked(caught_up(&hub, me).await, &wire);
    assert_eq!(Arc::strong_count(&wire), 2, "the shard holds the socket");
    drop(parked);
    assert_eq!(Arc::strong_count(&wire), 1, "and lets it go");
    assert_eq!(hub.client_logs(), 0, "the tab's unused log goes too");
}

/// A socket whose write panics.
struct Broken;

impl Sink for Broken {
    fn fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }

    fn try_write(&self, _: &[u8]) -> io::Result<usize> {
        panic!("a socket that panics in write");
    }
}

#[tokio::test]
async fn a_socket_that_panics_is_handed_back_and_the_others_keep_receiving() {
    let hub = hub();
    let mut broken = parked(caught_up(&hub, client()).await, &Arc::new(Broken));
    // One healthy stream in every shard, the broken one's included.
    let mut healthy = Vec::new();
    for _ in 0..64 {
        let wire = Wire::new(usize::MAX);
        healthy.push((parked(caught_up(&hub, client()).await, &wire), wire));
    }
    for n in 1..=2 {
        hub.change()
            .await
            .publish(Audience::Everyone, &format!("m{n}"));
        eventually("every healthy stream has the message", || {
            healthy
                .iter()
                .all(|(_, wire)| data_of(&wire.text()).len() == n)
        })
        .await;
    }
    woken(&mut broken).await;
    let (mut live, unwritten) = broken.resume();
    assert!(unwritten.is_empty());
    // Its task goes on from after the message its write failed on, as after a write error.
    let Due::Chunk(chunk) = live.due().await else {
        panic!("the message since is due");
    };
    assert_eq!(data_of(std::str::from_utf8(&chunk).unwrap()), ["m2"]);
}

/// A socket whose write waits until the test lets it go, as a slow system call would.
struct Gate {
    entered: std::sync::mpsc::SyncSender<()>,
    open: Mutex<std::sync::mpsc::Receiver<()>>,
}

impl Sink for Gate {
    fn fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }

    fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        let _ = self.entered.try_send(());
        let _ = self.open.lock().unwrap().recv();
        Ok(bytes.len())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_in_progress_holds_up_nobody_else_in_its_shard() {
    let hub = hub();
    let (entered_tx, entered) = std::sync::mpsc::sync_channel(1);
    let (open, open_rx) = std::sync::mpsc::channel();
    let gate = Arc::new(Gate {
        entered: entered_tx,
        open: Mutex::new(open_rx),
    });
    // The gate's stream, then one in every other shard, then one more in the gate's shard.
    let _gated = parked(caught_up(&hub, client()).await, &gate);
    let mut others = Vec::new();
    for _ in 0..64 {
        others.push(parked(
            caught_up(&hub, client()).await,
            &Wire::new(usize::MAX),
        ));
    }
    let neighbour = others.pop().expect("in the gate's shard");
    hub.change().await.publish(Audience::Everyone, "m1");
    entered
        .recv_timeout(Duration::from_secs(5))
        .expect("the fan-out writes to the gate");

    // While that write waits: a stream of the same shard leaves, and another one parks there.
    let mut fillers = Vec::new();
    for _ in 0..63 {
        fillers.push(parked(
            caught_up(&hub, client()).await,
            &Wire::new(usize::MAX),
        ));
    }
    let newcomer = caught_up(&hub, client()).await;
    let (done_tx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(neighbour);
        let parked = Box::new(newcomer).park(Wire::new(usize::MAX));
        let _ = done_tx.send(matches!(parked, Park::Parked(_)));
    });
    let outcome = done.recv_timeout(Duration::from_secs(2));
    let _ = open.send(());
    assert_eq!(
        outcome,
        Ok(true),
        "leaving and parking waited for another stream's write"
    );
}

#[tokio::test]
async fn the_shards_give_back_the_room_of_streams_that_have_gone() {
    let hub = hub();
    let wire = Wire::new(usize::MAX);
    let mut streams = Vec::new();
    for _ in 0..64 * 130 {
        streams.push(parked(caught_up(&hub, client()).await, &wire));
    }
    let full = hub.inner.fanout.capacity();
    streams.truncate(64 * 10);
    hub.inner.fanout.shrink();
    let after = hub.inner.fanout.capacity();
    assert!(after < full / 4, "{full} -> {after}");
    assert!(after >= streams.len());
}
