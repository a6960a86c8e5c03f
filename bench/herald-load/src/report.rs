//! Results: one JSON line per run (the machine-readable record), a human table, and the
//! Markdown table for BENCHMARKS.md built from JSON lines, with each figure's ratio to the peers
//! measured in the same run.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

/// One target's figures from one run. Optional figures are absent when the run did not measure
/// them (an idle run has no latency; an import has no streams).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// Identifies the run (UTC start time); targets measured together share it.
    pub run: String,
    pub date: String,
    pub machine: String,
    /// `git describe` of the build measured (empty for runs recorded before it was kept).
    #[serde(default)]
    pub commit: String,
    pub label: String,
    pub target: String,
    pub mode: String,
    pub streams: u64,
    pub held: u64,
    pub failed: u64,
    pub dropped: u64,
    pub open_secs: f64,
    pub rss_before: u64,
    pub rss_streams: u64,
    pub rss_per_stream: Option<f64>,
    pub messages: u64,
    pub rate: f64,
    pub published: u64,
    pub publish_failed: u64,
    pub expected: u64,
    pub deliveries: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub deliveries_per_sec: Option<f64>,
    pub cpu_secs: Option<f64>,
    pub cpu_us_per_delivery: Option<f64>,
    /// The load tool's own CPU per delivery (with its workers): if the machine's cores are all
    /// busy, latency is the machine's, not the server's.
    pub client_cpu_us_per_delivery: Option<f64>,
    /// Whether the server and the tool ran pinned apart (`--pin`).
    #[serde(default)]
    pub pinned: bool,
    /// Seconds from the first publish to the last arrival, the span CPU use is taken over.
    #[serde(default)]
    pub publish_secs: Option<f64>,
    /// The tool's CPU over that span (with its workers).
    #[serde(default)]
    pub client_cpu_secs: Option<f64>,
    /// Seconds the server's and the tool's threads were runnable but waited for a CPU over the
    /// publish phase: other work on the machine (or each other, unpinned).
    #[serde(default)]
    pub server_wait_secs: Option<f64>,
    #[serde(default)]
    pub client_wait_secs: Option<f64>,
    /// How long the server took to answer a publish (p50, p99): the part of the latency
    /// spent before the fan-out.
    #[serde(default)]
    pub publish_p50_ms: Option<f64>,
    #[serde(default)]
    pub publish_p99_ms: Option<f64>,
    /// `--payload`: the bytes asked for each message on the wire.
    #[serde(default)]
    pub payload: Option<u64>,
    /// What each published message took on the wire, as the streams measured it (mean).
    #[serde(default)]
    pub message_bytes: Option<f64>,
    /// The streams' reads per message delivered (below 1: the server coalesced messages).
    #[serde(default)]
    pub tool_reads_per_delivery: Option<f64>,
    /// Stream body bytes per read.
    #[serde(default)]
    pub tool_bytes_per_read: Option<f64>,
    /// Herald's write path over the publish phase (`GET /metrics`, after minus before).
    #[serde(default)]
    pub server_counts: Option<ServerCounts>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub rows: Option<u64>,
    pub import_secs: Option<f64>,
    pub rows_per_sec: Option<f64>,
    pub rss_growth: Option<u64>,
    /// Churn mode: streams opened and closed.
    pub churned: Option<u64>,
    /// Soak mode: stalled and slow readers opened, and how many of them the server cut loose.
    #[serde(default)]
    pub stalled: Option<u64>,
    #[serde(default)]
    pub stalled_cut: Option<u64>,
    /// Soak mode: Herald's send timeout in seconds, if it has one.
    #[serde(default)]
    pub send_timeout: Option<u64>,
    /// Soak mode: the healthy streams' latency in each phase.
    #[serde(default)]
    pub phases: Vec<Phase>,
    /// Failover mode: the instance killed, and how its streams came back.
    #[serde(default)]
    pub failover: Option<Failover>,
    pub error: Option<String>,
}

/// A failover run: one instance killed with SIGKILL while publishing, every stream it held
/// reconnecting (to the survivors) with `Last-Event-ID`. Times are from the kill. A stream is
/// *live* again when, after its reconnect was answered 200 with an event stream, a published
/// message (replayed or new) was dispatched on it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Failover {
    /// Seconds of publishing before the kill.
    pub kill_after_secs: f64,
    /// Streams whose connection ended after the kill (those the killed instance held), and
    /// before it (none should).
    pub cut: u64,
    pub cut_before_kill: u64,
    /// Cut streams whose last reconnect was answered, and that were live again by the end.
    pub reconnected: u64,
    pub live: u64,
    /// Reconnect attempts of the cut streams (one each when the first one works), and why the
    /// first that failed did.
    pub attempts: u64,
    #[serde(default)]
    pub retry_error: Option<String>,
    /// The slowest publish answer (the kill and the reconnects may hold publishing up).
    #[serde(default)]
    pub publish_max_ms: Option<f64>,
    /// Until the last cut stream's reconnect was answered, and until it was live.
    pub last_answered_ms: Option<f64>,
    pub last_live_ms: Option<f64>,
    /// The cut streams' time to live, p50 and p99.
    pub live_p50_ms: Option<f64>,
    pub live_p99_ms: Option<f64>,
    /// Publishes whose answer never came (the instance died mid-request): stored or not. Those
    /// that reached any stream were stored, and must then reach every stream: the deliveries of
    /// them missing count as lost (and in `maybe_lost`).
    pub maybe: u64,
    pub maybe_stored: u64,
    pub maybe_lost: u64,
    /// Deliveries of messages whose publish was refused (never stored, by its answer).
    pub refused_delivered: u64,
    /// Messages a stream got after one with a higher number (published one at a time, so
    /// numbers are commit order).
    pub out_of_order: u64,
    /// Herald resyncs the streams got (the regions' state instead of the messages missed).
    pub resyncs: u64,
    /// The survivors' own counts (`GET /metrics` at the end, since they started; no stream
    /// resumed before the kill): streams resumed by replaying what they missed, resyncs sent.
    pub server_replays: Option<u64>,
    pub server_resyncs: Option<u64>,
}

impl Failover {
    /// Whether every stream cut came back and resumed exactly where it was.
    pub fn clean(&self) -> bool {
        self.cut_before_kill == 0
            && self.live == self.cut
            && self.maybe_lost == 0
            && self.refused_delivered == 0
            && self.out_of_order == 0
            && self.resyncs == 0
    }
}

/// One phase of a soak: what was published, delivered to the healthy streams, and how late.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    pub name: String,
    pub published: u64,
    pub deliveries: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Herald's counters of the stream write path, as `GET /metrics` shows them
/// (`herald_stream_fanout_writes_total` and the like; `hub::stats::Counts` in the server).
/// Declared again here rather than shared, since the tool must not depend on the server's crate
/// (and the server not on the tool's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerCounts {
    pub fanout_writes: u64,
    pub task_writes: u64,
    /// Answers to requests (pages, publishes), not the stream path.
    #[serde(default)]
    pub response_writes: u64,
    pub bytes_written: u64,
    pub partial_writes: u64,
    pub would_block: u64,
    pub hand_backs: u64,
}

/// Herald's counter `herald_<name>_total` in a Prometheus text page.
pub fn counter(text: &str, name: &str) -> Option<u64> {
    let series = format!("herald_{name}_total");
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == series).then(|| value.trim().parse::<u64>().ok())?
    })
}

impl ServerCounts {
    /// The counters in a Prometheus text page; `None` unless the write path's are there.
    pub fn from_metrics(text: &str) -> Option<ServerCounts> {
        let sample = |name: &str| counter(text, name);
        Some(ServerCounts {
            fanout_writes: sample("stream_fanout_writes")?,
            task_writes: sample("stream_task_writes")?,
            response_writes: sample("response_writes")?,
            bytes_written: sample("stream_write_bytes")?,
            partial_writes: sample("stream_partial_writes")?,
            would_block: sample("stream_blocked_writes")?,
            hand_backs: sample("stream_hand_backs")?,
        })
    }

    /// What happened between `before` and `self`.
    pub fn since(&self, before: &ServerCounts) -> ServerCounts {
        ServerCounts {
            fanout_writes: self.fanout_writes - before.fanout_writes,
            task_writes: self.task_writes - before.task_writes,
            response_writes: self.response_writes - before.response_writes,
            bytes_written: self.bytes_written - before.bytes_written,
            partial_writes: self.partial_writes - before.partial_writes,
            would_block: self.would_block - before.would_block,
            hand_backs: self.hand_backs - before.hand_backs,
        }
    }

    pub fn writes(&self) -> u64 {
        self.fanout_writes + self.task_writes
    }

    /// Bytes per write that put something on the wire.
    pub fn bytes_per_write(&self) -> f64 {
        self.bytes_written as f64 / (self.writes() - self.would_block).max(1) as f64
    }
}

impl Report {
    /// Whether the run delivered everything it should have, exactly once.
    pub fn clean(&self) -> bool {
        self.failed == 0
            && self.dropped == 0
            && self.lost == 0
            && self.duplicated == 0
            && self.publish_failed == 0
            && self.error.is_none()
            && self.failover.as_ref().is_none_or(Failover::clean)
    }

    pub fn human(&self) -> String {
        let mut out = String::new();
        let mut row = |name: &str, value: String| {
            let _ = writeln!(out, "  {name:<26} {value}");
        };
        row("target", format!("{} ({})", self.target, self.mode));
        if let Some(f) = &self.failover {
            row(
                "streams held",
                format!(
                    "{} of {} ({} failed to open) in {:.1} s",
                    self.held, self.streams, self.failed, self.open_secs
                ),
            );
            row(
                "published",
                format!(
                    "{} answered 2xx, {} no answer (maybe), {} refused, of {} at {}/s",
                    self.published, f.maybe, self.publish_failed, self.messages, self.rate
                ),
            );
            row(
                "publish answered p50/p99/max",
                format!(
                    "{} / {} / {}",
                    ms(self.publish_p50_ms),
                    ms(self.publish_p99_ms),
                    ms(f.publish_max_ms)
                ),
            );
            row(
                "killed",
                format!("{:.1} s into publishing (SIGKILL)", f.kill_after_secs),
            );
            row(
                "streams cut by the kill",
                format!("{} ({} cut before it)", f.cut, f.cut_before_kill),
            );
            row(
                "reconnected / live again",
                format!("{} / {} ({} attempts)", f.reconnected, f.live, f.attempts),
            );
            if let Some(e) = &f.retry_error {
                row("first failed attempt", e.clone());
            }
            row(
                "last reconnect answered",
                format!("{} after the kill", ms(f.last_answered_ms)),
            );
            row(
                "last stream live again",
                format!("{} after the kill", ms(f.last_live_ms)),
            );
            row(
                "time to live, p50/p99",
                format!("{} / {}", ms(f.live_p50_ms), ms(f.live_p99_ms)),
            );
            row(
                "",
                "(live: a reconnect answered 200, then a published message".into(),
            );
            row(
                "",
                " dispatched on it, replayed or new; from the kill)".into(),
            );
            row(
                "deliveries",
                format!("{} of {} expected", self.deliveries, self.expected),
            );
            row(
                "lost / duplicated",
                format!(
                    "{} / {} ({} out of order)",
                    self.lost, self.duplicated, f.out_of_order
                ),
            );
            row(
                "maybe-published",
                format!(
                    "{} stored ({} deliveries of them lost), {} refused yet delivered",
                    f.maybe_stored, f.maybe_lost, f.refused_delivered
                ),
            );
            row(
                "replays / resyncs",
                format!(
                    "{} / {} by the survivors' count, {} resyncs seen",
                    f.server_replays.map_or("-".into(), |n| n.to_string()),
                    f.server_resyncs.map_or("-".into(), |n| n.to_string()),
                    f.resyncs
                ),
            );
            row(
                "delivery p50/p99/max",
                format!(
                    "{} / {} / {}",
                    ms(self.p50_ms),
                    ms(self.p99_ms),
                    ms(self.max_ms)
                ),
            );
        } else if self.mode == "soak" {
            row(
                "healthy streams",
                format!(
                    "{} held of {} ({} dropped)",
                    self.held, self.streams, self.dropped
                ),
            );
            row("failed to open, any kind", self.failed.to_string());
            row(
                "stalled + slow readers",
                format!(
                    "{} opened, {} cut loose by the server (send timeout {})",
                    self.stalled.unwrap_or(0),
                    self.stalled_cut.unwrap_or(0),
                    self.send_timeout
                        .map_or("none".into(), |s| format!("{s} s"))
                ),
            );
            row(
                "connects + disconnects",
                format!("{}", self.churned.unwrap_or(0)),
            );
            row(
                "server RSS",
                format!(
                    "{} at the start -> {} at the end ({})",
                    mib(self.rss_before),
                    mib(self.rss_streams),
                    pct(self.rss_before, self.rss_streams)
                ),
            );
            for p in &self.phases {
                row(
                    &format!("p50/p99/max: {}", p.name),
                    format!(
                        "{:.1} / {:.1} / {:.1} ms ({} of {} delivered)",
                        p.p50_ms,
                        p.p99_ms,
                        p.max_ms,
                        p.deliveries,
                        p.published * self.held
                    ),
                );
            }
            row(
                "healthy lost / duplicated",
                format!("{} / {}", self.lost, self.duplicated),
            );
            if let Some(c) = &self.server_counts {
                row(
                    "server, phases 2 and 3",
                    format!(
                        "{} writes, {} partial, {} blocked, {} hand-backs to tasks",
                        c.writes(),
                        c.partial_writes,
                        c.would_block,
                        c.hand_backs
                    ),
                );
            }
        } else if let Some(churned) = self.churned {
            row(
                "connect + disconnect",
                format!(
                    "{churned} ({} failed) in {:.1} s",
                    self.failed, self.open_secs
                ),
            );
            row(
                "server RSS",
                format!(
                    "{} before -> {} after ({})",
                    mib(self.rss_before),
                    mib(self.rss_streams),
                    pct(self.rss_before, self.rss_streams)
                ),
            );
        } else if let (Some(rows), Some(secs)) = (self.rows, self.import_secs) {
            row("rows imported", format!("{rows} in {secs:.2} s"));
            row("rows/s", fmt_opt(self.rows_per_sec, 0));
            row("server RSS growth", mib(self.rss_growth.unwrap_or(0)));
            row(
                "server CPU",
                self.cpu_secs.map_or("-".into(), |c| format!("{c:.2} s")),
            );
        } else {
            row(
                "streams held",
                format!(
                    "{} of {} ({} failed to open, {} dropped) in {:.1} s",
                    self.held, self.streams, self.failed, self.dropped, self.open_secs
                ),
            );
            row(
                "server RSS",
                format!(
                    "{} idle -> {} with streams",
                    mib(self.rss_before),
                    mib(self.rss_streams)
                ),
            );
            row(
                "RSS per stream",
                self.rss_per_stream
                    .map_or("-".into(), |b| format!("{:.1} KB", b / 1024.0)),
            );
            if self.messages > 0 {
                row(
                    "published",
                    format!(
                        "{} of {} at {}/s ({} failed)",
                        self.published, self.messages, self.rate, self.publish_failed
                    ),
                );
                row(
                    "deliveries",
                    format!("{} of {} expected", self.deliveries, self.expected),
                );
                row(
                    "lost / duplicated",
                    format!("{} / {}", self.lost, self.duplicated),
                );
                row("deliveries/s", fmt_opt(self.deliveries_per_sec, 0));
                row(
                    "server CPU per delivery",
                    self.cpu_us_per_delivery
                        .map_or("-".into(), |u| format!("{u:.2} µs")),
                );
                row(
                    "tool CPU per delivery",
                    self.client_cpu_us_per_delivery
                        .map_or("-".into(), |u| format!("{u:.2} µs")),
                );
                row(
                    "CPU used, server / tool",
                    format!(
                        "{} / {} of {} s{}",
                        cpu_use(self.cpu_secs, self.publish_secs),
                        cpu_use(self.client_cpu_secs, self.publish_secs),
                        fmt_opt(self.publish_secs, 1),
                        if self.pinned {
                            " (pinned apart)"
                        } else {
                            " (not pinned)"
                        }
                    ),
                );
                row(
                    "publish answered, p50/p99",
                    format!(
                        "{} / {} ms",
                        fmt_opt(self.publish_p50_ms, 1),
                        fmt_opt(self.publish_p99_ms, 1)
                    ),
                );
                row(
                    "waited for a CPU, server / tool",
                    format!(
                        "{} / {} s",
                        fmt_opt(self.server_wait_secs, 2),
                        fmt_opt(self.client_wait_secs, 2)
                    ),
                );
                row(
                    "message on the wire",
                    format!(
                        "{} bytes{}",
                        fmt_opt(self.message_bytes, 0),
                        self.payload
                            .map_or(String::new(), |p| format!(" (--payload {p})"))
                    ),
                );
                if let Some(c) = &self.server_counts {
                    let per = |n: u64| n as f64 / self.deliveries.max(1) as f64;
                    row(
                        "server writes per delivery",
                        format!(
                            "{:.3} ({:.0}% by the fan-out, {:.0} bytes per write)",
                            per(c.writes()),
                            c.fanout_writes as f64 * 100.0 / c.writes().max(1) as f64,
                            c.bytes_per_write()
                        ),
                    );
                    row(
                        "partial / blocked writes",
                        format!(
                            "{} / {}, {} hand-backs to tasks",
                            c.partial_writes, c.would_block, c.hand_backs
                        ),
                    );
                }
                row(
                    "tool reads per delivery",
                    format!(
                        "{} ({} bytes per read)",
                        fmt_opt(self.tool_reads_per_delivery, 2),
                        fmt_opt(self.tool_bytes_per_read, 0)
                    ),
                );
                row(
                    "latency p50/p99/p999/max",
                    format!(
                        "{} / {} / {} / {} ms",
                        fmt_opt(self.p50_ms, 1),
                        fmt_opt(self.p99_ms, 1),
                        fmt_opt(self.p999_ms, 1),
                        fmt_opt(self.max_ms, 1)
                    ),
                );
            }
        }
        if let Some(e) = &self.error {
            row("first error", e.clone());
        }
        out
    }
}

/// CPU seconds and the share of one core they are over `span` seconds.
fn cpu_use(secs: Option<f64>, span: Option<f64>) -> String {
    match (secs, span) {
        (Some(c), Some(_)) => format!("{c:.2} s ({})", share(secs, span)),
        _ => "-".into(),
    }
}

/// The share of one core that `secs` of CPU are over `span` seconds.
fn share(secs: Option<f64>, span: Option<f64>) -> String {
    match (secs, span) {
        (Some(c), Some(s)) if s > 0.0 => format!("{:.0}%", c * 100.0 / s),
        _ => "-".into(),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn pct(before: u64, after: u64) -> String {
    format!(
        "{:+.1}%",
        (after as f64 - before as f64) * 100.0 / before.max(1) as f64
    )
}

fn fmt_opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.decimals$}"))
}

/// The Markdown results table: one row per report, grouped by run, each Herald figure followed
/// by its ratio to every peer of the same run (Herald ÷ peer: below 1 is better for memory,
/// latency and CPU, above 1 for deliveries/s).
pub fn markdown(reports: &[Report]) -> String {
    let mut out = String::new();
    let mut machines: Vec<&str> = reports.iter().map(|r| r.machine.as_str()).collect();
    machines.sort_unstable();
    machines.dedup();
    for machine in machines {
        let _ = writeln!(out, "Machine: {machine}\n");
    }
    if reports.iter().any(|r| r.mode == "fanout") {
        out.push_str(
        "| date (UTC) | run | target | streams held, opened in | msg/s | bytes/msg | RSS/stream | lost | dup | deliveries/s | CPU/delivery | tool CPU/delivery | p50 | p99 | p99.9 | max | note |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
    }
    // In time order; a sweep's runs (`<start>-r<rate>`) by rising rate.
    let mut runs: BTreeMap<(&str, u64), Vec<&Report>> = BTreeMap::new();
    for r in reports.iter().filter(|r| r.mode == "fanout") {
        let start = r.run.split_once("-r").map_or(r.run.as_str(), |(s, _)| s);
        let key = (start, (r.rate * 1000.0) as u64);
        runs.entry(key).or_default().push(r);
    }
    for group in runs.values() {
        let herald = group.iter().find(|r| r.target == "herald");
        for r in group {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} of {} in {:.1} s | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.date,
                r.run,
                r.target,
                r.held,
                r.streams,
                r.open_secs,
                if r.messages > 0 {
                    format!("{}", r.rate)
                } else {
                    "idle".into()
                },
                fmt_opt(r.message_bytes, 0),
                r.rss_per_stream
                    .map_or("-".into(), |b| format!("{:.1} KB", b / 1024.0)),
                r.lost,
                r.duplicated,
                fmt_opt(r.deliveries_per_sec, 0),
                r.cpu_us_per_delivery
                    .map_or("-".into(), |u| format!("{u:.2} µs")),
                r.client_cpu_us_per_delivery
                    .map_or("-".into(), |u| format!("{u:.2} µs")),
                ms(r.p50_ms),
                ms(r.p99_ms),
                ms(r.p999_ms),
                ms(r.max_ms),
                note(r)
            );
        }
        if let Some(h) = herald {
            for peer in group.iter().filter(|r| r.target != "herald") {
                let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                    (Some(a), Some(b)) if b > 0.0 => format!("×{:.2}", a / b),
                    _ => "-".into(),
                };
                let _ = writeln!(
                    out,
                    "| | {} | herald ÷ {} | | | | {} | | | {} | {} | | {} | {} | {} | {} | |",
                    h.run,
                    peer.target,
                    ratio(h.rss_per_stream, peer.rss_per_stream),
                    ratio(h.deliveries_per_sec, peer.deliveries_per_sec),
                    ratio(h.cpu_us_per_delivery, peer.cpu_us_per_delivery),
                    ratio(h.p50_ms, peer.p50_ms),
                    ratio(h.p99_ms, peer.p99_ms),
                    ratio(h.p999_ms, peer.p999_ms),
                    ratio(h.max_ms, peer.max_ms),
                );
            }
        }
    }
    let gap = |out: &mut String| {
        if !out.is_empty() {
            out.push('\n');
        }
    };
    let counted: Vec<_> = reports
        .iter()
        .filter(|r| r.mode == "fanout" && r.publish_secs.is_some())
        .collect();
    if !counted.is_empty() {
        gap(&mut out);
        out.push_str(
            "| run | target | bytes/msg | server CPU use | tool CPU use | server waited for a CPU | publish answered p99 | server writes/delivery | by the fan-out | bytes/write | partial, blocked writes | hand-backs | tool reads/delivery |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for r in counted {
            let per = |n: u64| format!("{:.3}", n as f64 / r.deliveries.max(1) as f64);
            let c = r.server_counts;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.run,
                r.target,
                fmt_opt(r.message_bytes, 0),
                share(r.cpu_secs, r.publish_secs),
                share(r.client_cpu_secs, r.publish_secs),
                r.server_wait_secs
                    .map_or("-".into(), |w| format!("{w:.2} s")),
                ms(r.publish_p99_ms),
                c.map_or("-".into(), |c| per(c.writes())),
                c.map_or("-".into(), |c| format!(
                    "{:.0}%",
                    c.fanout_writes as f64 * 100.0 / c.writes().max(1) as f64
                )),
                c.map_or("-".into(), |c| format!("{:.0}", c.bytes_per_write())),
                c.map_or("-".into(), |c| format!(
                    "{}, {}",
                    c.partial_writes, c.would_block
                )),
                c.map_or("-".into(), |c| c.hand_backs.to_string()),
                fmt_opt(r.tool_reads_per_delivery, 2),
            );
        }
    }
    let mut sweeps: BTreeMap<&str, Vec<Report>> = BTreeMap::new();
    for r in reports.iter().filter(|r| r.mode == "fanout") {
        if let Some((start, _)) = r.run.split_once("-r") {
            sweeps.entry(start).or_default().push(r.clone());
        }
    }
    if !sweeps.is_empty() {
        gap(&mut out);
        out.push_str(
            "| sweep | target | saturation: most deliveries/s while keeping up, nothing lost | at msg/s | CPU/delivery there |\n|---|---|---|---|---|\n",
        );
        for (start, runs) in &sweeps {
            for (target, r) in best_clean(runs) {
                let _ = writeln!(
                    out,
                    "| {start} | {target} | {} | {} | {} |",
                    fmt_opt(r.deliveries_per_sec, 0),
                    r.rate,
                    r.cpu_us_per_delivery
                        .map_or("-".into(), |u| format!("{u:.2} µs"))
                );
            }
        }
    }
    let imports: Vec<_> = reports.iter().filter(|r| r.mode == "import").collect();
    if !imports.is_empty() {
        gap(&mut out);
        out.push_str("| date (UTC) | rows | seconds | rows/s | server CPU | server RSS growth | note |\n|---|---|---|---|---|---|---|\n");
        for r in imports {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.date,
                r.rows.unwrap_or(0),
                fmt_opt(r.import_secs, 2),
                fmt_opt(r.rows_per_sec, 0),
                r.cpu_secs.map_or("-".into(), |c| format!("{c:.2} s")),
                mib(r.rss_growth.unwrap_or(0)),
                note(r)
            );
        }
    }
    let soaks: Vec<_> = reports.iter().filter(|r| r.mode == "soak").collect();
    if !soaks.is_empty() {
        gap(&mut out);
        out.push_str("| date (UTC) | connects + disconnects | healthy streams | stalled + slow readers (cut by the server) | server RSS start → end | healthy p99 by phase | healthy lost | note |\n|---|---|---|---|---|---|---|---|\n");
        for r in soaks {
            let phases: Vec<String> = r
                .phases
                .iter()
                .map(|p| format!("{} {:.1} ms", p.name, p.p99_ms))
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} of {} | {} ({}) | {} → {} ({}) | {} | {} | {} |",
                r.date,
                r.churned.unwrap_or(0),
                r.held,
                r.streams,
                r.stalled.unwrap_or(0),
                r.stalled_cut.unwrap_or(0),
                mib(r.rss_before),
                mib(r.rss_streams),
                pct(r.rss_before, r.rss_streams),
                phases.join("; "),
                r.lost,
                note(r)
            );
        }
    }
    let failovers: Vec<_> = reports.iter().filter(|r| r.failover.is_some()).collect();
    if !failovers.is_empty() {
        gap(&mut out);
        out.push_str("| date (UTC) | streams | killed after | cut | reconnected / live | last live after the kill | time to live p50 / p99 | published (maybe) | lost / duplicated / out of order | maybe stored | replays / resyncs | note |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for r in failovers {
            let f = r.failover.as_ref().expect("filtered");
            let _ = writeln!(
                out,
                "| {} | {} of {} | {:.0} s | {} | {} / {} | {} | {} / {} | {} ({}) | {} / {} / {} | {} | {} / {} | {} |",
                r.date,
                r.held,
                r.streams,
                f.kill_after_secs,
                f.cut,
                f.reconnected,
                f.live,
                ms(f.last_live_ms),
                ms(f.live_p50_ms),
                ms(f.live_p99_ms),
                r.published,
                f.maybe,
                r.lost,
                r.duplicated,
                f.out_of_order,
                f.maybe_stored,
                f.server_replays.map_or("-".into(), |n| n.to_string()),
                f.server_resyncs.map_or("-".into(), |n| n.to_string()),
                note(r)
            );
        }
    }
    let churns: Vec<_> = reports.iter().filter(|r| r.mode == "churn").collect();
    if !churns.is_empty() {
        gap(&mut out);
        out.push_str("| date (UTC) | target | connects + disconnects | concurrent | server RSS before | after | change | note |\n|---|---|---|---|---|---|---|---|\n");
        for r in churns {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                r.date,
                r.target,
                r.churned.unwrap_or(0),
                r.streams,
                mib(r.rss_before),
                mib(r.rss_streams),
                pct(r.rss_before, r.rss_streams),
                note(r)
            );
        }
    }
    out
}

/// The run's label, whether it ran pinned, and the build it measured when known.
fn note(r: &Report) -> String {
    let mut parts = Vec::new();
    if !r.label.is_empty() {
        parts.push(r.label.clone());
    }
    if r.pinned {
        parts.push("pinned".to_string());
    }
    if !r.commit.is_empty() {
        parts.push(format!("build {}", r.commit));
    }
    parts.join("; ")
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1} ms"))
}

/// Whether a fan-out run kept up: nothing lost or failed, and at least 95% of the offered
/// deliveries per second (rate x streams) actually delivered.
pub fn keeps_up(r: &Report) -> bool {
    let offered = r.rate * r.held as f64;
    r.clean() && r.deliveries_per_sec.is_some_and(|d| d >= 0.95 * offered)
}

/// Each target's run with the most deliveries/s among those that kept up.
fn best_clean(reports: &[Report]) -> BTreeMap<&str, &Report> {
    let mut best: BTreeMap<&str, &Report> = BTreeMap::new();
    for r in reports.iter().filter(|r| keeps_up(r)) {
        let better = best
            .get(r.target.as_str())
            .is_none_or(|b| r.deliveries_per_sec > b.deliveries_per_sec);
        if better {
            best.insert(&r.target, r);
        }
    }
    best
}

/// The saturation point of each target: its most deliveries/s in a run that kept up.
pub fn saturation(reports: &[Report]) -> String {
    let best = best_clean(reports);
    let mut out = String::from("saturation (most deliveries/s with nothing lost, keeping up):\n");
    for (target, r) in best {
        let _ = writeln!(
            out,
            "  {target:<8} {} deliveries/s ({} streams x {} msg/s), {} server CPU per delivery",
            fmt_opt(r.deliveries_per_sec, 0),
            r.held,
            r.rate,
            r.cpu_us_per_delivery
                .map_or("-".into(), |u| format!("{u:.2} µs"))
        );
    }
    out
}

/// Parses JSON result lines, skipping anything else (the human tables in a saved log).
pub fn parse_lines(text: &str) -> Vec<Report> {
    text.lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(target: &str, p99: f64, rss: f64) -> Report {
        Report {
            run: "r1".into(),
            date: "2026-11-21 12:00".into(),
            target: target.into(),
            mode: "fanout".into(),
            streams: 10,
            held: 10,
            messages: 5,
            rate: 10.0,
            p99_ms: Some(p99),
            rss_per_stream: Some(rss),
            ..Report::default()
        }
    }

    #[test]
    fn table_has_a_row_per_target_and_ratios_to_each_peer() {
        let reports = [
            report("herald", 10.0, 4096.0),
            report("nchan", 40.0, 8192.0),
            report("node", 20.0, 2048.0),
        ];
        let lines: Vec<String> = reports
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        let parsed = parse_lines(&format!("human text\n{}\n", lines.join("\n")));
        assert_eq!(parsed.len(), 3);
        let table = markdown(&parsed);
        assert!(
            table.contains("| herald ÷ nchan | | | | ×0.50 |"),
            "{table}"
        );
        assert!(table.contains("| herald ÷ node | | | | ×2.00 |"), "{table}");
        assert!(table.contains("×0.25"), "p99 ratio to nchan: {table}");
    }

    #[test]
    fn counters_table_gives_writes_and_cpu_per_delivery() {
        let herald = Report {
            deliveries: 1000,
            publish_secs: Some(2.0),
            cpu_secs: Some(1.0),
            client_cpu_secs: Some(0.5),
            server_wait_secs: Some(0.25),
            publish_p99_ms: Some(1.5),
            message_bytes: Some(300.0),
            tool_reads_per_delivery: Some(0.5),
            server_counts: Some(ServerCounts {
                fanout_writes: 750,
                task_writes: 250,
                response_writes: 4,
                bytes_written: 270_000,
                partial_writes: 2,
                would_block: 100,
                hand_backs: 102,
            }),
            ..report("herald", 1.0, 1.0)
        };
        let table = markdown(&[herald]);
        assert!(
            table.contains(
                "| r1 | herald | 300 | 50% | 25% | 0.25 s | 1.5 ms | 1.000 | 75% | 300 | 2, 100 | 102 | 0.50 |"
            ),
            "{table}"
        );
    }

    #[test]
    fn server_counts_are_read_from_the_metrics_page() {
        let page = "# HELP herald_stream_fanout_writes Write system calls.\n\
            # TYPE herald_stream_fanout_writes counter\n\
            herald_stream_fanout_writes_total 900\n\
            herald_stream_task_writes_total 12\n\
            herald_response_writes_total 5\n\
            herald_stream_write_bytes_total 270000\n\
            herald_stream_partial_writes_total 2\n\
            herald_stream_blocked_writes_total 1\n\
            herald_stream_hand_backs_total 3\n\
            herald_streams_open 10\n";
        assert_eq!(
            ServerCounts::from_metrics(page),
            Some(ServerCounts {
                fanout_writes: 900,
                task_writes: 12,
                response_writes: 5,
                bytes_written: 270_000,
                partial_writes: 2,
                would_block: 1,
                hand_backs: 3,
            })
        );
        let without = page.replace("herald_stream_hand_backs_total 3\n", "");
        assert_eq!(
            ServerCounts::from_metrics(&without),
            None,
            "a Herald without them"
        );
    }

    #[test]
    fn saturation_is_the_best_run_that_kept_up() {
        let run = |target: &str, rate: f64, dps: f64, lost: u64| Report {
            rate,
            deliveries_per_sec: Some(dps),
            lost,
            ..report(target, 1.0, 1.0)
        };
        let reports = [
            run("herald", 10.0, 100.0, 0),
            run("herald", 20.0, 199.0, 0),
            run("herald", 40.0, 300.0, 0),
            run("nchan", 10.0, 100.0, 0),
            run("nchan", 20.0, 200.0, 3),
        ];
        assert!(
            !keeps_up(&reports[2]),
            "300 of 400 offered is falling behind"
        );
        let text = saturation(&reports);
        assert!(text.contains("herald   199 deliveries/s"), "{text}");
        assert!(text.contains("nchan    100 deliveries/s"), "{text}");
    }

    #[test]
    fn a_failover_run_has_its_own_table_and_is_clean_only_if_all_came_back() {
        let f = Failover {
            kill_after_secs: 10.0,
            cut: 5000,
            reconnected: 5000,
            live: 5000,
            last_live_ms: Some(812.5),
            live_p50_ms: Some(300.0),
            live_p99_ms: Some(700.0),
            maybe: 1,
            server_replays: Some(4990),
            server_resyncs: Some(0),
            ..Failover::default()
        };
        let r = Report {
            mode: "failover".into(),
            published: 299,
            failover: Some(f.clone()),
            ..report("herald", 1.0, 1.0)
        };
        assert!(r.clean());
        let line = serde_json::to_string(&r).unwrap();
        let table = markdown(&parse_lines(&line));
        assert!(
            table.contains("| 10 of 10 | 10 s | 5000 | 5000 / 5000 | 812.5 ms | 300.0 ms / 700.0 ms | 299 (1) | 0 / 0 / 0 | 0 | 4990 / 0 |"),
            "{table}"
        );
        assert!(
            !table.contains("| r1 | herald |"),
            "not a fan-out row: {table}"
        );
        for dirty in [
            Failover {
                live: 4999,
                ..f.clone()
            },
            Failover {
                out_of_order: 1,
                ..f.clone()
            },
            Failover {
                maybe_lost: 1,
                ..f.clone()
            },
            Failover {
                resyncs: 1,
                ..f.clone()
            },
        ] {
            let r = Report {
                failover: Some(dirty),
                ..r.clone()
            };
            assert!(!r.clean(), "{:?}", r.failover);
        }
    }

    #[test]
    fn clean_means_nothing_lost_duplicated_or_failed() {
        let mut r = report("herald", 1.0, 1.0);
        assert!(r.clean());
        r.duplicated = 1;
        assert!(!r.clean());
    }
}
