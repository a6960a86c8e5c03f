//! The accept loop: HTTP/1.1 straight into hyper, with graceful shutdown.
//!
//! `axum::serve` hands every connection to hyper-util's protocol-sniffing builder, which first
//! reads a few bytes to tell HTTP/1 from HTTP/2 and replays them. hyper then sees a partial read
//! and doubles its read buffer, which an SSE connection keeps for its whole life: 16 KB instead
//! of 8 KB per open stream. Herald only speaks HTTP/1.1 (browsers open one SSE stream per tab
//! and no HTTP/2 is configured), so it serves HTTP/1 directly (BENCHMARKS.md).
//!
//! Each connection gets a clone of the finished router, which is an `Arc`: `axum::serve` on a
//! `Router` instead re-applies its state per connection, rebuilding the route table (about
//! 10 KB more per open stream).

use std::future::Future;
use std::io;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Serves `router` until `shutdown` resolves, then lets every connection finish its current
/// response (the caller ends the streams) and returns once all are closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection holds a receiver; `closed()` resolves when the last one is dropped.
    let (done_tx, done_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let mut stop = stop_rx.clone();
        stop.mark_unchanged();
        let done = done_rx.clone();
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service);
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                _ = stop.changed() => {
                    // Finish the response in flight (streams end as the hub closes), then close.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::trace!(error = %e, "connection ended with an error");
            }
            drop(done);
        });
    }
    drop(listener);
    stop_tx.send_replace(true);
    drop(done_rx);
    done_tx.closed().await;
    Ok(())
}

/// Errors of one connection are that connection's; anything else (out of file descriptors) is
/// logged and retried after a pause instead of spinning or ending the server.
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
