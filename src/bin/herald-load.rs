//! herald-load: the load tool of BENCHMARKS.md. It opens real SSE streams against Herald, nginx +
//! nchan or a Node broadcaster, publishes at a fixed rate, and reports memory per stream, CPU per
//! delivery, loss, duplicates and latency percentiles. `--help` lists the options.

#[path = "herald_load/mod.rs"]
mod load;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = match load::args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("herald-load: {message}");
            return ExitCode::from(2);
        }
    };
    load::raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(load::main(args));
    // Stream tasks may still be parked on sockets; do not wait for them.
    runtime.shutdown_background();
    ExitCode::from(code)
}
