//! Format 3's records beside the records an older hookbox wrote, in one file: an
//! event stored by 0.1.0 finds its deliveries in the `event_deliveries` index, a
//! new one in its own record, and reading, listing, retention and a deleted
//! tenant's purge treat both alike.

use redb::{ReadableTableMetadata, TableHandle};

use super::codec;
use super::records::{AttemptV1, DeliveryStateV1, DeliveryV1, EventV1, TriggerV1};
use super::tables::*;
use super::{IngestItem, Store};
use crate::model::{Attempt, Delivery, DeliveryState, Event, Tenant, Trigger, new_id};
use crate::secrets::Cipher;

/// Writes an event and its finished deliveries, each with one attempt, exactly as
/// 0.1.0 did: version-1 records and one `event_deliveries` row per delivery.
async fn write_as_0_1_0(store: &Store, event: &str, deliveries: &[&str], webhook: &str) {
    let (event, deliveries, webhook) = (
        event.to_owned(),
        deliveries.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        webhook.to_owned(),
    );
    store
        .write(true, move |txn| {
            let record = EventV1 {
                id: event.clone(),
                tenant: "acme".into(),
                event_type: "invoice.paid".into(),
                payload: "{}".into(),
                channels: Vec::new(),
                idempotency_key: None,
                created_at: 1,
            };
            txn.open_table(EVENTS)?
                .insert(event.as_str(), codec::encode(&record).unwrap().as_slice())?;
            txn.open_table(TENANT_EVENTS)?
                .insert(("acme", event.as_str()), ())?;
            for dlv in &deliveries {
                let record = DeliveryV1 {
                    id: dlv.clone(),
                    tenant: "acme".into(),
                    event_id: event.clone(),
                    webhook_id: webhook.clone(),
                    event_type: "invoice.paid".into(),
                    state: DeliveryStateV1::Succeeded,
                    attempts: 1,
                    schedule_step: 1,
                    next_attempt_at: None,
                    last_status: Some(200),
                    last_error: None,
                    created_at: 1,
                    updated_at: 2,
                };
                txn.open_table(DELIVERIES)?
                    .insert(dlv.as_str(), codec::encode(&record).unwrap().as_slice())?;
                txn.open_table(EVENT_DELIVERIES)?
                    .insert((event.as_str(), dlv.as_str()), ())?;
                txn.open_table(WEBHOOK_DELIVERIES)?
                    .insert((webhook.as_str(), dlv.as_str()), ())?;
                let attempt = AttemptV1 {
                    delivery_id: dlv.clone(),
                    number: 1,
                    at: 2,
                    trigger: TriggerV1::Scheduled,
                    status: Some(200),
                    error: None,
                    latency_ms: 3,
                    response_body: "ok".into(),
                };
                txn.open_table(ATTEMPTS)?.insert(
                    (dlv.as_str(), 1),
                    codec::encode(&attempt).unwrap().as_slice(),
                )?;
            }
            Ok(())
        })
        .await
        .expect("write the 0.1.0 records");
}

/// A store holding one event written as 0.1.0 wrote it (two finished deliveries)
/// and one stored by this build (two deliveries still pending), same webhook.
struct Mixed {
    _dir: tempfile::TempDir,
    store: Store,
    webhook: String,
    old: String,
    old_dlv: Vec<String>,
    new: String,
    new_dlv: Vec<String>,
}

async fn mixed() -> Mixed {
    let dir = tempfile::tempdir().expect("temp dir");
    let store =
        Store::open(&dir.path().join("t.redb"), Cipher::new(&[5; 32]), 1 << 20).expect("open");
    let tenant = Tenant {
        id: "acme".into(),
        name: "Acme".into(),
        created_at: 1,
    };
    store
        .create_tenant(tenant, Vec::new())
        .await
        .expect("tenant");
    let webhook = new_id("wh");
    let old = new_id("evt");
    let old_dlv = vec![new_id("dlv"), new_id("dlv")];
    write_as_0_1_0(&store, &old, &[&old_dlv[0], &old_dlv[1]], &webhook).await;

    // A new event with two deliveries, through the ingest commit.
    let event = Event {
        id: new_id("evt"),
        tenant: "acme".into(),
        event_type: "invoice.paid".into(),
        payload: r#"{"n":1}"#.into(),
        channels: Vec::new(),
        idempotency_key: Some("k-1".into()),
        created_at: 3,
    };
    let new = event.id.clone();
    let deliveries: Vec<Delivery> = (0..2)
        .map(|_| Delivery {
            id: new_id("dlv"),
            tenant: "acme".into(),
            event_id: new.clone(),
            webhook_id: webhook.clone(),
            event_type: "invoice.paid".into(),
            state: DeliveryState::Pending,
            attempts: 0,
            schedule_step: 0,
            next_attempt_at: Some(3),
            last_status: None,
            last_error: None,
            created_at: 3,
            updated_at: 3,
        })
        .collect();
    let new_dlv: Vec<String> = deliveries.iter().map(|d| d.id.clone()).collect();
    store
        .ingest(vec![IngestItem {
            event,
            deliveries,
            body_hash: [1; 32],
        }])
        .await
        .expect("ingest");
    Mixed {
        _dir: dir,
        store,
        webhook,
        old,
        old_dlv,
        new,
        new_dlv,
    }
}

/// The rows of every table an event's rows live in, by table.
fn rows(store: &Store) -> Vec<(String, u64)> {
    fn len<K: redb::Key + 'static, V: redb::Value + 'static>(
        txn: &redb::ReadTransaction,
        table: redb::TableDefinition<K, V>,
    ) -> (String, u64) {
        let name = table.name().to_owned();
        (
            name,
            txn.open_table(table).expect("table").len().expect("len"),
        )
    }
    let txn = store.read().expect("read");
    vec![
        len(&txn, EVENTS),
        len(&txn, TENANT_EVENTS),
        len(&txn, IDEMPOTENCY),
        len(&txn, DELIVERIES),
        len(&txn, EVENT_DELIVERIES),
        len(&txn, WEBHOOK_DELIVERIES),
        len(&txn, ATTEMPTS),
        len(&txn, DUE),
        len(&txn, PENDING),
    ]
}

/// The tables of [`rows`] that still hold rows.
fn left(store: &Store) -> Vec<(String, u64)> {
    rows(store).into_iter().filter(|(_, n)| *n > 0).collect()
}

#[tokio::test]
async fn events_of_both_layouts_read_list_and_purge_alike() {
    let m = mixed().await;
    let (store, webhook, old, new) = (&m.store, &m.webhook, &m.old, &m.new);
    // Both new deliveries finish through the attempt commit.
    let due = store.due_entries(i64::MAX / 2, None, 10).expect("due");
    assert_eq!(due.len(), 2);
    let writes = due
        .into_iter()
        .map(|entry| super::AttemptWrite {
            attempt: Attempt {
                delivery_id: entry.delivery_id.clone(),
                number: 0,
                at: 4,
                trigger: Trigger::Scheduled,
                status: Some(200),
                error: None,
                latency_ms: 5,
                response_body: "fine".into(),
            },
            entry,
            next: super::Next::Succeeded,
        })
        .collect();
    store.record_attempts(writes).await.expect("attempts");

    // Nothing new went to the old index, and the new records are version 2.
    {
        let txn = store.read().expect("read");
        let index = txn.open_table(EVENT_DELIVERIES).expect("index");
        assert_eq!(index.len().expect("len"), 2, "only the 0.1.0 rows");
        let events = txn.open_table(EVENTS).expect("events");
        assert_eq!(events.get(new.as_str()).unwrap().unwrap().value()[0], 2);
        assert_eq!(events.get(old.as_str()).unwrap().unwrap().value()[0], 1);
    }

    // Both events list their deliveries, and each delivery its attempt.
    for (evt, ids) in [(old, m.old_dlv.clone()), (new, m.new_dlv.clone())] {
        let (e, ds) = store.get_event(evt).expect("read").expect("found");
        assert_eq!(&e.id, evt);
        let mut got: Vec<String> = ds.iter().map(|d| d.id.clone()).collect();
        got.sort();
        assert_eq!(got, ids);
        for d in &ds {
            assert_eq!(d.event_id, *evt);
            assert_eq!(&d.webhook_id, webhook);
            assert_eq!(d.state, DeliveryState::Succeeded);
            let (_, attempts) = store.get_delivery(&d.id).expect("read").expect("found");
            assert_eq!(attempts.len(), 1);
            assert_eq!(attempts[0].delivery_id, d.id);
            assert_eq!(attempts[0].number, 1);
        }
    }
    let (log, _) = store
        .list_webhook_deliveries(webhook, &Default::default(), None, 10)
        .expect("log");
    assert_eq!(log.len(), 4);
    let (events, _) = store
        .list_events("acme", None, None, None, 10)
        .expect("events");
    assert_eq!(events.iter().map(|e| &e.id).collect::<Vec<_>>(), [new, old]);

    // Retention removes both events and everything hanging off them.
    assert_eq!(
        store.purge_before(i64::MAX / 2, 10).await.expect("purge"),
        2
    );
    assert!(store.get_event(old).expect("read").is_none());
    assert!(store.get_event(new).expect("read").is_none());
    assert_eq!(left(store), [], "tables still holding rows");
    store.close();
}

/// A deleted tenant's purge, in chunks of a few rows, removes the rows of both
/// layouts, the new event's pending deliveries with their due entries included.
#[tokio::test]
async fn a_deleted_tenants_events_of_both_layouts_are_purged() {
    let mixed = mixed().await;
    let store = &mixed.store;
    assert_eq!(
        store
            .due_entries(i64::MAX / 2, None, 10)
            .expect("due")
            .len(),
        2
    );
    assert_eq!(
        left(store),
        rows(store),
        "every table holds rows before the purge"
    );
    store.delete_tenant("acme".into(), 5).await.expect("delete");
    let mut chunks = 0;
    while !store
        .purge_tenant_chunk("acme".into(), 3)
        .await
        .expect("purge chunk")
    {
        chunks += 1;
        assert!(chunks < 20, "the purge makes progress");
    }
    assert!(
        chunks >= 2,
        "{chunks} chunks: the purge was cut into pieces"
    );
    assert_eq!(left(store), [], "tables still holding rows");
    for id in mixed.old_dlv.iter().chain(&mixed.new_dlv) {
        assert!(store.get_delivery(id).expect("read").is_none());
    }
    assert!(store.get_event(&mixed.old).expect("read").is_none());
    assert!(store.get_event(&mixed.new).expect("read").is_none());
    assert!(store.tenants_being_purged().expect("read").is_empty());
    mixed.store.close();
}

/// A file of this format with every table opens with a read alone; one missing a
/// table or stamped with an older format is brought up to date by the next open,
/// and one stamped with a newer format is refused by the read.
#[test]
fn only_a_file_that_is_not_current_is_written_at_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("t.redb");
    let open = || Store::open(&path, Cipher::new(&[5; 32]), 1 << 20).expect("open");
    let raw = || redb::Database::open(&path).expect("raw open");
    let store = open();
    store.close();
    drop(store);
    assert!(super::layout_current(&raw()).expect("read"));

    let stamp = |format: u32| {
        let db = raw();
        let txn = db.begin_write().expect("write");
        txn.open_table(META)
            .expect("meta")
            .insert(super::FORMAT_KEY, format.to_le_bytes().as_slice())
            .expect("stamp");
        txn.commit().expect("commit");
    };
    for change in ["a table gone", "an older format"] {
        if change == "a table gone" {
            let db = raw();
            let txn = db.begin_write().expect("write");
            assert!(txn.delete_table(PORTAL_SESSIONS).expect("delete"));
            txn.commit().expect("commit");
        } else {
            stamp(super::FORMAT - 1);
        }
        assert!(!super::layout_current(&raw()).expect("read"), "{change}");
        let store = open();
        store.close();
        drop(store);
        assert!(super::layout_current(&raw()).expect("read"), "{change}");
    }

    stamp(super::FORMAT + 1);
    assert!(matches!(
        super::layout_current(&raw()),
        Err(super::StoreError::NewerFormat { .. })
    ));
}

/// A tenant whose events outlived its record (a 0.1.0 file whose tenant was
/// deleted) is marked for purging once; a start that finds none writes nothing.
#[tokio::test]
async fn orphaned_tenants_are_marked_once_and_a_clean_file_gets_no_write() {
    use std::sync::atomic::Ordering::Relaxed;
    let dir = tempfile::tempdir().expect("temp dir");
    let store =
        Store::open(&dir.path().join("t.redb"), Cipher::new(&[5; 32]), 1 << 20).expect("open");
    let commits = || store.writer_stats().commits.load(Relaxed);

    let before = commits();
    assert!(
        store
            .mark_orphaned_tenants(5)
            .await
            .expect("look")
            .is_empty()
    );
    assert_eq!(commits(), before, "nothing to mark, nothing written");

    write_as_0_1_0(&store, &new_id("evt"), &[&new_id("dlv")], &new_id("wh")).await;
    let before = commits();
    assert_eq!(
        store.mark_orphaned_tenants(6).await.expect("mark"),
        ["acme"]
    );
    assert_eq!(commits(), before + 1);
    assert_eq!(store.tenants_being_purged().expect("read"), ["acme"]);
    assert!(
        store
            .mark_orphaned_tenants(7)
            .await
            .expect("look")
            .is_empty()
    );
    assert_eq!(commits(), before + 1, "marked once");
    store.close();
}
