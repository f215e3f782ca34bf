//! The engine's public face: started by `app.rs`, fed by the API (fast path after
//! each ingest commit, test events, manual retries), stopped by the shutdown token.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::client::HttpClient;
use super::metrics::Metrics;
use super::oauth::TokenCache;
use super::recorder::{self, Outcome};
use super::schedule::RetryPolicy;
use super::scheduler::{self, Msg};
use super::worker;
use crate::model::{Attempt, Delivery, DeliveryState, Event, Trigger, Webhook, new_id, now_ms};
use crate::notify::Notifier;
use crate::registry::Registry;
use crate::store::{DueEntry, Store, StoreError};

/// Engine limits and policy.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Requests in flight at once, over all webhooks.
    pub max_in_flight: usize,
    /// Requests in flight at once to one webhook.
    pub per_webhook_in_flight: usize,
    pub policy: RetryPolicy,
    /// A webhook failing continuously this long is disabled.
    pub disable_after: Duration,
}

/// A delivery to attempt; `loaded` carries the records when the caller has them
/// (the ingest fast path), saving a read.
#[derive(Debug, Clone)]
pub struct Work {
    pub entry: DueEntry,
    pub loaded: Option<(Delivery, Arc<Event>)>,
}

pub(super) struct Inner {
    pub store: Store,
    pub registry: Registry,
    pub client: HttpClient,
    pub tokens: TokenCache,
    pub cfg: EngineConfig,
    pub metrics: Metrics,
    pub notifier: Notifier,
    pub to_scheduler: mpsc::UnboundedSender<Msg>,
    pub to_recorder: mpsc::UnboundedSender<Outcome>,
    stopping: AtomicBool,
    receivers: std::sync::Mutex<Option<Receivers>>,
}

struct Receivers {
    scheduler: mpsc::UnboundedReceiver<Msg>,
    recorder: mpsc::UnboundedReceiver<Outcome>,
}

/// The delivery engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub(super) inner: Arc<Inner>,
}

impl Engine {
    /// Builds an engine; nothing runs until [`Engine::start`].
    pub fn new(
        store: Store,
        registry: Registry,
        client: HttpClient,
        cfg: EngineConfig,
        notifier: Notifier,
    ) -> Engine {
        let (to_scheduler, scheduler_rx) = mpsc::unbounded_channel();
        let (to_recorder, recorder_rx) = mpsc::unbounded_channel();
        Engine {
            inner: Arc::new(Inner {
                store,
                registry,
                client,
                tokens: TokenCache::default(),
                cfg,
                metrics: Metrics::default(),
                notifier,
                to_scheduler,
                to_recorder,
                stopping: AtomicBool::new(false),
                receivers: std::sync::Mutex::new(Some(Receivers {
                    scheduler: scheduler_rx,
                    recorder: recorder_rx,
                })),
            }),
        }
    }

    /// Starts the scheduler and recorder. They stop when `shutdown` fires, after
    /// in-flight attempts finish (at most `grace`) and their outcomes are written.
    /// Resolves when both have stopped.
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
            let scheduler_done = CancellationToken::new();
            let recorder = tokio::spawn(recorder::run(
                inner.clone(),
                rx.recorder,
                scheduler_done.clone(),
            ));
            let stopping = shutdown.clone();
            let flag = inner.clone();
            tokio::spawn(async move {
                stopping.cancelled().await;
                flag.stopping.store(true, Ordering::SeqCst);
            });
            scheduler::run(inner.clone(), rx.scheduler, shutdown, grace).await;
            // The scheduler has seen every in-flight attempt recorded (or given up
            // after the grace period). The recorder cannot wait for its channel to
            // close: every Engine clone (App, ApiState) holds a sender. Tell it to
            // finish what is queued and stop.
            scheduler_done.cancel();
            drop(inner);
            let _ = recorder.await;
        })
    }

    /// The delay of a new delivery's first attempt, in milliseconds.
    pub fn first_delay_ms(&self) -> i64 {
        self.inner.cfg.policy.first_delay().as_millis() as i64
    }

    /// Whether shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::SeqCst)
    }

    /// Hands freshly committed deliveries to the scheduler (the fast path). Work that
    /// cannot be taken now stays in the due index and is found by the next sweep.
    pub fn enqueue(&self, work: Vec<Work>) {
        for w in work {
            let _ = self.inner.to_scheduler.send(Msg::Work(Box::new(w)));
        }
    }

    /// Asks the scheduler to sweep the due index (after recover, manual changes).
    pub fn kick(&self) {
        let _ = self.inner.to_scheduler.send(Msg::Sweep);
    }

    /// Drops the cached OAuth token of a webhook (its settings changed).
    pub fn forget_token(&self, webhook_id: &str) {
        self.inner.tokens.invalidate(webhook_id);
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Prometheus text for `/metrics`.
    pub fn metrics_text(&self, store: &Store) -> String {
        self.inner
            .metrics
            .render(store, self.inner.tokens.fetches())
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
        let delivery_id = new_id("dlv");
        let tried = worker::attempt(
            &self.inner.client,
            &self.inner.tokens,
            webhook,
            &event,
            &delivery_id,
            Trigger::Test,
        )
        .await;
        self.inner.metrics.observe_attempt(&tried);
        let mut attempt = tried.attempt;
        attempt.number = 1;
        let delivery = Delivery {
            id: delivery_id,
            tenant: webhook.tenant.clone(),
            event_id: event.id.clone(),
            webhook_id: webhook.id.clone(),
            event_type: event.event_type.clone(),
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
            created_at: now,
            updated_at: now,
        };
        self.inner
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
            &self.inner.client,
            &self.inner.tokens,
            webhook,
            event,
            &delivery.id,
            Trigger::Manual,
        )
        .await;
        self.inner.metrics.observe_attempt(&tried);
        let ok = tried.verdict == worker::Verdict::Delivered;
        let updated = self
            .inner
            .store
            .record_manual(tried.attempt.clone(), ok)
            .await?;
        let mut attempt = tried.attempt;
        attempt.number = updated.attempts;
        Ok((attempt, updated))
    }
}
