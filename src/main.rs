use std::process::ExitCode;
use std::time::Duration;

use herald::config::Config;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // Store calls are the only blocking work, and SQLite is one connection behind a lock: a few
    // threads serve them as fast as tokio's default of 512 would. A burst of page loads used to
    // grow the pool to hundreds of threads, whose stacks and malloc arenas stayed behind
    // (BENCHMARKS.md, churn).
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(4)
        .build()
    {
        Ok(runtime) => {
            let code = runtime.block_on(run());
            // Store calls still running are given a moment, not waited for: the process exits
            // within the shutdown grace plus a second.
            runtime.shutdown_timeout(Duration::from_millis(500));
            code
        }
        Err(e) => {
            eprintln!("herald: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn")),
        )
        .init();
    let config = match Config::load() {
        Ok(config) => config,
        // `--help` (to stdout, 0) or a bad value (to stderr, naming the option, 2).
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    let (addr, reuse_port) = (config.addr, config.reuse_port);
    let app = match herald::build(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("herald: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match herald::web::listen::bind(addr, reuse_port) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("herald: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(addr);
    let store = app.state.store.describe();
    tracing::info!(%addr, %store, "Herald is listening on http://{addr}/");
    match herald::serve(listener, app, shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("herald: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Ctrl-C or SIGTERM (what a deploy sends).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: closing streams");
}
