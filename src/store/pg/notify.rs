//! Per-webhook notification state on PostgreSQL (the failure-email throttle,
//! `ThrottleState`: `last_sent` and `suppressed`, the columns of `notify`). Every
//! change is a read-modify-write of the row under `SELECT ... FOR UPDATE` in one
//! transaction, so two nodes (or two tasks) never both act on the same state: one
//! waits for the other's commit and sees its result. Never decides policy; the
//! caller's function does.

use super::{PgStore, sql};
use crate::notify::email::ThrottleState;
use crate::store::StoreError;

impl PgStore {
    /// The email throttle of a webhook, if any email was considered for it.
    pub async fn notify_state(
        &self,
        webhook_id: &str,
    ) -> Result<Option<ThrottleState>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT last_sent, suppressed FROM notify WHERE webhook_id = $1",
                &[&webhook_id],
            )
            .await
            .map_err(sql)?;
        Ok(row.map(|r| throttle(r.get(0), r.get(1))))
    }

    /// Reads the webhook's email throttle (the default when none is stored), runs
    /// `f` on it and saves the state `f` returns, in one transaction holding the
    /// row's lock, so concurrent updates on any node are serialised and none is
    /// lost. Returns what `f` decided. `f` runs between two statements: it must be
    /// quick and do no I/O.
    pub async fn update_notify_state<R, F>(&self, webhook_id: String, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&ThrottleState) -> (ThrottleState, R) + Send + 'static,
    {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(sql)?;
        // The row must exist to be locked; a concurrent first insert waits for ours.
        tx.execute(
            "INSERT INTO notify (webhook_id, last_sent, suppressed) VALUES ($1, NULL, 0) \
             ON CONFLICT (webhook_id) DO NOTHING",
            &[&webhook_id],
        )
        .await
        .map_err(sql)?;
        let row = tx
            .query_one(
                "SELECT last_sent, suppressed FROM notify WHERE webhook_id = $1 FOR UPDATE",
                &[&webhook_id],
            )
            .await
            .map_err(sql)?;
        let current = throttle(row.get(0), row.get(1));
        let (next, decided) = f(&current);
        let suppressed = i32::try_from(next.suppressed).unwrap_or(i32::MAX);
        tx.execute(
            "UPDATE notify SET last_sent = $2, suppressed = $3 WHERE webhook_id = $1",
            &[&webhook_id, &next.last_sent, &suppressed],
        )
        .await
        .map_err(sql)?;
        tx.commit().await.map_err(sql)?;
        Ok(decided)
    }
}

/// A `notify` row as the throttle state.
fn throttle(last_sent: Option<i64>, suppressed: i32) -> ThrottleState {
    ThrottleState {
        last_sent,
        suppressed: suppressed.max(0) as u32,
    }
}
