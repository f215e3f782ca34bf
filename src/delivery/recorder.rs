//! The recorder: writes attempt outcomes in batches (one lazily durable commit for
//! everything that finished meanwhile), then tells the scheduler each delivery is
//! released, and handles what follows an outcome: the failure streak and
//! auto-disable, 410 Gone, exhaustion notices and operational events.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::engine::{Inner, Work};
use super::scheduler::Msg;
use super::worker::{self, Tried, Verdict};
use crate::model::{Delivery, DeliveryState, Event, Webhook, new_id, now_ms, rfc3339};
use crate::notify::NotificationKind;
use crate::store::{AttemptWrite, DueEntry, IngestItem, IngestOutcome, Next};

/// The most outcomes written in one commit.
const BATCH: usize = 2048;

/// Operational event types emitted into a tenant's own stream.
pub const OP_EXHAUSTED: &str = "hookbox.delivery.exhausted";
/// Emitted when a webhook is disabled.
pub const OP_DISABLED: &str = "hookbox.webhook.disabled";

/// What a worker hands back.
pub(super) enum Outcome {
    /// An attempt was made.
    Attempted(Box<Attempted>),
    /// The delivery can no longer be attempted (webhook gone or disabled).
    Cancel { entry: DueEntry },
    /// Nothing happened (a read failed); the entry stays due and is tried again.
    Release { entry: DueEntry },
}

/// The records of an attempt that was made.
pub(super) struct Attempted {
    pub entry: DueEntry,
    pub delivery: Delivery,
    pub tried: Tried,
    pub event: Arc<Event>,
}

/// Records outcomes until `stop` fires, then records what is already queued and
/// returns. (The engine's own handle keeps a sender alive, so the channel never
/// closes by itself.)
pub(super) async fn run(
    inner: Arc<Inner>,
    mut rx: mpsc::UnboundedReceiver<Outcome>,
    stop: CancellationToken,
) {
    let mut stopping = false;
    loop {
        let next = if stopping {
            rx.recv().await
        } else {
            tokio::select! {
                o = rx.recv() => o,
                () = stop.cancelled() => {
                    // Refuse new outcomes; queued ones are still received below.
                    rx.close();
                    stopping = true;
                    continue;
                }
            }
        };
        let Some(first) = next else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(o) => batch.push(o),
                Err(_) => break,
            }
        }
        record(&inner, batch).await;
    }
}

struct Followup {
    webhook_id: String,
    verdict: Verdict,
    next: Next,
    event: Arc<Event>,
    reason: Option<String>,
}

async fn record(inner: &Arc<Inner>, batch: Vec<Outcome>) {
    let now = now_ms();
    let mut writes = Vec::with_capacity(batch.len());
    let mut followups = Vec::with_capacity(batch.len());
    let mut released: Vec<(DueEntry, Option<i64>)> = Vec::with_capacity(batch.len());
    for outcome in batch {
        match outcome {
            Outcome::Attempted(a) => {
                let Attempted {
                    entry,
                    delivery,
                    tried,
                    event,
                } = *a;
                let next = decide(inner, &delivery, &tried.verdict, now);
                followups.push(Followup {
                    webhook_id: entry.webhook_id.clone(),
                    verdict: tried.verdict.clone(),
                    next,
                    event,
                    reason: tried.attempt.error.clone(),
                });
                let retry_at = match next {
                    Next::RetryAt(at) => Some(at),
                    _ => None,
                };
                released.push((entry.clone(), retry_at));
                writes.push(AttemptWrite {
                    entry,
                    attempt: tried.attempt,
                    next,
                });
            }
            Outcome::Cancel { entry } => {
                if let Err(e) = inner.store.cancel_delivery(entry.clone(), now).await {
                    tracing::error!(error = %e, delivery = %entry.delivery_id, "cannot cancel delivery");
                }
                released.push((entry, None));
            }
            Outcome::Release { entry } => released.push((entry, None)),
        }
    }
    let results = if writes.is_empty() {
        Ok(Vec::new())
    } else {
        inner.store.record_attempts(writes).await
    };
    // The outcomes are committed (visible to every later read), so the scheduler
    // may now forget the claims without risking a second concurrent attempt.
    for (entry, retry_at) in released {
        let _ = inner.to_scheduler.send(Msg::Done {
            delivery_id: entry.delivery_id,
            webhook_id: entry.webhook_id,
            retry_at,
        });
    }
    let results = match results {
        Ok(r) => r,
        Err(e) => {
            // Unrecorded attempts stay due and will be made again: at-least-once.
            tracing::error!(error = %e, "cannot record attempt outcomes");
            return;
        }
    };
    for (f, delivery) in followups.into_iter().zip(results) {
        inner.metrics.observe_outcome(f.next);
        follow_up(inner, f, delivery, now).await;
    }
}

/// What follows an attempt, by the retry policy (jitter drawn here).
fn decide(inner: &Inner, delivery: &Delivery, verdict: &Verdict, now: i64) -> Next {
    match verdict {
        Verdict::Delivered => Next::Succeeded,
        Verdict::Gone => Next::Exhausted,
        Verdict::Retry { retry_after } => {
            let unit: f64 = rand::random();
            match worker::next_delay(
                &inner.cfg.policy,
                delivery.schedule_step + 1,
                *retry_after,
                unit,
            ) {
                Some(d) => Next::RetryAt(now + d.as_millis() as i64),
                None => Next::Exhausted,
            }
        }
    }
}

async fn follow_up(inner: &Arc<Inner>, f: Followup, delivery: Option<Delivery>, now: i64) {
    let Some(webhook) = inner.registry.webhook(&f.webhook_id) else {
        return;
    };
    match f.verdict {
        Verdict::Delivered => {
            if webhook.failing_since.is_some() {
                update_webhook(inner, &webhook, |w| w.failing_since = None).await;
            }
        }
        Verdict::Gone => {
            disable(
                inner,
                &webhook,
                "the receiver answered 410 Gone".to_owned(),
                now,
            )
            .await;
        }
        Verdict::Retry { .. } => match webhook.failing_since {
            None => {
                update_webhook(inner, &webhook, move |w| w.failing_since = Some(now)).await;
            }
            Some(since) if now - since >= inner.cfg.disable_after.as_millis() as i64 => {
                let reason = format!(
                    "deliveries have failed continuously since {}",
                    rfc3339(since)
                );
                disable(inner, &webhook, reason, now).await;
            }
            Some(_) => {}
        },
    }
    if f.next == Next::Exhausted
        && f.verdict != Verdict::Gone
        && let Some(d) = delivery.filter(|d| d.state == DeliveryState::Exhausted)
    {
        let reason = f
            .reason
            .unwrap_or_else(|| "every attempt failed".to_owned());
        inner
            .notifier
            .notify(
                &webhook,
                NotificationKind::DeliveryExhausted,
                &reason,
                Some(&d),
                now,
            )
            .await;
        let data = serde_json::json!({
            "webhook_id": webhook.id,
            "delivery_id": d.id,
            "event_id": d.event_id,
            "event_type": f.event.event_type,
            "attempts": d.attempts,
            "reason": reason,
        });
        emit(inner, &webhook, OP_EXHAUSTED, data, now).await;
    }
}

/// Applies `f` to the stored webhook inside the store's writer job (so no
/// concurrent change is lost); nothing is written when it changes nothing. The
/// registry follows from the store's change feed.
async fn update_webhook(
    inner: &Arc<Inner>,
    webhook: &Webhook,
    f: impl FnOnce(&mut Webhook) + Send + 'static,
) {
    let result = inner
        .store
        .update_webhook(webhook.id.clone(), move |w| {
            f(w);
            Ok::<(), ()>(())
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, webhook = %webhook.id, "cannot update webhook");
    }
}

/// Disables a webhook with a reason (its pending deliveries are cancelled by the
/// store), then notifies its owner and emits `hookbox.webhook.disabled`. Decided
/// against the stored record: a webhook already disabled or deleted is left alone.
pub(super) async fn disable(inner: &Arc<Inner>, webhook: &Webhook, reason: String, now: i64) {
    let why = reason.clone();
    let result = inner
        .store
        .update_webhook(webhook.id.clone(), move |w| {
            if !w.enabled || w.deleted_at.is_some() {
                return Err(());
            }
            w.enabled = false;
            w.disabled_reason = Some(why);
            w.disabled_at = Some(now);
            w.updated_at = now;
            Ok(())
        })
        .await;
    let next = match result {
        Ok(Ok((next, ()))) => next,
        Ok(Err(())) => return,
        Err(e) => {
            tracing::error!(error = %e, webhook = %webhook.id, "cannot disable webhook");
            return;
        }
    };
    tracing::warn!(webhook = %next.id, tenant = %next.tenant, %reason, "webhook disabled");
    inner
        .notifier
        .notify(&next, NotificationKind::WebhookDisabled, &reason, None, now)
        .await;
    let data = serde_json::json!({
        "webhook_id": next.id,
        "url": crate::notify::redact_url(&next.url),
        "reason": reason,
        "disabled_at": rfc3339(now),
    });
    emit(inner, &next, OP_DISABLED, data, now).await;
}

/// Ingests an operational event into the failing webhook's tenant, delivered to the
/// tenant's webhooks subscribed to it, never to the failing webhook itself.
async fn emit(
    inner: &Arc<Inner>,
    about: &Webhook,
    event_type: &str,
    data: serde_json::Value,
    now: i64,
) {
    let targets: Vec<Arc<Webhook>> = inner
        .registry
        .matching(&about.tenant, event_type, &[])
        .into_iter()
        .filter(|w| w.id != about.id)
        .collect();
    if targets.is_empty() {
        return;
    }
    let event = Event {
        id: new_id("evt"),
        tenant: about.tenant.clone(),
        event_type: event_type.to_owned(),
        payload: data.to_string(),
        channels: Vec::new(),
        idempotency_key: None,
        created_at: now,
    };
    let first = inner.cfg.policy.first_delay();
    let due = now + first.as_millis() as i64;
    let deliveries: Vec<Delivery> = targets
        .iter()
        .map(|w| Delivery {
            id: new_id("dlv"),
            tenant: about.tenant.clone(),
            event_id: event.id.clone(),
            webhook_id: w.id.clone(),
            event_type: event_type.to_owned(),
            state: DeliveryState::Pending,
            attempts: 0,
            schedule_step: 0,
            next_attempt_at: Some(due),
            last_status: None,
            last_error: None,
            created_at: now,
            updated_at: now,
        })
        .collect();
    let item = IngestItem {
        event,
        deliveries,
        body_hash: [0; 32],
    };
    match inner.store.ingest(vec![item]).await {
        Ok(mut answered) => {
            // Only a newly stored event has deliveries to hand to the scheduler.
            let Some((IngestOutcome::Created { .. }, stored)) = answered.pop() else {
                return;
            };
            let event = Arc::new(stored.event);
            for d in stored.deliveries {
                let _ = inner.to_scheduler.send(Msg::Work(Box::new(Work {
                    entry: DueEntry {
                        due: due.max(0) as u64,
                        delivery_id: d.id.clone(),
                        webhook_id: d.webhook_id.clone(),
                    },
                    loaded: Some((d, event.clone())),
                })));
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot emit operational event {event_type}"),
    }
}
