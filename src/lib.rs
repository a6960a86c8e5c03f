//! Herald: live server-rendered HTML over Server-Sent Events.
//!
//! [`build`] wires configuration, storage and the hub into a router; [`serve`] runs it until a
//! shutdown signal, then closes every stream cleanly. Tests use both to spawn the real app.
//!
//! # Layout
//!
//! A request flows like this:
//!
//! 1. `web::serve` accepts the connection (over TLS, `web::tls`: HTTP/2 or HTTP/1.1 by hyper);
//!    `web::connection` reads the request head and asks the router (built here). Around every
//!    route: the request id, who the client is (`web::client`, trusted proxies), the access line
//!    and HTTP metrics (`web::access`), compression and a default `Cache-Control`;
//!    `web::guard` runs on every write.
//! 2. A feature's handler (`<feature>/routes.rs`) reads what the user sent with `web::input`,
//!    `web::id` and `web::paging`, and checks it with its own rules (`<feature>/input.rs`).
//! 3. A change goes through [`AppState::change`] (`change`): the feature's closure writes to the
//!    store (`store`, SQLite behind one trait per feature) and renders what the change announces
//!    (`<feature>/views.rs`); the hub publishes it once the write has succeeded.
//! 4. The hub (`hub`) frames each message once into its logs; every tab's one stream
//!    (`web::page::stream`, served by `web::sse`) replays what its cursor missed, or resyncs
//!    from a snapshot of the page's regions, then follows live, parked with the fan-out.
//! 5. The answer goes back in the caller's language (`web::negotiate`): JSON for API callers,
//!    a page for browsers, a fragment for the page's htmx.
//!
//! Operators get `GET /metrics` (`metrics`: the hub's and the accept loop's counters read when
//! scraped), `/healthz` and `/readyz` (`web::health`: 503 while draining at shutdown).
//!
//! A change's JSON event travels with its HTML in the same log entry; `GET /api/stream`
//! (`api`, served by `hub::JsonStream`) sends them to front ends on other origins, which
//! `web::cors` lets read the JSON API and its streams.
//!
//! Every feature (`board`, `notify`, `offers`, `jobs`, `import`) has the same files: `mod.rs`
//! (domain types and the store trait), `routes.rs`, `views.rs` (askama views and live
//! messages) and `input.rs`, plus modules for its own concerns (offers' money, jobs' runner,
//! the import's parser and importer task). Templates live in `templates/<feature>/`.

pub mod api;
pub mod board;
pub mod change;
pub mod clock;
pub mod config;
pub mod hub;
pub mod import;
pub mod jobs;
pub mod metrics;
pub mod notify;
pub mod offers;
pub mod store;
pub mod web;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::middleware;
use axum::routing::{get, post, put};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

use config::Config;
use hub::{Hub, JsonState, Regions, SharedLog};
use metrics::Metrics;
use store::{Backend, PgStore, SharedStore, SqliteStore, StoreError};
use web::access::{self, REQUEST_ID};
use web::cors::{self, Cors};
use web::health::{self, Health};
use web::serve::Connections;
use web::tab_ids::TabIds;
use web::tls::Tls;
use web::{assets, client, guard, page};

/// Bindings of the client ids API callers pick, unused for this long, are forgotten: hours, so
/// that requests claiming ids cannot fill the store (the tab ids pages issue need none).
pub const FORGET_CLIENTS_AFTER: Duration = Duration::from_secs(6 * 3600);

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: SharedStore,
    pub hub: Hub,
    pub regions: Arc<dyn Regions>,
    /// What a JSON stream's resync holds.
    pub json: Arc<dyn JsonState>,
    pub jobs: jobs::Runner,
    pub imports: import::Running,
    pub metrics: Metrics,
    pub health: Health,
    /// The app's connections, counted by the accept loop for the metrics.
    pub connections: Arc<Connections>,
    /// Tabs open on every instance, as last counted.
    pub presence: web::presence::Presence,
    pub tabs: TabIds,
}

pub struct App {
    pub router: Router,
    pub state: AppState,
}

/// Opens the store (PostgreSQL when `database_url` is set, else the SQLite file) and assembles
/// the app.
pub async fn build(config: Config) -> Result<App, StoreError> {
    let store: SharedStore = Arc::new(open_store(&config).await?);
    let presence = web::presence::Presence::default();
    let beat = page::beat_html(config.hub.heartbeat.as_secs(), presence.clone());
    let hub = match &*store {
        Backend::Sqlite(_) => Hub::new(config.hub.clone(), beat),
        Backend::Postgres(pg) => {
            let reader = store.clone();
            let position = store::blocking(move || match &*reader {
                Backend::Postgres(pg) => pg.log_position(),
                Backend::Sqlite(_) => Ok(0),
            })
            .await?;
            let log = SharedLog {
                epoch: pg.identity() as u64,
                position,
                archive: store::postgres::EventArchive::new(store.clone()),
            };
            let hub = Hub::shared(config.hub.clone(), beat, log);
            store::postgres::follow(store.clone(), hub.clone(), config.event_log);
            hub
        }
    };
    let jobs = jobs::Runner::start(
        store.clone(),
        hub.clone(),
        config.job_concurrency,
        config.job_lease,
    )
    .await?;
    let key = TabIds::fresh_key();
    let tabs = TabIds::new(&store::call(&store, move |s| s.tab_key(&key)).await?);
    let connections = Arc::new(Connections::default());
    let state = AppState {
        regions: page::PageRegions::shared(store.clone()),
        metrics: Metrics::new(&hub, connections.clone()),
        health: Health::default(),
        connections,
        json: Arc::new(api::JsonTopics {
            store: store.clone(),
        }),
        jobs,
        config: Arc::new(config),
        store,
        hub,
        imports: import::Running::default(),
        presence,
        tabs,
    };
    tokio::spawn(forget_old_clients(state.store.clone()));
    web::presence::start(
        state.store.clone(),
        state.hub.clone(),
        state.presence.clone(),
    );
    Ok(App {
        router: router(state.clone()),
        state,
    })
}

async fn open_store(config: &Config) -> Result<Backend, StoreError> {
    let (url, db) = (config.database_url.clone(), config.db.clone());
    store::blocking(move || match url {
        Some(url) => PgStore::open(&url, instance_id()).map(|pg| Backend::Postgres(Box::new(pg))),
        None => SqliteStore::open(&db).map(Backend::Sqlite),
    })
    .await
}

/// This run of the app, as it signs what it owns in a shared database (jobs, imports, presence).
fn instance_id() -> i64 {
    let (hi, lo) = uuid::Uuid::new_v4().as_u64_pair();
    ((hi ^ lo) >> 1) as i64
}

fn router(state: AppState) -> Router {
    let mut app = Router::new()
        .route("/", get(page::dashboard))
        .route("/sse/{client}", get(page::stream))
        .route("/csv", get(import::mock_csv))
        .route("/data.csv", get(import::data_csv))
        .route("/import/{client}/rows", get(import::rows_page))
        .route("/static/{tag}/{name}", get(assets::serve))
        .route("/favicon.ico", get(assets::favicon))
        .merge(probes())
        .merge(api_routes(&state))
        .merge(tab_writes(&state));
    if state.config.ops.metrics_addr.is_none() {
        app = app.merge(metrics_route());
    }
    let body_limit = state.config.limits.request_bytes;
    outer_layers(
        app.fallback(page::not_found)
            .layer(DefaultBodyLimit::max(body_limit))
            // A request body the client stops sending fails after the send timeout, rather
            // than holding its handler and connection for ever.
            .layer(RequestBodyTimeoutLayer::new(
                state.config.connections.send_timeout,
            )),
        &state,
    )
}

/// The JSON API and the JSON streams (the paths the page's forms post to among them): open to
/// the origins listed for CORS, if any.
fn api_routes(state: &AppState) -> Router<AppState> {
    let writes = Router::new()
        .route("/send", get(board::send_get).post(board::send_post))
        .route("/send-notification", post(notify::send))
        .route("/offers", post(offers::create))
        .route("/offers/{id}", put(offers::update).delete(offers::delete))
        .route("/jobs", post(jobs::create))
        .route("/jobs/{id}/cancel", post(jobs::cancel))
        .route("/jobs/{id}/retry", post(jobs::retry))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            guard::api_writes,
        ));
    let api = Router::new()
        .route("/api/stream", get(api::stream))
        .route("/event", get(board::events))
        // The form's own page shares its path with the JSON write, so the path has one CORS.
        .route("/send-notification", get(notify::form_page))
        .route("/ping", get(notify::ping))
        .route("/offers", get(offers::list))
        .route("/events", get(jobs::demo_events))
        .route("/jobs/{id}", get(jobs::show))
        .route("/jobs/{id}/events", get(jobs::job_events))
        .merge(writes);
    match Cors::new(&state.config.cors_origins) {
        Some(cors) => api.route_layer(middleware::from_fn_with_state(cors, cors::apply)),
        None => api,
    }
}

/// What a tab changes of its own: from Herald's page only.
fn tab_writes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/upload/{client}",
            post(import::upload).layer(DefaultBodyLimit::max(
                (state.config.import.max_upload_bytes + import::MULTIPART_SLACK) as usize,
            )),
        )
        .route("/upload/{client}/cancel", post(import::cancel))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard::writes))
}

/// What a separate `HERALD_METRICS_ADDR` serves: the metrics and the probes.
fn admin_router(state: AppState) -> Router {
    outer_layers(
        metrics_route().merge(probes()).fallback(page::not_found),
        &state,
    )
}

fn probes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
}

fn metrics_route() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics::serve))
}

/// What every answer goes through, innermost first: a `Cache-Control` for answers that set
/// none (state changes at any moment: `no-store`), compression (tower-http's default predicate
/// leaves streams, images and tiny bodies alone), the metrics and access line, the request's
/// span (no headers in it, so no `Authorization` or cookie in any log), who the client is, and
/// its request id.
fn outer_layers(router: Router<AppState>, state: &AppState) -> Router {
    router
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(CompressionLayer::new())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            access::measure,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(access::span)
                // "started processing request" at debug level, in the request's span.
                .on_response(())
                .on_body_chunk(())
                .on_eos(())
                .on_failure(()),
        )
        .layer(middleware::from_fn_with_state(
            state.clone(),
            client::identify,
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(middleware::map_request(access::sane_request_id))
        .with_state(state.clone())
}

/// Where Herald listens: the app (over HTTPS when `tls` is set), and the metrics when they
/// have an address of their own (plain HTTP: keep it private).
pub struct Listeners {
    pub app: TcpListener,
    pub metrics: Option<TcpListener>,
    pub tls: Option<Tls>,
}

impl From<TcpListener> for Listeners {
    fn from(app: TcpListener) -> Listeners {
        Listeners {
            app,
            metrics: None,
            tls: None,
        }
    }
}

/// Serves until `shutdown` resolves; then drains (`/readyz` answers 503 for the drain delay,
/// while everything else still works), ends every stream so the server can finish, and hands
/// the jobs running here over.
pub async fn serve(
    listeners: impl Into<Listeners>,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Listeners {
        app: listener,
        metrics,
        tls,
    } = listeners.into();
    let state = app.state.clone();
    let limits = state.config.connections;
    let (stopped_tx, stopped) = watch::channel(false);
    let admin = metrics.map(|listener| {
        let mut stopped = stopped.clone();
        tokio::spawn(web::serve::serve(
            listener,
            admin_router(state.clone()),
            limits,
            Arc::default(),
            None,
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
        ))
    });
    let counts = state.connections.clone();
    let result = web::serve::serve(listener, app.router, limits, counts, tls, async move {
        shutdown.await;
        state.health.drain();
        let drain = state.config.ops.drain;
        tracing::info!(
            drain_secs = drain.as_secs_f64(),
            "shutting down: /readyz answers 503; streams close after the drain"
        );
        tokio::time::sleep(drain).await;
        tracing::info!("closing streams");
        state.hub.close();
        stopped_tx.send_replace(true);
    })
    .await;
    if let Some(admin) = admin {
        admin.await.map_err(std::io::Error::other)??;
    }
    app.state.jobs.stop().await;
    result
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
