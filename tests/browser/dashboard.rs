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
            vec![el.to_json(), Value::from(property)],
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
            vec![button.to_json()],
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
