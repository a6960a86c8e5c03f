//! The shipped systemd unit (`docs/deploy/herald.service`), checked by systemd's own
//! `systemd-analyze` and against Herald's configuration. (`docs/deploy/nginx.conf` runs in a
//! real nginx in the browser suite, `tests/browser/nginx.rs`.)

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use herald::config::Config;

const UNIT: &str = include_str!("../docs/deploy/herald.service");
const ANALYZE: &str = "/usr/bin/systemd-analyze";

/// The values of `Key=` lines in the unit, in order.
fn values<'a>(key: &str) -> Vec<&'a str> {
    let prefix = format!("{key}=");
    UNIT.lines()
        .filter_map(|line| line.strip_prefix(prefix.as_str()))
        .collect()
}

fn seconds(value: &str) -> u64 {
    value
        .trim_end_matches('s')
        .parse()
        .unwrap_or_else(|_| panic!("{value:?} is not whole seconds"))
}

#[test]
fn systemd_finds_nothing_wrong_with_the_unit_and_its_hardening() {
    if !Path::new(ANALYZE).exists() {
        // tests/run installs systemd, so CI always runs this; a bare `cargo test` may not.
        eprintln!("skipped: {ANALYZE} is missing (apt-get install -y systemd)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("herald.service");
    // The unit as installed, with the binary this build made where it expects the binary.
    let ours = UNIT.replace("/usr/local/bin/herald", env!("CARGO_BIN_EXE_herald"));
    assert_ne!(ours, UNIT, "ExecStart names /usr/local/bin/herald");
    std::fs::write(&unit, ours).unwrap();

    let verify = Command::new(ANALYZE)
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success(), "systemd-analyze verify: {said}");
    // systemd reports bad values and unknown keys as warnings, and exits 0 all the same.
    let about_it: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("herald.service"))
        .collect();
    assert!(about_it.is_empty(), "systemd-analyze verify: {about_it:#?}");

    let security = Command::new(ANALYZE)
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for herald.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|level| level.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    assert!(
        exposure <= 2.0,
        "exposure {exposure} (systemd calls up to 2 OK):\n{report}"
    );
}

#[test]
fn the_unit_stops_herald_the_way_herald_stops() {
    assert_eq!(
        values("KillSignal"),
        ["SIGTERM"],
        "SIGTERM drains, then closes streams"
    );
    let defaults = Config::from_args_without_env(["herald"]).unwrap();
    let stop = Duration::from_secs(seconds(values("TimeoutStopSec")[0]));
    let drain_and_grace = defaults.ops.drain + defaults.connections.shutdown_grace;
    assert!(
        stop > drain_and_grace + Duration::from_secs(5),
        "TimeoutStopSec {stop:?} must outlast the drain and grace {drain_and_grace:?}"
    );
    let files: u64 = values("LimitNOFILE")[0].parse().unwrap();
    assert!(files >= 65536, "one descriptor per stream: {files}");
}

#[test]
fn the_unit_keeps_the_database_in_its_state_directory_and_herald_reads_its_settings() {
    assert_eq!(values("StateDirectory"), ["herald"]);
    assert_eq!(
        values("ProtectSystem"),
        ["strict"],
        "read-only but for the state directory"
    );
    // Every HERALD_* the unit sets is an option Herald knows, with a value it accepts.
    let mut args = vec!["herald".to_string()];
    for setting in values("Environment") {
        let (name, value) = setting.split_once('=').expect("NAME=value");
        let flag = name
            .strip_prefix("HERALD_")
            .unwrap_or_else(|| panic!("{name} is not a Herald setting"))
            .to_lowercase()
            .replace('_', "-");
        args.push(format!("--{flag}={value}"));
    }
    let config = Config::from_args_without_env(&args)
        .unwrap_or_else(|e| panic!("the unit's settings {args:?}: {e}"));
    assert_eq!(config.db, Path::new("/var/lib/herald/herald.db"));
    assert!(config.addr.ip().is_loopback(), "behind nginx, on loopback");
    assert!(!config.ops.trusted_proxies.is_empty(), "nginx is believed");
}
