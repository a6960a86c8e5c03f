//! The presence table: each instance's count of open tab streams, refreshed every couple of
//! seconds (see `web::presence`).

use std::time::Duration;

use super::PgStore;
use crate::store::StoreResult;

/// An instance not heard from for this long is gone: its row is deleted, and the imports it
/// was running (their uploads died with it) are shown as interrupted.
const GONE: Duration = Duration::from_secs(30);

impl PgStore {
    /// Records `streams` open on this instance at `now` (Unix ms); returns the sum over the
    /// instances heard from within `fresh`.
    pub fn presence(&self, streams: u64, now: i64, fresh: Duration) -> StoreResult<u64> {
        let gone = now - GONE.as_millis() as i64;
        let fresh = now - fresh.as_millis() as i64;
        self.transaction(|tx| {
            tx.execute(
                "INSERT INTO presence (instance, streams, seen_at) VALUES ($1, $2, $3)
                 ON CONFLICT (instance) DO UPDATE
                     SET streams = excluded.streams, seen_at = excluded.seen_at",
                &[&tx.instance, &(streams as i64), &now],
            )?;
            tx.execute("DELETE FROM presence WHERE seen_at < $1", &[&gone])?;
            tx.execute(
                "UPDATE imports SET status = 'interrupted'
                 WHERE status = 'running' AND instance NOT IN (SELECT instance FROM presence)",
                &[],
            )?;
            let total: i64 = tx
                .query_one(
                    "SELECT coalesce(sum(streams), 0)::bigint FROM presence WHERE seen_at >= $1",
                    &[&fresh],
                )?
                .get(0);
            Ok(total.max(0) as u64)
        })
    }
}
