//! A small pool of blocking connections, and the database's health as the app reports it.
//!
//! Hand-written rather than r2d2: r2d2 runs reaper threads and brings four crates, while Herald
//! needs little: a bounded number of connections created on demand, a bounded wait for one, a
//! broken connection dropped instead of reused, and an outage logged once, not once per request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use postgres::{Client, NoTls, Statement};

use super::Target;
use crate::store::{StoreError, StoreResult};

/// How long a store call waits for a free connection before it gives up (503).
const CHECKOUT_WAIT: Duration = Duration::from_secs(5);

/// One pooled connection and the statements prepared on it.
pub struct Conn {
    pub client: Client,
    pub statements: HashMap<String, Statement>,
}

pub struct Pool {
    config: postgres::Config,
    target: Target,
    max: usize,
    state: Mutex<State>,
    freed: Condvar,
    pub health: Health,
}

struct State {
    idle: Vec<Conn>,
    open: usize,
}

impl Pool {
    pub fn new(config: postgres::Config, target: Target, max: usize) -> Pool {
        Pool {
            health: Health::new(target.clone()),
            config,
            target,
            max,
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        }
    }

    /// A connection: an idle one, a new one while fewer than `max` are open, or the next one
    /// given back within [`CHECKOUT_WAIT`].
    pub fn get(&self) -> StoreResult<Pooled<'_>> {
        let deadline = Instant::now() + CHECKOUT_WAIT;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            while let Some(conn) = state.idle.pop() {
                if !conn.client.is_closed() {
                    return Ok(Pooled {
                        pool: self,
                        conn: Some(conn),
                        reused: true,
                    });
                }
                state.open -= 1;
            }
            if state.open < self.max {
                state.open += 1;
                drop(state);
                return match self.connect() {
                    Ok(conn) => Ok(Pooled {
                        pool: self,
                        conn: Some(conn),
                        reused: false,
                    }),
                    Err(e) => {
                        self.release(None);
                        Err(e)
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::unavailable(format!(
                    "no free connection to {} within {CHECKOUT_WAIT:?}",
                    self.target
                )));
            }
            state = self
                .freed
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn connect(&self) -> StoreResult<Conn> {
        match self.config.connect(NoTls) {
            Ok(client) => {
                self.health.up();
                Ok(Conn {
                    client,
                    statements: HashMap::new(),
                })
            }
            Err(e) => {
                let e = self.target.error(e);
                self.health.down(&e);
                Err(e)
            }
        }
    }

    /// Drops every idle connection (the database restarted: they are all cut).
    pub fn clear_idle(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let idle = std::mem::take(&mut state.idle);
        state.open -= idle.len();
        drop(state);
        // Closing a cut connection fails at once; it blocks nothing.
        drop(idle);
        self.freed.notify_all();
    }

    /// Gives a connection back (`None`: it was lost) and wakes one waiting caller.
    fn release(&self, conn: Option<Conn>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match conn {
            Some(conn) if !conn.client.is_closed() => state.idle.push(conn),
            _ => state.open -= 1,
        }
        drop(state);
        self.freed.notify_one();
    }
}

impl Drop for Pool {
    /// Closing a blocking connection blocks, which must not happen on the async runtime's
    /// threads (the last handle on the store may go anywhere): it happens on a thread of its own.
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        let idle = std::mem::take(&mut state.idle);
        if !idle.is_empty() {
            std::thread::spawn(move || drop(idle));
        }
    }
}

/// A checked-out connection; given back when dropped.
pub struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
    /// Kept idle before, rather than made for this call.
    reused: bool,
}

impl Pooled<'_> {
    pub fn reused(&self) -> bool {
        self.reused
    }

    pub fn conn(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("held until dropped")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        self.pool.release(self.conn.take());
    }
}

/// Whether the database answers, logged when that changes rather than at every failure.
pub struct Health {
    target: Target,
    down: AtomicBool,
}

impl Health {
    fn new(target: Target) -> Health {
        Health {
            target,
            down: AtomicBool::new(false),
        }
    }

    /// Records a failure; the first one of an outage is logged.
    pub fn down(&self, e: &StoreError) {
        if e.is_unavailable() && !self.down.swap(true, Ordering::Relaxed) {
            tracing::error!(database = %self.target, error = %e,
                "the database is unreachable: writes answer 503 until it is back");
        }
    }

    pub fn up(&self) {
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::info!(database = %self.target, "the database is reachable again");
        }
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }
}
