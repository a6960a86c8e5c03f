use rusqlite::{OptionalExtension, params};
use uuid::Uuid;

use super::{Cached, SqliteStore};
use crate::hub::ClientId;
use crate::store::StoreResult;
use crate::web::session::SessionStore;

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS clients (
    client_id  TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    last_seen  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS clients_last_seen ON clients (last_seen);
CREATE TABLE IF NOT EXISTS secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
";

/// A binding is re-stamped at most this often, so reconnects rarely write.
const TOUCH_EVERY_SECS: i64 = 3600;

impl SessionStore for SqliteStore {
    fn claim_client(&self, client: ClientId, session: Uuid, now: i64) -> StoreResult<Uuid> {
        let conn = self.conn();
        let id = client.to_string();
        conn.run(
            "INSERT OR IGNORE INTO clients (client_id, session_id, last_seen) VALUES (?1, ?2, ?3)",
            params![id, session.to_string(), now],
        )?;
        let (owner, last_seen): (String, i64) = conn
            .row(
                "SELECT session_id, last_seen FROM clients WHERE client_id = ?1",
                params![id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?
            .ok_or_else(|| crate::store::StoreError::new("client binding vanished"))?;
        let owner = Uuid::parse_str(&owner)
            .map_err(|e| crate::store::StoreError::new(format!("bad session id stored: {e}")))?;
        if owner == session && now - last_seen > TOUCH_EVERY_SECS {
            conn.run(
                "UPDATE clients SET last_seen = ?2 WHERE client_id = ?1",
                params![id, now],
            )?;
        }
        Ok(owner)
    }

    fn tab_key(&self, fresh: &[u8]) -> StoreResult<Vec<u8>> {
        let conn = self.conn();
        conn.run(
            "INSERT OR IGNORE INTO secrets (name, value) VALUES ('tab_key', ?1)",
            params![fresh],
        )?;
        Ok(conn.row(
            "SELECT value FROM secrets WHERE name = 'tab_key'",
            [],
            |row| row.get(0),
        )?)
    }

    fn forget_clients_before(&self, cutoff: i64) -> StoreResult<usize> {
        Ok(self
            .conn()
            .run("DELETE FROM clients WHERE last_seen < ?1", params![cutoff])?)
    }
}
