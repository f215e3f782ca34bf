//! The completion side of delivery claims on PostgreSQL (the claims themselves are
//! `batch.rs`): outcomes written fenced by the node's lease id (the attempt row and
//! the new state, or nothing at all when the lease was lost to another node),
//! cancellation, renewal and release of everything the node holds. No transaction is
//! ever held across an HTTP call. Every statement that locks several delivery rows
//! locks them in id order first (as the webhook cancel and the claim's cancel do),
//! so two such writes never wait on each other in a cycle.

use tokio_postgres::types::ToSql;

use super::conn::AsSql;
use super::{PgStore, sql};
use crate::model::{Attempt, Delivery, DeliveryState, UnixMs};
use crate::store::{AttemptWrite, DueEntry, Next, StoreError};

/// Locks a completion's rows still leased by this node, in id order (the one lock
/// order of every multi-row delivery write; a webhook's cancel takes them the
/// same way).
pub(super) const LOCK_ROWS: &str = "SELECT id FROM deliveries WHERE id = ANY($2) AND lease_id = $1::text::uuid \
    ORDER BY id FOR UPDATE";

/// Records the attempts and the rows' new states, fenced by the node's lease.
/// "Still unfinished" is written `(next_attempt_at IS NULL) IS FALSE`, the same
/// test as `next_attempt_at IS NOT NULL` in a form that does not name the partial
/// indexes' predicate: with it, the generic plan built on empty tables found each
/// row through `deliveries_line_order` (a walk of that whole index per row on a
/// large table) instead of the primary key (`plans.rs`, `tests/it/pg_plans.rs`).
pub(super) const COMPLETE: &str = "WITH w AS ( \
            SELECT * FROM unnest($2::text[], $3::smallint[], $4::bigint[], \
                $5::smallint[], $6::text[], $7::bigint[], $8::smallint[], \
                $9::bigint[], $10::text[]) \
            AS w(id, state, next_at, status, error, at, trigger, latency, body)), \
        done AS ( \
            UPDATE deliveries d SET state = w.state, attempts = d.attempts + 1, \
                schedule_step = d.schedule_step + 1, next_attempt_at = w.next_at, \
                last_status = w.status, last_error = w.error, updated_at = w.at, \
                lease_id = NULL, lease_until = NULL \
            FROM w WHERE d.id = w.id AND d.lease_id = $1::text::uuid \
              AND (d.next_attempt_at IS NULL) IS FALSE \
            RETURNING d.id, d.tenant, d.event_id, d.webhook_id, d.event_type, \
                d.state, d.attempts, d.schedule_step, d.next_attempt_at, \
                d.last_status, d.last_error, d.created_at, d.updated_at, \
                w.at AS attempt_at, w.trigger, w.latency, w.body), \
        ins AS ( \
            INSERT INTO attempts (delivery_id, number, at, trigger, status, error, \
                latency_ms, response_body) \
            SELECT id, attempts, attempt_at, trigger, last_status, last_error, \
                latency, body FROM done) \
        SELECT id, tenant, event_id, webhook_id, event_type, state, attempts, \
            schedule_step, next_attempt_at, last_status, last_error, created_at, \
            updated_at FROM done";

/// Gives back the leases of a completion's rows that were finished meanwhile.
pub(super) const GIVE_BACK: &str = "UPDATE deliveries SET lease_id = NULL, lease_until = NULL \
     WHERE id = ANY($2) AND lease_id = $1::text::uuid";

impl PgStore {
    /// A delivery's attempts, in order.
    pub async fn attempts(&self, delivery_id: &str) -> Result<Vec<Attempt>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT delivery_id, number, at, trigger, status, error, latency_ms, \
                 response_body FROM attempts WHERE delivery_id = $1 ORDER BY number",
                &[&delivery_id],
            )
            .await
            .map_err(sql)?;
        rows.iter()
            .map(|r| {
                let number: i32 = r.get(1);
                let trigger: i16 = r.get(3);
                let status: Option<i16> = r.get(4);
                let latency: i64 = r.get(6);
                Ok(Attempt {
                    delivery_id: r.get(0),
                    number: number.max(0) as u32,
                    at: r.get(2),
                    trigger: super::codes::trigger(trigger)?,
                    status: status.map(|s| s.max(0) as u16),
                    error: r.get(5),
                    latency_ms: latency.max(0) as u64,
                    response_body: r.get(7),
                })
            })
            .collect()
    }
}

impl PgStore {
    /// Records a batch of scheduled attempts made under this node's leases, in one
    /// statement: per delivery the attempt row, the new state and the next due time,
    /// and the lease cleared. Fenced by the node's lease id: a delivery whose lease
    /// was lost (expired and taken by another node, or cleared by a disable) or that
    /// is already finished gets nothing written and `None` (logged, not
    /// rescheduled). Answers one entry per write, in order.
    pub async fn record_attempts(
        &self,
        writes: Vec<AttemptWrite>,
    ) -> Result<Vec<Option<Delivery>>, StoreError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let n = writes.len();
        let mut ids = Vec::with_capacity(n);
        let mut states = Vec::with_capacity(n);
        let mut next_at: Vec<Option<i64>> = Vec::with_capacity(n);
        let mut statuses: Vec<Option<i16>> = Vec::with_capacity(n);
        let mut errors: Vec<Option<String>> = Vec::with_capacity(n);
        let mut at = Vec::with_capacity(n);
        let mut triggers = Vec::with_capacity(n);
        let mut latencies = Vec::with_capacity(n);
        let mut bodies = Vec::with_capacity(n);
        for w in &writes {
            let (state, next) = match w.next {
                Next::Succeeded => (DeliveryState::Succeeded, None),
                Next::Exhausted => (DeliveryState::Exhausted, None),
                Next::RetryAt(t) => (DeliveryState::Failed, Some(t)),
            };
            ids.push(w.entry.delivery_id.as_str());
            states.push(super::codes::state_code(state));
            next_at.push(next);
            statuses.push(w.attempt.status.map(|s| s as i16));
            errors.push(w.attempt.error.clone());
            at.push(w.attempt.at);
            triggers.push(super::codes::trigger_code(w.attempt.trigger));
            latencies.push(i64::try_from(w.attempt.latency_ms).unwrap_or(i64::MAX));
            bodies.push(w.attempt.response_body.as_str());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(sql)?;
        // Lazily durable, as on redb: an outcome lost in a crash only means the
        // attempt is made again (the row is still due under an expired lease);
        // and planned once per connection (`plans.rs`). Then the rows in id order,
        // the one lock order of every multi-row delivery write (a webhook's cancel
        // takes them the same way), and the write itself. One round trip, which
        // the server runs in the order sent (`biased`).
        let node = self.node_id();
        let lock_params: [&(dyn ToSql + Sync); 2] = [&node, &ids];
        let write_params: [&(dyn ToSql + Sync); 10] = [
            &node, &ids, &states, &next_at, &statuses, &errors, &at, &triggers, &latencies, &bodies,
        ];
        let (_, (_, rows)) = tokio::try_join!(
            biased;
            tx.batch_execute(super::plans::LAZY_GENERIC),
            tx.sql().cached_query_in_order(
                (LOCK_ROWS, &lock_params),
                (COMPLETE, &write_params)
            ),
        )
        .map_err(sql)?;
        let mut written = std::collections::HashMap::with_capacity(rows.len());
        for r in &rows {
            let d = super::ingest::delivery(r)?;
            written.insert(d.id.clone(), d);
        }
        if written.len() < n {
            // Rows still held but finished meanwhile (a manual retry delivered them)
            // give their lease back now rather than when it expires.
            tx.sql()
                .cached_execute(GIVE_BACK, &[&self.node_id(), &ids])
                .await
                .map_err(sql)?;
        }
        tx.commit().await.map_err(sql)?;
        Ok(writes
            .iter()
            .map(|w| {
                let d = written.remove(&w.entry.delivery_id);
                if d.is_none() {
                    tracing::warn!(
                        delivery = %w.entry.delivery_id,
                        "lease lost before the attempt was recorded; another node owns the delivery"
                    );
                }
                d
            })
            .collect())
    }

    /// Finishes a delivery that can no longer be attempted (its webhook is gone or
    /// disabled, or its records vanished): state `cancelled`, lease cleared. Leaves a
    /// delivery alone that another node holds under a live lease.
    pub async fn cancel_delivery(&self, entry: DueEntry, now: UnixMs) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .sql()
            .cached_execute(
                "UPDATE deliveries SET state = 4, next_attempt_at = NULL, updated_at = $3, \
                     lease_id = NULL, lease_until = NULL \
                 WHERE id = $1 AND next_attempt_at IS NOT NULL \
                   AND (lease_id IS NULL OR lease_id = $2::text::uuid OR lease_until <= $3)",
                &[&entry.delivery_id, &self.node_id(), &now],
            )
            .await
            .map_err(sql)?;
        Ok(())
    }

    /// Extends this node's leases of `held` to `now + lease_ms`, in one statement.
    /// Returns how many of them it still holds.
    ///
    /// Only the leases the caller knows it holds: a lease the node holds without
    /// knowing it (a claim whose commit reached the database but whose answer was
    /// lost, an outcome that could not be recorded) must run out, so that its
    /// delivery is claimed again, instead of being kept alive for as long as the
    /// node lives.
    pub async fn renew_leases(
        &self,
        now: UnixMs,
        lease_ms: i64,
        held: &[String],
    ) -> Result<u64, StoreError> {
        if held.is_empty() {
            return Ok(0);
        }
        let client = self.client().await?;
        client
            .sql()
            .cached_execute(
                "WITH l AS MATERIALIZED (SELECT id FROM deliveries \
                     WHERE lease_id = $1::text::uuid AND id = ANY($3) ORDER BY id FOR UPDATE) \
                 UPDATE deliveries d SET lease_until = $2 FROM l \
                 WHERE d.id = l.id AND d.lease_id = $1::text::uuid",
                &[&self.node_id(), &now.saturating_add(lease_ms), &held],
            )
            .await
            .map_err(sql)
    }

    /// Gives back this node's leases of `ids` (claimed, never attempted), so any
    /// node may claim them at once. Returns how many it still held.
    pub async fn release_leases(&self, ids: &[String]) -> Result<u64, StoreError> {
        let client = self.client().await?;
        client
            .sql()
            .cached_execute(
                "WITH l AS MATERIALIZED (SELECT id FROM deliveries \
                     WHERE lease_id = $1::text::uuid AND id = ANY($2) ORDER BY id FOR UPDATE) \
                 UPDATE deliveries d SET lease_id = NULL, lease_until = NULL FROM l \
                 WHERE d.id = l.id AND d.lease_id = $1::text::uuid",
                &[&self.node_id(), &ids],
            )
            .await
            .map_err(sql)
    }
}

/// A fresh random lease id in UUID text form.
pub(super) fn new_lease_id() -> String {
    let b: [u8; 16] = rand::random();
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_be_bytes([b[4], b[5]]),
        u16::from_be_bytes([b[6], b[7]]),
        u16::from_be_bytes([b[8], b[9]]),
        u64::from_be_bytes([0, 0, b[10], b[11], b[12], b[13], b[14], b[15]])
    )
}
