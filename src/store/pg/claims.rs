//! Delivery claims on PostgreSQL: the delivery row is the job. A node claims due rows
//! in batches (`FOR UPDATE SKIP LOCKED`, so nodes never claim the same row) under a
//! lease id and a lease deadline, renews the lease while an attempt runs long, and
//! completes each row fenced by its lease id: the attempt row and the new state in
//! one statement, or nothing at all when the lease was lost (another node reclaimed
//! the row after it expired). No transaction is ever held across an HTTP call.

use super::{PgStore, sql};
use crate::model::{Attempt, Delivery, DeliveryState, UnixMs};
use crate::store::{AttemptWrite, DueEntry, Next, StoreError};

/// A claimed delivery: the row as it was claimed, and the lease that fences it.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub delivery: Delivery,
    /// The lease id (a UUID); completion and renewal must present it.
    pub lease_id: String,
    /// Until when the lease holds (Unix ms), unless renewed.
    pub lease_until: UnixMs,
}

/// How a claimed delivery ended its attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub attempt: Attempt,
    /// The delivery's state after the attempt.
    pub state: DeliveryState,
    /// Position in the retry schedule after the attempt.
    pub schedule_step: u32,
    /// When the next attempt is due; `None` when the state is final.
    pub next_attempt_at: Option<UnixMs>,
}

const DELIVERY_COLUMNS: &str = "d.id, d.tenant, d.event_id, d.webhook_id, d.event_type, \
     d.state, d.attempts, d.schedule_step, d.next_attempt_at, d.last_status, d.last_error, \
     d.created_at, d.updated_at";

impl PgStore {
    /// Claims up to `limit` deliveries due at `now` that no live lease holds, oldest
    /// due first, under one new lease of `lease_ms`. Rows another node is claiming at
    /// the same moment are skipped, never waited for.
    pub async fn claim_due(
        &self,
        now: UnixMs,
        limit: u32,
        lease_ms: i64,
    ) -> Result<Vec<Claim>, StoreError> {
        let client = self.client().await?;
        let lease_id = new_lease_id();
        let until = now.saturating_add(lease_ms);
        let rows = client
            .query(
                &format!(
                    "WITH due AS ( \
                         SELECT id FROM deliveries \
                         WHERE next_attempt_at <= $1 \
                           AND (lease_until IS NULL OR lease_until <= $1) \
                         ORDER BY next_attempt_at, id \
                         LIMIT $2 \
                         FOR UPDATE SKIP LOCKED) \
                     UPDATE deliveries d SET lease_id = $3::text::uuid, lease_until = $4 \
                     FROM due WHERE d.id = due.id \
                     RETURNING {DELIVERY_COLUMNS}"
                ),
                &[&now, &i64::from(limit), &lease_id, &until],
            )
            .await
            .map_err(sql)?;
        let mut claims = rows
            .iter()
            .map(|r| {
                Ok(Claim {
                    delivery: super::ingest::delivery(r)?,
                    lease_id: lease_id.clone(),
                    lease_until: until,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        claims.sort_by(|a, b| {
            (a.delivery.next_attempt_at, &a.delivery.id)
                .cmp(&(b.delivery.next_attempt_at, &b.delivery.id))
        });
        Ok(claims)
    }

    /// Extends the lease of `ids` held under `lease_id` to `now + lease_ms`. Returns
    /// how many rows it still held.
    pub async fn renew_lease(
        &self,
        lease_id: &str,
        ids: &[String],
        now: UnixMs,
        lease_ms: i64,
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE deliveries SET lease_until = $3 \
                 WHERE lease_id = $1::text::uuid AND id = ANY($2)",
                &[&lease_id, &ids, &now.saturating_add(lease_ms)],
            )
            .await
            .map_err(sql)
    }

    /// Records a claimed delivery's attempt and its new state in one statement,
    /// fenced by the lease: `false` (and nothing written) when the lease was lost,
    /// in which case the caller logs it and does not reschedule.
    pub async fn complete(&self, claim: &Claim, done: &Completion) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let a = &done.attempt;
        let state = super::codes::state_code(done.state);
        let step = i32::try_from(done.schedule_step).unwrap_or(i32::MAX);
        let status = a.status.map(|s| s as i16);
        let latency = i64::try_from(a.latency_ms).unwrap_or(i64::MAX);
        let trigger = super::codes::trigger_code(a.trigger);
        let written = client
            .execute(
                "WITH done AS ( \
                     UPDATE deliveries SET state = $3, attempts = attempts + 1, \
                         schedule_step = $4, next_attempt_at = $5, last_status = $6, \
                         last_error = $7, updated_at = $8, lease_id = NULL, \
                         lease_until = NULL \
                     WHERE id = $1 AND lease_id = $2::text::uuid \
                     RETURNING id, attempts) \
                 INSERT INTO attempts (delivery_id, number, at, trigger, status, error, \
                     latency_ms, response_body) \
                 SELECT id, attempts, $8, $9, $6, $7, $10, $11 FROM done",
                &[
                    &claim.delivery.id,
                    &claim.lease_id,
                    &state,
                    &step,
                    &done.next_attempt_at,
                    &status,
                    &a.error,
                    &a.at,
                    &trigger,
                    &latency,
                    &a.response_body,
                ],
            )
            .await
            .map_err(sql)?;
        if written == 0 {
            tracing::warn!(
                delivery = %claim.delivery.id,
                "lease lost before the attempt was recorded; another node owns the delivery"
            );
        }
        Ok(written == 1)
    }

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
        // attempt is made again (the row is still due under an expired lease).
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .await
            .map_err(sql)?;
        let rows = tx
            .query(
                "WITH w AS ( \
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
                       AND d.next_attempt_at IS NOT NULL \
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
                     updated_at FROM done",
                &[
                    &self.node_id(),
                    &ids,
                    &states,
                    &next_at,
                    &statuses,
                    &errors,
                    &at,
                    &triggers,
                    &latencies,
                    &bodies,
                ],
            )
            .await
            .map_err(sql)?;
        let mut written = std::collections::HashMap::with_capacity(rows.len());
        for r in &rows {
            let d = super::ingest::delivery(r)?;
            written.insert(d.id.clone(), d);
        }
        if written.len() < n {
            // Rows still held but finished meanwhile (a manual retry delivered them)
            // give their lease back now rather than when it expires.
            tx.execute(
                "UPDATE deliveries SET lease_id = NULL, lease_until = NULL \
                 WHERE id = ANY($2) AND lease_id = $1::text::uuid",
                &[&self.node_id(), &ids],
            )
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
            .execute(
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

    /// Extends every lease this node holds to `now + lease_ms`, in one statement.
    /// Returns how many rows it holds.
    pub async fn renew_leases(&self, now: UnixMs, lease_ms: i64) -> Result<u64, StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE deliveries SET lease_until = $2 WHERE lease_id = $1::text::uuid",
                &[&self.node_id(), &now.saturating_add(lease_ms)],
            )
            .await
            .map_err(sql)
    }

    /// Gives back this node's leases of `ids` (claimed, never attempted), so any
    /// node may claim them at once. Returns how many it still held.
    pub async fn release_leases(&self, ids: &[String]) -> Result<u64, StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE deliveries SET lease_id = NULL, lease_until = NULL \
                 WHERE lease_id = $1::text::uuid AND id = ANY($2)",
                &[&self.node_id(), &ids],
            )
            .await
            .map_err(sql)
    }

    /// The earliest due time of an unleased unfinished delivery: when the delivery
    /// loop has work again, unless woken earlier. A time already past is due work
    /// the last claim left (held back by a FIFO head or other nodes' leases).
    pub async fn next_unleased_due(&self) -> Result<Option<UnixMs>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT min(next_attempt_at) FROM deliveries \
                 WHERE next_attempt_at IS NOT NULL AND lease_id IS NULL",
                &[],
            )
            .await
            .map_err(sql)?;
        Ok(row.get(0))
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
