//! Churn mode: connect and disconnect streams many times over (page, stream, first message,
//! close), to show that memory follows the open tabs rather than every tab there ever was.

use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;

use crate::args::{Args, Target};
use crate::report::Report;
use crate::run::Context;
use crate::server::Server;
use crate::target::Endpoint;

pub async fn churn(
    args: &Args,
    target: Target,
    cycles: u64,
    ctx: &Context,
    deadline: Instant,
) -> Report {
    let mut report = Report {
        streams: args.streams as u64,
        ..ctx.report(args, target.name(), "churn")
    };
    let Some(server) = Server::start_or_report(target, args, &mut report).await else {
        return report;
    };
    let endpoint = Arc::new(Endpoint::new(target, server.addr, args));
    // A first round warms the server up, so its start-up allocations do not count as growth.
    let warm = (args.streams as u64 * 2).min(cycles);
    let (_, error) = cycle(&endpoint, args.streams, args.sources, warm, deadline).await;
    tokio::time::sleep(args.settle).await;
    report.rss_before = server.rss();
    let started = Instant::now();
    let (done, later_error) = cycle(&endpoint, args.streams, args.sources, cycles, deadline).await;
    report.open_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(args.settle).await;
    report.rss_streams = server.rss();
    report.churned = Some(done);
    report.failed = cycles - done;
    report.error = error.or(later_error);
    server.stop().await;
    report
}

/// Runs `cycles` connect-read-close cycles over `concurrent` loops, from `sources` addresses;
/// returns how many completed and the first error.
pub async fn cycle(
    endpoint: &Arc<Endpoint>,
    concurrent: usize,
    sources: u8,
    cycles: u64,
    deadline: Instant,
) -> (u64, Option<String>) {
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let loops: Vec<_> = (0..concurrent.max(1))
        .map(|i| {
            let (endpoint, next, done) = (endpoint.clone(), next.clone(), done.clone());
            let source = Ipv4Addr::new(127, 0, 0, 1 + (i % sources as usize) as u8);
            tokio::spawn(async move {
                let mut error = None;
                while next.fetch_add(1, Relaxed) < cycles && Instant::now() < deadline {
                    match once(&endpoint, source).await {
                        Ok(()) => {
                            done.fetch_add(1, Relaxed);
                        }
                        Err(e) => {
                            error.get_or_insert(e.to_string());
                        }
                    }
                }
                error
            })
        })
        .collect();
    let mut first_error = None;
    for l in loops {
        if let Ok(Some(e)) = l.await {
            first_error.get_or_insert(e);
        }
    }
    (done.load(Relaxed), first_error)
}

/// One tab's life: open the stream, wait for its first bytes, close.
async fn once(endpoint: &Endpoint, source: Ipv4Addr) -> io::Result<()> {
    let (mut conn, head) = endpoint.subscribe(Some(source), None).await?;
    let first = conn.read_body(&head, |_| false);
    // Peers send nothing until a publish; the response head is enough there.
    let wait = if endpoint.target == Target::Herald {
        Duration::from_secs(10)
    } else {
        Duration::ZERO
    };
    let _ = tokio::time::timeout(wait, first).await;
    Ok(())
}
