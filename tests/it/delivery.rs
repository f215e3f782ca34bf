//! Delivery engine tests: signing, fan-out and filters, outcomes and retries,
//! isolation of slow receivers, SSRF, idempotency, recover and manual retry.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;

use crate::helpers::TestApp;
use crate::receiver::TestReceiver;

const WAIT: Duration = Duration::from_secs(10);

/// Verifies a received request with the official Standard Webhooks library.
pub fn verify_official(secret: &str, r: &crate::receiver::Received) -> bool {
    let wh = standardwebhooks::Webhook::new(secret).expect("secret parses");
    wh.verify(&r.body, &r.headers).is_ok()
}

#[tokio::test]
async fn an_event_arrives_signed_with_the_standard_webhooks_headers() {
    let app = TestApp::spawn().await;
    let rx = TestReceiver::start().await;
    let t = app.tenant("acme").await;
    let w = app
        .webhook(
            &t,
            json!({"url": rx.url("/hook"), "event_types": ["shift.created"], "headers": {"X-Api-Key": "abc123"}}),
        )
        .await;
    let secret = w["secrets"][0]
        .as_str()
        .expect("secret revealed on create")
        .to_owned();
    let raw = r#"{"type":"shift.created","data":{"shift":"S-1","rate":12.50,"tags":[ "a" ]}}"#;
    let auth = format!("Bearer {}", t.key);
    let (s, e) = app
        .raw(
            Method::POST,
            "/v1/events",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            raw.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{e}");
    assert_eq!(e["deliveries"], 1);
    let got = rx.wait_for(1, WAIT).await;
    let r = &got[0];
    assert_eq!(r.path, "/hook");
    assert_eq!(r.header("webhook-id"), e["id"].as_str());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-api-key"), Some("abc123"));
    assert!(r.header("user-agent").unwrap_or("").starts_with("hookbox/"));
    assert!(
        verify_official(&secret, r),
        "official library rejects our signature"
    );
    // `data` arrives byte-for-byte as ingested.
    let body = std::str::from_utf8(&r.body).expect("utf8");
    assert!(
        body.contains(r#""data":{"shift":"S-1","rate":12.50,"tags":[ "a" ]}"#),
        "{body}"
    );
    assert_eq!(r.json()["type"], "shift.created");
    let dlv = app.deliveries_of(&t, e["id"].as_str().expect("id")).await;
    let id = dlv[0]["id"].as_str().expect("delivery id").to_owned();
    let d = app
        .wait_delivery(&t, &id, WAIT, |d| d["status"] == "succeeded")
        .await;
    assert_eq!(d["attempts"][0]["status_code"], 200);
    assert_eq!(d["attempts"][0]["trigger"], "scheduled");
}
