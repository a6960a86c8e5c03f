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

/// What publishing produced: which messages the server accepted, and when it started.
pub struct Published {
    pub accepted: Vec<bool>,
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
                    let sent =
                        tokio::time::timeout(PUBLISH_TIMEOUT, send(&endpoint, &mut conn, marker));
                    let ok = match sent.await.unwrap_or_else(|_| Err(timed_out())) {
                        Ok(()) => {
                            answers.push(now_us().saturating_sub(marker.sent_us));
                            true
                        }
                        Err(e) => {
                            error.get_or_insert(format!("publish {}: {e}", first + seq));
                            false
                        }
                    };
                    results.push((seq, ok));
                }
                (results, answers, error)
            })
        })
        .collect();
    let mut accepted = vec![false; messages as usize];
    let mut answer_us = Vec::new();
    let mut first_error = None;
    for task in tasks {
        if let Ok((results, answers, error)) = task.await {
            for (seq, ok) in results {
                accepted[seq as usize] = ok;
            }
            answer_us.extend(answers);
            first_error = first_error.or(error);
        }
    }
    answer_us.sort_unstable();
    Published {
        accepted,
        answer_us,
        first_us,
        last_us: now_us(),
        first_error,
    }
}

/// One publish request; the connection is reused while the server keeps it open. A reused
/// connection the server has just closed (an idle timeout) is retried once on a fresh one.
async fn send(endpoint: &Endpoint, conn: &mut Option<Conn>, marker: Marker) -> std::io::Result<()> {
    let request = endpoint.publish_request(marker);
    let answer = match conn.take() {
        Some(mut c) => match exchange(&mut c, &request).await {
            Ok(answer) => Ok((c, answer)),
            Err(_) => fresh(endpoint, &request).await,
        },
        None => fresh(endpoint, &request).await,
    };
    let (c, (head, body)) = answer?;
    if !(200..300).contains(&head.status) {
        return Err(http::bad(&format!(
            "status {}: {}",
            head.status,
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )));
    }
    if head.keep_alive() {
        *conn = Some(c);
    }
    Ok(())
}

async fn fresh(
    endpoint: &Endpoint,
    request: &[u8],
) -> std::io::Result<(Conn, (http::Head, Vec<u8>))> {
    let mut c = Conn::new(http::connect(endpoint.addr, None).await?);
    let answer = exchange(&mut c, request).await?;
    Ok((c, answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_quantiles_come_from_the_sorted_times() {
        let mut p = Published {
            accepted: Vec::new(),
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
