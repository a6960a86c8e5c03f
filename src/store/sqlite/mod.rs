//! The embedded default: one SQLite file in WAL mode.
//!
//! `synchronous=NORMAL` makes each commit durable against a crash or restart of Herald (the
//! case a reload after a deploy exercises) without an fsync per write; a power loss may lose the
//! last commits. One connection behind a mutex: writes serialise in SQLite anyway.
//!
//! The page cache is 64 KB rather than SQLite's 2 MB: when every page load added a tab binding,
//! the default cache filled with them and the process grew by 2 MB with uptime; the operating
//! system caches the file anyway, and a 1,000,000-row import runs as fast (BENCHMARKS.md).

mod board;
mod import;
mod jobs;
mod notify;
mod offers;
mod session;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, Params, Row};

use super::{ListStore, StoreError, StoreResult};

pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

/// Changes already run one at a time, under the hub's change lock (`crate::change`).
impl ListStore for SqliteStore {
    fn hold_list(&self, _region: &str) -> StoreResult<()> {
        Ok(())
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::new(e.to_string())
    }
}

/// Room in the statement cache for every statement the store runs (about 40).
const STATEMENTS: usize = 64;

/// `execute` and `query_row` through the statement cache: compiling the statement was 12% of a
/// board message's CPU on the runtime (perf, 1,000 streams × 50 messages/s), and the store's
/// statements are a few dozen fixed strings.
trait Cached {
    fn run(&self, sql: &str, params: impl Params) -> rusqlite::Result<usize>;
    fn row<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn run(&self, sql: &str, params: impl Params) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

impl SqliteStore {
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        let conn = Connection::open(path)
            .map_err(|e| StoreError::new(format!("cannot open {}: {e}", path.display())))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA busy_timeout = 5000;
             PRAGMA cache_size = -64;",
        )?;
        conn.set_prepared_statement_cache_capacity(STATEMENTS);
        for schema in [
            session::SCHEMA,
            board::SCHEMA,
            notify::SCHEMA,
            offers::SCHEMA,
            jobs::SCHEMA,
            import::SCHEMA,
        ] {
            conn.execute_batch(schema)?;
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll
        // back), so the connection stays usable.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
