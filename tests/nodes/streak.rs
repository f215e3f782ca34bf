//! The failure streak (`failing_since`) when a node's registry lags the database
//! (another node changed the row and this node has not heard yet): the
//! auto-disable decision is judged on the stored row, never on the registry's
//! copy, and a failure stamps `failing_since` only when the stored row has none,
//! so an older stamp is never moved forward. The lag is made on purpose: the row
//! is changed by SQL that announces nothing (the listener's backstop refresh is
//! 30 s away). Each test reads the stored row after the node stopped gracefully
//! (which drains its follow-ups).

use std::time::{Duration, Instant};

use http::Method;
use serde_json::{Value, json};

use hookbox::model::now_ms;

use crate::helpers::{Tenant, TestApp};
use crate::pg_cluster;
use crate::receiver::{Reply, TestReceiver};
use crate::support::{WAIT, deliveries_in, ingest, node_with, open_store};

/// How long a streak must last to disable (`delivery.disable_after`).
const DISABLE_AFTER: Duration = Duration::from_secs(3_600);

/// A node with a webhook whose receiver always answers 500; the webhook's id.
async fn failing_webhook(url: &str) -> (TestApp, Tenant, String, TestReceiver) {
    let node = node_with(url, |c| c.delivery.disable_after = DISABLE_AFTER).await;
    let rx = TestReceiver::start_with(Reply::status(500)).await;
    let t = node.tenant("acme").await;
    let wh = node
        .webhook(
            &t,
            json!({"url": rx.url("/down"), "event_types": ["shift.created"]}),
        )
        .await;
    let id = wh["id"].as_str().expect("id").to_owned();
    (node, t, id, rx)
}

/// Ingests one event at `node` and waits until its delivery is finished: every
/// attempt used (each failure handed to the follow-ups), or cancelled by a
/// disable. Then stops the node.
async fn fail_one_delivery_and_stop(node: &mut TestApp, t: &Tenant, id: &str) {
    ingest(node, t, 1, "streak").await;
    let deadline = Instant::now() + WAIT;
    while deliveries_in(node, t, id, "exhausted").await.is_empty()
        && deliveries_in(node, t, id, "cancelled").await.is_empty()
    {
        assert!(Instant::now() < deadline, "the delivery never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.stop().await;
}

/// The webhook's stored `failing_since`, set by SQL alone (nothing announced).
async fn set_failing_since_silently(url: &str, id: &str, since: Option<i64>) {
    let db = pg_cluster::sql(url).await;
    let n = db
        .execute(
            "UPDATE webhooks SET failing_since = $2 WHERE id = $1",
            &[&id, &since],
        )
        .await
        .expect("update the row");
    assert_eq!(n, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streak_ended_elsewhere_does_not_disable_on_a_lagging_node() {
    let url = pg_cluster::shared().database().await;
    let (mut node, t, id, rx) = failing_webhook(&url).await;
    // The node learns (through the change feed) of a streak two disable periods old.
    let old = now_ms() - 2 * DISABLE_AFTER.as_millis() as i64;
    let store = open_store(&url).await;
    store
        .update_webhook(id.clone(), move |w| {
            w.failing_since = Some(old);
            w.metadata.insert("mark".into(), "streak".into());
            Ok::<(), ()>(())
        })
        .await
        .expect("write")
        .expect("applied");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, w): (_, Value) = node
            .as_tenant(&t, Method::GET, &format!("/v1/webhooks/{id}"), None)
            .await;
        if w["metadata"]["mark"] == "streak" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the change never reached the node"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Another node's success ended the streak; this node has not heard of it.
    set_failing_since_silently(&url, &id, None).await;

    fail_one_delivery_and_stop(&mut node, &t, &id).await;
    assert!(!rx.received().is_empty(), "the receiver was tried");
    let stored = store.get_webhook(&id).await.expect("read").expect("stored");
    assert!(
        stored.enabled && stored.disabled_reason.is_none(),
        "disabled on the registry's stale streak: {:?}",
        stored.disabled_reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_node_never_moves_a_stored_streak_forward() {
    let url = pg_cluster::shared().database().await;
    let (mut node, t, id, rx) = failing_webhook(&url).await;
    // Another node's failure started a streak a minute ago; this node has not
    // heard of it (its registry has none).
    let since = now_ms() - 60_000;
    set_failing_since_silently(&url, &id, Some(since)).await;

    fail_one_delivery_and_stop(&mut node, &t, &id).await;
    assert!(!rx.received().is_empty(), "the receiver was tried");
    let stored = open_store(&url)
        .await
        .get_webhook(&id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(
        stored.failing_since,
        Some(since),
        "the streak's start moved from {since}"
    );
    assert!(stored.enabled);
}
