//! The scheduler: one task that owns every dispatch decision. It takes fresh work
//! from the ingest fast path, sweeps the due index (a cursor over `(due, id)`) for
//! everything else, enforces the global and per-webhook bounds and the per-webhook
//! rate limit, and spawns one worker task per attempt.
//!
//! Invariants: a delivery is "claimed" from the moment it is queued or dispatched
//! until the recorder has committed its outcome (`Msg::Done`), so it is never
//! attempted twice at once. Its in-flight slot is freed earlier, when the HTTP
//! exchange ends (`Msg::Finished`): the bounds are on concurrent requests, and the
//! next attempt to the same webhook need not wait for the outcome's commit (which may
//! share an fsync with durable ingest). Outcomes waiting to be committed are bounded
//! too ([`State::max_recording`]). A slow webhook only ever occupies its own slots
//! and queue, so other webhooks keep flowing. No locks: all state lives in this task.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::engine::{Inner, Work};
use super::recorder::{Attempted, Outcome};
use super::worker;
use crate::model::{Trigger, now_ms};

/// Due entries read per store transaction.
const SCAN_BATCH: usize = 512;
/// Claimed-but-waiting deliveries kept in memory per webhook.
const QUEUE_PER_WEBHOOK: usize = 1024;
/// Claimed-but-waiting deliveries kept in memory in all.
const QUEUE_TOTAL: usize = 65_536;
/// Token buckets kept before full ones are pruned.
const BUCKETS_KEPT: usize = 1024;
/// The longest the scheduler sleeps without looking at the due index.
const MAX_IDLE: Duration = Duration::from_secs(5);

/// What the scheduler hears about.
pub(super) enum Msg {
    /// Fresh work from the ingest fast path.
    Work(Box<Work>),
    /// An attempt's HTTP exchange ended (or it was skipped): its slot is free. The
    /// delivery stays claimed until `Done`.
    Finished { webhook_id: String },
    /// An attempt's outcome is committed (or the attempt was skipped); `retry_at`
    /// when the delivery was rescheduled.
    Done {
        delivery_id: String,
        webhook_id: String,
        retry_at: Option<i64>,
    },
    /// Something changed on disk (recover, manual retry): sweep the due index.
    Sweep,
}

#[derive(Default)]
struct Slot {
    in_flight: usize,
    queue: VecDeque<Work>,
    /// Due entries exist on disk that were not claimed for lack of room.
    disk_backlog: bool,
    /// Where the next refill from this webhook's pending index starts.
    refill_cursor: Option<String>,
}

/// A token bucket for `rate_limit_per_second` (burst = one second's worth).
struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: u32) -> Self {
        Bucket {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            at: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate.max(1.0));
        self.at = now;
    }

    /// Whether the bucket is full again, so forgetting it changes nothing.
    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.rate.max(1.0)
    }

    /// Takes a token, or says when one will be there.
    fn take(&mut self, now: Instant) -> Result<(), Instant> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / self.rate;
            Err(now + Duration::from_secs_f64(wait.max(0.001)))
        }
    }
}

struct State {
    inner: Arc<Inner>,
    claimed: HashSet<String>,
    slots: HashMap<String, Slot>,
    /// Rate-limited webhooks' token buckets. Kept apart from `slots`, which are
    /// dropped whenever a webhook's queue drains: a bucket must outlive that, or
    /// every event arriving alone would find a full bucket and the limit would
    /// never apply. Full buckets are forgotten (a new one starts full).
    buckets: HashMap<String, Bucket>,
    /// Webhooks with queued work, in round-robin order.
    runnable: VecDeque<String>,
    queued: usize,
    in_flight: usize,
    /// Attempts that finished and whose outcome is not committed yet.
    recording: usize,
    cursor: Option<(u64, String)>,
    need_sweep: bool,
    /// Webhooks whose queue ran low while more of their work waits on disk.
    refill: HashSet<String>,
    /// The earliest moment a rate-limited webhook gets a token back.
    rate_wake: Option<Instant>,
    /// The earliest future due time known on disk (refreshed after each sweep and
    /// lowered by reschedules), so idling needs no store read.
    next_due: Option<i64>,
}

impl State {
    fn max(&self) -> usize {
        self.inner.cfg.max_in_flight
    }

    /// The most finished attempts whose outcomes may wait for the recorder at once;
    /// beyond it, no new attempt starts (it bounds the memory outcomes hold).
    fn max_recording(&self) -> usize {
        self.max().saturating_mul(4).max(64)
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Work(w) => self.offer(*w),
            Msg::Finished { webhook_id } => {
                self.in_flight = self.in_flight.saturating_sub(1);
                self.recording += 1;
                if let Some(slot) = self.slots.get_mut(&webhook_id) {
                    slot.in_flight = slot.in_flight.saturating_sub(1);
                    if slot.in_flight == 0 && slot.queue.is_empty() && !slot.disk_backlog {
                        self.slots.remove(&webhook_id);
                    }
                }
            }
            Msg::Done {
                delivery_id,
                webhook_id,
                retry_at,
            } => {
                if let Some(at) = retry_at {
                    self.next_due = Some(self.next_due.map_or(at, |d| d.min(at)));
                }
                self.claimed.remove(&delivery_id);
                self.recording = self.recording.saturating_sub(1);
                if let Some(slot) = self.slots.get(&webhook_id)
                    && slot.disk_backlog
                    && slot.queue.len() < QUEUE_PER_WEBHOOK / 2
                {
                    self.refill.insert(webhook_id);
                }
                if self.buckets.len() > BUCKETS_KEPT {
                    let now = Instant::now();
                    self.buckets.retain(|_, b| !b.is_full(now));
                }
            }
            Msg::Sweep => self.need_sweep = true,
        }
    }

    /// Claims `work` and runs or queues it; leaves it on disk when there is no room.
    fn offer(&mut self, work: Work) {
        if self.claimed.contains(&work.entry.delivery_id) {
            return;
        }
        let wh = work.entry.webhook_id.clone();
        let slot = self.slots.entry(wh.clone()).or_default();
        if slot.queue.len() >= QUEUE_PER_WEBHOOK || self.queued >= QUEUE_TOTAL {
            slot.disk_backlog = true;
            return;
        }
        self.claimed.insert(work.entry.delivery_id.clone());
        if slot.queue.is_empty() {
            self.runnable.push_back(wh);
        }
        slot.queue.push_back(work);
        self.queued += 1;
    }

    /// Starts queued work round-robin over webhooks while there is room.
    fn pump(&mut self) {
        let now = Instant::now();
        let per = self.inner.cfg.per_webhook_in_flight;
        let mut rounds = self.runnable.len();
        while self.in_flight < self.max() && self.recording < self.max_recording() && rounds > 0 {
            rounds -= 1;
            let Some(wh) = self.runnable.pop_front() else {
                break;
            };
            let Some(slot) = self.slots.get_mut(&wh) else {
                continue;
            };
            if slot.queue.is_empty() {
                continue;
            }
            if slot.in_flight >= per {
                // Full: it comes back to the ring when one of its attempts finishes.
                self.runnable.push_back(wh);
                continue;
            }
            let limit = self
                .inner
                .registry
                .webhook(&wh)
                .and_then(|w| w.rate_limit_per_second);
            match limit {
                Some(rate) => {
                    let b = self
                        .buckets
                        .entry(wh.clone())
                        .or_insert_with(|| Bucket::new(rate));
                    if b.rate != f64::from(rate) {
                        // The limit was changed through the API.
                        *b = Bucket::new(rate);
                    }
                    if let Err(at) = b.take(now) {
                        self.rate_wake = Some(self.rate_wake.map_or(at, |w| w.min(at)));
                        self.runnable.push_back(wh);
                        continue;
                    }
                }
                None => {
                    self.buckets.remove(&wh);
                }
            }
            let Some(work) = slot.queue.pop_front() else {
                continue;
            };
            self.queued -= 1;
            slot.in_flight += 1;
            self.in_flight += 1;
            if !slot.queue.is_empty() {
                self.runnable.push_back(wh);
                rounds += 1;
            }
            spawn_attempt(self.inner.clone(), work);
        }
    }

    /// Reads one batch of due entries from the cursor and offers them. Returns false
    /// when the sweep reached the end of what is due.
    async fn sweep_step(&mut self) -> bool {
        let store = self.inner.store.clone();
        let cursor = self.cursor.clone();
        let now = now_ms();
        let read = tokio::task::spawn_blocking(move || {
            store.due_entries(now, cursor.as_ref(), SCAN_BATCH)
        })
        .await;
        let entries = match read {
            Ok(Ok(e)) => e,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot read the due index");
                self.cursor = None;
                return false;
            }
            Err(_) => return false,
        };
        let full = entries.len() == SCAN_BATCH;
        self.cursor = entries.last().map(|e| (e.due, e.delivery_id.clone()));
        for entry in entries {
            self.offer(Work {
                entry,
                loaded: None,
            });
            if self.queued >= QUEUE_TOTAL {
                // Out of memory budget: resume from the cursor when room frees up.
                self.need_sweep = true;
                return false;
            }
        }
        if !full {
            self.cursor = None;
            let store = self.inner.store.clone();
            self.next_due = tokio::task::spawn_blocking(move || store.next_due_after(now))
                .await
                .ok()
                .and_then(Result::ok)
                .flatten()
                .map(|d| d as i64);
        }
        full
    }

    /// Tops up a webhook's queue from its pending index (creation order), so a long
    /// backlog drains in batches without sweeping the whole due index.
    async fn refill(&mut self, wh: String) {
        let Some(slot) = self.slots.get(&wh) else {
            return;
        };
        let room = QUEUE_PER_WEBHOOK.saturating_sub(slot.queue.len());
        if room == 0 {
            return;
        }
        let store = self.inner.store.clone();
        let cursor = slot.refill_cursor.clone();
        let now = now_ms();
        let key = wh.clone();
        let read = tokio::task::spawn_blocking(move || {
            store.pending_due(&key, cursor.as_deref(), now, room)
        })
        .await;
        let (entries, next) = match read {
            Ok(Ok(r)) => r,
            _ => return,
        };
        if let Some(slot) = self.slots.get_mut(&wh) {
            slot.refill_cursor = next.clone();
            if next.is_none() {
                slot.disk_backlog = false;
            }
        }
        for entry in entries {
            self.offer(Work {
                entry,
                loaded: None,
            });
        }
    }

    /// When to look at the due index again if nothing else happens.
    fn next_wake(&self) -> Instant {
        let mut wake = Instant::now() + MAX_IDLE;
        if let Some(at) = self.rate_wake {
            wake = wake.min(at);
        }
        if let Some(due) = self.next_due {
            let wait = (due - now_ms()).max(0) as u64;
            wake = wake.min(Instant::now() + Duration::from_millis(wait));
        }
        wake
    }
}

/// Runs one attempt in its own task, inside a DEBUG span naming the delivery, the
/// webhook and (once loaded) the event. When DEBUG is off the span is disabled and
/// its fields are never evaluated, so the hot path pays nothing for it.
fn spawn_attempt(inner: Arc<Inner>, work: Work) {
    let span = tracing::debug_span!(
        "attempt",
        delivery_id = %work.entry.delivery_id,
        webhook_id = %work.entry.webhook_id,
        event_id = tracing::field::Empty,
    );
    tokio::spawn(
        async move {
            let webhook_id = work.entry.webhook_id.clone();
            let outcome = run_attempt(&inner, work).await;
            // `Finished` is sent before the outcome reaches the recorder, so the
            // recorder's `Done` for it always comes later on the same queue.
            let _ = inner.to_scheduler.send(Msg::Finished { webhook_id });
            let _ = inner.to_recorder.send(outcome);
        }
        .instrument(span),
    );
}

/// Loads what the attempt needs (unless the fast path brought it), attempts it and
/// says what to record.
async fn run_attempt(inner: &Arc<Inner>, work: Work) -> Outcome {
    let Work { entry, loaded } = work;
    let loaded = match loaded {
        Some(l) => Some(l),
        None => {
            let store = inner.store.clone();
            let id = entry.delivery_id.clone();
            match tokio::task::spawn_blocking(move || store.delivery_with_event(&id)).await {
                Ok(Ok(found)) => found.map(|(d, e)| (d, Arc::new(e))),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, delivery = %entry.delivery_id, "cannot load delivery");
                    return Outcome::Release { entry };
                }
                Err(_) => return Outcome::Release { entry },
            }
        }
    };
    let Some((delivery, event)) = loaded else {
        return Outcome::Cancel { entry };
    };
    tracing::Span::current().record("event_id", tracing::field::display(&event.id));
    let webhook = inner
        .registry
        .webhook(&entry.webhook_id)
        .filter(|w| w.enabled && w.deleted_at.is_none());
    let Some(webhook) = webhook else {
        return Outcome::Cancel { entry };
    };
    if delivery.state.is_final() {
        return Outcome::Cancel { entry };
    }
    let tried = worker::attempt(
        &inner.client,
        &inner.tokens,
        &webhook,
        &event,
        &delivery.id,
        Trigger::Scheduled,
    )
    .await;
    inner.metrics.observe_attempt(&tried);
    // The status or the error text, never the URL or any header value.
    tracing::debug!(
        status = tried.attempt.status,
        error = tried.attempt.error.as_deref(),
        latency_ms = tried.attempt.latency_ms,
        verdict = ?tried.verdict,
        "attempt finished"
    );
    Outcome::Attempted(Box::new(Attempted {
        entry,
        delivery,
        tried,
        event,
    }))
}

/// Runs the scheduler until `shutdown`, then waits up to `grace` for in-flight
/// attempts to be recorded.
pub(super) async fn run(
    inner: Arc<Inner>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let mut s = State {
        inner,
        claimed: HashSet::new(),
        slots: HashMap::new(),
        buckets: HashMap::new(),
        runnable: VecDeque::new(),
        queued: 0,
        in_flight: 0,
        recording: 0,
        cursor: None,
        // Start-up: everything due or in flight before a crash resumes from disk.
        need_sweep: true,
        refill: HashSet::new(),
        rate_wake: None,
        next_due: None,
    };
    loop {
        while let Ok(msg) = rx.try_recv() {
            s.handle(msg);
        }
        if shutdown.is_cancelled() {
            break;
        }
        // Two relaxed stores: cheap enough to keep the gauges current under load.
        s.inner.metrics.set_in_flight(s.in_flight, s.queued);
        for wh in std::mem::take(&mut s.refill) {
            s.refill(wh).await;
        }
        s.pump();
        if s.need_sweep && s.queued < QUEUE_TOTAL {
            let more = s.sweep_step().await;
            if !more && s.cursor.is_none() {
                s.need_sweep = s.need_sweep && s.queued >= QUEUE_TOTAL;
            }
            s.pump();
            continue;
        }
        let wake = s.next_wake();
        s.rate_wake = None;
        tokio::select! {
            () = shutdown.cancelled() => break,
            msg = rx.recv() => match msg {
                Some(m) => s.handle(m),
                None => break,
            },
            () = tokio::time::sleep_until(wake.into()) => {
                s.need_sweep = true;
                s.next_due = None;
            }
        }
    }
    // Stop starting work; let what is in flight finish and be recorded.
    let deadline = Instant::now() + grace;
    while s.in_flight + s.recording > 0 {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(m @ (Msg::Finished { .. } | Msg::Done { .. })) => s.handle(m),
                Some(_) => {}
                None => break,
            },
            () = tokio::time::sleep_until(deadline.into()) => {
                tracing::warn!(in_flight = s.in_flight, "attempts still in flight after the grace period; they will be retried after restart");
                break;
            }
        }
    }
}
