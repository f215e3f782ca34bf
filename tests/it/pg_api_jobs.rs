//! The PostgreSQL store's background and housekeeping parts against a real cluster
//! (`pg_cluster`), with two `PgStore`s on one database standing for two nodes: job
//! leases (one holder at a time, expiry), retention under the "retention" lease
//! (runs once across nodes, keeps unfinished events, same answers as redb), the
//! notification throttle (no lost update across nodes), config seeds, portal
//! sessions, and the purge of a deleted tenant (and of orphaned data).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookbox::model::{Delivery, DeliveryState, Event, EventType, PortalSession};
use hookbox::notify::email::ThrottleState;
use hookbox::store::pg::{PgStore, RETENTION_JOB};
use hookbox::store::{Change, IngestItem, IngestOutcome, StoreError, Subscriber};

use crate::pg_api::{BASE, Both, item, tenant, webhook};
use crate::pg_cluster::{self, sql};

async fn count(db: &tokio_postgres::Client, query: &str, tenant: &str) -> i64 {
    db.query_one(query, &[&tenant]).await.unwrap().get(0)
}

/// Two nodes on one fresh database.
async fn two_nodes() -> (PgStore, PgStore, String) {
    let url = pg_cluster::shared().database().await;
    let a = pg_cluster::open(&url).await;
    let b = pg_cluster::open(&url).await;
    (a, b, url)
}

#[tokio::test]
async fn a_job_lease_is_held_by_one_node_at_a_time_and_expires() {
    let (a, b, _) = two_nodes().await;
    assert_ne!(a.node_id(), b.node_id());
    assert!(a.try_job_lease("emails", 60_000).await.unwrap());
    assert!(!b.try_job_lease("emails", 60_000).await.unwrap());
    assert!(a.try_job_lease("emails", 60_000).await.unwrap(), "renewed");
    // Another job's lease is independent.
    assert!(b.try_job_lease("autodisable", 60_000).await.unwrap());
    // Only the holder can release; then the other node takes it at once.
    assert!(!b.release_job_lease("emails").await.unwrap());
    assert!(a.release_job_lease("emails").await.unwrap());
    assert!(b.try_job_lease("emails", 60_000).await.unwrap());
    assert!(!a.try_job_lease("emails", 60_000).await.unwrap());

    // A short lease that its holder does not renew expires, and then (only then)
    // the other node gets it.
    assert!(a.try_job_lease("short", 400).await.unwrap());
    let taken = tokio::time::Instant::now();
    assert!(!b.try_job_lease("short", 400).await.unwrap());
    let deadline = taken + Duration::from_secs(10);
    while !b.try_job_lease("short", 60_000).await.unwrap() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lease never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        taken.elapsed() >= Duration::from_millis(300),
        "not before it expired"
    );
    assert!(!a.try_job_lease("short", 400).await.unwrap());

    // Many tries at once from both nodes: exactly one node wins.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let node = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let won = node.try_job_lease("race", 60_000).await.unwrap();
            (node.node_id().to_owned(), won)
        }));
    }
    let mut winners = HashSet::new();
    for t in tasks {
        let (node, won) = t.await.unwrap();
        if won {
            winners.insert(node);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
}

#[tokio::test]
async fn retention_keeps_unfinished_events_gives_the_redb_answers_and_frees_keys() {
    let both = Both::fixture().await;
    // Events 0-5 finished on both webhooks; event 6 only on wh_a (still unfinished).
    for i in 0..6 {
        both.record_manual(i, 0, true).await;
        both.record_manual(i, 1, true).await;
    }
    both.record_manual(6, 0, true).await;
    let cutoff = BASE + 8_000;
    let mut calls = Vec::new();
    loop {
        let r = both.redb.purge_before(cutoff, 2).await.unwrap();
        let p = both.pg.purge_before(cutoff, 2).await.unwrap();
        assert_eq!(r, p, "chunk {} removes the same", calls.len());
        calls.push(p);
        if p < 2 {
            break;
        }
        assert!(calls.len() < 20, "retention ends");
    }
    assert_eq!(calls.iter().sum::<usize>(), 6, "{calls:?}");
    let left = both.walk_events(None, None, 100).await;
    assert_eq!(
        left.len(),
        6,
        "events 6-11 stay (6 unfinished, 7-11 too young)"
    );
    // Their deliveries and attempts are gone with them.
    assert!(
        both.pg
            .get_delivery(&Both::delivery_id(0, 0))
            .await
            .unwrap()
            .is_none()
    );
    let db = sql(&both.url).await;
    let attempts: i64 = db
        .query_one("SELECT count(*) FROM attempts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(attempts, 1, "only event 6's attempt is left");
    // The purged events' idempotency keys are free again; the kept ones replay.
    let fresh = both.pg.ingest_as(vec![item(0, &[])], None).await.unwrap();
    assert!(
        matches!(fresh[0].0, IngestOutcome::Created { .. }),
        "{:?}",
        fresh[0].0
    );
    let kept = both.pg.ingest_as(vec![item(6, &[])], None).await.unwrap();
    assert!(
        matches!(kept[0].0, IngestOutcome::Replay { .. }),
        "{:?}",
        kept[0].0
    );
}

#[tokio::test]
async fn retention_runs_on_one_node_at_a_time() {
    let both = Both::fixture().await;
    for i in 0..12 {
        both.record_manual(i, 0, true).await;
        both.record_manual(i, 1, true).await;
    }
    let other = pg_cluster::open(&both.url).await;
    let cutoff = BASE + 100_000;
    // Both nodes purge at once: one does the work, the other does nothing.
    let (a, b) = tokio::join!(
        both.pg.purge_before(cutoff, 5),
        other.purge_before(cutoff, 5)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a == 0 || b == 0, "both purged: {a} and {b}");
    assert_eq!(a + b, 5);
    let holder = if a > 0 { &both.pg } else { &other };
    let idle = if a > 0 { &other } else { &both.pg };
    // While the holder's lease lasts, the other node purges nothing.
    assert_eq!(idle.purge_before(cutoff, 5).await.unwrap(), 0);
    assert_eq!(holder.purge_before(cutoff, 5).await.unwrap(), 5);
    // Handed over, the other node carries on.
    assert!(holder.release_job_lease(RETENTION_JOB).await.unwrap());
    assert_eq!(idle.purge_before(cutoff, 5).await.unwrap(), 2);
    assert_eq!(holder.purge_before(cutoff, 5).await.unwrap(), 0);
    let (left, _) = both
        .pg
        .list_events("acme", None, None, None, 100)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn throttle_updates_from_two_nodes_at_once_lose_nothing() {
    let (a, b, _) = two_nodes().await;
    assert_eq!(a.notify_state("wh_1").await.unwrap(), None);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let node = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            node.update_notify_state("wh_1".into(), move |s| {
                let next = ThrottleState {
                    last_sent: Some(1_000 + i),
                    suppressed: s.suppressed + 1,
                };
                (next, s.suppressed)
            })
            .await
        }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap().unwrap());
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..40).collect::<Vec<u32>>(),
        "each saw the one before"
    );
    let stored = b.notify_state("wh_1").await.unwrap().unwrap();
    assert_eq!(stored.suppressed, 40);
    assert!(
        stored
            .last_sent
            .is_some_and(|t| (1_000..1_040).contains(&t))
    );
    // A state without a send is stored as such.
    a.update_notify_state("wh_2".into(), |_| (ThrottleState::default(), ()))
        .await
        .unwrap();
    assert_eq!(
        b.notify_state("wh_2").await.unwrap(),
        Some(ThrottleState::default())
    );
}

/// Records every published change, in order.
#[derive(Default)]
struct Recorder(Mutex<Vec<Change>>);

impl Subscriber for Recorder {
    fn apply(&self, changes: &[Change]) {
        self.0.lock().unwrap().extend(changes.iter().cloned());
    }
}

fn seed(tenant: &str, name: &str) -> EventType {
    EventType {
        tenant: tenant.into(),
        name: name.into(),
        description: Some("seeded".into()),
        schema: None,
        created_at: 3,
    }
}

#[tokio::test]
async fn config_seeds_are_recorded_and_added_once_and_published() {
    let (a, b, _) = two_nodes().await;
    for t in ["t1", "t2"] {
        a.create_tenant(tenant(t), vec![seed(t, "user.created")])
            .await
            .unwrap();
    }
    assert!(a.applied_seeds().await.unwrap().is_empty());
    let seen = Arc::new(Recorder::default());
    b.subscribe(seen.clone());
    let types = vec![
        seed("t1", "user.created"),
        seed("t1", "user.deleted"),
        seed("t2", "user.deleted"),
    ];
    let names = vec!["user.created".to_owned(), "user.deleted".to_owned()];
    assert_eq!(
        b.seed_event_types(types.clone(), names.clone())
            .await
            .unwrap(),
        2
    );
    assert_eq!(a.applied_seeds().await.unwrap(), names);
    let stored = a.list_event_types().await.unwrap();
    assert_eq!(stored.len(), 4, "{stored:?}");
    // Published: every given type as stored, so this node's registry has them all.
    let published = seen.0.lock().unwrap().clone();
    match published.as_slice() {
        [Change::EventTypesAdded(added)] => assert_eq!(added.len(), 3, "{added:?}"),
        other => panic!("{other:?}"),
    }
    // Seeding again (another node starting with the same config) adds nothing.
    assert_eq!(a.seed_event_types(types, names.clone()).await.unwrap(), 0);
    assert_eq!(a.list_event_types().await.unwrap().len(), 4);
    // The applied list is replaced as a whole.
    a.seed_event_types(vec![], vec!["user.created".into()])
        .await
        .unwrap();
    assert_eq!(b.applied_seeds().await.unwrap(), ["user.created"]);
}

fn session(tenant: &str, seed: u8, expires_at: i64) -> PortalSession {
    PortalSession {
        hash: [seed; 32],
        tenant: tenant.into(),
        read_only: seed.is_multiple_of(2),
        created_at: expires_at - 10,
        expires_at,
    }
}

#[tokio::test]
async fn portal_sessions_are_found_by_hash_expire_and_are_revoked_per_tenant() {
    let (store, _, _) = two_nodes().await;
    for id in ["a", "b"] {
        store.create_tenant(tenant(id), vec![]).await.unwrap();
    }
    store
        .create_portal_session(session("a", 1, 100))
        .await
        .unwrap();
    store
        .create_portal_session(session("b", 2, 100))
        .await
        .unwrap();
    let found = store.portal_session(&[1; 32]).await.unwrap().unwrap();
    assert_eq!(found, session("a", 1, 100));
    assert!(store.portal_session(&[9; 32]).await.unwrap().is_none());
    // A tenant that does not exist gets none.
    let missing = store.create_portal_session(session("zz", 3, 100)).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    assert_eq!(store.portal_session_count("zz").await.unwrap(), 0);
    // Creating a session drops the tenant's expired ones, not other tenants'.
    store
        .create_portal_session(session("a", 4, 500))
        .await
        .unwrap();
    assert!(store.portal_session(&[1; 32]).await.unwrap().is_none());
    assert!(store.portal_session(&[2; 32]).await.unwrap().is_some());
    // An expired session that was not dropped yet is still found (the API refuses
    // it by its expiry).
    store
        .create_portal_session(session("b", 5, 95))
        .await
        .unwrap();
    assert_eq!(store.portal_session_count("b").await.unwrap(), 2);
    assert_eq!(store.revoke_portal_sessions("a".into()).await.unwrap(), 1);
    assert_eq!(store.portal_session_count("a").await.unwrap(), 0);
    assert!(store.portal_session(&[4; 32]).await.unwrap().is_none());
    assert_eq!(store.portal_session_count("b").await.unwrap(), 2);
    // Deleting and purging tenant b removes its sessions.
    store.delete_tenant("b".into(), 200).await.unwrap();
    store.purge_tenant("b".into()).await.unwrap();
    assert_eq!(store.portal_session_count("b").await.unwrap(), 0);
}

/// `n` events of `tenant`, each with one delivery to `webhook` and an idempotency
/// key `k{i}`.
fn events(tenant: &str, webhook: &str, n: usize) -> Vec<IngestItem> {
    (0..n)
        .map(|i| {
            let event_id = hookbox::model::new_id("evt");
            IngestItem {
                deliveries: vec![Delivery {
                    id: hookbox::model::new_id("dlv"),
                    tenant: tenant.into(),
                    event_id: event_id.clone(),
                    webhook_id: webhook.into(),
                    event_type: "t".into(),
                    state: DeliveryState::Pending,
                    attempts: 0,
                    schedule_step: 0,
                    next_attempt_at: Some(BASE),
                    last_status: None,
                    last_error: None,
                    created_at: BASE,
                    updated_at: BASE,
                }],
                event: Event {
                    id: event_id,
                    tenant: tenant.into(),
                    event_type: "t".into(),
                    payload: format!("{{\"n\":{i}}}"),
                    channels: vec![],
                    idempotency_key: Some(format!("k{i}")),
                    created_at: BASE,
                },
                body_hash: [i as u8; 32],
            }
        })
        .collect()
}

const TENANT_ROWS: [(&str, &str); 7] = [
    ("events", "SELECT count(*) FROM events WHERE tenant = $1"),
    (
        "deliveries",
        "SELECT count(*) FROM deliveries WHERE tenant = $1",
    ),
    (
        "attempts",
        "SELECT count(*) FROM attempts a JOIN deliveries d ON d.id = a.delivery_id \
         WHERE d.tenant = $1",
    ),
    (
        "idempotency",
        "SELECT count(*) FROM idempotency WHERE tenant = $1",
    ),
    (
        "notify",
        "SELECT count(*) FROM notify n JOIN webhooks w ON w.id = n.webhook_id \
         WHERE w.tenant = $1",
    ),
    (
        "portal",
        "SELECT count(*) FROM portal_sessions WHERE tenant = $1",
    ),
    (
        "webhooks",
        "SELECT count(*) FROM webhooks WHERE tenant = $1",
    ),
];

#[tokio::test]
async fn a_deleted_tenant_is_purged_in_chunks_leaving_other_tenants_alone() {
    let (store, other_node, url) = two_nodes().await;
    let db = sql(&url).await;
    for (t, wh) in [("gone", "wh_gone"), ("keep", "wh_keep")] {
        store.create_tenant(tenant(t), vec![]).await.unwrap();
        store.create_webhook(webhook(wh, t)).await.unwrap();
        let items = events(t, wh, 5);
        let first = items[0].deliveries[0].id.clone();
        store.ingest_as(items, None).await.unwrap();
        let attempt = hookbox::model::Attempt {
            delivery_id: first,
            number: 0,
            at: BASE + 1,
            trigger: hookbox::model::Trigger::Manual,
            status: Some(500),
            error: None,
            latency_ms: 1,
            response_body: "no".into(),
        };
        store.record_manual(attempt, false).await.unwrap();
        store
            .update_notify_state(wh.into(), |s| (s.clone(), ()))
            .await
            .unwrap();
        store
            .create_portal_session(session(t, if t == "gone" { 40 } else { 41 }, i64::MAX))
            .await
            .unwrap();
    }
    store.delete_tenant("gone".into(), BASE + 5).await.unwrap();
    assert!(store.tenant_being_purged("gone").await.unwrap());
    assert!(!store.tenant_being_purged("keep").await.unwrap());
    assert_eq!(other_node.tenants_being_purged().await.unwrap(), ["gone"]);
    let again = store.create_tenant(tenant("gone"), vec![]).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");

    let mut chunks = 0;
    while !store.purge_tenant_chunk("gone".into(), 2).await.unwrap() {
        chunks += 1;
        assert!(chunks < 10, "the purge ends");
    }
    assert_eq!(
        chunks, 3,
        "5 events in chunks of 2, then the rest and the marker"
    );
    assert!(!other_node.tenant_being_purged("gone").await.unwrap());
    for (what, query) in TENANT_ROWS {
        assert_eq!(count(&db, query, "gone").await, 0, "{what} of gone");
        let kept = count(&db, query, "keep").await;
        assert!(kept > 0, "{what} of keep");
    }
    assert_eq!(count(&db, TENANT_ROWS[0].1, "keep").await, 5);
    // An unmarked tenant is never purged.
    assert!(store.purge_tenant_chunk("keep".into(), 2).await.unwrap());
    assert_eq!(count(&db, TENANT_ROWS[0].1, "keep").await, 5);

    // The id is free again, with none of the old data: its keys ingest afresh.
    store.create_tenant(tenant("gone"), vec![]).await.unwrap();
    let fresh = store
        .ingest_as(events("gone", "wh_x", 1), None)
        .await
        .unwrap();
    assert!(matches!(fresh[0].0, IngestOutcome::Created { .. }));
    let kept = store
        .ingest_as(events("keep", "wh_keep", 1), None)
        .await
        .unwrap();
    assert!(matches!(kept[0].0, IngestOutcome::Replay { .. }));
}

#[tokio::test]
async fn spawned_purges_finish_stop_on_request_and_orphans_are_found() {
    let (store, other_node, url) = two_nodes().await;
    let db = sql(&url).await;
    for t in ["one", "two", "old"] {
        store.create_tenant(tenant(t), vec![]).await.unwrap();
        store.ingest_as(events(t, "wh", 3), None).await.unwrap();
    }
    // Two nodes purge the same tenant at once: they take turns, and it ends.
    store.delete_tenant("one".into(), BASE).await.unwrap();
    let (a, b) = (
        store.spawn_purge("one".into()),
        other_node.spawn_purge("one".into()),
    );
    tokio::time::timeout(Duration::from_secs(30), async {
        a.await.unwrap();
        b.await.unwrap();
    })
    .await
    .expect("the purges end");
    assert_eq!(count(&db, TENANT_ROWS[0].1, "one").await, 0);
    assert!(!store.tenant_being_purged("one").await.unwrap());

    // A tenant removed without its data (as a 0.1.0 file copied over would have):
    // found, marked once, refused as an id, purged.
    db.execute("DELETE FROM tenants WHERE id = 'old'", &[])
        .await
        .unwrap();
    assert_eq!(store.mark_orphaned_tenants(7).await.unwrap(), ["old"]);
    assert!(
        other_node
            .mark_orphaned_tenants(8)
            .await
            .unwrap()
            .is_empty()
    );
    let again = store.create_tenant(tenant("old"), vec![]).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");

    // After stop_purges, purges stop at once and the marker stays for the next start.
    store.delete_tenant("two".into(), BASE).await.unwrap();
    store.stop_purges().await;
    store.spawn_purge("two".into()).await.unwrap();
    assert!(store.tenant_being_purged("two").await.unwrap());
    assert_eq!(count(&db, TENANT_ROWS[0].1, "two").await, 3);
    // Another node (a later start) finishes both.
    assert_eq!(
        other_node.tenants_being_purged().await.unwrap(),
        ["old", "two"]
    );
    for t in ["old", "two"] {
        other_node.spawn_purge(t.into()).await.unwrap();
        assert_eq!(count(&db, TENANT_ROWS[0].1, t).await, 0, "{t}");
    }
    assert!(other_node.tenants_being_purged().await.unwrap().is_empty());
}
