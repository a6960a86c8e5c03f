use postgres::Row;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;

use super::{Tx, unsigned};
use crate::hub::ClientId;
use crate::import::{Batch, ImportRecord, ImportStore, Reject, Status};
use crate::store::{StoreError, StoreResult};

const COLUMNS: &str = "id, client_id, file_name, header, status, live_rows, total_bytes, bytes, \
                       rows, rejected, started_at, finished_at, message";

impl ImportStore for Tx<'_> {
    fn begin_import(&self, r: &ImportRecord, keep: usize) -> StoreResult<i64> {
        // Running imports are never dropped under their importer's feet.
        let old: Vec<i64> = self
            .query(
                "SELECT id FROM imports WHERE status != 'running' AND (client_id = $1
                   OR id NOT IN (SELECT id FROM imports WHERE client_id != $1
                                 ORDER BY id DESC LIMIT $2))",
                &[&r.client.0, &(keep as i64 - 1)],
            )?
            .iter()
            .map(|row| row.get(0))
            .collect();
        if !old.is_empty() {
            self.execute("DELETE FROM import_rows WHERE import_id = ANY($1)", &[&old])?;
            self.execute(
                "DELETE FROM import_rejects WHERE import_id = ANY($1)",
                &[&old],
            )?;
            self.execute("DELETE FROM imports WHERE id = ANY($1)", &[&old])?;
        }
        Ok(self
            .query_one(
                "INSERT INTO imports (client_id, instance, file_name, header, status, live_rows,
                     total_bytes, bytes, rows, rejected, started_at, finished_at, message)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
                &[
                    &r.client.0,
                    &self.instance,
                    &r.file_name,
                    &crate::import::pack_header(&r.header),
                    &r.status.as_str(),
                    &(r.live_rows as i64),
                    &r.total_bytes.map(|b| b as i64),
                    &(r.bytes as i64),
                    &(r.rows as i64),
                    &(r.rejected as i64),
                    &r.started_at,
                    &r.finished_at,
                    &r.message,
                ],
            )?
            .get(0))
    }

    /// The rows go in with one binary `COPY`, not an insert each.
    fn store_import_batch(&self, id: i64, batch: &Batch<'_>) -> StoreResult<()> {
        if self
            .query_opt("SELECT 1 FROM imports WHERE id = $1", &[&id])?
            .is_none()
        {
            return Err(StoreError::new(format!("import {id} was removed")));
        }
        if !batch.rows.is_empty() {
            let mut tx = self.raw();
            let copy = tx.copy_in("COPY import_rows (import_id, n, cells) FROM STDIN BINARY")?;
            let mut writer = BinaryCopyInWriter::new(copy, &[Type::INT8, Type::INT8, Type::TEXT]);
            for (i, cells) in batch.rows.iter().enumerate() {
                let n = (batch.first + i as u64) as i64;
                writer.write(&[&id, &n, cells])?;
            }
            writer.finish()?;
        }
        for reject in batch.rejects {
            self.execute(
                "INSERT INTO import_rejects (import_id, row, reason) VALUES ($1, $2, $3)
                 ON CONFLICT (import_id, row) DO UPDATE SET reason = excluded.reason",
                &[&id, &(reject.row as i64), &reject.reason],
            )?;
        }
        if let Some(p) = batch.progress {
            self.execute(
                "UPDATE imports SET bytes = $2, rows = $3, rejected = $4 WHERE id = $1",
                &[
                    &id,
                    &(p.bytes as i64),
                    &(p.rows as i64),
                    &(p.rejected as i64),
                ],
            )?;
        }
        Ok(())
    }

    fn end_import(&self, r: &ImportRecord) -> StoreResult<()> {
        self.execute(
            "UPDATE imports SET status = $2, bytes = $3, rows = $4, rejected = $5,
                 finished_at = $6, message = $7 WHERE id = $1",
            &[
                &r.id,
                &r.status.as_str(),
                &(r.bytes as i64),
                &(r.rows as i64),
                &(r.rejected as i64),
                &r.finished_at,
                &r.message,
            ],
        )?;
        Ok(())
    }

    fn latest_import(&self, client: ClientId) -> StoreResult<Option<ImportRecord>> {
        self.query_opt(
            &format!("SELECT {COLUMNS} FROM imports WHERE client_id = $1 ORDER BY id DESC LIMIT 1"),
            &[&client.0],
        )?
        .map(|row| record(&row))
        .transpose()
    }

    fn import_rows(&self, id: i64, from: u64, limit: u64) -> StoreResult<Vec<String>> {
        Ok(self
            .query(
                "SELECT cells FROM import_rows WHERE import_id = $1 AND n >= $2 ORDER BY n
                 LIMIT $3",
                &[&id, &(from as i64), &(limit as i64)],
            )?
            .iter()
            .map(|row| row.get(0))
            .collect())
    }

    fn import_rejects(&self, id: i64) -> StoreResult<Vec<Reject>> {
        Ok(self
            .query(
                "SELECT row, reason FROM import_rejects WHERE import_id = $1 ORDER BY row",
                &[&id],
            )?
            .iter()
            .map(|row| Reject {
                row: unsigned(row.get(0)),
                reason: row.get(1),
            })
            .collect())
    }
}

fn record(row: &Row) -> StoreResult<ImportRecord> {
    let header: String = row.get(3);
    let status: String = row.get(4);
    Ok(ImportRecord {
        id: row.get(0),
        client: ClientId(row.get(1)),
        file_name: row.get(2),
        header: crate::import::unpack_header(&header),
        status: Status::parse(&status),
        live_rows: unsigned(row.get(5)),
        total_bytes: row.get::<_, Option<i64>>(6).map(unsigned),
        bytes: unsigned(row.get(7)),
        rows: unsigned(row.get(8)),
        rejected: unsigned(row.get(9)),
        started_at: row.get(10),
        finished_at: row.get(11),
        message: row.get(12),
    })
}
