use askama::Template;
use askama_web::WebTemplate;

use super::{Job, JobInput, JobState, Limits};
use crate::web::error::ApiError;

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

/// The list region: one card per job, newest first.
pub struct JobList {
    html: String,
}

impl JobList {
    pub fn new(jobs: &[Job]) -> Self {
        let html = if jobs.is_empty() {
            "<p class=\"muted\">No jobs yet. Start one above.</p>".to_string()
        } else {
            jobs.iter().map(|job| JobCard::new(job).html()).collect()
        };
        JobList { html }
    }

    pub fn html(self) -> String {
        self.html
    }
}

/// The form that starts a job; answers its own submissions.
#[derive(Template, WebTemplate)]
#[template(path = "jobs/form.html")]
pub struct JobForm {
    total: String,
    interval_ms: String,
    fail_at: String,
    error: Option<(&'static str, String)>,
    started: Option<i64>,
    limits: Limits,
}

impl JobForm {
    pub fn blank(limits: &Limits) -> Self {
        JobForm {
            total: String::new(),
            interval_ms: String::new(),
            fail_at: String::new(),
            error: None,
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
    pub fn failed(limits: &Limits, raw: &JobInput, error: ApiError) -> Self {
        JobForm {
            total: JobInput::text(raw.total.as_ref()),
            interval_ms: JobInput::text(raw.interval_ms.as_ref()),
            fail_at: JobInput::text(raw.fail_at.as_ref()),
            error: Some((error.field.unwrap_or(""), error.message)),
            ..JobForm::blank(limits)
        }
    }

    pub fn html(&self) -> String {
        self.render().expect("job form template renders")
    }

    fn field_error(&self, field: &str) -> Option<&str> {
        self.error
            .as_ref()
            .filter(|(f, _)| *f == field)
            .map(|(_, m)| m.as_str())
    }
}

/// The answer to a page's cancel or retry button, shown under the form.
#[derive(Template, WebTemplate)]
#[template(path = "jobs/notice.html")]
pub struct Notice {
    pub ok: bool,
    pub text: String,
}
