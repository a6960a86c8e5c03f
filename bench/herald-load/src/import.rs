//! Import mode: upload a generated N-row CSV to Herald's `POST /upload/{client}` (multipart part
//! `file`) and time it until the tab's stream says it is done (a toast or summary containing the
//! completion needle), watching the server's memory meanwhile.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;

use crate::args::{Args, Target};
use crate::http::{self, Conn};
use crate::report::Report;
use crate::run::Context;
use crate::server::{Server, rss_bytes};
use crate::sse::Lines;
use crate::target::{Endpoint, Tab, exchange};

/// How often server memory is sampled for the peak.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

pub async fn import(
    args: &Args,
    rows: u64,
    needle: &str,
    ctx: &Context,
    deadline: Instant,
) -> Report {
    let mut report = Report {
        rows: Some(rows),
        ..ctx.report(args, "herald", "import")
    };
    let Some(server) = Server::start_or_report(Target::Herald, args, &mut report).await else {
        return report;
    };
    if let Err(e) = upload(args, &server, rows, needle, deadline, &mut report).await {
        report.error = Some(format!("{e}\n{}", server.log_tail()));
    }
    server.stop().await;
    report
}

async fn upload(
    args: &Args,
    server: &Server,
    rows: u64,
    needle: &str,
    deadline: Instant,
    report: &mut Report,
) -> io::Result<()> {
    let endpoint = Endpoint::new(Target::Herald, server.addr, args);
    let csv = generate_csv(rows);
    let mut page = Conn::new(http::connect(server.addr, None).await?);
    let (path, cookie, _) = endpoint.load_page(&mut page).await?;
    let tab = Tab {
        path,
        cookie,
        source: None,
    };
    let client = client_of(&tab.path).ok_or_else(|| http::bad("stream URL names no client"))?;
    let (mut stream, head) = endpoint.open_tab(&tab, None).await?;
    let cookie = tab.cookie;

    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = server.rss();
    let peak = Arc::new(AtomicU64::new(before));
    let sampler = tokio::spawn(sample_peak(server_pids_rss(server), peak.clone()));

    let cpu_before = server.cpu();
    let started = Instant::now();
    let (body, content_type) = multipart(&csv);
    let mut headers = vec![
        ("Content-Type", content_type.as_str()),
        ("Sec-Fetch-Site", "same-origin"),
    ];
    if let Some(c) = &cookie {
        headers.push(("Cookie", c));
    }
    let request = http::request(
        "POST",
        &format!("/upload/{client}"),
        &endpoint.host(),
        &headers,
        &body,
    );
    drop(body);
    let mut post = Conn::new(http::connect(server.addr, None).await?);
    let (answer, text) = exchange(&mut post, &request).await?;
    if !(200..300).contains(&answer.status) {
        sampler.abort();
        return Err(http::bad(&format!(
            "POST /upload: status {}: {}",
            answer.status,
            String::from_utf8_lossy(&text[..text.len().min(300)])
        )));
    }
    let mut lines = Lines::default();
    let mut done = false;
    let needle = needle.as_bytes();
    let watch = stream.read_body(&head, |piece| {
        lines.feed(piece, &mut |line| {
            done = done || (line.starts_with(b"data:") && http::find(line, needle).is_some());
        });
        !done
    });
    let finished = tokio::time::timeout_at(deadline, watch).await;
    let secs = started.elapsed().as_secs_f64();
    sampler.abort();
    match finished {
        Err(_) => {
            return Err(io::Error::other(
                "the import did not finish before --max-seconds",
            ));
        }
        Ok(Err(e)) => return Err(e),
        Ok(Ok(())) if !done => {
            return Err(io::Error::other(
                "the stream ended before the import finished",
            ));
        }
        Ok(Ok(())) => {}
    }
    report.cpu_secs = Some(server.cpu() - cpu_before);
    report.import_secs = Some(secs);
    report.rows_per_sec = Some(rows as f64 / secs);
    report.rss_before = before;
    report.rss_growth = Some(peak.load(Relaxed).saturating_sub(before));
    Ok(())
}

/// A closure over the server's measured pids, for the sampling task.
fn server_pids_rss(server: &Server) -> impl Fn() -> u64 + Send + 'static {
    let pids = server.pids();
    move || pids.iter().map(|&p| rss_bytes(p)).sum()
}

async fn sample_peak(rss: impl Fn() -> u64, peak: Arc<AtomicU64>) {
    loop {
        peak.fetch_max(rss(), Relaxed);
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

/// The client id in `/sse/{client}?cursor=…`.
fn client_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/sse/")?;
    Some(rest.split(['?', '/']).next().unwrap_or(rest))
}

/// `rows` rows of `id,name,email,city,amount,date`, deterministic, realistic widths.
pub fn generate_csv(rows: u64) -> Vec<u8> {
    const NAMES: [&str; 8] = [
        "Ada", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances",
    ];
    const CITIES: [&str; 6] = ["Lisbon", "Oslo", "Kyoto", "Austin", "Nairobi", "Lyon"];
    let mut out = Vec::with_capacity(rows as usize * 56 + 64);
    out.extend_from_slice(b"id,name,email,city,amount,date\n");
    for id in 1..=rows {
        let name = NAMES[(id % 8) as usize];
        let city = CITIES[(id % 6) as usize];
        let cents = (id * 7919) % 100_000;
        let day = 1 + id % 28;
        let month = 1 + (id / 28) % 12;
        let line = format!(
            "{id},{name} {id},{}{id}@example.com,{city},{}.{:02},2026-{month:02}-{day:02}\n",
            name.to_lowercase(),
            cents / 100,
            cents % 100
        );
        out.extend_from_slice(line.as_bytes());
    }
    out
}

/// The multipart/form-data body with the CSV as part `file`, and its content type.
fn multipart(csv: &[u8]) -> (Vec<u8>, String) {
    let boundary = format!("----herald-load-{:x}", crate::streams::now_us());
    let mut body = Vec::with_capacity(csv.len() + 256);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"load.csv\"\r\n\
             Content-Type: text/csv\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(csv);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (body, format!("multipart/form-data; boundary={boundary}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_a_header_and_n_well_formed_rows() {
        let csv = String::from_utf8(generate_csv(100)).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "id,name,email,city,amount,date");
        assert_eq!(lines.len(), 101);
        assert!(lines[1..].iter().all(|l| l.split(',').count() == 6));
        assert!(lines[100].starts_with("100,"));
    }

    #[test]
    fn multipart_wraps_the_file_part() {
        let (body, content_type) = multipart(b"a,b\n");
        let boundary = content_type.split("boundary=").nth(1).unwrap();
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.contains("name=\"file\"") && text.contains("\r\n\r\na,b\n\r\n"));
        assert!(text.ends_with(&format!("--{boundary}--\r\n")));
    }

    #[test]
    fn finds_the_client_in_the_stream_url() {
        assert_eq!(client_of("/sse/abc-1?cursor=1-2-3"), Some("abc-1"));
        assert_eq!(client_of("/other"), None);
    }
}
