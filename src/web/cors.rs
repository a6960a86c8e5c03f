//! CORS for front ends on other origins: the origins listed in `--cors-origins` may use the JSON
//! API and read the JSON streams from their pages, cookies included, through tower-http's CORS
//! layer (preflights for JSON writes, `Access-Control-Allow-Credentials`, `Last-Event-ID`
//! allowed and exposed). Any other origin gets no CORS header at all, so browsers keep its pages
//! out as before, and its writes are refused by `guard` as before. Whether a listed origin may
//! write is `guard`'s to say too: with the API token when one is set.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tower::{Layer, ServiceExt};
use tower_http::cors::{AllowOrigin, CorsLayer};

const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");
/// Every answer on these routes depends on `Origin` (and a preflight's on what it asks), listed
/// or not, so caches must keep them apart.
const VARY: [HeaderName; 3] = [
    header::ORIGIN,
    header::ACCESS_CONTROL_REQUEST_METHOD,
    header::ACCESS_CONTROL_REQUEST_HEADERS,
];
/// How long a browser may reuse a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

pub struct Cors {
    origins: Vec<HeaderValue>,
    layer: CorsLayer,
}

impl Cors {
    /// The CORS of `origins`; `None` when there is none, and then no route sends CORS headers.
    pub fn new(origins: &[String]) -> Option<Arc<Cors>> {
        if origins.is_empty() {
            return None;
        }
        let origins = origins
            .iter()
            .map(|o| HeaderValue::from_str(o).expect("origins are checked by config"))
            .collect();
        let layer = CorsLayer::new()
            // Only listed origins reach the layer (`apply`), so it answers with theirs.
            .allow_origin(AllowOrigin::mirror_request())
            .allow_credentials(true)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION, LAST_EVENT_ID])
            .expose_headers([LAST_EVENT_ID])
            .max_age(PREFLIGHT_MAX_AGE)
            .vary(VARY);
        Some(Arc::new(Cors { origins, layer }))
    }
}

/// Middleware for the JSON API and its streams: a listed `Origin` goes through the CORS layer
/// (which answers a preflight itself); anything else is served as it would be without CORS.
pub async fn apply(State(cors): State<Arc<Cors>>, req: Request, next: Next) -> Response {
    let listed = req
        .headers()
        .get(header::ORIGIN)
        .is_some_and(|origin| cors.origins.contains(origin));
    if listed {
        let Ok(response) = cors.layer.layer(next).oneshot(req).await;
        return response;
    }
    let mut response = next.run(req).await;
    response.headers_mut().append(
        header::VARY,
        HeaderValue::from_static(
            "origin, access-control-request-method, access-control-request-headers",
        ),
    );
    response
}
