//! The jobs' fragments: cards, progress, the list, the live messages that change them (and their
//! JSON events), the form and the buttons' notice.

use askama::Template;
use askama_web::WebTemplate;
use axum::response::{IntoResponse, Response};

use super::input::{Limits, Typed};
use super::{FINISHED_SHOWN, Job, JobState, REGION, TOPIC};
use crate::AppState;
use crate::hub::{JsonEvent, Listed, Region, Swap, list_changes, list_html, partial};
use crate::store::{Store, StoreResult};
use crate::web::error::{ApiError, FormError};
use crate::web::input::FormFields;

/// A job's progress bar and count: what changes while it runs.
#[derive(Template)]
#[template(path = "jobs/progress.html")]
pub struct JobProgress {
    id: i64,
    moved: u32,
    total: u32,
    percent: String,
}

impl JobProgress {
    pub fn new(job: &Job) -> Self {
        JobProgress {
            id: job.id,
            moved: job.moved,
            total: job.total,
            percent: job.percent(),
        }
    }

    /// The id of the element that holds a job's progress.
    pub fn target(id: i64) -> String {
        format!("job-{id}-progress")
    }

    pub fn html(&self) -> String {
        self.render().expect("job progress template renders")
    }
}

/// A job's card: state, progress, error and the button that fits its state.
#[derive(Template)]
#[template(path = "jobs/card.html")]
pub struct JobCard<'a> {
    id: i64,
    state: JobState,
    moved: u32,
    total: u32,
    percent: String,
    interval_ms: u32,
    fail_at: Option<u32>,
    error: Option<&'a str>,
}

impl<'a> JobCard<'a> {
    pub fn new(job: &'a Job) -> Self {
        JobCard {
            id: job.id,
            state: job.state,
            moved: job.moved,
            total: job.total,
            percent: job.percent(),
            interval_ms: job.interval_ms,
            fail_at: job.fail_at,
            error: job.error.as_deref(),
        }
    }

    pub fn target(id: i64) -> String {
        format!("job-{id}")
    }

    pub fn html(&self) -> String {
        self.render().expect("job card template renders")
    }
}

/// The list region shows each job as its card, newest first (nothing when there are none:
/// the page says so).
impl Listed for Job {
    fn element_id(&self) -> String {
        JobCard::target(self.id)
    }

    fn element(&self) -> String {
        JobCard::new(self).html()
    }
}

/// The live message of a job's progress: its bar and count.
pub fn live_progress(job: &Job) -> String {
    partial(
        &JobProgress::target(job.id),
        Swap::InnerHtml,
        &JobProgress::new(job).html(),
    )
}

/// The live message of a job that started (claimed): its card, in place. A claim never moves a
/// card in or out of the list, so no list is read for it.
pub fn live_card(job: &Job) -> String {
    partial(
        &JobCard::target(job.id),
        Swap::OuterHtml,
        &JobCard::new(job).html(),
    )
}

/// The live message of any other change to job `changed`, from the list a page showed
/// (`before`, card ids) to the list now (`after`): its card replaced, or inserted where the
/// list puts it (by id, newest first), and the cards that left the list (finished jobs past
/// the newest [`FINISHED_SHOWN`]) removed; see `hub::list_changes`.
pub fn live_cards(before: &[String], after: &[Job], changed: i64) -> String {
    list_changes(REGION, before, after, Some(&JobCard::target(changed)))
}

/// The JSON event of a new job: the job as `POST /jobs` answers it.
pub fn created_json(job: &Job) -> JsonEvent {
    JsonEvent::new(TOPIC, "job.created", job)
}

/// The JSON event of any change to a job (started, progress, done, failed, cancelled, queued
/// again): the job as `GET /jobs/{id}` answers it.
pub fn updated_json(job: &Job) -> JsonEvent {
    JsonEvent::new(TOPIC, "job.updated", job)
}

/// The job list's region for a page or a resync.
pub fn regions(s: &dyn Store) -> StoreResult<Vec<Region>> {
    let jobs = s.listed_jobs(FINISHED_SHOWN)?;
    Ok(vec![Region {
        id: REGION,
        html: list_html(&jobs),
    }])
}

/// The jobs' state for a JSON resync: the queued and running ones, newest first.
pub fn json_state(s: &dyn Store) -> StoreResult<serde_json::Value> {
    let active = s.listed_jobs(0)?;
    Ok(serde_json::to_value(active).expect("jobs serialize"))
}

/// The form that starts a job; answers its own submissions.
#[derive(Template, WebTemplate)]
#[template(path = "jobs/form.html")]
pub struct JobForm {
    total: String,
    interval_ms: String,
    fail_at: String,
    error: FormError,
    started: Option<i64>,
    limits: Limits,
}

impl JobForm {
    pub fn blank(limits: &Limits) -> Self {
        JobForm {
            total: String::new(),
            interval_ms: String::new(),
            fail_at: String::new(),
            error: FormError::default(),
            started: None,
            limits: *limits,
        }
    }

    pub fn started(limits: &Limits, id: i64) -> Self {
        JobForm {
            started: Some(id),
            ..JobForm::blank(limits)
        }
    }

    /// Keeps what was typed, with the error beside it.
    pub fn failed(limits: &Limits, typed: &Typed, error: ApiError) -> Self {
        JobForm {
            total: typed.total.clone(),
            interval_ms: typed.interval_ms.clone(),
            fail_at: typed.fail_at.clone(),
            error: FormError::new(error, &["total", "interval_ms", "fail_at"]),
            ..JobForm::blank(limits)
        }
    }

    pub fn html(&self) -> String {
        self.render().expect("job form template renders")
    }
}

/// The answer to a page's cancel or retry button, shown under the form (a refusal is answered
/// as every refusal to the page's htmx is, see `web::negotiate`).
#[derive(Template, WebTemplate)]
#[template(path = "jobs/notice.html")]
pub struct Notice {
    pub text: String,
}

impl FormFields for Typed {
    fn unread(_: &AppState, error: ApiError) -> Response {
        JobForm::failed(&Limits::STANDARD, &Typed::default(), error).into_response()
    }
}
