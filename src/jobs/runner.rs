//! Runs jobs: a claimer that takes queued jobs while this instance has free slots, one tokio
//! task per job it claimed, and one place where every job change is stored and published.
//!
//! Every change goes through [`Runner::apply`]: one at a time, checked by [`Update::apply`]
//! against the stored row, stored and published as every change is (`crate::change`), then
//! handed to the job's `watch` channel (what its task and its JSON event streams follow) in the
//! order the changes were stored.
//!
//! Jobs are claimed, oldest first, up to `HERALD_JOB_CONCURRENCY` running here at once; on
//! PostgreSQL any instance may claim a queued job (`FOR UPDATE SKIP LOCKED`). A claim is a
//! lease: this instance renews it while the job runs, and when the instance dies (kill -9) the
//! lease lapses and another instance claims the job and resumes it after its last stored step.
//! A task stops when its job finishes, is cancelled (here or on another instance: its next write
//! is refused), is taken over, or the app closes; on a graceful stop the leases are given up so
//! another instance takes the jobs over at once. A stopped or dead runner's late writes are
//! refused because the job is no longer its own (see `Job::runner`). SQLite has one instance:
//! at start it takes over every unfinished job.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::{Instant, MissedTickBehavior};
use uuid::Uuid;

use super::views::{created_json, live_card, live_cards, live_progress, updated_json};
use super::{FINISHED_SHOWN, Job, NewJob, REGION, Update, Updated};
use crate::hub::{Audience, Hub, Publish, list_ids};
use crate::store::{self, SharedStore, Store, StoreError, StoreResult};
use crate::{change, clock};

/// Progress is stored and published at most this often per job, whatever the step rate.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(100);
/// How long a task waits before trying a failed store write again.
const STORE_RETRY: Duration = Duration::from_secs(1);
/// How often the claimer looks for jobs without being woken (jobs queued on another instance,
/// leases that lapsed).
const CLAIM_POLL: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Runner {
    inner: Arc<Inner>,
}

struct Inner {
    /// This run of the app; stored with each job it drives.
    id: i64,
    store: SharedStore,
    hub: Hub,
    concurrency: usize,
    /// How long a claim holds without renewal.
    lease: Duration,
    /// Jobs running here.
    running: AtomicUsize,
    /// Wakes the claimer: a job was queued here, or a slot freed.
    claim: Notify,
    /// Held from a change's store write until its followers have it, so they get changes in
    /// the order they were stored.
    turn: tokio::sync::Mutex<()>,
    /// The current state of every job running here.
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
    /// Starts claiming and running jobs. On SQLite, every job a previous run left unfinished is
    /// queued again first (they resume from their last stored step). Must run inside a tokio
    /// runtime.
    pub async fn start(
        store: SharedStore,
        hub: Hub,
        concurrency: usize,
        lease: Duration,
    ) -> StoreResult<Runner> {
        let (hi, lo) = Uuid::new_v4().as_u64_pair();
        let id = ((hi ^ lo) >> 1) as i64;
        if !store.is_shared() {
            let adopted = store::call(&store, move |s| {
                s.adopt_unfinished_jobs(id, clock::now_ms())
            })
            .await?;
            if !adopted.is_empty() {
                tracing::info!(jobs = adopted.len(), "resuming unfinished jobs");
            }
        }
        let runner = Runner {
            inner: Arc::new(Inner {
                id,
                store,
                hub,
                concurrency,
                lease,
                running: AtomicUsize::new(0),
                claim: Notify::new(),
                turn: tokio::sync::Mutex::new(()),
                live: Mutex::new(HashMap::new()),
            }),
        };
        tokio::spawn(runner.clone().claimer());
        if runner.inner.store.is_shared() {
            tokio::spawn(runner.clone().renewer());
        }
        Ok(runner)
    }

    /// Stores a new queued job, shows it on every page and wakes the claimer.
    pub async fn create(&self, new: NewJob) -> Result<Job, ChangeError> {
        let runner = self.inner.id;
        let job = self
            .change(move |s| {
                let before = shown(s)?;
                let job = s
                    .insert_job(&new, runner, clock::now_ms())?
                    .ok_or(ChangeError::Full)?;
                let publish = cards(s, &before, &job).with_json(created_json(&job));
                Ok((job, publish))
            })
            .await?;
        self.inner.claim.notify_one();
        Ok(job)
    }

    pub async fn cancel(&self, id: i64) -> Result<Job, ChangeError> {
        self.apply(id, Update::Cancel).await
    }

    pub async fn retry(&self, id: i64) -> Result<Job, ChangeError> {
        let job = self.apply(id, Update::Retry).await?;
        self.inner.claim.notify_one();
        Ok(job)
    }

    /// The live state of a job running here; `None` otherwise (read the store).
    pub fn watch(&self, id: i64) -> Option<watch::Receiver<Job>> {
        let live = self.inner.live.lock().expect("live jobs lock");
        live.get(&id).map(watch::Sender::subscribe)
    }

    /// Stores `update`, publishes what it changed, and tells the job's followers.
    async fn apply(&self, id: i64, update: Update) -> Result<Job, ChangeError> {
        let runner = self.inner.id;
        self.change(move |s| {
            // Progress changes a bar in place; any other update can move cards in or out of
            // the list, which shows by comparing it before and after.
            let progress = matches!(update, Update::Progress { .. });
            let before = if progress { Vec::new() } else { shown(s)? };
            let job = match s.update_job(id, &update, runner, clock::now_ms())? {
                Updated::Applied(job) => job,
                Updated::Refused(job) => return Err(ChangeError::Refused(job)),
                Updated::Missing => return Err(ChangeError::Missing),
            };
            let publish = if progress {
                Publish::everyone(live_progress(&job))
            } else {
                cards(s, &before, &job)
            }
            .with_json(updated_json(&job));
            Ok((job, publish))
        })
        .await
    }

    /// One change of jobs, in turn; its jobs are handed to their followers here.
    async fn change<T: Followed + Send + 'static>(
        &self,
        write: impl FnOnce(&dyn Store) -> Result<(T, Publish), ChangeError> + Send + 'static,
    ) -> Result<T, ChangeError> {
        let _turn = self.inner.turn.lock().await;
        let value = change::apply(&self.inner.store, &self.inner.hub, write).await?;
        for job in value.jobs() {
            self.follow(job);
        }
        Ok(value)
    }

    /// Hands a job's new state to its followers here; a finished job's channel goes.
    fn follow(&self, job: &Job) {
        let mut live = self.inner.live.lock().expect("live jobs lock");
        if let Some(tx) = live.get(&job.id) {
            tx.send_replace(job.clone());
            if job.state.is_finished() || job.runner != self.inner.id {
                live.remove(&job.id);
            }
        }
    }

    /// After the app has closed: waits (briefly) for the jobs' tasks to end, then gives up
    /// their leases, so another instance takes them over at once rather than when they lapse.
    pub async fn stop(&self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.inner.running.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if self.inner.store.is_shared() {
            let runner = self.inner.id;
            let released = store::call(&self.inner.store, move |s| s.renew_leases(runner, 0));
            if let Err(e) = released.await {
                tracing::warn!(error = %e, "could not give up the jobs' leases");
            }
        }
    }

    /// Claims jobs while slots are free: when woken, and every [`CLAIM_POLL`].
    async fn claimer(self) {
        let mut closing = self.inner.hub.closing();
        loop {
            let free = self
                .inner
                .concurrency
                .saturating_sub(self.inner.running.load(Ordering::Relaxed));
            if free > 0 {
                match self.claim(free).await {
                    Ok(jobs) => {
                        for job in jobs.0 {
                            self.run(job);
                        }
                    }
                    Err(e) => tracing::debug!(error = ?e, "cannot claim jobs now"),
                }
            }
            tokio::select! {
                biased;
                _ = closing.wait_for(|closed| *closed) => return,
                _ = self.inner.claim.notified() => {}
                _ = tokio::time::sleep(CLAIM_POLL) => {}
            }
        }
    }

    /// Claims at most `limit` jobs and shows them running.
    async fn claim(&self, limit: usize) -> Result<Claimed, ChangeError> {
        let runner = self.inner.id;
        let until = clock::now_ms() + self.inner.lease.as_millis() as i64;
        self.change(move |s| {
            let jobs = s.claim_jobs(runner, limit, clock::now_ms(), until)?;
            let publish = jobs.iter().fold(Publish::nothing(), |publish, job| {
                publish
                    .and(Audience::Everyone, live_card(job))
                    .with_json(updated_json(job))
            });
            Ok((Claimed(jobs), publish))
        })
        .await
    }

    /// Starts the task of a job just claimed.
    fn run(&self, job: Job) {
        let (tx, rx) = watch::channel(job.clone());
        self.inner
            .live
            .lock()
            .expect("live jobs lock")
            .insert(job.id, tx);
        self.inner.running.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(self.clone().drive(job, rx));
    }

    /// Keeps the leases of the jobs running here from lapsing.
    async fn renewer(self) {
        let mut closing = self.inner.hub.closing();
        let every = self.inner.lease / 3;
        loop {
            tokio::select! {
                _ = closing.wait_for(|closed| *closed) => return,
                _ = tokio::time::sleep(every) => {}
            }
            if self.inner.running.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let runner = self.inner.id;
            let until = clock::now_ms() + self.inner.lease.as_millis() as i64;
            let renewed = store::call(&self.inner.store, move |s| s.renew_leases(runner, until));
            if let Err(e) = renewed.await {
                tracing::debug!(error = %e, "cannot renew the jobs' leases now");
            }
        }
    }

    /// One job's task: step until done, failed, cancelled, taken over or closing.
    async fn drive(self, job: Job, mut job_rx: watch::Receiver<Job>) {
        let _slot = Slot(self.clone());
        let mut closing = self.inner.hub.closing();
        let id = job.id;
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
                    // An outage is logged once, by the store.
                    if !e.is_unavailable() {
                        tracing::warn!(job = id, error = %e, "cannot store job progress; retrying");
                    }
                    tokio::select! {
                        _ = closing.wait_for(|closed| *closed) => return None,
                        _ = tokio::time::sleep(STORE_RETRY) => {}
                    }
                }
                Err(_) => {
                    self.forget(id);
                    return None;
                }
            }
        }
    }

    fn forget(&self, id: i64) {
        self.inner.live.lock().expect("live jobs lock").remove(&id);
    }
}

/// A running job's place: given back (and the claimer woken) when its task ends.
struct Slot(Runner);

impl Drop for Slot {
    fn drop(&mut self) {
        let inner = &self.0.inner;
        inner.running.fetch_sub(1, Ordering::Relaxed);
        inner.claim.notify_one();
    }
}

/// The jobs a change produced, for their followers.
trait Followed {
    fn jobs(&self) -> &[Job];
}

impl Followed for Job {
    fn jobs(&self) -> &[Job] {
        std::slice::from_ref(self)
    }
}

struct Claimed(Vec<Job>);

impl Followed for Claimed {
    fn jobs(&self) -> &[Job] {
        &self.0
    }
}

/// The cards pages show before a change that can add or drop one; the list is held until the
/// change commits, so no other such change comes between this read and its message.
fn shown(s: &dyn Store) -> StoreResult<Vec<String>> {
    s.hold_list(REGION)?;
    Ok(list_ids(&s.listed_jobs(FINISHED_SHOWN)?))
}

/// The cards a change to `changed` adds, replaces or drops, against the list pages showed
/// (`before`). A list that cannot be read is not sent: the change is stored, and pages catch up
/// on their next resync or reload.
fn cards(s: &dyn Store, before: &[String], changed: &Job) -> Publish {
    match s.listed_jobs(FINISHED_SHOWN) {
        Ok(after) => Publish::everyone(live_cards(before, &after, changed.id)),
        Err(e) => {
            tracing::error!(error = %e, "cannot render the job list");
            Publish::nothing()
        }
    }
}
