//! A tab's stream on a connection of its own: written to the socket directly, parked between
//! messages.
//!
//! The stream's task writes what is due (the first message, a replay, a resync, a private
//! message) and then parks the stream with the hub's fan-out, which writes broadcast messages
//! and heartbeats to the socket itself (`hub::fanout`). The task sleeps until the fan-out hands
//! the stream back or the client closes the socket. The body is delimited by the connection's
//! close, so a message is exactly its SSE bytes on the wire, with no chunk framing to add.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use super::respond::MAX_WRITE;
use super::wire::{self, Stop};
use crate::hub::{Due, LiveStream, Park, Sink};

impl Sink for TcpStream {
    fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        TcpStream::try_write(self, bytes)
    }
}

/// Serves `live` on `tcp` until the client goes, sends anything, takes nothing for
/// `send_timeout`, or the hub closes. `head` is the response head, written with the first
/// message. A tab cut loose resumes by `Last-Event-ID` when it reconnects.
pub async fn serve(
    tcp: TcpStream,
    head: Vec<u8>,
    live: LiveStream,
    send_timeout: Duration,
    mut stop: Stop,
) {
    let tcp = Arc::new(tcp);
    if let Err(e) = follow(&tcp, head, live, send_timeout, &mut stop).await {
        tracing::trace!(error = %e, "stream ended with an error");
    }
}

async fn follow(
    tcp: &Arc<TcpStream>,
    mut pending: Vec<u8>,
    mut live: LiveStream,
    send_timeout: Duration,
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
        wire::write_all(tcp, &pending, send_timeout, stop).await?;
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
