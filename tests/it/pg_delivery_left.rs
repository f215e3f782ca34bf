//! What a PostgreSQL claim says about the due work it left (FIFO head in flight,
//! the per-webhook bound, other nodes' leases, a webhook row held by a write, the
//! node's own room) and when work is due next; and that a webhook's disable and a
//! batched completion over the same delivery rows never deadlock (one lock order).
//! Real cluster (`pg_cluster`), two `PgStore`s standing for two nodes.

use std::time::{Duration, Instant};

use hookbox::model::{DeliveryState, Ordering};
use hookbox::store::Next;

use crate::pg_cluster;
use crate::pg_delivery::{claim, deliveries, limits, open, sql, webhook, with_webhook, write};

#[tokio::test]
async fn a_claim_says_why_it_left_due_work_and_when_work_is_due_next() {
    let url = pg_cluster::shared().database().await;
    let a = with_webhook(&url, webhook("wh_b", "acme", Ordering::None, None)).await;
    let b = open(&url).await;
    deliveries(&a, "wh_b", 5, 1_000).await;
    deliveries(&a, "wh_b", 1, 50_000).await;

    // Node a takes the bound (2); the rest is left behind its own leases.
    let ca = claim(&a, 10_000, limits(10, 2, 60_000)).await;
    assert_eq!(ca.claimed.len(), 2);
    assert!(ca.left.bound && !ca.left.elsewhere, "{:?}", ca.left);
    assert!(
        !ca.left.needs_look(),
        "a's own Done releases it: {:?}",
        ca.left
    );
    assert_eq!(ca.next_due, Some(50_000));
    // For node b the same work is behind another node's leases: worth a look again.
    let cb = claim(&b, 10_000, limits(10, 2, 60_000)).await;
    assert!(cb.claimed.is_empty());
    assert!(cb.left.bound && cb.left.elsewhere && cb.left.needs_look());

    // The node's own room: one slot for three due rows.
    let room = claim(&b, 10_000, limits(1, 10, 60_000)).await;
    assert_eq!(room.claimed.len(), 1);
    assert!(room.left.room, "{:?}", room.left);

    // A webhook row held by a write (another transaction) is skipped, and said so.
    let mut raw = sql(&url).await;
    let tx = raw.transaction().await.unwrap();
    tx.execute("SELECT 1 FROM webhooks WHERE id = 'wh_b' FOR UPDATE", &[])
        .await
        .unwrap();
    let held = claim(&b, 10_000, limits(10, 10, 60_000)).await;
    assert!(held.claimed.is_empty());
    assert!(
        held.left.locked && held.left.needs_look(),
        "{:?}",
        held.left
    );
    tx.rollback().await.unwrap();
    let after = claim(&b, 10_000, limits(10, 10, 60_000)).await;
    assert_eq!(after.claimed.len(), 2, "the rest once the row is free");

    // A FIFO line waits on its head: another node's (look again) or its own.
    a.create_webhook(webhook("wh_f", "acme", Ordering::Fifo, None))
        .await
        .unwrap();
    deliveries(&a, "wh_f", 2, 1_000).await;
    let head = claim(&a, 10_000, limits(10, 10, 60_000)).await;
    assert_eq!(head.claimed.len(), 1);
    let other = claim(&b, 10_000, limits(10, 10, 60_000)).await;
    assert!(other.claimed.is_empty());
    assert!(other.left.fifo && other.left.elsewhere, "{:?}", other.left);
    let own = claim(&a, 10_000, limits(10, 10, 60_000)).await;
    assert!(own.claimed.is_empty());
    assert!(own.left.fifo && !own.left.needs_look(), "{:?}", own.left);
}

/// Sessions of this database waiting on a lock.
pub(crate) async fn waiting(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

pub(crate) async fn until_waiting(client: &tokio_postgres::Client, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while waiting(client).await < n {
        assert!(Instant::now() < deadline, "{n} sessions never waited");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_webhook_disable_and_a_batched_completion_never_deadlock() {
    let url = pg_cluster::shared().database().await;
    let a = with_webhook(&url, webhook("wh_d", "acme", Ordering::None, None)).await;
    let ids = deliveries(&a, "wh_d", 2, 1_000).await;
    let mut claimed = claim(&a, 10_000, limits(10, 10, 60_000)).await.claimed;
    claimed.sort_by(|x, y| x.delivery.id.cmp(&y.delivery.id));
    assert_eq!(claimed.len(), 2);
    let (first, second) = (claimed[0].clone(), claimed[1].clone());
    assert_eq!(first.delivery.id, ids[0]);

    // A third transaction holds the first row, so both writers queue behind it:
    // the disable's cancel first, then a completion of the batch in the other
    // order (the second row first, as outcomes may arrive).
    let watch = sql(&url).await;
    let mut raw = sql(&url).await;
    let tx = raw.transaction().await.unwrap();
    tx.execute(
        "SELECT 1 FROM deliveries WHERE id = $1 FOR UPDATE",
        &[&first.delivery.id],
    )
    .await
    .unwrap();
    let disabler = {
        let a = a.clone();
        tokio::spawn(async move {
            a.update_webhook("wh_d".into(), |w| {
                w.enabled = false;
                Ok::<(), ()>(())
            })
            .await
        })
    };
    until_waiting(&watch, 1).await;
    let recorder = {
        let a = a.clone();
        let writes = vec![
            write(&second, 10_001, Next::Succeeded),
            write(&first, 10_001, Next::Succeeded),
        ];
        tokio::spawn(async move { a.record_attempts(writes).await })
    };
    until_waiting(&watch, 2).await;
    tx.rollback().await.unwrap();

    // Both finish, neither is chosen as a deadlock victim: the disable wins the
    // rows, the completion finds them cancelled (its lease cleared) and writes
    // nothing.
    let disabled = tokio::time::timeout(Duration::from_secs(10), disabler)
        .await
        .expect("the disable finishes")
        .unwrap();
    assert!(matches!(disabled, Ok(Ok(_))), "{disabled:?}");
    let recorded = tokio::time::timeout(Duration::from_secs(10), recorder)
        .await
        .expect("the completion finishes")
        .unwrap();
    assert_eq!(recorded.expect("no deadlock"), vec![None, None]);
    for id in &ids {
        let (d, attempts) = a.get_delivery(id).await.unwrap().unwrap();
        assert_eq!(d.state, DeliveryState::Cancelled);
        assert!(attempts.is_empty());
    }
}
