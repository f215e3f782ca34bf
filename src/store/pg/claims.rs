//! Delivery claims on PostgreSQL: the delivery row is the job. A node claims due rows
//! in batches (`FOR UPDATE SKIP LOCKED`, so nodes never claim the same row) under a
//! lease id and a lease deadline, renews the lease while an attempt runs long, and
//! completes each row fenced by its lease id: the attempt row and the new state in
//! one statement, or nothing at all when the lease was lost (another node reclaimed
//! the row after it expired). No transaction is ever held across an HTTP call.

use super::{PgStore, sql};
use crate::model::{Attempt, Delivery, DeliveryState, UnixMs};
use crate::store::StoreError;

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
