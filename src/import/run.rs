//! The importer task: takes parsed items from the upload, stores them and tells the tab.
//!
//! The first `live_rows` rows are stored and published one by one; after them rows are stored
//! in one transaction per batch and only progress is published, at most every
//! [`PROGRESS_EVERY`], so the stream and the browser's DOM stay small whatever the file's size.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::parse::{Item, Reject};
use super::running::Ticket;
use super::views::{
    self, PagerView, ProgressView, RegionView, RejectView, RowView, SummaryView, TableView,
    ToastView, count, html,
};
use super::{
    ImportRecord, PAGER, PROGRESS, Progress, REGION, REJECTS, ROWS, SHOWN_REJECTS, SUMMARY, Status,
    TOASTED_REJECTS, TOASTS,
};
use crate::AppState;
use crate::clock;
use crate::hub::{Audience, Swap, push_partial};
use crate::store::{StoreError, call};

/// At most 20 progress updates a second, whatever the row rate.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(50);

/// What the upload hands the importer.
pub enum Feed {
    /// Items in file order; `bytes` is how much of the file they come from.
    Items { items: Vec<Item>, bytes: u64 },
    /// The file ended after `bytes`.
    End { bytes: u64 },
    /// The upload was refused midway.
    Fail(String),
}

/// Lets through one event per period.
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
}

impl Throttle {
    pub fn new(every: Duration) -> Throttle {
        Throttle { every, last: None }
    }

    pub fn ready(&mut self, now: Instant) -> bool {
        match self.last {
            Some(last) if now.duration_since(last) < self.every => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

pub struct Importer {
    state: AppState,
    ticket: Ticket,
    record: ImportRecord,
    /// Rows accepted so far, published or not.
    rows: u64,
    rejected: u64,
    bytes: u64,
    listed: usize,
    throttle: Throttle,
}

impl Importer {
    pub fn new(state: AppState, ticket: Ticket, record: ImportRecord) -> Importer {
        Importer {
            state,
            ticket,
            record,
            rows: 0,
            rejected: 0,
            bytes: 0,
            listed: 0,
            throttle: Throttle::new(PROGRESS_EVERY),
        }
    }

    /// Runs until the upload ends, fails or is cancelled; the tab is freed when it returns.
    pub async fn run(mut self, mut feed: mpsc::Receiver<Feed>) {
        let (status, message) = loop {
            let outcome = match feed.recv().await {
                None => break (Status::Failed, "the upload was interrupted".to_string()),
                Some(Feed::Fail(message)) => break (Status::Failed, message),
                Some(Feed::End { bytes }) => {
                    self.bytes = bytes;
                    break (Status::Done, String::new());
                }
                Some(Feed::Items { items, bytes }) => self.take(items, bytes).await,
            };
            match outcome {
                Err(e) => {
                    tracing::error!(error = %e, "import failed in storage");
                    break (Status::Failed, "a storage error stopped it".to_string());
                }
                Ok(()) if self.ticket.cancelled() => break (Status::Cancelled, String::new()),
                Ok(()) => {}
            }
        };
        drop(feed);
        if let Err(e) = self.finish(status, message).await {
            tracing::error!(error = %e, "could not record the end of an import");
        }
    }

    async fn take(&mut self, items: Vec<Item>, bytes: u64) -> Result<(), StoreError> {
        let (from, count) = (self.bytes, items.len().max(1) as u64);
        let mut items = items.into_iter().enumerate().peekable();
        // Live rows: one message each, so the table fills row by row.
        while self.rows < self.record.live_rows {
            let Some((i, item)) = items.next() else { break };
            if self.ticket.cancelled() {
                return Ok(());
            }
            let live_row = matches!(item, Item::Row(_));
            // The batch's bytes spread over its items, so the bar moves row by row too.
            let at = from + (bytes.saturating_sub(from)) * (i as u64 + 1) / count;
            self.store_and_publish(vec![item], at).await?;
            if live_row && !self.state.config.import.row_delay.is_zero() {
                tokio::time::sleep(self.state.config.import.row_delay).await;
            }
        }
        let rest: Vec<Item> = items.map(|(_, item)| item).collect();
        if !rest.is_empty() || bytes > self.bytes {
            self.store_and_publish(rest, bytes).await?;
        }
        Ok(())
    }

    /// Stores `items` in one transaction and publishes what the tab must see of them.
    async fn store_and_publish(&mut self, items: Vec<Item>, bytes: u64) -> Result<(), StoreError> {
        let first = self.rows + 1;
        let mut rows = Vec::with_capacity(items.len());
        let mut listed = Vec::new();
        let mut out = String::new();
        for item in items {
            match item {
                Item::Row(packed) => {
                    self.rows += 1;
                    if self.rows <= self.record.live_rows {
                        push_partial(
                            &mut out,
                            ROWS,
                            Swap::BeforeEnd,
                            &html(&RowView::new(&packed)),
                        );
                    }
                    rows.push(packed);
                }
                Item::Reject(reject) => {
                    self.rejected += 1;
                    if self.rejected <= TOASTED_REJECTS {
                        let title = format!("Row {} rejected", reject.row);
                        push_toast(&mut out, "warning", &title, &reject.reason);
                    }
                    if self.listed < SHOWN_REJECTS {
                        self.listed += 1;
                        push_partial(
                            &mut out,
                            REJECTS,
                            Swap::BeforeEnd,
                            &html(&RejectView::new(&reject)),
                        );
                        listed.push(reject);
                    }
                }
            }
        }
        self.bytes = bytes;
        let progress = self.throttle.ready(Instant::now()).then(|| {
            self.record.bytes = self.bytes;
            self.record.rows = self.rows;
            self.record.rejected = self.rejected;
            push_partial(
                &mut out,
                PROGRESS,
                Swap::InnerHtml,
                &html(&ProgressView::new(&self.record)),
            );
            Progress {
                bytes: self.bytes,
                rows: self.rows,
                rejected: self.rejected,
            }
        });
        let id = self.record.id;
        if out.is_empty() {
            return call(&self.state.store, move |s| {
                s.store_import_batch(id, first, &rows, &listed, progress)
            })
            .await;
        }
        let change = self.state.hub.change().await;
        call(&self.state.store, move |s| {
            s.store_import_batch(id, first, &rows, &listed, progress)
        })
        .await?;
        change.publish(Audience::Client(self.record.client), &out);
        Ok(())
    }

    async fn finish(&mut self, status: Status, message: String) -> Result<(), StoreError> {
        let record = &mut self.record;
        record.status = status;
        record.bytes = self.bytes;
        record.rows = self.rows;
        record.rejected = self.rejected;
        record.finished_at = Some(clock::now_ms());
        record.message = (!message.is_empty()).then_some(message);
        let mut out = String::new();
        push_partial(
            &mut out,
            SUMMARY,
            Swap::InnerHtml,
            &html(&SummaryView::new(record)),
        );
        push_partial(
            &mut out,
            PROGRESS,
            Swap::InnerHtml,
            &html(&ProgressView::new(record)),
        );
        push_partial(&mut out, PAGER, Swap::InnerHtml, &html(&pager(record)));
        if record.rejected > TOASTED_REJECTS {
            let more = record.rejected - TOASTED_REJECTS;
            let title = format!(
                "{} more {} rejected",
                views::grouped(more),
                if more == 1 { "row" } else { "rows" }
            );
            push_toast(&mut out, "warning", &title, &record.file_name);
        }
        let duration = views::seconds(record.finished_at.unwrap_or(0) - record.started_at);
        let counts = format!(
            "{} imported, {} rejected in {duration}",
            count(record.rows, "row"),
            views::grouped(record.rejected)
        );
        match status {
            Status::Done => push_toast(&mut out, "success", "Import finished", &counts),
            Status::Cancelled => push_toast(&mut out, "warning", "Import cancelled", &counts),
            _ => push_toast(
                &mut out,
                "error",
                "Import stopped",
                record.message.as_deref().unwrap_or(""),
            ),
        }
        let stored = record.clone();
        let change = self.state.hub.change().await;
        call(&self.state.store, move |s| s.end_import(&stored)).await?;
        change.publish(Audience::Client(self.record.client), &out);
        Ok(())
    }
}

/// The opening message of an import: the region reset to its empty table, and a toast.
pub fn start_html(record: &ImportRecord) -> String {
    let mut out = String::new();
    push_partial(
        &mut out,
        REGION,
        Swap::InnerHtml,
        &region_html(record, &[], &[]),
    );
    push_toast(&mut out, "info", "Import started", &record.file_name);
    out
}

/// The import region rendered from stored state: what the live messages build, message by
/// message, so a resync can replace the region with it.
pub fn region_html(record: &ImportRecord, rows: &[String], rejects: &[Reject]) -> String {
    let rows_html: String = rows.iter().map(|r| html(&RowView::new(r))).collect();
    let rejects_html: String = rejects.iter().map(|r| html(&RejectView::new(r))).collect();
    let table = TableView {
        header: &record.header,
        rows: rows_html,
        pager: html(&pager(record)),
    };
    html(&RegionView {
        summary: html(&SummaryView::new(record)),
        progress: html(&ProgressView::new(record)),
        rejects: rejects_html,
        table: html(&table),
    })
}

/// The first page's pager, once the import has ended (while it runs only progress moves).
fn pager(record: &ImportRecord) -> PagerView {
    let total = if record.status == Status::Running {
        0
    } else {
        record.rows
    };
    PagerView::new(record.client, 1, record.live_rows, total)
}

fn push_toast(out: &mut String, kind: &'static str, title: &str, body: &str) {
    push_partial(
        out,
        TOASTS,
        Swap::BeforeEnd,
        &html(&ToastView { kind, title, body }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::ClientId;
    use crate::import::cells;
    use uuid::Uuid;

    fn record(status: Status) -> ImportRecord {
        ImportRecord {
            id: 7,
            client: ClientId(Uuid::from_u128(0x1234)),
            file_name: "<b>data</b>.csv".into(),
            header: vec!["id".into(), "name".into(), "note".into()],
            status,
            live_rows: 2,
            total_bytes: Some(4000),
            bytes: 1000,
            rows: 1234,
            rejected: 5,
            started_at: 1_000,
            finished_at: (status != Status::Running).then_some(3_450),
            message: (status == Status::Failed)
                .then(|| "the file is larger than the 1 MB limit".into()),
        }
    }

    fn rows() -> Vec<String> {
        vec![
            cells::encode(["1", "Ada", "<script>alert(1)</script>"]),
            cells::encode(["2", "Zoë \"Z\" O'Brien", "a & b"]),
        ]
    }

    fn reject() -> Reject {
        Reject {
            row: 9,
            reason: "expected 3 fields, found <2>".into(),
        }
    }

    #[test]
    fn row_fragment() {
        insta::assert_snapshot!(html(&RowView::new(&rows()[0])));
    }

    #[test]
    fn progress_fragments() {
        let running = html(&ProgressView::new(&record(Status::Running)));
        let unknown_size = html(&ProgressView::new(&ImportRecord {
            total_bytes: None,
            ..record(Status::Running)
        }));
        let done = html(&ProgressView::new(&record(Status::Done)));
        insta::assert_snapshot!(format!("{running}\n---\n{unknown_size}\n---\n{done}"));
    }

    #[test]
    fn toast_and_reject_fragments() {
        let mut out = String::new();
        push_toast(
            &mut out,
            "warning",
            "Row 9 rejected",
            "expected 3 fields, found <2>",
        );
        out.push('\n');
        out.push_str(&html(&RejectView::new(&reject())));
        insta::assert_snapshot!(out);
    }

    #[test]
    fn summary_fragments() {
        let all: Vec<String> = [
            Status::Running,
            Status::Done,
            Status::Cancelled,
            Status::Failed,
            Status::Interrupted,
        ]
        .into_iter()
        .map(|s| html(&SummaryView::new(&record(s))))
        .collect();
        insta::assert_snapshot!(all.join("\n---\n"));
    }

    #[test]
    fn region_and_pager() {
        insta::assert_snapshot!(region_html(&record(Status::Done), &rows(), &[reject()]));
    }

    #[test]
    fn throttle_lets_one_through_per_period() {
        let mut t = Throttle::new(Duration::from_millis(50));
        let start = Instant::now();
        assert!(t.ready(start));
        assert!(!t.ready(start + Duration::from_millis(10)));
        assert!(!t.ready(start + Duration::from_millis(49)));
        assert!(t.ready(start + Duration::from_millis(50)));
        assert!(!t.ready(start + Duration::from_millis(60)));
        assert!(t.ready(start + Duration::from_secs(1)));
    }
}
