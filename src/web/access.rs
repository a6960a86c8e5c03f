//! Every request measured once: an access log line, the HTTP metrics, and a request id.
//!
//! tower-http gives each request its id (`x-request-id`: the caller's when it is sane, else a
//! new UUID, echoed in the response) and a span carrying it, so whatever a request logs says
//! which request it was. The access line (target `herald::access`) is written when the body
//! ends or is dropped, with the bytes that went out (after compression); a tab's stream, whose
//! connection takes it over, gets its line when its head is ready and one of its own when it
//! ends (`hub::stream`). Only the method, the route (the matched path, so no ids or query
//! strings) and the client's address are logged of a request: never its headers, so never
//! `Authorization` or a cookie.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use hyper::body::{Body as _, Frame, SizeHint};
use tower_http::request_id::RequestId;
use tracing::Span;

use super::client::Client;
use super::sse::Takeover;
use crate::AppState;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a caller.
const MAX_ID: usize = 128;

/// Drops a caller's `x-request-id` that is not one short token of safe characters (or is
/// repeated), so tower-http makes a new one: ids go into logs, and must not forge lines there.
pub async fn sane_request_id(mut req: Request) -> Request {
    let ids = req.headers().get_all(&REQUEST_ID);
    let mut values = ids.iter();
    let sane = match (values.next(), values.next()) {
        (Some(id), None) => {
            let id = id.as_bytes();
            !id.is_empty()
                && id.len() <= MAX_ID
                && id
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:@/+=".contains(b))
        }
        _ => true,
    };
    if !sane {
        req.headers_mut().remove(&REQUEST_ID);
    }
    req
}

/// The span every request runs in (tower-http's `TraceLayer`).
pub fn span(req: &Request) -> Span {
    tracing::info_span!(
        "request",
        id = request_id(req),
        method = %req.method(),
        route = route(req),
        client = %Client::of(req),
    )
}

/// The id tower-http gave the request (`-` if it went round the layer, as in unit tests).
fn request_id(req: &Request) -> &str {
    req.extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-")
}

fn route(req: &Request) -> &str {
    req.extensions()
        .get::<MatchedPath>()
        .map_or("(no route)", MatchedPath::as_str)
}

/// Middleware: counts the request in the metrics and writes its access line.
pub async fn measure(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let (method, route, client) = (
        req.method().clone(),
        route(&req).to_string(),
        Client::of(&req),
    );
    let id = request_id(&req).to_string();
    let response = next.run(req).await;
    let status = response.status();
    state
        .metrics
        .request(method.as_str(), &route, status, started.elapsed());
    let line = Line {
        method,
        route,
        id,
        client,
        status,
        started,
    };
    if response.extensions().get::<Takeover>().is_some() {
        line.write(0, Ending::Stream);
        return response;
    }
    response.map(|body| {
        Body::new(Counted {
            body,
            bytes: 0,
            line: Some(line),
        })
    })
}

/// What an access line says.
struct Line {
    method: Method,
    route: String,
    id: String,
    client: Client,
    status: StatusCode,
    started: Instant,
}

/// How a response ended.
#[derive(Debug, Clone, Copy)]
enum Ending {
    /// The whole body went out.
    Complete,
    /// The body failed, or was dropped before its end (the client went away, a limit closed
    /// the connection, or the server stopped).
    Cut,
    /// A tab's stream: the connection took it over, and it logs its own end.
    Stream,
}

impl Line {
    fn write(&self, bytes: u64, ending: Ending) {
        let duration: Duration = self.started.elapsed();
        tracing::info!(
            target: "herald::access",
            method = %self.method,
            route = %self.route,
            status = self.status.as_u16(),
            duration_ms = duration.as_secs_f64() * 1000.0,
            bytes,
            ending = ?ending,
            id = %self.id,
            client = %self.client,
            "request",
        );
    }
}

/// A response body that counts what goes out and writes the access line at its end.
struct Counted {
    body: Body,
    bytes: u64,
    line: Option<Line>,
}

impl Counted {
    fn finish(&mut self, ending: Ending) {
        if let Some(line) = self.line.take() {
            line.write(self.bytes, ending);
        }
    }
}

impl hyper::body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
                if self.body.is_end_stream() {
                    self.finish(Ending::Complete);
                }
            }
            Poll::Ready(None) => self.finish(Ending::Complete),
            Poll::Ready(Some(Err(_))) => self.finish(Ending::Cut),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        // An empty body may never be polled: it is complete all the same.
        let ending = match self.body.is_end_stream() {
            true => Ending::Complete,
            false => Ending::Cut,
        };
        self.finish(ending);
    }
}
