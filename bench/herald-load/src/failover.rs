//! Failover mode (issue 11): Herald instances share one address (`SO_REUSEPORT`) and one
//! database; the streams are opened and spread over them, publishing starts, and after
//! `--kill-after` seconds the tool kills one instance with SIGKILL. Every stream it held is cut
//! and reconnects with `Last-Event-ID` (`resume.rs`), to a survivor: the kernel no longer
//! offers the dead instance's connections. Publishing goes on through the same address.
//!
//! Nothing may be lost, duplicated or reordered. A publish whose answer never came (the killed
//! instance died mid-request) may or may not have been stored; such a message may reach the
//! streams or not, but if any stream got it, every stream must get it, once.

use std::io;
use std::time::Duration;

use tokio::time::Instant;

use crate::args::{Args, Target};
use crate::publish::{Connections, publish};
use crate::report::{self, Failover, Report};
use crate::resume::Timeline;
use crate::run::{Context, latency, metrics, open_streams, prepare};
use crate::server::{self, Server};
use crate::streams::{Reader, now_us};
use crate::target::Endpoint;

pub async fn failover(args: &Args, victim: u32, ctx: &Context, deadline: Instant) -> Report {
    let mut report = Report {
        streams: args.streams as u64,
        messages: args.messages,
        rate: args.rate,
        payload: args.payload.map(|p| p as u64),
        ..ctx.report(args, Target::Herald.name(), "failover")
    };
    let Some(server) = Server::start_or_report(Target::Herald, args, &mut report).await else {
        return report;
    };
    if let Err(e) = drive(args, victim, &server, deadline, &mut report).await {
        report.error = Some(e.to_string());
    }
    server.stop().await;
    report
}

async fn drive(
    args: &Args,
    victim: u32,
    server: &Server,
    deadline: Instant,
    report: &mut Report,
) -> io::Result<()> {
    let mut endpoint = Endpoint::new(Target::Herald, server.addr, args);
    prepare(&mut endpoint, args).await?;
    let (mut fleet, opened) =
        open_streams(args, &endpoint, server, Reader::Resuming, deadline, report).await?;

    // One publisher, so that message numbers are commit order; a fresh connection each, so that
    // after the kill every publish goes to a survivor.
    let publishing = {
        let (endpoint, messages, rate) = (endpoint.clone(), args.messages, args.rate);
        tokio::spawn(async move {
            publish(&endpoint, 0, messages, rate, 1, Connections::FreshEach).await
        })
    };
    tokio::time::sleep(args.kill_after).await;
    let kill_us = now_us();
    server::signal(victim, libc::SIGKILL)
        .map_err(|e| io::Error::other(format!("kill -9 {victim}: {e}")))?;
    let published = publishing.await.map_err(io::Error::other)?;
    let refused = (0..published.accepted.len())
        .filter(|&i| !published.accepted[i] && !published.maybe[i])
        .count() as u64;
    report.published = published.ok();
    report.publish_failed = refused;
    report.publish_p50_ms = published.answer_ms(0.50);
    report.publish_p99_ms = published.answer_ms(0.99);
    report.expected = report.published * opened;
    if refused > 0 {
        report.error = published.first_error.clone();
    }
    let drain_by = (Instant::now() + args.drain).min(deadline);
    fleet.received(report.expected, drain_by).await;
    let page = metrics(&endpoint).await;
    let counter = |name| page.as_deref().and_then(|p| report::counter(p, name));
    let (server_replays, server_resyncs) = (counter("stream_replays"), counter("stream_resyncs"));

    let finish_by =
        (Instant::now() + Duration::from_secs(15)).min(deadline + Duration::from_secs(5));
    let observed = fleet.finish(published.accepted.clone(), finish_by).await?;
    let tally = account(
        &published.accepted,
        &published.maybe,
        &observed.arrivals,
        observed.opened,
    );
    let back = recovery(&observed.timelines, kill_us);
    report.held = observed.opened;
    report.deliveries = observed.unique;
    report.lost = observed.lost + tally.maybe_lost;
    report.duplicated = observed.duplicates;
    report.error = report.error.take().or(observed.first_error.clone());
    // Only the one killed may be gone: a survivor that died too is the run's error.
    if let Some(gone) = args
        .pids
        .iter()
        .find(|&&p| p != victim && !server::alive(p))
    {
        report.error = Some(format!(
            "instance {gone} (not the one killed) was gone at the end"
        ));
    }
    if observed.unique > 0 {
        latency(report, &observed);
    }
    report.failover = Some(Failover {
        kill_after_secs: args.kill_after.as_secs_f64(),
        maybe: tally.maybe,
        maybe_stored: tally.maybe_stored,
        maybe_lost: tally.maybe_lost,
        refused_delivered: tally.refused_delivered,
        out_of_order: observed.out_of_order,
        resyncs: observed.resyncs,
        server_replays,
        server_resyncs,
        retry_error: observed.retry_error.clone(),
        publish_max_ms: published.answer_ms(1.0),
        ..back
    });
    Ok(())
}

/// The publishes that got no answer, weighed against what the streams received.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    maybe: u64,
    maybe_stored: u64,
    /// Deliveries missing of the maybe-published messages that reached some stream.
    maybe_lost: u64,
    refused_delivered: u64,
}

/// `accepted[i]` and `maybe[i]` say how message `i`'s publish ended; `arrivals[i]` how many of
/// the `streams` received it. A message that reached a stream was stored; it must reach all.
fn account(accepted: &[bool], maybe: &[bool], arrivals: &[u64], streams: u64) -> Tally {
    let mut t = Tally::default();
    for (i, (&ok, &unknown)) in accepted.iter().zip(maybe).enumerate() {
        let arrived = arrivals.get(i).copied().unwrap_or(0);
        if unknown {
            t.maybe += 1;
            if arrived > 0 {
                t.maybe_stored += 1;
                t.maybe_lost += streams.saturating_sub(arrived);
            }
        } else if !ok {
            t.refused_delivered += arrived;
        }
    }
    t
}

/// How the streams cut by the kill at `kill_us` came back (the run's figures; the rest of
/// [`Failover`] is left at its default).
fn recovery(timelines: &[Timeline], kill_us: u64) -> Failover {
    let after_kill = |t: &&Timeline| t.cut_us.is_some_and(|c| c >= kill_us);
    let cut: Vec<&Timeline> = timelines.iter().filter(after_kill).collect();
    let since = |us: u64| us.saturating_sub(kill_us) as f64 / 1000.0;
    let mut live: Vec<f64> = cut.iter().filter_map(|t| t.live_us).map(since).collect();
    live.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        let last = live.len().checked_sub(1)?;
        Some(live[((last as f64) * q).round() as usize])
    };
    let last_answered = cut.iter().filter_map(|t| t.answered_us).max();
    Failover {
        cut: cut.len() as u64,
        cut_before_kill: timelines.iter().filter(|t| t.cut_us.is_some()).count() as u64
            - cut.len() as u64,
        reconnected: cut.iter().filter(|t| t.answered_us.is_some()).count() as u64,
        live: live.len() as u64,
        attempts: cut.iter().map(|t| u64::from(t.attempts)).sum(),
        last_answered_ms: last_answered.map(since),
        last_live_ms: live.last().copied(),
        live_p50_ms: quantile(0.50),
        live_p99_ms: quantile(0.99),
        ..Failover::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_maybe_published_message_may_reach_all_or_none() {
        let accepted = [true, false, false, false, true];
        let maybe = [false, true, true, false, false];
        // Message 1 was stored (two of three streams got it), 2 was not, 3 was refused.
        let arrivals = [3, 2, 0, 0, 3];
        assert_eq!(
            account(&accepted, &maybe, &arrivals, 3),
            Tally {
                maybe: 2,
                maybe_stored: 1,
                maybe_lost: 1,
                refused_delivered: 0,
            }
        );
        let everywhere = account(&accepted, &maybe, &[3, 3, 0, 1, 3], 3);
        assert_eq!(
            (everywhere.maybe_lost, everywhere.refused_delivered),
            (0, 1),
            "a refused publish must never arrive"
        );
        assert_eq!(account(&accepted, &maybe, &[], 3).maybe_stored, 0);
    }

    #[test]
    fn recovery_counts_the_streams_cut_by_the_kill_from_the_kill() {
        let ms = 1000;
        let back = |cut, answered, live, attempts| Timeline {
            cuts: 1,
            cut_us: Some(cut),
            attempts,
            answered_us: answered,
            live_us: live,
        };
        let kill = 1_000_000;
        let timelines = [
            Timeline::default(),
            back(kill + 2 * ms, Some(kill + 20 * ms), Some(kill + 50 * ms), 1),
            back(
                kill + 3 * ms,
                Some(kill + 90 * ms),
                Some(kill + 400 * ms),
                3,
            ),
            back(kill + 3 * ms, Some(kill + 95 * ms), None, 2),
            back(kill - 5 * ms, Some(kill - 4 * ms), Some(kill - ms), 1),
        ];
        let f = recovery(&timelines, kill);
        assert_eq!(
            (f.cut, f.cut_before_kill, f.reconnected, f.live, f.attempts),
            (3, 1, 3, 2, 6)
        );
        assert_eq!(
            (f.last_answered_ms, f.last_live_ms),
            (Some(95.0), Some(400.0))
        );
        assert_eq!((f.live_p50_ms, f.live_p99_ms), (Some(400.0), Some(400.0)));
        assert!(
            !f.clean(),
            "one stream was not live again, one was cut before the kill"
        );
        let none = recovery(&[Timeline::default()], kill);
        assert_eq!(
            (none.cut, none.last_live_ms, none.live_p99_ms),
            (0, None, None)
        );
    }
}
