//! Soak mode (issue 13): nobody can hold Herald hostage. Healthy streams receive messages all
//! along while stalled and slow readers join them and a million connects and disconnects go by;
//! the healthy streams' latency is measured in each phase and the server's RSS before and after:
//!
//! 1. healthy streams only (the baseline; RSS at its end is the start),
//! 2. with the stalled and slow readers (held by worker processes, for the open-files limit),
//! 3. while the connects and disconnects run,
//! 4. after all of them have gone (RSS at its end is the end).
//!
//! Herald's write-path counters over phases 2 and 3 show what the lagging readers cost it
//! (blocked writes, hand-backs to tasks).
//!
//! Herald's send timeout, when it has one (`--send-timeout-secs` in its `--help`), is set short,
//! so that the run shows stalled readers being cut loose; without one, the readers leave at the
//! end of phase 3 and the run still measures what they cost meanwhile.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::args::{Args, Target};
use crate::churn;
use crate::fleet::Fleet;
use crate::publish::{Connections, publish};
use crate::report::{Phase, Report};
use crate::run::{Context, prepare, server_counts};
use crate::server::Server;
use crate::streams::{self, Plan, Reader, Tally};
use crate::target::Endpoint;

/// While the connects run, messages are published in slices of this length until they end.
const SLICE_SECS: f64 = 5.0;

pub async fn soak(args: &Args, connects: u64, ctx: &Context, deadline: Instant) -> Report {
    let mut report = Report {
        streams: args.streams as u64,
        rate: args.rate,
        payload: args.payload.map(|p| p as u64),
        ..ctx.report(args, Target::Herald.name(), "soak")
    };
    let Some(server) = Server::start_or_report(Target::Herald, args, &mut report).await else {
        return report;
    };
    report.send_timeout = server.send_timeout;
    if let Err(e) = drive(args, connects, &server, deadline, &mut report).await {
        report.error = Some(format!("{e}\n{}", server.log_tail()));
    }
    server.stop().await;
    report
}

async fn drive(
    args: &Args,
    connects: u64,
    server: &Server,
    deadline: Instant,
    report: &mut Report,
) -> io::Result<()> {
    let mut endpoint = Endpoint::new(Target::Herald, server.addr, args);
    prepare(&mut endpoint, args).await?;

    // The healthy streams, in this process so that each phase's latency can be read apart.
    let capacity = (args.rate * args.max_time.as_secs_f64()).ceil() as u64;
    let tally = Arc::new(Tally::default());
    let (stop_tx, stop_rx) = watch::channel(None);
    let healthy = Plan {
        endpoint: endpoint.clone(),
        streams: args.streams,
        first: 0,
        open_rate: args.open_rate,
        messages: capacity,
        sources: args.sources,
        reader: Reader::Healthy,
    };
    streams::open(&healthy, &tally, &stop_rx).await;
    let held = tally.opened.load(Relaxed);
    report.failed = tally.failed.load(Relaxed);
    let mut phases = Phases {
        endpoint: &endpoint,
        tally: &tally,
        args,
        held,
        capacity,
        accepted: Vec::new(),
        names: Vec::new(),
        first_error: None,
    };

    phases.begin("healthy only");
    phases.publish(args.phase_secs).await?;
    phases.drain().await;
    tokio::time::sleep(args.settle).await;
    report.rss_before = server.rss();

    let counts_before = server_counts(&endpoint).await;
    let mut lagging = Fleet::start(lagging_plans(args, &endpoint), false)?;
    let (opened, failed) = lagging.opened(deadline).await?;
    report.stalled = Some(opened);
    report.failed += failed;
    phases.begin("stalled readers");
    phases.publish(args.phase_secs).await?;
    phases.drain().await;

    phases.begin("connects");
    let churn = tokio::spawn({
        let endpoint = Arc::new(endpoint.clone());
        let (concurrent, sources) = (args.soak_concurrent, args.sources);
        async move { churn::cycle(&endpoint, concurrent, sources, connects, deadline).await }
    });
    while !churn.is_finished() {
        phases.publish(SLICE_SECS).await?;
    }
    let (churned, churn_error) = churn.await.map_err(io::Error::other)?;
    report.churned = Some(churned);
    phases.drain().await;
    // The lagging readers leave (whatever the server cut loose has left already).
    let lagged = lagging.finish(Vec::new(), deadline).await?;
    report.stalled_cut = Some(lagged.dropped);
    if let (Some(before), Some(after)) = (counts_before, server_counts(&endpoint).await) {
        report.server_counts = Some(after.since(&before));
    }

    tokio::time::sleep(args.settle).await;
    phases.begin("after");
    phases.publish(args.phase_secs).await?;
    phases.drain().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    report.rss_streams = server.rss();

    let published = std::mem::take(&mut phases.accepted);
    report.published = published.iter().filter(|&&ok| ok).count() as u64;
    report.publish_failed = published.len() as u64 - report.published;
    report.expected = report.published * held;
    report.phases = phases.report();
    stop_tx.send_replace(Some(Arc::new(published)));
    let _ = tokio::time::timeout(Duration::from_secs(15), streams::finished(&tally)).await;
    let observed = tally.observed();
    report.held = held - observed.dropped;
    report.dropped = observed.dropped;
    report.deliveries = observed.unique;
    report.lost = observed.lost;
    report.duplicated = observed.duplicates;
    report.error = observed
        .first_error
        .or(phases.first_error.take())
        .or(churn_error)
        .or(lagged.first_error.filter(|_| lagged.failed > 0));
    Ok(())
}

/// Half the lagging readers never read, half read slowly; each half in a worker process.
fn lagging_plans(args: &Args, endpoint: &Endpoint) -> Vec<Plan> {
    let total = args.stalled.unwrap_or(args.streams);
    let stalled = total / 2;
    [(Reader::Stalled, stalled), (Reader::Slow, total - stalled)]
        .into_iter()
        .filter(|&(_, n)| n > 0)
        .map(|(reader, streams)| Plan {
            endpoint: endpoint.clone(),
            streams,
            first: if reader == Reader::Slow { stalled } else { 0 },
            open_rate: args.open_rate / 2.0,
            messages: 0,
            sources: args.sources,
            reader,
        })
        .collect()
}

/// The phases of a soak: messages numbered on from one phase to the next, each phase's latency
/// kept apart by the tally.
struct Phases<'a> {
    endpoint: &'a Endpoint,
    tally: &'a Tally,
    args: &'a Args,
    held: u64,
    capacity: u64,
    /// Whether the server accepted each message so far.
    accepted: Vec<bool>,
    /// Each phase's name and the messages it published.
    names: Vec<(String, u64)>,
    /// The first publish that failed.
    first_error: Option<String>,
}

impl Phases<'_> {
    fn begin(&mut self, name: &str) {
        self.tally.begin_phase(self.accepted.len() as u64);
        self.names.push((name.to_string(), 0));
    }

    /// Publishes for `secs` at `--rate`.
    async fn publish(&mut self, secs: f64) -> io::Result<()> {
        let first = self.accepted.len() as u64;
        let count = (self.args.rate * secs).ceil() as u64;
        if first + count > self.capacity {
            return Err(io::Error::other(
                "the soak outlasted --max-seconds x --rate messages: give more --max-seconds",
            ));
        }
        let published = publish(
            self.endpoint,
            first,
            count,
            self.args.rate,
            self.args.publishers,
            Connections::KeptAlive,
        )
        .await;
        if let Some((_, n)) = self.names.last_mut() {
            *n += published.ok();
        }
        if self.first_error.is_none() {
            self.first_error = published.first_error.clone();
        }
        self.accepted.extend(published.accepted);
        Ok(())
    }

    /// Waits until the healthy streams have everything published so far, or `--drain`.
    async fn drain(&self) {
        let expected = self.accepted.iter().filter(|&&ok| ok).count() as u64 * self.held;
        let until = Instant::now() + self.args.drain;
        while self.tally.unique.load(Relaxed) < expected && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn report(&self) -> Vec<Phase> {
        let ms = |us: u64| us as f64 / 1000.0;
        self.names
            .iter()
            .zip(self.tally.phase_histograms())
            .map(|((name, published), h)| Phase {
                name: name.clone(),
                published: *published,
                deliveries: h.len(),
                p50_ms: ms(h.value_at_quantile(0.50)),
                p99_ms: ms(h.value_at_quantile(0.99)),
                max_ms: ms(h.max()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lagging_readers_are_half_stalled_half_slow() {
        let args = crate::args::parse(["herald-load", "--spawn", "--soak", "9", "--stalled", "5"])
            .unwrap();
        let endpoint = Endpoint::new(Target::Herald, "127.0.0.1:1".parse().unwrap(), &args);
        let plans = lagging_plans(&args, &endpoint);
        let shape: Vec<_> = plans
            .iter()
            .map(|p| (p.reader, p.streams, p.first))
            .collect();
        assert_eq!(shape, [(Reader::Stalled, 2, 0), (Reader::Slow, 3, 2)]);
        let args = crate::args::parse(["herald-load", "--spawn", "--soak", "9", "--stalled", "0"])
            .unwrap();
        assert!(lagging_plans(&args, &endpoint).is_empty());
    }
}
