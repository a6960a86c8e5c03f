//! The accept loop: a `503` past the connection cap and at the open-files limit, and a
//! graceful shutdown bounded by its grace period.
//!
//! Each connection is served by [`connection`]: GETs without a body on Herald's own small
//! HTTP/1.1 loop, everything else by hyper. (`axum::serve` would hand every connection to
//! hyper-util's protocol-sniffing builder, which doubles hyper's read buffer, and re-apply the
//! router's state per connection: an SSE connection keeps both for its life, BENCHMARKS.md.)
//!
//! Past `HERALD_MAX_CONNECTIONS` (by default the open-files limit less a reserve) and at the
//! open-files limit itself it answers `503` rather than leaving connections unanswered (see
//! [`Spare`]).
//!
//! Each connection gets the router and limits through one `Arc`.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::connection::{self, Shared};
use super::tls::{self, Tls};
use super::wire::Stop;
use crate::config::ConnectionLimits;

/// One connection, plain or HTTPS. HTTPS is boxed: awaited inline, its handshake and HTTP/2
/// state would size every connection's task, plain ones included, for as long as a stream
/// lives (10,000 idle plain streams: 10.5 KB of RSS each inline, 3.9 KB boxed; BENCHMARKS.md).
async fn serve_one(tcp: TcpStream, shared: Arc<Shared>, stop: Stop, slot: Slot) {
    match shared.tls.is_some() {
        true => Box::pin(tls::serve(tcp, shared, stop)).await,
        false => connection::serve(tcp, shared, stop, slot).await,
    }
}

/// A connection's place among the open ones, given up when it is dropped: when the connection
/// ends, whichever task serves it by then (a tab's stream moves to a task of its own).
pub(super) struct Slot {
    open: Arc<AtomicUsize>,
    ended: Arc<AtomicU64>,
    /// Shutdown waits until every connection has dropped this.
    _done: watch::Receiver<()>,
}

impl Slot {
    /// A place among no others, for tests that serve a connection by hand.
    #[cfg(test)]
    pub(super) fn detached() -> Slot {
        Slot {
            open: Arc::new(AtomicUsize::new(1)),
            ended: Arc::default(),
            _done: watch::channel(()).1,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        self.ended.fetch_add(1, Ordering::Relaxed);
    }
}

/// Descriptors kept for everything but connections (the database and its journal, the
/// listener, logs, the spare below) when the cap comes from the open-files limit.
const RESERVED_FILES: u64 = 64;

/// Serves `router` until `shutdown` resolves; then lets every connection finish its current
/// response (the caller ends the streams) and returns once all are closed, or once the shutdown
/// grace is over, closing those still open.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    counts: Arc<Connections>,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    raise_fd_limit();
    let cap = limits.max_connections.unwrap_or_else(default_cap);
    let shared = Arc::new(Shared {
        router,
        limits,
        tls,
    });
    let (stop_tx, stop_rx) = watch::channel(None);
    // Every connection holds a receiver; `closed()` resolves when the last one is dropped.
    let (done_tx, done_rx) = watch::channel(());
    let mut spare = Spare::new(counts.clone());
    let mut over_cap = Refusals::new(
        "at the connection limit (HERALD_MAX_CONNECTIONS)",
        counts.clone(),
    );
    let open = counts.open.clone();
    let ended = Arc::new(AtomicU64::new(0));
    let trimmer = tokio::spawn(give_back_memory(ended.clone()));
    tokio::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    // Every write is a whole message or response: nothing gains from Nagle's
                    // wait (5 KB x 2 msg/s to 10,000 tabs: 8.08 against 8.35 µs per delivery).
                    let _ = tcp.set_nodelay(true);
                    tcp
                }
                Err(e) if out_of_files(&e) => {
                    spare.refuse(&listener).await;
                    continue;
                }
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        if open.load(Ordering::Relaxed) >= cap {
            tokio::spawn(refuse(tcp));
            over_cap.count();
            continue;
        }
        open.fetch_add(1, Ordering::Relaxed);
        let mut stop = stop_rx.clone();
        stop.mark_unchanged();
        let slot = Slot {
            open: open.clone(),
            ended: ended.clone(),
            _done: done_rx.clone(),
        };
        tokio::spawn(serve_one(tcp, shared.clone(), stop, slot));
    }
    drop(listener);
    trimmer.abort();
    let deadline = tokio::time::Instant::now() + limits.shutdown_grace;
    stop_tx.send_replace(Some(deadline));
    drop(done_rx);
    if tokio::time::timeout_at(deadline, done_tx.closed())
        .await
        .is_err()
    {
        tracing::warn!(
            open = open.load(Ordering::Relaxed),
            "closing the connections still open at the end of the shutdown grace"
        );
        // Every connection's waits end at the deadline: give them a moment to close.
        drop(stop_tx);
        let _ = tokio::time::timeout(CLOSING, done_tx.closed()).await;
    }
    Ok(())
}

/// Connections as an operator's metrics count them (`crate::metrics`).
#[derive(Debug, Default)]
pub struct Connections {
    open: Arc<AtomicUsize>,
    refused: AtomicU64,
}

impl Connections {
    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections answered `503`: past the cap or at the open-files limit.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// How long connections cut at the end of the shutdown grace get to close their sockets.
const CLOSING: Duration = Duration::from_millis(250);

/// The cap when none is configured: what the open-files limit leaves for connections.
fn default_cap() -> usize {
    let files = rlimit::Resource::NOFILE
        .get()
        .map_or(1024, |(soft, _)| soft);
    files.saturating_sub(RESERVED_FILES).max(1) as usize
}

/// The answer past the cap and at the open-files limit; browsers' EventSource (htmx) retries
/// after its backoff.
const UNAVAILABLE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Content-Type: text/plain; charset=utf-8\r\nRetry-After: 5\r\nConnection: close\r\n\
Content-Length: 47\r\n\r\nThe server is at its connection limit; retry.\r\n";

/// Answers `503` and closes, reading what the client sent meanwhile (briefly) so that the close
/// does not reset the connection before the client has read the answer.
async fn refuse(mut tcp: TcpStream) {
    // The socket is new: its send buffer takes the answer at once, or never mind.
    let _ = tcp.try_write(UNAVAILABLE);
    let _ = tcp.shutdown().await;
    let drain = async {
        let mut scrap = [0; 4096];
        while tcp.readable().await.is_ok() {
            match tcp.try_read(&mut scrap) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// How long a refused connection is read from before it closes.
const LINGER: Duration = Duration::from_secs(1);

/// After connections have ended, hands the memory they freed back to the system.
///
/// glibc's malloc keeps freed memory in its arenas, so after a wave of connections the process
/// stays at its high-water mark: a million connects and disconnects left RSS 12.5% above where
/// it started, 8% of it free memory (BENCHMARKS.md, churn). `malloc_trim` returns it; it takes
/// well under a millisecond, and runs at most every few seconds, only when connections ended.
async fn give_back_memory(ended: Arc<AtomicU64>) {
    let mut trimmed_at = 0;
    let mut ticks = tokio::time::interval(TRIM_EVERY);
    loop {
        ticks.tick().await;
        let now = ended.load(Ordering::Relaxed);
        if now != trimmed_at {
            trimmed_at = now;
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            // SAFETY: malloc_trim only releases free memory; it is safe to call at any time.
            unsafe {
                libc::malloc_trim(0);
            }
        }
    }
}

const TRIM_EVERY: Duration = Duration::from_secs(5);

/// Every open stream is a file descriptor, and the soft limit is often 1,024 while the hard one
/// is far higher: raise it, so that the only ceiling on streams is the one the system sets.
fn raise_fd_limit() {
    let Ok((soft, _)) = rlimit::Resource::NOFILE.get() else {
        return;
    };
    if let Ok(raised) = rlimit::increase_nofile_limit(u64::MAX)
        && raised > soft
    {
        tracing::info!(
            from = soft,
            to = raised,
            "raised the open-files limit (one per stream)"
        );
    }
}

fn out_of_files(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Answers `503` when the process is out of file descriptors, instead of leaving connections
/// unanswered in the backlog: one descriptor is kept in reserve, given up to accept a waiting
/// connection, refuse it, and taken back.
struct Spare {
    file: Option<std::fs::File>,
    refusals: Refusals,
}

impl Spare {
    fn new(counts: Arc<Connections>) -> Spare {
        Spare {
            file: std::fs::File::open("/dev/null").ok(),
            refusals: Refusals::new("out of file descriptors (the open-files limit)", counts),
        }
    }

    async fn refuse(&mut self, listener: &TcpListener) {
        self.file = None;
        if let Ok(Ok((mut tcp, _))) =
            tokio::time::timeout(Duration::from_millis(100), listener.accept()).await
        {
            // Best effort and brief: the accept loop must not wait on a slow client.
            let _ =
                tokio::time::timeout(Duration::from_millis(100), tcp.write_all(UNAVAILABLE)).await;
            self.refusals.count();
        }
        self.file = std::fs::File::open("/dev/null").ok();
        if self.file.is_none() {
            // Nothing to give up next time: pause rather than spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Connections answered `503` for one reason, logged at most every [`REPORT_EVERY`].
struct Refusals {
    why: &'static str,
    refused: u64,
    reported: Option<Instant>,
    counts: Arc<Connections>,
}

impl Refusals {
    fn new(why: &'static str, counts: Arc<Connections>) -> Refusals {
        Refusals {
            why,
            refused: 0,
            reported: None,
            counts,
        }
    }

    fn count(&mut self) {
        self.counts.refused.fetch_add(1, Ordering::Relaxed);
        self.refused += 1;
        if self.reported.is_none_or(|at| at.elapsed() >= REPORT_EVERY) {
            tracing::error!(
                refused = self.refused,
                "{}: answering new connections 503",
                self.why
            );
            self.reported = Some(Instant::now());
            self.refused = 0;
        }
    }
}

/// At most one log line this often while connections are being refused.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Errors of one connection are that connection's; anything else is logged and retried after a
/// pause instead of spinning or ending the server.
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "cannot accept connections; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test]
    async fn at_the_limit_a_waiting_connection_is_answered_503_and_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let mut spare = Spare::new(Arc::default());
        assert!(spare.file.is_some());
        spare.refuse(&listener).await;
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{answer}"
        );
        assert!(spare.file.is_some(), "the reserve is taken back");
    }

    #[tokio::test]
    async fn a_plain_connection_task_is_no_larger_than_the_plain_path_needs() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (a, b) = (
            TcpStream::connect(addr).await.unwrap(),
            TcpStream::connect(addr).await.unwrap(),
        );
        let shared = Arc::new(Shared {
            router: Router::new(),
            limits: connection::tests::limits(),
            tls: None,
        });
        let (_stop, stop) = watch::channel(None);
        let whole = serve_one(a, shared.clone(), stop.clone(), Slot::detached());
        let plain = connection::serve(b, shared, stop, Slot::detached());
        // The plain path's future and the arguments `serve_one` keeps, not TLS's state.
        assert!(
            std::mem::size_of_val(&whole) <= std::mem::size_of_val(&plain) + 128,
            "{} > {} + 128",
            std::mem::size_of_val(&whole),
            std::mem::size_of_val(&plain)
        );
    }

    #[test]
    fn the_open_files_limit_is_raised_to_the_hard_limit() {
        let (_, hard) = rlimit::Resource::NOFILE.get().unwrap();
        raise_fd_limit();
        let (soft, _) = rlimit::Resource::NOFILE.get().unwrap();
        assert_eq!(soft, hard);
    }

    #[test]
    fn only_running_out_of_descriptors_is_answered_503() {
        assert!(out_of_files(&io::Error::from_raw_os_error(libc::EMFILE)));
        assert!(out_of_files(&io::Error::from_raw_os_error(libc::ENFILE)));
        assert!(!out_of_files(&io::Error::from(
            io::ErrorKind::ConnectionReset
        )));
    }
}
