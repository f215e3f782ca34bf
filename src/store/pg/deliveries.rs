//! Delivery writes outside the claim path on PostgreSQL, with the rules of the redb
//! store (`store/deliveries.rs`): manual attempts, test sends, recover, and the
//! retention purge. Each is one transaction of SQL only. A write that moves a
//! delivery's schedule (a manual success, recover) clears its lease, so an attempt
//! another node has in flight for it records nothing (its completion is fenced by
//! the lease id) instead of overwriting the new state. Retention runs only on the
//! node holding the "retention" job lease.

use std::collections::HashSet;
use std::time::Instant;

use super::conn::Tx;

use super::events::{DELIVERY_COLUMNS, recoverable_codes};
use super::jobs::{RETENTION_JOB, RETENTION_LEASE_MS, RETENTION_RENEW_AFTER, take_lease};
use super::{PgStore, codes, sql};
use crate::model::{Attempt, Delivery, DeliveryState, Event, UnixMs};
use crate::store::deliveries::id_floor;
use crate::store::{RecoverScope, StoreError};

impl PgStore {
    /// Records a manual attempt of a delivery, numbered after its earlier attempts.
    /// Success finishes it (it leaves the due rows and loses any lease); a failure
    /// leaves its state and schedule as they were. `NotFound` without the row.
    pub async fn record_manual(
        &self,
        attempt: Attempt,
        succeeded: bool,
    ) -> Result<Delivery, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(sql)?;
        let id = attempt.delivery_id.clone();
        let row = tx
            .query_opt(
                &format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1 FOR UPDATE"),
                &[&id],
            )
            .await
            .map_err(sql)?;
        let Some(row) = row else {
            return Err(StoreError::NotFound(format!("delivery {id}")));
        };
        let mut d = super::ingest::delivery(&row)?;
        d.attempts += 1;
        d.last_status = attempt.status;
        d.last_error = attempt.error.clone();
        d.updated_at = attempt.at;
        if succeeded {
            d.state = DeliveryState::Succeeded;
            d.next_attempt_at = None;
        }
        let mut attempt = attempt;
        // The stored row carries its number, like scheduled attempts do.
        attempt.number = d.attempts;
        insert_attempt(&tx, &attempt).await?;
        let status = d.last_status.map(|s| s as i16);
        if succeeded {
            tx.execute(
                "UPDATE deliveries SET state = $2, attempts = $3, last_status = $4, \
                 last_error = $5, updated_at = $6, next_attempt_at = NULL, \
                 lease_id = NULL, lease_until = NULL WHERE id = $1",
                &[
                    &id,
                    &codes::state_code(d.state),
                    &count(d.attempts),
                    &status,
                    &d.last_error,
                    &d.updated_at,
                ],
            )
            .await
        } else {
            tx.execute(
                "UPDATE deliveries SET attempts = $2, last_status = $3, last_error = $4, \
                 updated_at = $5 WHERE id = $1",
                &[
                    &id,
                    &count(d.attempts),
                    &status,
                    &d.last_error,
                    &d.updated_at,
                ],
            )
            .await
        }
        .map_err(sql)?;
        tx.commit().await.map_err(sql)?;
        Ok(d)
    }

    /// Records a test event with its one delivery and attempt, for the delivery
    /// log, in one transaction.
    pub async fn record_test(
        &self,
        event: Event,
        delivery: Delivery,
        attempt: Attempt,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(sql)?;
        tx.execute(
            "INSERT INTO events (id, tenant, event_type, payload, channels, \
             idempotency_key, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &event.id,
                &event.tenant,
                &event.event_type,
                &event.payload,
                &event.channels,
                &event.idempotency_key,
                &event.created_at,
            ],
        )
        .await
        .map_err(sql)?;
        let d = &delivery;
        tx.execute(
            "INSERT INTO deliveries (id, tenant, event_id, webhook_id, event_type, state, \
             attempts, schedule_step, next_attempt_at, last_status, last_error, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            &[
                &d.id,
                &d.tenant,
                &d.event_id,
                &d.webhook_id,
                &d.event_type,
                &codes::state_code(d.state),
                &count(d.attempts),
                &count(d.schedule_step),
                &d.next_attempt_at,
                &d.last_status.map(|s| s as i16),
                &d.last_error,
                &d.created_at,
                &d.updated_at,
            ],
        )
        .await
        .map_err(sql)?;
        insert_attempt(&tx, &attempt).await?;
        tx.commit().await.map_err(sql)?;
        Ok(())
    }

    /// Re-queues, due at `scope.now`, every failed, exhausted or cancelled delivery
    /// of a webhook created at or after `scope.since`, restarting its retry
    /// schedule and clearing any lease (state pending when it was never attempted,
    /// else failed). Returns how many; wakes the delivery loops (this node's and,
    /// through `hookbox_work`, the others').
    pub async fn recover(
        &self,
        webhook_id: String,
        scope: RecoverScope,
    ) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(sql)?;
        let n = tx
            .execute(
                // Rows locked in id order, as every multi-row delivery write does.
                "WITH l AS MATERIALIZED (SELECT id FROM deliveries \
                     WHERE webhook_id = $1 AND id >= $2 AND state = ANY($6) \
                     ORDER BY id FOR UPDATE) \
                 UPDATE deliveries d SET \
                     state = CASE WHEN d.attempts = 0 THEN $4::smallint ELSE $5::smallint END, \
                     schedule_step = 0, next_attempt_at = $3, updated_at = $3, \
                     lease_id = NULL, lease_until = NULL \
                 FROM l WHERE d.id = l.id AND d.state = ANY($6)",
                &[
                    &webhook_id,
                    &id_floor("dlv", scope.since),
                    &scope.now,
                    &codes::state_code(DeliveryState::Pending),
                    &codes::state_code(DeliveryState::Failed),
                    &recoverable_codes(),
                ],
            )
            .await
            .map_err(sql)?;
        if n > 0 {
            self.notify_work(&tx).await?;
        }
        tx.commit().await.map_err(sql)?;
        if n > 0 {
            self.wakeups.notify_one();
        }
        Ok(n)
    }

    /// Takes or renews the [`RETENTION_JOB`] lease for this node at the start of a
    /// retention pass (one round trip); `false` when another node holds it, so
    /// this node skips the pass and retention runs on one node at a time. The
    /// pass's chunks then run under it ([`PgStore::purge_in_pass`]), renewing it
    /// only when half the lease has gone by.
    pub async fn try_retention_lease(&self) -> Result<bool, StoreError> {
        let client = self.client().await?;
        take_lease(&client, RETENTION_JOB, self.node_id(), RETENTION_LEASE_MS).await
    }

    /// Gives the [`RETENTION_JOB`] lease back if this node holds it (at shutdown),
    /// so another node takes retention over at its next pass instead of after the
    /// lease runs out.
    pub async fn release_retention_lease(&self) -> Result<bool, StoreError> {
        self.release_job_lease(RETENTION_JOB).await
    }

    /// One retention chunk (see [`PgStore::purge_in_pass`]) that takes or renews
    /// the [`RETENTION_JOB`] lease in its own transaction first; 0 when another
    /// node holds it. For a caller outside a pass.
    pub async fn purge_before(&self, cutoff: UnixMs, limit: usize) -> Result<usize, StoreError> {
        Ok(self.purge_chunk(cutoff, limit, true).await?.unwrap_or(0))
    }

    /// One chunk of a retention pass this node started with
    /// [`PgStore::try_retention_lease`] at `*taken`: deletes up to `limit` events
    /// created before `cutoff` whose deliveries are all finished, with their
    /// deliveries, attempts and idempotency rows, and returns how many (call again
    /// until it returns less than `limit`). Once half the lease has gone by it
    /// renews the lease in the chunk's transaction (moving `*taken`), and returns
    /// `None`, removing nothing, if another node holds it by then.
    pub async fn purge_in_pass(
        &self,
        cutoff: UnixMs,
        limit: usize,
        taken: &mut Instant,
    ) -> Result<Option<usize>, StoreError> {
        let now = Instant::now();
        let renew = now.duration_since(*taken) >= RETENTION_RENEW_AFTER;
        let n = self.purge_chunk(cutoff, limit, renew).await?;
        if renew {
            *taken = now;
        }
        Ok(n)
    }

    /// One retention chunk. As on redb, it looks at most `4 x limit` of the oldest
    /// events per call, skipping those still being delivered. Runs under the
    /// [`RETENTION_JOB`] lease: with `renew` it takes (or renews) it in the same
    /// transaction and returns `None`, removing nothing, when another node holds
    /// it; without, the caller took it for this pass less than half a lease ago.
    async fn purge_chunk(
        &self,
        cutoff: UnixMs,
        limit: usize,
        renew: bool,
    ) -> Result<Option<usize>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(sql)?;
        // The lease row stays locked until the commit: another node's attempt to
        // take it waits for this chunk, then finds it held.
        if renew && !take_lease(&tx, RETENTION_JOB, self.node_id(), RETENTION_LEASE_MS).await? {
            return Ok(None);
        }
        let scan = i64::try_from(limit.saturating_mul(4)).unwrap_or(i64::MAX);
        let candidates: Vec<String> = tx
            .query(
                "SELECT id FROM events WHERE id >= 'evt_' AND id < $1 ORDER BY id LIMIT $2",
                &[&id_floor("evt", cutoff), &scan],
            )
            .await
            .map_err(sql)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if candidates.is_empty() {
            tx.commit().await.map_err(sql)?;
            return Ok(Some(0));
        }
        // Lock the candidates' finished deliveries (in id order), then read which
        // candidates still have unfinished ones, as committed now: a finished row
        // cannot be recovered until this commits, and one recovered before the lock
        // is seen as unfinished. Unfinished rows are never locked here, so the claim
        // path is never held up by retention.
        let finals: Vec<i16> = [
            DeliveryState::Pending,
            DeliveryState::Succeeded,
            DeliveryState::Failed,
            DeliveryState::Exhausted,
            DeliveryState::Cancelled,
        ]
        .into_iter()
        .filter(|s| s.is_final())
        .map(codes::state_code)
        .collect();
        tx.execute(
            "SELECT 1 FROM deliveries WHERE event_id = ANY($1) AND state = ANY($2) \
             ORDER BY id FOR UPDATE",
            &[&candidates, &finals],
        )
        .await
        .map_err(sql)?;
        let busy: HashSet<String> = tx
            .query(
                "SELECT DISTINCT event_id FROM deliveries \
                 WHERE event_id = ANY($1) AND NOT (state = ANY($2))",
                &[&candidates, &finals],
            )
            .await
            .map_err(sql)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let victims: Vec<&String> = candidates
            .iter()
            .filter(|id| !busy.contains(*id))
            .take(limit)
            .collect();
        delete_events(&tx, &victims).await?;
        tx.commit().await.map_err(sql)?;
        Ok(Some(victims.len()))
    }
}

/// Deletes events with their attempts, deliveries and idempotency rows.
pub(super) async fn delete_events(tx: &Tx<'_>, ids: &[&String]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    tx.execute(
        "DELETE FROM attempts WHERE delivery_id IN \
         (SELECT id FROM deliveries WHERE event_id = ANY($1))",
        &[&ids],
    )
    .await
    .map_err(sql)?;
    tx.execute("DELETE FROM deliveries WHERE event_id = ANY($1)", &[&ids])
        .await
        .map_err(sql)?;
    tx.execute(
        "DELETE FROM idempotency i USING events e \
         WHERE e.id = ANY($1) AND i.tenant = e.tenant AND i.key = e.idempotency_key",
        &[&ids],
    )
    .await
    .map_err(sql)?;
    tx.execute("DELETE FROM events WHERE id = ANY($1)", &[&ids])
        .await
        .map_err(sql)?;
    Ok(())
}

/// Inserts one attempt row.
async fn insert_attempt(tx: &Tx<'_>, a: &Attempt) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO attempts (delivery_id, number, at, trigger, status, error, latency_ms, \
         response_body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &a.delivery_id,
            &count(a.number),
            &a.at,
            &codes::trigger_code(a.trigger),
            &a.status.map(|s| s as i16),
            &a.error,
            &i64::try_from(a.latency_ms).unwrap_or(i64::MAX),
            &a.response_body,
        ],
    )
    .await
    .map_err(sql)?;
    Ok(())
}

/// A count as the schema's `integer`.
fn count(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
