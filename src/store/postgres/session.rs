use uuid::Uuid;

use super::Tx;
use crate::hub::ClientId;
use crate::store::StoreResult;
use crate::web::session::SessionStore;

/// A binding is re-stamped at most this often, so reconnects rarely write.
const TOUCH_EVERY_SECS: i64 = 3600;

impl SessionStore for Tx<'_> {
    /// Two instances claiming one id at once: the insert of one waits for the other's outcome,
    /// so both read the same owner.
    fn claim_client(&self, client: ClientId, session: Uuid, now: i64) -> StoreResult<Uuid> {
        self.execute(
            "INSERT INTO clients (client_id, session_id, last_seen) VALUES ($1, $2, $3)
             ON CONFLICT (client_id) DO NOTHING",
            &[&client.0, &session, &now],
        )?;
        let row = self.query_one(
            "SELECT session_id, last_seen FROM clients WHERE client_id = $1",
            &[&client.0],
        )?;
        let (owner, last_seen): (Uuid, i64) = (row.get(0), row.get(1));
        if owner == session && now - last_seen > TOUCH_EVERY_SECS {
            self.execute(
                "UPDATE clients SET last_seen = $2 WHERE client_id = $1",
                &[&client.0, &now],
            )?;
        }
        Ok(owner)
    }

    /// The first instance to start stores its fresh key; every other one reads that key, so a
    /// tab id signed by one instance is good on all.
    fn tab_key(&self, fresh: &[u8]) -> StoreResult<Vec<u8>> {
        self.execute(
            "INSERT INTO secrets (name, value) VALUES ('tab_key', $1) ON CONFLICT (name) DO NOTHING",
            &[&fresh],
        )?;
        Ok(self
            .query_one("SELECT value FROM secrets WHERE name = 'tab_key'", &[])?
            .get(0))
    }

    fn forget_clients_before(&self, cutoff: i64) -> StoreResult<usize> {
        Ok(self.execute("DELETE FROM clients WHERE last_seen < $1", &[&cutoff])? as usize)
    }
}
