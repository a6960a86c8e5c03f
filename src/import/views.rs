//! The import's fragments. Everything from the file (names, cells, reasons) is escaped by askama.

use askama::Template;
use askama_web::WebTemplate;

use super::parse::Reject;
use super::{ImportRecord, Status, cells};
use crate::hub::ClientId;

/// The whole import region of a tab, as a page or a resync shows it.
#[derive(Template)]
#[template(path = "import/region.html")]
pub struct RegionView {
    pub summary: String,
    pub progress: String,
    pub rejects: String,
    pub table: String,
}

#[derive(Template)]
#[template(path = "import/empty.html")]
pub struct EmptyView;

#[derive(Template)]
#[template(path = "import/summary.html")]
pub struct SummaryView<'a> {
    status: Status,
    file_name: &'a str,
    client: ClientId,
    rows: String,
    rejected: String,
    duration: String,
    message: &'a str,
}

impl<'a> SummaryView<'a> {
    pub fn new(record: &'a ImportRecord) -> Self {
        SummaryView {
            status: record.status,
            file_name: &record.file_name,
            client: record.client,
            rows: count(record.rows, "row"),
            rejected: grouped(record.rejected),
            duration: seconds(record.finished_at.unwrap_or(record.started_at) - record.started_at),
            message: record.message.as_deref().unwrap_or(""),
        }
    }
}

#[derive(Template)]
#[template(path = "import/progress.html")]
pub struct ProgressView {
    percent: Option<u64>,
    rows: String,
    rejected: String,
}

impl ProgressView {
    /// Bytes read of the upload's size; 100% only once the import has ended.
    pub fn new(record: &ImportRecord) -> Self {
        let percent = if record.status != Status::Running {
            Some(100)
        } else {
            record
                .total_bytes
                .filter(|total| *total > 0)
                .map(|total| (record.bytes * 100 / total).min(99))
        };
        ProgressView {
            percent,
            rows: count(record.rows, "row"),
            rejected: grouped(record.rejected),
        }
    }
}

#[derive(Template)]
#[template(path = "import/row.html")]
pub struct RowView<'a> {
    cells: Vec<&'a str>,
}

impl<'a> RowView<'a> {
    pub fn new(packed: &'a str) -> Self {
        RowView {
            cells: cells::decode(packed),
        }
    }
}

#[derive(Template)]
#[template(path = "import/reject.html")]
pub struct RejectView<'a> {
    row: u64,
    reason: &'a str,
}

impl<'a> RejectView<'a> {
    pub fn new(reject: &'a Reject) -> Self {
        RejectView {
            row: reject.row,
            reason: &reject.reason,
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "import/table.html")]
pub struct TableView<'a> {
    pub header: &'a [String],
    pub rows: String,
    pub pager: String,
}

#[derive(Template)]
#[template(path = "import/pager.html")]
pub struct PagerView {
    client: ClientId,
    page: u64,
    pages: u64,
    first: String,
    last: String,
    total: u64,
    total_text: String,
}

impl PagerView {
    pub fn new(client: ClientId, page: u64, per_page: u64, total: u64) -> Self {
        let pages = total.div_ceil(per_page).max(1);
        let page = page.clamp(1, pages);
        PagerView {
            client,
            page,
            pages,
            first: grouped((page - 1) * per_page + 1),
            last: grouped((page * per_page).min(total)),
            total,
            total_text: grouped(total),
        }
    }
}

#[derive(Template)]
#[template(path = "import/toast.html")]
pub struct ToastView<'a> {
    pub kind: &'static str,
    pub title: &'a str,
    pub body: &'a str,
}

/// The upload form; answers its own submissions like every form of the page.
#[derive(Template, WebTemplate)]
#[template(path = "import/form.html")]
pub struct ImportForm {
    pub client: ClientId,
    pub max_size: String,
    pub error: Option<String>,
    pub started: Option<String>,
}

impl ImportForm {
    pub fn blank(client: ClientId, max_bytes: u64) -> Self {
        ImportForm {
            client,
            max_size: megabytes(max_bytes),
            error: None,
            started: None,
        }
    }

    pub fn html(&self) -> String {
        html(self)
    }
}

/// The API's answer to an upload: a small fragment.
#[derive(Template, WebTemplate)]
#[template(path = "import/started.html")]
pub struct Started<'a> {
    pub file_name: &'a str,
    pub client: ClientId,
}

/// Renders a fragment; the templates have no fallible parts.
pub fn html(t: &impl Template) -> String {
    t.render().expect("import template renders")
}

/// `1234567` → `1,234,567`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn count(n: u64, noun: &str) -> String {
    format!("{} {noun}{}", grouped(n), if n == 1 { "" } else { "s" })
}

pub fn seconds(ms: i64) -> String {
    format!("{:.2} s", ms.max(0) as f64 / 1000.0)
}

pub fn megabytes(bytes: u64) -> String {
    if bytes < 1_000_000 {
        return format!("{} KB", (bytes as f64 / 1000.0).round());
    }
    format!("{} MB", (bytes as f64 / 1_000_000.0 * 10.0).round() / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(count(1, "row"), "1 row");
        assert_eq!(count(2000, "row"), "2,000 rows");
        assert_eq!(seconds(1234), "1.23 s");
        assert_eq!(megabytes(104_857_600), "104.9 MB");
        assert_eq!(megabytes(10_000), "10 KB");
    }
}
