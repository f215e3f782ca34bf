//! The scheduler when the store is PostgreSQL: the database is the dispatcher
//! across nodes (`PgStore::claim_batch`), and this loop only keeps the node's own
//! books (its in-flight slots, each tenant's share on this node, outcomes awaiting
//! their commit), claims when there is room and a reason, spawns one attempt task
//! per claim (the same attempt, recorder and follow-up path as on redb), renews the
//! node's leases every lease/3, and gives back what it claimed but never started
//! when it stops. It never holds a transaction and never decides a cross-node rule
//! (bound, FIFO, rate) itself.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::context::Ctx;
use super::msg::{Msg, Outcome, Settled, Work};
use super::{followup, recorder, scheduler};
use crate::model::now_ms;
use crate::store::DueEntry;
use crate::store::pg::{ClaimLimits, Claimed, Left, PgStore};

/// The longest the loop sleeps without looking at the database (the backstop for
/// work it was not told about: another node's retries, expired leases).
const BACKSTOP: Duration = Duration::from_secs(1);

/// How long the loop first waits before looking again at due work a claim left for
/// reasons this node is not told about (see `Books::look_again`).
const BLOCKED_PAUSE: Duration = Duration::from_millis(10);

/// The node's own books: what it runs, what waits for a tenant's share, and what
/// awaits its commit. Pure; the loop feeds it and asks it.
struct Books {
    max: usize,
    per_webhook: usize,
    tenant_share: usize,
    /// Outcomes awaiting their commit (attempts in flight included) at most.
    max_unsettled: usize,
    in_flight: usize,
    /// Attempts running per tenant, and per webhook with its tenant.
    tenants: HashMap<String, usize>,
    webhooks: HashMap<String, (String, usize)>,
    /// Claimed (leased) but not started: over its tenant's share on this node.
    queued: VecDeque<Claimed>,
    /// Delivery ids started whose outcome is not committed yet.
    unsettled: HashSet<String>,
    /// The last look was held back by this node's own bounds (slots, a tenant's
    /// share): a freed slot is a reason to claim again. Otherwise it is not, and
    /// no claim is wasted on it.
    starved: bool,
    /// Looks in a row that left due work only something else can release (other
    /// nodes' leases, a row another transaction held, work not looked at) and
    /// claimed nothing: the pause before the next look doubles with each, up to
    /// the backstop.
    held_back: u32,
    /// The last claim left due work behind a bound, a FIFO head, a lock, this
    /// node's room or an unseen webhook (any `Left` reason): a lease given back
    /// (`Done`) may release some of it, so it is a reason to claim again. When the
    /// last claim took everything due, a `Done` is not: new work comes with its
    /// own wake-up, and a retry's due time is noted in `retry_at`.
    left_behind: bool,
    /// The earliest retry committed since the last claim (Unix ms): the loop's
    /// timer, as the claim's `next_due` would have said had it run after it.
    retry_at: Option<i64>,
}

impl Books {
    fn of(ctx: &Ctx) -> Books {
        Books::new(
            ctx.cfg.max_in_flight,
            ctx.cfg.per_webhook_in_flight,
            ctx.cfg.per_tenant_in_flight,
        )
    }

    fn new(max: usize, per_webhook: usize, tenant_share: usize) -> Books {
        let max = max.max(1);
        Books {
            max,
            per_webhook: per_webhook.max(1),
            tenant_share: tenant_share.max(1),
            max_unsettled: (4 * max).max(64),
            in_flight: 0,
            tenants: HashMap::new(),
            webhooks: HashMap::new(),
            queued: VecDeque::new(),
            unsettled: HashSet::new(),
            starved: false,
            held_back: 0,
            left_behind: true,
            retry_at: None,
        }
    }

    /// How many more deliveries this node may claim now.
    fn free(&self) -> usize {
        let busy = self.in_flight + self.queued.len();
        let waiting = self.unsettled.len() + self.queued.len();
        self.max
            .saturating_sub(busy)
            .min(self.max_unsettled.saturating_sub(waiting))
    }

    /// What a claim may take: the free slots and each active tenant's room.
    ///
    /// The claim looks ahead: a tenant's room is its share less what already waits
    /// for it (claimed, not started), not less what runs. A claim takes a few
    /// milliseconds and the exchanges running when it starts mostly end before it
    /// returns; counting them would halve every claim under load (each would take
    /// only the share the previous batch left, and claims are serial per node).
    /// What the claim brings beyond the share waits leased in `queued` and starts
    /// as attempts end (`startable`), so at most `tenant_share` attempts of a tenant
    /// run on this node, as before, and at most twice that are leased.
    fn limits(&self, lease_ms: i64) -> ClaimLimits {
        let mut used: HashMap<&str, usize> = HashMap::new();
        for t in self.tenants.keys() {
            used.entry(t.as_str()).or_default();
        }
        for c in &self.queued {
            *used.entry(c.delivery.tenant.as_str()).or_default() += 1;
        }
        ClaimLimits {
            slots: u32::try_from(self.free()).unwrap_or(u32::MAX),
            per_webhook: u32::try_from(self.per_webhook).unwrap_or(u32::MAX),
            tenant_share: u32::try_from(self.tenant_share).unwrap_or(u32::MAX),
            tenant_room: used
                .into_iter()
                .map(|(t, n)| {
                    let room = self.tenant_share.saturating_sub(n);
                    (t.to_owned(), u32::try_from(room).unwrap_or(u32::MAX))
                })
                .collect(),
            lease_ms,
        }
    }

    fn tenant_busy(&self, tenant: &str) -> usize {
        self.tenants.get(tenant).copied().unwrap_or(0)
    }

    /// Takes new claims in, and hands out (in claim order) those that may start
    /// now; the rest wait for their tenant's share.
    fn accept(&mut self, claimed: Vec<Claimed>) -> Vec<Claimed> {
        self.queued.extend(claimed);
        self.startable()
    }

    /// The waiting claims that fit now, each counted as started.
    fn startable(&mut self) -> Vec<Claimed> {
        let mut out = Vec::new();
        let mut keep = VecDeque::with_capacity(self.queued.len());
        while let Some(c) = self.queued.pop_front() {
            if self.in_flight < self.max && self.tenant_busy(&c.delivery.tenant) < self.tenant_share
            {
                self.started(&c);
                out.push(c);
            } else {
                keep.push_back(c);
            }
        }
        self.queued = keep;
        out
    }

    fn started(&mut self, c: &Claimed) {
        let d = &c.delivery;
        self.in_flight += 1;
        *self.tenants.entry(d.tenant.clone()).or_default() += 1;
        self.webhooks
            .entry(d.webhook_id.clone())
            .or_insert_with(|| (d.tenant.clone(), 0))
            .1 += 1;
        self.unsettled.insert(d.id.clone());
    }

    /// Whether the node's own bounds hold work back: no free slot, or a tenant at
    /// its share (its due work was not even looked at).
    fn constrained(&self) -> bool {
        self.free() == 0
            || !self.queued.is_empty()
            || self.tenants.values().any(|n| *n >= self.tenant_share)
    }

    /// An attempt's exchange ended: its slots are free.
    fn finished(&mut self, webhook_id: &str) {
        let Some((tenant, n)) = self.webhooks.get_mut(webhook_id) else {
            return;
        };
        *n -= 1;
        let tenant = tenant.clone();
        if *n == 0 {
            self.webhooks.remove(webhook_id);
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(t) = self.tenants.get_mut(&tenant) {
            *t -= 1;
            if *t == 0 {
                self.tenants.remove(&tenant);
            }
        }
    }

    /// When to look again after a claim that left due work for `left`'s reasons,
    /// unless this node's own `Done`/`Finished` or a timer comes first: `None` when
    /// only this node's own leases and bounds hold it (their end wakes the loop),
    /// else after a short pause, doubling while such looks claim nothing.
    fn look_again(&mut self, left: Left, claimed_any: bool) -> Option<Instant> {
        if !left.needs_look() {
            self.held_back = 0;
            return None;
        }
        if claimed_any {
            self.held_back = 0;
        } else {
            self.held_back = self.held_back.saturating_add(1);
        }
        let pause = BLOCKED_PAUSE.saturating_mul(1 << self.held_back.min(7));
        Some(Instant::now() + pause.min(BACKSTOP))
    }

    /// An attempt's outcome is committed (or it was skipped); `true` when that is a
    /// reason to claim now: the last claim left due work (or was held back by this
    /// node's own bounds) that the lease given back may release, or nothing was
    /// written. A retry only moves the loop's timer.
    fn done(&mut self, delivery_id: &str, settled: Settled) -> bool {
        self.unsettled.remove(delivery_id);
        match settled {
            Settled::Unchanged => return true,
            Settled::RetryAt(at) => {
                self.retry_at = Some(self.retry_at.map_or(at, |t| t.min(at)));
            }
            Settled::Final => {}
        }
        self.left_behind || self.starved
    }

    /// When the earliest retry noted since the last claim falls due, if any.
    fn retry_timer(&self) -> Option<Instant> {
        self.retry_at.map(|at| instant_at(at, now_ms()))
    }

    /// When the loop looks again with no message: at `wake` (what the last claim
    /// said), at a retry noted since, and at the latest after the backstop.
    fn until(&self, wake: Instant) -> Instant {
        self.retry_timer()
            .map_or(wake, |retry| retry.min(wake))
            .min(Instant::now() + BACKSTOP)
    }
}

/// The instant at Unix ms `at`, seen from Unix ms `now` (at once if past).
fn instant_at(at: i64, now: i64) -> Instant {
    let wait = u64::try_from(at.saturating_sub(now)).unwrap_or(0);
    Instant::now() + Duration::from_millis(wait)
}

/// Runs the claim loop until `shutdown`, then stops claiming, gives back what
/// waits unstarted, lets attempts finish and be recorded (at most `grace`), and
/// gives back the leases of attempts still running after it.
pub(super) async fn run(
    ctx: Arc<Ctx>,
    pg: PgStore,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let mut books = Books::of(&ctx);
    let lease = ctx.cfg.lease.max(Duration::from_millis(3));
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let wakeups = pg.wakeups();
    let mut renew = tokio::time::interval_at((Instant::now() + lease / 3).into(), lease / 3);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut claim = true;
    let mut wake = Instant::now();
    loop {
        while let Ok(msg) = rx.try_recv() {
            claim |= handle(&ctx, &mut books, msg);
        }
        if shutdown.is_cancelled() {
            break;
        }
        if claim {
            claim = false;
            // Without room, the next `Finished` or `Done` is the reason to look again.
            wake = if books.free() > 0 {
                // A wake-up stored by a commit before this point is answered by
                // this claim, which starts after it: taken now, it does not cost a
                // second, empty claim. One stored during the claim stays for the next.
                std::pin::pin!(wakeups.notified()).enable();
                claim_once(&ctx, &pg, &mut books, lease_ms).await
            } else {
                books.starved = true;
                Instant::now() + BACKSTOP
            };
        }
        let until = books.until(wake);
        tokio::select! {
            () = shutdown.cancelled() => break,
            msg = rx.recv() => match msg {
                Some(m) => claim |= handle(&ctx, &mut books, m),
                None => break,
            },
            () = wakeups.notified() => claim = true,
            () = tokio::time::sleep_until(until.into()) => claim = true,
            _ = renew.tick() => renew_all(&pg, &books, lease_ms).await,
        }
    }
    // Stop claiming. What waits unstarted goes back at once, for any node.
    let waiting: Vec<String> = books.queued.drain(..).map(|c| c.delivery.id).collect();
    release(&pg, &waiting).await;
    let deadline = Instant::now() + grace;
    while !books.unsettled.is_empty() {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(m @ (Msg::Finished { .. } | Msg::Done { .. })) => { handle(&ctx, &mut books, m); }
                Some(_) => {}
                None => break,
            },
            _ = renew.tick() => renew_all(&pg, &books, lease_ms).await,
            () = tokio::time::sleep_until(deadline.into()) => {
                tracing::warn!(in_flight = books.in_flight, "attempts still in flight after the grace period; their leases are given back and they will be retried");
                break;
            }
        }
    }
    let abandoned: Vec<String> = books.unsettled.drain().collect();
    release(&pg, &abandoned).await;
}

/// Feeds one message to the books; `true` when it is a reason to claim now.
fn handle(ctx: &Arc<Ctx>, books: &mut Books, msg: Msg) -> bool {
    match msg {
        Msg::Finished { webhook_id } => {
            books.finished(&webhook_id);
            for c in books.startable() {
                spawn_attempt(ctx.clone(), c);
            }
            books.starved
        }
        // A committed outcome gives its lease back: the webhook's bound (over every
        // node) may admit more now if the last claim left work (`Books::done`), and
        // a FIFO line's next delivery waits for this outcome (always a reason).
        Msg::Done {
            delivery_id,
            webhook_id,
            settled,
        } => {
            books.done(&delivery_id, settled)
                || ctx
                    .registry
                    .webhook(&webhook_id)
                    .is_none_or(|w| scheduler::is_fifo(&w))
        }
        // New work (the ingest fast path: its rows are committed, the claim finds
        // them), a recover or a changed webhook: the database has the truth.
        Msg::Work(_) | Msg::Sweep | Msg::Resync { .. } | Msg::Changed { .. } => true,
        // A manual retry delivered a delivery: its row is finished, nothing to do.
        Msg::Delivered { .. } => false,
    }
}

/// Claims what the node has room for, starts what fits, and says when to look
/// again unless woken earlier: when the claim filled every slot, at the next freed
/// slot (`Finished`, `Done`); else at the next due time or rate-limit token, or
/// sooner when the claim left due work that only others release (`Left`).
async fn claim_once(ctx: &Arc<Ctx>, pg: &PgStore, books: &mut Books, lease_ms: i64) -> Instant {
    let now = now_ms();
    let limits = books.limits(lease_ms);
    let claims = match pg.claim_batch(now, &limits).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot claim deliveries");
            books.starved = false;
            books.left_behind = true;
            return Instant::now() + BACKSTOP;
        }
    };
    let filled = claims.claimed.len() >= limits.slots as usize;
    let claimed_any = !claims.claimed.is_empty();
    books.left_behind = claims.left != Left::default();
    books.retry_at = None;
    for c in books.accept(claims.claimed) {
        spawn_attempt(ctx.clone(), c);
    }
    books.starved = filled || claims.left.room || books.constrained();
    if filled {
        return Instant::now() + BACKSTOP;
    }
    let timer = [claims.next_due, claims.next_token_at]
        .into_iter()
        .flatten()
        .min()
        .map(|at| instant_at(at, now));
    let pause = books.look_again(claims.left, claimed_any);
    [timer, pause]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(Instant::now() + BACKSTOP)
}

/// Renews the leases `books` knows this node holds (claimed and waiting, or started
/// and not yet settled). Any other lease under this node's id is one it lost track
/// of (see `PgStore::renew_leases`) and runs out, so any node claims it again.
async fn renew_all(pg: &PgStore, books: &Books, lease_ms: i64) {
    let held: Vec<String> = books
        .queued
        .iter()
        .map(|c| c.delivery.id.clone())
        .chain(books.unsettled.iter().cloned())
        .collect();
    if let Err(e) = pg.renew_leases(now_ms(), lease_ms, &held).await {
        tracing::error!(error = %e, "cannot renew this node's delivery leases");
    }
}

async fn release(pg: &PgStore, ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    if let Err(e) = pg.release_leases(ids).await {
        tracing::warn!(error = %e, "cannot give back delivery leases; they expire instead");
    }
}

/// The work of a claim, with its records (no second read).
fn work(c: Claimed) -> Work {
    let due = c.delivery.next_attempt_at.unwrap_or(0).max(0) as u64;
    Work {
        entry: DueEntry {
            due,
            delivery_id: c.delivery.id.clone(),
            webhook_id: c.delivery.webhook_id.clone(),
        },
        loaded: Some((c.delivery, c.event)),
    }
}

/// Runs one attempt in its own task (as the redb scheduler does): `Finished` when
/// the exchange ends, then the outcome to the recorder.
fn spawn_attempt(ctx: Arc<Ctx>, c: Claimed) {
    let span = tracing::debug_span!(
        "attempt",
        delivery_id = %c.delivery.id,
        webhook_id = %c.delivery.webhook_id,
        event_id = %c.event.id,
    );
    tokio::spawn(
        async move {
            let work = work(c);
            let webhook_id = work.entry.webhook_id.clone();
            let outcome = scheduler::run_attempt(&ctx, work).await;
            let _ = ctx.to_scheduler.send(Msg::Finished { webhook_id });
            let _ = ctx.to_recorder.send(outcome);
        }
        .instrument(span),
    );
}

/// One step for `Engine::run_due_once`: claims what is due by `now` within the
/// bounds, attempts it, records the outcomes and handles their follow-ups, and
/// again while claims find work not attempted in this step. Returns the attempts
/// made. A delivery due again within the step (a retry) is given back for the
/// next step.
pub(super) async fn run_once(ctx: &Arc<Ctx>, pg: &PgStore, now: i64) -> usize {
    let books = Books::of(ctx);
    let lease_ms = i64::try_from(ctx.cfg.lease.as_millis()).unwrap_or(i64::MAX);
    let mut seen = HashSet::new();
    let mut made = 0;
    loop {
        let claims = match pg.claim_batch(now, &books.limits(lease_ms)).await {
            Ok(c) => c.claimed,
            Err(e) => {
                tracing::error!(error = %e, "cannot claim deliveries");
                return made;
            }
        };
        let (fresh, again): (Vec<_>, Vec<_>) = claims
            .into_iter()
            .partition(|c| seen.insert(c.delivery.id.clone()));
        let again: Vec<String> = again.into_iter().map(|c| c.delivery.id).collect();
        release(pg, &again).await;
        if fresh.is_empty() {
            return made;
        }
        let tasks: Vec<_> = fresh
            .into_iter()
            .map(|c| {
                let ctx = ctx.clone();
                tokio::spawn(async move { scheduler::run_attempt(&ctx, work(c)).await })
            })
            .collect();
        let mut outcomes = Vec::with_capacity(tasks.len());
        for t in tasks {
            if let Ok(o) = t.await {
                if matches!(o, Outcome::Attempted(_)) {
                    made += 1;
                }
                outcomes.push(o);
            }
        }
        let recorded = recorder::record(ctx, outcomes).await;
        for f in recorded.followups {
            followup::handle(ctx, f).await;
        }
    }
}

#[cfg(test)]
#[path = "claimloop_tests.rs"]
mod tests;
