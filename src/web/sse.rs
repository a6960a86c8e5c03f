//! Hub streams on the web: as responses, and a tab's stream on a connection of its own.
//!
//! Any stream can be a chunked response body ([`response`]). A tab's stream is better served
//! by the connection itself ([`live_response`] hands it over through [`Takeover`]): its task
//! writes what is due (the first message, a replay, a resync, a private message) and then parks
//! the stream with the hub's fan-out, which writes broadcast messages and heartbeats to the
//! socket itself (`hub::fanout`). The task sleeps until the fan-out hands the stream back or the
//! client closes the socket. The body is delimited by the connection's close, so a message is
//! exactly its SSE bytes on the wire, with no chunk framing to add.

use std::convert::Infallible;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::Stream;
use tokio::net::TcpStream;

use super::respond::MAX_WRITE;
use super::serve::Slot;
use super::wire::{self, Stop};
use crate::hub::stats::{STATS, Writer};
use crate::hub::{Due, LiveStream, Park, Sink};

/// Where a resumable stream starts: `Last-Event-ID` (a reconnect) wins over the `?cursor=` in
/// its URL, which a client keeps in the URL it reconnects to.
pub fn resume_from(headers: &HeaderMap, cursor: Option<String>) -> Option<String> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(cursor)
}

/// Wraps an SSE body with the headers every stream needs: no caching, and no proxy buffering.
pub fn response<S>(stream: S) -> Response
where
    S: Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
{
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// A tab's stream as a response. A connection that writes to its socket itself takes the stream
/// out through the [`Takeover`] extension (and parks it between messages, see [`serve`]); any
/// other connection (hyper's, HTTP/2) polls the body, which then reads the stream itself.
pub fn live_response(live: LiveStream) -> Response {
    let takeover = Takeover(Arc::new(Mutex::new(Some(live))));
    let slot = takeover.clone();
    let started = Instant::now();
    let body = futures_util::stream::unfold(None, move |polled: Option<Polled>| {
        let slot = slot.clone();
        async move {
            let mut polled = match polled {
                Some(polled) => polled,
                None => Polled {
                    live: Some(slot.take()?),
                    started,
                },
            };
            let live = polled.live.as_mut()?;
            match live.next_chunk().await {
                Some(chunk) => {
                    live.delivered(chunk.len());
                    Some((Ok(chunk), Some(polled)))
                }
                None => {
                    polled.end(Ended::ServerClosing);
                    None
                }
            }
        }
    });
    let mut response = response(body);
    response.extensions_mut().insert(takeover);
    response
}

/// A tab's stream read through its response body; writes its line when the body ends or is
/// dropped.
struct Polled {
    live: Option<LiveStream>,
    started: Instant,
}

impl Polled {
    fn end(&mut self, ended: Ended) {
        if let Some(live) = self.live.take() {
            closed(&live, self.started, &ended);
        }
    }
}

impl Drop for Polled {
    fn drop(&mut self) {
        // The connection dropped the body: the client went, or a limit or shutdown cut it.
        self.end(Ended::Dropped);
    }
}

/// Why a tab's stream ended.
#[derive(Debug)]
enum Ended {
    /// The client closed the connection (or sent something on it).
    ClientClosed,
    /// The hub closed: shutdown, so the browser reconnects.
    ServerClosing,
    /// Its response body was dropped by the connection that served it.
    Dropped,
    /// Writing failed: the client took nothing for the send timeout, the shutdown grace ran
    /// out, or the socket broke.
    Write(io::Error),
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ended::ClientClosed => f.write_str("client closed"),
            Ended::ServerClosing => f.write_str("server closing"),
            Ended::Dropped => f.write_str("response dropped"),
            Ended::Write(e) => write!(f, "write failed: {e}"),
        }
    }
}

/// A stream's line on close (target `herald::stream`), beside its request's access line.
fn closed(live: &LiveStream, started: Instant, ended: &Ended) {
    tracing::info!(
        target: "herald::stream",
        client = %live.client(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        messages = live.messages(),
        bytes = live.bytes(),
        ended = %ended,
        "stream closed",
    );
}

/// The stream inside a [`live_response`], for whichever takes it first: the connection or the
/// body.
#[derive(Clone)]
pub struct Takeover(Arc<Mutex<Option<LiveStream>>>);

impl Takeover {
    pub fn take(&self) -> Option<LiveStream> {
        self.0.lock().expect("takeover lock").take()
    }
}

/// A stream's socket, which the fan-out writes to by its descriptor.
impl Sink for TcpStream {
    fn fd(&self) -> Option<RawFd> {
        Some(self.as_raw_fd())
    }
}

/// Serves `live` on `tcp` until the client goes, sends anything, takes nothing for
/// `send_timeout`, or the hub closes; then writes the stream's line. `head` is the response
/// head, written with the first message. A tab cut loose resumes by `Last-Event-ID` when it
/// reconnects.
///
/// The task of its own it is spawned as holds `slot` (the connection's place) to the end.
pub(super) async fn serve(
    tcp: TcpStream,
    head: Vec<u8>,
    live: Box<LiveStream>,
    send_timeout: Duration,
    mut stop: Stop,
    slot: Slot,
) {
    let started = Instant::now();
    let socket = Arc::new(tcp);
    let (live, ended) = follow(&socket, head, live, send_timeout, &mut stop).await;
    closed(&live, started, &ended);
    drop(slot);
}

async fn follow(
    socket: &Arc<TcpStream>,
    mut pending: Vec<u8>,
    mut live: Box<LiveStream>,
    send_timeout: Duration,
    stop: &mut Stop,
) -> (Box<LiveStream>, Ended) {
    // The head goes out with the first message, but is not the stream's.
    let mut head = pending.len();
    loop {
        let due = live.due().await;
        if let Due::Chunk(chunk) = &due {
            pending.extend_from_slice(chunk);
            if pending.len() < MAX_WRITE {
                continue;
            }
        }
        let written = wire::write_all(socket, &pending, send_timeout, stop, Writer::Task);
        if let Err(e) = written.await {
            return (live, Ended::Write(e));
        }
        live.delivered(pending.len().saturating_sub(head));
        head = 0;
        pending = Vec::new();
        match due {
            Due::Chunk(_) => continue,
            Due::Closed => return (live, Ended::ServerClosing),
            Due::CaughtUp => {}
        }
        live = match live.park(socket.clone()) {
            Park::Behind(live) => live,
            Park::Parked(mut parked) => {
                let gone = loop {
                    tokio::select! {
                        () = parked.woken() => break false,
                        gone = client_gone(socket) => if gone {
                            break true;
                        },
                    }
                };
                let (live, unwritten) = parked.resume();
                if gone {
                    return (live, Ended::ClientClosed);
                }
                STATS.hand_back();
                pending = unwritten;
                live
            }
        };
    }
}

/// Waits until the socket is readable: `true` if the client closed it or sent anything. A
/// stream's connection carries nothing more from the client, so bytes on it are a broken or
/// hostile client, disconnected at once rather than read and dropped.
async fn client_gone(tcp: &TcpStream) -> bool {
    if tcp.readable().await.is_err() {
        return true;
    }
    let mut scrap = [0; 1];
    match tcp.try_read(&mut scrap) {
        Ok(_) => true,
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    }
}

#[cfg(test)]
mod tests;
