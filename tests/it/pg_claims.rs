//! Delivery claims on the PostgreSQL store against a real cluster (`pg_cluster`):
//! two nodes never claim the same row, a leased row waits for its lease to expire,
//! completion is fenced by the lease id, and renewal keeps a long attempt's row.

use std::collections::HashSet;

use hookbox::model::{Attempt, Delivery, DeliveryState, Event, Tenant, Trigger};
use hookbox::secrets::Cipher;
use hookbox::store::IngestItem;
use hookbox::store::pg::{Completion, PgStore};

use crate::pg_cluster;

async fn open(url: &str) -> PgStore {
    PgStore::open(url, 4, Cipher::new(&[7; 32]))
        .await
        .expect("open the PostgreSQL store")
}

/// A store with `n` deliveries of one event each, due at 1_000 + i.
async fn with_deliveries(url: &str, n: usize) -> PgStore {
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
    let items = (0..n)
        .map(|i| {
            let event_id = hookbox::model::new_id("evt");
            IngestItem {
                deliveries: vec![Delivery {
                    id: hookbox::model::new_id("dlv"),
                    tenant: "acme".into(),
                    event_id: event_id.clone(),
                    webhook_id: "wh_1".into(),
                    event_type: "invoice.paid".into(),
                    state: DeliveryState::Pending,
                    attempts: 0,
                    schedule_step: 0,
                    next_attempt_at: Some(1_000 + i as i64),
                    last_status: None,
                    last_error: None,
                    created_at: 900,
                    updated_at: 900,
                }],
                event: Event {
                    id: event_id,
                    tenant: "acme".into(),
                    event_type: "invoice.paid".into(),
                    payload: "{}".into(),
                    channels: vec![],
                    idempotency_key: None,
                    created_at: 900,
                },
                body_hash: [0; 32],
            }
        })
        .collect();
    store.ingest_as(items, None).await.unwrap();
    store
}

fn failed_attempt(id: &str, at: i64) -> Completion {
    Completion {
        attempt: Attempt {
            delivery_id: id.into(),
            number: 1,
            at,
            trigger: Trigger::Scheduled,
            status: Some(503),
            error: None,
            latency_ms: 12,
            response_body: "busy".into(),
        },
        state: DeliveryState::Failed,
        schedule_step: 1,
        next_attempt_at: Some(at + 5_000),
    }
}

#[tokio::test]
async fn two_nodes_claiming_at_once_never_share_a_delivery() {
    let url = pg_cluster::shared().database().await;
    let node_a = with_deliveries(&url, 120).await;
    let node_b = open(&url).await;
    let mut seen = HashSet::new();
    let mut total = 0;
    loop {
        let (a, b) = tokio::join!(
            node_a.claim_due(10_000, 25, 60_000),
            node_b.claim_due(10_000, 25, 60_000)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        if a.is_empty() && b.is_empty() {
            break;
        }
        for claim in a.iter().chain(&b) {
            assert!(seen.insert(claim.delivery.id.clone()), "claimed twice");
            total += 1;
        }
        // Each batch leaves oldest due first.
        for batch in [&a, &b] {
            assert!(
                batch
                    .windows(2)
                    .all(|w| w[0].delivery.next_attempt_at <= w[1].delivery.next_attempt_at)
            );
        }
    }
    assert_eq!(total, 120);
}

#[tokio::test]
async fn a_row_is_claimed_when_due_and_again_only_after_its_lease_expires() {
    let url = pg_cluster::shared().database().await;
    let node_a = with_deliveries(&url, 1).await;
    let node_b = open(&url).await;
    assert!(node_a.claim_due(999, 10, 1_000).await.unwrap().is_empty());
    let first = node_a.claim_due(1_000, 10, 1_000).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(node_b.claim_due(1_500, 10, 1_000).await.unwrap().is_empty());

    // Node A renews while its attempt runs long: still its own at 2,500.
    let ids = [first[0].delivery.id.clone()];
    assert_eq!(
        node_a
            .renew_lease(&first[0].lease_id, &ids, 1_900, 1_000)
            .await
            .unwrap(),
        1
    );
    assert!(node_b.claim_due(2_500, 10, 1_000).await.unwrap().is_empty());

    // Node A dies: after the lease, node B takes the row over.
    let taken = node_b.claim_due(2_900, 10, 1_000).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_ne!(taken[0].lease_id, first[0].lease_id);

    // A's late completion is fenced off and writes nothing; B's lands.
    let id = first[0].delivery.id.clone();
    assert!(
        !node_a
            .complete(&first[0], &failed_attempt(&id, 3_000))
            .await
            .unwrap()
    );
    assert!(node_a.attempts(&id).await.unwrap().is_empty());
    assert_eq!(
        node_a
            .renew_lease(&first[0].lease_id, &ids, 3_000, 1_000)
            .await
            .unwrap(),
        0
    );
    assert!(
        node_b
            .complete(&taken[0], &failed_attempt(&id, 3_100))
            .await
            .unwrap()
    );
    let attempts = node_b.attempts(&id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        (attempts[0].number, attempts[0].status, attempts[0].at),
        (1, Some(503), 3_100)
    );
    let (_, deliveries) = node_b
        .get_event(&taken[0].delivery.event_id)
        .await
        .unwrap()
        .unwrap();
    let d = &deliveries[0];
    assert_eq!(
        (d.state, d.attempts, d.schedule_step, d.next_attempt_at),
        (DeliveryState::Failed, 1, 1, Some(8_100))
    );
    // The completion freed the row: it is due again at its retry time, for anyone.
    assert!(node_a.claim_due(8_099, 10, 1_000).await.unwrap().is_empty());
    assert_eq!(node_a.claim_due(8_100, 10, 1_000).await.unwrap().len(), 1);
}
