//! A lease a node holds without knowing it (its claim committed but the answer was
//! lost as the database went away, or an outcome could not be recorded) runs out
//! and its delivery is made, instead of being renewed for as long as the node lives
//! and holding its webhook's in-flight bound. Real server on PostgreSQL, real
//! receiver; the lost claim is staged with one SQL statement.

use std::time::{Duration, Instant};

use hookbox::model::now_ms;
use serde_json::json;

use crate::pg_cluster::{self, sql};
use crate::receiver::{Reply, TestReceiver};

const LEASE: Duration = Duration::from_secs(6);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_the_node_lost_track_of_runs_out_and_its_delivery_is_made() {
    let url = pg_cluster::shared().database().await;
    let app = pg_cluster::app(&url, |c| {
        c.store.lease = LEASE;
        // One at a time: a forgotten lease would hold the whole webhook.
        c.delivery.per_webhook_in_flight = 1;
    })
    .await;
    let db = sql(&url).await;
    let rx = TestReceiver::start().await;
    // The first delivery is held long enough to read the node's lease id.
    rx.script([Reply::status(200).delay(Duration::from_millis(1500))]);
    let t = app.tenant("acme").await;
    app.webhook(
        &t,
        json!({"url": rx.url("/lost"), "event_types": ["shift.created"]}),
    )
    .await;
    let first = app
        .event(&t, json!({"type": "shift.created", "data": {"n": 1}}))
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let node = loop {
        let row = db
            .query_opt(
                "SELECT lease_id::text FROM deliveries WHERE lease_id IS NOT NULL",
                &[],
            )
            .await
            .unwrap();
        if let Some(row) = row {
            break row.get::<_, String>(0);
        }
        assert!(
            Instant::now() < deadline,
            "the first delivery was never leased"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // The second waits behind the first (bound 1). Stage a claim of it that the
    // node made but never heard back from: leased under the node's own id.
    let second = app
        .event(&t, json!({"type": "shift.created", "data": {"n": 2}}))
        .await;
    let staged = db
        .execute(
            "UPDATE deliveries SET lease_id = $1::text::uuid, lease_until = $2 \
             WHERE event_id = $3 AND lease_id IS NULL",
            &[
                &node,
                &(now_ms() + LEASE.as_millis() as i64),
                &second["id"].as_str().unwrap(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        staged, 1,
        "the second delivery was claimed before the staging"
    );
    let third = app
        .event(&t, json!({"type": "shift.created", "data": {"n": 3}}))
        .await;
    // The lost lease runs out within LEASE (renewal leaves it alone), so the second
    // delivery and the one behind it are made. Before the fix the node renewed it
    // every LEASE/3 for ever, and the webhook's bound of 1 stayed taken.
    let got = rx.wait_for(3, LEASE * 3).await;
    let mut ids: Vec<String> = got
        .iter()
        .filter_map(|r| r.json()["data"]["n"].as_u64())
        .map(|n| n.to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids, ["1", "2", "3"], "events {first} {second} {third}");
}
