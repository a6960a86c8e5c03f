//! Streams that repeat a message on a fixed period (`/event`, `/ping`): no history, no cursor,
//! but they end like every other stream when the hub closes.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::watch;

/// Emits `make()` at once and then every `period`, until `closing` turns true.
pub fn every<F, Fut>(
    period: Duration,
    closing: watch::Receiver<bool>,
    make: F,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Bytes> + Send,
{
    let ticks = tokio::time::interval(period);
    futures_util::stream::unfold(
        (ticks, closing, make),
        |(mut ticks, mut closing, mut make)| async move {
            tokio::select! {
                biased;
                _ = closing.wait_for(|closed| *closed) => return None,
                _ = ticks.tick() => {}
            }
            let chunk = make().await;
            Some((Ok(chunk), (ticks, closing, make)))
        },
    )
}
