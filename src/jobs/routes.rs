//! The jobs' HTTP endpoints: the page's form and buttons (HTML back) and the JSON API.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::runner::ChangeError;
use super::views::Notice;
use super::{Job, JobForm, JobInput, Limits, MAX_UNFINISHED};
use crate::AppState;
use crate::store::call;
use crate::web::error::ApiError;
use crate::web::input::{Input, is_htmx};

/// `POST /jobs`: JSON `{"total", "interval_ms", "fail_at"}` → 202 with the job, or the form.
pub async fn create(State(state): State<AppState>, input: Input<JobInput>) -> Response {
    let limits = Limits::STANDARD;
    match input {
        Input::Json(raw) => match start(&state, &raw, &limits).await {
            Ok(job) => (StatusCode::ACCEPTED, Json(job)).into_response(),
            Err(e) => e.into_response(),
        },
        Input::Form(raw) => match start(&state, &raw, &limits).await {
            Ok(job) => JobForm::started(&limits, job.id).into_response(),
            Err(e) => (e.status, JobForm::failed(&limits, &raw, e)).into_response(),
        },
    }
}

async fn start(state: &AppState, raw: &JobInput, limits: &Limits) -> Result<Job, ApiError> {
    let new = raw.validate(limits)?;
    state.jobs.create(new).await.map_err(|e| match e {
        ChangeError::Full => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{MAX_UNFINISHED} jobs are already queued or running; wait for some to finish"),
        ),
        other => refusal(other, 0, ""),
    })
}

/// `POST /jobs/{id}/cancel`: a queued or running job stops where it is; 409 once finished.
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = match parse_id(&id) {
        Ok(id) => state
            .jobs
            .cancel(id)
            .await
            .map_err(|e| refusal(e, id, "only queued or running jobs can be cancelled")),
        Err(e) => Err(e),
    };
    answer(result, &headers, |job| {
        format!("Job #{} cancelled.", job.id)
    })
}

/// `POST /jobs/{id}/retry`: a failed job queues again and resumes after its last step.
pub async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = match parse_id(&id) {
        Ok(id) => state
            .jobs
            .retry(id)
            .await
            .map_err(|e| refusal(e, id, "only failed jobs can be retried")),
        Err(e) => Err(e),
    };
    answer(result, &headers, |job| {
        format!(
            "Job #{} queued again; it resumes after step {}.",
            job.id, job.moved
        )
    })
}

/// `GET /jobs/{id}`: the job as JSON.
pub async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let found = match parse_id(&id) {
        Ok(id) => call(&state.store, move |s| s.job(id))
            .await
            .map_err(ApiError::from)
            .and_then(|job| job.ok_or_else(|| no_such_job(id))),
        Err(e) => Err(e),
    };
    match found {
        Ok(job) => Json(job).into_response(),
        Err(e) => e.into_response(),
    }
}

/// A job id from the path; anything that is not one names no job.
pub(super) fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::not_found("no such job"))
}

pub(super) fn no_such_job(id: i64) -> ApiError {
    ApiError::not_found(format!("no job with id {id}"))
}

fn refusal(e: ChangeError, id: i64, rule: &str) -> ApiError {
    match e {
        ChangeError::Missing => no_such_job(id),
        ChangeError::Refused(job) => ApiError::new(
            StatusCode::CONFLICT,
            format!("job {} is {}; {rule}", job.id, job.state.as_str()),
        ),
        ChangeError::Full => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too many jobs"),
        ChangeError::Store(e) => e.into(),
    }
}

/// The page's buttons get a line of HTML for the notice under the form; API callers get JSON.
fn answer(
    result: Result<Job, ApiError>,
    headers: &HeaderMap,
    said: impl FnOnce(&Job) -> String,
) -> Response {
    match (result, is_htmx(headers)) {
        (Ok(job), true) => Notice {
            ok: true,
            text: said(&job),
        }
        .into_response(),
        (Ok(job), false) => Json(job).into_response(),
        (Err(e), true) => (
            e.status,
            Notice {
                ok: false,
                text: e.message,
            },
        )
            .into_response(),
        (Err(e), false) => e.into_response(),
    }
}
