//! `GET /metrics`: what an operator scrapes, in the Prometheus text format (0.0.4).
//!
//! Each app has its own registry (prometheus-client keeps no global recorder), so two apps in
//! one process (the tests) count apart. The hot paths stay cheap: HTTP requests and import rows
//! add to atomic counters, the hub keeps plain atomics of its own (`hub::Counters`, read here
//! at scrape time), and what the store holds (jobs by state) is read only when scraped. Store
//! call latency is measured where every store call passes (`store::call`), which knows no app,
//! so that histogram is the process's.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::AppState;
use crate::hub::Hub;
use crate::hub::stats::STATS;
use crate::jobs::{self, JobState};
use crate::store::{self, StoreError};
use crate::web::serve::Connections;

/// Seconds: from a millisecond to ten seconds, in steps of about 2.5.
const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// Every store call's latency, whichever app made it (see the module docs).
static STORE_CALLS: LazyLock<Histogram> = LazyLock::new(histogram);

/// Records one store call (`store::call`).
pub fn store_call(took: Duration) {
    STORE_CALLS.observe(took.as_secs_f64());
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Request {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Jobs {
    state: &'static str,
}

/// The app's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    requests: Family<Request, Counter>,
    latency: Family<Route, Histogram>,
    import_rows: Family<Outcome, Counter>,
    jobs: Family<Jobs, Gauge>,
}

impl Metrics {
    pub fn new(hub: &Hub, connections: Arc<Connections>) -> Metrics {
        let mut registry = Registry::with_prefix("herald");
        let requests = Family::<Request, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route (the matched path) and status",
            requests.clone(),
        );
        let latency = Family::<Route, Histogram>::new_with_constructor(histogram as fn() -> _);
        registry.register(
            "http_request_duration_seconds",
            "Time from a request to its response head (a stream's life is not counted)",
            latency.clone(),
        );
        let import_rows = Family::<Outcome, Counter>::default();
        registry.register(
            "import_rows",
            "CSV rows imported, by outcome (stored or rejected)",
            import_rows.clone(),
        );
        let jobs = Family::<Jobs, Gauge>::default();
        registry.register(
            "jobs",
            "Jobs in the store by state (finished ones as far as the store keeps them)",
            jobs.clone(),
        );
        registry.register(
            "store_call_duration_seconds",
            "Time each store call takes, queueing for the store included (whole process)",
            STORE_CALLS.clone(),
        );
        registry.register_collector(Box::new(Live {
            hub: hub.clone(),
            connections,
        }));
        Metrics {
            inner: Arc::new(Inner {
                registry,
                requests,
                latency,
                import_rows,
                jobs,
            }),
        }
    }

    /// Counts a request once its response head is ready.
    pub fn request(&self, method: &str, route: &str, status: StatusCode, took: Duration) {
        let route = Route {
            method: method.to_string(),
            route: route.to_string(),
        };
        self.inner
            .latency
            .get_or_create(&route)
            .observe(took.as_secs_f64());
        let request = Request {
            method: route.method,
            route: route.route,
            status: status.as_u16(),
        };
        self.inner.requests.get_or_create(&request).inc();
    }

    /// Counts rows an import has stored and rejected.
    pub fn import_rows(&self, stored: u64, rejected: u64) {
        for (outcome, n) in [("stored", stored), ("rejected", rejected)] {
            if n > 0 {
                self.inner
                    .import_rows
                    .get_or_create(&Outcome { outcome })
                    .inc_by(n);
            }
        }
    }

    /// The Prometheus text of every metric.
    fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.inner.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// `GET /metrics`. Reads what only the store knows first (jobs by state).
pub async fn serve(State(state): State<AppState>) -> Response {
    let counts = store::call(&state.store, |s| {
        let jobs = s.listed_jobs(jobs::FINISHED_KEPT)?;
        Ok::<_, StoreError>(JobState::ALL.map(|k| jobs.iter().filter(|j| j.state == k).count()))
    })
    .await;
    match counts {
        Ok(counts) => {
            for (state_, count) in JobState::ALL.into_iter().zip(counts) {
                let label = Jobs {
                    state: state_.as_str(),
                };
                state
                    .metrics
                    .inner
                    .jobs
                    .get_or_create(&label)
                    .set(count as i64);
            }
        }
        // The rest is still worth scraping; the jobs gauges keep their last values.
        Err(e) => tracing::warn!(error = %e, "metrics: cannot count jobs"),
    }
    (
        [(
            header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        state.metrics.encode(),
    )
        .into_response()
}

/// What the hub and the accept loop count, read at scrape time.
struct Live {
    hub: Hub,
    connections: Arc<Connections>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Live")
    }
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let c = self.hub.counters();
        let gauges = [
            (
                "connections_open",
                "Connections open now (streams, page loads, API calls)",
                self.connections.open() as u64,
            ),
            (
                "streams_open",
                "Tab streams open now",
                self.hub.open_streams() as u64,
            ),
            (
                "client_logs",
                "Tabs' private logs held in memory",
                self.hub.client_logs() as u64,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value as i64);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let counters = [
            (
                "connections_refused",
                "Connections answered 503: past HERALD_MAX_CONNECTIONS or at the open-files limit",
                self.connections.refused(),
            ),
            (
                "messages_published",
                "Messages this instance's changes published, to everyone or to one tab (on \
                 PostgreSQL: stored in the shared log here, so the sum over instances counts \
                 each once)",
                c.published,
            ),
            (
                "messages_applied",
                "Messages taken into this instance's logs for its tabs (on PostgreSQL: read from \
                 the shared log, every instance's)",
                c.applied,
            ),
            (
                "delivered_bytes",
                "Bytes of tab streams written to their sockets or HTTP/2 connections (messages, \
                 heartbeats, replays, resyncs; not the response head), whichever instance \
                 published the message",
                c.delivered_bytes,
            ),
            (
                "stream_replays",
                "Streams that resumed by replaying the messages they missed",
                c.replays,
            ),
            (
                "stream_resyncs",
                "Resyncs sent: a stream whose cursor history no longer covered got the regions' \
                 current state",
                c.resyncs,
            ),
            (
                "streams_behind",
                "Times a stream fell behind the fan-out (its socket took less than a message, or \
                 its backlog outgrew a batch) and caught up on its own task",
                c.behind,
            ),
        ];
        let w = STATS.counts();
        let write_path = [
            (
                "stream_fanout_writes",
                "Write system calls the fan-out made on parked streams' sockets (whole process)",
                w.fanout_writes,
            ),
            (
                "stream_task_writes",
                "Write system calls streams' own tasks made: first messages, catch-ups, private \
                 messages, what a socket did not take from the fan-out (whole process)",
                w.task_writes,
            ),
            (
                "response_writes",
                "Write system calls answering requests on Herald's own HTTP/1.1 loop (whole \
                 process)",
                w.response_writes,
            ),
            (
                "stream_write_bytes",
                "Bytes the stream writes above put on the wire, response heads included (whole \
                 process)",
                w.bytes_written,
            ),
            (
                "stream_partial_writes",
                "Stream writes the socket took only part of (whole process)",
                w.partial_writes,
            ),
            (
                "stream_blocked_writes",
                "Stream writes the socket took nothing of, its send buffer full (whole process)",
                w.would_block,
            ),
            (
                "stream_hand_backs",
                "Parked streams woken to be served by their own task again (whole process)",
                w.hand_backs,
            ),
        ];
        for (name, help, value) in counters.into_iter().chain(write_path) {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        Ok(())
    }
}
