//! Configuration as an operator meets it: the real `herald` binary's `--help`, its exit on a bad
//! value, flags over variables over defaults, the API token from the environment, and the
//! README's table, which must say what `src/config.rs` says.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use common::process::{Running, finish, herald};
use common::{Client, WAIT};
use hyper::{Method, StatusCode};

const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
const TABLE_START: &str = "<!-- configuration table: generated from src/config.rs by tests/config.rs; \
                           `UPDATE_README=1 cargo test --test config` rewrites it -->\n";
const TABLE_END: &str = "<!-- end of configuration table -->\n";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_lists_every_default_and_variable_but_no_variable_value() {
    let env = [
        ("HERALD_API_TOKEN", "help-token-31337"),
        ("HERALD_ADDR", "127.0.0.1:45999"),
    ];
    let out = finish(herald(&["--help"], &env));
    assert!(out.status.success(), "{out:?}");
    let help = text(&out.stdout);
    for expected in [
        "--addr <ADDR>",
        "[env: HERALD_ADDR]",
        "[default: 127.0.0.1:3000]",
        "--heartbeat-secs <SECS>",
        "[env: HERALD_HEARTBEAT_SECS] [default: 15]",
        "--api-token-file <PATH>",
        "HERALD_API_TOKEN",
    ] {
        assert!(
            help.contains(expected),
            "{expected:?} missing from:\n{help}"
        );
    }
    assert!(!help.contains("help-token-31337"), "{help}");
    assert!(!help.contains("45999"), "{help}");
}

#[test]
fn a_bad_variable_stops_herald_with_a_message_naming_the_option() {
    let out = finish(herald(&[], &[("HERALD_HEARTBEAT_SECS", "0")]));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let message = text(&out.stderr);
    assert!(message.contains("--heartbeat-secs"), "{message}");
    assert!(message.contains("at least 1"), "{message}");
}

#[test]
fn the_token_flag_is_refused_before_anything_starts() {
    let out = finish(herald(&["--api-token", "flag-token-8080"], &[]));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let message = text(&out.stderr);
    assert!(message.contains("HERALD_API_TOKEN"), "{message}");
    assert!(!message.contains("flag-token-8080"), "{message}");
}

/// Which address Herald tried shows in its "cannot listen" message, so two ports held by the
/// test tell the flag's value from the variable's, without a server running.
#[test]
fn a_flag_wins_over_its_variable_which_wins_over_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("herald.db");
    let db = db.to_str().unwrap();
    let by_env = TcpListener::bind("127.0.0.1:0").unwrap();
    let by_flag = TcpListener::bind("127.0.0.1:0").unwrap();
    let env_addr = by_env.local_addr().unwrap().to_string();
    let flag_addr = by_flag.local_addr().unwrap().to_string();
    let env = [("HERALD_ADDR", env_addr.as_str())];

    let out = finish(herald(&["--db", db, "--addr", &flag_addr], &env));
    let message = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{message}");
    assert!(
        message.contains(&format!("cannot listen on {flag_addr}")),
        "{message}"
    );

    let out = finish(herald(&["--db", db], &env));
    let message = text(&out.stderr);
    assert!(
        message.contains(&format!("cannot listen on {env_addr}")),
        "{message}"
    );
}

#[tokio::test]
async fn the_token_from_the_environment_guards_api_writes_and_is_never_logged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("herald.db");
    let addr: SocketAddr = {
        let free = TcpListener::bind("127.0.0.1:0").unwrap();
        free.local_addr().unwrap()
    };
    let token = "env-token-2718";
    let command = herald(
        &["--db", db.to_str().unwrap(), "--addr", &addr.to_string()],
        &[("HERALD_API_TOKEN", token), ("RUST_LOG", "debug")],
    );
    let server = Running::start(command);
    let deadline = Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "herald did not listen in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let client = Client::new(addr);
    let refused = client.get("/send?message=x").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let bearer = format!("Bearer {token}");
    let allowed = client
        .request(
            Method::GET,
            "/send?message=x",
            &[("authorization", &bearer)],
            "",
        )
        .await;
    assert_ne!(allowed.status, StatusCode::UNAUTHORIZED);

    let out = server.stop();
    let logs = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(logs.contains("listening"), "{logs}");
    assert!(!logs.contains(token), "{logs}");
}

/// The README's table, one row per option, from the same clap definitions as `--help`.
fn render_table() -> String {
    let mut table = String::from("| Flag | Variable | Default | Meaning |\n|---|---|---|---|\n");
    for arg in herald::config::command().get_arguments() {
        let Some(flag) = arg.get_long().filter(|flag| *flag != "help") else {
            continue;
        };
        // The one hidden option is the token, which no flag may carry.
        let flag = match arg.is_hide_set() {
            true => "(none)".to_string(),
            false => format!("`--{flag}`"),
        };
        let env = arg.get_env().expect("every option has a variable");
        let default = match arg.get_default_values() {
            [] => "(none)".to_string(),
            values => format!("`{}`", values[0].to_string_lossy()),
        };
        let help = arg.get_help().expect("every option has a meaning");
        let help = help.to_string().replace('\n', " ").replace('|', "\\|");
        table.push_str(&format!(
            "| {flag} | `{}` | {default} | {help} |\n",
            env.to_string_lossy()
        ));
    }
    table
}

#[test]
fn the_readme_table_matches_the_options() {
    let readme = std::fs::read_to_string(README).unwrap();
    let start = readme
        .find(TABLE_START)
        .expect("README has the table's start marker")
        + TABLE_START.len();
    let end = start
        + readme[start..]
            .find(TABLE_END)
            .expect("README has the table's end marker");
    let (current, expected) = (&readme[start..end], render_table());
    if current == expected {
        return;
    }
    if std::env::var_os("UPDATE_README").is_some() {
        let updated = format!("{}{expected}{}", &readme[..start], &readme[end..]);
        std::fs::write(README, updated).unwrap();
        return;
    }
    let diff = similar::TextDiff::from_lines(current, expected.as_str());
    panic!(
        "README.md's configuration table differs from src/config.rs \
         (UPDATE_README=1 cargo test --test config rewrites it):\n{}",
        diff.unified_diff().header("README.md", "src/config.rs")
    );
}
