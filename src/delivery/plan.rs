//! One place that builds new deliveries and hands them to the scheduler: for ingest
//! (`api/events.rs`), operational events (the follow-up task) and test events. Pure
//! but for [`hand_over`], which only sends on a channel; never touches the store.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::msg::{Msg, Work};
use crate::model::{Delivery, DeliveryState, Event, UnixMs, new_id};
use crate::store::{DueEntry, IngestItem};

/// A new delivery of `event` to `webhook_id`, pending and due at `due`.
pub fn delivery(event: &Event, webhook_id: &str, due: Option<UnixMs>, now: UnixMs) -> Delivery {
    Delivery {
        id: new_id("dlv"),
        tenant: event.tenant.clone(),
        event_id: event.id.clone(),
        webhook_id: webhook_id.to_owned(),
        event_type: event.event_type.clone(),
        state: DeliveryState::Pending,
        attempts: 0,
        schedule_step: 0,
        next_attempt_at: due,
        last_status: None,
        last_error: None,
        created_at: now,
        updated_at: now,
    }
}

/// The pending deliveries of a new `event` to each webhook of `targets` (ids), due
/// after the retry policy's first delay (`first_delay_ms`) from `now`.
pub fn plan_deliveries<'a>(
    event: &Event,
    targets: impl IntoIterator<Item = &'a str>,
    first_delay_ms: i64,
    now: UnixMs,
) -> Vec<Delivery> {
    let due = now + first_delay_ms;
    targets
        .into_iter()
        .map(|w| delivery(event, w, Some(due), now))
        .collect()
}

/// Hands a committed event's deliveries to the scheduler without a store read when
/// they are due now (the fast path); otherwise asks it to look at the due index, so
/// its timer is set from what is on disk.
pub(super) fn hand_over(
    to_scheduler: &mpsc::UnboundedSender<Msg>,
    first_delay_ms: i64,
    item: IngestItem,
) {
    if item.deliveries.is_empty() {
        return;
    }
    if first_delay_ms > 0 {
        let _ = to_scheduler.send(Msg::Sweep);
        return;
    }
    let event = Arc::new(item.event);
    for d in item.deliveries {
        let work = Work {
            entry: DueEntry {
                due: d.next_attempt_at.unwrap_or(d.created_at).max(0) as u64,
                delivery_id: d.id.clone(),
                webhook_id: d.webhook_id.clone(),
            },
            loaded: Some((d, event.clone())),
        };
        let _ = to_scheduler.send(Msg::Work(Box::new(work)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_gets_one_pending_delivery_due_after_the_first_delay() {
        let event = Event {
            id: "evt_1".into(),
            tenant: "t1".into(),
            event_type: "a.b".into(),
            payload: "{}".into(),
            channels: Vec::new(),
            idempotency_key: None,
            created_at: 1000,
        };
        for (first, want_due) in [(0, 1000), (250, 1250)] {
            let targets = ["wh_1", "wh_2"];
            let planned = plan_deliveries(&event, targets, first, 1000);
            assert_eq!(planned.len(), 2);
            for (d, w) in planned.iter().zip(targets) {
                assert_eq!(d.webhook_id, w);
                assert_eq!(d.tenant, "t1");
                assert_eq!(d.event_id, "evt_1");
                assert_eq!(d.state, DeliveryState::Pending);
                assert_eq!(d.next_attempt_at, Some(want_due));
            }
            assert_ne!(planned[0].id, planned[1].id);
        }
    }
}
