//! Command-line options, parsed by hand like Herald's own configuration (no clap).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which server a run drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Herald,
    Nchan,
    Node,
}

impl Target {
    pub fn parse(s: &str) -> Result<Target, String> {
        match s {
            "herald" => Ok(Target::Herald),
            "nchan" => Ok(Target::Nchan),
            "node" => Ok(Target::Node),
            _ => Err(format!("unknown target {s:?}: herald, nchan or node")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Target::Herald => "herald",
            Target::Nchan => "nchan",
            Target::Node => "node",
        }
    }
}

/// How Herald messages are published: the board (`GET /send?message=`) or a notification
/// (`POST /send-notification`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PublishPath {
    Board,
    Notify,
}

#[derive(Debug, Clone)]
pub enum Mode {
    /// Open streams, publish, measure (the default).
    Fanout,
    /// Upload a generated CSV and time it.
    Import {
        rows: u64,
        needle: String,
    },
    /// Open and close streams `cycles` times, comparing memory before and after.
    Churn {
        cycles: u64,
    },
    /// Turn JSON result lines into a Markdown table.
    Report {
        files: Vec<PathBuf>,
    },
    /// A child process opening its share of the streams (see `fleet.rs`).
    Worker {
        plan: String,
    },
    Help,
}

#[derive(Debug, Clone)]
pub struct Args {
    pub mode: Mode,
    pub targets: Vec<Target>,
    pub spawn: bool,
    pub url: Option<SocketAddr>,
    pub pids: Vec<u32>,
    pub streams: usize,
    pub open_rate: f64,
    pub messages: u64,
    pub rate: f64,
    pub publishers: usize,
    pub processes: usize,
    pub sources: u8,
    pub max_time: Duration,
    pub settle: Duration,
    pub drain: Duration,
    pub publish: PublishPath,
    pub channel: String,
    pub peers_dir: PathBuf,
    pub nginx_workers: usize,
    pub herald_bin: Option<PathBuf>,
    pub herald_args: Vec<String>,
    pub smoke: bool,
    /// Rates for the saturation search (empty: one run at `rate`).
    pub sweep: Vec<f64>,
    pub sweep_secs: f64,
    pub label: String,
    pub json_out: Option<PathBuf>,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            mode: Mode::Fanout,
            targets: vec![Target::Herald],
            spawn: false,
            url: None,
            pids: Vec::new(),
            streams: 100,
            open_rate: 2000.0,
            messages: 100,
            rate: 10.0,
            publishers: 4,
            processes: 1,
            sources: 8,
            max_time: Duration::from_secs(120),
            settle: Duration::from_secs(2),
            drain: Duration::from_secs(5),
            publish: PublishPath::Board,
            channel: "bench".into(),
            peers_dir: PathBuf::from("../shared/peers"),
            nginx_workers: 1,
            herald_bin: None,
            herald_args: Vec::new(),
            smoke: false,
            sweep: Vec::new(),
            sweep_secs: 10.0,
            label: String::new(),
            json_out: None,
        }
    }
}

pub const HELP: &str = "\
herald-load: opens real SSE streams against Herald or a peer, publishes, and measures.

  herald-load [options]               fan-out run (default)
  herald-load --smoke                 seconds-long self-check: spawns Herald, 50 streams, 20 messages
  herald-load --import ROWS [opts]    upload a generated ROWS-row CSV to Herald, time the import
  herald-load --churn N [opts]        open and close N streams (--streams at a time), RSS before/after
  herald-load report FILE...          JSON result lines -> Markdown table (stdin if no FILE)

Server (one of):
  --spawn                 start the server(s) on a free port and stop them afterwards
  --url HOST:PORT         attach to a running server (loopback only) ...
  --pid PID[,PID]         ... whose process(es) to measure (an nginx master: its workers)
  --target T[,T..]        herald | nchan | node, run one after the other [herald]
  --herald-bin PATH       Herald binary [the `herald` next to this binary]
  --herald-arg ARG        extra argument for a spawned Herald (repeatable)
  --peers-dir DIR         nginx.conf and server.js [../shared/peers]
  --nginx-workers N       worker_processes for a spawned nginx [1]

Load:
  --streams N             SSE streams to open [100]
  --open-rate R           streams opened per second at most [2000]
  --processes K           spread streams over K client processes (each <= 20,000 fds) [1]
  --sources S             bind client sockets to 127.0.0.1..127.0.0.S [8]
  --messages M            messages to publish (0: idle run, memory only) [100]
  --rate R                messages per second [10]
  --publishers P          concurrent publishing connections [4]
  --publish board|notify  Herald publish path: GET /send?message= or POST /send-notification [board]
  --channel NAME          nchan channel [bench]
  --settle SECS           wait after opening before measuring RSS [2]
  --drain SECS            wait for stragglers after the last publish [5]
  --max-seconds SECS      hard bound on the whole run [120]
  --sweep R1,R2,..        saturation search: a run per rate (messages = rate x --sweep-secs), until
                          a target loses messages or delivers under 95% of what was offered
  --sweep-secs SECS       publishing time per sweep rate [10]
  --import-needle TEXT    text on the stream that means the import finished [import-done]

Output:
  --label TEXT            note stored with the result (e.g. \"machine shared\")
  --json-out FILE         append each JSON result line to FILE
";

pub fn parse(raw: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut args = Args::default();
    let mut it = raw.into_iter().peekable();
    let mut import: Option<u64> = None;
    let mut churn: Option<u64> = None;
    let mut needle = "import-done".to_string();
    if it.peek().map(String::as_str) == Some("report") {
        it.next();
        args.mode = Mode::Report {
            files: it.map(PathBuf::from).collect(),
        };
        return Ok(args);
    }
    if it.peek().map(String::as_str) == Some("worker") {
        it.next();
        let plan = it.next().ok_or("worker needs its plan")?;
        args.mode = Mode::Worker { plan };
        return Ok(args);
    }
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = || -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name.as_str() {
            "-h" | "--help" => args.mode = Mode::Help,
            "--spawn" => args.spawn = true,
            "--smoke" => args.smoke = true,
            "--url" => args.url = Some(loopback(&value()?)?),
            "--pid" => {
                for p in value()?.split(',') {
                    args.pids.push(num(&name, p)?);
                }
            }
            "--target" => {
                args.targets = value()?
                    .split(',')
                    .map(Target::parse)
                    .collect::<Result<_, _>>()?
            }
            "--herald-bin" => args.herald_bin = Some(value()?.into()),
            "--herald-arg" => args.herald_args.push(value()?),
            "--peers-dir" => args.peers_dir = value()?.into(),
            "--nginx-workers" => args.nginx_workers = positive(&name, &value()?)?,
            "--streams" => args.streams = num(&name, &value()?)?,
            "--open-rate" => args.open_rate = rate(&name, &value()?)?,
            "--processes" => args.processes = positive(&name, &value()?)?,
            "--sources" => args.sources = positive::<u8>(&name, &value()?)?.min(250),
            "--messages" => args.messages = num(&name, &value()?)?,
            "--rate" => args.rate = rate(&name, &value()?)?,
            "--publishers" => args.publishers = positive(&name, &value()?)?,
            "--publish" => {
                args.publish = match value()?.as_str() {
                    "board" => PublishPath::Board,
                    "notify" => PublishPath::Notify,
                    other => return Err(format!("--publish: board or notify, not {other:?}")),
                }
            }
            "--channel" => args.channel = value()?,
            "--settle" => args.settle = secs(&name, &value()?)?,
            "--drain" => args.drain = secs(&name, &value()?)?,
            "--max-seconds" => args.max_time = secs(&name, &value()?)?,
            "--import" => import = Some(positive(&name, &value()?)?),
            "--import-needle" => needle = value()?,
            "--churn" => churn = Some(positive(&name, &value()?)?),
            "--sweep" => {
                args.sweep = value()?
                    .split(',')
                    .map(|r| rate(&name, r))
                    .collect::<Result<_, _>>()?
            }
            "--sweep-secs" => args.sweep_secs = secs(&name, &value()?)?.as_secs_f64().max(1.0),
            "--label" => args.label = value()?,
            "--json-out" => args.json_out = Some(value()?.into()),
            _ => return Err(format!("unknown option {arg:?}; see --help")),
        }
    }
    if let Some(rows) = import {
        args.mode = Mode::Import { rows, needle };
    } else if let Some(cycles) = churn {
        args.mode = Mode::Churn { cycles };
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
    // Every stream keeps one bit per message to find losses and duplicates.
    if args.streams as u128 * args.messages as u128 / 8 > 2 << 30 {
        return Err("--streams x --messages is too large: the loss bitmaps would pass 2 GB".into());
    }
    if !args.spawn && args.url.is_none() && !matches!(args.mode, Mode::Help) {
        return Err("give --spawn, or --url (and --pid) of a running server".into());
    }
    if args.url.is_some() && args.targets.len() != 1 {
        return Err("--url attaches to one server: give one --target".into());
    }
    Ok(args)
}

/// Only loopback: the tool must never load anything but this machine.
fn loopback(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim_start_matches("http://").trim_end_matches('/');
    let addr: SocketAddr = s
        .parse()
        .map_err(|_| format!("--url: expected IP:PORT, got {s:?}"))?;
    if !addr.ip().is_loopback() {
        return Err(format!("--url must be a loopback address, not {addr}"));
    }
    Ok(addr)
}

fn num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
    v.trim()
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{name}: not a number: {v:?}"))
}

fn positive<T: std::str::FromStr + PartialOrd + Default>(name: &str, v: &str) -> Result<T, String> {
    let n: T = num(name, v)?;
    if n > T::default() {
        Ok(n)
    } else {
        Err(format!("{name} must be at least 1"))
    }
}

fn rate(name: &str, v: &str) -> Result<f64, String> {
    let r: f64 = num(name, v)?;
    if r.is_finite() && r > 0.0 {
        Ok(r)
    } else {
        Err(format!("{name} must be above 0"))
    }
}

fn secs(name: &str, v: &str) -> Result<Duration, String> {
    let s: f64 = num(name, v)?;
    if s.is_finite() && s >= 0.0 {
        Ok(Duration::from_secs_f64(s))
    } else {
        Err(format!("{name}: not a duration in seconds: {v:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<Args, String> {
        parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn reads_values_in_both_spellings() {
        let a = parse_str("--spawn --streams=2_000 --rate 10 --target herald,nchan").unwrap();
        assert_eq!(a.streams, 2000);
        assert_eq!(a.rate, 10.0);
        assert_eq!(a.targets, vec![Target::Herald, Target::Nchan]);
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
        let a = parse_str("--url http://127.0.0.1:3000/ --pid 42").unwrap();
        assert_eq!(a.url.unwrap().port(), 3000);
        assert_eq!(a.pids, vec![42]);
    }

    #[test]
    fn needs_a_server_and_known_options() {
        assert!(parse_str("--streams 5").is_err());
        assert!(parse_str("--spawn --bogus 1").is_err());
        assert!(parse_str("--spawn --processes 0").is_err());
        assert!(parse_str("--spawn --streams 100000 --messages 1000000").is_err());
    }

    #[test]
    fn smoke_is_small_and_bounded() {
        let a = parse_str("--smoke").unwrap();
        assert!(a.spawn && a.streams == 50 && a.messages == 20);
        assert!(a.max_time <= Duration::from_secs(60));
    }

    #[test]
    fn import_and_report_modes() {
        let a = parse_str("--spawn --import 1000 --import-needle Done").unwrap();
        assert!(matches!(a.mode, Mode::Import { rows: 1000, ref needle } if needle == "Done"));
        let a = parse_str("report a.jsonl b.jsonl").unwrap();
        assert!(matches!(a.mode, Mode::Report { ref files } if files.len() == 2));
    }
}
