//! CSV import (from the Nest/Next SSE demo): a tab uploads a CSV and watches it arrive on its own
//! stream, row by row for the first page, then as progress and counts, with toasts.
//!
//! The upload is checked ([`input`]), parsed as it arrives (`intake`) and fed through a
//! bounded channel to the importer task (`run`), which stores rows in batches and publishes on
//! the tab's private log. Every publish is the change it announces (`crate::change`), so the
//! import region rendered from the store ([`regions`]) is exactly what the live messages built.

mod cells;
pub mod input;
mod intake;
pub mod mock;
mod parse;
mod routes;
mod run;
mod running;
mod views;

use crate::hub::ClientId;
use crate::store::StoreResult;
pub use input::MULTIPART_SLACK;
pub use mock::{data_csv, mock_csv};
pub use parse::Reject;
pub use routes::{cancel, rows_page, upload};
pub use running::Running;
pub use views::{ImportForm, regions};

pub const REGION: &str = "import-region";
const SUMMARY: &str = "import-summary";
const PROGRESS: &str = "import-progress";
const REJECTS: &str = "import-rejects";
const ROWS: &str = "import-rows";
const PAGER: &str = "import-pager";
const TOASTS: &str = "toasts";
/// Rejected rows listed (and stored) with their reason; past them only the count grows.
pub const SHOWN_REJECTS: usize = 20;
/// Rejected rows that get a toast of their own; the rest are summed up in one.
pub const TOASTED_REJECTS: u64 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Running,
    Done,
    Cancelled,
    Failed,
    /// Running when the server stopped.
    Interrupted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Done => "done",
            Status::Cancelled => "cancelled",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Status {
        match s {
            "running" => Status::Running,
            "done" => Status::Done,
            "cancelled" => Status::Cancelled,
            "failed" => Status::Failed,
            _ => Status::Interrupted,
        }
    }
}

/// One import as stored. Its counts are those last published, never ahead of the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRecord {
    pub id: i64,
    pub client: ClientId,
    pub file_name: String,
    pub header: Vec<String>,
    pub status: Status,
    /// Rows streamed one by one, and the page size of the stored result.
    pub live_rows: u64,
    /// The upload's size when announced (`Content-Length`), for the progress bar.
    pub total_bytes: Option<u64>,
    pub bytes: u64,
    pub rows: u64,
    pub rejected: u64,
    /// Unix milliseconds.
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub message: Option<String>,
}

/// Counts as published with a progress update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub bytes: u64,
    pub rows: u64,
    pub rejected: u64,
}

/// What one transaction of an import stores: rows numbered from `first` on, the rejects to
/// list, and the progress to show.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    pub first: u64,
    pub rows: &'a [String],
    pub rejects: &'a [Reject],
    pub progress: Option<Progress>,
}

pub trait ImportStore {
    /// Stores a new import (its `id` is assigned and returned). Drops the client's previous
    /// imports and all but the newest `keep` of everyone's, so the database stays bounded.
    fn begin_import(&self, new: &ImportRecord, keep: usize) -> StoreResult<i64>;
    /// Stores `batch` in one transaction. Fails if the import was removed meanwhile.
    fn store_import_batch(&self, id: i64, batch: &Batch<'_>) -> StoreResult<()>;
    fn end_import(&self, record: &ImportRecord) -> StoreResult<()>;
    fn latest_import(&self, client: ClientId) -> StoreResult<Option<ImportRecord>>;
    /// Packed rows `from..from+limit` (numbered from 1), in order.
    fn import_rows(&self, id: i64, from: u64, limit: u64) -> StoreResult<Vec<String>>;
    fn import_rejects(&self, id: i64) -> StoreResult<Vec<Reject>>;
}

/// The header as stored: packed like a row.
pub fn pack_header(names: &[String]) -> String {
    cells::encode(names.iter().map(String::as_str))
}

pub fn unpack_header(packed: &str) -> Vec<String> {
    cells::decode(packed)
        .into_iter()
        .map(str::to_string)
        .collect()
}
