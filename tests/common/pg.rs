//! A private PostgreSQL cluster for one test binary, and a fresh database per test.
//!
//! The cluster is made on first use with Debian's `initdb` and `pg_ctl` in a temporary
//! directory, listening only on a socket in that directory (a TCP port could be taken between
//! choosing it and binding it, by the tests' own servers), with durability off (tests never
//! survive a power loss). PostgreSQL refuses to run as root, so as
//! root it runs as the `postgres` user. A watchdog process stops the cluster and removes the
//! directory when the test binary exits, however it exits.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Cluster {
    pub dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
    as_postgres: bool,
}

/// Whether the HTTP tests run against PostgreSQL (`HERALD_TEST_STORE=postgres`, as `tests/run`
/// does in its second pass) rather than SQLite.
pub fn selected() -> bool {
    std::env::var("HERALD_TEST_STORE").is_ok_and(|s| s == "postgres")
}

pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(Cluster::start)
}

/// Runs SQL on a database of the cluster (as its superuser), returning the first column of
/// each row as text.
pub async fn sql(url: &str, query: &str) -> Vec<String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test cluster");
    let driver = tokio::spawn(connection);
    let rows = client
        .simple_query(query)
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"));
    drop(client);
    let _ = driver.await;
    rows.into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => {
                Some(row.get(0).unwrap_or("").to_string())
            }
            _ => None,
        })
        .collect()
}

/// A new, empty database in the cluster; its connection string.
pub async fn fresh_database() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let cluster = cluster();
    let name = format!(
        "herald_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let (client, connection) =
        tokio_postgres::connect(&cluster.url("postgres"), tokio_postgres::NoTls)
            .await
            .expect("connect to the test cluster");
    let driver = tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a test database");
    drop(client);
    let _ = driver.await;
    cluster.url(&name)
}

impl Cluster {
    fn start() -> Cluster {
        let bin = find_bin();
        let as_postgres = running_as_root();
        let dir = tempfile::Builder::new()
            .prefix("herald-pg-")
            .tempdir()
            .expect("temp dir")
            .keep();
        // Only names the socket, which lives in the cluster's own directory.
        let port = 5432;
        let cluster = Cluster {
            dir,
            port,
            bin,
            as_postgres,
        };
        if as_postgres {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&cluster.dir));
        }
        cluster.watchdog();
        let data = cluster.dir.join("data");
        run(cluster
            .tool("initdb")
            .args([
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--no-sync",
            ])
            .arg("--pgdata")
            .arg(&data));
        cluster.pg_ctl("start");
        cluster
    }

    /// The connection string of database `name`, through the socket.
    pub fn url(&self, name: &str) -> String {
        format!(
            "host={} port={} user=postgres dbname={name}",
            self.dir.display(),
            self.port
        )
    }

    /// `pg_ctl start` or `stop` (fast: open sessions are cut, as in an outage), waiting for it.
    pub fn pg_ctl(&self, action: &str) {
        let mode = if action == "stop" { "fast" } else { "smart" };
        let options = format!(
            "-p {} -k {} -c listen_addresses= -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let mut command = self.tool("pg_ctl");
        command
            .arg("--pgdata")
            .arg(self.dir.join("data"))
            .arg("--log")
            .arg(self.dir.join("log"))
            .args(["--wait", "-m", mode, "-o", &options, action]);
        if let Err(e) = try_run(&mut command) {
            let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
            panic!("{e}\nserver log:\n{log}");
        }
    }

    /// Runs a PostgreSQL program as the user the cluster belongs to.
    fn tool(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    /// Stops the cluster and removes its directory once this process has exited.
    // Never waited for: it must outlive this process.
    #[allow(clippy::zombie_processes)]
    fn watchdog(&self) {
        let stop = format!(
            "{} '{}' --pgdata '{}' stop -m immediate",
            if self.as_postgres {
                "runuser -u postgres --"
            } else {
                ""
            },
            self.bin.join("pg_ctl").display(),
            self.dir.join("data").display()
        );
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; \
             rm -rf '{dir}'",
            pid = std::process::id(),
            dir = self.dir.display()
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the cluster's watchdog");
    }
}

/// Debian keeps PostgreSQL's programs in /usr/lib/postgresql/<version>/bin, off the PATH.
fn find_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(Path::file_name)
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions
        .pop()
        .expect("PostgreSQL's initdb and pg_ctl (tests/run installs Debian's postgresql)")
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

fn run(command: &mut Command) {
    if let Err(e) = try_run(command) {
        panic!("{e}");
    }
}

fn try_run(command: &mut Command) -> Result<(), String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}
