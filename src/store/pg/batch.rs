//! The dispatcher across nodes: `claim_batch` decides, inside one short
//! transaction, which due deliveries this node may attempt now, under the rules
//! that must hold across every node on the database: the per-webhook in-flight
//! bound, FIFO order and `rate_limit_per_second`. Per-webhook decisions are
//! serialised by locking the webhook rows (`FOR UPDATE SKIP LOCKED`: a webhook
//! another node is claiming for right now is skipped this round, never waited for).
//! It never holds a transaction across anything but SQL, and never formats data
//! into SQL.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::Transaction;

use super::{PgStore, sql};
use crate::model::{Delivery, Event, UnixMs};
use crate::store::StoreError;

/// The bounds of one claim, as the calling node sees them.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimLimits {
    /// The most deliveries to claim (the node's free slots).
    pub slots: u32,
    /// `per_webhook_in_flight`: live leases of one webhook, over every node.
    pub per_webhook: u32,
    /// The most a tenant not listed in `tenant_room` may be given.
    pub tenant_share: u32,
    /// Tenants with work on this node and the room they have left on it; a tenant
    /// with 0 is not scanned at all.
    pub tenant_room: Vec<(String, u32)>,
    /// How long a claim holds (ms); renewed by `renew_leases`.
    pub lease_ms: i64,
}

/// A claimed delivery with its event: everything its attempt needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The delivery as claimed (its `next_attempt_at` is the due time it had).
    pub delivery: Delivery,
    pub event: Event,
    /// Until when this node holds it (Unix ms), unless renewed.
    pub lease_until: UnixMs,
}

/// What one claim took, and when a rate-limited webhook with due work gets its
/// next token (the caller's next wake-up).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claims {
    /// Oldest due first within each webhook.
    pub claimed: Vec<Claimed>,
    /// The earliest time a webhook held back by its rate limit may be claimed again.
    pub next_token_at: Option<UnixMs>,
}

/// Candidate rows read per pass, per free slot (bounded both ways).
const SCAN_PER_SLOT: i64 = 4;
const SCAN_MIN: i64 = 64;
const SCAN_MAX: i64 = 4096;
/// Passes over the due index per claim: a later pass skips every webhook an
/// earlier one considered, so webhooks that cannot take more (bound, FIFO head in
/// flight, no tokens, tenant full) never hide the others' work.
const PASSES: usize = 3;

/// A locked candidate webhook's settings.
struct Locked {
    live: bool,
    fifo: bool,
    rate: Option<i32>,
}

/// A token bucket row: burst one second's worth, refilled by elapsed time.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bucket {
    tokens: f64,
    updated_at: UnixMs,
}

impl Bucket {
    /// The bucket as of `now` (full when it has no row yet; time never runs back).
    fn refill(stored: Option<Bucket>, rate: f64, now: UnixMs) -> Bucket {
        match stored {
            None => Bucket {
                tokens: rate,
                updated_at: now,
            },
            Some(b) => {
                let at = now.max(b.updated_at);
                let elapsed = (at - b.updated_at) as f64 / 1000.0;
                Bucket {
                    tokens: (b.tokens + elapsed * rate).min(rate),
                    updated_at: at,
                }
            }
        }
    }

    /// Whole tokens available.
    fn whole(&self) -> u32 {
        self.tokens.max(0.0).floor() as u32
    }

    /// When the next whole token is there.
    fn next_token_at(&self, rate: f64) -> UnixMs {
        let missing = (1.0 - self.tokens.fract()).max(0.0);
        self.updated_at + (missing * 1000.0 / rate).ceil() as UnixMs
    }
}

impl PgStore {
    /// Claims due deliveries for this node (`node_id()`), leased until `now +
    /// limits.lease_ms`, in one transaction: scans the due index oldest first,
    /// locks the candidate webhooks, and per webhook claims what its in-flight bound
    /// (live leases of every node), FIFO line and token bucket allow, within this
    /// node's slots and tenant room. Due rows of a disabled, deleted or missing
    /// webhook are cancelled. Returns the rows with their events.
    pub async fn claim_batch(
        &self,
        now: UnixMs,
        limits: &ClaimLimits,
    ) -> Result<Claims, StoreError> {
        let mut out = Claims::default();
        if limits.slots == 0 {
            return Ok(out);
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(sql)?;
        // A claim lost in a crash is only a lease that never was: the rows are due
        // again. So its commit does not wait for the WAL flush.
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .await
            .map_err(sql)?;
        let mut round = Round::new(limits);
        for _ in 0..PASSES {
            let scanned = round.pass(&tx, self.node_id(), now, &mut out).await?;
            if scanned == Scanned::Exhausted || round.slots == 0 {
                break;
            }
        }
        tx.commit().await.map_err(sql)?;
        Ok(out)
    }
}

/// Whether a pass saw every due row it could, or stopped at its scan bound.
#[derive(Debug, PartialEq, Eq)]
enum Scanned {
    Exhausted,
    Bounded,
}

/// One claim's running state over its passes.
struct Round<'a> {
    limits: &'a ClaimLimits,
    slots: u32,
    /// Room left per tenant on this node.
    room: HashMap<String, u32>,
    /// Webhooks already considered this claim (skipped by later passes).
    considered: Vec<String>,
}

impl<'a> Round<'a> {
    fn new(limits: &'a ClaimLimits) -> Self {
        Round {
            limits,
            slots: limits.slots,
            room: limits.tenant_room.iter().cloned().collect(),
            considered: Vec::new(),
        }
    }

    fn room(&self, tenant: &str) -> u32 {
        self.room
            .get(tenant)
            .copied()
            .unwrap_or(self.limits.tenant_share)
    }

    /// One pass: candidates from the due index, their locks, the decision per
    /// webhook, the claim itself and the buckets' new levels.
    async fn pass(
        &mut self,
        tx: &Transaction<'_>,
        node: &str,
        now: UnixMs,
        out: &mut Claims,
    ) -> Result<Scanned, StoreError> {
        let full: Vec<&str> = self
            .room
            .iter()
            .filter(|(_, r)| **r == 0)
            .map(|(t, _)| t.as_str())
            .collect();
        let scan = (i64::from(self.slots) * SCAN_PER_SLOT).clamp(SCAN_MIN, SCAN_MAX);
        let rows = tx
            .query(
                "SELECT webhook_id, min(tenant), count(*) FROM ( \
                     SELECT webhook_id, tenant, next_attempt_at, id FROM deliveries \
                     WHERE next_attempt_at <= $1 \
                       AND (lease_until IS NULL OR lease_until <= $1) \
                       AND webhook_id <> ALL($2) AND tenant <> ALL($3) \
                     ORDER BY next_attempt_at, id LIMIT $4) s \
                 GROUP BY webhook_id ORDER BY min(next_attempt_at), min(id)",
                &[&now, &self.considered, &full, &scan],
            )
            .await
            .map_err(sql)?;
        let seen: i64 = rows.iter().map(|r| r.get::<_, i64>(2)).sum();
        let scanned = if seen < scan {
            Scanned::Exhausted
        } else {
            Scanned::Bounded
        };
        if rows.is_empty() {
            return Ok(Scanned::Exhausted);
        }
        let candidates: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let ids: Vec<String> = candidates.iter().map(|c| c.0.clone()).collect();
        self.considered.extend(ids.iter().cloned());

        let locked = lock_webhooks(tx, &ids).await?;
        // Candidates without a row at all (never created, or purged) are cancelled
        // with the disabled and deleted ones; those another node holds are skipped.
        let missing = missing_webhooks(tx, &ids, &locked).await?;
        let mut dead: Vec<String> = missing;
        dead.extend(
            locked
                .iter()
                .filter(|(_, l)| !l.live)
                .map(|(id, _)| id.clone()),
        );
        if !dead.is_empty() {
            cancel_due(tx, &dead, now).await?;
        }
        let live: Vec<String> = ids
            .iter()
            .filter(|id| locked.get(*id).is_some_and(|l| l.live))
            .cloned()
            .collect();
        if live.is_empty() {
            return Ok(scanned);
        }
        let leased = leased_counts(tx, &live, now).await?;
        let fifo: Vec<String> = live
            .iter()
            .filter(|id| locked.get(*id).is_some_and(|l| l.fifo))
            .cloned()
            .collect();
        let heads = fifo_heads(tx, &fifo).await?;
        let rated: Vec<String> = live
            .iter()
            .filter(|id| locked.get(*id).is_some_and(|l| l.rate.is_some()))
            .cloned()
            .collect();
        let mut buckets = load_buckets(tx, &rated).await?;

        // Decide per webhook, oldest due first.
        let mut take_wh: Vec<String> = Vec::new();
        let mut take_n: Vec<i32> = Vec::new();
        let mut take_fifo: Vec<String> = Vec::new();
        for (id, tenant) in &candidates {
            let Some(l) = locked.get(id).filter(|l| l.live) else {
                continue;
            };
            let held = leased.get(id).copied().unwrap_or(0);
            let mut n = self
                .limits
                .per_webhook
                .saturating_sub(held)
                .min(self.slots)
                .min(self.room(tenant));
            let mut head = None;
            if l.fifo {
                // One at a time, in event order: only the first unfinished delivery,
                // only when it is due and nothing of the webhook is leased.
                n = n.min(1);
                match heads.get(id) {
                    Some((head_id, due)) if held == 0 && *due <= now => {
                        head = Some(head_id.clone());
                    }
                    _ => n = 0,
                }
            }
            if let Some(rate) = l.rate.filter(|r| *r > 0) {
                let rate = f64::from(rate);
                let b = Bucket::refill(buckets.get(id).copied(), rate, now);
                if n > 0 && b.whole() == 0 {
                    let at = b.next_token_at(rate);
                    out.next_token_at = Some(out.next_token_at.map_or(at, |t| t.min(at)));
                }
                n = n.min(b.whole());
                buckets.insert(id.clone(), b);
            }
            if n == 0 {
                continue;
            }
            self.slots -= n;
            let room = self.room(tenant);
            self.room.insert(tenant.clone(), room - n);
            match head {
                Some(h) => take_fifo.push(h),
                None => {
                    take_wh.push(id.clone());
                    take_n.push(i32::try_from(n).unwrap_or(i32::MAX));
                }
            }
        }
        let until = now.saturating_add(self.limits.lease_ms);
        let claimed = if take_wh.is_empty() && take_fifo.is_empty() {
            Vec::new()
        } else {
            claim_rows(tx, node, now, until, &take_wh, &take_n, &take_fifo).await?
        };
        // Consume one token per claimed row of a rate-limited webhook (a claim that
        // ends without an attempt wastes its token: never over-admits).
        let mut used: HashMap<&str, u32> = HashMap::new();
        for c in &claimed {
            *used.entry(c.delivery.webhook_id.as_str()).or_default() += 1;
        }
        let mut save: Vec<(String, Bucket)> = Vec::new();
        for id in &rated {
            if let Some(b) = buckets.get(id) {
                let spent = f64::from(used.get(id.as_str()).copied().unwrap_or(0));
                save.push((
                    id.clone(),
                    Bucket {
                        tokens: b.tokens - spent,
                        updated_at: b.updated_at,
                    },
                ));
            }
        }
        save_buckets(tx, &save).await?;
        // Rows the decision counted on but another statement took meanwhile give
        // their slots back to later passes.
        let granted: u32 = take_n.iter().map(|n| *n as u32).sum::<u32>() + take_fifo.len() as u32;
        let got = claimed.len() as u32;
        self.slots += granted.saturating_sub(got);
        out.claimed.extend(claimed);
        Ok(scanned)
    }
}

/// Locks the candidate webhooks that no other transaction holds.
async fn lock_webhooks(
    tx: &Transaction<'_>,
    ids: &[String],
) -> Result<HashMap<String, Locked>, StoreError> {
    let rows = tx
        .query(
            "SELECT id, enabled AND deleted_at IS NULL, ordering, rate_limit_per_second \
             FROM webhooks WHERE id = ANY($1) ORDER BY id FOR UPDATE SKIP LOCKED",
            &[&ids],
        )
        .await
        .map_err(sql)?;
    Ok(rows
        .iter()
        .map(|r| {
            let ordering: i16 = r.get(2);
            (
                r.get(0),
                Locked {
                    live: r.get(1),
                    fifo: ordering == 1,
                    rate: r.get(3),
                },
            )
        })
        .collect())
}

/// The candidates that have no webhook row at all (not merely locked elsewhere).
async fn missing_webhooks(
    tx: &Transaction<'_>,
    ids: &[String],
    locked: &HashMap<String, Locked>,
) -> Result<Vec<String>, StoreError> {
    let unlocked: Vec<&String> = ids.iter().filter(|id| !locked.contains_key(*id)).collect();
    if unlocked.is_empty() {
        return Ok(Vec::new());
    }
    let rows = tx
        .query("SELECT id FROM webhooks WHERE id = ANY($1)", &[&unlocked])
        .await
        .map_err(sql)?;
    let present: HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
    Ok(unlocked
        .into_iter()
        .filter(|id| !present.contains(*id))
        .cloned()
        .collect())
}

/// Cancels the unleased unfinished rows of webhooks that can take no delivery.
async fn cancel_due(tx: &Transaction<'_>, ids: &[String], now: UnixMs) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE deliveries SET state = 4, next_attempt_at = NULL, updated_at = $2, \
             lease_id = NULL, lease_until = NULL \
         WHERE webhook_id = ANY($1) AND next_attempt_at IS NOT NULL \
           AND (lease_until IS NULL OR lease_until <= $2)",
        &[&ids, &now],
    )
    .await
    .map_err(sql)?;
    Ok(())
}

/// Live leases per webhook, over every node.
async fn leased_counts(
    tx: &Transaction<'_>,
    ids: &[String],
    now: UnixMs,
) -> Result<HashMap<String, u32>, StoreError> {
    let rows = tx
        .query(
            "SELECT webhook_id, count(*) FROM deliveries \
             WHERE webhook_id = ANY($1) AND lease_id IS NOT NULL AND lease_until > $2 \
             GROUP BY webhook_id",
            &[&ids, &now],
        )
        .await
        .map_err(sql)?;
    Ok(rows
        .iter()
        .map(|r| {
            let n: i64 = r.get(1);
            (r.get(0), u32::try_from(n).unwrap_or(u32::MAX))
        })
        .collect())
}

/// Each FIFO webhook's first unfinished delivery by id, with its due time.
async fn fifo_heads(
    tx: &Transaction<'_>,
    ids: &[String],
) -> Result<HashMap<String, (String, UnixMs)>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = tx
        .query(
            "SELECT f.wh, h.id, h.next_attempt_at FROM unnest($1::text[]) AS f(wh), \
             LATERAL (SELECT id, next_attempt_at FROM deliveries \
                      WHERE webhook_id = f.wh AND next_attempt_at IS NOT NULL \
                      ORDER BY id LIMIT 1) h",
            &[&ids],
        )
        .await
        .map_err(sql)?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect())
}

async fn load_buckets(
    tx: &Transaction<'_>,
    ids: &[String],
) -> Result<HashMap<String, Bucket>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = tx
        .query(
            "SELECT webhook_id, tokens, updated_at FROM rate_buckets WHERE webhook_id = ANY($1)",
            &[&ids],
        )
        .await
        .map_err(sql)?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                Bucket {
                    tokens: r.get(1),
                    updated_at: r.get(2),
                },
            )
        })
        .collect())
}

async fn save_buckets(
    tx: &Transaction<'_>,
    buckets: &[(String, Bucket)],
) -> Result<(), StoreError> {
    if buckets.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = buckets.iter().map(|(id, _)| id.as_str()).collect();
    let tokens: Vec<f64> = buckets.iter().map(|(_, b)| b.tokens).collect();
    let at: Vec<i64> = buckets.iter().map(|(_, b)| b.updated_at).collect();
    tx.execute(
        "INSERT INTO rate_buckets (webhook_id, tokens, updated_at) \
         SELECT * FROM unnest($1::text[], $2::float8[], $3::bigint[]) \
         ON CONFLICT (webhook_id) DO UPDATE \
             SET tokens = EXCLUDED.tokens, updated_at = EXCLUDED.updated_at",
        &[&ids, &tokens, &at],
    )
    .await
    .map_err(sql)?;
    Ok(())
}

/// Leases the chosen rows to `node` and returns them joined with their events: the
/// `n` oldest due unleased rows of each webhook in `webhooks`, and the FIFO heads
/// by id (re-checked due and unleased).
async fn claim_rows(
    tx: &Transaction<'_>,
    node: &str,
    now: UnixMs,
    until: UnixMs,
    webhooks: &[String],
    counts: &[i32],
    heads: &[String],
) -> Result<Vec<Claimed>, StoreError> {
    let rows = tx
        .query(
            "WITH picks AS ( \
                 SELECT p.id FROM unnest($3::text[], $4::int[]) AS x(wh, n), \
                 LATERAL (SELECT id FROM deliveries \
                          WHERE webhook_id = x.wh AND next_attempt_at <= $1 \
                            AND (lease_until IS NULL OR lease_until <= $1) \
                          ORDER BY next_attempt_at, id LIMIT x.n \
                          FOR UPDATE SKIP LOCKED) p \
                 UNION SELECT unnest($5::text[])), \
             c AS ( \
                 UPDATE deliveries d SET lease_id = $2::text::uuid, lease_until = $6 \
                 FROM picks WHERE d.id = picks.id AND d.next_attempt_at <= $1 \
                   AND (d.lease_until IS NULL OR d.lease_until <= $1) \
                 RETURNING d.id, d.tenant, d.event_id, d.webhook_id, d.event_type, d.state, \
                     d.attempts, d.schedule_step, d.next_attempt_at, d.last_status, \
                     d.last_error, d.created_at, d.updated_at) \
             SELECT c.*, e.id, e.tenant, e.event_type, e.payload, e.channels, \
                 e.idempotency_key, e.created_at \
             FROM c JOIN events e ON e.id = c.event_id \
             ORDER BY c.webhook_id, c.next_attempt_at, c.id",
            &[&now, &node, &webhooks, &counts, &heads, &until],
        )
        .await
        .map_err(sql)?;
    rows.iter()
        .map(|r| {
            Ok(Claimed {
                delivery: super::ingest::delivery(r)?,
                event: Event {
                    id: r.get(13),
                    tenant: r.get(14),
                    event_type: r.get(15),
                    payload: r.get(16),
                    channels: r.get(17),
                    idempotency_key: r.get(18),
                    created_at: r.get(19),
                },
                lease_until: until,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_starts_full_refills_by_elapsed_time_and_never_runs_back() {
        let b = Bucket::refill(None, 20.0, 1_000);
        assert_eq!((b.whole(), b.updated_at), (20, 1_000));
        let spent = Bucket {
            tokens: 0.0,
            updated_at: 1_000,
        };
        // 20/s: one token per 50 ms, burst one second's worth.
        assert_eq!(Bucket::refill(Some(spent), 20.0, 1_049).whole(), 0);
        assert_eq!(Bucket::refill(Some(spent), 20.0, 1_050).whole(), 1);
        assert_eq!(Bucket::refill(Some(spent), 20.0, 60_000).whole(), 20);
        assert_eq!(spent.next_token_at(20.0), 1_050);
        // A caller whose clock is behind the bucket's gets nothing extra.
        let behind = Bucket::refill(Some(spent), 20.0, 900);
        assert_eq!((behind.whole(), behind.updated_at), (0, 1_000));
    }
}
