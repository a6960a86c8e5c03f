//! Herald: live server-rendered HTML over Server-Sent Events.
//!
//! [`build`] wires configuration, storage and the hub into a router; [`serve`] runs it until a
//! shutdown signal, then closes every stream cleanly. Tests use both to spawn the real app.

pub mod board;
pub mod clock;
pub mod config;
pub mod hub;
pub mod import;
pub mod jobs;
pub mod notify;
pub mod offers;
pub mod store;
pub mod web;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post, put};
use tokio::net::TcpListener;

use config::Config;
use hub::{Hub, Regions};
use store::{SharedStore, SqliteStore, StoreError};
use web::{assets, guard, page};

/// Client bindings unused for this long are forgotten.
const FORGET_CLIENTS_AFTER: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: SharedStore,
    pub hub: Hub,
    pub regions: Arc<dyn Regions>,
    pub jobs: jobs::Runner,
    pub imports: import::Running,
}

pub struct App {
    pub router: Router,
    pub state: AppState,
}

/// Opens the store and assembles the app. Must run inside a tokio runtime.
pub fn build(config: Config) -> Result<App, StoreError> {
    let store: SharedStore = Arc::new(SqliteStore::open(&config.db)?);
    let hub = Hub::new(
        config.hub.clone(),
        page::status_html(config.hub.heartbeat.as_secs()),
    );
    let jobs = jobs::Runner::start(store.clone(), hub.clone(), config.job_concurrency)?;
    let state = AppState {
        regions: page::PageRegions::shared(store.clone()),
        jobs,
        config: Arc::new(config),
        store,
        hub,
        imports: import::Running::default(),
    };
    tokio::spawn(forget_old_clients(state.store.clone()));
    Ok(App {
        router: router(state.clone()),
        state,
    })
}

fn router(state: AppState) -> Router {
    let writes = Router::new()
        .route("/send", get(board::send_get).post(board::send_post))
        .route("/send-notification", post(notify::send))
        .route("/offers", post(offers::create))
        .route("/offers/{id}", put(offers::update).delete(offers::delete))
        .route("/jobs", post(jobs::create))
        .route("/jobs/{id}/cancel", post(jobs::cancel))
        .route("/jobs/{id}/retry", post(jobs::retry))
        .route(
            "/upload/{client}",
            post(import::upload).layer(DefaultBodyLimit::max(
                (state.config.import.max_upload_bytes + import::MULTIPART_SLACK) as usize,
            )),
        )
        .route("/upload/{client}/cancel", post(import::cancel))
        .route("/debug/stats", get(web::stats::show))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard::writes));
    Router::new()
        .route("/", get(page::dashboard))
        .route("/sse/{client}", get(page::stream))
        .route("/event", get(board::events))
        .route("/send-notification", get(notify::form_page))
        .route("/ping", get(notify::ping))
        .route("/offers", get(offers::list))
        .route("/events", get(jobs::demo_events))
        .route("/jobs/{id}", get(jobs::show))
        .route("/jobs/{id}/events", get(jobs::job_events))
        .route("/csv", get(import::mock_csv))
        .route("/data.csv", get(import::data_csv))
        .route("/import/{client}/rows", get(import::rows_page))
        .route("/static/{tag}/{name}", get(assets::serve))
        .merge(writes)
        .fallback(page::not_found)
        .layer(DefaultBodyLimit::max(state.config.limits.request_bytes))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves until `shutdown` resolves, then ends every stream so the server can drain.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let hub = app.state.hub.clone();
    web::serve::serve(listener, app.router, async move {
        shutdown.await;
        hub.close();
    })
    .await
}

async fn forget_old_clients(store: SharedStore) {
    let mut every_hour = tokio::time::interval(Duration::from_secs(3600));
    loop {
        every_hour.tick().await;
        let cutoff = clock::now_ms() / 1000 - FORGET_CLIENTS_AFTER.as_secs() as i64;
        match store::call(&store, move |s| s.forget_clients_before(cutoff)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(forgotten = n, "forgot idle client ids"),
            Err(e) => tracing::warn!(error = %e, "could not forget idle client ids"),
        }
    }
}
