//! The transactional outbox: a change and the messages that announce it commit together, and
//! the messages are numbered in commit order.
//!
//! A plain sequence can commit out of order (a transaction that drew 7 may commit after one that
//! drew 8, and a reader that saw 8 would skip 7 for good). So every change that announces
//! something takes one transaction-scoped advisory lock before it draws its numbers and holds it
//! until it commits: numbers are drawn in commit order, and once a reader sees number N, every
//! number below N is committed or was never used. Changes reach the log through the
//! instance's committer (`commit`), which stores the changes queued together in one
//! transaction under one lock, so one WAL flush serves them all.

use uuid::Uuid;

use super::Tx;
use crate::clock;
use crate::hub::{Audience, Entry, JsonEvent, Publish};
use crate::store::{ListStore, StoreResult};

/// The advisory lock that orders the event log ("events" in ASCII).
const EVENTS_LOCK: i64 = 0x6576_656e_7473;
/// The advisory lock class of the live lists, one lock per region ("list" in ASCII).
const LISTS_LOCK: i32 = 0x6c69_7374;
/// The channel every instance listens on for new events.
pub const CHANNEL: &str = "herald_events";

/// Two changes of one list on PostgreSQL can run at once (on two instances, or two requests on
/// one): the second waits here, before it touches the list, until the first has committed.
impl ListStore for Tx<'_> {
    fn hold_list(&self, region: &str) -> StoreResult<()> {
        self.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&LISTS_LOCK, &region],
        )?;
        Ok(())
    }
}

impl Tx<'_> {
    /// Takes the lock that orders the event log, held until this transaction ends, and runs
    /// `then` (statements without parameters) in the same round trip.
    pub(super) fn lock_events(&self, then: &str) -> StoreResult<()> {
        let sql = format!("SELECT pg_advisory_xact_lock({EVENTS_LOCK}); {then}");
        Ok(self.raw().batch_execute(&sql)?)
    }

    /// Appends what each change announces (`None`: it failed) to the log, in order, under the
    /// lock; the number of each change's last message (none when it announced nothing).
    pub(super) fn append_events(
        &self,
        publishes: Vec<Option<Publish>>,
    ) -> StoreResult<Vec<Option<u64>>> {
        let mut lasts = vec![None; publishes.len()];
        let mut owners = Vec::new();
        let mut audiences: Vec<Option<Uuid>> = Vec::new();
        let (mut htmls, mut topics, mut names, mut jsons) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (owner, publish) in publishes.into_iter().enumerate() {
            for message in publish.map(Publish::into_messages).unwrap_or_default() {
                owners.push(owner);
                audiences.push(match message.audience {
                    Audience::Everyone => None,
                    Audience::Client(client) => Some(client.0),
                });
                htmls.push((!message.html.is_empty()).then_some(message.html));
                let json = message.json.as_ref();
                topics.push(json.map(|j| j.topic().to_string()));
                names.push(json.map(|j| j.name().to_string()));
                jsons.push(json.map(|j| j.data().to_string()));
            }
        }
        if owners.is_empty() {
            return Ok(lasts);
        }
        // Numbers drawn under the lock, so in commit order, and given to the messages in queue
        // order (nextval's rows come in no set order); every instance woken; one round trip.
        let seqs: Vec<i64> = self
            .query_one(
                &format!(
                    "WITH drawn AS (
                         SELECT nextval('events_seq') AS seq
                         FROM generate_series(1, cardinality($1::uuid[]))
                     ), numbered AS (
                         SELECT seq, row_number() OVER (ORDER BY seq) AS n FROM drawn
                     ), added AS (
                         INSERT INTO events (seq, audience, html, topic, event, json, created_at)
                         SELECT seq, m.audience, m.html, m.topic, m.event, m.json, $6::bigint
                         FROM numbered
                         JOIN unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[])
                              WITH ORDINALITY AS m(audience, html, topic, event, json, n)
                         USING (n)
                     )
                     SELECT array_agg(seq ORDER BY seq), pg_notify('{CHANNEL}', '')
                     FROM numbered"
                ),
                &[
                    &audiences,
                    &htmls,
                    &topics,
                    &names,
                    &jsons,
                    &clock::now_ms(),
                ],
            )?
            .get(0);
        for (owner, seq) in owners.into_iter().zip(seqs) {
            lasts[owner] = Some(seq as u64);
        }
        Ok(lasts)
    }

    /// Deletes events beyond the newest `keep` or older than `before` (Unix ms), never the
    /// newest one: the log's position survives.
    pub(super) fn prune_events(&self, keep: u64, before: i64) -> StoreResult<u64> {
        self.execute(
            "DELETE FROM events WHERE seq < (SELECT max(seq) FROM events)
                 AND (seq <= (SELECT max(seq) FROM events) - $1 OR created_at < $2)",
            &[&(keep as i64), &before],
        )
    }

    /// The log's position: the number of its newest message (0 before the first).
    pub(super) fn log_position(&self) -> StoreResult<u64> {
        let max: i64 = self
            .query_one("SELECT coalesce(max(seq), 0) FROM events", &[])?
            .get(0);
        Ok(max as u64)
    }

    /// The messages for `audience` in `(after, upto]`, oldest first, at most `max`, as the log
    /// entries they were; `None` when some of them have been pruned. Read before the check, so a
    /// prune in between is seen.
    pub(super) fn events_for(
        &self,
        audience: Audience,
        after: u64,
        upto: u64,
        max: usize,
    ) -> StoreResult<Option<Vec<(u64, Entry)>>> {
        let (after, upto, max) = (after as i64, upto as i64, max as i64);
        let rows = match audience {
            Audience::Everyone => self.query(
                "SELECT seq, html, topic, event, json FROM events
                     WHERE seq > $1 AND seq <= $2 AND audience IS NULL
                 ORDER BY seq LIMIT $3",
                &[&after, &upto, &max],
            )?,
            Audience::Client(client) => self.query(
                "SELECT seq, html, topic, event, json FROM events
                     WHERE audience = $4 AND seq > $1 AND seq <= $2
                 ORDER BY seq LIMIT $3",
                &[&after, &upto, &max, &client.0],
            )?,
        };
        let oldest: Option<i64> = self.query_one("SELECT min(seq) FROM events", &[])?.get(0);
        if oldest.is_some_and(|oldest| after + 1 < oldest) {
            return Ok(None);
        }
        Ok(Some(
            rows.iter()
                .map(|row| {
                    let html = row.get::<_, Option<&str>>(1).unwrap_or_default();
                    let json = json_event(row.get(2), row.get(3), row.get(4));
                    (row.get::<_, i64>(0) as u64, Entry::new(html, json))
                })
                .collect(),
        ))
    }
}

/// A stored event's JSON rendering, when it has one.
pub(super) fn json_event(
    topic: Option<&str>,
    event: Option<&str>,
    json: Option<&str>,
) -> Option<JsonEvent> {
    Some(JsonEvent::from_json(topic?, event?, json?))
}
