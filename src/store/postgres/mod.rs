//! PostgreSQL, for any number of instances sharing one database (`HERALD_DATABASE_URL`).
//!
//! Every feature's store trait is implemented once, over [`Tx`]: one transaction on a pooled
//! connection. [`PgStore::run`] opens it, hands it to the caller as a `&dyn Store`, and commits
//! when the caller succeeds, so a feature's writes are stored together or not at all, exactly as
//! on SQLite. Statements are prepared once per connection.

mod board;
mod follow;
mod import;
mod jobs;
mod notify;
mod offers;
mod outbox;
mod pool;
mod presence;
mod schema;
mod session;

use std::cell::{RefCell, RefMut};
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use postgres::types::ToSql;
use postgres::{Row, Statement, Transaction};
use tokio_postgres::error::SqlState;

use super::{Store, StoreError, StoreResult};
pub use follow::{EventArchive, Signals, start as follow};
pub use pool::Health;
use pool::Pool;

/// Connections each instance opens at most (besides the one that listens for events).
const MAX_CONNECTIONS: usize = 8;
/// How long connecting may take when the URL does not say (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct PgStore {
    pool: Pool,
    /// The same settings for the follower's connection (tokio-postgres).
    async_config: tokio_postgres::Config,
    signals: Signals,
    target: Target,
    /// The database's identity: the epoch of every cursor (see `schema`).
    identity: i64,
    /// This instance, as it signs the jobs, imports and presence rows it owns.
    instance: i64,
}

/// Where the database is, for messages: hosts and database name, never the password.
#[derive(Debug, Clone)]
pub struct Target(String);

impl Target {
    pub fn of(config: &postgres::Config) -> Target {
        use tokio_postgres::config::Host;
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
            .map(|(host, port)| match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(path) => format!("{}:{port}", path.display()),
            })
            .collect();
        let hosts = if hosts.is_empty() {
            "localhost".to_string()
        } else {
            hosts.join(",")
        };
        let db = config
            .get_dbname()
            .or(config.get_user())
            .unwrap_or("postgres");
        Target(format!("database {db:?} on {hosts}"))
    }

    /// A driver error as a store error that names this database, telling an outage apart.
    pub fn error(&self, e: postgres::Error) -> StoreError {
        let message = format!("{self}: {}", describe(&e));
        if is_outage(&e) {
            StoreError::unavailable(message)
        } else {
            StoreError::new(message)
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A lost or refused connection, or a server shutting down: nothing the request did wrong.
fn is_outage(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(db) = e.as_db_error() {
        return [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
        ]
        .contains(db.code());
    }
    std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

/// The server's own message when it sent one (the driver's `Display` says only "db error").
fn describe(e: &postgres::Error) -> String {
    match (e.as_db_error(), std::error::Error::source(e)) {
        (Some(db), _) => db.to_string(),
        (None, Some(cause)) => format!("{e}: {cause}"),
        (None, None) => e.to_string(),
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        if is_outage(&e) {
            StoreError::unavailable(describe(&e))
        } else {
            StoreError::new(describe(&e))
        }
    }
}

impl PgStore {
    /// Connects, migrates the schema and returns the store; an unreachable database is an
    /// error naming its host and database (never the password).
    pub fn open(url: &str, instance: i64) -> StoreResult<PgStore> {
        let mut async_config: tokio_postgres::Config = url
            .parse()
            .map_err(|_| StoreError::new("the database URL cannot be read"))?;
        if async_config.get_connect_timeout().is_none() {
            async_config.connect_timeout(CONNECT_TIMEOUT);
        }
        if async_config.get_application_name().is_none() {
            async_config.application_name("herald");
        }
        let config = postgres::Config::from(async_config.clone());
        let target = Target::of(&config);
        let mut client = config.connect(postgres::NoTls).map_err(|e| {
            StoreError::new(format!("cannot connect to {target}: {}", describe(&e)))
        })?;
        let identity = schema::migrate(&mut client)
            .map_err(|e| StoreError::new(format!("cannot prepare {target}: {e}")))?;
        Ok(PgStore {
            pool: Pool::new(config, target.clone(), MAX_CONNECTIONS),
            async_config,
            signals: Signals::default(),
            target,
            identity,
            instance,
        })
    }

    pub fn identity(&self) -> i64 {
        self.identity
    }

    pub fn instance(&self) -> i64 {
        self.instance
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn async_config(&self) -> &tokio_postgres::Config {
        &self.async_config
    }

    pub fn signals(&self) -> &Signals {
        &self.signals
    }

    /// The event log's position now.
    pub fn log_position(&self) -> StoreResult<u64> {
        self.transaction(|tx| tx.log_position())
    }

    pub fn health(&self) -> &Health {
        &self.pool.health
    }

    /// Runs `f` in one transaction, committed when it returns `Ok`.
    pub fn run<T, E>(&self, f: impl FnOnce(&dyn Store) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        self.transaction(|tx| f(tx))
    }

    /// Runs `f` on one consistent snapshot of the database, and says which position of the
    /// event log that snapshot is at: every change up to it is visible, none after it.
    pub fn snapshot<T>(&self, f: impl FnOnce(&dyn Store) -> T) -> StoreResult<(T, u64)> {
        self.begin(true, |tx| {
            let at = tx.log_position()?;
            Ok((f(tx), at))
        })
    }

    /// Runs `f` in one transaction on a pooled connection; commits when it returns `Ok`.
    pub(crate) fn transaction<T, E>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        self.begin(false, f)
    }

    /// A read-write transaction, or (`snapshot`) a read-only one that sees one snapshot.
    fn begin<T, E>(&self, snapshot: bool, f: impl FnOnce(&Tx<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut f = Some(f);
        let mut retried = false;
        loop {
            if retried {
                self.pool.clear_idle();
            }
            let mut pooled = self.pool.get()?;
            let reused = pooled.reused();
            let conn = pooled.conn();
            let mut builder = conn.client.build_transaction();
            if snapshot {
                builder = builder
                    .isolation_level(postgres::IsolationLevel::RepeatableRead)
                    .read_only(true);
            }
            let tx = match builder.start() {
                Ok(tx) => tx,
                // A connection kept idle through a restart of the database is cut without
                // knowing it, and so are the others kept with it: they go, and a new one is
                // tried, once (nothing was sent but BEGIN).
                Err(e) if reused && !retried && is_outage(&e) => {
                    retried = true;
                    continue;
                }
                Err(e) => return Err(self.failed(e).into()),
            };
            let tx = Tx {
                inner: RefCell::new(Inner {
                    tx,
                    statements: &mut conn.statements,
                }),
                instance: self.instance,
            };
            let value = f.take().expect("runs once")(&tx)?;
            tx.inner
                .into_inner()
                .tx
                .commit()
                .map_err(|e| self.failed(e))?;
            self.pool.health.up();
            return Ok(value);
        }
    }

    fn failed(&self, e: postgres::Error) -> StoreError {
        let e = self.target.error(e);
        self.pool.health.down(&e);
        e
    }
}

/// One transaction: what the store traits are implemented on.
pub struct Tx<'a> {
    inner: RefCell<Inner<'a>>,
    /// The instance this runs on.
    instance: i64,
}

struct Inner<'a> {
    tx: Transaction<'a>,
    statements: &'a mut HashMap<String, Statement>,
}

type Params<'p> = [&'p (dyn ToSql + Sync)];

impl<'a> Tx<'a> {
    fn db(&self) -> RefMut<'_, Inner<'a>> {
        self.inner.borrow_mut()
    }

    pub fn query(&self, sql: &str, params: &Params<'_>) -> StoreResult<Vec<Row>> {
        let mut db = self.db();
        let statement = db.prepare(sql)?;
        Ok(db.tx.query(&statement, params)?)
    }

    pub fn query_opt(&self, sql: &str, params: &Params<'_>) -> StoreResult<Option<Row>> {
        let mut db = self.db();
        let statement = db.prepare(sql)?;
        Ok(db.tx.query_opt(&statement, params)?)
    }

    pub fn query_one(&self, sql: &str, params: &Params<'_>) -> StoreResult<Row> {
        let mut db = self.db();
        let statement = db.prepare(sql)?;
        Ok(db.tx.query_one(&statement, params)?)
    }

    pub fn execute(&self, sql: &str, params: &Params<'_>) -> StoreResult<u64> {
        let mut db = self.db();
        let statement = db.prepare(sql)?;
        Ok(db.tx.execute(&statement, params)?)
    }

    /// The transaction itself, for what the helpers above do not cover (COPY).
    fn raw(&self) -> RefMut<'_, Transaction<'a>> {
        RefMut::map(self.db(), |db| &mut db.tx)
    }
}

impl Inner<'_> {
    fn prepare(&mut self, sql: &str) -> StoreResult<Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.tx.prepare(sql)?;
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }
}

/// A stored count or size as the unsigned number the app uses.
fn unsigned(n: i64) -> u64 {
    n.max(0) as u64
}
