//! The dashboard, the tab's stream, and the regions they are rendered from.

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use serde::Deserialize;

use super::assets;
use super::client::Client;
use super::error::ApiError;
use super::negotiate::{ErrorPage, Wants};
use super::presence::{Presence, presence_html, presence_partial};
use super::session::{Session, Tab};
use super::sse::live_response;
use crate::hub::{ClientId, Positioned, Region, Regions, Scope, Snapshot};
use crate::store::{SharedStore, Store, StoreError, StoreResult, blocking, call};
use crate::{AppState, board, clock, import, jobs, notify, offers};

#[derive(Template, WebTemplate)]
#[template(path = "dashboard.html")]
struct Dashboard {
    assets: String,
    stream_url: String,
    snapshot: Snapshot,
    board_form: String,
    notify_form: String,
    offers_form: String,
    offers_shown: usize,
    jobs_form: String,
    jobs_finished_shown: usize,
    import_form: String,
    presence: String,
}

/// `GET /`: the current state of every region, and a new tab id whose stream resumes from
/// exactly that state (the cursor in the stream URL).
pub async fn dashboard(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
) -> Response {
    let session = Session::of(&headers, client);
    let client = state.tabs.issue(session.id);
    let snapshot = state
        .hub
        .snapshot(client, Scope::ALL, &*state.regions)
        .await;
    let page = Dashboard {
        assets: assets::prefix(),
        stream_url: format!("/sse/{client}?cursor={}", snapshot.cursor),
        snapshot,
        board_form: board::BoardForm::blank(state.config.limits.message_chars).html(),
        notify_form: notify::NotifyForm::blank(&state.config.limits).html(),
        offers_form: offers::OfferForm::blank(state.config.limits.description_chars).html(),
        offers_shown: offers::SHOWN,
        jobs_form: jobs::JobForm::blank(&jobs::Limits::STANDARD).html(),
        jobs_finished_shown: jobs::FINISHED_SHOWN,
        import_form: import::ImportForm::blank(client, state.config.import.max_upload_bytes).html(),
        presence: presence_html(state.presence.tabs()),
    };
    let mut response = page.into_response();
    let headers = response.headers_mut();
    // The page names a tab: a cached copy would make two tabs share one id.
    headers.insert(header::CACHE_CONTROL, "no-store".parse().expect("static"));
    if let Some((name, value)) = session.set_cookie() {
        headers.insert(name, value);
    }
    response
}

#[derive(Deserialize)]
pub struct StreamQuery {
    cursor: Option<String>,
}

/// `GET /sse/{client}`: the tab's one stream. `Last-Event-ID` (a reconnect) wins over the
/// page's `?cursor=`, which htmx keeps in the URL it reconnects to.
pub async fn stream(
    State(state): State<AppState>,
    tab: Tab,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
) -> Response {
    let requested = super::sse::resume_from(&headers, query.cursor);
    let live = state
        .hub
        .stream(tab.client, requested.as_deref(), state.regions.clone());
    tab.answer(live_response(live))
}

/// Every region of the dashboard, rendered from the store.
pub struct PageRegions {
    pub store: SharedStore,
}

impl PageRegions {
    pub fn shared(store: SharedStore) -> Arc<dyn Regions> {
        Arc::new(PageRegions { store })
    }
}

impl Regions for PageRegions {
    fn broadcast(&self) -> BoxFuture<'static, Vec<Region>> {
        let store = self.store.clone();
        Box::pin(async move { read(store, |s| shared(s)).await })
    }

    fn private(&self, client: ClientId) -> BoxFuture<'static, Vec<Region>> {
        let store = self.store.clone();
        Box::pin(async move { read(store, move |s| private(s, client)).await })
    }

    /// Both scopes in one database snapshot, with the event log's position it shows.
    fn positioned(&self, client: ClientId, scope: Scope) -> BoxFuture<'static, Positioned> {
        let store = self.store.clone();
        Box::pin(async move {
            let render = move |s: &dyn Store| {
                let broadcast = if scope.broadcast {
                    shared(s)
                } else {
                    Vec::new()
                };
                let private = if scope.private {
                    private(s, client)
                } else {
                    Vec::new()
                };
                (broadcast, private)
            };
            match blocking(move || store.snapshot(render)).await {
                Ok(((broadcast, private), at)) => Positioned {
                    at,
                    broadcast,
                    private,
                },
                Err(e) => {
                    let failed = |e: &StoreError, ids: &[&'static str]| {
                        or_notice(Err(StoreError::new(e.to_string())), ids)
                    };
                    Positioned {
                        at: None,
                        broadcast: if scope.broadcast {
                            failed(&e, SHARED_REGIONS)
                        } else {
                            Vec::new()
                        },
                        private: if scope.private {
                            failed(&e, &[import::REGION])
                        } else {
                            Vec::new()
                        },
                    }
                }
            }
        })
    }
}

const SHARED_REGIONS: &[&str] = &[
    board::REGION,
    notify::LIST_REGION,
    offers::BODY_REGION,
    jobs::REGION,
];

/// The regions every tab shares.
fn shared(s: &dyn Store) -> Vec<Region> {
    let mut regions = or_notice(board::regions(s), &[board::REGION]);
    regions.extend(or_notice(notify::regions(s), &[notify::LIST_REGION]));
    regions.extend(or_notice(offers::regions(s), &[offers::BODY_REGION]));
    regions.extend(or_notice(jobs::regions(s), &[jobs::REGION]));
    regions
}

/// The regions of one tab.
fn private(s: &dyn Store, client: ClientId) -> Vec<Region> {
    or_notice(import::regions(s, client), &[import::REGION])
}

/// Regions read in one store call; a store that cannot be reached makes every region say so.
async fn read(
    store: SharedStore,
    render: impl FnOnce(&dyn Store) -> Vec<Region> + Send + 'static,
) -> Vec<Region> {
    match call(&store, move |s| Ok::<_, StoreError>(render(s))).await {
        Ok(regions) => regions,
        Err(e) => {
            tracing::error!(error = %e, "cannot render the page's regions");
            Vec::new()
        }
    }
}

/// A region that cannot be read says so, instead of failing the whole page or stream.
fn or_notice(regions: StoreResult<Vec<Region>>, ids: &[&'static str]) -> Vec<Region> {
    regions.unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot render regions {ids:?}");
        ids.iter()
            .map(|id| Region {
                id,
                html: "<p class=\"form-error\">Temporarily unavailable; reload to retry.</p>"
                    .to_string(),
            })
            .collect()
    })
}

#[derive(Template)]
#[template(path = "web/status.html")]
struct Status {
    time: String,
    stale_after_secs: u64,
}

/// What every heartbeat (and every stream's first message) carries: the connection indicator
/// and the number of tabs open.
pub fn beat_html(
    heartbeat_secs: u64,
    presence: Presence,
) -> impl Fn() -> String + Send + Sync + 'static {
    let status = status_html(heartbeat_secs);
    move || status() + &presence_partial(presence.tabs())
}

/// The connection indicator, sent first on every stream and with every heartbeat; CSS marks it
/// stale when two and a half heartbeats pass without a new one.
pub fn status_html(heartbeat_secs: u64) -> impl Fn() -> String + Send + Sync + 'static {
    move || {
        let status = Status {
            time: clock::hms(clock::now_ms()),
            stale_after_secs: heartbeat_secs * 5 / 2,
        };
        crate::hub::partial(
            "status",
            crate::hub::Swap::InnerHtml,
            &status.render().expect("status renders"),
        )
    }
}

/// Unknown routes: a page for browsers, JSON for API callers.
pub async fn not_found(uri: Uri, wants: Wants) -> Response {
    let path = uri.path();
    wants.answer(
        || {
            let page = ErrorPage {
                assets: assets::prefix(),
                title: "Not found",
                message: String::new(),
                unknown_path: Some(path.to_string()),
            };
            (StatusCode::NOT_FOUND, page).into_response()
        },
        || ApiError::not_found(format!("no route for {path}")).into_response(),
    )
}
