use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Cached, SqliteStore};
use crate::offers::money::Money;
use crate::offers::{Created, Deleted, Offer, OfferInput, OffersStore};
use crate::store::{StoreError, StoreResult};

/// `seq` orders offers newest first; `id` is the public id, which a client may choose, so it
/// says nothing about age.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS offers (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          INTEGER NOT NULL UNIQUE,
    description TEXT NOT NULL,
    value_cents INTEGER NOT NULL CHECK (value_cents >= 0),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
-- The highest id ever stored, so a server-assigned id is never one a deleted offer had.
CREATE TABLE IF NOT EXISTS offer_ids (
    only INTEGER PRIMARY KEY CHECK (only = 1),
    high INTEGER NOT NULL
);
";

const COLUMNS: &str = "id, description, value_cents, created_at, updated_at";

impl OffersStore for SqliteStore {
    fn create_offer(&self, new: &OfferInput, at: i64, window: usize) -> StoreResult<Created> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if let Some(id) = new.id
            && let Some(existing) = by_id(&tx, id)?
        {
            return Ok(Created::Duplicate(existing));
        }
        let id = match new.id {
            Some(id) => id,
            None => tx.row(
                "SELECT COALESCE((SELECT high FROM offer_ids WHERE only = 1), 0) + 1",
                [],
                |r| r.get(0),
            )?,
        };
        tx.run(
            "INSERT INTO offer_ids (only, high) VALUES (1, ?1)
             ON CONFLICT (only) DO UPDATE SET high = MAX(high, excluded.high)",
            params![id],
        )?;
        tx.run(
            "INSERT INTO offers (id, description, value_cents, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?4)",
            params![id, new.description, new.value.cents(), at],
        )?;
        let offer = by_id(&tx, id)?.ok_or_else(|| StoreError::new("offer vanished"))?;
        // The offer pushed out of the newest `window` by this one.
        let evicted = nth_newest(&tx, window)?.map(|o| o.id);
        tx.commit()?;
        Ok(Created::New { offer, evicted })
    }

    fn update_offer(&self, id: i64, with: &OfferInput, at: i64) -> StoreResult<Option<Offer>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let changed = tx.run(
            "UPDATE offers SET description = ?2, value_cents = ?3, updated_at = ?4 WHERE id = ?1",
            params![id, with.description, with.value.cents(), at],
        )?;
        let offer = if changed == 0 { None } else { by_id(&tx, id)? };
        tx.commit()?;
        Ok(offer)
    }

    fn delete_offer(&self, id: i64, window: usize) -> StoreResult<Option<Deleted>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let Some(offer) = by_id(&tx, id)? else {
            return Ok(None);
        };
        let newer: i64 = tx.row(
            "SELECT COUNT(*) FROM offers WHERE seq > (SELECT seq FROM offers WHERE id = ?1)",
            params![id],
            |r| r.get(0),
        )?;
        tx.run("DELETE FROM offers WHERE id = ?1", params![id])?;
        // If the offer was shown, the next older one moves up into the last place.
        let backfill = if (newer as usize) < window && window > 0 {
            nth_newest(&tx, window - 1)?
        } else {
            None
        };
        tx.commit()?;
        Ok(Some(Deleted { offer, backfill }))
    }

    fn offers_page(&self, offset: usize, limit: usize) -> StoreResult<(Vec<Offer>, u64)> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM offers ORDER BY seq DESC LIMIT ?1 OFFSET ?2"
        ))?;
        let offers = stmt
            .query_map(params![limit as i64, offset as i64], offer)?
            .collect::<Result<Vec<_>, _>>()?;
        let total: i64 = conn.row("SELECT COUNT(*) FROM offers", [], |r| r.get(0))?;
        Ok((offers, total as u64))
    }
}

fn by_id(conn: &Connection, id: i64) -> StoreResult<Option<Offer>> {
    Ok(conn
        .row(
            &format!("SELECT {COLUMNS} FROM offers WHERE id = ?1"),
            params![id],
            offer,
        )
        .optional()?)
}

/// The offer at 0-based position `n` counting from the newest.
fn nth_newest(conn: &Connection, n: usize) -> StoreResult<Option<Offer>> {
    Ok(conn
        .row(
            &format!("SELECT {COLUMNS} FROM offers ORDER BY seq DESC LIMIT 1 OFFSET ?1"),
            params![n as i64],
            offer,
        )
        .optional()?)
}

fn offer(row: &Row<'_>) -> rusqlite::Result<Offer> {
    let cents: i64 = row.get(2)?;
    let value = Money::from_cents(cents).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            2,
            rusqlite::types::Type::Integer,
            e.message("value_cents").into(),
        )
    })?;
    Ok(Offer {
        id: row.get(0)?,
        description: row.get(1)?,
        value,
        created_at: row.get(3)?,
        updated_at: row.get(4)?,
    })
}
