//! The transactional outbox: a change and the messages that announce it commit together, and
//! the messages are numbered in commit order.
//!
//! A plain sequence can commit out of order (a transaction that drew 7 may commit after one that
//! drew 8, and a reader that saw 8 would skip 7 for good). So every change that announces
//! something takes one transaction-scoped advisory lock before it draws its numbers and holds it
//! until it commits: numbers are drawn in commit order, and once a reader sees number N, every
//! number below N is committed or was never used. The lock is taken after the change's own
//! writes, so only the insert and the commit are serialised.

use super::{PgStore, Tx};
use crate::clock;
use crate::hub::{Audience, JsonEvent, Publish};
use crate::store::{ListStore, Store, StoreError, StoreResult};

/// The advisory lock that orders the event log ("events" in ASCII).
const EVENTS_LOCK: i64 = 0x6576_656e_7473;
/// The advisory lock class of the live lists, one lock per region ("list" in ASCII).
const LISTS_LOCK: i32 = 0x6c69_7374;
/// The channel every instance listens on for new events.
pub const CHANNEL: &str = "herald_events";

impl PgStore {
    /// Runs `write` in one transaction and stores what it announces with it; returns the
    /// change's value and the number of its last message (none when it announces nothing).
    pub fn change<T, E>(
        &self,
        write: impl FnOnce(&dyn Store) -> Result<(T, Publish), E>,
    ) -> Result<(T, Option<u64>), E>
    where
        E: From<StoreError>,
    {
        self.transaction(|tx| {
            let (value, publish) = write(tx)?;
            let last = tx.append_events(publish)?;
            Ok((value, last))
        })
    }
}

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
    fn append_events(&self, publish: Publish) -> StoreResult<Option<u64>> {
        let messages = publish.into_messages();
        if messages.is_empty() {
            return Ok(None);
        }
        self.execute("SELECT pg_advisory_xact_lock($1)", &[&EVENTS_LOCK])?;
        let now = clock::now_ms();
        let mut last = 0;
        for message in messages {
            let audience = match message.audience {
                Audience::Everyone => None,
                Audience::Client(client) => Some(client.0),
            };
            let html = (!message.html.is_empty()).then_some(&message.html);
            let json = message.json.as_ref();
            let seq: i64 = self
                .query_one(
                    "INSERT INTO events (seq, audience, html, topic, event, json, created_at)
                     VALUES (nextval('events_seq'), $1, $2, $3, $4, $5, $6) RETURNING seq",
                    &[
                        &audience,
                        &html,
                        &json.map(JsonEvent::topic),
                        &json.map(JsonEvent::name),
                        &json.map(JsonEvent::data),
                        &now,
                    ],
                )?
                .get(0);
            last = seq as u64;
        }
        self.execute(&format!("NOTIFY {CHANNEL}"), &[])?;
        Ok(Some(last))
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

    /// The messages for `audience` in `(after, upto]`, oldest first, at most `max`; `None` when
    /// some of them have been pruned. Read before the check, so a prune in between is seen.
    pub(super) fn events_for(
        &self,
        audience: Audience,
        after: u64,
        upto: u64,
        max: usize,
    ) -> StoreResult<Option<Vec<(u64, String)>>> {
        let (after, upto, max) = (after as i64, upto as i64, max as i64);
        let rows = match audience {
            Audience::Everyone => self.query(
                "SELECT seq, html FROM events WHERE seq > $1 AND seq <= $2
                     AND audience IS NULL AND html IS NOT NULL
                 ORDER BY seq LIMIT $3",
                &[&after, &upto, &max],
            )?,
            Audience::Client(client) => self.query(
                "SELECT seq, html FROM events WHERE audience = $4 AND seq > $1 AND seq <= $2
                     AND html IS NOT NULL
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
                .map(|row| (row.get::<_, i64>(0) as u64, row.get(1)))
                .collect(),
        ))
    }
}
