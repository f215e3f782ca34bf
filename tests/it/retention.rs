//! Retention (issue 3): events with all their deliveries finished are purged in the
//! background once older than `retention.events`; unfinished ones are kept.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;

use crate::helpers::TestApp;
use crate::receiver::{Reply, TestReceiver};

#[tokio::test]
async fn old_finished_events_are_purged_and_unfinished_ones_kept() {
    let app = TestApp::spawn_with(|c| {
        c.retention.events = Duration::from_millis(300);
        c.retention.purge_interval = Duration::from_millis(100);
        c.delivery.retry_schedule = vec![Duration::ZERO, Duration::from_secs(3600)];
    })
    .await;
    let ok = TestReceiver::start().await;
    let failing = TestReceiver::start_with(Reply::status(500)).await;
    let t = app.tenant("old").await;
    app.webhook(
        &t,
        json!({"url": ok.url("/"), "event_types": ["shift.created"]}),
    )
    .await;
    app.webhook(
        &t,
        json!({"url": failing.url("/"), "event_types": ["PATIENT_CREATED"]}),
    )
    .await;
    let done = app
        .event(&t, json!({"type": "shift.created", "data": {}}))
        .await;
    let stuck = app
        .event(&t, json!({"type": "PATIENT_CREATED", "data": {}}))
        .await;
    let done_id = done["id"].as_str().expect("id").to_owned();
    let stuck_id = stuck["id"].as_str().expect("id").to_owned();
    ok.wait_for(1, Duration::from_secs(5)).await;

    // Poll until the purge has run past the delivered event's age.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (s, _) = app
            .as_tenant(&t, Method::GET, &format!("/v1/events/{done_id}"), None)
            .await;
        if s == StatusCode::NOT_FOUND {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old event was never purged"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The event whose delivery is still retrying stays, with its delivery.
    let (s, e) = app
        .as_tenant(&t, Method::GET, &format!("/v1/events/{stuck_id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(e["deliveries"][0]["status"], "failed");
    // Ingest keeps working during and after purges.
    app.event(
        &t,
        json!({"type": "shift.created", "data": {"after": true}}),
    )
    .await;
    ok.wait_for(2, Duration::from_secs(5)).await;
}
