//! Driving the engine step by step (`Engine::run_due_once`): a retry an hour away is
//! attempted by stepping the clock, not by sleeping. The engine here is built but not
//! started, over the data dir a real server set up through the API.

use std::time::Duration;

use hookbox::delivery::client::{ClientConfig, HttpClient};
use hookbox::delivery::schedule::RetryPolicy;
use hookbox::delivery::{Engine, EngineConfig, plan_deliveries};
use hookbox::model::{DeliveryState, Event, new_id, now_ms};
use hookbox::notify::Notifier;
use hookbox::registry::Registry;
use hookbox::store::{IngestItem, Store};
use serde_json::json;

use crate::helpers::TestApp;
use crate::receiver::{Reply, TestReceiver};

#[tokio::test]
async fn run_due_once_attempts_what_is_due_at_the_given_time() {
    let hour = Duration::from_secs(3600);
    let mut app = TestApp::spawn_with(|c| {
        // Opens the data file itself after the stop: redb's own mechanics.
        c.store.backend = hookbox::config::Backend::Redb;
        c.delivery.retry_schedule = vec![Duration::ZERO, hour];
    })
    .await;
    let rx = TestReceiver::start().await;
    rx.script([Reply::status(503)]);
    let t = app.tenant("stepper").await;
    let wh = app
        .webhook(
            &t,
            json!({"url": rx.url("/step"), "event_types": ["shift.created"]}),
        )
        .await;
    let webhook_id = wh["id"].as_str().expect("webhook id").to_owned();
    app.stop().await;

    // The same data dir, opened by an engine that is built but not started.
    let config = app.config.clone();
    let cipher =
        hookbox::secrets::load_or_create_master_key(None, &config.data_dir).expect("master key");
    let store = Store::open(&app.data_file(), cipher, 16 << 20).expect("open the store");
    let registry = Registry::load(
        store.list_tenants().expect("tenants"),
        store.list_api_keys().expect("keys"),
        store.list_event_types().expect("types"),
        store.load_webhooks().expect("webhooks"),
    );
    let client = HttpClient::new(ClientConfig {
        allow_networks: config.security.allow_networks.clone(),
        ..ClientConfig::default()
    })
    .expect("client");
    let db = hookbox::store::Db::Redb(store.clone());
    let engine = Engine::new(
        db.clone(),
        registry,
        client,
        EngineConfig {
            max_in_flight: 4,
            per_webhook_in_flight: 4,
            per_tenant_in_flight: 4,
            max_queued_bytes: 1 << 20,
            policy: RetryPolicy::from_config(&config.delivery).expect("policy"),
            disable_after: Duration::from_secs(86_400),
            lease: Duration::from_secs(60),
        },
        Notifier::new(db, None, Duration::from_secs(3600)),
    );

    let now = now_ms();
    let event = Event {
        id: new_id("evt"),
        tenant: t.id.clone(),
        event_type: "shift.created".into(),
        payload: r#"{"step":1}"#.into(),
        channels: Vec::new(),
        idempotency_key: None,
        created_at: now,
    };
    let deliveries = plan_deliveries(&event, [webhook_id.as_str()], 0, now);
    let delivery_id = deliveries[0].id.clone();
    store
        .ingest(vec![IngestItem {
            event,
            deliveries,
            body_hash: [0; 32],
        }])
        .await
        .expect("ingest");

    // Step 1: due now; the receiver answers 503, so it is retried in an hour.
    assert_eq!(engine.run_due_once(now).await, 1);
    assert_eq!(rx.received().len(), 1);
    let (d, _) = store
        .get_delivery(&delivery_id)
        .expect("read")
        .expect("delivery");
    assert_eq!(d.state, DeliveryState::Failed);
    let retry_at = d.next_attempt_at.expect("a retry time");
    assert!(
        retry_at >= now + 3_600_000,
        "retry at {retry_at}, now {now}"
    );

    // Step 2: a minute later nothing is due.
    assert_eq!(engine.run_due_once(now + 60_000).await, 0);
    assert_eq!(rx.received().len(), 1);

    // Step 3: at the retry time it is attempted, delivered and recorded.
    assert_eq!(engine.run_due_once(retry_at).await, 1);
    assert_eq!(rx.received().len(), 2);
    let (d, attempts) = store
        .get_delivery(&delivery_id)
        .expect("read")
        .expect("delivery");
    assert_eq!(d.state, DeliveryState::Succeeded);
    assert_eq!(attempts.len(), 2);
    assert_eq!(engine.run_due_once(retry_at + 3_600_000).await, 0);
    store.close();
}
