//! `store::offline::compact` (`hookbox store compact`) on a real data file: a file
//! that grew and then had most of its data purged shrinks, and the compacted file
//! opens with everything that was kept intact. A file in use is refused untouched.

use hookbox::model::{Event, EventType, Tenant, new_id, now_ms};
use hookbox::secrets::Cipher;
use hookbox::store::offline::{self, OfflineError};
use hookbox::store::{IngestItem, Store};

const KEY: [u8; 32] = [3; 32];

fn tenant(id: &str) -> Tenant {
    Tenant {
        id: id.into(),
        name: id.into(),
        created_at: 1,
    }
}

/// `n` events of `tenant` with a payload of about `bytes` bytes, no deliveries.
fn events(tenant: &str, n: usize, bytes: usize) -> Vec<IngestItem> {
    let payload = format!(r#"{{"pad":"{}"}}"#, "x".repeat(bytes));
    (0..n)
        .map(|_| IngestItem {
            event: Event {
                id: new_id("evt"),
                tenant: tenant.into(),
                event_type: "t".into(),
                payload: payload.clone(),
                channels: vec![],
                idempotency_key: None,
                created_at: now_ms(),
            },
            deliveries: vec![],
            body_hash: [0; 32],
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_grew_then_was_purged_shrinks_and_keeps_what_was_left() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(hookbox::app::DATA_FILE);
    let store = Store::open(&path, Cipher::new(&KEY), 1 << 20).expect("open");
    let catalogue = vec![EventType {
        tenant: "keep".into(),
        name: "t".into(),
        description: None,
        schema: None,
        created_at: 1,
    }];
    store
        .create_tenant(tenant("keep"), catalogue.clone())
        .await
        .expect("tenant");
    store
        .create_tenant(tenant("big"), vec![])
        .await
        .expect("tenant");
    let kept = events("keep", 20, 200);
    let kept_ids: Vec<String> = kept.iter().map(|i| i.event.id.clone()).collect();
    store.ingest(kept).await.expect("ingest");
    // About 12 MB of events, then the tenant and all of it goes.
    for _ in 0..30 {
        store
            .ingest(events("big", 100, 4_000))
            .await
            .expect("ingest");
    }
    store
        .delete_tenant("big".into(), now_ms())
        .await
        .expect("delete");
    store.purge_tenant("big".into()).await.expect("purge");
    assert!(store.tenants_being_purged().expect("purges").is_empty());

    // Compaction needs the file to itself.
    assert!(matches!(
        offline::compact(&path),
        Err(OfflineError::InUse(_))
    ));
    store.close();
    drop(store);

    let done = offline::compact(&path).expect("compact");
    assert_eq!(done.after, std::fs::metadata(&path).expect("file").len());
    assert!(
        done.after * 2 < done.before,
        "the purged file must shrink to under half: {done:?}"
    );

    let store = Store::open(&path, Cipher::new(&KEY), 1 << 20).expect("reopen");
    assert_eq!(store.list_tenants().expect("tenants"), vec![tenant("keep")]);
    assert_eq!(store.list_event_types().expect("types"), catalogue);
    for id in &kept_ids {
        let (e, _) = store.get_event(id).expect("read").expect("kept event");
        assert_eq!(e.tenant, "keep");
    }
    let (listed, _) = store
        .list_events("keep", None, None, None, 100)
        .expect("list");
    assert_eq!(listed.len(), kept_ids.len());
    // And it still takes writes.
    store
        .ingest(events("keep", 1, 10))
        .await
        .expect("ingest after compaction");
    store.close();
}

#[tokio::test]
async fn compact_refuses_a_missing_file_without_creating_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(hookbox::app::DATA_FILE);
    assert!(matches!(
        offline::compact(&path),
        Err(OfflineError::Missing(_))
    ));
    assert!(!path.exists());
}
