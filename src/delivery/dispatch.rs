//! The dispatcher: every decision about which delivery to attempt when, and nothing
//! else. It is pure: no I/O, no tokio, no clock (`now` is a parameter, Unix ms), no
//! registry (the caller passes a webhook's tenant and rate limit), so each rule has
//! a table-driven unit test (`dispatch_tests.rs`). The scheduler task around it does
//! the reads it asks for ([`Read`]) and spawns the work it hands out.
//!
//! It owns: the claims (a delivery is claimed from the moment it is queued until
//! its outcome is committed, [`Dispatcher::done`]); one queue per webhook, oldest
//! first by `(due, delivery id)`; the round robin (by tenant first, then by webhook
//! within the tenant); the bounds on requests in flight (global, per tenant, per
//! webhook), counted from start to [`Dispatcher::finished`]; the token buckets of
//! `rate_limit_per_second`; the bound on outcomes awaiting their commit; the bounds on
//! waiting work (count per webhook and in all, and bytes of event held in memory:
//! past `max_queued_bytes` work waits as ids); and the disk backlog: when a webhook's
//! due work does not fit in memory, newer work of that webhook stays on disk too and
//! is refilled oldest first, so it never overtakes older work. FIFO webhooks
//! (`ordering: "fifo"`) keep a line instead of a queue: one delivery at a time in
//! event order, the head keeping its place through retries; those rules live in
//! `line.rs`; the reads it asks for and their answers live in `reads.rs` (child
//! modules: the same state, their own files).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use super::bucket::Bucket;
use super::msg::{Settled, Work};
use crate::store::DueEntry;

#[path = "line.rs"]
mod line;
#[path = "reads.rs"]
mod reads;

pub(super) use reads::Read;

/// Due entries read per sweep step.
pub(super) const SCAN_BATCH: usize = 512;
/// The longest the scheduler sleeps without looking at the due index (ms).
pub(super) const MAX_IDLE_MS: i64 = 5_000;
/// Token buckets kept before full ones are pruned.
const BUCKETS_KEPT: usize = 1024;

/// The dispatcher's bounds.
#[derive(Clone, Debug)]
pub(super) struct Limits {
    /// Requests in flight at once, over all webhooks.
    pub max_in_flight: usize,
    /// Requests in flight at once for one tenant.
    pub per_tenant: usize,
    /// Requests in flight at once to one webhook.
    pub per_webhook: usize,
    /// Outcomes that may wait for their commit, counting attempts in flight (each
    /// becomes one); at the bound, nothing starts.
    pub max_recording: usize,
    /// Claimed work waiting in memory, per webhook.
    pub queue_per_webhook: usize,
    /// Claimed work waiting in memory, in all.
    pub queue_total: usize,
    /// Event bytes that waiting work may hold; past it, work waits as ids.
    pub max_queued_bytes: usize,
}

impl Limits {
    /// The limits for an engine with these bounds, with the fixed queue sizes.
    pub(super) fn new(
        max_in_flight: usize,
        per_tenant: usize,
        per_webhook: usize,
        max_queued_bytes: usize,
    ) -> Limits {
        Limits {
            max_in_flight: max_in_flight.max(1),
            per_tenant: per_tenant.max(1),
            per_webhook: per_webhook.max(1),
            max_recording: max_in_flight.saturating_mul(4).max(64),
            // Bytes are bounded by `max_queued_bytes`; this count only caps the ids
            // kept per webhook. At 1,024 a one-webhook burst went to the slower
            // oldest-first refill from disk and drained up to 2 s after the last 202
            // (BENCHMARKS.md, session 3); 8,192 ids are about 2 MiB.
            queue_per_webhook: 8192,
            queue_total: 65_536,
            max_queued_bytes,
        }
    }
}

/// What the dispatcher needs to know of a webhook when it starts its work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Policy {
    /// `rate_limit_per_second`.
    pub rate: Option<u32>,
    /// `ordering: "fifo"`.
    pub fifo: bool,
}

/// A due entry found by a sweep, with its webhook's tenant (`None` when the webhook
/// is gone: its attempt cancels it) and whether that webhook is FIFO.
pub(super) type Found = (DueEntry, Option<Arc<str>>, bool);

/// One webhook's dispatch state.
struct Hook {
    id: Arc<str>,
    tenant: Arc<str>,
    in_flight: usize,
    /// Claimed work, oldest first by `(due, delivery id)`.
    queue: VecDeque<Work>,
    /// Due work of this webhook waits on disk, unclaimed: newer work stays there too.
    backlog: bool,
    /// Where the next refill from the webhook's pending index starts.
    refill_cursor: Option<String>,
    /// In its tenant's ring.
    in_ring: bool,
    /// Attempts started whose outcome is not committed yet (`in_flight` plus those
    /// awaiting the recorder).
    unsettled: usize,
    /// Deliveries are attempted one at a time in creation order (`line.rs`).
    fifo: bool,
    /// FIFO: the delivery at the head of the line once it has been started; it
    /// keeps its place (and its claim) until it is final.
    head: Option<Head>,
    /// FIFO: the line in memory may miss older work on disk; nothing new starts
    /// until a refill from the start of the pending index has been reported.
    stale: bool,
    /// FIFO: the due time this webhook waits for in `Dispatcher::waiting`.
    waiting: Option<u64>,
}

/// The head of a FIFO line between its attempts.
#[derive(Debug, Clone)]
struct Head {
    /// Its due entry as on disk (the next attempt's lease).
    entry: DueEntry,
    /// Not before this (Unix ms): a failed read backs off without moving the entry.
    not_before: i64,
}

/// One tenant's dispatch state.
#[derive(Default)]
struct Tenant {
    in_flight: usize,
    /// Its webhooks that have queued work and room, in round-robin order.
    ring: VecDeque<Arc<str>>,
    /// In the tenant ring.
    in_ring: bool,
}

/// The dispatch state; see the module docs.
pub(super) struct Dispatcher {
    limits: Limits,
    claimed: HashSet<String>,
    hooks: HashMap<Arc<str>, Hook>,
    tenants: HashMap<Arc<str>, Tenant>,
    /// Tenants with a webhook that can start, in round-robin order.
    ring: VecDeque<Arc<str>>,
    /// Rate-limited webhooks' token buckets. Kept apart from `hooks`, which go when
    /// a webhook's queue drains: a bucket must outlive that, or every event arriving
    /// alone would find a full bucket. Full buckets are forgotten.
    buckets: HashMap<Arc<str>, Bucket>,
    queued: usize,
    queued_bytes: usize,
    in_flight: usize,
    recording: usize,
    cursor: Option<(u64, String)>,
    need_sweep: bool,
    /// Webhooks whose queue ran low while more of their work waits on disk.
    refill: Vec<Arc<str>>,
    /// The earliest moment a rate-limited webhook gets a token back.
    rate_wake: Option<i64>,
    /// The earliest future due time known on disk, so idling needs no store read.
    next_due: Option<i64>,
    /// FIFO lines whose next delivery is not due yet, by due time: out of the rings
    /// until then, so a line waiting on a retry costs the pump nothing.
    waiting: BTreeSet<(u64, Arc<str>)>,
}

impl Dispatcher {
    /// A dispatcher that starts with a sweep (everything due or in flight before a
    /// stop resumes from disk).
    pub(super) fn new(limits: Limits) -> Dispatcher {
        Dispatcher {
            limits,
            claimed: HashSet::new(),
            hooks: HashMap::new(),
            tenants: HashMap::new(),
            ring: VecDeque::new(),
            buckets: HashMap::new(),
            queued: 0,
            queued_bytes: 0,
            in_flight: 0,
            recording: 0,
            cursor: None,
            need_sweep: true,
            refill: Vec::new(),
            rate_wake: None,
            next_due: None,
            waiting: BTreeSet::new(),
        }
    }

    /// Requests in flight.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Claimed work waiting in memory.
    pub(super) fn queued(&self) -> usize {
        self.queued
    }

    /// Event bytes held by waiting work.
    pub(super) fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Attempts started or finished whose outcome is not committed yet.
    pub(super) fn unsettled(&self) -> usize {
        self.in_flight + self.recording
    }

    /// Asks for a sweep of the due index (recover, a timer).
    pub(super) fn want_sweep(&mut self) {
        self.need_sweep = true;
    }

    /// The wake-up time passed: sweep, and forget the due time it was for.
    pub(super) fn woke(&mut self) {
        self.need_sweep = true;
        self.next_due = None;
    }

    /// Claims `work` and queues it, oldest first; or leaves it on disk, unclaimed,
    /// when memory is full or older work of its webhook waits there. Work past the
    /// byte budget is kept as ids. `tenant` is the webhook's tenant; loaded work
    /// may leave it out (its delivery names it). `fifo`: the webhook is FIFO now.
    pub(super) fn offer(&mut self, work: Work, tenant: Option<&str>, fifo: bool) {
        if self.claimed.contains(&work.entry.delivery_id) {
            return;
        }
        let tenant = tenant
            .or_else(|| work.loaded.as_ref().map(|(d, _)| d.tenant.as_str()))
            .unwrap_or("");
        if self.hook(&work.entry.webhook_id, tenant, fifo).is_none() {
            return;
        }
        self.set_mode(&work.entry.webhook_id, fifo);
        if fifo {
            self.line_offer(work);
            return;
        }
        let Some(hook) = self.hooks.get_mut(work.entry.webhook_id.as_str()) else {
            return;
        };
        if hook.backlog {
            // Older work waits on disk: this goes behind it (it is on disk too).
            self.schedule_refill(&work.entry.webhook_id);
            return;
        }
        self.enqueue(work);
    }

    /// Queues claimed-or-claimable work of an existing hook in key order, within the
    /// count and byte bounds.
    fn enqueue(&mut self, mut work: Work) {
        let per_hook = self.limits.queue_per_webhook;
        let total_full = self.queued >= self.limits.queue_total;
        let Some(hook) = self.hooks.get_mut(work.entry.webhook_id.as_str()) else {
            return;
        };
        let younger_than_all = hook.queue.back().is_none_or(|b| b.key() <= work.key());
        if hook.queue.len() >= per_hook || total_full {
            if younger_than_all || total_full {
                hook.backlog = true;
                if total_full {
                    self.need_sweep = true;
                }
                return;
            }
            // Older than queued work of a full queue: it takes the youngest's place,
            // which goes back to disk (refilled from the start again).
            if let Some(evicted) = hook.queue.pop_back() {
                self.claimed.remove(&evicted.entry.delivery_id);
                self.queued -= 1;
                self.queued_bytes -= evicted.weight();
            }
            hook.backlog = true;
            hook.refill_cursor = None;
        }
        if self.queued_bytes + work.weight() > self.limits.max_queued_bytes {
            // Past the byte budget: wait as ids; the attempt reads the event back.
            work.loaded = None;
        }
        self.claimed.insert(work.entry.delivery_id.clone());
        self.queued += 1;
        self.queued_bytes += work.weight();
        if younger_than_all {
            hook.queue.push_back(work);
        } else {
            let at = hook.queue.partition_point(|q| q.key() <= work.key());
            hook.queue.insert(at, work);
        }
        let id = hook.id.clone();
        self.ring_hook(&id);
    }

    /// The hook of `webhook_id`, created for `tenant` when new. A new FIFO hook
    /// starts stale: its line is read from disk before anything of it starts.
    fn hook(&mut self, webhook_id: &str, tenant: &str, fifo: bool) -> Option<&mut Hook> {
        if !self.hooks.contains_key(webhook_id) {
            let id: Arc<str> = Arc::from(webhook_id);
            let tenant = match self.tenants.get_key_value(tenant) {
                Some((t, _)) => t.clone(),
                None => Arc::from(tenant),
            };
            self.hooks.insert(
                id.clone(),
                Hook {
                    id,
                    tenant,
                    in_flight: 0,
                    queue: VecDeque::new(),
                    backlog: fifo,
                    refill_cursor: None,
                    in_ring: false,
                    unsettled: 0,
                    fifo,
                    head: None,
                    stale: fifo,
                    waiting: None,
                },
            );
            if fifo {
                self.schedule_refill(webhook_id);
            }
        }
        self.hooks.get_mut(webhook_id)
    }

    /// Puts a webhook in its tenant's ring (and the tenant in the ring) when it has
    /// queued work and room under its own bound.
    fn ring_hook(&mut self, webhook_id: &str) {
        let Some(hook) = self.hooks.get_mut(webhook_id) else {
            return;
        };
        let runnable = !hook.in_ring
            && if hook.fifo {
                line::runnable(hook)
            } else {
                !hook.queue.is_empty() && hook.in_flight < self.limits.per_webhook
            };
        let tenant = hook.tenant.clone();
        if runnable {
            hook.in_ring = true;
            let id = hook.id.clone();
            match self.tenants.get_mut(&tenant) {
                Some(t) => t.ring.push_back(id),
                None => {
                    let mut t = Tenant::default();
                    t.ring.push_back(id);
                    self.tenants.insert(tenant.clone(), t);
                }
            }
        }
        self.ring_tenant(&tenant);
    }

    /// Puts a tenant in the ring when it has a runnable webhook and room.
    fn ring_tenant(&mut self, tenant: &Arc<str>) {
        if let Some(t) = self.tenants.get_mut(tenant)
            && !t.in_ring
            && !t.ring.is_empty()
            && t.in_flight < self.limits.per_tenant
        {
            t.in_ring = true;
            self.ring.push_back(tenant.clone());
        }
    }

    /// Starts work round robin, by tenant then by webhook, while every bound has
    /// room; the work to spawn is appended to `out`. `policy_of` gives a webhook's
    /// current [`Policy`] (a change of `ordering` takes effect here).
    pub(super) fn pump(
        &mut self,
        now: i64,
        policy_of: &mut dyn FnMut(&str) -> Policy,
        out: &mut Vec<Work>,
    ) {
        self.rate_wake = None;
        self.wake_lines(now);
        let mut idle = 0;
        while self.in_flight < self.limits.max_in_flight
            && self.in_flight + self.recording < self.limits.max_recording
            && idle <= self.ring.len()
        {
            let Some(tenant) = self.ring.pop_front() else {
                break;
            };
            if self.start_one(&tenant, now, policy_of, out) {
                idle = 0;
            } else {
                idle += 1;
            }
        }
    }

    /// Starts one piece of `tenant`'s work from the next webhook in its ring that
    /// can start, and puts the tenant back in the ring when it can start more.
    fn start_one(
        &mut self,
        tenant: &Arc<str>,
        now: i64,
        policy_of: &mut dyn FnMut(&str) -> Policy,
        out: &mut Vec<Work>,
    ) -> bool {
        let Some(t) = self.tenants.get_mut(tenant) else {
            return false;
        };
        let mut started = false;
        let mut switched: Vec<Arc<str>> = Vec::new();
        if t.in_flight < self.limits.per_tenant {
            for _ in 0..t.ring.len() {
                let Some(wh) = t.ring.pop_front() else {
                    break;
                };
                let Some(hook) = self.hooks.get_mut(&wh) else {
                    continue;
                };
                let policy = policy_of(&wh);
                if policy.fifo != hook.fifo {
                    // `ordering` was changed through the API: applied below.
                    hook.in_ring = false;
                    switched.push(wh);
                    continue;
                }
                if hook.fifo {
                    match line::next_due(hook, now) {
                        line::Ready::Now => {}
                        line::Ready::At(due) => {
                            hook.in_ring = false;
                            line::wait(&mut self.waiting, hook, due);
                            continue;
                        }
                        line::Ready::Blocked => {
                            hook.in_ring = false;
                            continue;
                        }
                    }
                } else if hook.queue.is_empty() || hook.in_flight >= self.limits.per_webhook {
                    // Back in the ring when work arrives or an attempt finishes.
                    hook.in_ring = false;
                    continue;
                }
                match policy.rate {
                    Some(rate) => {
                        let b = self
                            .buckets
                            .entry(wh.clone())
                            .or_insert_with(|| Bucket::new(rate, now));
                        if b.rate != rate {
                            // The limit was changed through the API.
                            *b = Bucket::new(rate, now);
                        }
                        if let Err(at) = b.take(now) {
                            self.rate_wake = Some(self.rate_wake.map_or(at, |w| w.min(at)));
                            t.ring.push_back(wh);
                            continue;
                        }
                    }
                    None => {
                        self.buckets.remove(&wh);
                    }
                }
                let work = match &hook.head {
                    Some(h) if hook.fifo => Work {
                        entry: h.entry.clone(),
                        loaded: None,
                    },
                    _ => {
                        let Some(work) = hook.queue.pop_front() else {
                            continue;
                        };
                        self.queued -= 1;
                        self.queued_bytes -= work.weight();
                        if hook.fifo {
                            hook.head = Some(line::head_of(&work));
                        }
                        work
                    }
                };
                hook.in_flight += 1;
                hook.unsettled += 1;
                t.in_flight += 1;
                self.in_flight += 1;
                if !hook.fifo && !hook.queue.is_empty() && hook.in_flight < self.limits.per_webhook
                {
                    t.ring.push_back(wh.clone());
                } else {
                    hook.in_ring = false;
                }
                let low = hook.backlog && hook.queue.len() < self.limits.queue_per_webhook / 2;
                out.push(work);
                started = true;
                if low {
                    self.schedule_refill(&wh);
                }
                break;
            }
        }
        if let Some(t) = self.tenants.get_mut(tenant) {
            t.in_ring = false;
        }
        for wh in switched {
            let fifo = policy_of(&wh).fifo;
            self.set_mode(&wh, fifo);
        }
        self.ring_tenant(tenant);
        started
    }

    /// An attempt's HTTP exchange ended (or it was skipped): its slots are free; its
    /// outcome now waits for the recorder.
    pub(super) fn finished(&mut self, webhook_id: &str) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.recording += 1;
        let Some(hook) = self.hooks.get_mut(webhook_id) else {
            return;
        };
        hook.in_flight = hook.in_flight.saturating_sub(1);
        let tenant = hook.tenant.clone();
        if let Some(t) = self.tenants.get_mut(&tenant) {
            t.in_flight = t.in_flight.saturating_sub(1);
        }
        self.ring_hook(webhook_id);
        self.forget_idle(webhook_id);
    }

    /// Drops the state of a webhook (and its tenant) that has nothing left.
    fn forget_idle(&mut self, webhook_id: &str) {
        let Some(hook) = self.hooks.get(webhook_id) else {
            return;
        };
        if hook.in_flight > 0
            || hook.unsettled > 0
            || !hook.queue.is_empty()
            || hook.backlog
            || hook.head.is_some()
        {
            return;
        }
        let tenant = hook.tenant.clone();
        if let Some(due) = hook.waiting {
            self.waiting.remove(&(due, hook.id.clone()));
        }
        self.hooks.remove(webhook_id);
        if let Some(t) = self.tenants.get(&tenant)
            && t.in_flight == 0
            && t.ring.is_empty()
            && !t.in_ring
        {
            self.tenants.remove(&tenant);
        }
    }

    /// An outcome is committed (or the attempt was skipped): the claim goes (but
    /// a FIFO head keeps it until it is final); `settled` says where the delivery
    /// stands now.
    pub(super) fn done(&mut self, delivery_id: &str, webhook_id: &str, settled: Settled, now: i64) {
        if let Settled::RetryAt(at) = settled {
            self.next_due = Some(self.next_due.map_or(at, |d| d.min(at)));
        }
        self.recording = self.recording.saturating_sub(1);
        let fifo = match self.hooks.get_mut(webhook_id) {
            Some(hook) => {
                hook.unsettled = hook.unsettled.saturating_sub(1);
                hook.fifo
            }
            None => false,
        };
        if fifo {
            self.line_done(delivery_id, webhook_id, settled, now);
        } else {
            self.claimed.remove(delivery_id);
            self.schedule_refill(webhook_id);
            self.forget_idle(webhook_id);
        }
        if self.buckets.len() > BUCKETS_KEPT {
            self.buckets.retain(|_, b| !b.is_full(now));
        }
    }

    /// When (Unix ms) to look at the due index again if nothing else happens.
    pub(super) fn next_wake(&self, now: i64) -> i64 {
        let mut wake = now + MAX_IDLE_MS;
        if let Some(at) = self.rate_wake {
            wake = wake.min(at);
        }
        if let Some(due) = self.next_due {
            wake = wake.min(due.max(now));
        }
        if let Some((due, _)) = self.waiting.first() {
            wake = wake.min((*due as i64).max(now));
        }
        wake
    }
}

#[cfg(test)]
#[path = "dispatch_tests.rs"]
mod tests;
