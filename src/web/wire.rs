//! Waiting on a client, always within a limit: writes give up when the client has taken
//! nothing for the send timeout, and every wait ends at the server's shutdown deadline.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::hub::stats::{STATS, Writer};

/// What a connection knows of the server's state: `None` while it serves; once shutdown
/// begins, the deadline by which every connection must be closed.
pub type Stop = watch::Receiver<Option<Instant>>;

/// Writes all of `bytes`, each system call counted as `by`'s (`hub::stats`); `Err` when the
/// client went away, took nothing for `send_timeout`, or the shutdown deadline passed.
pub async fn write_all(
    tcp: &TcpStream,
    mut bytes: &[u8],
    send_timeout: Duration,
    stop: &mut Stop,
    by: Writer,
) -> io::Result<()> {
    while !bytes.is_empty() {
        let written = tcp.try_write(bytes);
        STATS.write(by, bytes.len(), &written);
        match written {
            Ok(n) => bytes = &bytes[n..],
            // Boxed: a connection's task is as large as its largest wait, an open stream keeps
            // that size for its whole life, and this wait (two timers) is the rare one.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                Box::pin(writable(tcp, send_timeout, stop)).await?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Waits until `tcp` takes bytes again, for at most `send_timeout` and never past the shutdown
/// deadline.
async fn writable(tcp: &TcpStream, send_timeout: Duration, stop: &mut Stop) -> io::Result<()> {
    tokio::select! {
        ready = tcp.writable() => ready,
        () = tokio::time::sleep(send_timeout) => Err(send_timed_out()),
        () = deadline(stop) => Err(shutdown_deadline()),
    }
}

/// Resolves once shutdown begins (or the server is gone).
pub async fn stopping(stop: &mut Stop) {
    let _ = stop.wait_for(Option::is_some).await;
}

/// Resolves at the shutdown deadline (at once if the server is gone).
pub async fn deadline(stop: &mut Stop) {
    let at = match stop.wait_for(Option::is_some).await {
        Ok(at) => *at,
        Err(_) => return,
    };
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

pub fn send_timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the client took nothing for the send timeout",
    )
}

pub fn shutdown_deadline() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "still open at the end of the shutdown grace",
    )
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    /// A connected pair whose client never reads, with small buffers so the server's side
    /// fills at once.
    async fn stalled_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let client = socket
            .connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (server, client)
    }

    #[tokio::test]
    async fn a_write_nobody_reads_times_out() {
        let (server, _client) = stalled_pair().await;
        let (_tx, mut stop) = watch::channel(None);
        let started = Instant::now();
        let err = write_all(
            &server,
            &vec![b'x'; 16 << 20],
            Duration::from_millis(200),
            &mut stop,
            Writer::Task,
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_write_nobody_reads_ends_at_the_shutdown_deadline() {
        let (server, _client) = stalled_pair().await;
        let (tx, mut stop) = watch::channel(None);
        let bytes = vec![b'x'; 16 << 20];
        let write = write_all(
            &server,
            &bytes,
            Duration::from_secs(3600),
            &mut stop,
            Writer::Task,
        );
        tx.send_replace(Some(Instant::now() + Duration::from_millis(100)));
        let err = tokio::time::timeout(Duration::from_secs(5), write)
            .await
            .expect("ended at the deadline")
            .unwrap_err();
        assert_eq!(err.to_string(), shutdown_deadline().to_string());
    }
}
