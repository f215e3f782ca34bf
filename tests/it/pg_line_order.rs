//! A FIFO line on PostgreSQL follows the order its deliveries were written
//! (`line_seq`, migration 4), not their ids: an id's time part is the ingesting
//! node's clock, so a node whose clock is behind gives a later event a smaller id.
//! Real server on PostgreSQL, real receiver. The other node's clock is staged with
//! one SQL statement: the later delivery's id is rewritten to what a node whose
//! clock is a few milliseconds behind would have given it.

use std::time::Duration;

use hookbox::model::now_ms;
use serde_json::{Value, json};
use tokio_postgres::Client;

use crate::helpers::{Tenant, TestApp};
use crate::pg_cluster::{self, sql};
use crate::receiver::{Received, Reply, TestReceiver};

const WAIT: Duration = Duration::from_secs(30);

/// A FIFO webhook on a PostgreSQL node whose first request is held 1.5 s, with
/// event 0 delivered and held and events 1 and 2 waiting behind it; returns the
/// app, the receiver, the database and the three delivery ids.
async fn line_of_three() -> (TestApp, TestReceiver, Client, [String; 3]) {
    let url = pg_cluster::shared().database().await;
    let app = pg_cluster::app(&url, |_| {}).await;
    let db = sql(&url).await;
    let rx = TestReceiver::start().await;
    rx.script([Reply::status(200).delay(Duration::from_millis(1500))]);
    let t = app.tenant("line").await;
    app.webhook(
        &t,
        json!({"url": rx.url("/line"), "event_types": ["shift.created"], "ordering": "fifo"}),
    )
    .await;
    let first = send(&app, &t, 0).await;
    let sent_at = now_ms();
    assert_eq!(rx.wait_for(1, WAIT).await.len(), 1, "event 0 never arrived");
    // Event 1's id must carry a later millisecond than event 0's (the staged id
    // below sits between them).
    while now_ms() <= sent_at {
        tokio::task::yield_now().await;
    }
    let second = send(&app, &t, 1).await;
    let third = send(&app, &t, 2).await;
    let mut ids = Vec::new();
    for event in [&first, &second, &third] {
        let row = db
            .query_one(
                "SELECT id FROM deliveries WHERE event_id = $1",
                &[&event["id"].as_str().unwrap()],
            )
            .await
            .expect("one delivery per event");
        ids.push(row.get::<_, String>(0));
    }
    let ids: [String; 3] = ids.try_into().unwrap();
    (app, rx, db, ids)
}

async fn send(app: &TestApp, t: &Tenant, n: i64) -> Value {
    app.event(t, json!({"type": "shift.created", "data": {"n": n}}))
        .await
}

/// Rewrites a waiting delivery: its id, and optionally clears its `line_seq`.
async fn stage(db: &Client, id: &str, new_id: &str, clear_seq: bool) {
    let staged = db
        .execute(
            "UPDATE deliveries SET id = $2, \
                 line_seq = CASE WHEN $3 THEN NULL ELSE line_seq END \
             WHERE id = $1 AND lease_id IS NULL AND next_attempt_at IS NOT NULL",
            &[&id, &new_id, &clear_seq],
        )
        .await
        .expect("stage");
    assert_eq!(staged, 1, "the delivery left the line before the staging");
}

/// The event numbers the receiver got, in arrival order, once all three arrived.
async fn arrivals(rx: &TestReceiver) -> Vec<i64> {
    rx.wait_for(3, WAIT)
        .await
        .iter()
        .map(|r: &Received| r.json()["data"]["n"].as_i64().unwrap_or(-1))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_event_with_a_smaller_id_waits_its_turn() {
    let (_app, rx, db, [d0, d1, d2]) = line_of_three().await;
    // Event 2, named as a node whose clock is behind would have named it: an id
    // smaller than event 1's (same millisecond, lowest random part), still larger
    // than event 0's.
    let (prefix, ulid) = d1.rsplit_once('_').expect("prefix_ULID");
    let behind = format!("{prefix}_{}{}", &ulid[..10], "0".repeat(16));
    assert!(
        d0 < behind && behind < d1,
        "{behind} not between {d0} and {d1}"
    );
    stage(&db, &d2, &behind, false).await;
    assert_eq!(
        arrivals(&rx).await,
        [0, 1, 2],
        "the line followed the ids, not the order the events were written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_written_before_the_line_order_go_first_by_id() {
    let (_app, rx, db, [_, _, d2]) = line_of_three().await;
    // A row from before migration 4 has no line_seq: it is older than every row
    // written since, whatever its id says.
    stage(&db, &d2, &d2, true).await;
    assert_eq!(arrivals(&rx).await, [0, 2, 1]);
}
