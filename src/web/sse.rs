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

use tokio::net::TcpStream;

use super::connection::MAX_WRITE;
use crate::hub::stats::{STATS, Writer};
use crate::hub::{Due, LiveStream, Park, Sink};

impl Sink for TcpStream {
    fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        let written = TcpStream::try_write(self, bytes);
        STATS.write(Writer::Fanout, bytes.len(), &written);
        written
    }
}

/// Serves `live` on `tcp` until the client goes or the hub closes.
/// `head` is the response head, written with the first message.
pub async fn serve(tcp: TcpStream, head: Vec<u8>, live: LiveStream) {
    let tcp = Arc::new(tcp);
    if let Err(e) = follow(&tcp, head, live).await {
        tracing::trace!(error = %e, "stream ended with an error");
    }
}

async fn follow(
    tcp: &Arc<TcpStream>,
    mut pending: Vec<u8>,
    mut live: LiveStream,
) -> io::Result<()> {
    loop {
        let due = live.due().await;
        if let Due::Chunk(chunk) = &due {
            pending.extend_from_slice(chunk);
            if pending.len() < MAX_WRITE {
                continue;
            }
        }
        write_all(tcp, &pending).await?;
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

async fn write_all(tcp: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        tcp.writable().await?;
        let written = tcp.try_write(bytes);
        STATS.write(Writer::Task, bytes.len(), &written);
        match written {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Waits until the socket is readable: `true` if the client closed it. Anything a client sends
/// on its stream's connection means nothing and is dropped.
async fn client_gone(tcp: &TcpStream) -> bool {
    if tcp.readable().await.is_err() {
        return true;
    }
    let mut scrap = [0; 64];
    match tcp.try_read(&mut scrap) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    }
}
