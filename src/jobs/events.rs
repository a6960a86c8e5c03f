//! Progress as JSON for API clients: `GET /events` (the original demo) and
//! `GET /jobs/{id}/events` (one job). Both send `data: {"moved","total","percent"}`.

use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use tokio::sync::watch;

use super::runner::PUBLISH_EVERY;
use super::{Job, JobState, percent};
use crate::AppState;
use crate::hub::{frame, periodic};
use crate::store::{SharedStore, call};
use crate::web::error::ApiError;
use crate::web::id::{self, Id, Named};
use crate::web::sse;

/// The demo task of `GET /events`: 0 → 100 in steps of one every 100 ms, then again.
const DEMO_TOTAL: u32 = 100;
const DEMO_EVERY: Duration = Duration::from_millis(100);

#[derive(Serialize)]
struct Progress {
    moved: u32,
    total: u32,
    percent: String,
}

/// The last message of a job's stream: its progress plus how it ended.
#[derive(Serialize)]
struct Final<'a> {
    moved: u32,
    total: u32,
    percent: String,
    state: JobState,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

fn progress(moved: u32, total: u32) -> Bytes {
    let data = Progress {
        moved,
        total,
        percent: percent(moved, total),
    };
    frame::message(None, &serde_json::to_string(&data).expect("plain struct"))
}

fn ending(job: &Job) -> Bytes {
    let data = Final {
        moved: job.moved,
        total: job.total,
        percent: job.percent(),
        state: job.state,
        error: job.error.as_deref(),
    };
    frame::message(
        Some("end"),
        &serde_json::to_string(&data).expect("plain struct"),
    )
}

/// `GET /events`: each connection runs its own demo task, forever (until the app stops).
pub async fn demo_events(State(state): State<AppState>) -> Response {
    let mut moved = 0;
    sse::response(periodic::every(
        DEMO_EVERY,
        state.hub.closing(),
        move || {
            let chunk = progress(moved, DEMO_TOTAL);
            moved = demo_next(moved);
            async move { chunk }
        },
    ))
}

/// The demo's next step: one more, or 0 again after 100%.
fn demo_next(moved: u32) -> u32 {
    if moved >= DEMO_TOTAL { 0 } else { moved + 1 }
}

/// `GET /jobs/{id}/events`: the job's progress as it changes (at most ~10 a second), then one
/// `event: end` message with its final state, then the stream ends. A finished job gets just
/// that last message.
pub async fn job_events(State(state): State<AppState>, id: Id<Job>) -> Response {
    let id = id.get();
    let job_rx = match state.jobs.watch(id) {
        Some(rx) => rx,
        // Not running here: queued, finished, or running on another instance.
        None => match call(&state.store, move |s| s.job(id)).await {
            Ok(Some(job)) => stored(state.store.clone(), job),
            Ok(None) => return id::missing(Job::NAME, id).into_response(),
            Err(e) => return ApiError::from(e).into_response(),
        },
    };
    let keep_alive = state.hub.config().heartbeat;
    sse::response(follow(job_rx, state.hub.closing(), keep_alive))
}

/// A job not running here, as the store has it: read again every [`PUBLISH_EVERY`] (the rate
/// its progress is stored at) until it finishes or nobody follows it.
fn stored(store: SharedStore, job: Job) -> watch::Receiver<Job> {
    let id = job.id;
    let finished = job.state.is_finished();
    let (tx, rx) = watch::channel(job);
    if !finished {
        tokio::spawn(async move {
            while !tx.is_closed() {
                tokio::time::sleep(PUBLISH_EVERY).await;
                match call(&store, move |s| s.job(id)).await {
                    Ok(Some(job)) => {
                        let finished = job.state.is_finished();
                        tx.send_if_modified(|old| {
                            let changed = *old != job;
                            *old = job;
                            changed
                        });
                        if finished {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(_) => {}
                }
            }
        });
    }
    rx
}

struct Follow {
    job_rx: watch::Receiver<Job>,
    closing: watch::Receiver<bool>,
    sent: Option<u32>,
    /// A queued job can wait long without news; a comment now and then keeps proxies from
    /// closing the idle connection.
    keep_alive: Duration,
}

fn follow(
    job_rx: watch::Receiver<Job>,
    closing: watch::Receiver<bool>,
    keep_alive: Duration,
) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static {
    let start = Follow {
        job_rx,
        closing,
        sent: None,
        keep_alive,
    };
    futures_util::stream::unfold(Some(start), |follow| async move {
        let mut f = follow?;
        loop {
            let job = f.job_rx.borrow_and_update().clone();
            if job.state.is_finished() {
                return Some((Ok(ending(&job)), None));
            }
            if f.sent != Some(job.moved) {
                f.sent = Some(job.moved);
                return Some((Ok(progress(job.moved, job.total)), Some(f)));
            }
            let quiet = tokio::select! {
                biased;
                _ = f.closing.wait_for(|closed| *closed) => return None,
                changed = f.job_rx.changed() => changed.ok().map(|()| false)?,
                _ = tokio::time::sleep(f.keep_alive) => true,
            };
            if quiet {
                return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), Some(f)));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_counts_to_100_and_starts_over() {
        let steps: Vec<u32> = std::iter::successors(Some(0), |m| Some(demo_next(*m)))
            .take(103)
            .collect();
        assert_eq!(steps[..3], [0, 1, 2]);
        assert_eq!(steps[99..], [99, 100, 0, 1]);
        let last = String::from_utf8(progress(100, DEMO_TOTAL).to_vec()).unwrap();
        assert_eq!(
            last,
            "data: {\"moved\":100,\"total\":100,\"percent\":\"100.00\"}\n\n"
        );
    }
}
