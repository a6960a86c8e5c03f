//! Publishing M messages at a fixed rate through the server's normal publish path, over a few
//! kept-alive connections so a slow answer never delays the next message's schedule much.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::http::{self, Conn};
use crate::sse::Marker;
use crate::streams::now_us;
use crate::target::{Endpoint, exchange};

/// A publish not answered by then counts as failed, and its connection is dropped.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

fn timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer within 10 s")
}

/// How publishing uses its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connections {
    /// Kept alive; a reused one the server has just closed is retried once on a fresh one.
    KeptAlive,
    /// A fresh connection for each message and no retry: while a server is being killed, a
    /// request whose answer never came may have been stored, and sending it again could store
    /// it twice.
    FreshEach,
}

/// What publishing produced: which messages the server accepted, and when it started.
pub struct Published {
    pub accepted: Vec<bool>,
    /// Messages not accepted whose request may have reached a server anyway (no answer came):
    /// they may be published or not.
    pub maybe: Vec<bool>,
    /// How long each accepted publish took to be answered, in µs, sorted: the part of the
    /// latency that is the publish request itself.
    pub answer_us: Vec<u64>,
    pub first_us: u64,
    pub last_us: u64,
    pub first_error: Option<String>,
}

impl Published {
    pub fn ok(&self) -> u64 {
        self.accepted.iter().filter(|&&ok| ok).count() as u64
    }

    /// The `q` quantile of the answer times, in ms.
    pub fn answer_ms(&self, q: f64) -> Option<f64> {
        let last = self.answer_us.len().checked_sub(1)?;
        let at = ((last as f64) * q).round() as usize;
        Some(self.answer_us[at] as f64 / 1000.0)
    }
}

/// Publishes messages `first..first + count`: message `first + i` is due `i / rate` seconds
/// after the start; publisher `j` of `p` sends the messages with `i % p == j`, in order.
/// `accepted[i]` says whether the server accepted message `first + i`.
pub async fn publish(
    endpoint: &Endpoint,
    first: u64,
    count: u64,
    rate: f64,
    publishers: usize,
    connections: Connections,
) -> Published {
    let messages = count;
    let endpoint = Arc::new(endpoint.clone());
    let start = Instant::now();
    let first_us = now_us();
    let publishers = publishers.min(messages.max(1) as usize);
    let tasks: Vec<_> = (0..publishers)
        .map(|j| {
            let endpoint = endpoint.clone();
            tokio::spawn(async move {
                let mut results = Vec::new();
                let mut answers = Vec::new();
                let mut conn: Option<Conn> = None;
                let mut error = None;
                for seq in (j as u64..messages).step_by(publishers) {
                    tokio::time::sleep_until(start + Duration::from_secs_f64(seq as f64 / rate))
                        .await;
                    let marker = Marker {
                        seq: first + seq,
                        sent_us: now_us(),
                    };
                    let sent = tokio::time::timeout(
                        PUBLISH_TIMEOUT,
                        send(&endpoint, &mut conn, marker, connections),
                    );
                    let outcome = match sent
                        .await
                        .unwrap_or_else(|_| Err(Failed::maybe(timed_out())))
                    {
                        Ok(()) => {
                            answers.push(now_us().saturating_sub(marker.sent_us));
                            (true, false)
                        }
                        Err(Failed { error: e, maybe }) => {
                            error.get_or_insert(format!("publish {}: {e}", first + seq));
                            (false, maybe)
                        }
                    };
                    results.push((seq, outcome));
                }
                (results, answers, error)
            })
        })
        .collect();
    let mut accepted = vec![false; messages as usize];
    let mut maybe = vec![false; messages as usize];
    let mut answer_us = Vec::new();
    let mut first_error = None;
    for task in tasks {
        if let Ok((results, answers, error)) = task.await {
            for (seq, (ok, unknown)) in results {
                accepted[seq as usize] = ok;
                maybe[seq as usize] = unknown;
            }
            answer_us.extend(answers);
            first_error = first_error.or(error);
        }
    }
    answer_us.sort_unstable();
    Published {
        accepted,
        maybe,
        answer_us,
        first_us,
        last_us: now_us(),
        first_error,
    }
}

/// A publish that failed, and whether its request may have reached the server all the same.
struct Failed {
    error: std::io::Error,
    maybe: bool,
}

impl Failed {
    fn maybe(error: std::io::Error) -> Failed {
        Failed { error, maybe: true }
    }
}

/// One publish request; the connection is reused while the server keeps it open (when kept
/// alive). A reused connection the server has just closed (an idle timeout) is retried once on
/// a fresh one. Failing to connect stores nothing, nor does an answer other than 2xx; anything
/// else may have.
async fn send(
    endpoint: &Endpoint,
    conn: &mut Option<Conn>,
    marker: Marker,
    connections: Connections,
) -> Result<(), Failed> {
    let request = endpoint.publish_request(marker);
    let answer = match conn.take() {
        Some(mut c) => match exchange(&mut c, &request).await {
            Ok(answer) => Ok((c, answer)),
            Err(_) => fresh(endpoint, &request)
                .await
                .map_err(|f| Failed { maybe: true, ..f }),
        },
        None => fresh(endpoint, &request).await,
    };
    let (c, (head, body)) = answer?;
    if !(200..300).contains(&head.status) {
        let error = http::bad(&format!(
            "status {}: {}",
            head.status,
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ));
        return Err(Failed {
            error,
            maybe: false,
        });
    }
    if head.keep_alive() && connections == Connections::KeptAlive {
        *conn = Some(c);
    }
    Ok(())
}

async fn fresh(
    endpoint: &Endpoint,
    request: &[u8],
) -> Result<(Conn, (http::Head, Vec<u8>)), Failed> {
    let stream = http::connect(endpoint.addr, None)
        .await
        .map_err(|error| Failed {
            error,
            maybe: false,
        })?;
    let mut c = Conn::new(stream);
    let answer = exchange(&mut c, request).await.map_err(Failed::maybe)?;
    Ok((c, answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_quantiles_come_from_the_sorted_times() {
        let mut p = Published {
            accepted: Vec::new(),
            maybe: Vec::new(),
            answer_us: (1..=100).map(|i| i * 1000).collect(),
            first_us: 0,
            last_us: 0,
            first_error: None,
        };
        assert_eq!(p.answer_ms(0.5), Some(51.0));
        assert_eq!(p.answer_ms(0.99), Some(99.0));
        p.answer_us.clear();
        assert_eq!(p.answer_ms(0.99), None);
    }
}
