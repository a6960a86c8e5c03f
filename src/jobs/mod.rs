//! Background jobs (from the Express progress demo, with its "extending" list built): simulated
//! tasks that run concurrently, report live progress to every page, and can be cancelled, fail
//! at a chosen step, be retried from their last completed step, and survive a restart.
//!
//! The store is the single source of truth: every change is a transition of [`Update::apply`],
//! checked against the stored row in one transaction, then published (see `runner`): to pages,
//! and as the `job.created` or `job.updated` event on the `jobs` topic of `GET /api/stream`.
//!
//! The dashboard's `jobs-list` region shows every queued or running job and the newest
//! [`FINISHED_SHOWN`] finished ones, each as its card `#job-{id}`, by id, newest first: a job
//! never moves within the list, it only enters or leaves it. Progress replaces a card's bar;
//! any other change compares the list before and after it and sends only the difference
//! (`hub::list_changes`): the job's card replaced or inserted where the list has it, and the
//! cards that left deleted (a finished job past the newest [`FINISHED_SHOWN`], its own card when
//! it finishes older than those), or the one that comes back inserted (when a retried job leaves
//! the finished ones).

mod events;
pub mod input;
mod routes;
mod runner;
mod views;

use serde::Serialize;

use crate::store::StoreResult;
use crate::web::id::Named;
pub use events::{demo_events, job_events};
pub use input::Limits;
pub use routes::{cancel, create, retry, show};
pub use runner::Runner;
pub use views::{JobCard, JobForm, JobProgress, json_state, live_cards, regions};

pub const REGION: &str = "jobs-list";
/// The jobs' topic on `GET /api/stream`.
pub const TOPIC: &str = "jobs";
/// Finished jobs the page shows (newest first); queued and running ones are always shown.
pub const FINISHED_SHOWN: usize = 20;
/// Finished jobs kept in the store (older ones are deleted when a job is created).
pub const FINISHED_KEPT: usize = 100;
/// Queued plus running jobs at most; one more is refused with 429.
pub const MAX_UNFINISHED: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Done,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Done | JobState::Failed | JobState::Cancelled
        )
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Job {
    pub id: i64,
    pub state: JobState,
    pub total: u32,
    /// Steps completed.
    pub moved: u32,
    pub interval_ms: u32,
    /// The step the simulated task fails at (once: a retry clears it).
    pub fail_at: Option<u32>,
    pub error: Option<String>,
    /// Which run of the app drives the job: a stopped app's late writes are refused.
    #[serde(skip)]
    pub runner: i64,
    /// Until when (Unix ms) the runner's claim holds without renewal; past it another instance
    /// may take the job over (shared stores only; SQLite has one instance and keeps 0).
    #[serde(skip)]
    pub lease_until: i64,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
}

impl Named for Job {
    const NAME: &'static str = "job";
}

impl Job {
    /// `"45.00"`, as the original demo's `percent`.
    pub fn percent(&self) -> String {
        percent(self.moved, self.total)
    }
}

pub fn percent(moved: u32, total: u32) -> String {
    format!("{:.2}", f64::from(moved) * 100.0 / f64::from(total.max(1)))
}

/// What a new job asks for (validated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewJob {
    pub total: u32,
    pub interval_ms: u32,
    pub fail_at: Option<u32>,
}

/// A state transition. Only [`Update::apply`] decides what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// A runner takes the job to run it, its claim holding until `until` (Unix ms): a queued
    /// job, or a running one whose runner let its claim lapse (an instance that died).
    Claim {
        until: i64,
    },
    Progress {
        moved: u32,
    },
    Finish,
    Fail {
        moved: u32,
        error: String,
    },
    Cancel,
    Retry,
}

impl Update {
    /// The job after this update, or `None` when the job's state (or owner) forbids it.
    ///
    /// The runner's own updates need the job to still be its own, so a stopped app cannot
    /// overwrite what the next one does; cancel and retry come from users and take the job over;
    /// a claim makes the job the claimer's.
    pub fn apply(&self, job: &Job, runner: i64, now: i64) -> Option<Job> {
        use JobState::*;
        let owned = job.runner == runner;
        let mut next = Job {
            updated_at: now,
            ..job.clone()
        };
        match (self, job.state) {
            (Update::Claim { until }, Queued) => {
                next.state = Running;
                next.runner = runner;
                next.lease_until = *until;
            }
            (Update::Claim { until }, Running) if job.lease_until < now => {
                next.runner = runner;
                next.lease_until = *until;
            }
            (Update::Progress { moved }, Running) if owned && *moved < job.total => {
                next.moved = (*moved).max(job.moved)
            }
            (Update::Finish, Running) if owned => {
                next.state = Done;
                next.moved = job.total;
            }
            (Update::Fail { moved, error }, Running) if owned => {
                next.state = Failed;
                next.moved = *moved;
                next.error = Some(error.clone());
            }
            (Update::Cancel, Queued | Running) => next.state = Cancelled,
            (Update::Retry, Failed) => {
                next.state = Queued;
                next.error = None;
                next.fail_at = None;
                next.runner = runner;
            }
            _ => return None,
        }
        Some(next)
    }
}

/// The outcome of an update against the stored job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Updated {
    Applied(Job),
    /// Not allowed in the job's current state; the job as it is.
    Refused(Job),
    Missing,
}

pub trait JobStore {
    /// Stores a queued job owned by `runner`, and forgets finished jobs beyond the newest
    /// [`FINISHED_KEPT`]. `None` when [`MAX_UNFINISHED`] jobs are already waiting or running.
    fn insert_job(&self, job: &NewJob, runner: i64, now: i64) -> StoreResult<Option<Job>>;
    fn job(&self, id: i64) -> StoreResult<Option<Job>>;
    /// Applies `update` to the stored job in one transaction.
    fn update_job(&self, id: i64, update: &Update, runner: i64, now: i64) -> StoreResult<Updated>;
    /// Every queued or running job plus the newest `finished` finished ones, newest first.
    fn listed_jobs(&self, finished: usize) -> StoreResult<Vec<Job>>;
    /// After a restart: every unfinished job becomes queued and owned by `runner`; oldest first.
    fn adopt_unfinished_jobs(&self, runner: i64, now: i64) -> StoreResult<Vec<Job>>;
    /// Claims (see [`Update::Claim`]) at most `limit` jobs for `runner`, oldest first, skipping
    /// jobs another instance is claiming at the same moment.
    fn claim_jobs(&self, runner: i64, limit: usize, now: i64, until: i64) -> StoreResult<Vec<Job>>;
    /// Extends the claims of `runner`'s running jobs to `until` (0 gives them up); how many.
    fn renew_leases(&self, runner: i64, until: i64) -> StoreResult<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(state: JobState, moved: u32) -> Job {
        Job {
            id: 1,
            state,
            total: 10,
            moved,
            interval_ms: 5,
            fail_at: Some(4),
            error: None,
            runner: 7,
            lease_until: 10,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn runner_updates_need_the_right_state_and_owner() {
        let queued = job(JobState::Queued, 0);
        let claim = Update::Claim { until: 20 };
        let running = claim.apply(&queued, 7, 1).unwrap();
        assert_eq!(
            (running.state, running.lease_until),
            (JobState::Running, 20)
        );
        assert_eq!(
            claim.apply(&running, 8, 1),
            None,
            "claimed, and the claim holds"
        );
        let taken = claim.apply(&running, 8, 21).unwrap();
        assert_eq!(
            (taken.runner, taken.moved),
            (8, 0),
            "its claim lapsed: taken over"
        );
        assert_eq!(
            Update::Progress { moved: 1 }.apply(&taken, 7, 22),
            None,
            "the old runner's late writes are refused"
        );
        let moved = Update::Progress { moved: 3 }.apply(&running, 7, 2).unwrap();
        assert_eq!((moved.moved, moved.updated_at), (3, 2));
        let back = Update::Progress { moved: 2 }.apply(&moved, 7, 3).unwrap();
        assert_eq!(back.moved, 3, "progress never goes backwards");
        let done = Update::Finish.apply(&moved, 7, 4).unwrap();
        assert_eq!((done.state, done.moved), (JobState::Done, 10));
        assert_eq!(Update::Progress { moved: 4 }.apply(&done, 7, 5), None);
    }

    #[test]
    fn cancel_only_unfinished_and_retry_only_failed() {
        for state in JobState::ALL {
            let can_cancel = Update::Cancel.apply(&job(state, 2), 99, 1).is_some();
            assert_eq!(can_cancel, !state.is_finished(), "{state:?}");
            let can_retry = Update::Retry.apply(&job(state, 2), 99, 1).is_some();
            assert_eq!(can_retry, state == JobState::Failed, "{state:?}");
        }
    }

    #[test]
    fn a_retry_resumes_after_the_last_step_without_failing_again() {
        let running = job(JobState::Running, 3);
        let failed = Update::Fail {
            moved: 3,
            error: "boom".into(),
        }
        .apply(&running, 7, 1)
        .unwrap();
        assert_eq!(failed.error.as_deref(), Some("boom"));
        let retried = Update::Retry.apply(&failed, 9, 2).unwrap();
        assert_eq!(retried.state, JobState::Queued);
        assert_eq!(retried.moved, 3);
        assert_eq!(
            (retried.fail_at, retried.error, retried.runner),
            (None, None, 9)
        );
    }

    #[test]
    fn percent_has_two_decimals() {
        assert_eq!(percent(45, 100), "45.00");
        assert_eq!(percent(1, 3), "33.33");
        assert_eq!(percent(7, 7), "100.00");
    }
}
