//! The jobs' HTTP endpoints: the page's form and buttons (HTML back) and the JSON API.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::input::{JsonBody, Limits, Typed};
use super::runner::ChangeError;
use super::views::{JobForm, Notice};
use super::{Job, MAX_UNFINISHED, NewJob};
use crate::AppState;
use crate::store::call;
use crate::web::error::{ApiError, FieldError};
use crate::web::id::{self, Id, Named};
use crate::web::input::Input;
use crate::web::negotiate::Wants;

/// `POST /jobs`: JSON `{"total", "interval_ms", "fail_at"}` → 202 with the job, or the form.
pub async fn create(State(state): State<AppState>, input: Input<JsonBody, Typed>) -> Response {
    let limits = Limits::STANDARD;
    match input {
        Input::Json(body) => match start(&state, body.validate(&limits)).await {
            Ok(job) => (StatusCode::ACCEPTED, Json(job)).into_response(),
            Err(e) => e.into_response(),
        },
        Input::Form(typed) => match start(&state, typed.validate(&limits)).await {
            Ok(job) => JobForm::started(&limits, job.id).into_response(),
            Err(e) => (e.status, JobForm::failed(&limits, &typed, e)).into_response(),
        },
    }
}

async fn start(state: &AppState, new: Result<NewJob, FieldError>) -> Result<Job, ApiError> {
    state.jobs.create(new?).await.map_err(|e| match e {
        ChangeError::Full => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{MAX_UNFINISHED} jobs are already queued or running; wait for some to finish"),
        ),
        other => refusal(other, 0, ""),
    })
}

/// `POST /jobs/{id}/cancel`: a queued or running job stops where it is; 409 once finished.
pub async fn cancel(State(state): State<AppState>, wants: Wants, id: Id<Job>) -> Response {
    let done = state.jobs.cancel(id.get()).await;
    let rule = "only queued or running jobs can be cancelled";
    answer(wants, done.map_err(|e| refusal(e, id.get(), rule)), |job| {
        format!("Job #{} cancelled.", job.id)
    })
}

/// `POST /jobs/{id}/retry`: a failed job queues again and resumes after its last step.
pub async fn retry(State(state): State<AppState>, wants: Wants, id: Id<Job>) -> Response {
    let done = state.jobs.retry(id.get()).await;
    let rule = "only failed jobs can be retried";
    answer(wants, done.map_err(|e| refusal(e, id.get(), rule)), |job| {
        format!(
            "Job #{} queued again; it resumes after step {}.",
            job.id, job.moved
        )
    })
}

/// `GET /jobs/{id}`: the job as JSON.
pub async fn show(State(state): State<AppState>, id: Id<Job>) -> Result<Json<Job>, ApiError> {
    let id = id.get();
    call(&state.store, move |s| s.job(id))
        .await?
        .map(Json)
        .ok_or_else(|| id::missing(Job::NAME, id))
}

fn refusal(e: ChangeError, id: i64, rule: &str) -> ApiError {
    match e {
        ChangeError::Missing => id::missing(Job::NAME, id),
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
    wants: Wants,
    result: Result<Job, ApiError>,
    said: impl FnOnce(&Job) -> String,
) -> Response {
    match result {
        Ok(job) if wants == Wants::Fragment => Notice { text: said(&job) }.into_response(),
        Ok(job) => Json(job).into_response(),
        Err(e) => wants.error(e),
    }
}
