//! The import's HTTP side: the upload (form and API), cancel, and the stored result page by page.

use std::time::Instant;

use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::intake::{Intake, Refusal};
use super::parse::ParseLimits;
use super::run::{self, Feed, Importer, PROGRESS_EVERY};
use super::views::{self, ImportForm, PagerView, RowView, Started, TableView, html};
use super::{ImportRecord, Status};
use crate::AppState;
use crate::clock;
use crate::hub::{Audience, ClientId};
use crate::store::call;
use crate::web::error::{ApiError, FieldError};
use crate::web::input::is_htmx;
use crate::web::session::Session;

/// Multipart framing around the file (boundaries, part headers) that a request may add to it.
pub const MULTIPART_SLACK: u64 = 64 * 1024;
/// Rows per store transaction once past the live rows.
const BATCH: usize = 4096;
/// Batches in flight between the upload and the importer: the only buffer, and a small one.
const QUEUE: usize = 4;

/// `POST /upload/{client}`: the file in a multipart part named `file`.
///
/// Answered once the upload has been received, which with the rows streaming meanwhile is at
/// once for a browser; the import goes on in the background and streams on the tab's stream.
pub async fn upload(
    State(state): State<AppState>,
    Path(client): Path<String>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let session = Session::from_headers(&headers);
    let mut response = match session.own(&state.store, &client).await {
        Err(e) => e.into_response(),
        Ok(client) => {
            let outcome = receive(&state, client, &headers, request).await;
            let max = state.config.import.max_upload_bytes;
            match (outcome, is_htmx(&headers)) {
                (Ok(file_name), true) => {
                    let form = ImportForm {
                        started: Some(file_name),
                        ..ImportForm::blank(client, max)
                    };
                    (StatusCode::ACCEPTED, form).into_response()
                }
                (Ok(file_name), false) => {
                    let started = Started {
                        file_name: &file_name,
                        client,
                    };
                    (StatusCode::ACCEPTED, started).into_response()
                }
                (Err(e), true) => {
                    let form = ImportForm {
                        error: Some(e.message),
                        ..ImportForm::blank(client, max)
                    };
                    (e.status, form).into_response()
                }
                (Err(e), false) => e.into_response(),
            }
        }
    };
    if let Some((name, value)) = session.set_cookie() {
        response.headers_mut().insert(name, value);
    }
    response
}

/// Reads the upload, starts the import once the header and a first row are in, and feeds it
/// the rest as it arrives; returns the file's name.
async fn receive(
    state: &AppState,
    client: ClientId,
    headers: &HeaderMap,
    request: Request,
) -> Result<String, ApiError> {
    let limits = state.config.import;
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len > limits.max_upload_bytes + MULTIPART_SLACK) {
        return Err(too_large(&format!(
            "the file is larger than the {} limit",
            views::megabytes(limits.max_upload_bytes)
        )));
    }
    let is_multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !is_multipart {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the file as multipart/form-data, in a part named \"file\"",
        ));
    }
    let ticket = state.imports.start(client).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "an import is already running in this tab: cancel it or wait until it finishes",
        )
    })?;
    let mut multipart = Multipart::from_request(request, state)
        .await
        .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let mut field = loop {
        match multipart.next_field().await.map_err(broken)? {
            Some(field) if field.name() == Some("file") => break field,
            Some(_) => continue,
            None => {
                return Err(FieldError::new(
                    "file",
                    "no file was sent: put the CSV in a multipart part named \"file\"",
                )
                .into());
            }
        }
    };
    let file_name = clean_name(field.file_name());
    let parse = ParseLimits {
        max_columns: limits.max_columns,
        max_field_chars: limits.max_field_chars,
    };
    let mut intake = Intake::new(parse, limits.max_rows, limits.max_upload_bytes);
    // Nothing is stored until the file has shown a header and a first row.
    let mut ended = false;
    while intake.pending() == 0 {
        match field.chunk().await.map_err(broken)? {
            Some(chunk) => intake.push(&chunk).map_err(refused)?,
            None => {
                intake.end().map_err(refused)?;
                ended = true;
            }
        }
    }
    let record = ImportRecord {
        id: 0,
        client,
        file_name: file_name.clone(),
        header: intake.header.clone().unwrap_or_default(),
        status: Status::Running,
        live_rows: limits.live_rows,
        total_bytes: announced,
        bytes: 0,
        rows: 0,
        rejected: 0,
        started_at: clock::now_ms(),
        finished_at: None,
        message: None,
    };
    let record = begin(state, record).await?;
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(Importer::new(state.clone(), ticket, record).run(rx));
    let mut sent_at = Instant::now();
    let send = |intake: &mut Intake| Feed::Items {
        items: intake.take(),
        bytes: intake.bytes,
    };
    if tx.send(send(&mut intake)).await.is_err() {
        return drain(field).await.map(|()| file_name);
    }
    while !ended {
        let chunk = match field.chunk().await {
            Ok(chunk) => chunk,
            // The importer sees the channel close and records the interruption.
            Err(e) => return Err(broken(e)),
        };
        let result = match &chunk {
            Some(chunk) => intake.push(chunk),
            None => {
                ended = true;
                intake.end()
            }
        };
        if let Err(refusal) = result {
            let e = refused(refusal);
            let _ = tx.send(Feed::Fail(e.message.clone())).await;
            return Err(e);
        }
        let live = intake.records <= limits.live_rows;
        if intake.pending() >= BATCH || live || ended || sent_at.elapsed() >= PROGRESS_EVERY {
            sent_at = Instant::now();
            if tx.send(send(&mut intake)).await.is_err() {
                // Cancelled: the rest of the upload is read and dropped, so the answer is clean.
                return drain(field).await.map(|()| file_name);
            }
        }
    }
    let _ = tx
        .send(Feed::End {
            bytes: intake.bytes,
        })
        .await;
    Ok(file_name)
}

/// Stores the new import and opens it on the tab's stream.
async fn begin(state: &AppState, record: ImportRecord) -> Result<ImportRecord, ApiError> {
    let keep = state.config.import.keep;
    let change = state.hub.change().await;
    let stored = record.clone();
    let id = call(&state.store, move |s| s.begin_import(&stored, keep)).await?;
    let record = ImportRecord { id, ..record };
    change.publish(Audience::Client(record.client), &run::start_html(&record));
    Ok(record)
}

async fn drain(mut field: axum::extract::multipart::Field<'_>) -> Result<(), ApiError> {
    while field.chunk().await.map_err(broken)?.is_some() {}
    Ok(())
}

fn refused(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::NotCsv(m) => ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, m),
        Refusal::Invalid(m) => FieldError::new("file", m).into(),
        Refusal::TooLarge(m) => too_large(&m),
    }
}

fn too_large(message: &str) -> ApiError {
    ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: message.to_string(),
        field: Some("file"),
    }
}

fn broken(e: axum::extract::multipart::MultipartError) -> ApiError {
    let status = e.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return too_large("the upload is larger than the limit");
    }
    // The client stopped sending (the request body timeout): its doing, not the server's.
    let stalled = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
        .any(|e| e.is::<tower_http::timeout::TimeoutError>());
    if stalled {
        return ApiError::new(StatusCode::REQUEST_TIMEOUT, "the upload stopped arriving");
    }
    ApiError::new(
        status,
        format!("the upload could not be read: {}", e.body_text()),
    )
}

/// The name shown for the file: its last path component, bounded, or a stand-in.
fn clean_name(name: Option<&str>) -> String {
    let name = name
        .unwrap_or("")
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("")
        .trim();
    let name: String = name.chars().filter(|c| !c.is_control()).take(100).collect();
    if name.is_empty() {
        "upload.csv".to_string()
    } else {
        name
    }
}

/// `POST /upload/{client}/cancel`: stops the tab's running import.
pub async fn cancel(
    State(state): State<AppState>,
    Path(client): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let client = Session::from_headers(&headers)
        .own(&state.store, &client)
        .await?;
    if state.imports.cancel(client) {
        Ok(StatusCode::ACCEPTED)
    } else {
        Err(ApiError::new(
            StatusCode::CONFLICT,
            "no import is running in this tab",
        ))
    }
}

#[derive(Deserialize)]
pub struct PageQuery {
    page: Option<u64>,
}

/// `GET /import/{client}/rows?page=N`: one page of the tab's stored import, as the table.
pub async fn rows_page(
    State(state): State<AppState>,
    Path(client): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let client = Session::from_headers(&headers)
        .own(&state.store, &client)
        .await?;
    let page = query.page.unwrap_or(1).max(1);
    let found = call(&state.store, move |s| {
        let Some(record) = s.latest_import(client)? else {
            return Ok(None);
        };
        let per = record.live_rows;
        let page = page.min(record.rows.div_ceil(per).max(1));
        let rows = s.import_rows(record.id, (page - 1) * per + 1, per)?;
        Ok(Some((record, page, rows)))
    })
    .await?;
    let (record, page, rows) = found.ok_or_else(|| ApiError::not_found("no import in this tab"))?;
    let table = TableView {
        header: &record.header,
        rows: rows.iter().map(|r| html(&RowView::new(r))).collect(),
        pager: html(&PagerView::new(client, page, record.live_rows, record.rows)),
    };
    Ok(table.into_response())
}
