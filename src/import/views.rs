//! The import's fragments and the messages made of them. Everything from the file (names,
//! cells, reasons) is escaped by askama.

use askama::Template;
use askama_web::WebTemplate;

use super::parse::Reject;
use super::{
    ImportRecord, PAGER, PROGRESS, REGION, SUMMARY, Status, TOASTED_REJECTS, TOASTS, cells,
};
use crate::hub::{ClientId, Region, Swap, push_partial};
use crate::store::{Store, StoreResult};

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

/// The opening message of an import: the region reset to its empty table, and a toast.
pub fn opening(record: &ImportRecord) -> String {
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

pub fn push_toast(out: &mut String, kind: &'static str, title: &str, body: &str) {
    push_partial(
        out,
        TOASTS,
        Swap::BeforeEnd,
        &html(&ToastView { kind, title, body }),
    );
}

/// The closing message of an import: summary, progress at 100%, the pager, and toasts saying
/// how it ended.
pub fn finished(record: &ImportRecord) -> String {
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
            grouped(more),
            if more == 1 { "row" } else { "rows" }
        );
        push_toast(&mut out, "warning", &title, &record.file_name);
    }
    let duration = seconds(record.finished_at.unwrap_or(0) - record.started_at);
    let counts = format!(
        "{} imported, {} rejected in {duration}",
        count(record.rows, "row"),
        grouped(record.rejected)
    );
    match record.status {
        Status::Done => push_toast(&mut out, "success", "Import finished", &counts),
        Status::Cancelled => push_toast(&mut out, "warning", "Import cancelled", &counts),
        _ => push_toast(
            &mut out,
            "error",
            "Import stopped",
            record.message.as_deref().unwrap_or(""),
        ),
    }
    out
}

/// The tab's import region for a page or a resync.
pub fn regions(s: &dyn Store, client: ClientId) -> StoreResult<Vec<Region>> {
    let html = match s.latest_import(client)? {
        None => html(&EmptyView),
        Some(record) => {
            let rows = s.import_rows(record.id, 1, record.live_rows)?;
            let rejects = s.import_rejects(record.id)?;
            region_html(&record, &rows, &rejects)
        }
    };
    Ok(vec![Region { id: REGION, html }])
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
    use uuid::Uuid;

    use super::*;

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
