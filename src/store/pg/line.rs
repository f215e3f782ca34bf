//! A FIFO webhook's line on PostgreSQL, as the API needs it: which delivery is first
//! in line order (`line_seq`, the order deliveries were written) among the
//! unfinished ones. Read only.

use super::{PgStore, sql};
use crate::store::StoreError;

impl PgStore {
    /// The first unfinished delivery of `webhook_id` in line order (pending, or
    /// failed and waiting for its retry), if any: by `line_seq`, the order the
    /// deliveries were written across every node (migration 4), rows written
    /// before that migration first, by id.
    pub async fn first_unfinished(&self, webhook_id: &str) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT id FROM deliveries WHERE webhook_id = $1 AND next_attempt_at IS NOT NULL \
                 ORDER BY line_seq NULLS FIRST, id LIMIT 1",
                &[&webhook_id],
            )
            .await
            .map_err(sql)?;
        Ok(row.map(|r| r.get(0)))
    }
}
