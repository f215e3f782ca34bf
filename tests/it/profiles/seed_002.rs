//! Seed 002 (profile `webhook-create`): `POST /v1/webhook/create` with the
//! `TENANT` and `API-KEY` headers, `{url, subscriptions, notificationEmail}` ->
//! 200 `{id, url, subscriptions, notificationEmail, secret, createdDate,
//! updatedDate}`; a delivery verifies with the returned secret.

use hookbox::config::ApiProfile;
use http::{Method, StatusCode};
use serde_json::json;

use super::{curl, is_timestamp, keys, spawn, verify_standard};
use crate::receiver::TestReceiver;

#[tokio::test]
async fn seed_002_webhook_create_with_tenant_and_api_key_headers() {
    let app = spawn(&[ApiProfile::WebhookCreate]).await;
    let t = app.tenant("practice").await;
    let receiver = TestReceiver::start().await;
    let h = [("TENANT", t.id.as_str()), ("API-KEY", t.key.as_str())];

    let (s, w) = curl(
        &app,
        Method::POST,
        "/v1/webhook/create",
        &h,
        Some(json!({
            "notificationEmail": "ops@example.com",
            "subscriptions": ["PATIENT_CREATED"],
            "url": receiver.url("/notifications")
        })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{w}");
    assert_eq!(
        keys(&w),
        [
            "createdDate",
            "id",
            "notificationEmail",
            "secret",
            "subscriptions",
            "updatedDate",
            "url"
        ]
    );
    assert!(w["id"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(w["url"], receiver.url("/notifications"));
    assert_eq!(w["subscriptions"], json!(["PATIENT_CREATED"]));
    assert_eq!(w["notificationEmail"], "ops@example.com");
    assert!(is_timestamp(&w["createdDate"]), "{w}");
    assert!(is_timestamp(&w["updatedDate"]), "{w}");
    let secret = w["secret"].as_str().expect("secret");
    assert!(secret.starts_with("whsec_"), "{secret}");

    // notificationEmail may be null; the answer says so.
    let (s, other) = curl(
        &app,
        Method::POST,
        "/v1/webhook/create",
        &h,
        Some(
            json!({"notificationEmail": null, "subscriptions": ["PATIENT_CREATED"],
            "url": receiver.url("/other")}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{other}");
    assert!(other["notificationEmail"].is_null(), "{other}");

    // /v1 sees it as an ordinary webhook with the notification email.
    let id = w["id"].as_str().expect("id");
    let (_, v1) = app
        .as_tenant(&t, Method::GET, &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(v1["notification_email"], "ops@example.com");
    assert_eq!(v1["tenant"], t.id.as_str());

    // Deliver an event; the returned secret verifies it.
    app.event(
        &t,
        json!({"type": "PATIENT_CREATED", "data": {"patient": 7}}),
    )
    .await;
    let got = receiver
        .wait_for(2, std::time::Duration::from_secs(10))
        .await;
    for r in &got {
        assert_eq!(r.json()["data"], json!({"patient": 7}));
    }
    let mine = got
        .iter()
        .find(|r| r.path == "/notifications")
        .expect("delivered to the first webhook");
    verify_standard(mine, secret);

    // Every reason at once; the TENANT header must be the key's own tenant.
    let (s, e) = curl(
        &app,
        Method::POST,
        "/v1/webhook/create",
        &h,
        Some(json!({"subscriptions": [], "notificationEmail": "not-an-email", "event_types": ["PATIENT_CREATED"]})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["error"]["code"], "bad_request");
    let reasons = e["error"]["reasons"].to_string();
    for want in [
        "unknown field \\\"event_types\\\"",
        "url is required",
        "subscriptions must contain at least 1 element",
        "notificationEmail",
    ] {
        assert!(reasons.contains(want), "{want}: {reasons}");
    }
    let other_tenant = app.tenant("other").await;
    let (s, _) = curl(
        &app,
        Method::POST,
        "/v1/webhook/create",
        &[
            ("TENANT", other_tenant.id.as_str()),
            ("API-KEY", t.key.as_str()),
        ],
        Some(json!({"subscriptions": ["PATIENT_CREATED"], "url": receiver.url("/x")})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = curl(
        &app,
        Method::POST,
        "/v1/webhook/create",
        &[("TENANT", t.id.as_str()), ("API-KEY", "hbk_wrong")],
        Some(json!({"subscriptions": ["PATIENT_CREATED"], "url": receiver.url("/x")})),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // The admin token names the tenant with TENANT, as the seed's header says.
    let admin = app.admin.clone();
    let (s, w) = curl(
        &app,
        Method::POST,
        "/v1/webhook/create",
        &[("TENANT", t.id.as_str()), ("API-KEY", admin.as_str())],
        Some(json!({"subscriptions": ["PATIENT_CREATED"], "url": receiver.url("/admin")})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{w}");
    let (_, list) = app.as_tenant(&t, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(3), "{list}");
}
