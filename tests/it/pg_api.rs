//! The PostgreSQL store's event and delivery reads and writes (list_events, the
//! delivery log, get_delivery, delivery_with_event, the due-time reads,
//! record_manual, record_test, count_recoverable, recover) against a real cluster
//! (`pg_cluster`), checked the strongest way there is: the same operations on a
//! real redb store and on PostgreSQL must give the same answers, page by page.

use hookbox::model::{Attempt, Delivery, DeliveryState, Event, Trigger, Webhook};
use hookbox::secrets::Cipher;
use hookbox::store::pg::PgStore;
use hookbox::store::{DeliveryFilter, IngestItem, RecoverScope, Store};

use crate::pg_cluster;

const KEY: [u8; 32] = pg_cluster::MASTER_KEY;
/// The fixture's first event time (Unix ms); event i is created at BASE + i s.
pub const BASE: i64 = 1_700_000_000_000;
const EVENTS: i64 = 12;

/// A redb store and a PostgreSQL store holding the same data.
pub struct Both {
    pub redb: Store,
    pub pg: PgStore,
    /// The PostgreSQL database's URL, for direct SQL.
    pub url: String,
    _dir: tempfile::TempDir,
}

fn id(prefix: &str, ms: i64, n: u128) -> String {
    format!("{prefix}_{}", ulid::Ulid::from_parts(ms as u64, n))
}

/// A plain webhook ([`pg_cluster::webhook`]) created at [`BASE`].
pub fn webhook(id: &str, tenant: &str) -> Webhook {
    Webhook {
        created_at: BASE,
        updated_at: BASE,
        ..pg_cluster::webhook(id, tenant)
    }
}

pub use pg_cluster::tenant;

/// Event `i` of tenant `acme`: type `a.x` or `b.y` alternately, one delivery per
/// webhook of `hooks`, due half a second after its creation.
pub fn item(i: i64, hooks: &[&str]) -> IngestItem {
    let at = BASE + i * 1_000;
    let event_type = if i % 2 == 0 { "a.x" } else { "b.y" };
    let event = Event {
        id: id("evt", at, i as u128),
        tenant: "acme".into(),
        event_type: event_type.into(),
        payload: format!("{{\"n\":{i}}}"),
        channels: vec!["c1".into()],
        idempotency_key: Some(format!("key-{i}")),
        created_at: at,
    };
    let deliveries = hooks
        .iter()
        .enumerate()
        .map(|(h, wh)| Delivery {
            id: id("dlv", at, (i * 10 + h as i64) as u128),
            tenant: "acme".into(),
            event_id: event.id.clone(),
            webhook_id: (*wh).into(),
            event_type: event_type.into(),
            state: DeliveryState::Pending,
            attempts: 0,
            schedule_step: 0,
            next_attempt_at: Some(at + 500),
            last_status: None,
            last_error: None,
            created_at: at,
            updated_at: at,
        })
        .collect();
    IngestItem {
        event,
        deliveries,
        body_hash: [i as u8; 32],
    }
}

impl Both {
    /// Both stores with tenant `acme`, webhooks `wh_a` and `wh_b`, and 12 events,
    /// each delivered to both webhooks.
    pub async fn fixture() -> Both {
        let dir = tempfile::tempdir().expect("temp dir");
        let redb =
            Store::open(&dir.path().join("db.redb"), Cipher::new(&KEY), 1 << 20).expect("redb");
        let url = pg_cluster::shared().database().await;
        let pg = pg_cluster::open(&url).await;
        let both = Both {
            redb,
            pg,
            url,
            _dir: dir,
        };
        both.redb
            .create_tenant(tenant("acme"), vec![])
            .await
            .unwrap();
        both.pg.create_tenant(tenant("acme"), vec![]).await.unwrap();
        for wh in ["wh_a", "wh_b"] {
            both.redb.create_webhook(webhook(wh, "acme")).await.unwrap();
            both.pg.create_webhook(webhook(wh, "acme")).await.unwrap();
        }
        let items: Vec<IngestItem> = (0..EVENTS).map(|i| item(i, &["wh_a", "wh_b"])).collect();
        both.redb.ingest(items.clone()).await.unwrap();
        both.pg.ingest_as(items, None).await.unwrap();
        both
    }

    /// The delivery of event `i` to webhook number `h` (0 `wh_a`, 1 `wh_b`).
    pub fn delivery_id(i: i64, h: i64) -> String {
        id("dlv", BASE + i * 1_000, (i * 10 + h) as u128)
    }

    pub async fn record_manual(&self, i: i64, h: i64, ok: bool) -> Delivery {
        let attempt = Attempt {
            delivery_id: Self::delivery_id(i, h),
            number: 0,
            at: BASE + 100_000 + i,
            trigger: Trigger::Manual,
            status: Some(if ok { 200 } else { 502 }),
            error: None,
            latency_ms: 7,
            response_body: if ok { "ok".into() } else { "bad".into() },
        };
        let r = self
            .redb
            .record_manual(attempt.clone(), ok)
            .await
            .expect("redb manual");
        let p = self.pg.record_manual(attempt, ok).await.expect("pg manual");
        assert_eq!(r, p, "record_manual answers alike");
        p
    }

    /// Disables a webhook in both stores (which cancels its unfinished deliveries).
    async fn disable(&self, wh: &str) {
        let off = |w: &mut Webhook| {
            w.enabled = false;
            w.updated_at = BASE + 200_000;
            Ok::<(), ()>(())
        };
        self.redb
            .update_webhook(wh.into(), off)
            .await
            .unwrap()
            .unwrap();
        self.pg
            .update_webhook(wh.into(), off)
            .await
            .unwrap()
            .unwrap();
    }

    /// Walks every page of a webhook's log in both stores, asserting they match
    /// page by page; returns the ids listed.
    async fn walk_deliveries(
        &self,
        wh: &str,
        filter: &DeliveryFilter,
        limit: usize,
    ) -> Vec<String> {
        let mut cursor: Option<String> = None;
        let mut all = Vec::new();
        for _ in 0..100 {
            let r = self
                .redb
                .list_webhook_deliveries(wh, filter, cursor.as_deref(), limit)
                .unwrap();
            let p = self
                .pg
                .list_webhook_deliveries(wh, filter, cursor.as_deref(), limit)
                .await
                .unwrap();
            assert_eq!(r, p, "{wh} {filter:?} limit {limit} after {cursor:?}");
            all.extend(p.0.iter().map(|d| d.id.clone()));
            match p.1 {
                Some(next) => cursor = Some(next),
                None => return all,
            }
        }
        panic!("the delivery log never ended");
    }

    /// Walks every page of the tenant's events in both stores, asserting they match.
    pub async fn walk_events(
        &self,
        ty: Option<&str>,
        since: Option<i64>,
        limit: usize,
    ) -> Vec<String> {
        let mut cursor: Option<String> = None;
        let mut all = Vec::new();
        for _ in 0..100 {
            let r = self
                .redb
                .list_events("acme", ty, since, cursor.as_deref(), limit)
                .unwrap();
            let p = self
                .pg
                .list_events("acme", ty, since, cursor.as_deref(), limit)
                .await
                .unwrap();
            assert_eq!(
                r, p,
                "{ty:?} since {since:?} limit {limit} after {cursor:?}"
            );
            all.extend(p.0.iter().map(|e| e.id.clone()));
            match p.1 {
                Some(next) => cursor = Some(next),
                None => return all,
            }
        }
        panic!("the event list never ended");
    }

    async fn assert_due_reads_match(&self) {
        assert_eq!(
            self.redb.next_due().unwrap(),
            self.pg.next_due().await.unwrap()
        );
        assert_eq!(
            self.redb.due_count().unwrap(),
            self.pg.due_count().await.unwrap()
        );
        for now in [
            0,
            BASE,
            BASE + 500,
            BASE + 3_700,
            BASE + 20_000,
            BASE + 300_000,
        ] {
            assert_eq!(
                self.redb.next_due_after(now).unwrap(),
                self.pg.next_due_after(now).await.unwrap(),
                "next_due_after({now})"
            );
        }
    }
}

#[tokio::test]
async fn event_lists_page_newest_first_with_the_redb_cursors_and_filters() {
    let both = Both::fixture().await;
    for limit in [1, 3, 5, 12, 100] {
        for ty in [None, Some("a.x"), Some("b.y"), Some("none")] {
            for since in [
                None,
                Some(BASE + 4_000),
                Some(BASE + 4_001),
                Some(BASE + 60_000),
            ] {
                let ids = both.walk_events(ty, since, limit).await;
                // Newest first, nothing twice.
                assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
            }
        }
    }
    assert_eq!(both.walk_events(None, None, 5).await.len(), EVENTS as usize);
    assert_eq!(
        both.walk_events(Some("a.x"), Some(BASE + 4_000), 2)
            .await
            .len(),
        4,
        "events 4, 6, 8, 10"
    );
    // Another tenant's events are not listed; an unknown cursor is only a bound.
    let (none, next) = both
        .pg
        .list_events("other", None, None, None, 10)
        .await
        .unwrap();
    assert!(none.is_empty() && next.is_none());
    let r = both
        .redb
        .list_events("acme", None, None, Some("evt_zzz"), 4)
        .unwrap();
    let p = both
        .pg
        .list_events("acme", None, None, Some("evt_zzz"), 4)
        .await
        .unwrap();
    assert_eq!(r, p);
    // The event read of ingest agrees too.
    let first = both.walk_events(None, None, 100).await.pop().unwrap();
    assert_eq!(
        both.redb.get_event(&first).unwrap(),
        both.pg.get_event(&first).await.unwrap()
    );
}

#[tokio::test]
async fn delivery_logs_filter_and_page_as_on_redb_through_manual_attempts_and_recover() {
    let both = Both::fixture().await;
    both.assert_due_reads_match().await;
    // Events 0-3 delivered by hand to wh_a; event 4's manual try fails (its state
    // and schedule stay, its attempt is counted and numbered).
    for i in 0..4 {
        let d = both.record_manual(i, 0, true).await;
        assert_eq!(d.state, DeliveryState::Succeeded);
        assert_eq!(d.next_attempt_at, None);
    }
    let failed = both.record_manual(4, 0, false).await;
    assert_eq!(failed.state, DeliveryState::Pending);
    assert_eq!(failed.attempts, 1);
    assert_eq!(failed.next_attempt_at, Some(BASE + 4_000 + 500));
    let again = both.record_manual(4, 0, false).await;
    assert_eq!(again.attempts, 2);
    both.assert_due_reads_match().await;

    // The attempts read back alike, numbered 1 and 2.
    let id4 = Both::delivery_id(4, 0);
    let (d, attempts) = both.pg.get_delivery(&id4).await.unwrap().unwrap();
    assert_eq!(
        Some((d.clone(), attempts.clone())),
        both.redb.get_delivery(&id4).unwrap()
    );
    assert_eq!(
        attempts.iter().map(|a| a.number).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(
        both.redb.delivery_with_event(&id4).unwrap(),
        both.pg.delivery_with_event(&id4).await.unwrap()
    );
    assert!(both.pg.get_delivery("dlv_missing").await.unwrap().is_none());
    assert!(
        both.pg
            .delivery_with_event("dlv_missing")
            .await
            .unwrap()
            .is_none()
    );
    let missing = Attempt {
        delivery_id: "dlv_missing".into(),
        number: 0,
        at: 1,
        trigger: Trigger::Manual,
        status: Some(200),
        error: None,
        latency_ms: 1,
        response_body: String::new(),
    };
    assert!(matches!(
        both.pg.record_manual(missing, true).await,
        Err(hookbox::store::StoreError::NotFound(_))
    ));

    // Disabling wh_a cancels its 8 unfinished deliveries in both stores.
    both.disable("wh_a").await;
    both.assert_due_reads_match().await;
    let states = [
        None,
        Some(DeliveryState::Succeeded),
        Some(DeliveryState::Cancelled),
        Some(DeliveryState::Pending),
    ];
    for wh in ["wh_a", "wh_b"] {
        for state in states {
            for event_type in [None, Some("a.x".to_owned())] {
                for (since, until) in [
                    (None, None),
                    (Some(BASE + 2_000), None),
                    (None, Some(BASE + 6_000)),
                    (Some(BASE + 2_000), Some(BASE + 6_000)),
                    (Some(BASE + 6_000), Some(BASE + 2_000)),
                ] {
                    let filter = DeliveryFilter {
                        state,
                        event_type: event_type.clone(),
                        since,
                        until,
                    };
                    for limit in [1, 2, 5, 50] {
                        both.walk_deliveries(wh, &filter, limit).await;
                    }
                }
            }
        }
    }
    let cancelled = DeliveryFilter {
        state: Some(DeliveryState::Cancelled),
        ..Default::default()
    };
    assert_eq!(both.walk_deliveries("wh_a", &cancelled, 3).await.len(), 8);

    // Recover: the same counts, dry run and real, and the same rows afterwards.
    for since in [0, BASE + 6_000, BASE + 60_000] {
        assert_eq!(
            both.redb.count_recoverable("wh_a", since).unwrap(),
            both.pg.count_recoverable("wh_a", since).await.unwrap(),
            "count_recoverable since {since}"
        );
    }
    assert_eq!(both.pg.count_recoverable("wh_a", 0).await.unwrap(), 8);
    let scope = RecoverScope {
        since: BASE + 4_000,
        now: BASE + 500_000,
    };
    let r = both.redb.recover("wh_a".into(), scope).await.unwrap();
    let p = both.pg.recover("wh_a".into(), scope).await.unwrap();
    assert_eq!((r, p), (8, 8));
    both.assert_due_reads_match().await;
    both.walk_deliveries("wh_a", &DeliveryFilter::default(), 4)
        .await;
    // Event 4's delivery had attempts: it comes back failed; the others pending;
    // all due now with the schedule restarted.
    let (d4, _) = both.pg.get_delivery(&id4).await.unwrap().unwrap();
    assert_eq!(d4.state, DeliveryState::Failed);
    assert_eq!((d4.schedule_step, d4.next_attempt_at), (0, Some(scope.now)));
    let (d5, _) = both
        .pg
        .get_delivery(&Both::delivery_id(5, 0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d5.state, DeliveryState::Pending);
    // Only the failed one (it is still retrying) counts as recoverable again.
    assert_eq!(
        both.redb.count_recoverable("wh_a", 0).unwrap(),
        both.pg.count_recoverable("wh_a", 0).await.unwrap()
    );
    assert_eq!(both.pg.count_recoverable("wh_a", 0).await.unwrap(), 1);
}

#[tokio::test]
async fn recover_clears_the_lease_so_an_attempt_in_flight_records_nothing() {
    let both = Both::fixture().await;
    // One of wh_b's deliveries failed once and another node holds its lease (its
    // next attempt is in flight).
    let db = pg_cluster::sql(&both.url).await;
    let leased_id = Both::delivery_id(3, 1);
    db.execute(
        "UPDATE deliveries SET state = 2, attempts = 1, \
         lease_id = '6f1c1a57-0000-4000-8000-000000000001', lease_until = $2 \
         WHERE id = $1",
        &[&leased_id, &(BASE + 60_000)],
    )
    .await
    .unwrap();
    assert_eq!(both.pg.count_recoverable("wh_b", 0).await.unwrap(), 1);
    let scope = RecoverScope {
        since: 0,
        now: BASE + 900_000,
    };
    assert_eq!(both.pg.recover("wh_b".into(), scope).await.unwrap(), 1);
    let lease: Option<String> = db
        .query_one(
            "SELECT lease_id::text FROM deliveries WHERE id = $1",
            &[&leased_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(lease, None, "recover cleared the lease");
    let (d, _) = both.pg.get_delivery(&leased_id).await.unwrap().unwrap();
    assert_eq!(d.state, DeliveryState::Failed);
    assert_eq!((d.schedule_step, d.next_attempt_at), (0, Some(scope.now)));
}

#[tokio::test]
async fn a_test_send_is_stored_with_its_event_delivery_and_attempt_in_one_go() {
    let both = Both::fixture().await;
    let at = BASE + 50_000;
    let event = Event {
        id: id("evt", at, 77),
        tenant: "acme".into(),
        event_type: "webhook.test".into(),
        payload: "{\"test\":true}".into(),
        channels: vec![],
        idempotency_key: None,
        created_at: at,
    };
    let delivery = Delivery {
        id: id("dlv", at, 77),
        tenant: "acme".into(),
        event_id: event.id.clone(),
        webhook_id: "wh_b".into(),
        event_type: "webhook.test".into(),
        state: DeliveryState::Succeeded,
        attempts: 1,
        schedule_step: 0,
        next_attempt_at: None,
        last_status: Some(204),
        last_error: None,
        created_at: at,
        updated_at: at + 3,
    };
    let attempt = Attempt {
        delivery_id: delivery.id.clone(),
        number: 1,
        at: at + 3,
        trigger: Trigger::Test,
        status: Some(204),
        error: None,
        latency_ms: 3,
        response_body: String::new(),
    };
    both.redb
        .record_test(event.clone(), delivery.clone(), attempt.clone())
        .await
        .unwrap();
    both.pg
        .record_test(event.clone(), delivery.clone(), attempt.clone())
        .await
        .unwrap();
    let got = both.pg.get_delivery(&delivery.id).await.unwrap();
    assert_eq!(got, Some((delivery.clone(), vec![attempt.clone()])));
    assert_eq!(got, both.redb.get_delivery(&delivery.id).unwrap());
    both.walk_deliveries("wh_b", &DeliveryFilter::default(), 5)
        .await;
    both.walk_events(None, None, 4).await;
    both.assert_due_reads_match().await;
    // Writing the same test again fails as a whole: nothing half-written.
    let mut event2 = event.clone();
    event2.id = id("evt", at, 78);
    let mut delivery2 = delivery.clone();
    delivery2.event_id = event2.id.clone();
    let again = both
        .pg
        .record_test(event2.clone(), delivery2, attempt)
        .await;
    assert!(again.is_err(), "a taken delivery id is refused");
    assert!(both.pg.get_event(&event2.id).await.unwrap().is_none());
}
