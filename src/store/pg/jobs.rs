//! Job leases on PostgreSQL: background work (retention, auto-disable checks,
//! failure emails) runs on one node at a time, the node holding an unexpired
//! `job_leases` row. Rows, not session advisory locks, so PgBouncer in transaction
//! mode works and a dead node's lease simply expires. Times are the database's
//! clock, so nodes with skewed clocks still agree on who holds a lease. It never
//! waits for a lease: a lease held by another node is a plain `false`.

use super::conn::AsSql;

use super::{PgStore, sql};
use crate::store::StoreError;

/// The lease retention (`purge_chunk`, `purge_before`) runs under.
pub const RETENTION_JOB: &str = "retention";

/// How long the retention lease lasts after each purge chunk: a node that dies
/// mid-purge hands retention over to another node after this long.
pub(super) const RETENTION_LEASE_MS: i64 = 60_000;

/// How long a retention pass runs on the lease it took before its next chunk
/// renews it: half the lease, so a long pass never outlives its lease.
pub(super) const RETENTION_RENEW_AFTER: std::time::Duration =
    std::time::Duration::from_millis(RETENTION_LEASE_MS as u64 / 2);

/// The database's clock in Unix ms, as SQL.
const DB_NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

impl PgStore {
    /// Takes or renews the job lease `name` for `ttl_ms` from now, if it is free,
    /// expired or already this node's (holder = [`PgStore::node_id`]). Returns
    /// whether this node holds it now.
    pub async fn try_job_lease(&self, name: &str, ttl_ms: i64) -> Result<bool, StoreError> {
        let client = self.client().await?;
        take_lease(&client, name, self.node_id(), ttl_ms).await
    }

    /// Gives up the job lease `name` if this node holds it, so another node may
    /// take it at once. Returns whether it was held.
    pub async fn release_job_lease(&self, name: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "DELETE FROM job_leases WHERE name = $1 AND holder = $2",
                &[&name, &self.node_id()],
            )
            .await
            .map_err(sql)?;
        Ok(n == 1)
    }
}

/// Takes or renews a job lease through `client` (a transaction holds the row
/// locked until it ends, so a job's work can run under the lease it just took).
pub(super) async fn take_lease<C: AsSql>(
    client: &C,
    name: &str,
    holder: &str,
    ttl_ms: i64,
) -> Result<bool, StoreError> {
    let client = client.sql();
    let ttl = ttl_ms.max(1);
    let row = client
        .query_opt(
            &format!(
                "INSERT INTO job_leases AS l (name, holder, until) \
                 VALUES ($1, $2, {DB_NOW} + $3) \
                 ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, \
                     until = EXCLUDED.until \
                 WHERE l.holder = EXCLUDED.holder OR l.until <= {DB_NOW} \
                 RETURNING holder"
            ),
            &[&name, &holder, &ttl],
        )
        .await
        .map_err(sql)?;
    Ok(row.is_some())
}
