use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Cached, SqliteStore};
use crate::jobs::{
    FINISHED_KEPT, Job, JobState, JobStore, MAX_UNFINISHED, NewJob, Update, Updated,
};
use crate::store::{StoreError, StoreResult};

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    state       TEXT NOT NULL,
    total       INTEGER NOT NULL,
    moved       INTEGER NOT NULL,
    interval_ms INTEGER NOT NULL,
    fail_at     INTEGER,
    error       TEXT,
    runner      INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, id);
";

const COLUMNS: &str =
    "id, state, total, moved, interval_ms, fail_at, error, runner, created_at, updated_at";
const UNFINISHED: &str = "('queued', 'running')";

impl JobStore for SqliteStore {
    fn insert_job(&self, new: &NewJob, runner: i64, now: i64) -> StoreResult<Option<Job>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let waiting: i64 = tx.row(
            &format!("SELECT count(*) FROM jobs WHERE state IN {UNFINISHED}"),
            [],
            |row| row.get(0),
        )?;
        if waiting >= MAX_UNFINISHED as i64 {
            return Ok(None);
        }
        tx.run(
            "INSERT INTO jobs (state, total, moved, interval_ms, fail_at, runner, created_at,
                               updated_at)
             VALUES ('queued', ?1, 0, ?2, ?3, ?4, ?5, ?5)",
            params![new.total, new.interval_ms, new.fail_at, runner, now],
        )?;
        let id = tx.last_insert_rowid();
        // Only so many finished jobs are of interest; keeping every one would grow forever.
        tx.run(
            &format!(
                "DELETE FROM jobs WHERE state NOT IN {UNFINISHED} AND id NOT IN
                     (SELECT id FROM jobs WHERE state NOT IN {UNFINISHED}
                      ORDER BY id DESC LIMIT ?1)"
            ),
            params![FINISHED_KEPT as i64],
        )?;
        let job = get(&tx, id)?;
        tx.commit()?;
        Ok(job)
    }

    fn job(&self, id: i64) -> StoreResult<Option<Job>> {
        get(&self.conn(), id)
    }

    fn update_job(&self, id: i64, update: &Update, runner: i64, now: i64) -> StoreResult<Updated> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let Some(job) = get(&tx, id)? else {
            return Ok(Updated::Missing);
        };
        let Some(next) = update.apply(&job, runner, now) else {
            return Ok(Updated::Refused(job));
        };
        store(&tx, &next)?;
        tx.commit()?;
        Ok(Updated::Applied(next))
    }

    fn listed_jobs(&self, finished: usize) -> StoreResult<Vec<Job>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE state IN {UNFINISHED} OR id IN
                 (SELECT id FROM jobs WHERE state NOT IN {UNFINISHED} ORDER BY id DESC LIMIT ?1)
             ORDER BY id DESC"
        ))?;
        let rows = stmt.query_map(params![finished as i64], read)?;
        rows.map(|row| row?).collect()
    }

    fn adopt_unfinished_jobs(&self, runner: i64, now: i64) -> StoreResult<Vec<Job>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.run(
            &format!(
                "UPDATE jobs SET state = 'queued', runner = ?1, updated_at = ?2
                 WHERE state IN {UNFINISHED}"
            ),
            params![runner, now],
        )?;
        let jobs = {
            let mut stmt = tx.prepare(&format!(
                "SELECT {COLUMNS} FROM jobs WHERE state = 'queued' ORDER BY id"
            ))?;
            let rows = stmt.query_map([], read)?;
            rows.map(|row| row?).collect::<StoreResult<Vec<Job>>>()?
        };
        tx.commit()?;
        Ok(jobs)
    }

    /// One instance owns the file, so only queued jobs are claimed: running ones were adopted
    /// (queued again) at start.
    fn claim_jobs(&self, runner: i64, limit: usize, now: i64, until: i64) -> StoreResult<Vec<Job>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let queued: Vec<i64> = tx
            .prepare_cached("SELECT id FROM jobs WHERE state = 'queued' ORDER BY id LIMIT ?1")?
            .query_map(params![limit as i64], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        let mut claimed = Vec::new();
        for id in queued {
            let Some(job) = get(&tx, id)? else { continue };
            if let Some(next) = (Update::Claim { until }).apply(&job, runner, now) {
                store(&tx, &next)?;
                claimed.push(next);
            }
        }
        tx.commit()?;
        Ok(claimed)
    }

    fn renew_leases(&self, _runner: i64, _until: i64) -> StoreResult<u64> {
        Ok(0)
    }
}

fn store(conn: &Connection, job: &Job) -> StoreResult<()> {
    conn.run(
        "UPDATE jobs SET state = ?2, moved = ?3, fail_at = ?4, error = ?5, runner = ?6,
                         updated_at = ?7
         WHERE id = ?1",
        params![
            job.id,
            job.state.as_str(),
            job.moved,
            job.fail_at,
            job.error,
            job.runner,
            job.updated_at
        ],
    )?;
    Ok(())
}

fn get(conn: &Connection, id: i64) -> StoreResult<Option<Job>> {
    conn.row(
        &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
        params![id],
        read,
    )
    .optional()?
    .transpose()
}

/// A row as a job; a state this build does not know is a storage error, not a panic.
fn read(row: &Row<'_>) -> rusqlite::Result<StoreResult<Job>> {
    let state: String = row.get(1)?;
    let Some(state) = JobState::parse(&state) else {
        return Ok(Err(StoreError::new(format!(
            "unknown job state {state:?} stored"
        ))));
    };
    Ok(Ok(Job {
        id: row.get(0)?,
        state,
        total: row.get(2)?,
        moved: row.get(3)?,
        interval_ms: row.get(4)?,
        fail_at: row.get(5)?,
        error: row.get(6)?,
        runner: row.get(7)?,
        lease_until: 0,
        created_at: row.get(8)?,
        updated_at: row.get(9)?,
    }))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const NEW: NewJob = NewJob {
        total: 10,
        interval_ms: 5,
        fail_at: None,
    };

    fn store() -> SqliteStore {
        SqliteStore::open(Path::new(":memory:")).unwrap()
    }

    fn applied(outcome: Updated) -> Job {
        match outcome {
            Updated::Applied(job) => job,
            other => panic!("not applied: {other:?}"),
        }
    }

    #[test]
    fn a_new_run_adopts_unfinished_jobs_and_fences_the_old_one() {
        let s = store();
        let a = s.insert_job(&NEW, 1, 0).unwrap().unwrap();
        let b = s.insert_job(&NEW, 1, 0).unwrap().unwrap();
        let done = s.insert_job(&NEW, 1, 0).unwrap().unwrap();
        applied(
            s.update_job(a.id, &Update::Claim { until: 9 }, 1, 1)
                .unwrap(),
        );
        applied(
            s.update_job(a.id, &Update::Progress { moved: 4 }, 1, 2)
                .unwrap(),
        );
        applied(s.update_job(done.id, &Update::Cancel, 1, 2).unwrap());

        let adopted = s.adopt_unfinished_jobs(2, 3).unwrap();
        let ids: Vec<i64> = adopted.iter().map(|j| j.id).collect();
        assert_eq!(ids, [a.id, b.id], "oldest first, finished ones left alone");
        assert_eq!((adopted[0].state, adopted[0].moved), (JobState::Queued, 4));
        assert!(adopted.iter().all(|j| j.runner == 2));

        let late = s
            .update_job(a.id, &Update::Progress { moved: 5 }, 1, 4)
            .unwrap();
        assert!(matches!(late, Updated::Refused(_)), "{late:?}");
        let claimed = s.claim_jobs(2, 1, 4, 9).unwrap();
        assert_eq!(claimed.len(), 1, "one at most");
        assert_eq!(
            (claimed[0].id, claimed[0].moved),
            (a.id, 4),
            "the oldest, where it was"
        );
        applied(
            s.update_job(a.id, &Update::Progress { moved: 5 }, 2, 5)
                .unwrap(),
        );
        assert_eq!(
            s.update_job(999, &Update::Cancel, 2, 5).unwrap(),
            Updated::Missing
        );
    }

    #[test]
    fn lists_every_unfinished_job_and_the_newest_finished_ones() {
        let s = store();
        let waiting = s.insert_job(&NEW, 1, 0).unwrap().unwrap();
        for _ in 0..5 {
            let job = s.insert_job(&NEW, 1, 0).unwrap().unwrap();
            applied(s.update_job(job.id, &Update::Cancel, 1, 1).unwrap());
        }
        let listed: Vec<i64> = s.listed_jobs(3).unwrap().iter().map(|j| j.id).collect();
        assert_eq!(listed, [6, 5, 4, waiting.id]);
    }

    #[test]
    fn keeps_a_bounded_number_of_jobs() {
        let s = store();
        for _ in 0..FINISHED_KEPT + 5 {
            let job = s.insert_job(&NEW, 1, 0).unwrap().unwrap();
            applied(s.update_job(job.id, &Update::Cancel, 1, 1).unwrap());
        }
        s.insert_job(&NEW, 1, 0).unwrap().unwrap();
        let finished: i64 = s
            .conn()
            .row(
                "SELECT count(*) FROM jobs WHERE state = 'cancelled'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(finished, FINISHED_KEPT as i64);
        assert!(
            s.job(1).unwrap().is_none(),
            "the oldest finished job is gone"
        );

        for _ in 1..MAX_UNFINISHED {
            s.insert_job(&NEW, 1, 0).unwrap().unwrap();
        }
        assert_eq!(s.insert_job(&NEW, 1, 0).unwrap(), None, "full");
    }
}
