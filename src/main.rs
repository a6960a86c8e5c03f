use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use std::net::SocketAddr;

use herald::Listeners;
use herald::config::{Config, LogFormat};
use herald::web::tls::Tls;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    large_blocks_mapped();
    // Store calls are the only blocking work, and SQLite is one connection behind a lock: a few
    // threads serve them as fast as tokio's default of 512 would. A burst of page loads used to
    // grow the pool to hundreds of threads, whose stacks and malloc arenas stayed behind
    // (BENCHMARKS.md, churn).
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(4)
        .on_thread_start(behind_the_fanout)
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

/// Deliveries to open tabs come before new work. tokio has no priorities, so the kernel's are
/// used: the runtime's threads (requests, page loads, store calls) run at a lower priority than
/// the fan-out's threads, which the hub starts from the main thread and so keep the default.
/// On a saturated core, a storm of connects then slows the connects, not every open tab (the
/// soak's healthy p99 during a million connects: BENCHMARKS.md). An idle core changes nothing.
fn behind_the_fanout() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on the calling thread only changes its scheduling weight.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, NICER);
    }
}

/// Blocks of 64 KiB and more get mappings of their own, returned to the system when freed.
///
/// glibc raises this threshold (128 KiB at first) to the size of any mapped block that is freed,
/// after which large transient buffers come from the arenas instead, and the small long-lived
/// allocations made among them pin those pages. A soak of a million connects left RSS 9.6%
/// above its start with the moving threshold and 6.7% with this one, one run each, glibc's
/// bytes in use being the same at start and end (BENCHMARKS.md, soak: longer runs vary more).
fn large_blocks_mapped() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 10);
    }
}

/// How much lower: at 5 the fan-out gets three quarters of a core it has to share.
const NICER: libc::c_int = 5;

async fn run() -> ExitCode {
    let config = match Config::load() {
        Ok(config) => config,
        // `--help` (to stdout, 0) or a bad value (to stderr, naming the option, 2).
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    init_logs(config.ops.log_format);
    let (addr, reuse_port, metrics_addr) =
        (config.addr, config.reuse_port, config.ops.metrics_addr);
    let tls = match &config.ops.tls {
        Some(files) => match Tls::load(&files.cert, &files.key) {
            Ok(tls) => Some(tls),
            Err(e) => {
                eprintln!("herald: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let app = match herald::build(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("herald: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listeners = match bind(addr, reuse_port, metrics_addr).await {
        Ok(app) => Listeners { tls, ..app },
        Err(e) => {
            eprintln!("herald: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(metrics_addr) = metrics_addr {
        tracing::info!(%metrics_addr, "metrics and probes on http://{metrics_addr}/metrics");
    }
    let scheme = match &listeners.tls {
        Some(tls) => {
            tokio::spawn(reload_on_hangup(tls.clone()));
            "https"
        }
        None => "http",
    };
    let addr = listeners.app.local_addr().unwrap_or(addr);
    let store = app.state.store.describe();
    tracing::info!(%addr, %store, "Herald is listening on {scheme}://{addr}/");
    match herald::serve(listeners, app, shutdown_signal()).await {
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

async fn bind(
    addr: SocketAddr,
    reuse_port: bool,
    metrics: Option<SocketAddr>,
) -> Result<Listeners, String> {
    let app = herald::web::listen::bind(addr, reuse_port)
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let metrics = match metrics {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?,
        ),
        None => None,
    };
    Ok(Listeners {
        app,
        metrics,
        tls: None,
    })
}

/// SIGHUP reads the certificate and key again (after a renewal); connections already open,
/// and their streams, keep going.
async fn reload_on_hangup(tls: Tls) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        return tracing::warn!("cannot listen for SIGHUP: the certificate will not reload");
    };
    while hangups.recv().await.is_some() {
        match tls.reload() {
            Ok(()) => tracing::info!("SIGHUP: reloaded the TLS certificate"),
            Err(e) => tracing::error!(error = %e, "SIGHUP: kept the TLS certificate in use"),
        }
    }
}

/// Logs go to stderr (stdout stays free for `--help`), filtered by `RUST_LOG`.
/// Colours only on a terminal: journald, a file or a log shipper would keep the escape codes.
fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
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
}
