//! The delivery engine's claims on PostgreSQL against a real cluster (`pg_cluster`),
//! with two `PgStore`s on one database standing for two nodes: the per-webhook
//! in-flight bound, FIFO order and the rate limit hold across them, an expired lease
//! is taken over, completion is fenced by the node's lease, and renewal keeps leases.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use hookbox::model::{
    Attempt, Delivery, DeliveryState, Event, Ordering, Trigger, Webhook, new_id, now_ms,
};
use hookbox::store::pg::{ClaimLimits, Claimed, Claims, PgStore};
use hookbox::store::{AttemptWrite, DueEntry, IngestItem, Next};

use crate::pg_cluster;
pub(crate) use crate::pg_cluster::{open, sql};

/// A plain webhook ([`pg_cluster::webhook`]) with its order and rate limit.
pub(crate) fn webhook(id: &str, tenant: &str, ordering: Ordering, rate: Option<u32>) -> Webhook {
    Webhook {
        ordering,
        rate_limit_per_second: rate,
        ..pg_cluster::webhook(id, tenant)
    }
}

/// A store with tenant `acme` and webhook `wh` set up.
pub(crate) async fn with_webhook(url: &str, wh: Webhook) -> PgStore {
    let store = open(url).await;
    store
        .create_tenant(pg_cluster::tenant(&wh.tenant), vec![])
        .await
        .unwrap();
    store.create_webhook(wh).await.unwrap();
    store
}

/// A store with tenant `acme` and plain webhooks `ids` (no order, no rate limit).
pub(crate) async fn with_plain_webhooks(url: &str, ids: &[&str]) -> PgStore {
    let (first, rest) = ids.split_first().expect("one webhook at least");
    let store = with_webhook(url, webhook(first, "acme", Ordering::None, None)).await;
    for id in rest {
        store
            .create_webhook(webhook(id, "acme", Ordering::None, None))
            .await
            .unwrap();
    }
    store
}

/// Ingests `n` events with one delivery each to `webhook_id`, due at `due`; returns
/// the delivery ids in creation order.
pub(crate) async fn deliveries(
    store: &PgStore,
    webhook_id: &str,
    n: usize,
    due: i64,
) -> Vec<String> {
    let mut ids = Vec::new();
    let items = (0..n)
        .map(|i| {
            let event_id = new_id("evt");
            let id = new_id("dlv");
            ids.push(id.clone());
            IngestItem {
                deliveries: vec![Delivery {
                    id,
                    tenant: "acme".into(),
                    event_id: event_id.clone(),
                    webhook_id: webhook_id.into(),
                    event_type: "invoice.paid".into(),
                    state: DeliveryState::Pending,
                    attempts: 0,
                    schedule_step: 0,
                    next_attempt_at: Some(due),
                    last_status: None,
                    last_error: None,
                    created_at: 900,
                    updated_at: 900,
                }],
                event: Event {
                    id: event_id,
                    tenant: "acme".into(),
                    event_type: "invoice.paid".into(),
                    payload: format!("{{\"i\":{i}}}"),
                    channels: vec![],
                    idempotency_key: None,
                    created_at: 900,
                },
                body_hash: [0; 32],
            }
        })
        .collect();
    store.ingest_as(items, None).await.unwrap();
    ids
}

pub(crate) fn limits(slots: u32, per_webhook: u32, lease_ms: i64) -> ClaimLimits {
    ClaimLimits {
        slots,
        per_webhook,
        tenant_share: slots,
        tenant_room: Vec::new(),
        lease_ms,
    }
}

pub(crate) async fn claim(store: &PgStore, now: i64, limits: ClaimLimits) -> Claims {
    store.claim_batch(now, &limits).await.expect("claim")
}

pub(crate) fn write(c: &Claimed, at: i64, next: Next) -> AttemptWrite {
    AttemptWrite {
        entry: DueEntry {
            due: c.delivery.next_attempt_at.unwrap_or(0) as u64,
            delivery_id: c.delivery.id.clone(),
            webhook_id: c.delivery.webhook_id.clone(),
        },
        attempt: Attempt {
            delivery_id: c.delivery.id.clone(),
            number: 0,
            at,
            trigger: Trigger::Scheduled,
            status: Some(if next == Next::Succeeded { 200 } else { 503 }),
            error: None,
            latency_ms: 3,
            response_body: "ok".into(),
        },
        next,
    }
}

#[tokio::test]
async fn two_nodes_claiming_at_once_never_share_a_delivery() {
    let url = pg_cluster::shared().database().await;
    let a = with_webhook(&url, webhook("wh_s", "acme", Ordering::None, None)).await;
    let b = open(&url).await;
    let ids = deliveries(&a, "wh_s", 120, 1_000).await;
    let mut seen = HashSet::new();
    loop {
        // A bound above the backlog: only SKIP LOCKED keeps the nodes apart.
        let (ca, cb) = tokio::join!(
            claim(&a, 10_000, limits(25, 1_000, 60_000)),
            claim(&b, 10_000, limits(25, 1_000, 60_000))
        );
        if ca.claimed.is_empty() && cb.claimed.is_empty() {
            break;
        }
        for c in ca.claimed.iter().chain(&cb.claimed) {
            assert!(seen.insert(c.delivery.id.clone()), "claimed twice");
        }
        // Each batch leaves oldest due first (one webhook: creation order here).
        for batch in [&ca.claimed, &cb.claimed] {
            assert!(
                batch
                    .windows(2)
                    .all(|w| w[0].delivery.id < w[1].delivery.id)
            );
        }
    }
    assert_eq!(seen.len(), ids.len());
}

#[tokio::test]
async fn the_per_webhook_bound_holds_across_two_nodes_claiming_at_once() {
    let url = pg_cluster::shared().database().await;
    let a = with_webhook(&url, webhook("wh_b", "acme", Ordering::None, None)).await;
    let b = open(&url).await;
    let ids = deliveries(&a, "wh_b", 60, 1_000).await;
    let (bound, now) = (3u32, 10_000);
    let mut held: Vec<(bool, Claimed)> = Vec::new();
    let mut done = HashSet::new();
    let mut rounds = 0;
    while done.len() < ids.len() {
        rounds += 1;
        assert!(rounds < 500, "no progress: {} of 60 delivered", done.len());
        let (ca, cb) = tokio::join!(
            claim(&a, now, limits(10, bound, 60_000)),
            claim(&b, now, limits(10, bound, 60_000))
        );
        held.extend(ca.claimed.into_iter().map(|c| (true, c)));
        held.extend(cb.claimed.into_iter().map(|c| (false, c)));
        assert!(
            held.len() <= bound as usize,
            "{} leased at once with a bound of {bound}",
            held.len()
        );
        let ids: HashSet<_> = held.iter().map(|(_, c)| c.delivery.id.clone()).collect();
        assert_eq!(ids.len(), held.len(), "one delivery held twice");
        // Each node completes one of its claims (the oldest) before the next round.
        if let Some(i) = held.iter().position(|(on_a, _)| *on_a) {
            let (_, c) = held.remove(i);
            let r = a
                .record_attempts(vec![write(&c, now, Next::Succeeded)])
                .await;
            assert!(r.unwrap()[0].is_some());
            assert!(done.insert(c.delivery.id));
        }
        if let Some(i) = held.iter().position(|(on_a, _)| !*on_a) {
            let (_, c) = held.remove(i);
            let r = b
                .record_attempts(vec![write(&c, now, Next::Succeeded)])
                .await;
            assert!(r.unwrap()[0].is_some());
            assert!(done.insert(c.delivery.id));
        }
    }
    let (_, left) = tokio::join!(
        claim(&a, now, limits(10, bound, 60_000)),
        claim(&b, now, limits(10, bound, 60_000))
    );
    assert!(left.claimed.is_empty());
}

/// A claim counts a webhook's leases only after it holds the webhook's lock (CI
/// once saw the first claims of two nodes take 3 each under a bound of 3: the two
/// statements were pipelined in whichever order they were ready). The lock waits
/// on a table lock while "another node" leases 3 rows and commits; a count taken
/// before the lock misses them. The claiming node has claimed before, so its
/// statements are prepared and only the lock itself can wait.
#[tokio::test]
async fn a_claim_counts_leases_after_taking_the_webhooks_lock() {
    let url = pg_cluster::shared().database().await;
    let b = with_plain_webhooks(&url, &["wh_lw", "wh_warm"]).await;
    deliveries(&b, "wh_warm", 1, 1_000).await;
    assert_eq!(
        claim(&b, 10_000, limits(10, 3, 60_000)).await.claimed.len(),
        1
    );
    deliveries(&b, "wh_lw", 8, 1_000).await;
    let other = sql(&url).await;
    // Reads go on; row locks (`FOR UPDATE`) wait for this transaction.
    other
        .batch_execute("BEGIN; LOCK TABLE webhooks IN EXCLUSIVE MODE")
        .await
        .unwrap();
    let claiming = tokio::spawn(async move { claim(&b, 10_000, limits(10, 3, 60_000)).await });
    crate::pg_delivery_left::until_waiting(&sql(&url).await, 1).await;
    // Another node's claim of 3, committed while this one waits.
    let leased = other
        .execute(
            "UPDATE deliveries SET lease_id = '00000000-0000-4000-8000-000000000001', \
                 lease_until = 70000 \
             WHERE id IN (SELECT id FROM deliveries WHERE webhook_id = 'wh_lw' \
                 ORDER BY id LIMIT 3)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(leased, 3);
    other.batch_execute("COMMIT").await.unwrap();
    let c = claiming.await.unwrap();
    assert!(
        c.claimed.is_empty(),
        "{} more leased beside 3 with a bound of 3",
        c.claimed.len()
    );
    assert!(c.left.bound, "the claim says the bound held it back");
}

#[tokio::test]
async fn fifo_claims_only_the_first_unfinished_delivery_and_a_retry_keeps_its_place() {
    let url = pg_cluster::shared().database().await;
    let a = with_webhook(&url, webhook("wh_f", "acme", Ordering::Fifo, None)).await;
    let b = open(&url).await;
    let ids = deliveries(&a, "wh_f", 6, 1_000).await;
    let mut now = 10_000;
    let mut order = Vec::new();
    let mut failed_once = HashSet::new();
    while order.len() < ids.len() {
        assert!(now < 100_000, "no progress");
        let (ca, cb) = tokio::join!(
            claim(&a, now, limits(10, 10, 60_000)),
            claim(&b, now, limits(10, 10, 60_000))
        );
        let (ca, cb) = (ca.claimed, cb.claimed);
        assert!(ca.len() + cb.len() <= 1, "two of one FIFO line at once");
        let Some((node, c)) = ca
            .first()
            .map(|c| (&a, c))
            .or_else(|| cb.first().map(|c| (&b, c)))
        else {
            now += 50;
            continue;
        };
        // Always the first unfinished delivery in event order.
        assert_eq!(c.delivery.id, ids[order.len()]);
        // While it is leased, nothing of the line is claimed by either node.
        let (xa, xb) = tokio::join!(
            claim(&a, now, limits(10, 10, 60_000)),
            claim(&b, now, limits(10, 10, 60_000))
        );
        assert!(xa.claimed.is_empty() && xb.claimed.is_empty());
        // Every other delivery fails once first: it is retried in 200 ms and the
        // line waits for it rather than moving on.
        let next = if order.len() % 2 == 0 && failed_once.insert(c.delivery.id.clone()) {
            Next::RetryAt(now + 200)
        } else {
            Next::Succeeded
        };
        let r = node.record_attempts(vec![write(c, now, next)]).await;
        assert!(r.unwrap()[0].is_some());
        if next == Next::Succeeded {
            order.push(c.delivery.id.clone());
        } else {
            let early = claim(&a, now + 100, limits(10, 10, 60_000)).await;
            assert!(early.claimed.is_empty(), "the line moved past a retry");
        }
        now += 50;
    }
    assert_eq!(order, ids);
    assert_eq!(failed_once.len(), 3);
}

#[tokio::test]
async fn a_rate_limit_of_20_per_second_is_never_over_admitted_across_two_nodes() {
    let url = pg_cluster::shared().database().await;
    let a = with_webhook(&url, webhook("wh_r", "acme", Ordering::None, Some(20))).await;
    let b = open(&url).await;
    deliveries(&a, "wh_r", 400, 1_000).await;
    // Both nodes claim as fast as they can for 2.5 s of real time, completing each
    // claim at once (so only the rate limits them); every claim is stamped with the
    // time the node claimed at.
    let mut stamps: Vec<i64> = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(2_500);
    let started = now_ms();
    while Instant::now() < deadline {
        let (ta, tb) = (now_ms(), now_ms());
        let (ca, cb) = tokio::join!(
            claim(&a, ta, limits(50, 50, 60_000)),
            claim(&b, tb, limits(50, 50, 60_000))
        );
        for (node, t, claims) in [(&a, ta, ca), (&b, tb, cb)] {
            if claims.claimed.is_empty() {
                continue;
            }
            stamps.extend(std::iter::repeat_n(t, claims.claimed.len()));
            let writes = claims
                .claimed
                .iter()
                .map(|c| write(c, t, Next::Succeeded))
                .collect();
            node.record_attempts(writes).await.unwrap();
        }
    }
    stamps.sort();
    let first = stamps[0];
    // The bucket starts full (20, one second's worth) and refills 20 per second:
    // never more claimed by any time than it had given out by then (+1 for the
    // millisecond the two nodes' clocks may differ by).
    for (i, t) in stamps.iter().enumerate() {
        let allowed = 20.0 + 20.0 * (t - first) as f64 / 1000.0 + 1.0;
        assert!(
            (i + 1) as f64 <= allowed,
            "{} claims by {} ms: over the rate",
            i + 1,
            t - first
        );
    }
    // Per whole second after the first: about 20, never more than 21.
    let mut per_second: HashMap<i64, usize> = HashMap::new();
    for t in &stamps {
        *per_second.entry((t - first) / 1000).or_default() += 1;
    }
    assert!(
        per_second.get(&1).copied().unwrap_or(0) <= 21,
        "{per_second:?}"
    );
    // And it does admit at the rate, not less.
    let elapsed = (now_ms() - started) as f64 / 1000.0;
    assert!(
        stamps.len() as f64 >= 20.0 + 20.0 * (elapsed - 0.6),
        "only {} claims in {elapsed:.1} s",
        stamps.len()
    );
}

/// A webhook is asked for no more rows than the claim saw it has: its bound (ten
/// here) must not hold the node's slots that the other webhooks' rows need.
#[tokio::test]
async fn a_claim_asks_each_webhook_for_what_it_has_not_for_its_bound() {
    let url = pg_cluster::shared().database().await;
    let hooks = ["wh_s1", "wh_s2", "wh_s3"];
    let store = with_plain_webhooks(&url, &hooks).await;
    let mut want = HashSet::new();
    for wh in hooks {
        want.extend(deliveries(&store, wh, 2, 1_000).await);
    }
    let claims = claim(&store, 1_000, limits(7, 10, 1_000)).await;
    let got: HashSet<String> = claims
        .claimed
        .iter()
        .map(|c| c.delivery.id.clone())
        .collect();
    assert_eq!(got, want, "{:?}", claims.left);
    assert!(!claims.left.room, "{:?}", claims.left);
}

/// A fan-out claimed in one go: every delivery comes with its own event's record,
/// each event read once and shared by its deliveries.
#[tokio::test]
async fn deliveries_of_one_event_claimed_together_share_its_record() {
    let url = pg_cluster::shared().database().await;
    let hooks = ["wh_f1", "wh_f2", "wh_f3"];
    let store = with_plain_webhooks(&url, &hooks).await;
    let items: Vec<IngestItem> = (0..2)
        .map(|i| crate::pg_ingest::item(None, &format!("{{\"i\":{i}}}"), &hooks))
        .collect();
    let want: HashMap<String, Event> = items
        .iter()
        .map(|i| (i.event.id.clone(), i.event.clone()))
        .collect();
    store.ingest_as(items, None).await.unwrap();

    // Two per webhook: each webhook's ask (its bound) fits the node's slots.
    let claims = claim(&store, 1_000, limits(10, 2, 1_000)).await;
    let claimed = claims.claimed;
    assert_eq!(claimed.len(), 6, "{:?} {claimed:#?}", claims.left);
    let mut by_event: HashMap<&str, Vec<&Claimed>> = HashMap::new();
    for c in &claimed {
        assert_eq!(*c.event, want[&c.delivery.event_id], "{c:#?}");
        by_event.entry(&c.delivery.event_id).or_default().push(c);
    }
    assert_eq!(by_event.len(), 2);
    for (event, cs) in by_event {
        let webhooks: HashSet<&str> = cs.iter().map(|c| c.delivery.webhook_id.as_str()).collect();
        assert_eq!(webhooks.len(), 3, "{event}");
        assert!(
            cs.iter()
                .all(|c| std::sync::Arc::ptr_eq(&c.event, &cs[0].event)),
            "{event}: each delivery got a copy of its own"
        );
    }
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_the_late_completion_writes_nothing() {
    let url = pg_cluster::shared().database().await;
    let a = with_webhook(&url, webhook("wh_e", "acme", Ordering::None, None)).await;
    let b = open(&url).await;
    let ids = deliveries(&a, "wh_e", 1, 1_000).await;
    assert!(
        claim(&a, 999, limits(10, 10, 1_000))
            .await
            .claimed
            .is_empty()
    );
    let first = a
        .claim_batch(1_000, &limits(10, 10, 1_000))
        .await
        .unwrap()
        .claimed;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].event.payload, "{\"i\":0}");
    assert_eq!(first[0].lease_until, 2_000);
    // Held: the other node gets nothing until the lease has run out.
    assert!(
        claim(&b, 1_999, limits(10, 10, 1_000))
            .await
            .claimed
            .is_empty()
    );
    let taken = b
        .claim_batch(2_000, &limits(10, 10, 1_000))
        .await
        .unwrap()
        .claimed;
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].delivery.id, ids[0]);

    // A's late completion is fenced off: nothing written, `None`.
    let late = a
        .record_attempts(vec![write(&first[0], 2_100, Next::Succeeded)])
        .await
        .unwrap();
    assert_eq!(late, vec![None]);
    assert!(a.attempts(&ids[0]).await.unwrap().is_empty());
    // B's lands: attempt 1, failed, due again at its retry time for anyone.
    let done = b
        .record_attempts(vec![write(&taken[0], 2_200, Next::RetryAt(7_200))])
        .await
        .unwrap();
    let d = done[0].clone().expect("B held the lease");
    assert_eq!(
        (d.state, d.attempts, d.schedule_step, d.next_attempt_at),
        (DeliveryState::Failed, 1, 1, Some(7_200))
    );
    let attempts = b.attempts(&ids[0]).await.unwrap();
    assert_eq!(
        attempts
            .iter()
            .map(|x| (x.number, x.at))
            .collect::<Vec<_>>(),
        vec![(1, 2_200)]
    );
    assert!(
        claim(&a, 7_199, limits(10, 10, 1_000))
            .await
            .claimed
            .is_empty()
    );
    assert_eq!(
        claim(&a, 7_200, limits(10, 10, 1_000)).await.claimed.len(),
        1
    );
}

#[tokio::test]
async fn renewal_keeps_a_nodes_leases_and_release_gives_them_back() {
    let url = pg_cluster::shared().database().await;
    let a = with_webhook(&url, webhook("wh_n", "acme", Ordering::None, None)).await;
    let b = open(&url).await;
    deliveries(&a, "wh_n", 3, 1_000).await;
    let held = a
        .claim_batch(1_000, &limits(10, 10, 1_000))
        .await
        .unwrap()
        .claimed;
    assert_eq!(held.len(), 3);
    let ids: Vec<String> = held.iter().map(|c| c.delivery.id.clone()).collect();
    // One statement renews all three, each tick, while the attempts run long.
    assert_eq!(a.renew_leases(1_900, 1_000, &ids).await.unwrap(), 3);
    assert_eq!(a.renew_leases(2_800, 1_000, &ids).await.unwrap(), 3);
    assert!(
        claim(&b, 3_500, limits(10, 10, 1_000))
            .await
            .claimed
            .is_empty()
    );
    // Releasing one (claimed, never started) lets the other node take it at once.
    assert_eq!(
        a.release_leases(&[held[0].delivery.id.clone()])
            .await
            .unwrap(),
        1
    );
    let taken = b
        .claim_batch(3_500, &limits(10, 10, 1_000))
        .await
        .unwrap()
        .claimed;
    assert_eq!(
        taken.iter().map(|c| &c.delivery.id).collect::<Vec<_>>(),
        vec![&held[0].delivery.id]
    );
    // B holds none of A's: its renewal touches only its own row.
    assert_eq!(b.renew_leases(3_600, 1_000, &ids).await.unwrap(), 1);
}

#[tokio::test]
async fn renewal_keeps_only_the_leases_the_node_knows_it_holds() {
    let url = pg_cluster::shared().database().await;
    let a = with_webhook(&url, webhook("wh_k", "acme", Ordering::None, None)).await;
    let b = open(&url).await;
    deliveries(&a, "wh_k", 3, 1_000).await;
    let held = claim(&a, 1_000, limits(10, 10, 1_000)).await.claimed;
    assert_eq!(held.len(), 3);
    // A lost track of the third (its claim's answer never arrived): renewing what
    // it knows leaves that lease to run out, and then B takes the delivery.
    let known: Vec<String> = held[..2].iter().map(|c| c.delivery.id.clone()).collect();
    assert_eq!(a.renew_leases(1_900, 1_000, &known).await.unwrap(), 2);
    let taken = claim(&b, 2_100, limits(10, 10, 1_000)).await.claimed;
    assert_eq!(
        taken.iter().map(|c| &c.delivery.id).collect::<Vec<_>>(),
        vec![&held[2].delivery.id]
    );
    // Nothing to renew is no statement and no lease.
    assert_eq!(a.renew_leases(2_200, 1_000, &[]).await.unwrap(), 0);
}

/// A busy webhook's backlog fills the claim's first window. A node's first claim
/// reads the window alone (its last window was not cut) and reaches another
/// webhook's newer delivery in a later pass; the next claim, after a cut window,
/// looks beyond the window in its first statement and reaches the next one there.
#[tokio::test]
async fn a_window_cut_by_a_busy_backlog_hides_no_other_webhook_on_either_first_look() {
    let url = pg_cluster::shared().database().await;
    let a = with_plain_webhooks(&url, &["wh_busy", "wh_quiet"]).await;
    let busy = deliveries(&a, "wh_busy", 200, 1_000).await;
    // Round 0 takes the busy webhook's 4 oldest (its bound); round 1 finds it at
    // its bound and takes none.
    for (round, want_busy) in [(0, &busy[..4]), (1, &[][..])] {
        let quiet = deliveries(&a, "wh_quiet", 1, 1_500).await;
        let got = claim(&a, 2_000, limits(64, 4, 60_000)).await;
        let ids = |webhook: &str| -> Vec<String> {
            got.claimed
                .iter()
                .filter(|c| c.delivery.webhook_id == webhook)
                .map(|c| c.delivery.id.clone())
                .collect()
        };
        assert_eq!(
            ids("wh_quiet"),
            quiet,
            "round {round}: hidden by the backlog"
        );
        assert_eq!(ids("wh_busy"), want_busy, "round {round}");
        assert!(
            got.left.bound,
            "round {round}: the busy webhook's work was left"
        );
    }
}

#[tokio::test]
async fn a_tenant_without_room_is_skipped_and_a_disabled_webhooks_work_is_cancelled() {
    let url = pg_cluster::shared().database().await;
    let a = with_plain_webhooks(&url, &["wh_busy", "wh_off"]).await;
    let busy = deliveries(&a, "wh_busy", 300, 1_000).await;
    let off = deliveries(&a, "wh_off", 2, 1_000).await;
    // A slow receiver's backlog of 300 due rows, older than anything else: with the
    // webhook at its bound, a fresh delivery of another tenant is still claimed.
    a.create_tenant(pg_cluster::tenant("other"), vec![])
        .await
        .unwrap();
    a.create_webhook(webhook("wh_other", "other", Ordering::None, None))
        .await
        .unwrap();
    let held = a
        .claim_batch(2_000, &limits(4, 4, 60_000))
        .await
        .unwrap()
        .claimed;
    assert_eq!(held.len(), 4);
    let fresh = {
        let mut item = deliveries(&a, "wh_other", 1, 1_500).await;
        item.remove(0)
    };
    let got = a
        .claim_batch(2_000, &limits(64, 4, 60_000))
        .await
        .unwrap()
        .claimed;
    assert!(
        got.iter().any(|c| c.delivery.id == fresh),
        "starved behind a backlog"
    );
    assert!(got.iter().all(|c| !busy[4..].contains(&c.delivery.id)));
    // A tenant at its share on this node is not scanned at all.
    let mut l = limits(64, 100, 60_000);
    l.tenant_room = vec![("acme".into(), 0)];
    assert!(claim(&a, 2_000, l).await.claimed.is_empty());
    // Disabling a webhook cancels its work; a delivery that slipped in after (an
    // ingest racing the disable) is cancelled by the claim instead of attempted.
    a.update_webhook("wh_off".into(), |w| {
        w.enabled = false;
        Ok::<(), ()>(())
    })
    .await
    .unwrap()
    .unwrap();
    // It sits behind the busy webhook's backlog (same due time, a newer id); that
    // webhook is at its bound, so a later pass of the same claim reaches it.
    let late = deliveries(&a, "wh_off", 1, 1_000).await;
    let got = a
        .claim_batch(2_000, &limits(64, 4, 60_000))
        .await
        .unwrap()
        .claimed;
    assert!(got.iter().all(|c| c.delivery.webhook_id != "wh_off"));
    let client = sql(&url).await;
    let rows = client
        .query(
            "SELECT id, state, next_attempt_at IS NULL FROM deliveries \
             WHERE webhook_id = 'wh_off' ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let states: Vec<(String, i16, bool)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let want: Vec<(String, i16, bool)> = off
        .iter()
        .chain(&late)
        .map(|id| (id.clone(), 4, true))
        .collect();
    assert_eq!(
        states, want,
        "every delivery of the disabled webhook is cancelled"
    );
}
