//! Configuration, read once at start-up into typed values: `--flag value` wins over
//! `HERALD_FLAG`, which wins over the default.
//!
//! [`Args`] is the one place that names every option, its variable, default and meaning: clap's
//! `--help`, the README's table (checked by `tests/config.rs`) and the tests' configuration all
//! come from it. Values are checked as they are parsed, so a bad one stops Herald at start with
//! a message naming the option.

use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Deref;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};
use ipnet::IpNet;

use crate::hub::{HubConfig, Limits};

#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    /// Lets several instances listen on one address (`SO_REUSEPORT`); the kernel spreads new
    /// connections over them.
    pub reuse_port: bool,
    pub db: PathBuf,
    /// When set, PostgreSQL holds everything instead of the SQLite file `db`, so several
    /// instances can share it.
    pub database_url: Option<Secret>,
    /// Bounds of the PostgreSQL event log, from which any instance replays a tab's cursor.
    pub event_log: EventLog,
    /// When set, JSON API writes must carry `Authorization: Bearer <token>`.
    pub api_token: Option<Secret>,
    /// Origins (`scheme://host[:port]`, lower case) whose pages may use the JSON API and read
    /// its streams, with the CORS headers browsers need; empty: no CORS headers at all.
    pub cors_origins: Vec<String>,
    /// How many background jobs run at once (per instance); the others wait in line.
    pub job_concurrency: usize,
    /// How long an instance's claim on a running job holds without renewal: after it dies, its
    /// jobs are taken over this long after its last renewal.
    pub job_lease: Duration,
    pub limits: InputLimits,
    pub import: ImportLimits,
    pub hub: HubConfig,
    pub connections: ConnectionLimits,
    pub ops: Operations,
}

/// Time and size limits on every connection, so that no client can hold Herald hostage.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A request head must arrive within this (from the connection's start for its first
    /// request, else from the head's first byte); then 408 and the connection closes.
    pub header_timeout: Duration,
    /// A kept-alive connection with no request in flight closes after this.
    pub idle_timeout: Duration,
    /// A larger request head gets 431 and the connection closes.
    pub max_header_bytes: usize,
    /// A response or stream whose client has taken nothing for this long is closed, and a
    /// request body that has not moved for this long fails.
    pub send_timeout: Duration,
    /// After a shutdown signal, connections still open after this are closed.
    pub shutdown_grace: Duration,
    /// Past this many open connections new ones get 503; `None`: the open-files limit minus a
    /// reserve, found at start.
    pub max_connections: Option<usize>,
}

/// How Herald presents itself to operators: logs, metrics, proxies in front, shutdown.
#[derive(Debug, Clone)]
pub struct Operations {
    pub log_format: LogFormat,
    /// Serve `GET /metrics` on this address alone (not on the app's); `None`: on the app's.
    pub metrics_addr: Option<SocketAddr>,
    /// Peers whose `X-Forwarded-For` / `X-Forwarded-Proto` are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// After a shutdown signal, how long `/readyz` answers 503 before streams are closed.
    pub drain: Duration,
    /// Serve HTTPS (and HTTP/2) with these PEM files; `None`: plain HTTP/1.1.
    pub tls: Option<TlsFiles>,
}

/// The certificate chain (leaf first) and its private key, as PEM files; read at start and
/// again on SIGHUP.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The shape of log lines on stderr: `Text`, one line per event for people, or `Json`, one
/// object per line for log pipelines. (No docs on the variants: clap would show them in a long
/// `--help` of its own.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Bounds and pacing of CSV imports and of the mock CSV generator.
#[derive(Debug, Clone, Copy)]
pub struct ImportLimits {
    /// Largest uploaded file; larger ones get 413 (from `Content-Length`, or while streaming).
    pub max_upload_bytes: u64,
    pub max_rows: u64,
    pub max_columns: usize,
    pub max_field_chars: usize,
    /// Most rows `GET /csv` generates.
    pub max_mock_rows: u64,
    /// Rows streamed one by one into the table; past them only progress and counts stream.
    pub live_rows: u64,
    /// Pause after each live row, so a demo can be watched (0: none).
    pub row_delay: Duration,
    /// Imports kept in the store, all clients together (each client keeps only its latest).
    pub keep: usize,
}

/// How much of the shared event log is kept: events beyond the newest `messages`, or older than
/// `age`, are deleted (a tab whose cursor is older gets a resync instead of a replay).
#[derive(Debug, Clone, Copy)]
pub struct EventLog {
    pub messages: u64,
    pub age: Duration,
}

/// Bounds on what users may send, each reported with a clear 4xx when exceeded.
#[derive(Debug, Clone, Copy)]
pub struct InputLimits {
    pub request_bytes: usize,
    pub message_chars: usize,
    pub title_chars: usize,
    pub body_chars: usize,
    pub description_chars: usize,
}

/// A value that must not reach a log: its `Debug` prints `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Deref for Secret {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_string())
    }
}

/// Every option as clap reads it; [`Config`] is what the app uses.
#[derive(Parser)]
#[command(
    name = "herald",
    about = "Herald: live server-rendered HTML over SSE",
    after_help = "A flag wins over its variable, which wins over the default. The API token is \
                  read from HERALD_API_TOKEN or --api-token-file, never from a flag."
)]
struct Args {
    /// Address to listen on
    #[arg(
        long,
        env = "HERALD_ADDR",
        value_name = "ADDR",
        default_value = "127.0.0.1:3000"
    )]
    addr: SocketAddr,
    /// Share the address with other instances (SO_REUSEPORT): the kernel spreads connections
    #[arg(long, env = "HERALD_REUSE_PORT", value_name = "BOOL", default_value = "false", value_parser = boolean, action = clap::ArgAction::Set)]
    reuse_port: bool,
    /// SQLite database file
    #[arg(
        long,
        env = "HERALD_DB",
        value_name = "PATH",
        default_value = "./herald.db"
    )]
    db: PathBuf,
    /// PostgreSQL URL (postgres://user@host/db): shared state for several instances instead of
    /// the SQLite file; as a flag only without a password, since `ps` shows every flag
    #[arg(long, env = "HERALD_DATABASE_URL", value_name = "URL")]
    database_url: Option<Secret>,
    /// Events kept in the PostgreSQL event log for replay
    #[arg(long, env = "HERALD_EVENT_LOG_MESSAGES", value_name = "N", default_value = "100000", value_parser = at_least_one::<u64>)]
    event_log_messages: u64,
    /// Seconds an event is kept in the PostgreSQL event log for replay
    #[arg(long, env = "HERALD_EVENT_LOG_SECS", value_name = "SECS", default_value = "3600", value_parser = at_least_one::<u64>)]
    event_log_secs: u64,
    /// Bearer token that API writes (requests without browser origin headers, and pages on
    /// --cors-origins) must carry (empty: none); environment only, since `ps` shows every flag
    #[arg(long, env = "HERALD_API_TOKEN", value_name = "TOKEN", hide = true)]
    api_token: Option<Secret>,
    /// File holding the API token, read at start (instead of HERALD_API_TOKEN)
    #[arg(long, env = "HERALD_API_TOKEN_FILE", value_name = "PATH")]
    api_token_file: Option<PathBuf>,
    /// Origins whose pages may use the JSON API and its streams (CORS), comma-separated, like
    /// https://app.example.com,http://localhost:5173 (empty: none)
    #[arg(long, env = "HERALD_CORS_ORIGINS", value_name = "ORIGINS", value_parser = origins)]
    cors_origins: Option<Origins>,
    /// Background jobs that run at once on each instance
    #[arg(long, env = "HERALD_JOB_CONCURRENCY", value_name = "N", default_value = "2", value_parser = at_least_one::<usize>)]
    job_concurrency: usize,
    /// Seconds a job stays claimed by an instance that stopped renewing it (one killed) before
    /// another instance takes it over
    #[arg(long, env = "HERALD_JOB_LEASE_SECS", value_name = "SECS", default_value = "10", value_parser = at_least_one::<u64>)]
    job_lease_secs: u64,
    /// Largest form or JSON body
    #[arg(long, env = "HERALD_MAX_REQUEST_BYTES", value_name = "BYTES", default_value = "65536", value_parser = at_least_one::<usize>)]
    max_request_bytes: usize,
    /// Longest board message
    #[arg(long, env = "HERALD_MAX_MESSAGE_CHARS", value_name = "CHARS", default_value = "500", value_parser = at_least_one::<usize>)]
    max_message_chars: usize,
    /// Longest notification title
    #[arg(long, env = "HERALD_MAX_TITLE_CHARS", value_name = "CHARS", default_value = "100", value_parser = at_least_one::<usize>)]
    max_title_chars: usize,
    /// Longest notification body
    #[arg(long, env = "HERALD_MAX_BODY_CHARS", value_name = "CHARS", default_value = "1000", value_parser = at_least_one::<usize>)]
    max_body_chars: usize,
    /// Longest offer description
    #[arg(long, env = "HERALD_MAX_DESCRIPTION_CHARS", value_name = "CHARS", default_value = "200", value_parser = at_least_one::<usize>)]
    max_description_chars: usize,
    /// Largest CSV file an import accepts
    #[arg(long, env = "HERALD_MAX_UPLOAD_BYTES", value_name = "BYTES", default_value = "104857600", value_parser = at_least_one::<u64>)]
    max_upload_bytes: u64,
    /// Most rows one import accepts
    #[arg(long, env = "HERALD_MAX_IMPORT_ROWS", value_name = "ROWS", default_value = "2000000", value_parser = at_least_one::<u64>)]
    max_import_rows: u64,
    /// Most columns a CSV may have
    #[arg(long, env = "HERALD_MAX_IMPORT_COLUMNS", value_name = "N", default_value = "100", value_parser = at_least_one::<usize>)]
    max_import_columns: usize,
    /// Longest CSV field
    #[arg(long, env = "HERALD_MAX_FIELD_CHARS", value_name = "CHARS", default_value = "1000", value_parser = at_least_one::<usize>)]
    max_field_chars: usize,
    /// Most rows GET /csv generates
    #[arg(long, env = "HERALD_MAX_MOCK_ROWS", value_name = "ROWS", default_value = "1000000", value_parser = at_least_one::<u64>)]
    max_mock_rows: u64,
    /// Rows streamed one by one into the import table; past them only progress streams
    #[arg(long, env = "HERALD_IMPORT_LIVE_ROWS", value_name = "ROWS", default_value = "100", value_parser = at_least_one::<u64>)]
    import_live_rows: u64,
    /// Pause after each live import row, for demos
    #[arg(long, env = "HERALD_IMPORT_ROW_DELAY_MS", value_name = "MS", default_value = "0", value_parser = whole::<u64>)]
    import_row_delay_ms: u64,
    /// Imports kept in the database
    #[arg(long, env = "HERALD_IMPORT_KEEP", value_name = "N", default_value = "10", value_parser = at_least_one::<usize>)]
    import_keep: usize,
    /// Seconds between heartbeats on each stream
    #[arg(long, env = "HERALD_HEARTBEAT_SECS", value_name = "SECS", default_value = "15", value_parser = at_least_one::<u64>)]
    heartbeat_secs: u64,
    /// Reconnect delay sent to browsers (`retry:`)
    #[arg(long, env = "HERALD_RETRY_MS", value_name = "MS", default_value = "2000", value_parser = whole::<u64>)]
    retry_ms: u64,
    /// Broadcast messages kept for replay
    #[arg(long, env = "HERALD_HISTORY_MESSAGES", value_name = "N", default_value = "4096", value_parser = at_least_one::<usize>)]
    history_messages: usize,
    /// Bytes of broadcast messages kept for replay
    #[arg(long, env = "HERALD_HISTORY_BYTES", value_name = "BYTES", default_value = "8388608", value_parser = at_least_one::<usize>)]
    history_bytes: usize,
    /// Private messages kept per tab
    #[arg(long, env = "HERALD_CLIENT_HISTORY_MESSAGES", value_name = "N", default_value = "1024", value_parser = at_least_one::<usize>)]
    client_history_messages: usize,
    /// Bytes of private messages kept per tab
    #[arg(long, env = "HERALD_CLIENT_HISTORY_BYTES", value_name = "BYTES", default_value = "2097152", value_parser = at_least_one::<usize>)]
    client_history_bytes: usize,
    /// How long a closed tab's private history is kept
    #[arg(long, env = "HERALD_CLIENT_IDLE_SECS", value_name = "SECS", default_value = "600", value_parser = whole::<u64>)]
    client_idle_secs: u64,
    /// Seconds a request head may take to arrive (then 408 and the connection closes)
    #[arg(long, env = "HERALD_HEADER_TIMEOUT_SECS", value_name = "SECS", default_value = "10", value_parser = at_least_one::<u64>)]
    header_timeout_secs: u64,
    /// Seconds a kept-alive connection may wait for its next request
    #[arg(long, env = "HERALD_IDLE_TIMEOUT_SECS", value_name = "SECS", default_value = "60", value_parser = at_least_one::<u64>)]
    idle_timeout_secs: u64,
    /// Largest request head (request line and headers); a larger one gets 431
    #[arg(long, env = "HERALD_MAX_HEADER_BYTES", value_name = "BYTES", default_value = "16384", value_parser = at_least_one::<usize>)]
    max_header_bytes: usize,
    /// Seconds a client may take nothing of a response or stream (a tab resumes by
    /// Last-Event-ID when it comes back), or send nothing of a request body, before it is cut off
    #[arg(long, env = "HERALD_SEND_TIMEOUT_SECS", value_name = "SECS", default_value = "30", value_parser = at_least_one::<u64>)]
    send_timeout_secs: u64,
    /// Seconds after SIGTERM for streams to end and responses to finish; then whatever is
    /// open is closed
    #[arg(long, env = "HERALD_SHUTDOWN_GRACE_SECS", value_name = "SECS", default_value = "10", value_parser = whole::<u64>)]
    shutdown_grace_secs: u64,
    /// Most connections open at once; past it new ones get 503 (auto: the open-files limit
    /// minus a reserve)
    #[arg(long, env = "HERALD_MAX_CONNECTIONS", value_name = "N", default_value = "auto", value_parser = auto_or_count)]
    max_connections: AutoOrCount,
    /// Log lines as `text` or `json` (one object per line)
    #[arg(
        long,
        env = "HERALD_LOG_FORMAT",
        value_name = "FORMAT",
        default_value = "text",
        ignore_case = true
    )]
    log_format: LogFormat,
    /// Serve GET /metrics on this address only, e.g. 127.0.0.1:9100 (default: on --addr)
    #[arg(long, env = "HERALD_METRICS_ADDR", value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Comma-separated addresses or CIDRs of proxies whose X-Forwarded-For and
    /// X-Forwarded-Proto are believed, e.g. 127.0.0.1,10.0.0.0/8
    #[arg(long, env = "HERALD_TRUSTED_PROXIES", value_name = "LIST", value_delimiter = ',', value_parser = address_or_cidr)]
    trusted_proxies: Vec<IpNet>,
    /// Seconds between a shutdown signal (GET /readyz turns 503) and closing the streams, so a
    /// load balancer stops sending new tabs first
    #[arg(long, env = "HERALD_DRAIN_SECS", value_name = "SECS", default_value = "2", value_parser = whole::<u64>)]
    drain_secs: u64,
    /// PEM certificate chain for HTTPS with HTTP/2 (with --tls-key); reread on SIGHUP
    #[arg(
        long,
        env = "HERALD_TLS_CERT",
        value_name = "PATH",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(
        long,
        env = "HERALD_TLS_KEY",
        value_name = "PATH",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
}

/// `10.0.0.0/8`, or one address (`127.0.0.1`, `::1`) standing for itself.
fn address_or_cidr(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| "must be IP addresses or CIDRs (10.0.0.0/8), separated by commas".to_string())
}

/// A whole number, 0 allowed; surrounding spaces (as in an environment file) are ignored.
fn whole<T: FromStr>(text: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| "must be a whole number".to_string())
}

/// `true`/`false`, also as `1`/`0`, `yes`/`no` or `on`/`off`.
fn boolean(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("must be true or false (or 1 or 0)".to_string()),
    }
}

/// A count or size that makes no sense at zero (a zero heartbeat would spin).
fn at_least_one<T: FromStr + PartialEq + From<u8>>(text: &str) -> Result<T, String> {
    match whole::<T>(text) {
        Ok(n) if n == T::from(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(_) => Err("must be a whole number, at least 1".to_string()),
    }
}

/// `auto` (`None`: a limit Herald works out at start) or a count of at least 1.
#[derive(Clone, Copy)]
struct AutoOrCount(Option<usize>);

fn auto_or_count(text: &str) -> Result<AutoOrCount, String> {
    if text.trim() == "auto" {
        return Ok(AutoOrCount(None));
    }
    at_least_one(text)
        .map(|n| AutoOrCount(Some(n)))
        .map_err(|_| "must be auto or a whole number, at least 1".to_string())
}

/// `--cors-origins` as parsed: empty pieces (an empty variable, a trailing comma) name nothing.
#[derive(Clone)]
struct Origins(Vec<String>);

fn origins(text: &str) -> Result<Origins, String> {
    text.split(',')
        .filter(|piece| !piece.trim().is_empty())
        .map(origin)
        .collect::<Result<_, _>>()
        .map(Origins)
}

/// An origin as a browser sends it in `Origin`: scheme, host and port, nothing more; compared
/// in lower case, as browsers send it.
fn origin(text: &str) -> Result<String, String> {
    let origin = text.trim().to_ascii_lowercase();
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    match authority {
        Some(a)
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b)) =>
        {
            Ok(origin)
        }
        _ => Err(format!(
            "{text:?} is not an origin: scheme, host and optional port, such as \
             https://app.example.com or http://localhost:5173 (no path, no trailing slash)"
        )),
    }
}

/// Herald's options as clap knows them: `--help`, and the README table's source
/// (`tests/config.rs`). No variable's value is ever shown, so the token stays out of `--help`;
/// `--retry-ms -1` is a bad value for `--retry-ms`, not an unknown flag `-1`.
pub fn command() -> clap::Command {
    Args::command().mut_args(|arg| arg.hide_env_values(true).allow_negative_numbers(true))
}

impl Config {
    /// From the process's flags and `HERALD_*` variables. `--help` comes back as an error whose
    /// `print` and `exit_code` say what to do, as a bad value does.
    pub fn load() -> Result<Config, clap::Error> {
        Config::parse(command(), std::env::args_os())
    }

    /// From these flags and the defaults alone, whatever the environment holds: the tests'
    /// configuration (`args` starts with the program name).
    pub fn from_args_without_env<T: Into<OsString> + Clone>(
        args: impl IntoIterator<Item = T>,
    ) -> Result<Config, clap::Error> {
        Config::parse(command().mut_args(|arg| arg.env(None)), args)
    }

    fn parse<T: Into<OsString> + Clone>(
        mut command: clap::Command,
        args: impl IntoIterator<Item = T>,
    ) -> Result<Config, clap::Error> {
        let matches = command.try_get_matches_from_mut(args)?;
        if matches.value_source("database_url") == Some(ValueSource::CommandLine)
            && matches
                .get_one::<Secret>("database_url")
                .is_some_and(|url| has_password(url))
        {
            return Err(command.error(
                ErrorKind::ArgumentConflict,
                "--database-url holds a password, and `ps` shows every flag: \
                 set HERALD_DATABASE_URL instead (or use a password file)",
            ));
        }
        if matches.value_source("api_token") == Some(ValueSource::CommandLine) {
            return Err(command.error(
                ErrorKind::ArgumentConflict,
                "--api-token is refused, since `ps` shows every flag: \
                 set HERALD_API_TOKEN, or name a file with --api-token-file",
            ));
        }
        let args = Args::from_arg_matches(&matches).map_err(|e| e.format(&mut command))?;
        args.into_config()
            .map_err(|message| command.error(ErrorKind::Io, message))
    }
}

impl Args {
    fn into_config(self) -> Result<Config, String> {
        let api_token = match (
            self.api_token.filter(|t| !t.is_empty()),
            self.api_token_file,
        ) {
            (Some(_), Some(_)) => {
                return Err("HERALD_API_TOKEN and --api-token-file are both set: keep one".into());
            }
            (token, None) => token,
            (None, Some(path)) => Some(read_token(&path)?),
        };
        let database_url = self.database_url.filter(|url| !url.is_empty());
        if let Some(url) = &database_url {
            url.parse::<postgres::Config>().map_err(|_| {
                "--database-url (HERALD_DATABASE_URL) is not a PostgreSQL URL or key=value \
                 string (postgres://user:password@host:port/database)"
                    .to_string()
            })?;
        }
        Ok(Config {
            addr: self.addr,
            reuse_port: self.reuse_port,
            db: self.db,
            database_url,
            event_log: EventLog {
                messages: self.event_log_messages,
                age: Duration::from_secs(self.event_log_secs),
            },
            api_token,
            cors_origins: self.cors_origins.map_or_else(Vec::new, |o| o.0),
            job_concurrency: self.job_concurrency,
            job_lease: Duration::from_secs(self.job_lease_secs),
            limits: InputLimits {
                request_bytes: self.max_request_bytes,
                message_chars: self.max_message_chars,
                title_chars: self.max_title_chars,
                body_chars: self.max_body_chars,
                description_chars: self.max_description_chars,
            },
            import: ImportLimits {
                max_upload_bytes: self.max_upload_bytes,
                max_rows: self.max_import_rows,
                max_columns: self.max_import_columns,
                max_field_chars: self.max_field_chars,
                max_mock_rows: self.max_mock_rows,
                live_rows: self.import_live_rows,
                row_delay: Duration::from_millis(self.import_row_delay_ms),
                keep: self.import_keep,
            },
            hub: HubConfig {
                history: Limits {
                    messages: self.history_messages,
                    bytes: self.history_bytes,
                },
                client_history: Limits {
                    messages: self.client_history_messages,
                    bytes: self.client_history_bytes,
                },
                heartbeat: Duration::from_secs(self.heartbeat_secs),
                retry: Duration::from_millis(self.retry_ms),
                client_idle: Duration::from_secs(self.client_idle_secs),
            },
            connections: ConnectionLimits {
                header_timeout: Duration::from_secs(self.header_timeout_secs),
                idle_timeout: Duration::from_secs(self.idle_timeout_secs),
                max_header_bytes: self.max_header_bytes,
                send_timeout: Duration::from_secs(self.send_timeout_secs),
                shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
                max_connections: self.max_connections.0,
            },
            ops: Operations {
                log_format: self.log_format,
                metrics_addr: self.metrics_addr,
                trusted_proxies: self.trusted_proxies,
                drain: Duration::from_secs(self.drain_secs),
                tls: self
                    .tls_cert
                    .zip(self.tls_key)
                    .map(|(cert, key)| TlsFiles { cert, key }),
            },
        })
    }
}

/// Whether a database URL carries a password (checked on the parsed form, whatever the syntax).
fn has_password(url: &str) -> bool {
    url.parse::<postgres::Config>()
        .map(|c| c.get_password().is_some())
        .unwrap_or(true)
}

/// The token file's content without the newline an editor or `echo` leaves at its end; an
/// empty file is refused rather than taken as "no token", which would open the API.
fn read_token(path: &std::path::Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --api-token-file {}: {e}", path.display()))?;
    let token = text.trim_end_matches(['\r', '\n']);
    if token.is_empty() {
        return Err(format!("--api-token-file {} is empty", path.display()));
    }
    Ok(Secret::from(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::from_args_without_env(std::iter::once("herald").chain(args.iter().copied()))
    }

    fn error(args: &[&str]) -> String {
        parse(args).unwrap_err().to_string()
    }

    #[test]
    fn defaults_apply_without_flags_or_env() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:3000");
        assert_eq!(c.db, PathBuf::from("./herald.db"));
        assert_eq!(c.api_token, None);
        assert_eq!(c.hub.heartbeat, Duration::from_secs(15));
        assert_eq!(c.hub.retry, Duration::from_millis(2000));
        assert_eq!(c.hub.history.bytes, 8 << 20);
        assert_eq!(c.import.max_upload_bytes, 100 << 20);
        assert_eq!(c.import.row_delay, Duration::ZERO);
        assert_eq!(c.job_concurrency, 2);
        assert_eq!(c.connections.header_timeout, Duration::from_secs(10));
        assert_eq!(c.connections.idle_timeout, Duration::from_secs(60));
        assert_eq!(c.connections.max_header_bytes, 16384);
        assert_eq!(c.connections.send_timeout, Duration::from_secs(30));
        assert_eq!(c.connections.shutdown_grace, Duration::from_secs(10));
        assert_eq!(c.connections.max_connections, None);
        assert_eq!(c.ops.log_format, LogFormat::Text);
        assert_eq!(c.ops.metrics_addr, None);
        assert!(c.ops.trusted_proxies.is_empty());
        assert_eq!(c.ops.drain, Duration::from_secs(2));
    }

    #[test]
    fn the_connection_cap_is_auto_or_a_count() {
        let c = parse(&["--max-connections", "500"]).unwrap();
        assert_eq!(c.connections.max_connections, Some(500));
        assert_eq!(
            parse(&["--max-connections", "auto"])
                .unwrap()
                .connections
                .max_connections,
            None
        );
        for bad in ["0", "lots", "-3"] {
            let message = error(&["--max-connections", bad]);
            assert!(
                message.contains("--max-connections") && message.contains("auto"),
                "{message}"
            );
        }
    }

    #[test]
    fn trusted_proxies_are_addresses_and_cidrs() {
        let c = parse(&["--trusted-proxies", "127.0.0.1, 10.0.0.0/8,::1"]).unwrap();
        let shown: Vec<String> = c
            .ops
            .trusted_proxies
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(shown, ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]);
        let message = error(&["--trusted-proxies", "10.0.0.0/8,proxy.local"]);
        assert!(
            message.contains("--trusted-proxies") && message.contains("CIDR"),
            "{message}"
        );
    }

    #[test]
    fn tls_needs_both_files() {
        let c = parse(&["--tls-cert", "/c.pem", "--tls-key", "/k.pem"]).unwrap();
        let tls = c.ops.tls.expect("TLS on");
        assert_eq!((tls.cert, tls.key), ("/c.pem".into(), "/k.pem".into()));
        assert!(parse(&[]).unwrap().ops.tls.is_none());
        let alone = error(&["--tls-cert", "/c.pem"]);
        assert!(alone.contains("--tls-key"), "{alone}");
        let alone = error(&["--tls-key", "/k.pem"]);
        assert!(alone.contains("--tls-cert"), "{alone}");
    }

    #[test]
    fn the_log_format_is_text_or_json() {
        let c = parse(&["--log-format", "JSON"]).unwrap();
        assert_eq!(c.ops.log_format, LogFormat::Json);
        let message = error(&["--log-format", "xml"]);
        assert!(message.contains("--log-format"), "{message}");
    }

    #[test]
    fn flags_set_their_own_value() {
        let c = parse(&[
            "--addr",
            "127.0.0.1:9",
            "--max-title-chars=7",
            "--retry-ms",
            "0",
        ])
        .unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:9");
        assert_eq!(c.limits.title_chars, 7);
        assert_eq!(c.limits.body_chars, 1000);
        assert_eq!(c.hub.retry, Duration::ZERO);
        let c = parse(&["--client-history-bytes", " 4096 "]).unwrap();
        assert_eq!(c.hub.client_history.bytes, 4096);
    }

    #[test]
    fn every_option_has_the_variable_named_after_its_flag() {
        for arg in command().get_arguments().filter(|a| a.get_long().is_some()) {
            let flag = arg.get_long().unwrap();
            if flag == "help" {
                continue;
            }
            let expected = format!("HERALD_{}", flag.replace('-', "_").to_uppercase());
            assert_eq!(arg.get_env(), Some(expected.as_ref()), "--{flag}");
        }
    }

    #[test]
    fn bad_values_are_reported_by_name() {
        assert!(error(&["--heartbeat-secs", "soon"]).contains("--heartbeat-secs"));
        let zero = error(&["--heartbeat-secs", "0"]);
        assert!(
            zero.contains("--heartbeat-secs") && zero.contains("at least 1"),
            "{zero}"
        );
        assert!(error(&["--nope", "1"]).contains("--nope"));
        assert!(error(&["--max-body-chars", "0"]).contains("--max-body-chars"));
        assert!(error(&["--retry-ms", "-1"]).contains("--retry-ms"));
        assert!(error(&["--addr", "localhost"]).contains("--addr"));
        assert!(error(&["--db"]).contains("--db"));
    }

    #[test]
    fn cors_origins_are_a_list_of_bare_origins() {
        assert!(parse(&[]).unwrap().cors_origins.is_empty());
        assert!(
            parse(&["--cors-origins", ""])
                .unwrap()
                .cors_origins
                .is_empty()
        );
        let trailing = parse(&["--cors-origins", "http://a.example.com,"]).unwrap();
        assert_eq!(trailing.cors_origins, ["http://a.example.com"]);
        let c = parse(&[
            "--cors-origins",
            "https://App.example.com, http://localhost:5173",
        ])
        .unwrap();
        assert_eq!(
            c.cors_origins,
            ["https://app.example.com", "http://localhost:5173"]
        );
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "*",
            "https://",
            "ftp://files.example.com",
            "https://a.example.com,http://b.example.com/",
        ] {
            let message = error(&["--cors-origins", bad]);
            assert!(
                message.contains("--cors-origins") && message.contains("is not an origin"),
                "{bad}: {message}"
            );
        }
    }

    #[test]
    fn the_token_flag_is_refused_without_echoing_the_token() {
        let message = error(&["--api-token", "hunter2-token"]);
        assert!(message.contains("HERALD_API_TOKEN"), "{message}");
        assert!(!message.contains("hunter2-token"), "{message}");
    }

    #[test]
    fn the_token_is_read_from_its_file_without_the_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "file-token-42\n").unwrap();
        let c = parse(&["--api-token-file", path.to_str().unwrap()]).unwrap();
        assert_eq!(c.api_token.as_deref(), Some("file-token-42"));
        std::fs::write(&path, "\n").unwrap();
        let empty = error(&["--api-token-file", path.to_str().unwrap()]);
        assert!(empty.contains("is empty"), "{empty}");
        let missing = dir.path().join("missing");
        let message = error(&["--api-token-file", missing.to_str().unwrap()]);
        assert!(
            message.contains("cannot read --api-token-file"),
            "{message}"
        );
        assert!(message.contains(missing.to_str().unwrap()), "{message}");
    }

    #[test]
    fn a_database_url_with_a_password_is_refused_as_a_flag_without_echoing_it() {
        let message = error(&["--database-url", "postgres://herald:sekrit-77@db/herald"]);
        assert!(message.contains("HERALD_DATABASE_URL"), "{message}");
        assert!(!message.contains("sekrit-77"), "{message}");
        let c = parse(&["--database-url", "postgres://herald@db/herald"]).unwrap();
        assert_eq!(
            c.database_url.as_deref(),
            Some("postgres://herald@db/herald")
        );
        let bad = error(&["--database-url", "mysql://x"]);
        assert!(bad.contains("--database-url"), "{bad}");
        assert!(!bad.contains("mysql://x"), "{bad}");
    }

    #[test]
    fn reuse_port_reads_the_usual_spellings_of_a_boolean() {
        assert!(!parse(&[]).unwrap().reuse_port);
        assert!(parse(&["--reuse-port", "1"]).unwrap().reuse_port);
        assert!(parse(&["--reuse-port=true"]).unwrap().reuse_port);
        assert!(!parse(&["--reuse-port", "off"]).unwrap().reuse_port);
        assert!(error(&["--reuse-port", "maybe"]).contains("--reuse-port"));
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let mut c = parse(&[]).unwrap();
        c.api_token = Some(Secret::from("debug-token-77"));
        c.database_url = Some(Secret::from("postgres://u:debug-password-78@h/d"));
        let shown = format!("{c:?}");
        assert!(!shown.contains("debug-token-77"), "{shown}");
        assert!(!shown.contains("debug-password-78"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }
}
