//! Ingest on the PostgreSQL store against a real cluster (`pg_cluster`): committed
//! before the answer, payload kept byte for byte, idempotency across nodes, a
//! conflicting call stores nothing, a revoked key stores nothing, and concurrent
//! callers all answered.

use hookbox::model::{ApiKey, Delivery, DeliveryState, Event, Scope, Tenant};
use hookbox::store::pg::PgStore;
use hookbox::store::{IngestItem, IngestOutcome, StoreError};

use crate::pg_cluster::{self, open};

async fn with_tenant(url: &str) -> PgStore {
    let store = open(url).await;
    store
        .create_tenant(
            Tenant {
                id: "acme".into(),
                name: "Acme".into(),
                created_at: 1,
            },
            vec![],
        )
        .await
        .unwrap();
    store
}

/// An event of `payload` (idempotency key `key`) with one delivery, due at 1,000,
/// to each of `webhooks`.
pub(crate) fn item(key: Option<&str>, payload: &str, webhooks: &[&str]) -> IngestItem {
    let event_id = hookbox::model::new_id("evt");
    IngestItem {
        deliveries: webhooks
            .iter()
            .map(|wh| Delivery {
                id: hookbox::model::new_id("dlv"),
                tenant: "acme".into(),
                event_id: event_id.clone(),
                webhook_id: (*wh).into(),
                event_type: "invoice.paid".into(),
                state: DeliveryState::Pending,
                attempts: 0,
                schedule_step: 0,
                next_attempt_at: Some(1_000),
                last_status: None,
                last_error: None,
                created_at: 900,
                updated_at: 900,
            })
            .collect(),
        event: Event {
            id: event_id,
            tenant: "acme".into(),
            event_type: "invoice.paid".into(),
            payload: payload.into(),
            channels: vec!["P-1".into(), "é".into()],
            idempotency_key: key.map(Into::into),
            created_at: 900,
        },
        body_hash: hookbox::secrets::hash_key(payload),
    }
}

#[tokio::test]
async fn an_event_and_its_deliveries_are_stored_as_given() {
    let url = pg_cluster::shared().database().await;
    let store = with_tenant(&url).await;
    let payload = r#"{ "amount" : 100.50, "note": "spaces and \u00e9 kept" }"#;
    let sent = item(None, payload, &["wh_1", "wh_2"]);
    let id = sent.event.id.clone();
    let answer = store.ingest_as(vec![sent.clone()], None).await.unwrap();
    assert_eq!(
        answer[0].0,
        IngestOutcome::Created {
            event_id: id.clone(),
            deliveries: 2
        }
    );
    let (event, deliveries) = store.get_event(&id).await.unwrap().unwrap();
    assert_eq!(event, sent.event);
    assert_eq!(deliveries, sent.deliveries);
    assert_eq!(store.get_event("evt_none").await.unwrap(), None);
}

#[tokio::test]
async fn a_repeated_key_replays_and_a_conflicting_call_stores_nothing() {
    let url = pg_cluster::shared().database().await;
    let store = with_tenant(&url).await;
    let first = item(Some("k1"), r#"{"n":1}"#, &["wh_1"]);
    let first_id = first.event.id.clone();
    store.ingest_as(vec![first], None).await.unwrap();

    let again = item(Some("k1"), r#"{"n":1}"#, &["wh_1"]);
    let again_id = again.event.id.clone();
    let answer = store.ingest_as(vec![again], None).await.unwrap();
    assert_eq!(
        answer[0].0,
        IngestOutcome::Replay {
            event_id: first_id.clone(),
            deliveries: 1
        }
    );
    assert_eq!(store.get_event(&again_id).await.unwrap(), None);

    // A call with one conflicting item stores none of its items, and the key of
    // its other item stays free.
    let fresh = item(Some("k2"), r#"{"n":2}"#, &["wh_1"]);
    let fresh_id = fresh.event.id.clone();
    let clash = item(Some("k1"), r#"{"n":"other"}"#, &["wh_1"]);
    let answer = store.ingest_as(vec![fresh, clash], None).await.unwrap();
    assert_eq!(answer[0].0, IngestOutcome::NotStored);
    assert_eq!(answer[1].0, IngestOutcome::Conflict { event_id: first_id });
    assert_eq!(store.get_event(&fresh_id).await.unwrap(), None);
    let retry = item(Some("k2"), r#"{"n":2}"#, &["wh_1"]);
    let answer = store.ingest_as(vec![retry], None).await.unwrap();
    assert!(matches!(answer[0].0, IngestOutcome::Created { .. }));
}

#[tokio::test]
async fn one_key_sent_to_two_nodes_at_once_is_stored_once() {
    let url = pg_cluster::shared().database().await;
    let node_a = with_tenant(&url).await;
    let node_b = open(&url).await;
    let sends: Vec<_> = (0..20)
        .map(|i| {
            let node = if i % 2 == 0 {
                node_a.clone()
            } else {
                node_b.clone()
            };
            tokio::spawn(async move {
                node.ingest_as(vec![item(Some("same"), r#"{"n":1}"#, &["wh_1"])], None)
                    .await
            })
        })
        .collect();
    let mut created = Vec::new();
    let mut replayed = Vec::new();
    for send in sends {
        match send.await.unwrap().unwrap().remove(0).0 {
            IngestOutcome::Created { event_id, .. } => created.push(event_id),
            IngestOutcome::Replay { event_id, .. } => replayed.push(event_id),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(created.len(), 1, "created {created:?}");
    assert_eq!(replayed.len(), 19);
    assert!(replayed.iter().all(|id| *id == created[0]));
}

#[tokio::test]
async fn an_ingest_by_a_revoked_key_stores_nothing_and_concurrent_calls_all_land() {
    let url = pg_cluster::shared().database().await;
    let store = with_tenant(&url).await;
    store
        .create_api_key(ApiKey {
            id: "key_1".into(),
            tenant: "acme".into(),
            name: "k".into(),
            scopes: vec![Scope::EventsWrite],
            hash: [1; 32],
            prefix: "hbk_x".into(),
            created_at: 1,
        })
        .await
        .unwrap();
    store.delete_api_key("key_1".into()).await.unwrap();
    let late = item(None, "{}", &["wh_1"]);
    let late_id = late.event.id.clone();
    let refused = store.ingest_as(vec![late], Some("key_1".into())).await;
    assert!(matches!(refused, Err(StoreError::Revoked(ref id)) if id == "key_1"));
    assert_eq!(store.get_event(&late_id).await.unwrap(), None);

    let calls: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let sent = item(None, &format!(r#"{{"i":{i}}}"#), &["wh_1", "wh_2"]);
                let id = sent.event.id.clone();
                let answer = store.ingest_as(vec![sent], None).await.unwrap();
                (id, answer.into_iter().next().unwrap().0)
            })
        })
        .collect();
    for call in calls {
        let (id, outcome) = call.await.unwrap();
        assert_eq!(
            outcome,
            IngestOutcome::Created {
                event_id: id.clone(),
                deliveries: 2
            }
        );
        let (_, deliveries) = store.get_event(&id).await.unwrap().unwrap();
        assert_eq!(deliveries.len(), 2);
    }
}
