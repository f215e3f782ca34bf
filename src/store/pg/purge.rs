//! Purging a deleted tenant's data on PostgreSQL: its events (payloads),
//! deliveries, attempts (response bodies), idempotency rows, notification and rate
//! rows, portal sessions and its soft-deleted webhook rows, in transactions of a
//! bounded number of events each, and the `tenant_purges` row last. Must never
//! touch another tenant's rows, and never purge a tenant that is not marked.
//!
//! `delete_tenant` (admin.rs) removes the tenant, its keys and catalogue and
//! soft-deletes its webhooks (cancelling their unfinished deliveries) in the
//! transaction that inserts the `tenant_purges` row; `create_tenant` refuses an id
//! found there, so a re-created tenant never sees the old data. Every chunk first
//! locks the marker row, so nodes purging the same tenant take turns instead of
//! deleting the same rows at once; a purge cut short resumes at the next start.

use std::sync::atomic::{AtomicBool, Ordering};

use super::deliveries::delete_events;
use super::{PgStore, sql};
use crate::store::StoreError;

/// Events (with their deliveries and attempts) one purge transaction removes at
/// most; other leftovers go in statements of this many rows.
pub const PURGE_CHUNK_EVENTS: usize = 1000;

/// The running purge tasks and the flag that stops them.
#[derive(Default)]
pub(super) struct PurgeTasks {
    stop: AtomicBool,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl PgStore {
    /// Ids of deleted tenants whose data is still being purged, in id order.
    pub async fn tenants_being_purged(&self) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT id FROM tenant_purges ORDER BY id", &[])
            .await
            .map_err(sql)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Whether `tenant` was deleted and its data is still being purged (then the id
    /// cannot be created again yet).
    pub async fn tenant_being_purged(&self, tenant: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT 1 FROM tenant_purges WHERE id = $1", &[&tenant])
            .await
            .map_err(sql)?;
        Ok(row.is_some())
    }

    /// Removes the next chunk of a deleted tenant's data (at most `max_rows`
    /// events with their deliveries and attempts, or `max_rows` leftover rows), in
    /// one transaction. Returns true when nothing is left and the marker is gone
    /// (or the tenant was not marked: then nothing is touched).
    pub async fn purge_tenant_chunk(
        &self,
        tenant: String,
        max_rows: usize,
    ) -> Result<bool, StoreError> {
        let limit = i64::try_from(max_rows.max(1)).unwrap_or(i64::MAX);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(sql)?;
        let marked = tx
            .query_opt(
                "SELECT 1 FROM tenant_purges WHERE id = $1 FOR UPDATE",
                &[&tenant],
            )
            .await
            .map_err(sql)?;
        if marked.is_none() {
            return Ok(true);
        }
        let events: Vec<String> = tx
            .query(
                "SELECT id FROM events WHERE tenant = $1 ORDER BY id LIMIT $2",
                &[&tenant, &limit],
            )
            .await
            .map_err(sql)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !events.is_empty() {
            delete_events(&tx, &events.iter().collect::<Vec<_>>()).await?;
            tx.commit().await.map_err(sql)?;
            return Ok(false);
        }
        // Deliveries without their event (none are expected), found through the
        // tenant's webhooks (indexed), then idempotency rows without their event.
        let orphans = tx
            .execute(
                "WITH doomed AS ( \
                     SELECT d.id FROM deliveries d \
                     WHERE d.webhook_id IN (SELECT id FROM webhooks WHERE tenant = $1) \
                       AND d.tenant = $1 \
                     ORDER BY d.id LIMIT $2), \
                 gone AS (DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM doomed)) \
                 DELETE FROM deliveries WHERE id IN (SELECT id FROM doomed)",
                &[&tenant, &limit],
            )
            .await
            .map_err(sql)?;
        let keys = tx
            .execute(
                "DELETE FROM idempotency WHERE (tenant, key) IN \
                 (SELECT tenant, key FROM idempotency WHERE tenant = $1 LIMIT $2)",
                &[&tenant, &limit],
            )
            .await
            .map_err(sql)?;
        if orphans > 0 || keys > 0 {
            tx.commit().await.map_err(sql)?;
            return Ok(false);
        }
        for statement in [
            "DELETE FROM notify WHERE webhook_id IN (SELECT id FROM webhooks WHERE tenant = $1)",
            "DELETE FROM rate_buckets \
             WHERE webhook_id IN (SELECT id FROM webhooks WHERE tenant = $1)",
            "DELETE FROM portal_sessions WHERE tenant = $1",
            "DELETE FROM webhooks WHERE tenant = $1 AND deleted_at IS NOT NULL",
            "DELETE FROM tenant_purges WHERE id = $1",
        ] {
            tx.execute(statement, &[&tenant]).await.map_err(sql)?;
        }
        tx.commit().await.map_err(sql)?;
        Ok(true)
    }

    /// Purges a deleted tenant's data chunk by chunk until none is left, or until
    /// [`PgStore::stop_purges`] (then the marker stays and the purge resumes at the
    /// next start).
    pub async fn purge_tenant(&self, tenant: String) -> Result<(), StoreError> {
        while !self.purges.stop.load(Ordering::SeqCst) {
            if self
                .purge_tenant_chunk(tenant.clone(), PURGE_CHUNK_EVENTS)
                .await?
            {
                break;
            }
        }
        Ok(())
    }

    /// Runs [`PgStore::purge_tenant`] as a task, logging how it ended; the answer
    /// comes when it has ended. [`PgStore::stop_purges`] stops and awaits it.
    pub fn spawn_purge(&self, tenant: String) -> tokio::sync::oneshot::Receiver<()> {
        let (done, ended) = tokio::sync::oneshot::channel();
        let store = self.clone();
        let task = tokio::spawn(async move {
            match store.purge_tenant(tenant.clone()).await {
                Ok(()) if store.purges.stop.load(Ordering::SeqCst) => {
                    tracing::info!(%tenant, "tenant purge paused; it resumes at the next start")
                }
                Ok(()) => tracing::info!(%tenant, "deleted tenant's data purged"),
                Err(e) => {
                    tracing::warn!(%tenant, error = %e, "tenant purge stopped; it resumes at the next start")
                }
            }
            let _ = done.send(());
        });
        let mut tasks = self.purges.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
        ended
    }

    /// Stops the running purges after their current chunk and waits for them, so
    /// no task holds the store when it closes. Later purges stop at once.
    pub async fn stop_purges(&self) {
        self.purges.stop.store(true, Ordering::SeqCst);
        let tasks =
            std::mem::take(&mut *self.purges.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
    }

    /// Marks for purging every tenant id that owns events or idempotency rows but
    /// has no tenant row and no mark yet (a tenant removed without its data, e.g. a
    /// store copied from a 0.1.0 file). Returns the ids marked, in order. Finds the
    /// distinct owners with a skip scan of the tenant indexes, one lookup per
    /// tenant.
    pub async fn mark_orphaned_tenants(&self, now: i64) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "WITH RECURSIVE ev(tenant) AS ( \
                     (SELECT tenant FROM events ORDER BY tenant LIMIT 1) \
                     UNION ALL \
                     SELECT (SELECT e.tenant FROM events e WHERE e.tenant > ev.tenant \
                             ORDER BY e.tenant LIMIT 1) \
                     FROM ev WHERE ev.tenant IS NOT NULL), \
                 idem(tenant) AS ( \
                     (SELECT tenant FROM idempotency ORDER BY tenant LIMIT 1) \
                     UNION ALL \
                     SELECT (SELECT i.tenant FROM idempotency i WHERE i.tenant > idem.tenant \
                             ORDER BY i.tenant LIMIT 1) \
                     FROM idem WHERE idem.tenant IS NOT NULL), \
                 owners AS ( \
                     SELECT tenant FROM ev WHERE tenant IS NOT NULL \
                     UNION SELECT tenant FROM idem WHERE tenant IS NOT NULL) \
                 INSERT INTO tenant_purges (id, deleted_at) \
                 SELECT o.tenant, $1 FROM owners o \
                 WHERE NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = o.tenant) \
                 ON CONFLICT (id) DO NOTHING RETURNING id",
                &[&now.max(0)],
            )
            .await
            .map_err(sql)?;
        let mut marked: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        marked.sort();
        Ok(marked)
    }
}
