//! "N tabs open": the tab streams open on every instance, live on the page.
//!
//! Presence is ephemeral, not a change: it is not stored with the event log nor replayed. Each
//! instance counts its own open streams; on PostgreSQL it writes that count with a timestamp
//! to the presence table and sums the fresh rows (an instance that stopped writing drops out),
//! on SQLite its own count is the total. The count rides on the heartbeat, which every stream
//! gets, and a change of it sends a heartbeat out of turn, at most every [`EVERY`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use askama::Template;

use crate::clock;
use crate::hub::{Hub, Swap, partial};
use crate::store::{Backend, SharedStore, blocking};

pub const REGION: &str = "presence";
/// How often the count is taken, and so how often it can change on the page at most.
pub const EVERY: Duration = Duration::from_secs(2);
/// An instance's count older than this is left out of the sum: the instance is gone.
pub const FRESH: Duration = Duration::from_secs(6);

/// The number of tabs open on every instance, as last counted.
#[derive(Clone, Default)]
pub struct Presence(Arc<AtomicU64>);

impl Presence {
    pub fn tabs(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Records a new count; whether it differs from the last.
    fn set(&self, tabs: u64) -> bool {
        self.0.swap(tabs, Ordering::Relaxed) != tabs
    }
}

#[derive(Template)]
#[template(path = "web/presence.html")]
struct PresenceView {
    tabs: u64,
}

/// The region's content: "3 tabs open".
pub fn presence_html(tabs: u64) -> String {
    PresenceView { tabs }.render().expect("presence renders")
}

/// The partial every heartbeat carries.
pub fn presence_partial(tabs: u64) -> String {
    partial(REGION, Swap::InnerHtml, &presence_html(tabs))
}

/// Counts every [`EVERY`] until the hub closes; then takes this instance's count away.
pub fn start(store: SharedStore, hub: Hub, presence: Presence) {
    tokio::spawn(async move {
        let mut closing = hub.closing();
        let mut ticks = tokio::time::interval(EVERY);
        loop {
            tokio::select! {
                _ = closing.wait_for(|closed| *closed) => break,
                _ = ticks.tick() => {}
            }
            let here = hub.open_streams() as u64;
            if let Some(total) = count(&store, here).await
                && presence.set(total)
            {
                hub.beat_now();
            }
        }
        if store.is_shared() {
            let _ = count(&store, 0).await;
        }
    });
}

/// The total with `here` streams on this instance; `None` when it cannot be read now (the
/// store logs an outage once).
async fn count(store: &SharedStore, here: u64) -> Option<u64> {
    let store = store.clone();
    let counted = blocking(move || match &*store {
        Backend::Sqlite(_) => Ok(here),
        Backend::Postgres(pg) => pg.presence(here, clock::now_ms(), FRESH),
    })
    .await;
    counted
        .inspect_err(|e| tracing::debug!(error = %e, "cannot count the open tabs now"))
        .ok()
}
