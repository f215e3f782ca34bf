//! Fairness across tenants (issue 18, hole 3): one tenant's hanging receivers hold
//! at most its own share of the in-flight slots, so another tenant's delivery is not
//! delayed by them.

use std::time::{Duration, Instant};

use http::Method;
use serde_json::json;

use crate::helpers::TestApp;
use crate::receiver::{Reply, TestReceiver};

#[tokio::test]
async fn another_tenants_hanging_webhooks_do_not_delay_a_healthy_delivery() {
    // Defaults: 256 in flight in all, 16 per webhook, a quarter (64) per tenant. A
    // 4 s request timeout: on the old code the healthy delivery waited it out. The
    // connect timeout is as long, so that on a loaded host no hanging attempt fails
    // early at connect and frees its slot by chance.
    let app = TestApp::spawn_with(|c| {
        c.delivery.request_timeout = Duration::from_secs(4);
        c.delivery.connect_timeout = Duration::from_secs(4);
    })
    .await;
    // A receiver that accepts and never answers within the timeout.
    let hang = TestReceiver::start_with(Reply::status(200).delay(Duration::from_secs(30))).await;
    let greedy = app.tenant("greedy").await;
    for _ in 0..20 {
        app.webhook(
            &greedy,
            json!({"url": hang.url("/hang"), "event_types": ["shift.created"]}),
        )
        .await;
    }
    // 16 events x 20 webhooks = 320 deliveries: more than every slot there is.
    let events: Vec<_> = (0..16)
        .map(|i| json!({"type": "shift.created", "data": {"i": i}}))
        .collect();
    let (status, _) = app
        .as_tenant(
            &greedy,
            Method::POST,
            "/v1/events/batch",
            Some(json!({"events": events})),
        )
        .await;
    assert!(status.is_success(), "batch ingest: {status}");
    // The hanging receiver holds its share of the slots (64); wait for it.
    hang.wait_for(64, Duration::from_secs(10)).await;

    let healthy = TestReceiver::start().await;
    let other = app.tenant("healthy").await;
    app.webhook(
        &other,
        json!({"url": healthy.url("/ok"), "event_types": ["shift.created"]}),
    )
    .await;
    let sent = Instant::now();
    app.event(
        &other,
        json!({"type": "shift.created", "data": {"ok": true}}),
    )
    .await;
    let got = healthy.wait_for(1, Duration::from_secs(10)).await;
    let waited = got[0].at.duration_since(sent);
    assert!(
        waited < Duration::from_secs(1),
        "the healthy delivery waited {waited:?} behind another tenant's hanging webhooks"
    );
    // And the greedy tenant never held more than its share at once: nothing of it
    // beyond 64 arrived before the first timeouts (4 s) freed slots.
    let early = hang
        .received()
        .iter()
        .filter(|r| r.at.duration_since(sent) < Duration::from_secs(3))
        .count();
    assert!(early <= 64, "{early} hanging requests at once");
}
