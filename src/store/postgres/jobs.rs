use postgres::Row;

use super::Tx;
use crate::jobs::{
    FINISHED_KEPT, Job, JobState, JobStore, MAX_UNFINISHED, NewJob, Update, Updated,
};
use crate::store::{StoreError, StoreResult};

const COLUMNS: &str = "id, state, total, moved, interval_ms, fail_at, error, runner, created_at, \
                       updated_at, lease_until";
const UNFINISHED: &str = "('queued', 'running')";
/// Taken by every job insert, so two instances cannot both pass the limit of waiting jobs.
const INSERT_LOCK: i64 = 0x6a6f_6273;

impl JobStore for Tx<'_> {
    fn insert_job(&self, new: &NewJob, runner: i64, now: i64) -> StoreResult<Option<Job>> {
        self.execute("SELECT pg_advisory_xact_lock($1)", &[&INSERT_LOCK])?;
        let waiting: i64 = self
            .query_one(
                &format!("SELECT count(*) FROM jobs WHERE state IN {UNFINISHED}"),
                &[],
            )?
            .get(0);
        if waiting >= MAX_UNFINISHED as i64 {
            return Ok(None);
        }
        let row = self.query_one(
            &format!(
                "INSERT INTO jobs (state, total, moved, interval_ms, fail_at, runner, created_at,
                                   updated_at)
                 VALUES ('queued', $1, 0, $2, $3, $4, $5, $5) RETURNING {COLUMNS}"
            ),
            &[
                &(new.total as i32),
                &(new.interval_ms as i32),
                &new.fail_at.map(|s| s as i32),
                &runner,
                &now,
            ],
        )?;
        // Only so many finished jobs are of interest; keeping every one would grow forever.
        self.execute(
            &format!(
                "DELETE FROM jobs WHERE state NOT IN {UNFINISHED} AND id NOT IN
                     (SELECT id FROM jobs WHERE state NOT IN {UNFINISHED}
                      ORDER BY id DESC LIMIT $1)"
            ),
            &[&(FINISHED_KEPT as i64)],
        )?;
        job(&row).map(Some)
    }

    fn job(&self, id: i64) -> StoreResult<Option<Job>> {
        self.query_opt(&format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"), &[&id])?
            .map(|row| job(&row))
            .transpose()
    }

    /// The row is locked first, so two instances changing one job take turns and the second
    /// sees what the first did (a cancel racing a cancel: one 200, one 409).
    fn update_job(&self, id: i64, update: &Update, runner: i64, now: i64) -> StoreResult<Updated> {
        let Some(row) = self.query_opt(
            &format!("SELECT {COLUMNS} FROM jobs WHERE id = $1 FOR UPDATE"),
            &[&id],
        )?
        else {
            return Ok(Updated::Missing);
        };
        let current = job(&row)?;
        let Some(next) = update.apply(&current, runner, now) else {
            return Ok(Updated::Refused(current));
        };
        self.store_job(&next)?;
        Ok(Updated::Applied(next))
    }

    fn listed_jobs(&self, finished: usize) -> StoreResult<Vec<Job>> {
        self.query(
            &format!(
                "SELECT {COLUMNS} FROM jobs WHERE state IN {UNFINISHED} OR id IN
                     (SELECT id FROM jobs WHERE state NOT IN {UNFINISHED}
                      ORDER BY id DESC LIMIT $1)
                 ORDER BY id DESC"
            ),
            &[&(finished as i64)],
        )?
        .iter()
        .map(job)
        .collect()
    }

    fn adopt_unfinished_jobs(&self, runner: i64, now: i64) -> StoreResult<Vec<Job>> {
        self.query(
            &format!(
                "UPDATE jobs SET state = 'queued', runner = $1, updated_at = $2
                 WHERE state IN {UNFINISHED} RETURNING {COLUMNS}"
            ),
            &[&runner, &now],
        )
        .map(|rows| {
            let mut jobs: Vec<StoreResult<Job>> = rows.iter().map(job).collect();
            jobs.sort_by_key(|j| j.as_ref().map_or(0, |j| j.id));
            jobs
        })?
        .into_iter()
        .collect()
    }

    /// Rows another instance has locked to claim are skipped, so instances claiming at once
    /// each get different jobs, and a job is never run twice.
    fn claim_jobs(&self, runner: i64, limit: usize, now: i64, until: i64) -> StoreResult<Vec<Job>> {
        let rows = self.query(
            &format!(
                "SELECT {COLUMNS} FROM jobs
                 WHERE state = 'queued' OR (state = 'running' AND lease_until < $1)
                 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED"
            ),
            &[&now, &(limit as i64)],
        )?;
        let mut claimed = Vec::new();
        for row in &rows {
            if let Some(next) = (Update::Claim { until }).apply(&job(row)?, runner, now) {
                self.store_job(&next)?;
                claimed.push(next);
            }
        }
        Ok(claimed)
    }

    fn renew_leases(&self, runner: i64, until: i64) -> StoreResult<u64> {
        self.execute(
            "UPDATE jobs SET lease_until = $2 WHERE runner = $1 AND state = 'running'",
            &[&runner, &until],
        )
    }
}

impl Tx<'_> {
    fn store_job(&self, job: &Job) -> StoreResult<()> {
        self.execute(
            "UPDATE jobs SET state = $2, moved = $3, fail_at = $4, error = $5, runner = $6,
                             updated_at = $7, lease_until = $8
             WHERE id = $1",
            &[
                &job.id,
                &job.state.as_str(),
                &(job.moved as i32),
                &job.fail_at.map(|s| s as i32),
                &job.error,
                &job.runner,
                &job.updated_at,
                &job.lease_until,
            ],
        )?;
        Ok(())
    }
}

fn job(row: &Row) -> StoreResult<Job> {
    let state: String = row.get(1);
    let state = JobState::parse(&state)
        .ok_or_else(|| StoreError::new(format!("unknown job state {state:?} stored")))?;
    let count = |i: usize| -> u32 { row.get::<_, i32>(i).max(0) as u32 };
    Ok(Job {
        id: row.get(0),
        state,
        total: count(2),
        moved: count(3),
        interval_ms: count(4),
        fail_at: row.get::<_, Option<i32>>(5).map(|s| s.max(0) as u32),
        error: row.get(6),
        runner: row.get(7),
        created_at: row.get(8),
        updated_at: row.get(9),
        lease_until: row.get(10),
    })
}
