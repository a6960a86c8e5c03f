//! Probes for load balancers and supervisors: `GET /healthz` (the process answers) and
//! `GET /readyz` (the store answers, and Herald is not draining).
//!
//! On a shutdown signal `/readyz` turns `503` first; only after the drain delay are the streams
//! closed (`crate::serve`), so a load balancer sends new tabs elsewhere before the open ones
//! are told to reconnect.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::store::{self, StoreError};

/// How long `/readyz` waits for the store before calling it unready.
const STORE_WAIT: Duration = Duration::from_secs(2);

/// Whether the app still takes new work; cheap to clone.
#[derive(Clone, Default)]
pub struct Health {
    draining: Arc<AtomicBool>,
}

impl Health {
    /// From now on `/readyz` answers 503.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// `GET /healthz`: the process is up and answering.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: `200` when the store answers a read in time and Herald is not shutting down.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.health.is_draining() {
        return unready("draining: shutting down");
    }
    let read = store::call(&state.store, |s| {
        s.current_message()?;
        Ok::<_, StoreError>(())
    });
    match tokio::time::timeout(STORE_WAIT, read).await {
        Ok(Ok(())) => "ready\n".into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readyz: the store failed");
            unready("the store failed")
        }
        Err(_) => unready("the store did not answer in time"),
    }
}

fn unready(why: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("not ready: {why}\n"),
    )
        .into_response()
}
