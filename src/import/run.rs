//! The importer task: takes parsed items from the upload, stores them and tells the tab.
//!
//! The first `live_rows` rows are stored and published one by one; after them rows are stored
//! in one transaction per batch and only progress is published, at most every
//! [`PROGRESS_EVERY`], so the stream and the browser's DOM stay small whatever the file's size.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::parse::Item;
use super::running::Ticket;
use super::views::{self, ProgressView, RejectView, RowView, html, push_toast};
use super::{
    Batch, ImportRecord, PROGRESS, Progress, REJECTS, ROWS, SHOWN_REJECTS, Status, TOASTED_REJECTS,
};
use crate::AppState;
use crate::clock;
use crate::hub::{Publish, Swap, push_partial};
use crate::store::StoreError;

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
        let (first, rejected_before) = (self.rows + 1, self.rejected);
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
        let (id, client) = (self.record.id, self.record.client);
        let (stored, rejected) = (self.rows + 1 - first, self.rejected - rejected_before);
        self.state
            .change(move |s| {
                let batch = Batch {
                    first,
                    rows: &rows,
                    rejects: &listed,
                    progress,
                };
                s.store_import_batch(id, &batch)?;
                Ok::<_, StoreError>(((), Publish::client(client, out)))
            })
            .await?;
        self.state.metrics.import_rows(stored, rejected);
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
        let stored = record.clone();
        self.state
            .change(move |s| {
                s.end_import(&stored)?;
                let html = views::finished(&stored);
                Ok::<_, StoreError>(((), Publish::client(stored.client, html)))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
