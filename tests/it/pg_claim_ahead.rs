//! Claiming ahead on PostgreSQL (`claimloop`): a claim counts a tenant's running
//! attempts as about to end, so it leases up to the tenant's share more while that
//! share runs; what it brings beyond the share waits leased and never runs early.
//! A real hookbox on its own database of the shared cluster, a slow loopback
//! receiver. It never asserts a timing, only counts.

use std::time::Duration;

use serde_json::json;

use crate::pg_cluster;
use crate::receiver::{Reply, TestReceiver};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_leases_ahead_of_the_running_share_and_never_runs_more_than_it() {
    let url = pg_cluster::shared().database().await;
    // Each exchange holds for a while (under the tests' 2 s request timeout), so
    // the share stays full while we look.
    let slow = Duration::from_millis(1500);
    let rx = TestReceiver::start_with(Reply::status(200).delay(slow)).await;
    let app = pg_cluster::app(&url, |c| {
        c.store.postgres_pool = 8;
        c.store.lease = Duration::from_secs(6);
        c.delivery.max_in_flight = 8;
        c.delivery.per_webhook_in_flight = 8;
        c.delivery.per_tenant_in_flight = Some(2);
    })
    .await;
    let t = app.tenant("ahead").await;
    app.webhook(
        &t,
        json!({"url": rx.url("/hook"), "event_types": ["shift.created"]}),
    )
    .await;
    for i in 0..6 {
        app.event(&t, json!({"type": "shift.created", "data": {"i": i}}))
            .await;
    }
    // While the first two run at the receiver (nothing else may start until one
    // ends), two more are already claimed: leased to this node, waiting.
    assert_eq!(rx.wait_for(2, WAIT).await.len(), 2);
    let db = pg_cluster::sql(&url).await;
    let mut leased = 0;
    while rx.received().len() == 2 {
        leased = db
            .query_one(
                "SELECT count(*) FROM deliveries WHERE lease_id IS NOT NULL",
                &[],
            )
            .await
            .expect("count leases")
            .get::<_, i64>(0);
        if leased == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        leased, 4,
        "no claim leased ahead while the share ran (the first two ended first)"
    );
    assert_eq!(rx.received().len(), 2, "more than the share started");
    // Everything arrives, never more than the share at once.
    assert_eq!(rx.wait_for(6, WAIT).await.len(), 6);
    assert!(
        rx.peak_concurrency("/hook") <= 2,
        "{} requests at once over a share of 2",
        rx.peak_concurrency("/hook")
    );
}
