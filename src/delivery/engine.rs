//! The engine's public face: started by `app.rs`, fed by the API (fast path after
//! each ingest commit, test events, manual retries), stopped by the shutdown token.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::client::HttpClient;
use super::context::{Ctx, EngineConfig, FOLLOWUP_QUEUE};
use super::dispatch::Dispatcher;
use super::followup;
use super::metrics::Metrics;
use super::msg::{FollowUp, Msg, Outcome};
use super::oauth::TokenCache;
use super::{claimloop, plan, recorder, scheduler, worker};
use crate::model::{Attempt, Delivery, DeliveryState, Event, Trigger, Webhook, new_id, now_ms};
use crate::notify::Notifier;
use crate::registry::Registry;
use crate::store::{Db, IngestItem, StoreError};

struct Inner {
    ctx: Arc<Ctx>,
    stopping: AtomicBool,
    receivers: std::sync::Mutex<Option<Receivers>>,
}

struct Receivers {
    scheduler: mpsc::UnboundedReceiver<Msg>,
    recorder: mpsc::UnboundedReceiver<Outcome>,
    followups: mpsc::Receiver<FollowUp>,
}

/// The delivery engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    /// Builds an engine; nothing runs until [`Engine::start`].
    pub fn new(
        store: Db,
        registry: Registry,
        client: HttpClient,
        cfg: EngineConfig,
        notifier: Notifier,
    ) -> Engine {
        super::alloc::keep_large_buffers_returnable();
        let (to_scheduler, scheduler_rx) = mpsc::unbounded_channel();
        let (to_recorder, recorder_rx) = mpsc::unbounded_channel();
        let (to_followups, followups_rx) = mpsc::channel(FOLLOWUP_QUEUE);
        Engine {
            inner: Arc::new(Inner {
                ctx: Arc::new(Ctx {
                    store,
                    registry,
                    client,
                    tokens: TokenCache::default(),
                    cfg,
                    metrics: Metrics::default(),
                    notifier,
                    to_scheduler,
                    to_recorder,
                    to_followups,
                }),
                stopping: AtomicBool::new(false),
                receivers: std::sync::Mutex::new(Some(Receivers {
                    scheduler: scheduler_rx,
                    recorder: recorder_rx,
                    followups: followups_rx,
                })),
            }),
        }
    }

    /// Starts the scheduler, the recorder and the follow-up task. They stop when
    /// `shutdown` fires, after in-flight attempts finish (at most `grace`) and their
    /// outcomes and follow-ups are written. Resolves when all have stopped.
    pub fn start(
        &self,
        shutdown: CancellationToken,
        grace: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let receivers = self.inner.receivers.lock().ok().and_then(|mut r| r.take());
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let Some(rx) = receivers else {
                tracing::error!("the delivery engine was started twice");
                return;
            };
            let ctx = inner.ctx.clone();
            let followup_stop = CancellationToken::new();
            let followups = tokio::spawn(followup::run(
                ctx.clone(),
                rx.followups,
                followup_stop.clone(),
            ));
            let recorder_stop = CancellationToken::new();
            let recorder = tokio::spawn(recorder::run(
                ctx.clone(),
                rx.recorder,
                recorder_stop.clone(),
            ));
            tokio::spawn(super::alloc::give_back_when_quiet(shutdown.clone()));
            let stopping = shutdown.clone();
            let flag = inner.clone();
            tokio::spawn(async move {
                stopping.cancelled().await;
                flag.stopping.store(true, Ordering::SeqCst);
            });
            // On PostgreSQL the database is the dispatcher across nodes and the
            // claim loop schedules; on redb the in-memory dispatcher does.
            match ctx.store.postgres().cloned() {
                Some(pg) => claimloop::run(ctx, pg, rx.scheduler, shutdown, grace).await,
                None => scheduler::run(ctx, rx.scheduler, shutdown, grace).await,
            }
            // The scheduler has seen every in-flight attempt recorded (or given up
            // after the grace period). The recorder cannot wait for its channel to
            // close (every `Engine` handle holds a sender), so it is told to stop;
            // then the follow-ups it queued are handled.
            drop(inner);
            recorder_stop.cancel();
            let _ = recorder.await;
            followup_stop.cancel();
            let _ = followups.await;
        })
    }

    /// One step of the engine, for tests that drive it without its tasks: every
    /// delivery due by `now` (Unix ms) is attempted within the bounds, its outcome
    /// recorded and its follow-ups handled, before this returns the number of
    /// attempts made (work found by this step's one sweep; later retries wait for
    /// the next step). Only for an engine that was not started (returns 0 if it
    /// was), so two schedulers never claim the same delivery.
    pub async fn run_due_once(&self, now: i64) -> usize {
        let started = self.inner.receivers.lock().map_or(true, |r| r.is_none());
        if started {
            tracing::warn!("run_due_once called on a started engine; nothing done");
            return 0;
        }
        let ctx = &self.inner.ctx;
        if let Some(pg) = ctx.store.postgres() {
            return claimloop::run_once(ctx, pg, now).await;
        }
        let mut d = Dispatcher::new(ctx.cfg.limits());
        let mut starts = Vec::new();
        let mut made = 0;
        loop {
            while let Some(r) = d.next_read() {
                scheduler::read(ctx, &mut d, r, now).await;
            }
            scheduler::pump(ctx, &mut d, now, &mut starts);
            if starts.is_empty() {
                return made;
            }
            let tasks: Vec<_> = starts
                .drain(..)
                .map(|w| {
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        let wh = w.entry.webhook_id.clone();
                        (wh, scheduler::run_attempt(&ctx, w).await)
                    })
                })
                .collect();
            let mut outcomes = Vec::with_capacity(tasks.len());
            for t in tasks {
                if let Ok((wh, o)) = t.await {
                    d.finished(&wh);
                    if matches!(o, Outcome::Attempted(_)) {
                        made += 1;
                    }
                    outcomes.push(o);
                }
            }
            let recorded = recorder::record(ctx, outcomes).await;
            for (entry, settled) in recorded.released {
                d.done(&entry.delivery_id, &entry.webhook_id, settled, now);
            }
            for f in recorded.followups {
                followup::handle(ctx, f).await;
            }
        }
    }

    /// The delay of a new delivery's first attempt, in milliseconds.
    pub fn first_delay_ms(&self) -> i64 {
        self.inner.ctx.cfg.policy.first_delay().as_millis() as i64
    }

    /// Whether shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::SeqCst)
    }

    /// Hands a committed event's deliveries to the scheduler: as loaded work when
    /// they are due now, else by asking for a sweep (their timer comes from disk).
    pub fn hand_over(&self, item: IngestItem) {
        plan::hand_over(&self.inner.ctx.to_scheduler, self.first_delay_ms(), item);
    }

    /// Asks the scheduler to sweep the due index (after recover, manual changes).
    pub fn kick(&self) {
        let _ = self.inner.ctx.to_scheduler.send(Msg::Sweep);
    }

    /// Tells the scheduler that a webhook's deliveries were re-queued on disk
    /// (recover): a FIFO line reads itself again in event order, then the due index
    /// is swept.
    pub fn recovered(&self, webhook_id: &str) {
        let _ = self.inner.ctx.to_scheduler.send(Msg::Resync {
            webhook_id: webhook_id.to_owned(),
        });
    }

    /// Tells the scheduler that a webhook's settings changed (PATCH): a change of
    /// `ordering` applies at once to its work that has not started.
    pub fn webhook_changed(&self, webhook_id: &str) {
        let _ = self.inner.ctx.to_scheduler.send(Msg::Changed {
            webhook_id: webhook_id.to_owned(),
        });
    }

    /// For a manual retry: the delivery at the head of `webhook`'s FIFO line when
    /// `delivery` is unfinished and behind it (a manual attempt would overtake it);
    /// `None` when the webhook is not FIFO, the delivery is finished (not in the
    /// line) or it is the head.
    pub async fn line_head_before(
        &self,
        webhook: &Webhook,
        delivery: &Delivery,
    ) -> Result<Option<String>, StoreError> {
        if !scheduler::is_fifo(webhook) || delivery.state.is_final() {
            return Ok(None);
        }
        let first = self
            .inner
            .ctx
            .store
            .first_unfinished(webhook.id.clone())
            .await?;
        Ok(first.filter(|head| *head != delivery.id))
    }

    /// Drops the cached OAuth token of a webhook (its settings changed).
    pub fn forget_token(&self, webhook_id: &str) {
        self.inner.ctx.tokens.invalidate(webhook_id);
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.ctx.metrics
    }

    /// Prometheus text for `/metrics`.
    pub async fn metrics_text(&self, store: &Db) -> String {
        self.inner
            .ctx
            .metrics
            .render(store, self.inner.ctx.tokens.fetches())
            .await
    }

    /// Sends a test event to `webhook` now, without retries, and records it in the
    /// webhook's delivery log with trigger `test`.
    pub async fn send_test(
        &self,
        webhook: &Arc<Webhook>,
        event_type: &str,
        message: &str,
    ) -> Result<Attempt, StoreError> {
        let now = now_ms();
        let event = Event {
            id: new_id("evt"),
            tenant: webhook.tenant.clone(),
            event_type: event_type.to_owned(),
            payload: serde_json::json!({"test": true, "message": message}).to_string(),
            channels: Vec::new(),
            idempotency_key: None,
            created_at: now,
        };
        let planned = plan::delivery(&event, &webhook.id, None, now);
        let tried = worker::attempt(
            &self.inner.ctx.client,
            &self.inner.ctx.tokens,
            webhook,
            &event,
            &planned.id,
            Trigger::Test,
        )
        .await;
        self.inner.ctx.metrics.observe_attempt(&tried);
        let mut attempt = tried.attempt;
        attempt.number = 1;
        let delivery = Delivery {
            state: if tried.verdict == worker::Verdict::Delivered {
                DeliveryState::Succeeded
            } else {
                DeliveryState::Exhausted
            },
            attempts: 1,
            schedule_step: 1,
            next_attempt_at: None,
            last_status: attempt.status,
            last_error: attempt.error.clone(),
            ..planned
        };
        self.inner
            .ctx
            .store
            .record_test(event, delivery, attempt.clone())
            .await?;
        Ok(attempt)
    }

    /// Attempts a delivery now (trigger `manual`), whatever its state, and records
    /// it. Success finishes the delivery; failure leaves its schedule as it was.
    pub async fn retry_now(
        &self,
        webhook: &Arc<Webhook>,
        delivery: &Delivery,
        event: &Event,
    ) -> Result<(Attempt, Delivery), StoreError> {
        let tried = worker::attempt(
            &self.inner.ctx.client,
            &self.inner.ctx.tokens,
            webhook,
            event,
            &delivery.id,
            Trigger::Manual,
        )
        .await;
        self.inner.ctx.metrics.observe_attempt(&tried);
        let ok = tried.verdict == worker::Verdict::Delivered;
        let updated = self
            .inner
            .ctx
            .store
            .record_manual(tried.attempt.clone(), ok)
            .await?;
        if ok {
            // It leaves its FIFO line (or the queue) now, not at its old due time.
            let _ = self.inner.ctx.to_scheduler.send(Msg::Delivered {
                delivery_id: updated.id.clone(),
                webhook_id: updated.webhook_id.clone(),
            });
        }
        let mut attempt = tried.attempt;
        attempt.number = updated.attempts;
        Ok((attempt, updated))
    }
}
