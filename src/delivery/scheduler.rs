//! The scheduler task: the I/O around the [`Dispatcher`]. It feeds the dispatcher
//! what it hears (fresh work, finished exchanges, committed outcomes), does the
//! reads it asks for (due-index sweeps, backlog refills), spawns one task per piece
//! of work it hands out, and sleeps until its next wake-up. It decides nothing
//! itself; every rule lives in `dispatch.rs`. No locks: all state lives in this task.
//!
//! Invariant kept from before: a delivery is claimed from the moment it is queued
//! until the recorder has committed its outcome (`Msg::Done`); its in-flight slots
//! are freed earlier, when the HTTP exchange ends (`Msg::Finished`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::context::Ctx;
use super::dispatch::{Dispatcher, Policy, Read};
use super::msg::{Attempted, Msg, Outcome, WORK_OVERHEAD, Work};
use super::worker;
use crate::model::{Ordering, Trigger, Webhook, now_ms};

/// Feeds one message to the dispatcher.
fn handle(ctx: &Ctx, d: &mut Dispatcher, msg: Msg) {
    match msg {
        Msg::Work(w) => {
            let webhook = ctx.registry.webhook(&w.entry.webhook_id);
            let fifo = webhook.as_ref().is_some_and(|wh| is_fifo(wh));
            match (&w.loaded, webhook) {
                (Some(_), _) => d.offer(*w, None, fifo),
                (None, webhook) => {
                    let tenant = webhook.map(|wh| wh.tenant.clone()).unwrap_or_default();
                    d.offer(*w, Some(&tenant), fifo);
                }
            }
        }
        Msg::Finished { webhook_id } => d.finished(&webhook_id),
        Msg::Done {
            delivery_id,
            webhook_id,
            settled,
        } => d.done(&delivery_id, &webhook_id, settled, now_ms()),
        Msg::Sweep => d.want_sweep(),
        Msg::Resync { webhook_id } => {
            d.set_mode(&webhook_id, policy(ctx, &webhook_id).fifo);
            d.resync(&webhook_id);
        }
        Msg::Changed { webhook_id } => d.set_mode(&webhook_id, policy(ctx, &webhook_id).fifo),
        Msg::Delivered {
            delivery_id,
            webhook_id,
        } => d.delivered(&delivery_id, &webhook_id),
    }
}

/// Whether a webhook's deliveries go one at a time in event order.
pub(super) fn is_fifo(webhook: &Webhook) -> bool {
    webhook.ordering == Ordering::Fifo
}

/// A webhook's dispatch policy as the registry has it now (the default for a
/// webhook that is gone: its work is cancelled when attempted).
fn policy(ctx: &Ctx, webhook_id: &str) -> Policy {
    ctx.registry
        .webhook(webhook_id)
        .map(|w| Policy {
            rate: w.rate_limit_per_second,
            fifo: is_fifo(&w),
        })
        .unwrap_or_default()
}

/// Does one read the dispatcher asked for, as of `now`, and reports it back. This
/// scheduler runs on redb only (on PostgreSQL the claim loop replaces it); without
/// a redb store every read comes back empty.
pub(super) async fn read(ctx: &Ctx, d: &mut Dispatcher, read: Read, now: i64) {
    let Some(store) = ctx.store.redb().cloned() else {
        if let Read::Sweep { limit, .. } = read {
            d.swept(Vec::new(), limit);
        }
        return;
    };
    match read {
        Read::Sweep { after, limit } => {
            let sweep = store.clone();
            let found =
                tokio::task::spawn_blocking(move || sweep.due_entries(now, after.as_ref(), limit))
                    .await;
            let entries = match found {
                Ok(Ok(e)) => e,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "cannot read the due index");
                    // Start over at the next wake-up.
                    d.swept(Vec::new(), limit);
                    return;
                }
                Err(_) => {
                    d.swept(Vec::new(), limit);
                    return;
                }
            };
            let entries = entries
                .into_iter()
                .map(|e| {
                    let webhook = ctx.registry.webhook(&e.webhook_id);
                    let fifo = webhook.as_ref().is_some_and(|w| is_fifo(w));
                    let tenant = webhook.map(|w| Arc::<str>::from(w.tenant.as_str()));
                    (e, tenant, fifo)
                })
                .collect();
            if d.swept(entries, limit) {
                let next = tokio::task::spawn_blocking(move || store.next_due_after(now))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .flatten()
                    .map(|d| d as i64);
                d.set_next_due(next);
            }
        }
        Read::Refill {
            webhook_id,
            after,
            limit,
            line,
            budget,
        } => {
            let key = webhook_id.clone();
            // A FIFO line is every unfinished delivery, due or not.
            let upto = if line { i64::MAX } else { now };
            // One read transaction: the entries and, within the byte budget, their
            // deliveries and events, so their attempts read nothing more.
            let found = tokio::task::spawn_blocking(move || {
                store.pending_due_loaded(&key, after.as_deref(), upto, limit, budget, WORK_OVERHEAD)
            })
            .await;
            if let Ok(Ok((entries, next))) = found {
                let work = entries
                    .into_iter()
                    .map(|(entry, loaded)| Work {
                        entry,
                        loaded: loaded.map(|(d, e)| (d, Arc::new(e))),
                    })
                    .collect();
                d.refilled_work(&webhook_id, work, next);
            }
        }
    }
}

/// Lets the dispatcher start what it can as of `now`; the work goes into `out`.
pub(super) fn pump(ctx: &Ctx, d: &mut Dispatcher, now: i64, out: &mut Vec<Work>) {
    d.pump(now, &mut |wh: &str| policy(ctx, wh), out);
}

/// Runs one attempt in its own task, inside a DEBUG span naming the delivery, the
/// webhook and (once loaded) the event. When DEBUG is off the span is disabled and
/// its fields are never evaluated, so the hot path pays nothing for it.
fn spawn_attempt(ctx: Arc<Ctx>, work: Work) {
    let span = tracing::debug_span!(
        "attempt",
        delivery_id = %work.entry.delivery_id,
        webhook_id = %work.entry.webhook_id,
        event_id = tracing::field::Empty,
    );
    tokio::spawn(
        async move {
            let webhook_id = work.entry.webhook_id.clone();
            let outcome = run_attempt(&ctx, work).await;
            // `Finished` is sent before the outcome reaches the recorder, so the
            // recorder's `Done` for it always comes later on the same queue.
            let _ = ctx.to_scheduler.send(Msg::Finished { webhook_id });
            let _ = ctx.to_recorder.send(outcome);
        }
        .instrument(span),
    );
}

/// Loads what the attempt needs (unless the fast path brought it), attempts it and
/// says what to record. The event is dropped when the exchange ends.
pub(super) async fn run_attempt(ctx: &Ctx, work: Work) -> Outcome {
    let Work { entry, loaded } = work;
    let loaded = match loaded {
        Some(l) => Some(l),
        None => {
            match ctx
                .store
                .delivery_with_event(entry.delivery_id.clone())
                .await
            {
                Ok(found) => found.map(|(d, e)| (d, Arc::new(e))),
                Err(e) => {
                    tracing::error!(error = %e, delivery = %entry.delivery_id, "cannot load delivery");
                    return Outcome::Release { entry };
                }
            }
        }
    };
    let Some((delivery, event)) = loaded else {
        return Outcome::Cancel { entry };
    };
    tracing::Span::current().record("event_id", tracing::field::display(&event.id));
    let webhook = ctx
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
        &ctx.client,
        &ctx.tokens,
        &webhook,
        &event,
        &delivery.id,
        Trigger::Scheduled,
    )
    .await;
    drop(event);
    ctx.metrics.observe_attempt(&tried);
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
    }))
}

/// Runs the scheduler until `shutdown`, then waits up to `grace` for in-flight
/// attempts to be recorded.
pub(super) async fn run(
    ctx: Arc<Ctx>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let mut d = Dispatcher::new(ctx.cfg.limits());
    let mut starts: Vec<Work> = Vec::new();
    loop {
        while let Ok(msg) = rx.try_recv() {
            handle(&ctx, &mut d, msg);
        }
        if shutdown.is_cancelled() {
            break;
        }
        let now = now_ms();
        pump(&ctx, &mut d, now, &mut starts);
        for w in starts.drain(..) {
            spawn_attempt(ctx.clone(), w);
        }
        // Two relaxed stores: cheap enough to keep the gauges current under load.
        ctx.metrics.set_in_flight(d.in_flight(), d.queued());
        ctx.metrics.set_queued_bytes(d.queued_bytes());
        if let Some(r) = d.next_read() {
            read(&ctx, &mut d, r, now).await;
            continue;
        }
        let wait = (d.next_wake(now) - now).max(0) as u64;
        let wake = Instant::now() + Duration::from_millis(wait);
        tokio::select! {
            () = shutdown.cancelled() => break,
            msg = rx.recv() => match msg {
                Some(m) => handle(&ctx, &mut d, m),
                None => break,
            },
            () = tokio::time::sleep_until(wake.into()) => d.woke(),
        }
    }
    // Stop starting work; let what is in flight finish and be recorded.
    let deadline = Instant::now() + grace;
    while d.unsettled() > 0 {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(m @ (Msg::Finished { .. } | Msg::Done { .. })) => handle(&ctx, &mut d, m),
                Some(_) => {}
                None => break,
            },
            () = tokio::time::sleep_until(deadline.into()) => {
                tracing::warn!(in_flight = d.in_flight(), "attempts still in flight after the grace period; they will be retried after restart");
                break;
            }
        }
    }
}
