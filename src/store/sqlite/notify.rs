use rusqlite::{Connection, params};

use super::{Cached, SqliteStore};
use crate::notify::{Kind, Notification, NotifyStore};
use crate::store::{StoreError, StoreResult};

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS notifications (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
";

impl NotifyStore for SqliteStore {
    fn add_notification(&self, n: &Notification, keep: usize) -> StoreResult<Vec<Notification>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.run(
            "INSERT INTO notifications (kind, title, body, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![n.kind.as_str(), n.title, n.body, n.created_at],
        )?;
        // Only the recent list is shown, so only it is kept.
        tx.run(
            "DELETE FROM notifications WHERE id NOT IN
                 (SELECT id FROM notifications ORDER BY id DESC LIMIT ?1)",
            params![keep as i64],
        )?;
        let recent = recent(&tx, keep)?;
        tx.commit()?;
        Ok(recent)
    }

    fn recent_notifications(&self, limit: usize) -> StoreResult<Vec<Notification>> {
        recent(&self.conn(), limit)
    }
}

fn recent(conn: &Connection, limit: usize) -> StoreResult<Vec<Notification>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, kind, title, body, created_at FROM notifications ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map(params![limit as i64], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, String>(3)?,
            row.get::<_, i64>(4)?,
        ))
    })?;
    rows.map(|row| {
        let (id, kind, title, body, created_at) = row?;
        let kind = Kind::parse(&kind)
            .ok_or_else(|| StoreError::new(format!("unknown notification type {kind:?}")))?;
        Ok(Notification {
            id,
            kind,
            title,
            body,
            created_at,
        })
    })
    .collect()
}
