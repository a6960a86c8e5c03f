use rusqlite::{OptionalExtension, params};

use super::{Cached, SqliteStore};
use crate::board::{BoardMessage, BoardStore};
use crate::store::StoreResult;

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS board (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    message TEXT NOT NULL,
    set_at  INTEGER NOT NULL
);
";

impl BoardStore for SqliteStore {
    fn set_message(&self, m: &BoardMessage) -> StoreResult<()> {
        self.conn().run(
            "INSERT INTO board (id, message, set_at) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET message = excluded.message, set_at = excluded.set_at",
            params![m.message, m.set_at],
        )?;
        Ok(())
    }

    fn current_message(&self) -> StoreResult<Option<BoardMessage>> {
        Ok(self
            .conn()
            .row(
                "SELECT message, set_at FROM board WHERE id = 1",
                [],
                |row| {
                    Ok(BoardMessage {
                        message: row.get(0)?,
                        set_at: row.get(1)?,
                    })
                },
            )
            .optional()?)
    }
}
