//! The dispatcher across nodes: `claim_batch` decides, inside one short
//! transaction, which due deliveries this node may attempt now, under the rules
//! that must hold across every node on the database: the per-webhook in-flight
//! bound, FIFO order and `rate_limit_per_second`; and says why it left due work
//! and when work is due next. Per-webhook decisions are serialised by locking the
//! webhook rows (`FOR UPDATE SKIP LOCKED`: a webhook another node is claiming for
//! right now is skipped this round, never waited for). It never holds a transaction
//! across anything but SQL, and never formats data into SQL.

mod bucket;
mod sql;

pub(super) use sql::{
    CANCEL_DUE, FIRST_LOOK, LATER_LOOK, LEASE, LOCK_WEBHOOKS, NEXT_DUE, PICK, SAVE_BUCKETS,
    WEBHOOK_INFO, WINDOW_LOOK,
};

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::conn::Tx;

use self::bucket::Bucket;
use self::sql::{Candidate, Info};
use super::PgStore;
use super::plans::LAZY_GENERIC;
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
    /// Shared by the deliveries of one event that a claim takes together.
    pub event: Arc<Event>,
    /// Until when this node holds it (Unix ms), unless renewed.
    pub lease_until: UnixMs,
}

/// Why a claim left due work behind (several may hold at once). The caller's
/// next look follows from it: work behind this node's own leases or bounds comes
/// back with this node's own `Done`/`Finished`; the rest does not tell this node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Left {
    /// A FIFO line waits on its head, which is in flight (on any node).
    pub fifo: bool,
    /// A webhook is at its `per_webhook_in_flight` bound (leases of any node).
    pub bound: bool,
    /// Of the above, some leases are other nodes': their end is not reported to
    /// this node (only its backstop or a short look again finds it).
    pub elsewhere: bool,
    /// A webhook row (or a due row) was held by another transaction (a webhook
    /// write, another node's claim) and skipped for now.
    pub locked: bool,
    /// This node's own slots or a tenant's room on it ran out.
    pub room: bool,
    /// The claim's passes ended before every webhook with due work was looked at.
    pub unseen: bool,
}

impl Left {
    /// Whether only something other than this node can release the work left
    /// (or it was not looked at): worth a short look again rather than waiting
    /// for this node's own attempts to end.
    pub fn needs_look(&self) -> bool {
        self.elsewhere || self.locked || self.unseen
    }
}

/// What one claim took, why it left due work, and when to look again.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claims {
    /// Oldest due first within each webhook.
    pub claimed: Vec<Claimed>,
    /// The earliest time a webhook held back by its rate limit may be claimed again.
    pub next_token_at: Option<UnixMs>,
    /// The earliest due time after `now` of any unfinished delivery (a retry, a
    /// FIFO head waiting for its retry), as of the claim's start.
    pub next_due: Option<UnixMs>,
    /// Why due work was left.
    pub left: Left,
}

/// Bounds of a pass's read (`Round::scan`).
const SCAN_MIN: i64 = 64;
const SCAN_MAX: i64 = 4096;
/// Passes per claim. The first reads the due index oldest first and, when that read
/// is cut by its bound, looks once at each other webhook with due work (a loose
/// index scan), in the same statement; later passes (only when that look was cut
/// too) look at the webhooks not yet considered. So webhooks that cannot take more
/// (bound, FIFO head in flight, no tokens, tenant full) never hide the others'
/// work, at a cost per webhook with unfinished rows, not per backlog row. A first
/// pass that read the window alone (the last claim's was not cut) gets one pass
/// more, so a claim has as many looks beyond the window either way.
const PASSES: usize = 3;

impl PgStore {
    /// Claims due deliveries for this node (`node_id()`), leased until `now +
    /// limits.lease_ms`, in one transaction: scans the due index oldest first,
    /// locks the candidate webhooks, and per webhook claims what its in-flight bound
    /// (live leases of every node), FIFO line and token bucket allow, within this
    /// node's slots and tenant room. Due rows of a disabled, deleted or missing
    /// webhook are cancelled. Returns the rows with their events, why due work was
    /// left, and the next due time after `now`.
    pub async fn claim_batch(
        &self,
        now: UnixMs,
        limits: &ClaimLimits,
    ) -> Result<Claims, StoreError> {
        let mut out = Claims::default();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(super::sql)?;
        let mut round = Round::new(limits);
        if limits.slots == 0 {
            // Under the claim's settings even here: whichever call first plans the
            // cached statement gives the connection its plan.
            let (_, next_due) = tokio::try_join!(
                biased;
                async { tx.batch_execute(LAZY_GENERIC).await.map_err(super::sql) },
                sql::next_due_after(&tx, now),
            )?;
            out.next_due = next_due;
            out.left.room = true;
            tx.commit().await.map_err(super::sql)?;
            return Ok(out);
        }
        // A claim lost in a crash is only a lease that never was: the rows are due
        // again. So its commit does not wait for the WAL flush (`LAZY_GENERIC`).
        // The settings, the next due time and the first look go in one round trip,
        // sent in the order written (`biased`). Every statement of the claim is
        // planned once per connection (`plans.rs`).
        //
        // Neither bitmap nor sequential scans, in the whole transaction: every
        // claim statement is built on an index walk.
        // - The live-lease count reads `deliveries_leased_webhook`, whose entries
        //   for leases since completed stay until vacuum (the lease and the
        //   completion are not HOT updates). A bitmap scan visits every one of them
        //   on each claim (about 480 per webhook, 2,500 buffers per claim in the
        //   10-subscription benchmark); a plain index scan marks the dead ones once
        //   and skips them from then on.
        // - Under a deep backlog the planner, misjudging how many rows are due, read
        //   the first pass's window as a sequential scan of `deliveries` and a sort
        //   (3.3 ms with 20,000 due rows, growing with the backlog) instead of the
        //   first rows of `deliveries_due`.
        let scan = round.scan();
        let full = round.full();
        if !full.is_empty() {
            out.left.room = true;
        }
        // The first look goes beyond the window in the same statement only when the
        // last claim's window was cut; otherwise it reads the window alone, whose
        // plan is a quarter of the price, and a cut found there sends the rest to
        // the later passes.
        let wide = self.window_cut.load(Ordering::Relaxed);
        let (_, next_due, first) = tokio::try_join!(
            biased;
            async { tx.batch_execute(LAZY_GENERIC).await.map_err(super::sql) },
            sql::next_due_after(&tx, now),
            async {
                if wide {
                    sql::scan_first(&tx, now, &full, scan, scan).await
                } else {
                    sql::scan_window(&tx, now, &full, scan).await
                }
            },
        )?;
        drop(full);
        self.window_cut.store(first.cut, Ordering::Relaxed);
        let mut more = first.unseen;
        out.next_due = next_due;
        round
            .decide(&tx, self.node_id(), now, first.found, &mut out)
            .await?;
        for _ in 1..PASSES + usize::from(!wide) {
            if !more || round.slots == 0 {
                break;
            }
            let limit = round.scan();
            let full = round.full();
            let found = sql::scan_webhooks(&tx, now, &round.considered, &full, limit).await?;
            drop(full);
            more = found.len() as i64 >= limit;
            round
                .decide(&tx, self.node_id(), now, found, &mut out)
                .await?;
        }
        if more && round.slots > 0 {
            out.left.unseen = true;
        }
        if round.slots == 0 {
            out.left.room = true;
        }
        tx.commit().await.map_err(super::sql)?;
        Ok(out)
    }
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

    /// Tenants with no room left on this node (not scanned).
    fn full(&self) -> Vec<&str> {
        self.room
            .iter()
            .filter(|(_, r)| **r == 0)
            .map(|(t, _)| t.as_str())
            .collect()
    }

    /// How many rows (first pass) or webhooks (later passes) a pass reads at most:
    /// one per free slot, since a claim takes at most that many rows. Four per slot
    /// only lengthened the read of a saturated webhook's backlog (one busy webhook:
    /// 960 rows for the 16 its bound admits, half the first scan's time); when the
    /// read is cut, the loose scan finds the webhooks beyond it.
    fn scan(&self) -> i64 {
        i64::from(self.slots).clamp(SCAN_MIN, SCAN_MAX)
    }

    /// One pass's decision over its candidates: their locks, what each may take,
    /// the claim itself and the buckets' new levels.
    async fn decide(
        &mut self,
        tx: &Tx<'_>,
        node: &str,
        now: UnixMs,
        candidates: Vec<Candidate>,
        out: &mut Claims,
    ) -> Result<(), StoreError> {
        if candidates.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = candidates.iter().map(|c| c.webhook.clone()).collect();
        self.considered.extend(ids.iter().cloned());
        // The locks first, then what they protect, read by a statement that starts
        // after them.
        let (locked, info) = sql::lock_and_read(tx, &ids, node, now).await?;
        // Candidates without a row at all (never created, or purged) are cancelled
        // with the disabled and deleted ones; those another transaction holds are
        // skipped for now.
        let mut dead: Vec<String> = Vec::new();
        for id in &ids {
            match locked.get(id) {
                Some(l) if !l.live => dead.push(id.clone()),
                Some(_) => {}
                None if info.get(id).is_some_and(|i| i.present) => out.left.locked = true,
                None => dead.push(id.clone()),
            }
        }
        if !dead.is_empty() {
            sql::cancel_due(tx, &dead, now).await?;
        }
        let none = Info::default();
        let mut buckets: HashMap<String, Bucket> = HashMap::new();
        // Decide per webhook, oldest due first.
        let mut take_wh: Vec<String> = Vec::new();
        let mut take_n: Vec<i32> = Vec::new();
        let mut take_fifo: Vec<String> = Vec::new();
        for c in &candidates {
            let Some(l) = locked.get(&c.webhook).filter(|l| l.live) else {
                continue;
            };
            let i = info.get(&c.webhook).unwrap_or(&none);
            let bound = self.limits.per_webhook.saturating_sub(i.held);
            let own = self.slots.min(self.room(&c.tenant));
            let mut n = bound.min(own);
            if c.all {
                // No more than it has: the slots stay for the next webhooks.
                n = n.min(c.due);
            }
            let mut head = None;
            if l.fifo {
                // One at a time, in event order: only the first unfinished delivery,
                // only when it is due and nothing of the webhook is leased.
                n = n.min(1);
                match &i.head {
                    Some((head_id, due)) if i.held == 0 && *due <= now => {
                        head = Some(head_id.clone());
                    }
                    Some((_, due)) if *due <= now => {
                        out.left.fifo = true;
                        sql::held_by(&mut out.left, i);
                        n = 0;
                    }
                    // The head waits for its retry: `next_due` wakes the caller.
                    _ => n = 0,
                }
            } else if bound < c.due.min(own) || bound == 0 {
                out.left.bound = true;
                sql::held_by(&mut out.left, i);
            }
            if own < c.due.min(bound) {
                out.left.room = true;
            }
            if let Some(rate) = l.rate.filter(|r| *r > 0) {
                let rate = f64::from(rate);
                let b = Bucket::refill(i.bucket, rate, now);
                if n > 0 && b.whole() == 0 {
                    let at = b.next_token_at(rate);
                    out.next_token_at = Some(out.next_token_at.map_or(at, |t| t.min(at)));
                }
                n = n.min(b.whole());
                buckets.insert(c.webhook.clone(), b);
            }
            if n == 0 {
                continue;
            }
            self.slots -= n;
            let room = self.room(&c.tenant);
            self.room.insert(c.tenant.clone(), room - n);
            match head {
                Some(h) => take_fifo.push(h),
                None => {
                    take_wh.push(c.webhook.clone());
                    take_n.push(i32::try_from(n).unwrap_or(i32::MAX));
                }
            }
        }
        let until = now.saturating_add(self.limits.lease_ms);
        let claimed = if take_wh.is_empty() && take_fifo.is_empty() {
            Vec::new()
        } else {
            sql::claim_rows(tx, node, now, until, &take_wh, &take_n, &take_fifo).await?
        };
        // Consume one token per claimed row of a rate-limited webhook (a claim that
        // ends without an attempt wastes its token: never over-admits).
        let mut used: HashMap<&str, u32> = HashMap::new();
        for c in &claimed {
            *used.entry(c.delivery.webhook_id.as_str()).or_default() += 1;
        }
        let save: Vec<(String, Bucket)> = buckets
            .iter()
            .map(|(id, b)| {
                let spent = f64::from(used.get(id.as_str()).copied().unwrap_or(0));
                let b = Bucket {
                    tokens: b.tokens - spent,
                    updated_at: b.updated_at,
                };
                (id.clone(), b)
            })
            .collect();
        sql::save_buckets(tx, &save).await?;
        // Rows the decision counted on but that were not there (fewer due than the
        // bound allowed, or held by another transaction) give their slots back to
        // later passes.
        let granted: u32 = take_n.iter().map(|n| *n as u32).sum::<u32>() + take_fifo.len() as u32;
        self.slots += granted.saturating_sub(claimed.len() as u32);
        out.claimed.extend(claimed);
        Ok(())
    }
}
