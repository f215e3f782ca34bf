//! FIFO lines (`ordering: "fifo"`): the dispatcher's rules for a webhook whose
//! deliveries go one at a time in event order. A child module of `dispatch.rs`
//! (same state, same purity: no I/O, no clock); it must never start a delivery of a
//! line while an older unfinished one of that line is not known to be in memory.
//!
//! Event order is creation order of the deliveries, which is their id order (ULIDs
//! from one monotonic generator: a batch's events in batch order, and an event
//! planned after another's 202 always after it). The line of a webhook is its
//! `pending` index read in that order, due or not. In memory a line is:
//! - the **head**: the delivery started last and not final yet. It keeps its claim
//!   and its place through retries (the line waits for its next due time, which
//!   includes `Retry-After`), and leaves only when its outcome is committed as
//!   succeeded, exhausted or cancelled;
//! - the **queue**: the next deliveries in id order, always a contiguous prefix of
//!   the rest of the line (everything older than its last one is in memory);
//! - the **backlog** flag and cursor: more of the line waits on disk after the
//!   cursor, read by refills in creation order;
//! - **stale**: the prefix may have a hole (a recover, an `ordering` change, a
//!   delivery the sweep found that memory should have had): the queue is dropped
//!   and the line is read again from its start before a new head may start.
//!
//! A line holds at most one slot: nothing of it starts while any attempt of the
//! webhook is unsettled (started and its outcome not committed), including
//! attempts started before the webhook became FIFO.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{Dispatcher, Head, Hook, Settled, Work};
use crate::store::DueEntry;

/// How long a head whose attempt changed nothing (a failed read or commit) waits
/// before it is tried again (ms).
pub(super) const UNCHANGED_BACKOFF_MS: i64 = 1_000;

/// Whether a line's next delivery may start, as of a time.
pub(super) enum Ready {
    /// Its next delivery is due.
    Now,
    /// Its next delivery is due at this time (Unix ms).
    At(u64),
    /// An attempt of it is unsettled, or it has nothing it may start.
    Blocked,
}

/// Whether a line has something it could start (due or not).
pub(super) fn runnable(hook: &Hook) -> bool {
    hook.unsettled == 0 && (hook.head.is_some() || (!hook.stale && !hook.queue.is_empty()))
}

/// When a line's next delivery may start.
pub(super) fn next_due(hook: &Hook, now: i64) -> Ready {
    if !runnable(hook) {
        return Ready::Blocked;
    }
    let due = match &hook.head {
        Some(h) => h.entry.due.max(h.not_before.max(0) as u64),
        None => match hook.queue.front() {
            Some(w) => w.entry.due,
            None => return Ready::Blocked,
        },
    };
    if due as i64 <= now {
        Ready::Now
    } else {
        Ready::At(due)
    }
}

/// Puts a line in the waiting set until `due` (once per due time).
pub(super) fn wait(waiting: &mut BTreeSet<(u64, Arc<str>)>, hook: &mut Hook, due: u64) {
    if hook.waiting == Some(due) {
        return;
    }
    if let Some(old) = hook.waiting.take() {
        waiting.remove(&(old, hook.id.clone()));
    }
    waiting.insert((due, hook.id.clone()));
    hook.waiting = Some(due);
}

/// Whether every unfinished delivery of the line up to `id` is known to be in
/// memory, so that `id` being unclaimed means the prefix has a hole.
fn covered(hook: &Hook, id: &str) -> bool {
    !hook.backlog
        || hook.refill_cursor.as_deref().is_some_and(|c| id <= c)
        || hook
            .queue
            .back()
            .is_some_and(|b| id < b.entry.delivery_id.as_str())
        || hook
            .head
            .as_ref()
            .is_some_and(|h| id < h.entry.delivery_id.as_str())
}

/// The last delivery of the line known to be in memory: refills continue after it.
fn line_end(hook: &Hook) -> Option<String> {
    hook.queue
        .back()
        .map(|w| w.entry.delivery_id.clone())
        .or_else(|| hook.head.as_ref().map(|h| h.entry.delivery_id.clone()))
}

impl Dispatcher {
    /// Lines whose wait is over go back in their tenant's ring.
    pub(super) fn wake_lines(&mut self, now: i64) {
        while let Some((due, wh)) = self.waiting.first().cloned() {
            if due as i64 > now {
                break;
            }
            self.waiting.pop_first();
            if let Some(hook) = self.hooks.get_mut(&wh)
                && hook.waiting == Some(due)
            {
                hook.waiting = None;
            }
            self.ring_hook(&wh);
        }
    }

    /// Fresh or swept work of a FIFO webhook: into its place in the line when the
    /// line in memory is complete; else the line is (re)read from disk.
    pub(super) fn line_offer(&mut self, work: Work) {
        let wh = work.entry.webhook_id.clone();
        let Some(hook) = self.hooks.get(wh.as_str()) else {
            return;
        };
        if hook.stale {
            // The read from the start of the line will find it.
            self.schedule_refill(&wh);
            return;
        }
        if hook.backlog {
            if covered(hook, &work.entry.delivery_id) {
                self.make_stale(&wh);
            } else {
                self.schedule_refill(&wh);
            }
            return;
        }
        self.line_enqueue(work);
    }

    /// Queues work of a line in id order, within the count and byte bounds. When
    /// the queue is full the youngest stays on disk (the backlog), so the queue
    /// stays a prefix of the line.
    fn line_enqueue(&mut self, mut work: Work) {
        let full = self.queued >= self.limits.queue_total;
        let per_hook = self.limits.queue_per_webhook;
        let Some(hook) = self.hooks.get_mut(work.entry.webhook_id.as_str()) else {
            return;
        };
        let id = work.entry.delivery_id.as_str();
        let at = hook
            .queue
            .partition_point(|q| q.entry.delivery_id.as_str() < id);
        if hook.queue.len() >= per_hook || full {
            if at == hook.queue.len() {
                hook.backlog = true;
                hook.refill_cursor = line_end(hook);
                return;
            }
            // Older than the youngest queued: that one goes back to disk instead.
            if let Some(evicted) = hook.queue.pop_back() {
                self.claimed.remove(&evicted.entry.delivery_id);
                self.queued -= 1;
                self.queued_bytes -= evicted.weight();
            }
            hook.backlog = true;
        }
        if self.queued_bytes + work.weight() > self.limits.max_queued_bytes {
            work.loaded = None;
        }
        self.claimed.insert(work.entry.delivery_id.clone());
        self.queued += 1;
        self.queued_bytes += work.weight();
        hook.queue.insert(at, work);
        if hook.backlog {
            hook.refill_cursor = line_end(hook);
        }
        let wh = hook.id.clone();
        self.ring_hook(&wh);
    }

    /// Drops a line's queue and reads the line again from its start; no new head
    /// starts until that read is reported. The head (if any) keeps its place.
    pub(super) fn make_stale(&mut self, webhook_id: &str) {
        let Some(hook) = self.hooks.get_mut(webhook_id) else {
            return;
        };
        hook.stale = true;
        hook.backlog = true;
        hook.refill_cursor = None;
        for w in hook.queue.drain(..) {
            self.claimed.remove(&w.entry.delivery_id);
            self.queued -= 1;
            self.queued_bytes -= w.weight();
        }
        self.schedule_refill(webhook_id);
    }

    /// The webhook's `ordering` changed (seen at an offer, a sweep or a pump): its
    /// queued work goes back to disk and is read again under the new rule. Work in
    /// flight finishes as it started; a new line starts only once every attempt
    /// of the webhook is settled. A FIFO head waiting for its retry becomes plain
    /// due work again (the sweep finds it at its due time).
    pub(in crate::delivery) fn set_mode(&mut self, webhook_id: &str, fifo: bool) {
        let Some(hook) = self.hooks.get_mut(webhook_id) else {
            return;
        };
        if hook.fifo == fifo {
            return;
        }
        hook.fifo = fifo;
        for w in hook.queue.drain(..) {
            self.claimed.remove(&w.entry.delivery_id);
            self.queued -= 1;
            self.queued_bytes -= w.weight();
        }
        if let Some(due) = hook.waiting.take() {
            self.waiting.remove(&(due, hook.id.clone()));
        }
        hook.stale = fifo;
        hook.backlog = true;
        hook.refill_cursor = None;
        if let Some(h) = hook.head.take()
            && hook.unsettled == 0
        {
            // Not running: unclaimed. (A running head's claim goes with its `done`.)
            self.claimed.remove(&h.entry.delivery_id);
        }
        self.schedule_refill(webhook_id);
        self.ring_hook(webhook_id);
    }

    /// A committed outcome of a FIFO webhook's attempt.
    pub(super) fn line_done(
        &mut self,
        delivery_id: &str,
        webhook_id: &str,
        settled: Settled,
        now: i64,
    ) {
        let Some(hook) = self.hooks.get_mut(webhook_id) else {
            self.claimed.remove(delivery_id);
            return;
        };
        let head = hook
            .head
            .as_mut()
            .filter(|h| h.entry.delivery_id == delivery_id);
        match (head, settled) {
            (Some(_), Settled::Final) => {
                hook.head = None;
                self.claimed.remove(delivery_id);
            }
            (Some(h), Settled::RetryAt(at)) => {
                // The head keeps its place (and its claim) until its next due time.
                h.entry.due = at.max(0) as u64;
                h.not_before = 0;
            }
            (Some(h), Settled::Unchanged) => {
                h.not_before = now + UNCHANGED_BACKOFF_MS;
            }
            (None, settled) => {
                // An attempt started before the webhook became FIFO: if it is
                // still unfinished it is a delivery the line must read back.
                self.claimed.remove(delivery_id);
                if settled != Settled::Final && covered(hook, delivery_id) {
                    self.make_stale(webhook_id);
                }
            }
        }
        self.schedule_refill(webhook_id);
        self.ring_hook(webhook_id);
        self.forget_idle(webhook_id);
    }

    /// Reports a refill of a line: unfinished entries in creation order after the
    /// cursor (due or not). They join the queue in order; what does not fit stays
    /// on disk after the last one that did.
    pub(super) fn line_refilled(
        &mut self,
        webhook_id: &str,
        entries: Vec<DueEntry>,
        next: Option<String>,
    ) {
        let per_hook = self.limits.queue_per_webhook;
        let Some(hook) = self.hooks.get_mut(webhook_id) else {
            return;
        };
        hook.stale = false;
        let mut last = hook.refill_cursor.clone();
        let mut cut = false;
        for entry in entries {
            if self.claimed.contains(&entry.delivery_id) {
                // The head, or an attempt from before the switch to FIFO.
                last = Some(entry.delivery_id);
                continue;
            }
            if hook.queue.len() >= per_hook || self.queued >= self.limits.queue_total {
                cut = true;
                break;
            }
            let id = entry.delivery_id.clone();
            let at = hook
                .queue
                .partition_point(|q| q.entry.delivery_id.as_str() < id.as_str());
            self.claimed.insert(id.clone());
            self.queued += 1;
            hook.queue.insert(
                at,
                Work {
                    entry,
                    loaded: None,
                },
            );
            last = Some(id);
        }
        if cut {
            hook.backlog = true;
            hook.refill_cursor = last;
        } else {
            hook.backlog = next.is_some();
            hook.refill_cursor = next;
        }
        self.ring_hook(webhook_id);
        self.forget_idle(webhook_id);
    }

    /// A webhook's unfinished deliveries were rewritten on disk (recover): a FIFO
    /// line reads itself again, in order; then the due index is swept.
    pub(in crate::delivery) fn resync(&mut self, webhook_id: &str) {
        if self.hooks.get(webhook_id).is_some_and(|h| h.fifo) {
            self.make_stale(webhook_id);
        }
        self.need_sweep = true;
    }

    /// A manual retry delivered `delivery_id`: it leaves its line or queue now
    /// (when it is running, its own outcome settles it).
    pub(in crate::delivery) fn delivered(&mut self, delivery_id: &str, webhook_id: &str) {
        let Some(hook) = self.hooks.get_mut(webhook_id) else {
            return;
        };
        let is_head = hook
            .head
            .as_ref()
            .is_some_and(|h| h.entry.delivery_id == delivery_id);
        if is_head {
            if hook.unsettled == 0 {
                hook.head = None;
                self.claimed.remove(delivery_id);
            }
        } else if let Some(at) = hook
            .queue
            .iter()
            .position(|w| w.entry.delivery_id == delivery_id)
            && let Some(w) = hook.queue.remove(at)
        {
            self.claimed.remove(delivery_id);
            self.queued -= 1;
            self.queued_bytes -= w.weight();
        }
        self.ring_hook(webhook_id);
        self.forget_idle(webhook_id);
    }
}

/// Builds the head of a line from the work that starts it.
pub(super) fn head_of(work: &Work) -> Head {
    Head {
        entry: work.entry.clone(),
        not_before: 0,
    }
}
