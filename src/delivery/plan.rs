//! One place that builds new deliveries and hands them to the scheduler: for ingest
//! (`api/events.rs`), operational events (the follow-up task) and test events, after
//! [`wanted`] has applied the webhooks' payload filters. Pure but for [`hand_over`],
//! which only sends on a channel; never touches the store.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::msg::{Msg, Work};
use crate::filter::Subject;
use crate::model::{Delivery, DeliveryState, Event, UnixMs, Webhook, new_id};
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

/// Keeps the webhooks of `candidates` (those whose types and channels want `event`)
/// whose payload filter `event` passes; a webhook without a filter always stays.
/// One [`Subject`] serves every filter, so `data` is parsed at most once per event,
/// and not at all when no candidate has a filter or none needs `data`.
pub fn wanted(event: &Event, mut candidates: Vec<Arc<Webhook>>) -> Vec<Arc<Webhook>> {
    let subject = Subject::of(event);
    candidates.retain(|w| w.filter.as_ref().is_none_or(|f| f.matches(&subject)));
    candidates
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

    fn hook(id: &str, filter: Option<serde_json::Value>) -> Arc<Webhook> {
        Arc::new(Webhook {
            id: id.into(),
            tenant: "t1".into(),
            url: "https://example.com".into(),
            event_types: vec!["*".into()],
            channels: Vec::new(),
            description: None,
            headers: Default::default(),
            oauth: None,
            secrets: Vec::new(),
            notification_email: None,
            enabled: true,
            disabled_reason: None,
            disabled_at: None,
            metadata: Default::default(),
            rate_limit_per_second: None,
            created_at: 0,
            updated_at: 0,
            deleted_at: None,
            failing_since: None,
            version: 1,
            ordering: crate::model::Ordering::None,
            filter: filter.map(|f| crate::filter::Filter::parse(&f).expect("valid filter")),
        })
    }

    #[test]
    fn wanted_keeps_webhooks_without_a_filter_and_those_the_event_passes_in_order() {
        let event = Event {
            id: "evt_1".into(),
            tenant: "t1".into(),
            event_type: "order.paid".into(),
            payload: r#"{"amount": 150, "currency": "EUR"}"#.into(),
            channels: Vec::new(),
            idempotency_key: None,
            created_at: 1000,
        };
        let candidates = vec![
            hook("wh_0", None),
            hook(
                "wh_1",
                Some(serde_json::json!({"data.amount": {"$gte": 100}})),
            ),
            hook(
                "wh_2",
                Some(serde_json::json!({"data.amount": {"$gte": 200}})),
            ),
            hook(
                "wh_3",
                Some(serde_json::json!({"type": {"$prefix": "order."}})),
            ),
            hook(
                "wh_4",
                Some(serde_json::json!({"data.currency": {"$exists": false}})),
            ),
            hook("wh_5", None),
        ];
        let kept: Vec<String> = wanted(&event, candidates)
            .iter()
            .map(|w| w.id.clone())
            .collect();
        assert_eq!(kept, ["wh_0", "wh_1", "wh_3", "wh_5"]);
    }

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
