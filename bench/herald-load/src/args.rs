//! Command-line options (clap derive): `--help` lists each with its default. What clap cannot
//! say (loopback only, `--smoke`'s fixed load, the bitmaps' bound) is checked in [`parse`].

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

/// Which server a run drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Herald,
    Nchan,
    Node,
    /// The least an SSE fan-out can do (`../shared/peers/floor`): the limit to compare with.
    Floor,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Herald => "herald",
            Target::Nchan => "nchan",
            Target::Node => "node",
            Target::Floor => "floor",
        }
    }
}

/// How Herald messages are published: the board (`GET /send?message=`) or a notification
/// (`POST /send-notification`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PublishPath {
    Board,
    Notify,
}

/// The modes that measure nothing.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// JSON result lines -> Markdown table (stdin if no FILE)
    Report {
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// A child process opening its share of the streams (see `fleet.rs`).
    #[command(hide = true)]
    Worker { plan: String },
}

const USAGE: &str = "\
herald-load [OPTIONS] <--spawn | --url HOST:PORT --pid PID>
       herald-load --smoke
       herald-load report [FILE]...";

// The sections of --help.
const MODES: &str = "Modes";
const SERVER: &str = "Server";
const LOAD: &str = "Load";
const OUTPUT: &str = "Output";

/// herald-load: opens real SSE streams against Herald or a peer, publishes, and measures.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "herald-load",
    override_usage = USAGE,
    disable_help_subcommand = true,
    args_conflicts_with_subcommands = true
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// seconds-long self-check: spawns Herald, 50 streams, 20 messages, each to arrive once
    #[arg(long, help_heading = MODES)]
    pub smoke: bool,
    /// upload a generated ROWS-row CSV to Herald, time the import
    #[arg(long, value_name = "ROWS", value_parser = positive::<u64>, help_heading = MODES)]
    pub import: Option<u64>,
    /// open and close N streams (--streams at a time), RSS before/after
    #[arg(long, value_name = "N", value_parser = positive::<u64>, help_heading = MODES)]
    pub churn: Option<u64>,
    /// soak Herald: N connects and disconnects and --stalled stalled or slow readers among
    /// --streams healthy streams, publishing all along; RSS and the healthy streams' latency
    /// before and after
    #[arg(long, value_name = "N", value_parser = positive::<u64>, help_heading = MODES)]
    pub soak: Option<u64>,
    /// failover: SIGKILL this Herald instance (one of --pid, at --url with others) --kill-after
    /// seconds into publishing; every stream cut reconnects with Last-Event-ID, and the
    /// run reports how soon each was live again and that nothing was lost, duplicated or out of
    /// order. Publishes one message at a time, each on a fresh connection
    #[arg(long, value_name = "PID", value_parser = positive::<u32>, help_heading = MODES)]
    pub kill_pid: Option<u32>,
    /// --kill-pid: seconds of publishing before the kill
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = secs, help_heading = MODES)]
    pub kill_after: Duration,

    /// start the server(s) on a free port and stop them afterwards
    #[arg(long, help_heading = SERVER)]
    pub spawn: bool,
    /// attach to a running server (loopback only) ...
    #[arg(long, value_name = "HOST:PORT", value_parser = loopback, help_heading = SERVER)]
    pub url: Option<SocketAddr>,
    /// ... whose process(es) to measure (an nginx master: its workers)
    #[arg(
        long = "pid",
        value_name = "PID[,PID]",
        value_delimiter = ',',
        value_parser = num::<u32>,
        help_heading = SERVER
    )]
    pub pids: Vec<u32>,
    /// run one after the other
    #[arg(
        long = "target",
        value_name = "T[,T..]",
        value_delimiter = ',',
        default_value = "herald",
        help_heading = SERVER
    )]
    pub targets: Vec<Target>,
    /// Herald binary [default: the `herald` next to this binary]
    #[arg(long, value_name = "PATH", help_heading = SERVER)]
    pub herald_bin: Option<PathBuf>,
    /// extra argument for a spawned Herald (repeatable)
    #[arg(
        long = "herald-arg",
        value_name = "ARG",
        allow_hyphen_values = true,
        help_heading = SERVER
    )]
    pub herald_args: Vec<String>,
    /// nginx.conf and server.js
    #[arg(long, value_name = "DIR", default_value = "../shared/peers", help_heading = SERVER)]
    pub peers_dir: PathBuf,
    /// the floor peer's binary (cargo build --release --manifest-path
    /// ../shared/peers/floor/Cargo.toml --target-dir target/peers)
    #[arg(
        long,
        value_name = "PATH",
        default_value = "target/peers/release/floor",
        help_heading = SERVER
    )]
    pub floor_bin: PathBuf,
    /// pin the server (nginx's workers, Node, the floor) to CPU 0 and this tool with its
    /// workers to the other CPUs, so neither waits for the other's CPU [default: on with 2 CPUs,
    /// off for --smoke]
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        help_heading = SERVER
    )]
    pub pin: Option<bool>,
    /// worker_processes for a spawned nginx
    #[arg(
        long,
        value_name = "N",
        default_value = "1",
        value_parser = positive::<usize>,
        help_heading = SERVER
    )]
    pub nginx_workers: usize,

    /// SSE streams to open
    #[arg(
        long,
        value_name = "N",
        default_value = "100",
        value_parser = num::<usize>,
        help_heading = LOAD
    )]
    pub streams: usize,
    /// streams opened per second at most
    #[arg(long, value_name = "R", default_value = "2000", value_parser = rate, help_heading = LOAD)]
    pub open_rate: f64,
    /// spread streams over K client processes (each <= 20,000 fds)
    #[arg(
        long,
        value_name = "K",
        default_value = "1",
        value_parser = positive::<usize>,
        help_heading = LOAD
    )]
    pub processes: usize,
    /// bind client sockets to 127.0.0.1..127.0.0.S (at most 250)
    #[arg(long, value_name = "S", default_value = "8", value_parser = sources, help_heading = LOAD)]
    pub sources: u8,
    /// messages to publish (0: idle run, memory only)
    #[arg(
        long,
        value_name = "M",
        default_value = "100",
        value_parser = num::<u64>,
        help_heading = LOAD
    )]
    pub messages: u64,
    /// messages per second
    #[arg(long, value_name = "R", default_value = "10", value_parser = rate, help_heading = LOAD)]
    pub rate: f64,
    /// concurrent publishing connections
    #[arg(
        long,
        value_name = "P",
        default_value = "4",
        value_parser = positive::<usize>,
        help_heading = LOAD
    )]
    pub publishers: usize,
    /// size in bytes of each message's SSE event on the wire (id and data lines), the same for
    /// every target: the published text is padded to it, measured per target at warm-up
    /// [default: the marker alone]
    #[arg(long, value_name = "BYTES", value_parser = positive::<usize>, help_heading = LOAD)]
    pub payload: Option<usize>,
    /// Herald publish path: board (GET /send?message=) or notify (POST /send-notification)
    #[arg(long, value_name = "HOW", default_value = "board", help_heading = LOAD)]
    pub publish: PublishPath,
    /// nchan channel
    #[arg(long, value_name = "NAME", default_value = "bench", help_heading = LOAD)]
    pub channel: String,
    /// wait after opening before measuring RSS
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = secs, help_heading = LOAD)]
    pub settle: Duration,
    /// wait for stragglers after the last publish
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = secs, help_heading = LOAD)]
    pub drain: Duration,
    /// hard bound on the whole run
    #[arg(
        long = "max-seconds",
        value_name = "SECS",
        default_value = "120",
        value_parser = secs,
        help_heading = LOAD
    )]
    pub max_time: Duration,
    /// saturation search: a run per rate (messages = rate x --sweep-secs), until a target loses
    /// messages or delivers under 95% of what was offered
    #[arg(
        long,
        value_name = "R1,R2,..",
        value_delimiter = ',',
        value_parser = rate,
        help_heading = LOAD
    )]
    pub sweep: Vec<f64>,
    /// publishing time per sweep rate (at least 1)
    #[arg(
        long,
        value_name = "SECS",
        default_value = "10",
        value_parser = sweep_secs,
        help_heading = LOAD
    )]
    pub sweep_secs: f64,
    /// --soak: stalled readers (half never read, half read 512 bytes a second) [default:
    /// --streams]
    #[arg(long, value_name = "N", value_parser = num::<usize>, help_heading = LOAD)]
    pub stalled: Option<usize>,
    /// --soak: connect-disconnect loops at a time
    #[arg(long, value_name = "K", default_value = "100", value_parser = positive::<usize>, help_heading = LOAD)]
    pub soak_concurrent: usize,
    /// --soak: publishing time of each measured phase
    #[arg(long, value_name = "SECS", default_value = "20", value_parser = sweep_secs, help_heading = LOAD)]
    pub phase_secs: f64,
    /// --soak: Herald's send timeout (--send-timeout-secs), when its --help lists one
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = positive::<u64>, help_heading = LOAD)]
    pub send_timeout: u64,
    /// text on the stream that means the import finished
    #[arg(long, value_name = "TEXT", default_value = "import-done", help_heading = LOAD)]
    pub import_needle: String,

    /// note stored with the result (e.g. "machine shared")
    #[arg(
        long,
        value_name = "TEXT",
        default_value = "",
        hide_default_value = true,
        help_heading = OUTPUT
    )]
    pub label: String,
    /// append each JSON result line to FILE
    #[arg(long, value_name = "FILE", help_heading = OUTPUT)]
    pub json_out: Option<PathBuf>,
}

/// Parses the command line (program name first), applies `--smoke`'s fixed load and checks what
/// clap cannot; the error prints as clap's own (`exit()` gives code 2, or 0 for `--help`).
pub fn parse<I, T>(raw: I) -> Result<Args, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut args = Args::try_parse_from(raw)?;
    if args.command.is_some() {
        return Ok(args);
    }
    if args.smoke {
        args.spawn = true;
        args.targets = vec![Target::Herald];
        args.streams = 50;
        args.messages = 20;
        args.rate = 50.0;
        args.settle = Duration::from_millis(500);
        args.drain = Duration::from_secs(5);
        args.max_time = args.max_time.min(Duration::from_secs(60));
    }
    // Pinning pays on 2 CPUs, where the tool and the server would otherwise share both; the
    // smoke test runs beside other tests and measures nothing.
    let two_cpus = std::thread::available_parallelism().is_ok_and(|n| n.get() == 2);
    args.pin = Some(args.pin.unwrap_or(two_cpus && !args.smoke));
    let refuse = |kind, message: &str| Err(Args::command().error(kind, message));
    // Every stream keeps one bit per message to find losses and duplicates.
    if args.streams as u128 * args.messages as u128 / 8 > 2 << 30 {
        return refuse(
            ErrorKind::ValueValidation,
            "--streams x --messages is too large: the loss bitmaps would pass 2 GB",
        );
    }
    if !args.spawn && args.url.is_none() {
        return refuse(
            ErrorKind::MissingRequiredArgument,
            "give --spawn, or --url (and --pid) of a running server",
        );
    }
    if let Some(pid) = args.kill_pid
        && (args.url.is_none() || args.targets != [Target::Herald] || !args.pids.contains(&pid))
    {
        return refuse(
            ErrorKind::ArgumentConflict,
            "--kill-pid needs --url of running Herald instances, and kills one of their --pid",
        );
    }
    if args.url.is_some() && args.targets.len() != 1 {
        return refuse(
            ErrorKind::ArgumentConflict,
            "--url attaches to one server: give one --target",
        );
    }
    Ok(args)
}

/// Only loopback: the tool must never load anything but this machine.
fn loopback(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim_start_matches("http://").trim_end_matches('/');
    let addr: SocketAddr = s.parse().map_err(|_| "expected IP:PORT".to_string())?;
    if !addr.ip().is_loopback() {
        return Err(format!("must be a loopback address, not {addr}"));
    }
    Ok(addr)
}

/// A number, with `_` allowed between digits (`--streams 19_000`).
fn num<T: FromStr>(v: &str) -> Result<T, String> {
    v.trim()
        .replace('_', "")
        .parse()
        .map_err(|_| "not a number".to_string())
}

fn positive<T: FromStr + PartialOrd + Default>(v: &str) -> Result<T, String> {
    let n: T = num(v)?;
    if n > T::default() {
        Ok(n)
    } else {
        Err("must be at least 1".into())
    }
}

fn sources(v: &str) -> Result<u8, String> {
    Ok(positive::<u8>(v)?.min(250))
}

fn rate(v: &str) -> Result<f64, String> {
    let r: f64 = num(v)?;
    if r.is_finite() && r > 0.0 {
        Ok(r)
    } else {
        Err("must be above 0".into())
    }
}

fn secs(v: &str) -> Result<Duration, String> {
    let s: f64 = num(v)?;
    if s.is_finite() && s >= 0.0 {
        Ok(Duration::from_secs_f64(s))
    } else {
        Err("not a duration in seconds".into())
    }
}

fn sweep_secs(v: &str) -> Result<f64, String> {
    Ok(secs(v)?.as_secs_f64().max(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<Args, clap::Error> {
        parse(std::iter::once("herald-load").chain(s.split_whitespace()))
    }

    #[test]
    fn the_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn defaults_match_the_help() {
        let a = parse_str("--spawn").unwrap();
        assert_eq!(a.targets, vec![Target::Herald]);
        assert_eq!((a.streams, a.messages, a.rate), (100, 100, 10.0));
        assert_eq!((a.open_rate, a.processes, a.sources), (2000.0, 1, 8));
        assert_eq!(
            (a.publishers, a.publish, a.nginx_workers),
            (4, PublishPath::Board, 1)
        );
        assert_eq!(
            (a.settle, a.drain),
            (Duration::from_secs(2), Duration::from_secs(5))
        );
        assert_eq!(a.max_time, Duration::from_secs(120));
        assert_eq!(
            (a.channel.as_str(), a.import_needle.as_str()),
            ("bench", "import-done")
        );
        assert_eq!(a.peers_dir, PathBuf::from("../shared/peers"));
        assert_eq!((a.sweep_secs, a.label.as_str()), (10.0, ""));
        assert_eq!(a.payload, None);
        assert_eq!(a.floor_bin, PathBuf::from("target/peers/release/floor"));
        let help = Args::command().render_help().to_string();
        for shown in [
            "[default: 100]",
            "[default: 2000]",
            "[default: ../shared/peers]",
        ] {
            assert!(help.contains(shown), "{shown} missing from:\n{help}");
        }
    }

    #[test]
    fn reads_values_in_both_spellings() {
        let a = parse_str("--spawn --streams=2_000 --rate 10 --target herald,nchan").unwrap();
        assert_eq!(a.streams, 2000);
        assert_eq!(a.rate, 10.0);
        assert_eq!(a.targets, vec![Target::Herald, Target::Nchan]);
        assert!(parse_str("--spawn --target apache").is_err());
    }

    #[test]
    fn sweep_takes_a_list_of_rates() {
        let a = parse_str("--spawn --sweep 10,50,200 --sweep-secs 5").unwrap();
        assert_eq!(a.sweep, vec![10.0, 50.0, 200.0]);
        assert_eq!(a.sweep_secs, 5.0);
        assert!(parse_str("--spawn --sweep 10,0").is_err());
    }

    #[test]
    fn refuses_anything_but_loopback() {
        assert!(parse_str("--url 10.0.0.1:80").is_err());
        let a = parse_str("--url http://127.0.0.1:3000/ --pid 42 --pid 43,44").unwrap();
        assert_eq!(a.url.unwrap().port(), 3000);
        assert_eq!(a.pids, vec![42, 43, 44]);
        assert!(parse_str("--url 127.0.0.1:3000 --target herald,node").is_err());
    }

    #[test]
    fn needs_a_server_and_known_options() {
        let e = parse_str("--streams 5").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            parse_str("--spawn --bogus 1").unwrap_err().kind(),
            ErrorKind::UnknownArgument
        );
        assert!(parse_str("--spawn --processes 0").is_err());
        assert!(parse_str("--spawn --sources 300").is_err());
        assert!(parse_str("--spawn --streams 100000 --messages 1000000").is_err());
    }

    #[test]
    fn herald_args_may_look_like_options() {
        let a = parse_str("--spawn --herald-arg --history --herald-arg=500").unwrap();
        assert_eq!(a.herald_args, vec!["--history", "500"]);
    }

    #[test]
    fn smoke_is_small_and_bounded() {
        let a = parse_str("--smoke --streams 9000").unwrap();
        assert!(a.spawn && a.streams == 50 && a.messages == 20);
        assert!(a.max_time <= Duration::from_secs(60));
        assert_eq!(a.pin, Some(false), "the smoke test pins nothing by default");
    }

    #[test]
    fn pin_defaults_to_the_machine_and_can_be_forced() {
        let two = std::thread::available_parallelism().is_ok_and(|n| n.get() == 2);
        assert_eq!(parse_str("--spawn").unwrap().pin, Some(two));
        assert_eq!(parse_str("--spawn --pin").unwrap().pin, Some(true));
        assert_eq!(parse_str("--spawn --pin=false").unwrap().pin, Some(false));
        assert_eq!(parse_str("--smoke --pin").unwrap().pin, Some(true));
    }

    #[test]
    fn payload_and_the_floor_target() {
        let a = parse_str("--spawn --target herald,nchan,floor,node --payload 5_000").unwrap();
        assert_eq!(
            a.targets,
            [Target::Herald, Target::Nchan, Target::Floor, Target::Node]
        );
        assert_eq!(a.payload, Some(5000));
        assert!(parse_str("--spawn --payload 0").is_err());
    }

    #[test]
    fn soak_takes_its_connects_and_defaults() {
        let a = parse_str("--spawn --soak 1_000_000 --streams 10000").unwrap();
        assert_eq!((a.soak, a.stalled), (Some(1_000_000), None));
        assert_eq!(
            (a.soak_concurrent, a.phase_secs, a.send_timeout),
            (100, 20.0, 5)
        );
        let a = parse_str("--spawn --soak 10 --stalled 0 --phase-secs 3").unwrap();
        assert_eq!((a.stalled, a.phase_secs), (Some(0), 3.0));
        assert!(parse_str("--spawn --soak 0").is_err());
    }

    #[test]
    fn import_and_report_modes() {
        let a = parse_str("--spawn --import 1000 --import-needle Done").unwrap();
        assert_eq!((a.import, a.import_needle.as_str()), (Some(1000), "Done"));
        let a = parse_str("report a.jsonl b.jsonl").unwrap();
        assert!(matches!(a.command, Some(Command::Report { ref files }) if files.len() == 2));
        assert!(parse_str("--spawn report a.jsonl").is_err());
    }

    #[test]
    fn failover_kills_a_running_instance_after_a_while() {
        let a = parse_str("--url 127.0.0.1:3000 --pid 7,8 --kill-pid 7").unwrap();
        assert_eq!(
            (a.kill_pid, a.kill_after),
            (Some(7), Duration::from_secs(10))
        );
        let a = parse_str("--url 127.0.0.1:3000 --pid 7 --kill-pid 7 --kill-after 2.5").unwrap();
        assert_eq!(a.kill_after, Duration::from_millis(2500));
        for wrong in [
            "--spawn --kill-pid 7",
            "--url 127.0.0.1:3000 --pid 8 --kill-pid 7",
            "--url 127.0.0.1:3000 --target nchan --kill-pid 7",
            "--url 127.0.0.1:3000 --kill-pid 0",
        ] {
            assert!(parse_str(wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn help_is_an_answer_not_an_error() {
        assert_eq!(
            parse_str("--help").unwrap_err().kind(),
            ErrorKind::DisplayHelp
        );
    }
}
