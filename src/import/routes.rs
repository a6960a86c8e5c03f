//! The import's HTTP side: the upload (form and API), cancel, and the stored result page by page.

use std::time::Instant;

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use super::input::{announced_size, broken, clean_name, no_file, refused};
use super::intake::Intake;
use super::parse::ParseLimits;
use super::run::{Feed, Importer, PROGRESS_EVERY};
use super::views::{self, ImportForm, PagerView, RowView, Started, TableView, html};
use super::{ImportRecord, Status};
use crate::AppState;
use crate::clock;
use crate::hub::{ClientId, Publish};
use crate::store::{StoreError, StoreResult, call};
use crate::web::error::ApiError;
use crate::web::negotiate::Wants;
use crate::web::paging::Paging;
use crate::web::session::Tab;
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
    tab: Tab,
    wants: Wants,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let client = tab.client;
    let outcome = receive(&state, client, &headers, request).await;
    let max = state.config.import.max_upload_bytes;
    let response = match (outcome, wants == Wants::Fragment) {
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
    };
    tab.answer(response)
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
    let announced = announced_size(headers, limits.max_upload_bytes)?;
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
            None => return Err(no_file()),
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
    state
        .change(move |s| {
            let id = s.begin_import(&record, keep)?;
            let record = ImportRecord { id, ..record };
            let opening = Publish::client(record.client, views::opening(&record));
            Ok::<_, StoreError>((record, opening))
        })
        .await
        .map_err(ApiError::from)
}

async fn drain(mut field: axum::extract::multipart::Field<'_>) -> Result<(), ApiError> {
    while field.chunk().await.map_err(broken)?.is_some() {}
    Ok(())
}

/// `POST /upload/{client}/cancel`: stops the tab's running import.
pub async fn cancel(State(state): State<AppState>, tab: Tab) -> Result<StatusCode, ApiError> {
    if state.imports.cancel(tab.client) {
        Ok(StatusCode::ACCEPTED)
    } else {
        Err(ApiError::new(
            StatusCode::CONFLICT,
            "no import is running in this tab",
        ))
    }
}

/// `GET /import/{client}/rows?page=N`: one page of the tab's stored import, as the table. A
/// page is as long as the import's live table; past the last page is the last page.
pub async fn rows_page(
    State(state): State<AppState>,
    tab: Tab,
    wants: Wants,
    paging: Paging,
) -> Response {
    let (client, page) = (tab.client, paging.page as u64);
    let found = call(&state.store, move |s| -> StoreResult<_> {
        let Some(record) = s.latest_import(client)? else {
            return Ok(None);
        };
        let per = record.live_rows;
        let page = page.min(record.rows.div_ceil(per).max(1));
        let rows = s.import_rows(record.id, (page - 1) * per + 1, per)?;
        Ok(Some((record, page, rows)))
    })
    .await;
    match found {
        Ok(Some((record, page, rows))) => {
            let table = TableView {
                header: &record.header,
                rows: rows.iter().map(|r| html(&RowView::new(r))).collect(),
                pager: html(&PagerView::new(client, page, record.live_rows, record.rows)),
            };
            table.into_response()
        }
        Ok(None) => wants.error(ApiError::not_found("no import in this tab")),
        Err(e) => wants.error(e.into()),
    }
}
