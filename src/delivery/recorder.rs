//! The recorder: writes attempt outcomes in batches (one lazily durable commit for
//! everything that finished meanwhile), then tells the scheduler each delivery is
//! released, then queues what follows each outcome for the follow-up task. It never
//! sends email, writes webhooks or emits events itself, so nothing slow sits between
//! two batches of outcomes.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::context::Ctx;
use super::followup;
use super::msg::{Attempted, FollowUp, Msg, Outcome, Settled};
use super::worker::{self, Verdict};
use crate::model::{Delivery, now_ms};
use crate::store::{AttemptWrite, DueEntry, Next};

/// The most outcomes written in one commit.
const BATCH: usize = 2048;

/// Records outcomes until `stop` fires, then records what is already queued and
/// returns. (The engine's own handle keeps a sender alive, so the channel never
/// closes by itself.)
pub(super) async fn run(
    ctx: Arc<Ctx>,
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
        let recorded = record(&ctx, batch).await;
        // The outcomes are committed (visible to every later read), so the scheduler
        // may now forget the claims without risking a second concurrent attempt.
        for (entry, settled) in recorded.released {
            let _ = ctx.to_scheduler.send(Msg::Done {
                delivery_id: entry.delivery_id,
                webhook_id: entry.webhook_id,
                settled,
            });
        }
        for f in recorded.followups {
            followup::queue(&ctx, f).await;
        }
    }
}

/// What one batch's commit released, and what follows from it.
pub(super) struct Recorded {
    /// Each delivery's due entry and where it stands after the commit.
    pub released: Vec<(DueEntry, Settled)>,
    /// What follows the committed outcomes (empty when the commit failed).
    pub followups: Vec<FollowUp>,
}

/// Where a delivery stands as committed (`None`: it vanished).
fn settled(committed: Option<&Delivery>, now: i64) -> Settled {
    match committed {
        Some(d) if !d.state.is_final() => Settled::RetryAt(d.next_attempt_at.unwrap_or(now)),
        _ => Settled::Final,
    }
}

/// Writes one batch of outcomes in one commit.
pub(super) async fn record(ctx: &Ctx, batch: Vec<Outcome>) -> Recorded {
    let now = now_ms();
    let mut writes = Vec::with_capacity(batch.len());
    let mut pending = Vec::with_capacity(batch.len());
    let mut released: Vec<(DueEntry, Settled)> = Vec::with_capacity(batch.len());
    // Indexes into `released` of the attempts in `writes`, settled after the commit.
    let mut attempted: Vec<usize> = Vec::with_capacity(batch.len());
    for outcome in batch {
        match outcome {
            Outcome::Attempted(a) => {
                let Attempted {
                    entry,
                    delivery,
                    tried,
                } = *a;
                let next = decide(ctx, &delivery, &tried.verdict, now);
                pending.push((
                    entry.webhook_id.clone(),
                    tried.verdict.clone(),
                    next,
                    tried.attempt.error.clone(),
                ));
                attempted.push(released.len());
                released.push((entry.clone(), Settled::Unchanged));
                writes.push(AttemptWrite {
                    entry,
                    attempt: tried.attempt,
                    next,
                });
            }
            Outcome::Cancel { entry } => {
                let settled = match ctx.store.cancel_delivery(entry.clone(), now).await {
                    Ok(()) => Settled::Final,
                    Err(e) => {
                        tracing::error!(error = %e, delivery = %entry.delivery_id, "cannot cancel delivery");
                        Settled::Unchanged
                    }
                };
                released.push((entry, settled));
            }
            Outcome::Release { entry } => released.push((entry, Settled::Unchanged)),
        }
    }
    let results = if writes.is_empty() {
        Ok(Vec::new())
    } else {
        ctx.store.record_attempts(writes).await
    };
    let results: Vec<Option<Delivery>> = match results {
        Ok(r) => r,
        Err(e) => {
            // Unrecorded attempts stay due and will be made again: at-least-once.
            tracing::error!(error = %e, "cannot record attempt outcomes");
            return Recorded {
                released,
                followups: Vec::new(),
            };
        }
    };
    for (i, committed) in attempted.into_iter().zip(&results) {
        if let Some(r) = released.get_mut(i) {
            r.1 = settled(committed.as_ref(), now);
        }
    }
    let followups = pending
        .into_iter()
        .zip(results)
        .map(|((webhook_id, verdict, next, reason), delivery)| {
            ctx.metrics.observe_outcome(next);
            FollowUp {
                webhook_id,
                verdict,
                next,
                reason,
                delivery,
                at: now,
            }
        })
        .collect();
    Recorded {
        released,
        followups,
    }
}

/// What follows an attempt, by the retry policy (jitter drawn here).
fn decide(ctx: &Ctx, delivery: &Delivery, verdict: &Verdict, now: i64) -> Next {
    match verdict {
        Verdict::Delivered => Next::Succeeded,
        Verdict::Gone => Next::Exhausted,
        Verdict::Retry { retry_after } => {
            let unit: f64 = rand::random();
            match worker::next_delay(
                &ctx.cfg.policy,
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
