//! herald-load: the load tool of BENCHMARKS.md. It opens real SSE streams against Herald, nginx +
//! nchan, a Node broadcaster or the floor, publishes at a fixed rate, and reports memory per
//! stream, CPU per delivery, loss, duplicates and latency percentiles; it can also kill one of
//! several Herald instances under load and time the streams' return. `--help` lists the options.
//!
//! Its parts: options, a lean HTTP/1.1 client, SSE parsing, per-server specifics, the streams and
//! the processes holding them, publishing, the servers, and the reports.

mod args;
mod churn;
mod failover;
mod fleet;
mod http;
mod import;
mod pin;
mod publish;
mod report;
mod resume;
mod run;
mod server;
mod soak;
mod sse;
mod streams;
mod target;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use args::{Args, Command};
use report::Report;
use run::Context;
use tokio::time::Instant;

fn main() -> ExitCode {
    let args = args::parse(std::env::args_os()).unwrap_or_else(|e| e.exit());
    // Before the runtime starts any thread, so that every thread and worker process inherits it.
    if args.pin == Some(true)
        && let Err(e) = pin::pin_self()
    {
        eprintln!("herald-load: {e}");
        return ExitCode::from(2);
    }
    // Every stream is a socket: the open-files soft limit goes up to the hard limit (failing
    // that, the streams past the old limit are reported as failed to open).
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(run_mode(args));
    // Stream tasks may still be parked on sockets; do not wait for them.
    runtime.shutdown_background();
    ExitCode::from(code)
}

/// Runs the chosen mode; the exit code is 0 when every run was clean.
async fn run_mode(args: Args) -> u8 {
    match &args.command {
        Some(Command::Worker { plan }) => match serde_json::from_str(plan) {
            Ok(plan) => match fleet::child_main(plan).await {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("herald-load worker: {e}");
                    1
                }
            },
            Err(e) => {
                eprintln!("herald-load worker: bad plan: {e}");
                2
            }
        },
        Some(Command::Report { files }) => report_table(files),
        None => measure(&args).await,
    }
}

async fn measure(args: &Args) -> u8 {
    let started = Instant::now();
    let deadline = started + args.max_time;
    let now = time::OffsetDateTime::now_utc();
    let ctx = Context {
        run: format!(
            "{:04}{:02}{:02}-{:02}{:02}{:02}",
            now.year(),
            now.month() as u8,
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        ),
        date: format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            now.year(),
            now.month() as u8,
            now.day(),
            now.hour(),
            now.minute()
        ),
        machine: server::machine(),
        commit: commit(),
    };
    // A hard stop: whatever is stuck, the run ends (servers die with us: kill_on_drop).
    let hard_stop = args.max_time + Duration::from_secs(20);
    std::thread::spawn(move || {
        std::thread::sleep(hard_stop);
        eprintln!("herald-load: --max-seconds exceeded; exiting");
        std::process::exit(3);
    });
    let mut all_clean = true;
    let mut reports = Vec::new();
    if let Some(rows) = args.import {
        let needle = &args.import_needle;
        let r = bounded(deadline, import::import(args, rows, needle, &ctx, deadline)).await;
        all_clean &= emit(args, &r);
        reports.push(r);
    } else if let Some(victim) = args.kill_pid {
        let r = bounded(deadline, failover::failover(args, victim, &ctx, deadline)).await;
        all_clean &= emit(args, &r);
        reports.push(r);
    } else if let Some(connects) = args.soak {
        let r = bounded(deadline, soak::soak(args, connects, &ctx, deadline)).await;
        all_clean &= emit(args, &r);
        reports.push(r);
    } else if let Some(cycles) = args.churn {
        for &target in &args.targets {
            let r = bounded(deadline, churn::churn(args, target, cycles, &ctx, deadline)).await;
            all_clean &= emit(args, &r);
            reports.push(r);
        }
    } else if !args.sweep.is_empty() {
        reports = sweep(args, &ctx, deadline).await;
        println!("\n{}", report::markdown(&reports));
        println!("{}", report::saturation(&reports));
    } else {
        for &target in &args.targets {
            let r = bounded(deadline, run::fanout(args, target, &ctx, deadline)).await;
            all_clean &= emit(args, &r);
            reports.push(r);
        }
        if reports.len() > 1 {
            println!("\n{}", report::markdown(&reports));
        }
    }
    if args.smoke {
        let ok = reports
            .iter()
            .all(|r| r.clean() && r.deliveries == r.expected && r.expected > 0);
        println!("smoke: {}", if ok { "ok" } else { "FAILED" });
        return if ok { 0 } else { 1 };
    }
    if all_clean { 0 } else { 1 }
}

/// The saturation search: the same streams at each `--sweep` rate in turn, every target at a
/// rate before the next rate; a target drops out once it falls behind or loses messages. Each
/// rate is its own run, so the tables compare the targets rate by rate.
async fn sweep(args: &Args, ctx: &Context, deadline: Instant) -> Vec<Report> {
    let mut reports = Vec::new();
    let mut going = args.targets.clone();
    for &rate in &args.sweep {
        let step = Args {
            rate,
            messages: (rate * args.sweep_secs).ceil() as u64,
            ..args.clone()
        };
        let ctx = Context {
            run: format!("{}-r{rate}", ctx.run),
            ..ctx.clone()
        };
        let mut still = Vec::new();
        for &target in &going {
            let r = bounded(deadline, run::fanout(&step, target, &ctx, deadline)).await;
            emit(args, &r);
            if report::keeps_up(&r) {
                still.push(target);
            }
            reports.push(r);
        }
        going = still;
        if going.is_empty() || Instant::now() >= deadline {
            break;
        }
    }
    reports
}

/// The commit the tool (and the Herald beside it) was built from, when run inside the
/// repository; `-modified` when the code differs from it (results files do not count).
fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(head) = git(&["describe", "--always"]) else {
        return String::new();
    };
    let code = [
        "status",
        "--porcelain",
        "--",
        "src",
        "templates",
        "static",
        "bench/herald-load",
        "Cargo.toml",
        "Cargo.lock",
    ];
    match git(&code) {
        Some(changes) if changes.is_empty() => head,
        _ => format!("{head}-modified"),
    }
}

/// Ends a run at the deadline with a report that says so.
async fn bounded(deadline: Instant, run: impl Future<Output = Report>) -> Report {
    match tokio::time::timeout_at(deadline + Duration::from_secs(10), run).await {
        Ok(r) => r,
        Err(_) => Report {
            error: Some("--max-seconds reached".into()),
            ..Report::default()
        },
    }
}

/// Prints the human table and the JSON line (and appends it to --json-out); `true` if clean.
fn emit(args: &Args, r: &Report) -> bool {
    println!("{}", r.human());
    let line = serde_json::to_string(r).expect("report serialises");
    println!("{line}");
    if let Some(path) = &args.json_out {
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = appended {
            eprintln!("herald-load: cannot append to {}: {e}", path.display());
        }
    }
    r.clean()
}

fn report_table(files: &[std::path::PathBuf]) -> u8 {
    let mut text = String::new();
    if files.is_empty() {
        let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text);
    }
    for f in files {
        match std::fs::read_to_string(f) {
            Ok(t) => text.push_str(&t),
            Err(e) => {
                eprintln!("herald-load: {}: {e}", f.display());
                return 2;
            }
        }
    }
    print!("{}", report::markdown(&report::parse_lines(&text)));
    0
}
