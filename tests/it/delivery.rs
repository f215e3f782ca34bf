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

/// The `v1,` entries of a request's `webhook-signature` header.
fn signatures(r: &crate::receiver::Received) -> Vec<String> {
    r.header("webhook-signature")
        .unwrap_or("")
        .split(' ')
        .filter(|s| s.starts_with("v1,"))
        .map(str::to_owned)
        .collect()
}

/// Polls `GET /v1/webhooks/{id}/secrets` until `pred` holds on the list.
async fn wait_secrets(
    app: &TestApp,
    t: &crate::helpers::Tenant,
    id: &str,
    pred: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (s, b) = app
            .as_tenant(t, Method::GET, &format!("/v1/webhooks/{id}/secrets"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let list = b["secrets"].as_array().cloned().unwrap_or_default();
        if pred(&list) {
            return list;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "secrets never reached the expected state: {b}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn rotation_signs_with_both_secrets_during_the_grace_period_then_only_the_new_one() {
    let app = TestApp::spawn().await;
    let rx = TestReceiver::start().await;
    let t = app.tenant("acme").await;
    let w = app
        .webhook(
            &t,
            json!({"url": rx.url("/hook"), "event_types": ["shift.created"]}),
        )
        .await;
    let id = w["id"].as_str().expect("id").to_owned();
    let old = w["secrets"][0].as_str().expect("secret").to_owned();

    let (s, rotated) = app
        .as_tenant(
            &t,
            Method::POST,
            &format!("/v1/webhooks/{id}/secrets/rotate"),
            Some(json!({"grace_seconds": 1})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    let new = rotated["secrets"][0]
        .as_str()
        .expect("new secret")
        .to_owned();
    assert_ne!(new, old);
    assert_eq!(
        rotated["secrets"][1],
        old.as_str(),
        "old secret kept second"
    );

    app.event(&t, json!({"type": "shift.created", "data": {"n": 1}}))
        .await;
    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(signatures(&got[0]).len(), 2, "{:?}", got[0].headers);
    assert!(verify_official(&new, &got[0]), "new secret must verify");
    assert!(verify_official(&old, &got[0]), "old secret must verify");

    // The grace period ends; only the new secret is listed and signs.
    wait_secrets(&app, &t, &id, |l| l.len() == 1).await;
    app.event(&t, json!({"type": "shift.created", "data": {"n": 2}}))
        .await;
    let got = rx.wait_for(2, WAIT).await;
    assert_eq!(signatures(&got[1]).len(), 1, "{:?}", got[1].headers);
    assert!(verify_official(&new, &got[1]));
    assert!(
        !verify_official(&old, &got[1]),
        "expired secret still signs"
    );
}

#[tokio::test]
async fn one_event_fans_out_to_twenty_webhooks() {
    let app = TestApp::spawn().await;
    let rx = TestReceiver::start().await;
    let t = app.tenant("acme").await;
    for i in 0..20 {
        app.webhook(
            &t,
            json!({"url": rx.url(&format!("/w{i}")), "event_types": ["shift.created"]}),
        )
        .await;
    }
    let e = app
        .event(&t, json!({"type": "shift.created", "data": {}}))
        .await;
    assert_eq!(e["deliveries"], 20);
    let got = rx.wait_for(20, WAIT).await;
    let mut paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    paths.sort_unstable();
    paths.dedup();
    assert_eq!(paths.len(), 20, "each webhook gets exactly one request");
    let dlv = app.deliveries_of(&t, e["id"].as_str().expect("id")).await;
    assert_eq!(dlv.len(), 20);
    for d in dlv {
        let id = d["id"].as_str().expect("delivery id").to_owned();
        app.wait_delivery(&t, &id, WAIT, |d| d["status"] == "succeeded")
            .await;
    }
}

#[tokio::test]
async fn filters_match_exact_types_wildcards_prefixes_and_channels() {
    let app = TestApp::spawn().await;
    let rx = TestReceiver::start().await;
    let t = app.tenant("acme").await;
    let hooks = [
        ("/exact", json!({"event_types": ["shift.created"]})),
        ("/star", json!({"event_types": ["*"]})),
        ("/all", json!({"event_types": ["all"]})),
        ("/prefix", json!({"event_types": ["shift.*"]})),
        ("/p1", json!({"event_types": ["*"], "channels": ["P-1"]})),
        ("/p2", json!({"event_types": ["*"], "facilities": ["P-2"]})),
        ("/other", json!({"event_types": ["PROVIDER_CRED_DENIED"]})),
    ];
    for (path, mut body) in hooks {
        body["url"] = json!(rx.url(path));
        app.webhook(&t, body).await;
    }
    let cases = [
        (
            json!({"type": "shift.created", "data": {}}),
            vec!["/all", "/exact", "/prefix", "/star"],
        ),
        (
            json!({"type": "shift.report.created", "data": {}, "channels": ["P-1"]}),
            vec!["/all", "/p1", "/prefix", "/star"],
        ),
        (
            json!({"type": "PATIENT_CREATED", "data": {}, "channels": ["P-3", "P-2"]}),
            vec!["/all", "/p2", "/star"],
        ),
    ];
    let mut total = 0;
    for (event, mut want) in cases {
        let before = rx.received().len();
        let e = app.event(&t, event.clone()).await;
        assert_eq!(e["deliveries"], want.len(), "{event}");
        total += want.len();
        let got = rx.wait_for(total, WAIT).await;
        // Every delivery of this event must be to one of the expected paths.
        let dlv = app.deliveries_of(&t, e["id"].as_str().expect("id")).await;
        assert_eq!(dlv.len(), want.len());
        let mut paths: Vec<&str> = got[before..].iter().map(|r| r.path.as_str()).collect();
        paths.sort_unstable();
        want.sort_unstable();
        assert_eq!(paths, want, "{event}");
    }
}

#[tokio::test]
async fn a_masked_header_sent_back_in_a_patch_keeps_its_stored_value() {
    let app = TestApp::spawn().await;
    let rx = TestReceiver::start().await;
    let t = app.tenant("mask").await;
    let w = app
        .webhook(
            &t,
            json!({"url": rx.url("/"), "event_types": ["shift.created"],
                   "headers": {"X-Api-Key": "abc123", "X-Other": "one"}}),
        )
        .await;
    let id = w["id"].as_str().expect("id");
    // What a client read back (masked) is sent back unchanged beside a real change.
    let (s, body) = app
        .as_tenant(
            &t,
            Method::PATCH,
            &format!("/v1/webhooks/{id}"),
            Some(json!({"headers": {"X-Api-Key": "****", "X-Other": "two"}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    app.event(&t, json!({"type": "shift.created", "data": {}}))
        .await;
    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("x-api-key"), Some("abc123"));
    assert_eq!(got[0].header("x-other"), Some("two"));
}
