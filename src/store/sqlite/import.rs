use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Cached, SqliteStore};
use crate::hub::ClientId;
use crate::import::{Batch, ImportRecord, ImportStore, Reject, Status};
use crate::store::{StoreError, StoreResult};

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS imports (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id   TEXT NOT NULL,
    file_name   TEXT NOT NULL,
    header      TEXT NOT NULL,
    status      TEXT NOT NULL,
    live_rows   INTEGER NOT NULL,
    total_bytes INTEGER,
    bytes       INTEGER NOT NULL,
    rows        INTEGER NOT NULL,
    rejected    INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    message     TEXT
);
CREATE INDEX IF NOT EXISTS imports_client ON imports (client_id, id);
CREATE TABLE IF NOT EXISTS import_rows (
    import_id INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    cells     TEXT NOT NULL,
    PRIMARY KEY (import_id, n)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS import_rejects (
    import_id INTEGER NOT NULL,
    row       INTEGER NOT NULL,
    reason    TEXT NOT NULL,
    PRIMARY KEY (import_id, row)
) WITHOUT ROWID;
-- Runs at every start: an import cannot outlive the process that ran it.
UPDATE imports SET status = 'interrupted' WHERE status = 'running';
";

const COLUMNS: &str = "id, client_id, file_name, header, status, live_rows, total_bytes, bytes, \
                       rows, rejected, started_at, finished_at, message";

impl ImportStore for SqliteStore {
    fn begin_import(&self, r: &ImportRecord, keep: usize) -> StoreResult<i64> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        // Running imports are never dropped under their importer's feet.
        let old: Vec<i64> = tx
            .prepare(
                "SELECT id FROM imports WHERE status != 'running' AND (client_id = ?1
                   OR id NOT IN (SELECT id FROM imports WHERE client_id != ?1
                                 ORDER BY id DESC LIMIT ?2))",
            )?
            .query_map(params![r.client.to_string(), keep as i64 - 1], |row| {
                row.get(0)
            })?
            .collect::<Result<_, _>>()?;
        for id in old {
            tx.run("DELETE FROM import_rows WHERE import_id = ?1", params![id])?;
            tx.run(
                "DELETE FROM import_rejects WHERE import_id = ?1",
                params![id],
            )?;
            tx.run("DELETE FROM imports WHERE id = ?1", params![id])?;
        }
        tx.run(
            "INSERT INTO imports (client_id, file_name, header, status, live_rows, total_bytes,
                 bytes, rows, rejected, started_at, finished_at, message)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                r.client.to_string(),
                r.file_name,
                crate::import::pack_header(&r.header),
                r.status.as_str(),
                r.live_rows as i64,
                r.total_bytes.map(|b| b as i64),
                r.bytes as i64,
                r.rows as i64,
                r.rejected as i64,
                r.started_at,
                r.finished_at,
                r.message,
            ],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(id)
    }

    fn store_import_batch(&self, id: i64, batch: &Batch<'_>) -> StoreResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let exists = tx
            .row("SELECT 1 FROM imports WHERE id = ?1", params![id], |_| {
                Ok(())
            })
            .optional()?;
        if exists.is_none() {
            return Err(StoreError::new(format!("import {id} was removed")));
        }
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO import_rows (import_id, n, cells) VALUES (?1, ?2, ?3)",
            )?;
            for (i, cells) in batch.rows.iter().enumerate() {
                insert.execute(params![id, (batch.first + i as u64) as i64, cells])?;
            }
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO import_rejects (import_id, row, reason) VALUES (?1, ?2, ?3)",
            )?;
            for reject in batch.rejects {
                insert.execute(params![id, reject.row as i64, reject.reason])?;
            }
        }
        if let Some(p) = batch.progress {
            tx.run(
                "UPDATE imports SET bytes = ?2, rows = ?3, rejected = ?4 WHERE id = ?1",
                params![id, p.bytes as i64, p.rows as i64, p.rejected as i64],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn end_import(&self, r: &ImportRecord) -> StoreResult<()> {
        self.conn().run(
            "UPDATE imports SET status = ?2, bytes = ?3, rows = ?4, rejected = ?5,
                 finished_at = ?6, message = ?7 WHERE id = ?1",
            params![
                r.id,
                r.status.as_str(),
                r.bytes as i64,
                r.rows as i64,
                r.rejected as i64,
                r.finished_at,
                r.message,
            ],
        )?;
        Ok(())
    }

    fn latest_import(&self, client: ClientId) -> StoreResult<Option<ImportRecord>> {
        let conn = self.conn();
        latest(&conn, client)
    }

    fn import_rows(&self, id: i64, from: u64, limit: u64) -> StoreResult<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT cells FROM import_rows WHERE import_id = ?1 AND n >= ?2 ORDER BY n LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![id, from as i64, limit as i64], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn import_rejects(&self, id: i64) -> StoreResult<Vec<Reject>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT row, reason FROM import_rejects WHERE import_id = ?1 ORDER BY row",
        )?;
        let rows = stmt.query_map(params![id], |row| {
            Ok(Reject {
                row: row.get::<_, i64>(0)? as u64,
                reason: row.get(1)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn latest(conn: &Connection, client: ClientId) -> StoreResult<Option<ImportRecord>> {
    let sql =
        format!("SELECT {COLUMNS} FROM imports WHERE client_id = ?1 ORDER BY id DESC LIMIT 1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![client.to_string()], record)
        .optional()?)
}

fn record(row: &Row<'_>) -> rusqlite::Result<ImportRecord> {
    let client: String = row.get(1)?;
    let header: String = row.get(3)?;
    let status: String = row.get(4)?;
    Ok(ImportRecord {
        id: row.get(0)?,
        client: client.parse().map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
        })?,
        file_name: row.get(2)?,
        header: crate::import::unpack_header(&header),
        status: Status::parse(&status),
        live_rows: row.get::<_, i64>(5)? as u64,
        total_bytes: row.get::<_, Option<i64>>(6)?.map(|b| b as u64),
        bytes: row.get::<_, i64>(7)? as u64,
        rows: row.get::<_, i64>(8)? as u64,
        rejected: row.get::<_, i64>(9)? as u64,
        started_at: row.get(10)?,
        finished_at: row.get(11)?,
        message: row.get(12)?,
    })
}
