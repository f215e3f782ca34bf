//! `hookbox store copy` against a real cluster (`pg_cluster`): a redb store filled
//! through its own API is copied into an empty database, and a `PgStore` on the
//! target serves the same reads (webhooks with their secrets and versions, events,
//! deliveries with their states and schedule, attempts, idempotency replays). A
//! non-empty target and a data dir in use are refused, and nothing is written.

use std::path::{Path, PathBuf};

use hookbox::model::{
    ApiKey, Attempt, Delivery, DeliveryState, Event, Ordering, PortalSession, Scope, Secret,
    SigningSecret, Trigger, Webhook, new_id, now_ms,
};
use hookbox::notify::email::ThrottleState;
use hookbox::secrets::Cipher;
use hookbox::store::copy::{Copied, CopyError, CopyOptions, copy_to_postgres};
use hookbox::store::offline::OfflineError;
use hookbox::store::pg::ClaimLimits;
use hookbox::store::{AttemptWrite, DueEntry, IngestItem, IngestOutcome, Next, Store};

use crate::pg_cluster::{self, cipher, event_type, open, rich_webhook, sql, tenant};

/// Webhook `id` with every option (`rich`) or with the options that need no
/// secret only.
fn webhook(id: &str, tenant: &str, rich: bool) -> Webhook {
    let full = rich_webhook(id, tenant);
    if rich {
        return full;
    }
    Webhook {
        channels: vec![],
        headers: Default::default(),
        oauth: None,
        rate_limit_per_second: None,
        ordering: Ordering::None,
        filter: None,
        ..full
    }
}

/// An event of `tenant` with one pending delivery per webhook, due at `due`.
fn item(tenant: &str, key: Option<&str>, hash: u8, webhooks: &[&str], due: i64) -> IngestItem {
    let id = new_id("evt");
    let deliveries = webhooks
        .iter()
        .map(|wh| Delivery {
            id: new_id("dlv"),
            tenant: tenant.into(),
            event_id: id.clone(),
            webhook_id: (*wh).into(),
            event_type: "invoice.paid".into(),
            state: DeliveryState::Pending,
            attempts: 0,
            schedule_step: 0,
            next_attempt_at: Some(due),
            last_status: None,
            last_error: None,
            created_at: due,
            updated_at: due,
        })
        .collect();
    IngestItem {
        event: Event {
            id,
            tenant: tenant.into(),
            event_type: "invoice.paid".into(),
            payload: r#"{"amount": 150.50}"#.into(),
            channels: vec!["P-1".into()],
            idempotency_key: key.map(Into::into),
            created_at: due,
        },
        deliveries,
        body_hash: [hash; 32],
    }
}

fn attempt(d: &Delivery, status: Option<u16>, at: i64) -> Attempt {
    Attempt {
        delivery_id: d.id.clone(),
        number: 0,
        at,
        trigger: Trigger::Scheduled,
        status,
        error: status.is_none().then(|| "connection refused".to_owned()),
        latency_ms: 12,
        response_body: "ok".into(),
    }
}

fn write(d: &Delivery, status: Option<u16>, at: i64, next: Next) -> AttemptWrite {
    AttemptWrite {
        entry: DueEntry {
            due: d.next_attempt_at.unwrap_or(d.created_at) as u64,
            delivery_id: d.id.clone(),
            webhook_id: d.webhook_id.clone(),
        },
        attempt: attempt(d, status, at),
        next,
    }
}

/// What the tests know of the filled store.
struct Filled {
    events: Vec<String>,
    /// `[succeeded, retrying, exhausted, untouched]` deliveries.
    deliveries: [String; 4],
    retry_at: i64,
}

/// Fills a redb store through its API: two tenants (one then deleted), a key, a
/// catalogue, a webhook with custom headers, OAuth, FIFO, a filter and a rotated
/// secret, a plain one, events with an idempotency key, deliveries that succeeded,
/// wait for a retry, are exhausted or were never tried (with scheduled and manual
/// attempts), a notification throttle, applied seeds and a portal session.
async fn fill(store: &Store) -> Filled {
    let now = now_ms();
    store
        .create_tenant(tenant("acme"), vec![event_type("acme", "invoice.paid")])
        .await
        .expect("tenant");
    store
        .create_tenant(tenant("gone"), vec![])
        .await
        .expect("tenant");
    store
        .create_event_type(event_type("acme", "invoice.voided"))
        .await
        .expect("event type");
    store
        .create_api_key(ApiKey {
            id: "key_1".into(),
            tenant: "acme".into(),
            name: "backend".into(),
            scopes: vec![Scope::EventsWrite, Scope::WebhooksRead],
            hash: [9; 32],
            prefix: "hbk_ab12".into(),
            created_at: 7,
        })
        .await
        .expect("key");
    store
        .create_webhook(webhook("wh_rich", "acme", true))
        .await
        .expect("webhook");
    store
        .create_webhook(webhook("wh_plain", "acme", false))
        .await
        .expect("webhook");
    // Rotate: a new current secret, the old one kept until it expires (version 2).
    store
        .update_webhook("wh_rich".into(), move |w| {
            w.secrets[0].expires_at = Some(now + 86_400_000);
            w.secrets.insert(
                0,
                SigningSecret {
                    secret: Secret::new("whsec_cm90YXRlZC1zZWNyZXQtdmFsdWUtMDEyMzQ1"),
                    expires_at: None,
                },
            );
            Ok::<_, ()>(())
        })
        .await
        .expect("rotate")
        .expect("rotated");

    let first = item(
        "acme",
        Some("order-1"),
        1,
        &["wh_rich", "wh_plain"],
        now - 1_000,
    );
    let second = item("acme", None, 2, &["wh_rich", "wh_plain"], now - 500);
    let events = vec![first.event.id.clone(), second.event.id.clone()];
    let ds: Vec<Delivery> = first
        .deliveries
        .iter()
        .chain(&second.deliveries)
        .cloned()
        .collect();
    let out = store.ingest(vec![first, second]).await.expect("ingest");
    assert!(
        out.iter()
            .all(|(o, _)| matches!(o, IngestOutcome::Created { .. }))
    );

    let retry_at = now + 3_600_000;
    store
        .record_attempts(vec![
            write(&ds[0], Some(200), now, Next::Succeeded),
            write(&ds[1], Some(503), now, Next::RetryAt(retry_at)),
            write(&ds[2], None, now, Next::Exhausted),
        ])
        .await
        .expect("attempts");
    // A manual retry of the exhausted one that failed too: a second attempt.
    store
        .record_manual(
            Attempt {
                trigger: Trigger::Manual,
                ..attempt(&ds[2], Some(500), now + 1)
            },
            false,
        )
        .await
        .expect("manual attempt");
    store
        .update_notify_state("wh_rich".into(), move |_| {
            (
                ThrottleState {
                    last_sent: Some(now),
                    suppressed: 3,
                },
                (),
            )
        })
        .await
        .expect("throttle");
    store
        .seed_event_types(vec![], vec!["PATIENT_CREATED".into()])
        .await
        .expect("seeds");
    store
        .create_portal_session(PortalSession {
            hash: [5; 32],
            tenant: "acme".into(),
            read_only: true,
            created_at: now,
            expires_at: now + 3_600_000,
        })
        .await
        .expect("portal session");
    store
        .delete_tenant("gone".into(), now)
        .await
        .expect("delete");
    Filled {
        events,
        deliveries: [0, 1, 2, 3].map(|i| ds[i].id.clone()),
        retry_at,
    }
}

fn open_redb(dir: &Path) -> Store {
    Store::open(&data_file(dir), cipher(), 1 << 20).expect("open the redb store")
}

fn data_file(dir: &Path) -> PathBuf {
    dir.join(hookbox::app::DATA_FILE)
}

/// Copies the stopped store in `dir` into the database at `url`, `rows` rows per
/// batch.
async fn copy_in_batches(dir: &Path, url: &str, rows: usize) -> Copied {
    copy_to_postgres(
        &data_file(dir),
        cipher(),
        url,
        CopyOptions {
            batch_rows: rows,
            ..CopyOptions::default()
        },
    )
    .await
    .expect("copy")
}

/// Whether this build's schema has the `portal_sessions` table.
fn has_portal_table() -> bool {
    hookbox::store::pg::MIGRATIONS
        .iter()
        .any(|(_, _, sql)| sql.contains("CREATE TABLE portal_sessions"))
}

/// Row counts of every table a copy fills.
async fn counts(url: &str) -> Vec<(String, i64)> {
    let c = sql(url).await;
    let mut out = Vec::new();
    for t in [
        "tenants",
        "tenant_purges",
        "api_keys",
        "event_types",
        "webhooks",
        "events",
        "deliveries",
        "attempts",
        "idempotency",
        "notify",
        "meta",
    ] {
        let n: i64 = c
            .query_one(&format!("SELECT count(*) FROM {t}"), &[])
            .await
            .expect("count")
            .get(0);
        out.push((t.to_owned(), n));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_store_serves_the_same_reads_on_postgres() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_redb(dir.path());
    let filled = fill(&store).await;
    let tenants = store.list_tenants().expect("tenants");
    let keys = store.list_api_keys().expect("keys");
    let types = store.list_event_types().expect("types");
    let webhooks = store.load_webhooks().expect("webhooks");
    let mut events = Vec::new();
    for id in &filled.events {
        events.push(store.get_event(id).expect("read").expect("event"));
    }
    let mut attempts = Vec::new();
    for id in &filled.deliveries {
        attempts.push(store.get_delivery(id).expect("read").expect("delivery").1);
    }
    store.close();
    drop(store);

    let url = pg_cluster::shared().database().await;
    // Two rows per batch, so every table of more than two rows takes several.
    let copied = copy_in_batches(dir.path(), &url, 2).await;
    for (table, n) in [
        ("tenants", 1),
        ("tenant_purges", 1),
        ("api_keys", 1),
        ("event_types", 2),
        ("webhooks", 2),
        ("events", 2),
        ("deliveries", 4),
        ("attempts", 4),
        ("idempotency", 1),
        ("notify", 1),
        ("meta", 1),
    ] {
        assert_eq!(copied.rows.get(table), n, "{table}: {copied:?}");
    }
    // Portal sessions go where the schema has their table (migration 0002 on);
    // otherwise the copy says it left them out.
    if has_portal_table() {
        assert_eq!(copied.rows.get("portal_sessions"), 1, "{copied:?}");
        assert!(copied.skipped.is_empty(), "{copied:?}");
    } else {
        assert_eq!(copied.skipped.len(), 1, "{copied:?}");
        assert_eq!(copied.skipped[0].0, "portal_sessions");
    }

    let pg = open(&url).await;
    assert_eq!(pg.list_tenants().await.expect("tenants"), tenants);
    assert_eq!(pg.list_api_keys().await.expect("keys"), keys);
    assert_eq!(pg.list_event_types().await.expect("types"), types);
    let copied_webhooks = pg.load_webhooks().await.expect("webhooks");
    assert_eq!(copied_webhooks, webhooks);
    let rich = copied_webhooks
        .iter()
        .find(|w| w.id == "wh_rich")
        .expect("rich webhook");
    assert_eq!(rich.version, 2, "the rotation's version survives");
    assert_eq!(rich.secrets.len(), 2);
    assert_eq!(
        rich.headers["X-Api-Key"].expose(),
        "header-secret-value",
        "header values unseal with the same master key"
    );
    let oauth = rich.oauth.as_ref().expect("oauth");
    assert_eq!(oauth.client_secret.expose(), "oauth-secret-value");
    assert_eq!(oauth.headers["X-Tok"].expose(), "oauth-header-value");
    for (id, expected) in filled.events.iter().zip(&events) {
        assert_eq!(
            &pg.get_event(id).await.expect("read").expect("event"),
            expected
        );
    }
    for (id, expected) in filled.deliveries.iter().zip(&attempts) {
        assert_eq!(&pg.attempts(id).await.expect("attempts"), expected);
    }
    let (_, ds) = &events[0];
    let state = |id: &str| ds.iter().chain(&events[1].1).find(|d| d.id == id).cloned();
    let [ok, retrying, exhausted, fresh] = &filled.deliveries;
    assert_eq!(state(ok).expect("d").state, DeliveryState::Succeeded);
    let r = state(retrying).expect("d");
    assert_eq!(
        (r.state, r.next_attempt_at),
        (DeliveryState::Failed, Some(filled.retry_at))
    );
    assert_eq!(state(exhausted).expect("d").state, DeliveryState::Exhausted);
    assert_eq!(state(fresh).expect("d").state, DeliveryState::Pending);

    // The waiting deliveries (the retry and the untried one) are claimable work on
    // PostgreSQL, due when they were due on redb; finished ones are not.
    let limits = ClaimLimits {
        slots: 100,
        per_webhook: 100,
        tenant_share: 100,
        tenant_room: Vec::new(),
        lease_ms: 60_000,
    };
    let mut claimed: Vec<String> = pg
        .claim_batch(filled.retry_at, &limits)
        .await
        .expect("claim")
        .claimed
        .into_iter()
        .map(|c| c.delivery.id)
        .collect();
    claimed.sort();
    let mut waiting = vec![retrying.clone(), fresh.clone()];
    waiting.sort();
    assert_eq!(claimed, waiting);

    // The idempotency record answers a repeat with the stored event, on any node.
    let repeat = item("acme", Some("order-1"), 1, &["wh_rich"], now_ms());
    let out = pg.ingest_as(vec![repeat], None).await.expect("ingest");
    assert_eq!(
        out[0].0,
        IngestOutcome::Replay {
            event_id: filled.events[0].clone(),
            deliveries: 2
        }
    );
    let changed = item("acme", Some("order-1"), 9, &["wh_rich"], now_ms());
    let out = pg.ingest_as(vec![changed], None).await.expect("ingest");
    assert!(
        matches!(&out[0].0, IngestOutcome::Conflict { event_id } if *event_id == filled.events[0])
    );

    // The rest, straight from the tables.
    let c = sql(&url).await;
    let purge = c
        .query_one("SELECT id FROM tenant_purges", &[])
        .await
        .expect("purge row");
    assert_eq!(purge.get::<_, String>(0), "gone");
    let notify = c
        .query_one("SELECT webhook_id, suppressed FROM notify", &[])
        .await
        .expect("notify row");
    assert_eq!(notify.get::<_, String>(0), "wh_rich");
    assert_eq!(notify.get::<_, i32>(1), 3);
    let meta = c
        .query_one("SELECT name FROM meta", &[])
        .await
        .expect("meta row");
    assert_eq!(meta.get::<_, String>(0), "applied_seed_event_types");
    if has_portal_table() {
        let s = c
            .query_one("SELECT tenant, read_only FROM portal_sessions", &[])
            .await
            .expect("portal session row");
        assert_eq!(s.get::<_, String>(0), "acme");
        assert!(s.get::<_, bool>(1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copy_takes_one_statement_per_batch_not_one_per_row() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_redb(dir.path());
    store
        .create_tenant(tenant("acme"), vec![])
        .await
        .expect("tenant");
    store
        .create_webhook(webhook("wh_plain", "acme", false))
        .await
        .expect("webhook");
    for _ in 0..5 {
        let items = (0..1_000)
            .map(|_| item("acme", None, 1, &["wh_plain"], now_ms()))
            .collect();
        store.ingest(items).await.expect("ingest");
    }
    store.close();
    drop(store);
    let url = pg_cluster::shared().database().await;
    let copied = copy_in_batches(dir.path(), &url, 2_000).await;
    assert_eq!(copied.rows.get("events"), 5_000);
    assert_eq!(copied.rows.get("deliveries"), 5_000);
    // tenants 1 + webhooks 1 + events 3 + deliveries 3 (+ meta 1 if any).
    assert!(copied.statements <= 9, "{copied:?}");
    let pending: i64 = sql(&url)
        .await
        .query_one(
            "SELECT count(*) FROM deliveries WHERE state = 0 AND next_attempt_at IS NOT NULL",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(
        pending, 5_000,
        "every waiting delivery is scheduled on PostgreSQL"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_copy_into_a_database_with_data_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_redb(dir.path());
    fill(&store).await;
    store.close();
    drop(store);
    let url = pg_cluster::shared().database().await;
    let file = data_file(dir.path());
    copy_to_postgres(&file, cipher(), &url, CopyOptions::default())
        .await
        .expect("first copy");
    let before = counts(&url).await;
    let again = copy_to_postgres(&file, cipher(), &url, CopyOptions::default()).await;
    match again {
        Err(CopyError::NotEmpty(tables)) => {
            assert!(
                tables.contains(&"tenants") && tables.contains(&"events"),
                "{tables:?}"
            );
        }
        other => panic!("a second copy must be refused, got {other:?}"),
    }
    assert_eq!(counts(&url).await, before, "the refused copy wrote nothing");

    // One tenant made by a node is enough to refuse.
    let url = pg_cluster::shared().database().await;
    let pg = open(&url).await;
    pg.create_tenant(tenant("other"), vec![])
        .await
        .expect("tenant");
    let refused = copy_to_postgres(&file, cipher(), &url, CopyOptions::default()).await;
    assert!(
        matches!(&refused, Err(CopyError::NotEmpty(t)) if *t == ["tenants"]),
        "{refused:?}"
    );
    assert_eq!(
        pg.list_tenants().await.expect("tenants"),
        vec![tenant("other")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_in_use_or_a_wrong_master_key_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_redb(dir.path());
    fill(&store).await;
    let url = pg_cluster::shared().database().await;
    let file = data_file(dir.path());
    let busy = copy_to_postgres(&file, cipher(), &url, CopyOptions::default()).await;
    assert!(
        matches!(busy, Err(CopyError::Source(OfflineError::InUse(_)))),
        "{busy:?}"
    );
    store.close();
    drop(store);

    let wrong = copy_to_postgres(&file, Cipher::new(&[1; 32]), &url, CopyOptions::default()).await;
    assert!(matches!(wrong, Err(CopyError::Read(_))), "{wrong:?}");
    assert!(
        counts(&url).await.iter().all(|(_, n)| *n == 0),
        "a failed copy leaves the target empty"
    );
    // And the right key still copies into that same (still empty) target.
    copy_to_postgres(&file, cipher(), &url, CopyOptions::default())
        .await
        .expect("copy with the right key");
}

/// A data dir written by 0.1.0 (`tests/fixtures/v0.1.0`: version-1 records, its
/// events' deliveries listed only in the `event_deliveries` index) copies with every
/// event, delivery and attempt exactly as the redb store reads them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_written_by_0_1_0_copies_every_event_delivery_and_attempt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0.1.0");
    for name in ["hookbox.redb", "master.key"] {
        std::fs::copy(fixture.join(name), dir.path().join(name)).expect("copy the fixture");
    }
    let key = hookbox::secrets::load_master_key(None, dir.path()).expect("master key");
    let store = Store::open(&data_file(dir.path()), key.clone(), 1 << 20).expect("open");
    let mut events = Vec::new();
    for tenant in store.list_tenants().expect("tenants") {
        let (page, _) = store
            .list_events(&tenant.id, None, None, None, 1000)
            .expect("events");
        for e in page {
            let (event, deliveries) = store.get_event(&e.id).expect("read").expect("event");
            let attempts: Vec<Vec<Attempt>> = deliveries
                .iter()
                .map(|d| {
                    store
                        .get_delivery(&d.id)
                        .expect("read")
                        .expect("delivery")
                        .1
                })
                .collect();
            events.push((event, deliveries, attempts));
        }
    }
    let deliveries: usize = events.iter().map(|(_, ds, _)| ds.len()).sum();
    let attempts: usize = events.iter().flat_map(|(_, _, a)| a).map(Vec::len).sum();
    assert!(
        events.len() >= 3 && deliveries >= 3 && attempts >= 2,
        "the fixture's events, deliveries and attempts are read: {} / {deliveries} / {attempts}",
        events.len()
    );
    store.close();
    drop(store);

    let url = pg_cluster::shared().database().await;
    let copied = copy_to_postgres(
        &data_file(dir.path()),
        key.clone(),
        &url,
        CopyOptions::default(),
    )
    .await
    .expect("copy");
    assert_eq!(copied.rows.get("events"), events.len() as u64, "{copied:?}");
    assert_eq!(
        copied.rows.get("deliveries"),
        deliveries as u64,
        "{copied:?}"
    );
    assert_eq!(copied.rows.get("attempts"), attempts as u64, "{copied:?}");
    let pg = hookbox::store::pg::PgStore::open(&url, 4, key)
        .await
        .expect("open the copy");
    for (event, deliveries, attempts) in &events {
        let (e, ds) = pg
            .get_event(&event.id)
            .await
            .expect("read")
            .expect("copied");
        assert_eq!(&e, event);
        assert_eq!(&ds, deliveries, "event {}", event.id);
        for (d, expected) in deliveries.iter().zip(attempts) {
            assert_eq!(&pg.attempts(&d.id).await.expect("attempts"), expected);
        }
    }
}
