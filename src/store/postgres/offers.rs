use postgres::Row;

use super::Tx;
use crate::offers::money::Money;
use crate::offers::{Created, Deleted, Offer, OfferInput, OffersStore};
use crate::store::{StoreError, StoreResult};

const COLUMNS: &str = "id, description, value_cents, created_at, updated_at";

impl OffersStore for Tx<'_> {
    /// Safe against another instance creating at the same moment: a chosen id is inserted with
    /// `ON CONFLICT DO NOTHING` (the loser sees the winner's offer: 409), and a new id comes from
    /// incrementing `offer_ids` under its row lock.
    fn create_offer(&self, new: &OfferInput, at: i64, window: usize) -> StoreResult<Created> {
        let id: i64 = match new.id {
            Some(id) => {
                self.execute(
                    "INSERT INTO offer_ids (one, high) VALUES (1, $1)
                     ON CONFLICT (one) DO UPDATE SET high = GREATEST(offer_ids.high, excluded.high)",
                    &[&id],
                )?;
                id
            }
            None => self
                .query_one(
                    "INSERT INTO offer_ids (one, high) VALUES (1, 1)
                     ON CONFLICT (one) DO UPDATE SET high = offer_ids.high + 1
                     RETURNING high",
                    &[],
                )?
                .get(0),
        };
        let inserted = self.query_opt(
            &format!(
                "INSERT INTO offers (id, description, value_cents, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $4) ON CONFLICT (id) DO NOTHING RETURNING {COLUMNS}"
            ),
            &[&id, &new.description, &new.value.cents(), &at],
        )?;
        let Some(row) = inserted else {
            let existing = self
                .by_id(id)?
                .ok_or_else(|| StoreError::new("duplicate offer vanished"))?;
            return Ok(Created::Duplicate(existing));
        };
        let offer = offer(&row)?;
        // The offer pushed out of the newest `window` by this one.
        let evicted = self.nth_newest(window)?.map(|o| o.id);
        Ok(Created::New { offer, evicted })
    }

    fn update_offer(&self, id: i64, with: &OfferInput, at: i64) -> StoreResult<Option<Offer>> {
        self.query_opt(
            &format!(
                "UPDATE offers SET description = $2, value_cents = $3, updated_at = $4
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[&id, &with.description, &with.value.cents(), &at],
        )?
        .map(|row| offer(&row))
        .transpose()
    }

    fn delete_offer(&self, id: i64, window: usize) -> StoreResult<Option<Deleted>> {
        let Some(row) = self.query_opt(
            &format!("DELETE FROM offers WHERE id = $1 RETURNING seq, {COLUMNS}"),
            &[&id],
        )?
        else {
            return Ok(None);
        };
        let seq: i64 = row.get(0);
        let offer = Offer {
            id: row.get(1),
            description: row.get(2),
            value: money(row.get(3))?,
            created_at: row.get(4),
            updated_at: row.get(5),
        };
        let newer: i64 = self
            .query_one("SELECT count(*) FROM offers WHERE seq > $1", &[&seq])?
            .get(0);
        // If the offer was shown, the next older one moves up into the last place.
        let backfill = if (newer as usize) < window && window > 0 {
            self.nth_newest(window - 1)?
        } else {
            None
        };
        Ok(Some(Deleted { offer, backfill }))
    }

    fn offers_page(&self, offset: usize, limit: usize) -> StoreResult<(Vec<Offer>, u64)> {
        let offers = self
            .query(
                &format!("SELECT {COLUMNS} FROM offers ORDER BY seq DESC LIMIT $1 OFFSET $2"),
                &[&(limit as i64), &(offset as i64)],
            )?
            .iter()
            .map(offer)
            .collect::<StoreResult<Vec<_>>>()?;
        let total: i64 = self.query_one("SELECT count(*) FROM offers", &[])?.get(0);
        Ok((offers, total as u64))
    }
}

impl Tx<'_> {
    fn by_id(&self, id: i64) -> StoreResult<Option<Offer>> {
        self.query_opt(
            &format!("SELECT {COLUMNS} FROM offers WHERE id = $1"),
            &[&id],
        )?
        .map(|row| offer(&row))
        .transpose()
    }

    /// The offer at 0-based position `n` counting from the newest.
    fn nth_newest(&self, n: usize) -> StoreResult<Option<Offer>> {
        self.query_opt(
            &format!("SELECT {COLUMNS} FROM offers ORDER BY seq DESC LIMIT 1 OFFSET $1"),
            &[&(n as i64)],
        )?
        .map(|row| offer(&row))
        .transpose()
    }
}

fn offer(row: &Row) -> StoreResult<Offer> {
    Ok(Offer {
        id: row.get(0),
        description: row.get(1),
        value: money(row.get(2))?,
        created_at: row.get(3),
        updated_at: row.get(4),
    })
}

fn money(cents: i64) -> StoreResult<Money> {
    Money::from_cents(cents).map_err(|e| StoreError::new(e.message("value_cents")))
}
