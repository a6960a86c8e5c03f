//! A stream that resumes as a browser tab does (the failover mode): when its connection ends
//! (end of stream, reset, error) it reconnects at once to the same address with the same tab
//! (stream URL and session cookie) and `Last-Event-ID` set to the last id it received, retrying
//! after a short jittered pause, each attempt time-limited, until it is back or the run ends.
//! Its [`Timeline`] says when it was cut, when a reconnect was answered and when it was live.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::sse::{Messages, Seen};
use crate::streams::{OPEN_TIMEOUT, Stop, Tally, count_losses, now_us};
use crate::target::Endpoint;

/// One reconnect attempt (connect, request, response head) not answered by then is abandoned.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause between failed attempts: this, plus up to [`JITTER`], so that thousands of
/// streams cut at once do not retry in step.
const BACKOFF: Duration = Duration::from_millis(50);
const JITTER: Duration = Duration::from_millis(50);

/// What happened to one stream's connections, in µs since the epoch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    /// Connections of the stream that ended before the run did.
    pub cuts: u32,
    /// When the first of them ended.
    pub cut_us: Option<u64>,
    /// Reconnect attempts, failed ones included.
    pub attempts: u32,
    /// When the last reconnect was answered 200 with an event stream.
    pub answered_us: Option<u64>,
    /// When a published message (replayed or new) was first dispatched after that answer: the
    /// stream was live again.
    pub live_us: Option<u64>,
}

impl Timeline {
    fn cut(&mut self, at: u64) {
        self.cuts += 1;
        self.cut_us.get_or_insert(at);
        self.answered_us = None;
        self.live_us = None;
    }

    fn answered(&mut self, at: u64) {
        self.answered_us = Some(at);
    }

    fn message(&mut self, at: u64) {
        if self.answered_us.is_some() && self.live_us.is_none() {
            self.live_us = Some(at);
        }
    }
}

/// The pause before reconnect attempt `attempt` (from 1) of a stream: none before the first,
/// [`BACKOFF`] plus a jitter drawn from `noise` before the others.
pub fn pause(attempt: u32, noise: u64) -> Duration {
    if attempt <= 1 {
        Duration::ZERO
    } else {
        BACKOFF + Duration::from_micros(noise % (JITTER.as_micros() as u64 + 1))
    }
}

/// Opens a tab's stream from `source`, then holds it through any number of reconnects until
/// `stop` brings what was accepted; then counts its losses and leaves its [`Timeline`].
pub async fn hold(
    endpoint: Arc<Endpoint>,
    source: Ipv4Addr,
    messages: u64,
    tally: Arc<Tally>,
    mut stop: Stop,
) {
    let subscribed = tokio::select! {
        s = tokio::time::timeout(OPEN_TIMEOUT, endpoint.subscribe_tab(Some(source), None)) => s,
        _ = stop.wait_for(Option::is_some) => return,
    };
    let (mut conn, mut head, tab) = match subscribed {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return tally.open_failed(format!("open from {source}: {e}")),
        Err(_) => return tally.open_failed("no stream within 15 s"),
    };
    tally.opened.fetch_add(1, Relaxed);
    let mut seen = Seen::new(messages);
    let mut parser = Messages::watching_resyncs();
    let mut timeline = Timeline::default();
    'run: loop {
        {
            let read = conn.read_body(&head, |piece| {
                parser.feed(piece, &mut |m| {
                    let now = now_us();
                    timeline.message(now);
                    if seen.record(m.seq) {
                        tally.arrived(m.seq, m.sent_us, now);
                    }
                });
                true
            });
            // However it ended (end of stream, reset, error), the stream reconnects.
            tokio::select! {
                _ = read => {}
                _ = stop.wait_for(Option::is_some) => break 'run,
            }
        }
        timeline.cut(now_us());
        parser.reconnected();
        loop {
            timeline.attempts += 1;
            let wait = pause(timeline.attempts, now_us() ^ u64::from(source.to_bits()));
            let attempt = async {
                tokio::time::sleep(wait).await;
                let id = parser.last_id.as_deref();
                tokio::time::timeout(ATTEMPT_TIMEOUT, endpoint.open_tab(&tab, id)).await
            };
            let opened = tokio::select! {
                opened = attempt => opened,
                _ = stop.wait_for(Option::is_some) => break 'run,
            };
            match opened {
                Ok(Ok((c, h))) => {
                    (conn, head) = (c, h);
                    timeline.answered(now_us());
                    break;
                }
                Ok(Err(e)) => tally.retry_failed(e),
                Err(_) => tally.retry_failed("no answer within 5 s"),
            }
        }
    }
    count_losses(&mut stop, &seen, &tally).await;
    tally.resumed(&seen, parser.resyncs, timeline);
    tally.finished.fetch_add(1, Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_attempt_is_at_once_the_others_after_a_jittered_pause() {
        assert_eq!(pause(1, 12_345), Duration::ZERO);
        for noise in [0, 1, 49_999, 50_000, 50_001, u64::MAX] {
            let p = pause(2, noise);
            assert!(p >= BACKOFF && p <= BACKOFF + JITTER, "{p:?}");
        }
        assert_ne!(pause(3, 7), pause(3, 20_000), "the noise moves it");
    }

    #[test]
    fn live_is_the_first_message_after_the_reconnect_was_answered() {
        let mut t = Timeline::default();
        t.message(5);
        assert_eq!(t.live_us, None, "a message before any cut is not a return");
        t.cut(10);
        t.message(11);
        assert_eq!(
            t.live_us, None,
            "nor is one before the reconnect was answered"
        );
        t.answered(20);
        t.message(25);
        t.message(30);
        assert_eq!(
            (t.cut_us, t.answered_us, t.live_us),
            (Some(10), Some(20), Some(25))
        );
        t.cut(40);
        assert_eq!(
            (t.cuts, t.cut_us, t.answered_us, t.live_us),
            (2, Some(10), None, None),
            "cut again: not live until the next return"
        );
    }
}
