//! The dispatcher's reads: what it asks the scheduler task to read from the store
//! (due-index sweeps, refills of a webhook's backlog from its pending index) and how
//! it takes the answers in. A child module of `dispatch.rs` (same state, same
//! purity); it never reads anything itself.

use super::{Dispatcher, Found, SCAN_BATCH, Work};
#[cfg(test)]
use crate::store::DueEntry;

/// A read the scheduler task must do and report back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::delivery) enum Read {
    /// Up to `limit` due entries (due by now) after `after`, in due order; report
    /// with [`Dispatcher::swept`].
    Sweep {
        after: Option<(u64, String)>,
        limit: usize,
    },
    /// Up to `limit` of one webhook's due pending entries after `after`, in creation
    /// order; report with [`Dispatcher::refilled`]. For a FIFO line (`line`) every
    /// unfinished entry counts, due or not: the line is its creation order.
    Refill {
        webhook_id: String,
        after: Option<String>,
        limit: usize,
        line: bool,
        /// Bytes of the memory budget left: the refill loads the records of the
        /// oldest entries within it, in the same read (0 for a FIFO line).
        budget: usize,
    },
}

impl Dispatcher {
    /// Queues a refill of a backlogged webhook whose queue ran low (a stale FIFO
    /// line at once).
    pub(super) fn schedule_refill(&mut self, webhook_id: &str) {
        if let Some((id, hook)) = self.hooks.get_key_value(webhook_id)
            && hook.backlog
            && (hook.stale || hook.queue.len() < self.limits.queue_per_webhook / 2)
            && !self.refill.iter().any(|r| r == id)
        {
            self.refill.push(id.clone());
        }
    }

    /// The next read to do, if any: refills of backlogged webhooks first, then a
    /// sweep step. Ask again after reporting its result.
    pub(in crate::delivery) fn next_read(&mut self) -> Option<Read> {
        while let Some(wh) = self.refill.pop() {
            let Some(hook) = self.hooks.get(&wh) else {
                continue;
            };
            let room = self
                .limits
                .queue_per_webhook
                .saturating_sub(hook.queue.len())
                .min(self.limits.queue_total.saturating_sub(self.queued));
            if !hook.backlog || room == 0 {
                continue;
            }
            return Some(Read::Refill {
                webhook_id: wh.to_string(),
                after: hook.refill_cursor.clone(),
                limit: room,
                line: hook.fifo,
                budget: if hook.fifo {
                    0
                } else {
                    self.limits
                        .max_queued_bytes
                        .saturating_sub(self.queued_bytes)
                },
            });
        }
        if self.need_sweep && self.queued < self.limits.queue_total {
            return Some(Read::Sweep {
                after: self.cursor.clone(),
                limit: SCAN_BATCH,
            });
        }
        None
    }

    /// Reports a sweep step: `entries` with their webhooks' tenants (`None` for a
    /// webhook that is gone: its attempt cancels it). Returns true when the sweep
    /// reached the end of what is due: report the next due time with
    /// [`Dispatcher::set_next_due`].
    pub(in crate::delivery) fn swept(&mut self, entries: Vec<Found>, limit: usize) -> bool {
        let full = entries.len() == limit;
        self.cursor = entries
            .last()
            .map(|(e, _, _)| (e.due, e.delivery_id.clone()));
        for (entry, tenant, fifo) in entries {
            let tenant = tenant.as_deref().unwrap_or("");
            self.offer(
                Work {
                    entry,
                    loaded: None,
                },
                Some(tenant),
                fifo,
            );
            if self.queued >= self.limits.queue_total {
                // Out of room: resume from the cursor when room frees up.
                self.need_sweep = true;
                return false;
            }
        }
        if full {
            return false;
        }
        self.cursor = None;
        self.need_sweep = false;
        true
    }

    /// The earliest due time after the sweep's `now`, read at the end of a sweep.
    pub(in crate::delivery) fn set_next_due(&mut self, at: Option<i64>) {
        self.next_due = at;
    }

    /// Reports a refill: the webhook's due entries read after its cursor, and the
    /// cursor to continue from (`None`: nothing more waits on disk). The engine
    /// reports with [`Dispatcher::refilled_work`]; this is the ids-only form.
    #[cfg(test)]
    pub(in crate::delivery) fn refilled(
        &mut self,
        webhook_id: &str,
        entries: Vec<DueEntry>,
        next: Option<String>,
    ) {
        let work = entries
            .into_iter()
            .map(|entry| Work {
                entry,
                loaded: None,
            })
            .collect();
        self.refilled_work(webhook_id, work, next);
    }

    /// As [`Dispatcher::refilled`], with the records the refill read along with
    /// the entries (within the byte budget; `enqueue` keeps that bound).
    pub(in crate::delivery) fn refilled_work(
        &mut self,
        webhook_id: &str,
        entries: Vec<Work>,
        next: Option<String>,
    ) {
        let Some(hook) = self.hooks.get_mut(webhook_id) else {
            return;
        };
        if hook.fifo {
            let entries = entries.into_iter().map(|w| w.entry).collect();
            self.line_refilled(webhook_id, entries, next);
            return;
        }
        hook.refill_cursor = next.clone();
        if next.is_none() {
            hook.backlog = false;
        }
        for work in entries {
            if self.claimed.contains(&work.entry.delivery_id) {
                continue;
            }
            self.enqueue(work);
        }
        self.forget_idle(webhook_id);
    }
}
