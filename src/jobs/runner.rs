//! Runs jobs: one tokio task per unfinished job, a semaphore for how many run at once (the rest
//! wait in line, oldest first), and one place where every job change is stored and published.
//!
//! Every change goes through [`Runner::apply`]: one at a time, checked by [`Update::apply`]
//! against the stored row, stored and published as every change is (`crate::change`), then
//! handed to the job's `watch` channel (what its task and its JSON event streams follow) in the
//! order the changes were stored. A task stops when its job finishes, is cancelled, or the hub closes; a stopped
//! app's late writes are refused because the next app took the jobs over (see `Job::runner`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, MissedTickBehavior};
use uuid::Uuid;

use super::views::{created_json, live_card, live_list, live_progress, updated_json};
use super::{FINISHED_SHOWN, Job, JobState, NewJob, Update, Updated};
use crate::hub::{Hub, Publish};
use crate::store::{SharedStore, Store, StoreError, StoreResult};
use crate::{change, clock};

/// Progress is stored and published at most this often per job, whatever the step rate.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(100);
/// How long a task waits before trying a failed store write again.
const STORE_RETRY: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Runner {
    inner: Arc<Inner>,
}

struct Inner {
    /// This run of the app; stored with each job it drives.
    id: i64,
    store: SharedStore,
    hub: Hub,
    slots: Arc<Semaphore>,
    /// Held from a change's store write until its followers have it, so they get changes in
    /// the order they were stored.
    turn: tokio::sync::Mutex<()>,
    /// The current state of every unfinished job.
    live: Mutex<HashMap<i64, watch::Sender<Job>>>,
}

/// Why a change was not made.
#[derive(Debug)]
pub enum ChangeError {
    Missing,
    /// Not allowed in the job's current state; the job as it is.
    Refused(Job),
    /// Too many jobs are waiting or running.
    Full,
    Store(StoreError),
}

impl From<StoreError> for ChangeError {
    fn from(e: StoreError) -> Self {
        ChangeError::Store(e)
    }
}

impl Runner {
    /// Takes over every job a previous run left unfinished (they resume from their last
    /// stored step) and starts running them. Must run inside a tokio runtime.
    pub fn start(store: SharedStore, hub: Hub, concurrency: usize) -> StoreResult<Runner> {
        let (hi, lo) = Uuid::new_v4().as_u64_pair();
        let id = ((hi ^ lo) >> 1) as i64;
        let adopted = store.adopt_unfinished_jobs(id, clock::now_ms())?;
        let runner = Runner {
            inner: Arc::new(Inner {
                id,
                store,
                hub,
                slots: Arc::new(Semaphore::new(concurrency)),
                turn: tokio::sync::Mutex::new(()),
                live: Mutex::new(HashMap::new()),
            }),
        };
        if !adopted.is_empty() {
            tracing::info!(jobs = adopted.len(), "resuming unfinished jobs");
        }
        for job in &adopted {
            runner.follow(job);
        }
        Ok(runner)
    }

    /// Stores a new queued job, shows it on every page and queues it to run.
    pub async fn create(&self, new: NewJob) -> Result<Job, ChangeError> {
        let _turn = self.inner.turn.lock().await;
        let runner = self.inner.id;
        let job = change::apply(&self.inner.store, &self.inner.hub, move |s| {
            let job = s
                .insert_job(&new, runner, clock::now_ms())?
                .ok_or(ChangeError::Full)?;
            let publish = list(s).with_json(created_json(&job));
            Ok::<_, ChangeError>((job, publish))
        })
        .await?;
        self.follow(&job);
        Ok(job)
    }

    pub async fn cancel(&self, id: i64) -> Result<Job, ChangeError> {
        self.apply(id, Update::Cancel).await
    }

    pub async fn retry(&self, id: i64) -> Result<Job, ChangeError> {
        self.apply(id, Update::Retry).await
    }

    /// The live state of an unfinished job; `None` once it has finished (read the store).
    pub fn watch(&self, id: i64) -> Option<watch::Receiver<Job>> {
        let live = self.inner.live.lock().expect("live jobs lock");
        live.get(&id).map(watch::Sender::subscribe)
    }

    /// Stores `update`, publishes what it changed, and tells the job's followers.
    async fn apply(&self, id: i64, update: Update) -> Result<Job, ChangeError> {
        let _turn = self.inner.turn.lock().await;
        let runner = self.inner.id;
        let job = change::apply(&self.inner.store, &self.inner.hub, move |s| {
            let job = match s.update_job(id, &update, runner, clock::now_ms())? {
                Updated::Applied(job) => job,
                Updated::Refused(job) => return Err(ChangeError::Refused(job)),
                Updated::Missing => return Err(ChangeError::Missing),
            };
            let publish = match update {
                Update::Progress { .. } => Publish::everyone(live_progress(&job)),
                Update::Start => Publish::everyone(live_card(&job)),
                _ => list(s),
            }
            .with_json(updated_json(&job));
            Ok::<_, ChangeError>((job, publish))
        })
        .await?;
        self.follow(&job);
        Ok(job)
    }

    /// Hands the job's new state to its followers; a job that (again) waits gets a task.
    fn follow(&self, job: &Job) {
        let mut live = self.inner.live.lock().expect("live jobs lock");
        if job.state == JobState::Queued {
            let (tx, rx) = watch::channel(job.clone());
            live.insert(job.id, tx);
            tokio::spawn(self.clone().drive(job.id, rx));
        } else if let Some(tx) = live.get(&job.id) {
            tx.send_replace(job.clone());
            if job.state.is_finished() {
                live.remove(&job.id);
            }
        }
    }

    /// One job's task: wait for a slot, then step until done, failed, cancelled or closing.
    async fn drive(self, id: i64, mut job_rx: watch::Receiver<Job>) {
        let mut closing = self.inner.hub.closing();
        let _slot = tokio::select! {
            biased;
            _ = closing.wait_for(|closed| *closed) => return,
            _ = job_rx.wait_for(|job| job.state.is_finished()) => return,
            slot = self.inner.slots.clone().acquire_owned() => slot.expect("semaphore stays open"),
        };
        let Some(job) = self.settle(id, Update::Start, &mut closing).await else {
            return;
        };
        let period = Duration::from_millis(job.interval_ms.into());
        let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let mut moved = job.moved;
        let mut last_saved = Instant::now();
        loop {
            tokio::select! {
                biased;
                _ = closing.wait_for(|closed| *closed) => return,
                _ = job_rx.wait_for(|job| job.state.is_finished()) => return,
                _ = ticks.tick() => {}
            }
            let step = moved + 1;
            let update = if job.fail_at == Some(step) {
                Update::Fail {
                    moved,
                    error: format!("simulated failure at step {step}"),
                }
            } else if step >= job.total {
                Update::Finish
            } else {
                moved = step;
                if last_saved.elapsed() < PUBLISH_EVERY {
                    continue;
                }
                last_saved = Instant::now();
                Update::Progress { moved }
            };
            let last = !matches!(update, Update::Progress { .. });
            if self.settle(id, update, &mut closing).await.is_none() || last {
                return;
            }
        }
    }

    /// Applies one of the task's own updates, retrying while the store fails. `None` when the
    /// job is no longer this task's to change (cancelled, taken over) or the app is closing.
    async fn settle(
        &self,
        id: i64,
        update: Update,
        closing: &mut watch::Receiver<bool>,
    ) -> Option<Job> {
        loop {
            match self.apply(id, update.clone()).await {
                Ok(job) => return Some(job),
                Err(ChangeError::Store(e)) => {
                    tracing::warn!(job = id, error = %e, "cannot store job progress; retrying");
                    tokio::select! {
                        _ = closing.wait_for(|closed| *closed) => return None,
                        _ = tokio::time::sleep(STORE_RETRY) => {}
                    }
                }
                Err(_) => return None,
            }
        }
    }
}

/// The whole list, for changes that can add or drop a card. A list that cannot be read is not
/// sent: the change is stored, and pages catch up on their next resync or reload.
fn list(s: &dyn Store) -> Publish {
    match s.listed_jobs(FINISHED_SHOWN) {
        Ok(jobs) => Publish::everyone(live_list(&jobs)),
        Err(e) => {
            tracing::error!(error = %e, "cannot render the job list");
            Publish::nothing()
        }
    }
}
