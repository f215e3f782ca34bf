//! One lock order for delivery rows on PostgreSQL (id order, `ORDER BY id FOR
//! UPDATE`) in the two multi-row writes outside the claim path: `recover` and a
//! tenant delete's cancel of its webhooks' deliveries. Each is raced against
//! another writer of the same rows that queues first (a batched completion, a
//! webhook's disable) while a third transaction holds the lowest row; in plan or
//! webhook order the two would deadlock and PostgreSQL would abort one. Real
//! cluster (`pg_cluster`), `PgStore`s standing for nodes.

use std::time::Duration;

use hookbox::model::{DeliveryState, Ordering};
use hookbox::store::{Next, RecoverScope};

use crate::pg_cluster;
use crate::pg_delivery::{
    claim, deliveries, limits, open, sql, webhook, with_plain_webhooks, with_webhook, write,
};
use crate::pg_delivery_left::until_waiting;

/// Locks the delivery `id` in a transaction of its own until the returned client's
/// transaction is rolled back (`ROLLBACK` on the client).
async fn hold(url: &str, id: &str) -> tokio_postgres::Client {
    let raw = sql(url).await;
    raw.batch_execute("BEGIN").await.unwrap();
    raw.execute("SELECT 1 FROM deliveries WHERE id = $1 FOR UPDATE", &[&id])
        .await
        .unwrap();
    raw
}

#[tokio::test]
async fn a_tenant_delete_and_a_batched_completion_never_deadlock() {
    let url = pg_cluster::shared().database().await;
    // Two webhooks of one tenant; the lower delivery id belongs to the higher
    // webhook id, so cancelling webhook by webhook would lock the higher row first.
    let a = with_plain_webhooks(&url, &["wh_a", "wh_b"]).await;
    let low = deliveries(&a, "wh_b", 1, 1_000).await.remove(0);
    // Ids are time-ordered to the millisecond: the next one is made a
    // millisecond later.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let high = deliveries(&a, "wh_a", 1, 1_000).await.remove(0);
    assert!(low < high);
    // One claim may take one webhook's work; a second takes the other's.
    let mut claimed = claim(&a, 10_000, limits(10, 10, 60_000)).await.claimed;
    claimed.extend(claim(&a, 10_000, limits(10, 10, 60_000)).await.claimed);
    claimed.sort_by(|x, y| x.delivery.id.cmp(&y.delivery.id));
    assert_eq!(claimed.len(), 2);

    // The completion queues on the low row first, then the delete (another node).
    let watch = sql(&url).await;
    let holder = hold(&url, &low).await;
    let recorder = {
        let a = a.clone();
        let writes = vec![
            write(&claimed[1], 10_001, Next::Succeeded),
            write(&claimed[0], 10_001, Next::Succeeded),
        ];
        tokio::spawn(async move { a.record_attempts(writes).await })
    };
    until_waiting(&watch, 1).await;
    let b = open(&url).await;
    let deleter = tokio::spawn(async move { b.delete_tenant("acme".into(), 10_002).await });
    until_waiting(&watch, 2).await;
    holder.batch_execute("ROLLBACK").await.unwrap();

    // Both finish and neither is a deadlock victim: the completion wins the rows,
    // the delete then finds them finished and cancels nothing.
    let recorded = tokio::time::timeout(Duration::from_secs(10), recorder)
        .await
        .expect("the completion finishes")
        .unwrap();
    assert!(recorded.is_ok(), "{recorded:?}");
    let deleted = tokio::time::timeout(Duration::from_secs(10), deleter)
        .await
        .expect("the delete finishes")
        .unwrap();
    let mut gone = deleted.expect("no deadlock");
    gone.sort();
    assert_eq!(gone, vec!["wh_a".to_owned(), "wh_b".to_owned()]);
    for id in [&low, &high] {
        let (d, attempts) = a.get_delivery(id).await.unwrap().unwrap();
        assert_eq!(d.state, DeliveryState::Succeeded, "{id}");
        assert_eq!(attempts.len(), 1);
    }
}

#[tokio::test]
async fn recover_and_a_webhook_disable_never_deadlock() {
    let url = pg_cluster::shared().database().await;
    let a = with_webhook(&url, webhook("wh_r", "acme", Ordering::None, None)).await;
    let ids = deliveries(&a, "wh_r", 2, 1_000).await;
    let mut claimed = claim(&a, 10_000, limits(10, 10, 60_000)).await.claimed;
    claimed.sort_by(|x, y| x.delivery.id.cmp(&y.delivery.id));
    assert_eq!(claimed.len(), 2);
    // Both fail and wait for a retry; the higher row is written first, so in the
    // table it now comes before the lower one (the order a scan meets them).
    for c in [&claimed[1], &claimed[0]] {
        let done = a
            .record_attempts(vec![write(c, 10_001, Next::RetryAt(90_000))])
            .await
            .unwrap();
        assert_eq!(done.len(), 1);
    }

    // The planner may visit the rows in table order (as here, with index scans
    // off for the database, so for the node opened next): recover must still
    // lock them in id order.
    let admin = sql(&url).await;
    let name: String = admin
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0);
    admin
        .batch_execute(&format!(
            "ALTER DATABASE \"{name}\" SET enable_indexscan = off; \
             ALTER DATABASE \"{name}\" SET enable_indexonlyscan = off; \
             ALTER DATABASE \"{name}\" SET enable_bitmapscan = off"
        ))
        .await
        .unwrap();

    // The disable's cancel queues on the low row first, then recover (another node).
    let watch = sql(&url).await;
    let holder = hold(&url, &ids[0]).await;
    let disabler = {
        let a = a.clone();
        tokio::spawn(async move {
            a.update_webhook("wh_r".into(), |w| {
                w.enabled = false;
                Ok::<(), ()>(())
            })
            .await
        })
    };
    until_waiting(&watch, 1).await;
    let b = open(&url).await;
    let recoverer = tokio::spawn(async move {
        b.recover(
            "wh_r".into(),
            RecoverScope {
                since: 0,
                now: 20_000,
            },
        )
        .await
    });
    until_waiting(&watch, 2).await;
    holder.batch_execute("ROLLBACK").await.unwrap();

    let disabled = tokio::time::timeout(Duration::from_secs(10), disabler)
        .await
        .expect("the disable finishes")
        .unwrap();
    assert!(matches!(disabled, Ok(Ok(_))), "{disabled:?}");
    let recovered = tokio::time::timeout(Duration::from_secs(10), recoverer)
        .await
        .expect("recover finishes")
        .unwrap();
    assert!(recovered.is_ok(), "no deadlock: {recovered:?}");
}
