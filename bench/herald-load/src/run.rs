//! One fan-out run against one server: measure it idle, open the streams, measure again, publish,
//! wait for the deliveries, and turn what was observed into a [`Report`].

use std::io;
use std::time::Duration;

use tokio::time::Instant;

use crate::args::{Args, Target};
use crate::fleet::Fleet;
use crate::http::{self, Conn};
use crate::publish::{Connections, publish};
use crate::report::{Report, ServerCounts};
use crate::server::Server;
use crate::sse::{Marker, Messages};
use crate::streams::{Observed, Plan, Reader, now_us};
use crate::target::{Endpoint, exchange};

/// Extra time allowed for the streams to open beyond what the open rate needs.
const OPEN_SLACK: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Context {
    pub run: String,
    pub date: String,
    pub machine: String,
    pub commit: String,
}

impl Context {
    /// A report of this run against `target` in `mode`, its figures still to be filled in.
    pub fn report(&self, args: &Args, target: &str, mode: &str) -> Report {
        Report {
            run: self.run.clone(),
            date: self.date.clone(),
            machine: self.machine.clone(),
            commit: self.commit.clone(),
            label: args.label.clone(),
            pinned: args.pin == Some(true),
            target: target.into(),
            mode: mode.into(),
            ..Report::default()
        }
    }
}

pub async fn fanout(args: &Args, target: Target, ctx: &Context, deadline: Instant) -> Report {
    let mut report = Report {
        streams: args.streams as u64,
        messages: args.messages,
        rate: args.rate,
        payload: args.payload.map(|p| p as u64),
        ..ctx.report(args, target.name(), "fanout")
    };
    let Some(server) = Server::start_or_report(target, args, &mut report).await else {
        return report;
    };
    let endpoint = Endpoint::new(target, server.addr, args);
    if let Err(e) = measure(args, endpoint, &server, deadline, &mut report).await {
        report.error = Some(format!("{e}{}", tail(&server)));
    }
    server.stop().await;
    report
}

fn tail(server: &Server) -> String {
    let log = server.log_tail();
    if log.trim().is_empty() {
        String::new()
    } else {
        format!("\nserver log:\n{log}")
    }
}

async fn measure(
    args: &Args,
    mut endpoint: Endpoint,
    server: &Server,
    deadline: Instant,
    report: &mut Report,
) -> io::Result<()> {
    prepare(&mut endpoint, args).await?;
    let endpoint = &endpoint;
    let (mut fleet, opened) =
        open_streams(args, endpoint, server, Reader::Healthy, deadline, report).await?;

    let counts_before = server_counts(endpoint).await;
    let cpu_before = server.cpu();
    let client_cpu_before = fleet.cpu();
    let waits_before = (server.waited(), fleet.waited());
    let published = publish(
        endpoint,
        0,
        args.messages,
        args.rate,
        args.publishers,
        Connections::KeptAlive,
    )
    .await;
    report.published = published.ok();
    report.publish_p50_ms = published.answer_ms(0.50);
    report.publish_p99_ms = published.answer_ms(0.99);
    report.publish_failed = args.messages - report.published;
    report.expected = report.published * opened;
    let drain_by = (Instant::now() + args.drain).min(deadline);
    fleet.received(report.expected, drain_by).await;
    let cpu = server.cpu() - cpu_before;
    let client_cpu = fleet.cpu() - client_cpu_before;
    report.server_wait_secs = Some(server.waited() - waits_before.0);
    report.client_wait_secs = Some(fleet.waited() - waits_before.1);
    if let (Some(before), Some(after)) = (counts_before, server_counts(endpoint).await) {
        report.server_counts = Some(after.since(&before));
    }

    let finish_by =
        (Instant::now() + Duration::from_secs(15)).min(deadline + Duration::from_secs(5));
    let observed = fleet.finish(published.accepted, finish_by).await?;
    report.held = observed.opened - observed.dropped;
    report.dropped = observed.dropped;
    report.deliveries = observed.unique;
    report.lost = observed.lost;
    report.duplicated = observed.duplicates;
    report.error = observed.first_error.clone().or(published.first_error);
    if args.messages > 0 && observed.unique > 0 {
        let span = observed
            .last_us
            .max(published.last_us)
            .saturating_sub(published.first_us);
        report.deliveries_per_sec = Some(observed.unique as f64 / (span.max(1) as f64 / 1e6));
        report.cpu_secs = Some(cpu);
        report.cpu_us_per_delivery = Some(cpu * 1e6 / observed.unique as f64);
        report.client_cpu_us_per_delivery = Some(client_cpu * 1e6 / observed.unique as f64);
        report.client_cpu_secs = Some(client_cpu);
        report.publish_secs = Some(span as f64 / 1e6);
        report.tool_reads_per_delivery = Some(observed.reads as f64 / observed.unique as f64);
        report.tool_bytes_per_read =
            Some(observed.body_bytes as f64 / observed.reads.max(1) as f64);
        if observed.sizes.messages > 0 {
            report.message_bytes =
                Some(observed.sizes.bytes as f64 / observed.sizes.messages as f64);
        }
        latency(report, &observed);
    }
    Ok(())
}

/// The delivery latency percentiles of what the streams observed.
pub fn latency(report: &mut Report, observed: &Observed) {
    let h = observed.histogram();
    let ms = |us: u64| us as f64 / 1000.0;
    report.p50_ms = Some(ms(h.value_at_quantile(0.50)));
    report.p99_ms = Some(ms(h.value_at_quantile(0.99)));
    report.p999_ms = Some(ms(h.value_at_quantile(0.999)));
    report.max_ms = Some(ms(h.max()));
}

/// Measures the server's memory idle, opens the streams (each read by `reader`) and measures
/// it again after `--settle`; returns the fleet holding them and how many opened.
pub async fn open_streams(
    args: &Args,
    endpoint: &Endpoint,
    server: &Server,
    reader: Reader,
    deadline: Instant,
    report: &mut Report,
) -> io::Result<(Fleet, u64)> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    report.rss_before = server.rss();
    let began = Instant::now();
    let plans = plans(args, endpoint, reader);
    let in_process = plans.len() == 1;
    let mut fleet = Fleet::start(plans, in_process)?;
    let open_by =
        (began + Duration::from_secs_f64(args.streams as f64 / args.open_rate) + OPEN_SLACK)
            .min(deadline);
    let (opened, failed) = fleet.opened(open_by).await?;
    report.open_secs = began.elapsed().as_secs_f64();
    report.failed = failed;
    tokio::time::sleep(args.settle).await;
    report.rss_streams = server.rss();
    if opened > 0 {
        report.rss_per_stream =
            Some(report.rss_streams.saturating_sub(report.rss_before) as f64 / opened as f64);
    }
    Ok((fleet, opened))
}

/// Warms the server up ([`warm_up`]) and pads `endpoint`'s text so that each message is
/// `--payload` bytes on the wire.
pub async fn prepare(endpoint: &mut Endpoint, args: &Args) -> io::Result<()> {
    let framing = tokio::time::timeout(Duration::from_secs(15), warm_up(endpoint))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "warm-up: no answer within 15 s"))??;
    endpoint.text_len = args
        .payload
        .map_or(0, |bytes| bytes.saturating_sub(framing));
    Ok(())
}

/// One stream (for Herald with its page load) and one publish before measuring, so first-use
/// costs (a Herald page's first render, the first database write, lazily created pools, a
/// peer's channel) count neither as memory per stream nor as latency. The warm-up message's
/// number is beyond the run's, so the streams ignore it. Returns what the server adds around a
/// published text on the wire (its `id:` line, HTML, `data:` prefixes), measured on that stream,
/// so that `--payload` gives every server messages of the same size.
async fn warm_up(endpoint: &Endpoint) -> io::Result<usize> {
    let (mut stream, head) = endpoint.subscribe(None, None).await?;
    let marker = Marker {
        seq: WARM_UP_SEQ,
        sent_us: now_us(),
    };
    let mut conn = Conn::new(http::connect(endpoint.addr, None).await?);
    let (answer, _) = exchange(&mut conn, &endpoint.publish_request(marker)).await?;
    if !(200..300).contains(&answer.status) {
        return Err(http::bad(&format!(
            "warm-up publish: status {}",
            answer.status
        )));
    }
    let mut messages = Messages::default();
    let arrived = |m: &Messages| m.last.is_some_and(|(seen, _)| seen == marker);
    stream
        .read_body(&head, |piece| {
            messages.feed(piece, &mut |_| {});
            !arrived(&messages)
        })
        .await?;
    match messages.last {
        Some((seen, bytes)) if seen == marker => {
            Ok((bytes as usize).saturating_sub(endpoint.text(marker).len()))
        }
        _ => Err(http::bad("warm-up: the stream ended before the message")),
    }
}

/// Herald's write-path counters (from `GET /metrics`); `None` for a peer, or a Herald without
/// them.
pub async fn server_counts(endpoint: &Endpoint) -> Option<ServerCounts> {
    ServerCounts::from_metrics(&metrics(endpoint).await?)
}

/// Herald's `GET /metrics` page (from whichever instance answers at the address); `None` for a
/// peer, or when none came within 5 s.
pub async fn metrics(endpoint: &Endpoint) -> Option<String> {
    if endpoint.target != Target::Herald {
        return None;
    }
    let ask = async {
        let mut conn = Conn::new(http::connect(endpoint.addr, None).await.ok()?);
        let request = http::request("GET", "/metrics", &endpoint.host(), &[], b"");
        let (head, body) = exchange(&mut conn, &request).await.ok()?;
        (head.status == 200).then(|| String::from_utf8_lossy(&body).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(5), ask)
        .await
        .ok()
        .flatten()
}

/// Far beyond any run's message count (the loss bitmaps are sized by `--messages`).
const WARM_UP_SEQ: u64 = 1 << 40;

/// The streams split over `--processes` shares, each read by `reader`.
fn plans(args: &Args, endpoint: &Endpoint, reader: Reader) -> Vec<Plan> {
    let k = args.processes.min(args.streams.max(1));
    (0..k)
        .map(|i| {
            let first = args.streams * i / k;
            let next = args.streams * (i + 1) / k;
            Plan {
                endpoint: endpoint.clone(),
                streams: next - first,
                first,
                open_rate: args.open_rate / k as f64,
                messages: args.messages,
                sources: args.sources,
                reader,
            }
        })
        .collect()
}
