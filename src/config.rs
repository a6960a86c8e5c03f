//! Configuration, read once at start-up into typed values: `--flag value` wins over
//! `HERALD_FLAG`, which wins over the default.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::hub::{HubConfig, Limits};

#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub db: PathBuf,
    /// When set, JSON API writes must carry `Authorization: Bearer <token>`.
    pub api_token: Option<String>,
    /// How many background jobs run at once; the others wait in line.
    pub job_concurrency: usize,
    pub limits: InputLimits,
    pub import: ImportLimits,
    pub hub: HubConfig,
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

/// Bounds on what users may send, each reported with a clear 4xx when exceeded.
#[derive(Debug, Clone, Copy)]
pub struct InputLimits {
    pub request_bytes: usize,
    pub message_chars: usize,
    pub title_chars: usize,
    pub body_chars: usize,
    pub description_chars: usize,
}

/// (flag, default, meaning). The environment variable is `HERALD_` + the flag in upper snake case.
const OPTIONS: &[(&str, &str, &str)] = &[
    ("addr", "127.0.0.1:3000", "address to listen on"),
    ("db", "./herald.db", "SQLite database file"),
    (
        "api-token",
        "",
        "bearer token required for JSON API writes (empty: none)",
    ),
    ("job-concurrency", "2", "background jobs that run at once"),
    ("max-request-bytes", "65536", "largest form or JSON body"),
    ("max-message-chars", "500", "longest board message"),
    ("max-title-chars", "100", "longest notification title"),
    ("max-body-chars", "1000", "longest notification body"),
    ("max-description-chars", "200", "longest offer description"),
    (
        "max-upload-bytes",
        "104857600",
        "largest CSV file an import accepts",
    ),
    ("max-import-rows", "2000000", "most rows one import accepts"),
    ("max-import-columns", "100", "most columns a CSV may have"),
    ("max-field-chars", "1000", "longest CSV field"),
    ("max-mock-rows", "1000000", "most rows GET /csv generates"),
    (
        "import-live-rows",
        "100",
        "rows streamed one by one into the import table",
    ),
    (
        "import-row-delay-ms",
        "0",
        "pause after each live import row (for demos)",
    ),
    ("import-keep", "10", "imports kept in the database"),
    (
        "heartbeat-secs",
        "15",
        "seconds between heartbeats on each stream",
    ),
    ("retry-ms", "2000", "reconnect delay sent to browsers"),
    (
        "history-messages",
        "4096",
        "broadcast messages kept for replay",
    ),
    (
        "history-bytes",
        "8388608",
        "bytes of broadcast messages kept for replay",
    ),
    (
        "client-history-messages",
        "1024",
        "private messages kept per tab",
    ),
    (
        "client-history-bytes",
        "2097152",
        "bytes of private messages kept per tab",
    ),
    (
        "client-idle-secs",
        "600",
        "how long a closed tab's private history is kept",
    ),
];

#[derive(Debug, PartialEq)]
pub enum ConfigError {
    Help(String),
    Invalid(String),
}

impl Config {
    pub fn from_env_and_args() -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Config::parse(std::env::args().skip(1), &env)
    }

    pub fn parse(
        args: impl IntoIterator<Item = String>,
        env: &HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let flags = parse_flags(args)?;
        let raw = |name: &str| -> String {
            flags
                .get(name)
                .cloned()
                .or_else(|| env.get(&env_name(name)).cloned())
                .unwrap_or_else(|| default(name).to_string())
        };
        let num = |name: &str| -> Result<u64, ConfigError> {
            let value = raw(name);
            value.trim().parse::<u64>().map_err(|_| {
                ConfigError::Invalid(format!(
                    "--{name} (or {}) must be a whole number, got {value:?}",
                    env_name(name)
                ))
            })
        };
        let size = |name: &str| -> Result<usize, ConfigError> {
            match num(name)? {
                0 => Err(ConfigError::Invalid(format!("--{name} must be at least 1"))),
                n => Ok(n as usize),
            }
        };
        let addr_text = raw("addr");
        let addr = addr_text
            .parse()
            .map_err(|_| ConfigError::Invalid(format!("--addr: not an address: {addr_text:?}")))?;
        let token = raw("api-token");
        Ok(Config {
            addr,
            db: PathBuf::from(raw("db")),
            api_token: (!token.is_empty()).then_some(token),
            job_concurrency: size("job-concurrency")?,
            limits: InputLimits {
                request_bytes: size("max-request-bytes")?,
                message_chars: size("max-message-chars")?,
                title_chars: size("max-title-chars")?,
                body_chars: size("max-body-chars")?,
                description_chars: size("max-description-chars")?,
            },
            import: ImportLimits {
                max_upload_bytes: size("max-upload-bytes")? as u64,
                max_rows: size("max-import-rows")? as u64,
                max_columns: size("max-import-columns")?,
                max_field_chars: size("max-field-chars")?,
                max_mock_rows: size("max-mock-rows")? as u64,
                live_rows: size("import-live-rows")? as u64,
                row_delay: Duration::from_millis(num("import-row-delay-ms")?),
                keep: size("import-keep")?,
            },
            hub: HubConfig {
                history: Limits {
                    messages: size("history-messages")?,
                    bytes: size("history-bytes")?,
                },
                client_history: Limits {
                    messages: size("client-history-messages")?,
                    bytes: size("client-history-bytes")?,
                },
                heartbeat: Duration::from_secs(size("heartbeat-secs")? as u64),
                retry: Duration::from_millis(num("retry-ms")?),
                client_idle: Duration::from_secs(num("client-idle-secs")?),
            },
        })
    }
}

fn default(name: &str) -> &'static str {
    OPTIONS.iter().find(|o| o.0 == name).map_or("", |o| o.1)
}

fn env_name(flag: &str) -> String {
    format!("HERALD_{}", flag.replace('-', "_").to_uppercase())
}

fn parse_flags(
    args: impl IntoIterator<Item = String>,
) -> Result<HashMap<String, String>, ConfigError> {
    let mut flags = HashMap::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--help" || arg == "-h" {
            return Err(ConfigError::Help(help()));
        }
        let Some(flag) = arg.strip_prefix("--") else {
            return Err(ConfigError::Invalid(format!(
                "unexpected argument {arg:?}; see --help"
            )));
        };
        let (name, value) = match flag.split_once('=') {
            Some((name, value)) => (name.to_string(), value.to_string()),
            None => {
                let value = args
                    .next()
                    .ok_or_else(|| ConfigError::Invalid(format!("--{flag} needs a value")))?;
                (flag.to_string(), value)
            }
        };
        if !OPTIONS.iter().any(|o| o.0 == name) {
            return Err(ConfigError::Invalid(format!(
                "unknown option --{name}; see --help"
            )));
        }
        flags.insert(name, value);
    }
    Ok(flags)
}

fn help() -> String {
    let mut out = String::from("herald: live server-rendered HTML over SSE\n\nOptions:\n");
    for (name, default, meaning) in OPTIONS {
        out.push_str(&format!(
            "  --{name:<26} {meaning} [env {}, default {default:?}]\n",
            env_name(name)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_apply_without_flags_or_env() {
        let c = Config::parse(args(&[]), &HashMap::new()).unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:3000");
        assert_eq!(c.db, PathBuf::from("./herald.db"));
        assert_eq!(c.api_token, None);
        assert_eq!(c.hub.heartbeat, Duration::from_secs(15));
        assert_eq!(c.job_concurrency, 2);
    }

    #[test]
    fn flags_win_over_environment() {
        let env = HashMap::from([
            ("HERALD_ADDR".to_string(), "0.0.0.0:8000".to_string()),
            ("HERALD_DB".to_string(), "/tmp/env.db".to_string()),
            ("HERALD_API_TOKEN".to_string(), "s3cret".to_string()),
        ]);
        let c = Config::parse(args(&["--addr", "127.0.0.1:9"]), &env).unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:9");
        assert_eq!(c.db, PathBuf::from("/tmp/env.db"));
        assert_eq!(c.api_token.as_deref(), Some("s3cret"));
        let c = Config::parse(args(&["--max-title-chars=7"]), &env).unwrap();
        assert_eq!(c.limits.title_chars, 7);
        let env = HashMap::from([("HERALD_JOB_CONCURRENCY".to_string(), "3".to_string())]);
        assert_eq!(Config::parse(args(&[]), &env).unwrap().job_concurrency, 3);
    }

    #[test]
    fn bad_values_are_reported_by_name() {
        let err = Config::parse(args(&["--heartbeat-secs", "soon"]), &HashMap::new()).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid(m) if m.contains("--heartbeat-secs")));
        let err = Config::parse(args(&["--nope", "1"]), &HashMap::new()).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid(m) if m.contains("--nope")));
        let err = Config::parse(args(&["--max-body-chars", "0"]), &HashMap::new()).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid(_)));
    }
}
