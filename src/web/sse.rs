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
use std::io;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::Stream;
use socket2::SockRef;
use tokio::net::TcpStream;

use super::respond::MAX_WRITE;
use super::wire::{self, Stop};
use crate::config::ConnectionLimits;
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
/// other connection polls the body, which then reads the stream itself.
pub fn live_response(live: LiveStream) -> Response {
    let takeover = Takeover(Arc::new(Mutex::new(Some(live))));
    let slot = takeover.clone();
    let body = futures_util::stream::unfold(None, move |live: Option<LiveStream>| {
        let slot = slot.clone();
        async move {
            let mut live = match live {
                Some(live) => live,
                None => slot.take()?,
            };
            let chunk = live.next_chunk().await?;
            Some((Ok(chunk), Some(live)))
        }
    });
    let mut response = response(body);
    response.extensions_mut().insert(takeover);
    response
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

/// The fan-out's write is a plain non-blocking `send` on the descriptor, not tokio's
/// `try_write`: that one first reads the socket's readiness from tokio's registration, a cache
/// line of its own per socket and cold by the time a pass reaches it (~6% of Herald's CPU at
/// 10,000 streams, BENCHMARKS.md). The registration only matters to the stream's task, whose
/// writes go through tokio and find any stale readiness out at their first `WouldBlock`.
impl Sink for TcpStream {
    fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        let written = SockRef::from(self).send_with_flags(bytes, libc::MSG_NOSIGNAL);
        STATS.write(Writer::Fanout, bytes.len(), &written);
        written
    }
}

/// Serves `live` on `tcp` until the client goes, sends anything, takes nothing for
/// `send_timeout`, or the hub closes. `head` is the response head, written with the first
/// message. A tab cut loose resumes by `Last-Event-ID` when it reconnects.
pub async fn serve(
    tcp: TcpStream,
    head: Vec<u8>,
    live: LiveStream,
    limits: &ConnectionLimits,
    stop: &mut Stop,
) {
    let tcp = Arc::new(tcp);
    if let Err(e) = follow(&tcp, head, live, limits, stop).await {
        tracing::trace!(error = %e, "stream ended with an error");
    }
}

async fn follow(
    tcp: &Arc<TcpStream>,
    mut pending: Vec<u8>,
    mut live: LiveStream,
    limits: &ConnectionLimits,
    stop: &mut Stop,
) -> io::Result<()> {
    loop {
        let due = live.due().await;
        if let Due::Chunk(chunk) = &due {
            pending.extend_from_slice(chunk);
            if pending.len() < MAX_WRITE {
                continue;
            }
        }
        wire::write_all(tcp, &pending, limits.send_timeout, stop, Writer::Task).await?;
        pending = Vec::new();
        match due {
            Due::Chunk(_) => continue,
            Due::Closed => return Ok(()),
            Due::CaughtUp => {}
        }
        live = match live.park(tcp.clone()) {
            Park::Behind(live) => live,
            Park::Parked(mut parked) => {
                loop {
                    tokio::select! {
                        () = parked.woken() => break,
                        gone = client_gone(tcp) => if gone {
                            return Ok(());
                        },
                    }
                }
                STATS.hand_back();
                let (live, unwritten) = parked.resume();
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
