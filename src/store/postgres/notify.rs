use super::Tx;
use crate::notify::{Kind, Notification, NotifyStore};
use crate::store::{StoreError, StoreResult};

impl NotifyStore for Tx<'_> {
    fn add_notification(&self, n: &Notification, keep: usize) -> StoreResult<Vec<Notification>> {
        self.execute(
            "INSERT INTO notifications (kind, title, body, created_at) VALUES ($1, $2, $3, $4)",
            &[&n.kind.as_str(), &n.title, &n.body, &n.created_at],
        )?;
        // Only the recent list is shown, so only it is kept.
        self.execute(
            "DELETE FROM notifications WHERE id NOT IN
                 (SELECT id FROM notifications ORDER BY id DESC LIMIT $1)",
            &[&(keep as i64)],
        )?;
        self.recent_notifications(keep)
    }

    fn recent_notifications(&self, limit: usize) -> StoreResult<Vec<Notification>> {
        self.query(
            "SELECT id, kind, title, body, created_at FROM notifications ORDER BY id DESC LIMIT $1",
            &[&(limit as i64)],
        )?
        .into_iter()
        .map(|row| {
            let kind: String = row.get(1);
            Ok(Notification {
                id: row.get(0),
                kind: Kind::parse(&kind).ok_or_else(|| {
                    StoreError::new(format!("unknown notification type {kind:?}"))
                })?,
                title: row.get(2),
                body: row.get(3),
                created_at: row.get(4),
            })
        })
        .collect()
    }
}
