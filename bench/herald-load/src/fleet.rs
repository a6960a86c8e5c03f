//! The streams of a run, held by this process or by K child processes (each process may hold at
//! most 20,000 files on these machines). Both kinds of member speak the same [`Event`]s: a child
//! writes them to stdout as JSON lines and reads the "stop" (what was published) from stdin.

use std::io::{self, Write};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::server::{cpu_secs, wait_secs};
use crate::streams::{self, Observed, Plan, Tally};

/// How often a member reports how many messages its streams have received.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, Serialize, Deserialize)]
pub enum Event {
    Opened { opened: u64, failed: u64 },
    Progress { unique: u64 },
    Done(Box<Observed>),
}

/// Runs one share of the streams: opens them, reports progress until `stop` brings the
/// published map, then reports what the streams observed.
pub async fn work(plan: Plan, events: mpsc::Sender<Event>, stop: oneshot::Receiver<Vec<bool>>) {
    let tally = Arc::new(Tally::default());
    let (stop_tx, stop_rx) = watch::channel(None);
    streams::open(&plan, &tally, &stop_rx).await;
    let opened = Event::Opened {
        opened: tally.opened.load(Relaxed),
        failed: tally.failed.load(Relaxed),
    };
    if events.send(opened).await.is_err() {
        return;
    }
    tokio::pin!(stop);
    let published = loop {
        tokio::select! {
            published = &mut stop => break published.unwrap_or_default(),
            _ = tokio::time::sleep(PROGRESS_EVERY) => {
                let unique = tally.unique.load(Relaxed);
                if events.send(Event::Progress { unique }).await.is_err() {
                    return;
                }
            }
        }
    };
    stop_tx.send_replace(Some(Arc::new(published)));
    let _ = tokio::time::timeout(Duration::from_secs(10), streams::finished(&tally)).await;
    let _ = events.send(Event::Done(Box::new(tally.observed()))).await;
}

/// A child process's side: `work` with stdout for events and stdin for the stop.
pub async fn child_main(plan: Plan) -> io::Result<()> {
    let (tx, mut rx) = mpsc::channel(16);
    let (stop_tx, stop_rx) = oneshot::channel();
    // The pipes are read and written with blocking std I/O: one line in, a few lines out.
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        let _ = stop_tx.send(serde_json::from_str(&line).unwrap_or_default());
    });
    tokio::spawn(work(plan, tx, stop_rx));
    while let Some(event) = rx.recv().await {
        let line = serde_json::to_string(&event).map_err(io::Error::other)?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    Ok(())
}

enum Member {
    Local(Option<oneshot::Sender<Vec<bool>>>),
    Child(Box<Child>, Option<ChildStdin>),
}

#[derive(Default, Clone)]
struct Status {
    opened: Option<(u64, u64)>,
    unique: u64,
    done: Option<Observed>,
}

pub struct Fleet {
    members: Vec<Member>,
    status: Vec<Status>,
    events: mpsc::Receiver<(usize, Event)>,
}

impl Fleet {
    /// Starts one member per plan: in this process if `in_process` holds (one plan), else as
    /// child processes (each with its own open-files limit).
    pub fn start(plans: Vec<Plan>, in_process: bool) -> io::Result<Fleet> {
        let (tx, events) = mpsc::channel(64);
        let mut members = Vec::new();
        let in_process = in_process && plans.len() == 1;
        for (i, plan) in plans.into_iter().enumerate() {
            if in_process {
                let (stop_tx, stop_rx) = oneshot::channel();
                let (etx, mut erx) = mpsc::channel(16);
                let tx = tx.clone();
                tokio::spawn(work(plan, etx, stop_rx));
                tokio::spawn(async move {
                    while let Some(e) = erx.recv().await {
                        if tx.send((i, e)).await.is_err() {
                            return;
                        }
                    }
                });
                members.push(Member::Local(Some(stop_tx)));
            } else {
                let json = serde_json::to_string(&plan).map_err(io::Error::other)?;
                let mut child = Command::new(std::env::current_exe()?)
                    .args(["worker", &json])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()?;
                let stdout = child.stdout.take().expect("piped stdout");
                let stdin = child.stdin.take();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut lines = BufReader::new(stdout).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        match serde_json::from_str(&line) {
                            Ok(e) => {
                                if tx.send((i, e)).await.is_err() {
                                    return;
                                }
                            }
                            Err(e) => eprintln!("worker {i}: unreadable line ({e}): {line}"),
                        }
                    }
                });
                members.push(Member::Child(Box::new(child), stdin));
            }
        }
        let status = vec![Status::default(); members.len()];
        Ok(Fleet {
            members,
            status,
            events,
        })
    }

    /// Applies events until `done` holds or `deadline` passes; `false` on the deadline.
    async fn until(&mut self, deadline: Instant, done: impl Fn(&[Status]) -> bool) -> bool {
        while !done(&self.status) {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some((i, event))) => match event {
                    Event::Opened { opened, failed } => {
                        self.status[i].opened = Some((opened, failed))
                    }
                    Event::Progress { unique } => self.status[i].unique = unique,
                    Event::Done(observed) => self.status[i].done = Some(*observed),
                },
                Ok(None) | Err(_) => return false,
            }
        }
        true
    }

    /// CPU seconds used by the processes holding the streams (this one and any workers), to
    /// show whether the tool itself was the bottleneck.
    pub fn cpu(&self) -> f64 {
        self.pids().into_iter().map(cpu_secs).sum()
    }

    /// Seconds the processes holding the streams have waited for a CPU.
    pub fn waited(&self) -> f64 {
        self.pids().into_iter().map(wait_secs).sum()
    }

    fn pids(&self) -> Vec<u32> {
        self.members
            .iter()
            .filter_map(|m| match m {
                Member::Child(child, _) => child.id(),
                Member::Local(_) => None,
            })
            .chain([std::process::id()])
            .collect()
    }

    /// Waits until every member has opened its streams; returns (opened, failed) over all.
    pub async fn opened(&mut self, deadline: Instant) -> io::Result<(u64, u64)> {
        if !self
            .until(deadline, |s| s.iter().all(|m| m.opened.is_some()))
            .await
        {
            return Err(io::Error::other("streams did not finish opening in time"));
        }
        Ok(self
            .status
            .iter()
            .filter_map(|m| m.opened)
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1)))
    }

    /// Waits until the streams have received `expected` messages in all, or `deadline`.
    pub async fn received(&mut self, expected: u64, deadline: Instant) -> u64 {
        let total = |s: &[Status]| s.iter().map(|m| m.unique).sum::<u64>();
        self.until(deadline, move |s| total(s) >= expected).await;
        total(&self.status)
    }

    /// Tells every member what was published and gathers what the streams observed.
    pub async fn finish(mut self, published: Vec<bool>, deadline: Instant) -> io::Result<Observed> {
        let line = {
            let mut l = serde_json::to_vec(&published).map_err(io::Error::other)?;
            l.push(b'\n');
            l
        };
        for member in &mut self.members {
            match member {
                Member::Local(stop) => {
                    if let Some(stop) = stop.take() {
                        let _ = stop.send(published.clone());
                    }
                }
                Member::Child(_, stdin) => {
                    if let Some(mut pipe) = stdin.take() {
                        pipe.write_all(&line).await?;
                        pipe.flush().await?;
                    }
                }
            }
        }
        if !self
            .until(deadline, |s| s.iter().all(|m| m.done.is_some()))
            .await
        {
            return Err(io::Error::other("streams did not report in time"));
        }
        let mut all = Observed::default();
        for status in self.status.drain(..) {
            all.merge(status.done.expect("checked above"));
        }
        for member in &mut self.members {
            if let Member::Child(child, _) = member {
                let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            }
        }
        Ok(all)
    }
}
