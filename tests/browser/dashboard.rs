//! What a person does with the dashboard (open it, post, notify) and what the tests wait for,
//! as helpers over [`Browser`]. Every wait polls for a condition with a deadline; nothing sleeps
//! in place of checking.

use std::time::Duration;

use serde_json::{Value, json};

use crate::webdriver::{Browser, Element};

/// How long a live update may take to show.
pub const LIVE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

pub const CONNECTED: &str = "connected · last heartbeat";

/// Polls `check` until it gives `Some`, or panics naming `what` after `timeout`.
pub async fn wait_for<T>(what: &str, timeout: Duration, check: impl AsyncFn() -> Option<T>) -> T {
    wait_for_or(timeout, check)
        .await
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Polls `check` until it gives `Some`; `None` once `timeout` has passed.
pub async fn wait_for_or<T>(timeout: Duration, check: impl AsyncFn() -> Option<T>) -> Option<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(found) = check().await {
            return Some(found);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the first element matching `css` shows text containing `needle`; returns it.
pub async fn wait_text(browser: &Browser, css: &str, needle: &str) -> String {
    let last = std::sync::Mutex::new(None);
    let found = wait_for_or(LIVE, async || {
        let text = browser.text_of(css).await;
        *last.lock().unwrap() = text.clone();
        text.filter(|text| text.contains(needle))
    })
    .await;
    found.unwrap_or_else(|| {
        panic!(
            "timed out after {LIVE:?} waiting for {needle:?} in {css}; it shows {:?}",
            last.lock().unwrap()
        )
    })
}

pub async fn wait_element(browser: &Browser, css: &str) -> Element {
    wait_for(css, LIVE, async || browser.find(css).await).await
}

/// Loads the dashboard in the current window and waits until its stream is connected (the
/// indicator is sent first on every stream), then marks the page so a reload would show.
pub async fn open(browser: &Browser, url: &str) {
    browser.goto(url).await;
    let connected = wait_for_or(LIVE, async || {
        browser
            .text_of("#status")
            .await
            .filter(|t| t.contains(CONNECTED))
    })
    .await;
    if connected.is_none() {
        let state = browser
            .execute(
                "let live = document.getElementById('live'); \
                 return {ready: document.readyState, htmx: typeof htmx, \
                  powered: live?.hasAttribute('data-htmx-powered'), \
                  stream: live?._htmx?.sse?.status ?? 'none', \
                  status: document.getElementById('status')?.textContent, \
                  resources: performance.getEntriesByType('resource').map(e => e.name)}",
                vec![],
            )
            .await;
        panic!(
            "{url} never connected: {state:#}\nconsole: {:#?}",
            browser.console().await
        );
    }
    browser
        .execute("window.heraldTestPage = true", vec![])
        .await;
}

/// Whether this is still the page [`open`] loaded (live updates must never reload it).
pub async fn assert_not_reloaded(browser: &Browser) {
    let same = browser
        .execute("return window.heraldTestPage === true", vec![])
        .await;
    assert_eq!(same, json!(true), "the page was reloaded");
}

/// Posts `message` through the board form, as a person types and clicks.
pub async fn post_board(browser: &Browser, message: &str) {
    let input = wait_element(browser, "#board-input").await;
    browser.clear(&input).await;
    browser.send_keys(&input, message).await;
    let button = wait_element(browser, "#board-form button[type=submit]").await;
    browser.click(&button).await;
    wait_text(browser, "#board-form .form-ok", "Posted to every open page").await;
    let input = wait_element(browser, "#board-input").await;
    assert_eq!(
        browser.property(&input, "value").await,
        json!(""),
        "the form comes back empty"
    );
}

/// Sends a notification through the page's form.
pub async fn notify(browser: &Browser, kind: &str, title: &str, body: &str) {
    let radio = wait_element(browser, &format!("#notify-form input[value={kind}]")).await;
    browser.click(&radio).await;
    for (css, text) in [("#notify-title", title), ("#notify-body", body)] {
        let field = wait_element(browser, css).await;
        browser.clear(&field).await;
        browser.send_keys(&field, text).await;
    }
    let button = wait_element(browser, "#notify-form button[type=submit]").await;
    browser.click(&button).await;
    wait_text(browser, "#notify-form .form-ok", "Sent to every open page").await;
}

/// The computed value of a CSS property of `el`.
pub async fn computed(browser: &Browser, el: &Element, property: &str) -> String {
    let value = browser
        .execute(
            "return getComputedStyle(arguments[0]).getPropertyValue(arguments[1])",
            vec![json!(el), Value::from(property)],
        )
        .await;
    value.as_str().unwrap_or_default().to_string()
}

pub async fn is_hidden(browser: &Browser) -> bool {
    browser.execute("return document.hidden", vec![]).await == json!(true)
}

/// Console errors Chromium logged since the last read (a failed request counts).
pub async fn console_errors(browser: &Browser) -> Vec<String> {
    browser
        .console()
        .await
        .into_iter()
        .filter(|entry| entry.level == "SEVERE")
        .map(|entry| entry.message)
        .collect()
}

pub async fn assert_console_clean(browser: &Browser) {
    let errors = console_errors(browser).await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}

/// Types `fields` (css, text) into a form, submits it with its submit button, and waits until
/// the form has been swapped for its answer (the old one goes stale: a confirmation left over
/// from an earlier submission cannot pass for this one's). Returns the answer's `.form-ok` text.
async fn submit_form(browser: &Browser, form: &str, fields: &[(&str, &str)]) -> String {
    for (css, text) in fields {
        let field = wait_element(browser, css).await;
        browser.clear(&field).await;
        browser.send_keys(&field, text).await;
    }
    let old = wait_element(browser, form).await;
    let button = wait_element(browser, &format!("{form} button[type=submit]")).await;
    browser.click(&button).await;
    wait_for(&format!("{form} to be answered"), LIVE, async || {
        browser.text(&old).await.is_none().then_some(())
    })
    .await;
    let ok = format!("{form} .form-ok");
    wait_for(&ok, LIVE, async || browser.text_of(&ok).await).await
}

/// The first whole number in `text` (the id in "Offer 2 added…", "Job #3 queued.").
fn first_number(text: &str) -> i64 {
    let digits: String = text
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number in {text:?}"))
}

/// Adds an offer through the page's form; returns the id the form reports.
pub async fn add_offer(browser: &Browser, description: &str, value: &str) -> i64 {
    let fields = [("#offer-description", description), ("#offer-value", value)];
    let said = submit_form(browser, "#offer-form", &fields).await;
    assert!(said.contains("added to every open page"), "{said}");
    first_number(&said)
}

/// Starts a job through the page's form; returns the id the form reports.
pub async fn start_job(browser: &Browser, total: u32, interval_ms: u32) -> i64 {
    let (total, interval_ms) = (total.to_string(), interval_ms.to_string());
    let fields = [
        ("#jobs-form input[name=total]", total.as_str()),
        ("#jobs-form input[name=interval_ms]", interval_ms.as_str()),
    ];
    let said = submit_form(browser, "#jobs-form", &fields).await;
    assert!(said.contains("queued"), "{said}");
    first_number(&said)
}

/// What a job's card shows.
#[derive(Debug, Clone, PartialEq)]
pub struct JobView {
    /// The state badge's text (`textContent`: CSS shows it upper-case).
    pub state: String,
    /// The card's classes (`job job-running`, …).
    pub class: String,
    /// The progress bar's value and max.
    pub value: f64,
    pub max: f64,
    /// "12 / 30 · 40.00%".
    pub count: String,
    pub can_cancel: bool,
}

/// The card of job `id` as the page shows it now, if there is one. One script reads it all,
/// so the parts come from the same moment.
pub async fn job_view(browser: &Browser, id: i64) -> Option<JobView> {
    let view = browser
        .execute(
            "let card = document.getElementById('job-' + arguments[0]);
             if (!card) return null;
             let bar = card.querySelector(`#job-${arguments[0]}-progress progress`);
             return {state: card.querySelector('.job-state')?.textContent.trim(),
                     class: card.className, value: bar?.value, max: bar?.max,
                     count: card.querySelector('.job-count')?.textContent.trim(),
                     can_cancel: !!card.querySelector('button[hx-post$=\"/cancel\"]')}",
            vec![Value::from(id)],
        )
        .await;
    if view.is_null() {
        return None;
    }
    let text = |key: &str| view[key].as_str().unwrap_or_default().to_string();
    Some(JobView {
        state: text("state"),
        class: text("class"),
        value: view["value"].as_f64().expect("a progress bar"),
        max: view["max"].as_f64().expect("a progress bar"),
        count: text("count"),
        can_cancel: view["can_cancel"] == json!(true),
    })
}

/// One row of the dashboard's offers table.
#[derive(Debug, Clone, PartialEq)]
pub struct OfferView {
    /// The row's element id (`offer-1`).
    pub id: String,
    /// Each cell's text: id, description, value, time, the delete button.
    pub cells: Vec<String>,
    /// Whether it carries the one-shot highlight class, and the animation that class runs.
    pub fresh: bool,
    pub animation: String,
}

impl OfferView {
    /// The text of cell `n`; empty if the row has no such cell (a malformed row still reports).
    fn cell(&self, n: usize) -> String {
        self.cells.get(n).cloned().unwrap_or_default()
    }
}

/// The rows of `#offers-body`, top to bottom (only rows that landed in the table body: a `<tr>`
/// the parser dropped or put elsewhere is not one of them).
pub async fn offer_rows(browser: &Browser) -> Vec<OfferView> {
    let rows = browser
        .execute(
            "return Array.from(document.querySelectorAll('#offers-body > tr'), row => ({
                 id: row.id, cells: Array.from(row.cells, c => c.textContent.trim()),
                 fresh: row.classList.contains('offer-fresh'),
                 animation: getComputedStyle(row).animationName}))",
            vec![],
        )
        .await;
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    rows.as_array()
        .expect("a list of rows")
        .iter()
        .map(|row| OfferView {
            id: text(&row["id"]),
            cells: row["cells"]
                .as_array()
                .expect("cells")
                .iter()
                .map(text)
                .collect(),
            fresh: row["fresh"] == json!(true),
            animation: text(&row["animation"]),
        })
        .collect()
}

/// Waits until the offers table shows exactly `expected` (id, description, value), top to
/// bottom; returns its rows.
pub async fn wait_offers(browser: &Browser, expected: &[(i64, &str, &str)]) -> Vec<OfferView> {
    let last = std::sync::Mutex::new(Vec::new());
    let found = wait_for_or(LIVE, async || {
        let rows = offer_rows(browser).await;
        let shown: Vec<(String, String, String)> = rows
            .iter()
            .map(|r| (r.cell(0), r.cell(1), r.cell(2)))
            .collect();
        let wanted: Vec<(String, String, String)> = expected
            .iter()
            .map(|(id, d, v)| (id.to_string(), d.to_string(), v.to_string()))
            .collect();
        let matches = shown == wanted
            && rows
                .iter()
                .zip(expected)
                .all(|(r, e)| r.id == format!("offer-{}", e.0));
        *last.lock().unwrap() = rows.clone();
        matches.then_some(rows)
    })
    .await;
    found.unwrap_or_else(|| {
        panic!(
            "timed out after {LIVE:?} waiting for the offers {expected:?}; the table shows {:#?}",
            last.lock().unwrap()
        )
    })
}

/// Scrolls the element matching `css` into view (before a screenshot).
pub async fn scroll_to(browser: &Browser, css: &str) {
    let el = wait_element(browser, css).await;
    browser
        .execute("arguments[0].scrollIntoView()", vec![json!(el)])
        .await;
}

// CSV import (scenario 2 and the README screenshot).

/// Picks the file at `path` in the page's import form, as a person does, and submits it; waits
/// until the form confirms the import of a file of that name started.
pub async fn upload(browser: &Browser, path: &std::path::Path) {
    let input = wait_element(browser, "#import-file").await;
    // Typing a path into a file input is how WebDriver picks a file.
    let absolute = path.to_str().expect("a UTF-8 path");
    browser.send_keys(&input, absolute).await;
    let button = wait_element(browser, "#import-form button[type=submit]").await;
    // Toasts stack over the bottom right corner, where the button is in a short window: as a
    // person would, bring the form up first.
    browser
        .execute(
            "arguments[0].scrollIntoView({block: 'start'})",
            vec![json!(button)],
        )
        .await;
    browser.click(&button).await;
    let name = path.file_name().expect("a file name").to_string_lossy();
    wait_text(
        browser,
        "#import-form .form-ok",
        &format!("Import of {name} started"),
    )
    .await;
}

/// What the import region shows at one moment: its table rows and its progress bar's value
/// (`None` while the bar has no value, or there is no bar).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSample {
    pub rows: usize,
    pub percent: Option<u64>,
}

pub async fn import_sample(browser: &Browser) -> ImportSample {
    let sample = browser
        .execute(
            "return {rows: document.querySelectorAll('#import-rows tr').length, \
              percent: document.querySelector('#import-progress progress')?.getAttribute('value')}",
            vec![],
        )
        .await;
    ImportSample {
        rows: sample["rows"].as_u64().expect("a row count") as usize,
        percent: sample["percent"]
            .as_str()
            .map(|p| p.parse().expect("a percent")),
    }
}

/// Samples the import region as fast as the driver answers until `done` holds; returns every
/// distinct sample in the order seen. Panics after `timeout`.
pub async fn watch_import(
    browser: &Browser,
    timeout: Duration,
    done: impl Fn(&ImportSample) -> bool,
) -> Vec<ImportSample> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen: Vec<ImportSample> = Vec::new();
    loop {
        let sample = import_sample(browser).await;
        let finished = done(&sample);
        if seen.last() != Some(&sample) {
            seen.push(sample);
        }
        if finished {
            return seen;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} watching the import; it showed {seen:?}"
        );
    }
}

/// The cells of every row of the import table, as text.
pub async fn import_rows(browser: &Browser) -> Vec<Vec<String>> {
    let rows = browser
        .execute(
            "return Array.from(document.querySelectorAll('#import-rows tr'), \
               tr => Array.from(tr.cells, td => td.textContent))",
            vec![],
        )
        .await;
    serde_json::from_value(rows).expect("rows of cells")
}

/// The text of every toast of `kind` the page holds, shown or already faded (a faded toast
/// stays in the DOM, hidden), in order; whitespace collapsed.
pub async fn toasts(browser: &Browser, kind: &str) -> Vec<String> {
    let texts = browser
        .execute(
            "return Array.from(document.querySelectorAll(arguments[0]), \
               t => t.textContent.replace(/\\s+/g, ' ').trim())",
            vec![Value::from(format!("#toasts .toast.toast-{kind}"))],
        )
        .await;
    serde_json::from_value(texts).expect("toast texts")
}

/// Waits for a toast of `kind` whose text contains `needle`; returns its text.
pub async fn wait_toast(browser: &Browser, kind: &str, needle: &str) -> String {
    let what = format!("a {kind} toast saying {needle:?}");
    wait_for(&what, LIVE, async || {
        let all = toasts(browser, kind).await;
        all.into_iter().find(|t| t.contains(needle))
    })
    .await
}

/// Sizes the window so the page's viewport (what a screenshot shows) is `width`×`height`.
pub async fn set_viewport(browser: &Browser, width: u32, height: u32) {
    let chrome = browser
        .execute(
            "return [outerWidth - innerWidth, outerHeight - innerHeight]",
            vec![],
        )
        .await;
    let extra = |i: usize| chrome[i].as_u64().expect("a size") as u32;
    browser.resize(width + extra(0), height + extra(1)).await;
    let size = json!([width, height]);
    wait_for("the viewport size", LIVE, async || {
        let now = browser
            .execute("return [innerWidth, innerHeight]", vec![])
            .await;
        (now == size).then_some(())
    })
    .await;
}
