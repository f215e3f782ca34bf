//! The PostgreSQL store's tenant, key, catalogue and webhook operations against a
//! real cluster (`pg_cluster`): the same rules as the redb store, secrets sealed at
//! rest, no lost update between two nodes, and changes published in commit order.

use std::sync::{Arc, Mutex};

use hookbox::model::{ApiKey, Scope, Secret, SigningSecret, Webhook};
use hookbox::secrets::Cipher;
use hookbox::store::pg::PgStore;
use hookbox::store::{Change, StoreError, Subscriber};

use crate::pg_cluster::{self, event_type, open, rich_webhook, sql, tenant};

fn key(id: &str, tenant: &str) -> ApiKey {
    ApiKey {
        id: id.into(),
        tenant: tenant.into(),
        name: "ci".into(),
        scopes: vec![Scope::WebhooksRead, Scope::EventsWrite],
        hash: [id.len() as u8; 32],
        prefix: "hbk_ab12".into(),
        created_at: 9,
    }
}

/// A webhook with every option, and an old signing secret besides the current.
fn webhook(id: &str, tenant: &str) -> Webhook {
    let mut w = rich_webhook(id, tenant);
    w.url = "https://receiver.example/hook".into();
    w.event_types.push("user.created".into());
    w.secrets.push(SigningSecret {
        secret: Secret::new("whsec_b2xkLXNpZ25pbmctc2VjcmV0LTAxMjM0NTY3"),
        expires_at: Some(1_800_000_000_000),
    });
    w
}

/// Records every published change, in order.
#[derive(Default)]
struct Recorder(Mutex<Vec<Change>>);

impl Subscriber for Recorder {
    fn apply(&self, changes: &[Change]) {
        self.0.lock().unwrap().extend(changes.iter().cloned());
    }
}

#[tokio::test]
async fn tenants_keys_and_catalogues_keep_the_redb_rules() {
    let url = pg_cluster::shared().database().await;
    let store = open(&url).await;
    let feed = Arc::new(Recorder::default());
    store.subscribe(feed.clone());

    store
        .create_tenant(tenant("acme"), vec![event_type("acme", "invoice.paid")])
        .await
        .unwrap();
    assert!(matches!(
        store.create_tenant(tenant("acme"), vec![]).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.list_tenants().await.unwrap(), vec![tenant("acme")]);

    // A key needs its tenant.
    assert!(matches!(
        store.create_api_key(key("key_1", "nobody")).await,
        Err(StoreError::NotFound(_))
    ));
    store.create_api_key(key("key_1", "acme")).await.unwrap();
    assert_eq!(
        store.list_api_keys().await.unwrap(),
        vec![key("key_1", "acme")]
    );

    assert!(matches!(
        store
            .create_event_type(event_type("acme", "invoice.paid"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    store
        .create_event_type(event_type("acme", "user.created"))
        .await
        .unwrap();
    let names: Vec<String> = store
        .list_event_types()
        .await
        .unwrap()
        .into_iter()
        .map(|et| et.name)
        .collect();
    assert_eq!(names, ["invoice.paid", "user.created"]);
    assert_eq!(
        store.list_event_types().await.unwrap()[0],
        event_type("acme", "invoice.paid")
    );
    store
        .delete_event_type("acme".into(), "user.created".into())
        .await
        .unwrap();
    assert!(matches!(
        store
            .delete_event_type("acme".into(), "user.created".into())
            .await,
        Err(StoreError::NotFound(_))
    ));
    store.delete_api_key("key_1".into()).await.unwrap();
    assert!(matches!(
        store.delete_api_key("key_1".into()).await,
        Err(StoreError::NotFound(_))
    ));

    // Only committed writes were published, in order.
    let published: Vec<&'static str> = feed
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|c| match c {
            Change::TenantCreated { .. } => "tenant",
            Change::KeyCreated(_) => "key",
            Change::KeyDeleted { .. } => "key deleted",
            Change::EventTypesAdded(_) => "type",
            Change::EventTypeDeleted { .. } => "type deleted",
            _ => "other",
        })
        .collect();
    assert_eq!(
        published,
        ["tenant", "key", "type", "type deleted", "key deleted"]
    );
}

#[tokio::test]
async fn a_webhook_round_trips_every_field_with_its_secrets_sealed_at_rest() {
    let url = pg_cluster::shared().database().await;
    let store = open(&url).await;
    store.create_tenant(tenant("acme"), vec![]).await.unwrap();
    let stored = store.create_webhook(webhook("wh_1", "acme")).await.unwrap();
    assert_eq!(stored.version, 1);
    let mut expected = webhook("wh_1", "acme");
    expected.version = 1;
    assert_eq!(
        store.get_webhook("wh_1").await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(store.load_webhooks().await.unwrap(), vec![expected]);
    assert_eq!(store.get_webhook("wh_none").await.unwrap(), None);
    assert!(matches!(
        store.create_webhook(webhook("wh_1", "acme")).await,
        Err(StoreError::Conflict(_))
    ));

    // No secret is readable in the database.
    let db = sql(&url).await;
    let row = db
        .query_one("SELECT sealed, url FROM webhooks WHERE id = 'wh_1'", &[])
        .await
        .unwrap();
    let sealed: Vec<u8> = row.get(0);
    let text = String::from_utf8_lossy(&sealed);
    for secret in [
        "header-secret-value",
        "oauth-secret-value",
        "c2lnbmluZy1zZWNyZXQtdmFsdWUtMDEyMzQ1",
    ] {
        assert!(!text.contains(secret), "{secret} in the sealed column");
    }
    assert_eq!(row.get::<_, String>(1), "https://receiver.example/hook");

    // Another master key cannot read it.
    let other = PgStore::open(&url, 1, Cipher::new(&[8; 32])).await.unwrap();
    assert!(matches!(
        other.get_webhook("wh_1").await,
        Err(StoreError::Seal(_))
    ));
}

#[tokio::test]
async fn concurrent_updates_from_two_nodes_lose_nothing() {
    let url = pg_cluster::shared().database().await;
    let node_a = open(&url).await;
    let node_b = open(&url).await;
    node_a.create_tenant(tenant("acme"), vec![]).await.unwrap();
    node_a
        .create_webhook(webhook("wh_1", "acme"))
        .await
        .unwrap();

    let writers: Vec<_> = (0..40)
        .map(|i| {
            let node = if i % 2 == 0 {
                node_a.clone()
            } else {
                node_b.clone()
            };
            tokio::spawn(async move {
                node.update_webhook("wh_1".into(), move |w| {
                    w.metadata.insert(format!("k{i:02}"), i.to_string());
                    Ok::<_, ()>(())
                })
                .await
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap().unwrap().unwrap();
    }
    let w = node_b.get_webhook("wh_1").await.unwrap().unwrap();
    assert_eq!(w.metadata.len(), 41, "{:?}", w.metadata.keys());
    assert_eq!(w.version, 41);
}

#[tokio::test]
async fn update_rules_refusals_and_no_ops_write_nothing_and_disabling_cancels() {
    let url = pg_cluster::shared().database().await;
    let store = open(&url).await;
    let feed = Arc::new(Recorder::default());
    store.create_tenant(tenant("acme"), vec![]).await.unwrap();
    store.create_webhook(webhook("wh_1", "acme")).await.unwrap();
    store.subscribe(feed.clone());

    let refused = store
        .update_webhook("wh_1".into(), |w| {
            w.url = "https://changed.example".into();
            Err::<(), _>("no")
        })
        .await
        .unwrap();
    assert_eq!(refused.unwrap_err(), "no");
    let same = store
        .update_webhook("wh_1".into(), |_| Ok::<_, ()>(()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(same.0.version, 1);
    assert_eq!(
        store.get_webhook("wh_1").await.unwrap().unwrap().url,
        "https://receiver.example/hook"
    );
    assert!(feed.0.lock().unwrap().is_empty());
    assert!(matches!(
        store
            .update_webhook("wh_none".into(), |_| Ok::<_, ()>(()))
            .await,
        Err(StoreError::NotFound(_))
    ));

    // An unfinished delivery is cancelled when the webhook is disabled; a finished
    // one keeps its state.
    let db = sql(&url).await;
    db.batch_execute(
        "INSERT INTO deliveries (id, tenant, event_id, webhook_id, event_type, state, \
         attempts, schedule_step, next_attempt_at, created_at, updated_at) VALUES \
         ('dlv_1', 'acme', 'evt_1', 'wh_1', 'invoice.paid', 0, 0, 0, 100, 1, 1), \
         ('dlv_2', 'acme', 'evt_2', 'wh_1', 'invoice.paid', 1, 1, 1, NULL, 1, 1)",
    )
    .await
    .unwrap();
    let (now, ()) = store
        .update_webhook("wh_1".into(), |w| {
            w.enabled = false;
            w.updated_at = 50;
            Ok::<_, ()>(())
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.version, 2);
    let states: Vec<(String, i16, Option<i64>)> = db
        .query(
            "SELECT id, state, next_attempt_at FROM deliveries ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        states,
        [("dlv_1".to_owned(), 4, None), ("dlv_2".to_owned(), 1, None)]
    );
    assert_eq!(feed.0.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn deleting_a_tenant_cascades_and_keeps_its_id_until_purged() {
    let url = pg_cluster::shared().database().await;
    let store = open(&url).await;
    store
        .create_tenant(tenant("acme"), vec![event_type("acme", "invoice.paid")])
        .await
        .unwrap();
    store.create_tenant(tenant("other"), vec![]).await.unwrap();
    store.create_api_key(key("key_1", "acme")).await.unwrap();
    store.create_api_key(key("key_22", "other")).await.unwrap();
    store.create_webhook(webhook("wh_1", "acme")).await.unwrap();
    store.create_webhook(webhook("wh_2", "acme")).await.unwrap();
    store
        .create_webhook(webhook("wh_3", "other"))
        .await
        .unwrap();
    let feed = Arc::new(Recorder::default());
    store.subscribe(feed.clone());

    let removed = store.delete_tenant("acme".into(), 77).await.unwrap();
    assert_eq!(removed, ["wh_1", "wh_2"]);
    assert_eq!(store.list_tenants().await.unwrap(), vec![tenant("other")]);
    assert_eq!(
        store.list_api_keys().await.unwrap(),
        vec![key("key_22", "other")]
    );
    assert!(store.list_event_types().await.unwrap().is_empty());
    for id in ["wh_1", "wh_2"] {
        let w = store.get_webhook(id).await.unwrap().unwrap();
        assert_eq!((w.deleted_at, w.version), (Some(77), 2), "{id}");
    }
    assert_eq!(
        store.get_webhook("wh_3").await.unwrap().unwrap().deleted_at,
        None
    );
    match &feed.0.lock().unwrap()[..] {
        [
            Change::TenantDeleted {
                id,
                keys,
                event_types,
                webhooks,
            },
        ] => {
            assert_eq!(id, "acme");
            assert_eq!(keys, &["key_1"]);
            assert_eq!(event_types, &["invoice.paid"]);
            assert_eq!(webhooks.len(), 2);
        }
        other => panic!("published {other:?}"),
    }
    let refused = store.create_tenant(tenant("acme"), vec![]).await;
    assert!(
        matches!(&refused, Err(StoreError::Conflict(what)) if what.contains("purged")),
        "{refused:?}"
    );
    assert!(matches!(
        store.delete_tenant("acme".into(), 78).await,
        Err(StoreError::NotFound(_))
    ));
}
