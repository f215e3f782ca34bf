//! The follow-up task: what follows a recorded outcome, off the recorder so a burst
//! of exhaustions (emails, operational events) never stalls attempt recording. It
//! keeps the failure streak, disables webhooks (410 Gone, auto-disable), sends
//! exhaustion and disable notices and emits operational events. Its queue is
//! bounded ([`super::context::FOLLOWUP_QUEUE`]); when full the recorder waits for
//! room rather than drop anything, because a lost follow-up could be a lost disable.
//! It never attempts a delivery.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::context::Ctx;
use super::msg::FollowUp;
use super::plan;
use super::worker::Verdict;
use crate::model::{DeliveryState, Event, Webhook, new_id, rfc3339};
use crate::notify::NotificationKind;
use crate::store::{IngestItem, IngestOutcome, Next};

/// Operational event types emitted into a tenant's own stream.
pub const OP_EXHAUSTED: &str = "hookbox.delivery.exhausted";
/// Emitted when a webhook is disabled.
pub const OP_DISABLED: &str = "hookbox.webhook.disabled";

/// Handles follow-ups until `stop` fires, then those already queued, and returns.
pub(super) async fn run(ctx: Arc<Ctx>, mut rx: mpsc::Receiver<FollowUp>, stop: CancellationToken) {
    let mut stopping = false;
    loop {
        let next = if stopping {
            rx.recv().await
        } else {
            tokio::select! {
                f = rx.recv() => f,
                () = stop.cancelled() => {
                    rx.close();
                    stopping = true;
                    continue;
                }
            }
        };
        let Some(f) = next else {
            return;
        };
        handle(&ctx, f).await;
    }
}

/// Queues a follow-up; when the queue is full, waits for room (counted in the
/// metrics) instead of dropping it.
pub(super) async fn queue(ctx: &Ctx, f: FollowUp) {
    match ctx.to_followups.try_send(f) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(f)) => {
            ctx.metrics.observe_followup_wait();
            if ctx.to_followups.send(f).await.is_err() {
                tracing::warn!("the follow-up task has stopped; a follow-up was not handled");
            }
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            tracing::warn!("the follow-up task has stopped; a follow-up was not handled");
        }
    }
}

/// What follows one recorded outcome.
pub(super) async fn handle(ctx: &Arc<Ctx>, f: FollowUp) {
    let Some(webhook) = ctx.registry.webhook(&f.webhook_id) else {
        return;
    };
    let now = f.at;
    match f.verdict {
        Verdict::Delivered => {
            if webhook.failing_since.is_some() {
                update_webhook(ctx, &webhook, |w| w.failing_since = None).await;
            }
        }
        Verdict::Gone => disable(ctx, &webhook, Why::Gone, now).await,
        Verdict::Retry { .. } => {
            let after = ctx.cfg.disable_after.as_millis().min(i64::MAX as u128) as i64;
            match webhook.failing_since {
                // Stamped only when the stored row has no streak yet: a node whose
                // registry lags must not move an older stamp forward.
                None => {
                    update_webhook(ctx, &webhook, move |w| {
                        w.failing_since.get_or_insert(now);
                    })
                    .await;
                }
                Some(since) if now - since >= after => {
                    disable(ctx, &webhook, Why::Failing { after }, now).await;
                }
                Some(_) => {}
            }
        }
    }
    if f.next == Next::Exhausted
        && f.verdict != Verdict::Gone
        && let Some(d) = f.delivery.filter(|d| d.state == DeliveryState::Exhausted)
    {
        let reason = f
            .reason
            .unwrap_or_else(|| "every attempt failed".to_owned());
        ctx.notifier
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
            "event_type": d.event_type,
            "attempts": d.attempts,
            "reason": reason,
        });
        emit(ctx, &webhook, OP_EXHAUSTED, data, now).await;
    }
}

/// Applies `f` to the stored webhook inside the store's writer job (so no
/// concurrent change is lost); nothing is written when it changes nothing. The
/// registry follows from the store's change feed.
async fn update_webhook(
    ctx: &Arc<Ctx>,
    webhook: &Webhook,
    f: impl FnOnce(&mut Webhook) + Send + 'static,
) {
    let result = ctx
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

/// Why a follow-up disables a webhook.
#[derive(Clone, Copy)]
enum Why {
    /// The receiver answered 410 Gone.
    Gone,
    /// Deliveries failed for at least `after` ms (`delivery.disable_after`).
    Failing {
        /// The streak length that disables, in ms.
        after: i64,
    },
}

/// Disables a webhook (its pending deliveries are cancelled by the store), then
/// notifies its owner and emits `hookbox.webhook.disabled`. Decided against the
/// stored record inside `update_webhook` (on PostgreSQL under the row's `FOR
/// UPDATE` lock): a webhook already disabled or deleted is left alone, and a
/// failure streak must still be there (another node's success may have ended it),
/// so whatever number of nodes see the verdict, one disables, emails and announces.
async fn disable(ctx: &Arc<Ctx>, webhook: &Webhook, why: Why, now: i64) {
    let result = ctx
        .store
        .update_webhook(webhook.id.clone(), move |w| {
            if !w.enabled || w.deleted_at.is_some() {
                return Err(());
            }
            let reason = match why {
                Why::Gone => "the receiver answered 410 Gone".to_owned(),
                Why::Failing { after } => match w.failing_since {
                    Some(since) if now - since >= after => format!(
                        "deliveries have failed continuously since {}",
                        rfc3339(since)
                    ),
                    _ => return Err(()),
                },
            };
            w.enabled = false;
            w.disabled_reason = Some(reason.clone());
            w.disabled_at = Some(now);
            w.updated_at = now;
            Ok(reason)
        })
        .await;
    let (next, reason) = match result {
        Ok(Ok(done)) => done,
        Ok(Err(())) => return,
        Err(e) => {
            tracing::error!(error = %e, webhook = %webhook.id, "cannot disable webhook");
            return;
        }
    };
    tracing::warn!(webhook = %next.id, tenant = %next.tenant, %reason, "webhook disabled");
    ctx.notifier
        .notify(&next, NotificationKind::WebhookDisabled, &reason, None, now)
        .await;
    let data = serde_json::json!({
        "webhook_id": next.id,
        "url": crate::notify::redact_url(&next.url),
        "reason": reason,
        "disabled_at": rfc3339(now),
    });
    emit(ctx, &next, OP_DISABLED, data, now).await;
}

/// Ingests an operational event into the failing webhook's tenant, delivered to the
/// tenant's webhooks subscribed to it, never to the failing webhook itself. Its
/// deliveries are planned and handed over exactly as ingest's are (first delay
/// included).
async fn emit(
    ctx: &Arc<Ctx>,
    about: &Webhook,
    event_type: &str,
    data: serde_json::Value,
    now: i64,
) {
    let candidates: Vec<Arc<Webhook>> = ctx
        .registry
        .matching(&about.tenant, event_type, &[])
        .into_iter()
        .filter(|w| w.id != about.id)
        .collect();
    if candidates.is_empty() {
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
    // Operational events pass through the subscribers' payload filters too.
    let targets = plan::wanted(&event, candidates);
    if targets.is_empty() {
        return;
    }
    let first = ctx.cfg.policy.first_delay().as_millis() as i64;
    let deliveries =
        plan::plan_deliveries(&event, targets.iter().map(|w| w.id.as_str()), first, now);
    let item = IngestItem {
        event,
        deliveries,
        body_hash: [0; 32],
    };
    match ctx.store.ingest(vec![item]).await {
        Ok(mut answered) => {
            // Only a newly stored event has deliveries to hand to the scheduler.
            if let Some((IngestOutcome::Created { .. }, stored)) = answered.pop() {
                plan::hand_over(&ctx.to_scheduler, first, stored);
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot emit operational event {event_type}"),
    }
}
