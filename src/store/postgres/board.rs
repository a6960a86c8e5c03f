use super::Tx;
use crate::board::{BoardMessage, BoardStore};
use crate::store::StoreResult;

impl BoardStore for Tx<'_> {
    fn set_message(&self, m: &BoardMessage) -> StoreResult<()> {
        self.execute(
            "INSERT INTO board (id, message, set_at) VALUES (1, $1, $2)
             ON CONFLICT (id) DO UPDATE SET message = excluded.message, set_at = excluded.set_at",
            &[&m.message, &m.set_at],
        )?;
        Ok(())
    }

    fn current_message(&self) -> StoreResult<Option<BoardMessage>> {
        Ok(self
            .query_opt("SELECT message, set_at FROM board WHERE id = 1", &[])?
            .map(|row| BoardMessage {
                message: row.get(0),
                set_at: row.get(1),
            }))
    }
}
