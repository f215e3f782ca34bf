//! The messages between the delivery engine's tasks (API -> scheduler, attempt ->
//! scheduler, attempt -> recorder -> scheduler, recorder -> follow-ups). A leaf
//! module: it imports no other engine module but the worker's result type, so the
//! engine's modules depend on it and never on each other in a cycle.

use std::sync::Arc;

use super::worker::{Tried, Verdict};
use crate::model::{Delivery, Event};
use crate::store::{DueEntry, Next};

/// A delivery to attempt; `loaded` carries the records when the caller has them
/// (the ingest fast path), saving a read. Work without them is read back from the
/// store when its attempt starts.
#[derive(Debug, Clone)]
pub struct Work {
    /// The delivery's due entry (its lease).
    pub entry: DueEntry,
    /// The delivery and its event, when already in memory.
    pub loaded: Option<(Delivery, Arc<Event>)>,
}

impl Work {
    /// The order a webhook's work leaves in: due time, then delivery id.
    pub(super) fn key(&self) -> (u64, &str) {
        (self.entry.due, self.entry.delivery_id.as_str())
    }

    /// The event bytes this work holds in memory (0 when it waits as ids).
    pub(super) fn weight(&self) -> usize {
        self.loaded
            .as_ref()
            .map_or(0, |(_, e)| e.payload.len() + WORK_OVERHEAD)
    }
}

/// What loaded work costs besides its payload (records, ids), for the byte budget.
pub(super) const WORK_OVERHEAD: usize = 512;

/// What the scheduler hears about.
pub(super) enum Msg {
    /// Fresh work from the ingest fast path (or an operational event).
    Work(Box<Work>),
    /// An attempt's HTTP exchange ended (or it was skipped): its slot is free. The
    /// delivery stays claimed until `Done`.
    Finished { webhook_id: String },
    /// An attempt's outcome is committed (or the attempt was skipped); `settled`
    /// says where the delivery stands now.
    Done {
        delivery_id: String,
        webhook_id: String,
        settled: Settled,
    },
    /// Something changed on disk (recover, manual changes): sweep the due index.
    Sweep,
    /// A webhook's unfinished deliveries changed on disk behind the scheduler's
    /// back (recover): a FIFO line re-reads itself, then the due index is swept.
    Resync { webhook_id: String },
    /// A webhook's settings changed (PATCH): a change of `ordering` applies to its
    /// waiting work now, not at its next offer or start.
    Changed { webhook_id: String },
    /// A manual retry delivered this delivery: it leaves its line (or queue) now.
    Delivered {
        delivery_id: String,
        webhook_id: String,
    },
}

/// Where a delivery stands once an attempt's outcome is committed (or skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Settled {
    /// Succeeded, exhausted or cancelled (or gone): it leaves the line.
    Final,
    /// Still unfinished, due again at this time (Unix ms): a retry, or where
    /// someone else (recover) moved it.
    RetryAt(i64),
    /// Nothing was written (a read or the commit failed): still due as before.
    Unchanged,
}

/// What an attempt task hands the recorder.
pub(super) enum Outcome {
    /// An attempt was made.
    Attempted(Box<Attempted>),
    /// The delivery can no longer be attempted (webhook gone or disabled).
    Cancel { entry: DueEntry },
    /// Nothing happened (a read failed); the entry stays due and is tried again.
    Release { entry: DueEntry },
}

/// The records of an attempt that was made. It does not keep the event: outcomes
/// waiting for their commit must not hold payloads.
pub(super) struct Attempted {
    pub entry: DueEntry,
    pub delivery: Delivery,
    pub tried: Tried,
}

/// What follows a recorded outcome, handled off the recorder by the follow-up task.
pub(super) struct FollowUp {
    pub webhook_id: String,
    pub verdict: Verdict,
    pub next: Next,
    pub reason: Option<String>,
    /// The delivery as committed (`None` when the commit found nothing to update).
    pub delivery: Option<Delivery>,
    /// When the outcome was recorded (Unix ms).
    pub at: i64,
}
