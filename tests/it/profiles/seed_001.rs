//! Seed 001 (profile `v2-webhooks`): `GET /v2/webhooks` (a bare array with
//! `organization_id`, header values and `client_secret` masked), `DELETE
//! /v2/webhooks` with a body `{"id"}` -> 204, and `POST
//! /v2/webhooks/{webhookId}/test-event` -> 200 `{"message": "Test event sent
//! successfully"}`, the test event verified with the official library. A webhook
//! made here is an ordinary one: /v1 reads and patches it.

use hookbox::config::ApiProfile;
use http::{Method, StatusCode};
use serde_json::json;

use super::{curl, first, is_timestamp, keys, spawn, verify_standard};
use crate::receiver::{Reply, TestReceiver};

#[tokio::test]
async fn seed_001_list_masked_delete_by_body_and_test_event() {
    let app = spawn(&[ApiProfile::V2Webhooks]).await;
    let t = app.tenant("org").await;
    let auth = format!("Bearer {}", t.key);
    let h = [
        ("authorization", auth.as_str()),
        ("organization-id", t.id.as_str()),
    ];
    let receiver = TestReceiver::start().await;
    let (s, created) = curl(
        &app,
        Method::POST,
        "/v2/webhooks",
        &h,
        Some(json!({
            "url": receiver.url("/webhook-endpoint"),
            "event_types": ["IN_PROGRESS"],
            "description": "Provider Created Webhook",
            "headers": {"X-Api-Key": "abcdef123456"},
            "oauth_configuration": {
                "client_id": "my-client-id",
                "client_secret": "my-client-secret",
                "token_url": "https://auth.example.com/oauth/token"
            }
        })),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();

    // The list curl: a bare array, each documented field, sensitive values masked.
    let (s, list) = curl(&app, Method::GET, "/v2/webhooks", &h, None).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let items = list.as_array().expect("a bare array");
    assert_eq!(items.len(), 1, "{list}");
    let w = &items[0];
    assert_eq!(
        keys(w),
        [
            "created_at",
            "description",
            "event_types",
            "headers",
            "id",
            "oauth_configuration",
            "organization_id",
            "url"
        ]
    );
    assert_eq!(w["id"], id.as_str());
    assert_eq!(w["organization_id"], t.id.as_str());
    assert_eq!(w["url"], receiver.url("/webhook-endpoint"));
    assert_eq!(w["event_types"], json!(["IN_PROGRESS"]));
    assert_eq!(w["description"], "Provider Created Webhook");
    assert_eq!(w["headers"], json!({"X-Api-Key": "****"}));
    assert_eq!(w["oauth_configuration"]["client_id"], "my-client-id");
    assert_eq!(w["oauth_configuration"]["client_secret"], "****");
    assert_eq!(
        w["oauth_configuration"]["token_url"],
        "https://auth.example.com/oauth/token"
    );
    assert!(is_timestamp(&w["created_at"]), "{w}");
    assert!(!list.to_string().contains("abcdef123456"));
    assert!(!list.to_string().contains("my-client-secret"));

    // A /v1 PATCH shows through the profile, and /v1 sees the webhook.
    let (s, patched) = app
        .as_tenant(
            &t,
            Method::PATCH,
            &format!("/v1/webhooks/{id}"),
            Some(json!({"description": "Renamed in /v1", "oauth": null, "headers": null})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{patched}");
    let (_, list) = curl(&app, Method::GET, "/v2/webhooks", &h, None).await;
    assert_eq!(list[0]["description"], "Renamed in /v1");
    assert_eq!(list[0]["headers"], json!({}));
    assert!(list[0].get("oauth_configuration").is_none(), "{list}");

    // The test-event curl (the seed's body): 200 with the seed's message, and the
    // receiver gets a signed test event.
    let (s, sent) = curl(
        &app,
        Method::POST,
        &format!("/v2/webhooks/{id}/test-event"),
        &h,
        Some(json!({"message": "string", "eventType": "IN_PROGRESS"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{sent}");
    assert_eq!(sent, json!({"message": "Test event sent successfully"}));
    let got = first(&receiver).await;
    let (_, secrets) = app
        .as_tenant(&t, Method::GET, &format!("/v1/webhooks/{id}/secrets"), None)
        .await;
    verify_standard(&got, secrets["secrets"][0].as_str().expect("secret"));
    assert_eq!(got.json()["type"], "IN_PROGRESS");
    assert!(got.body.windows(6).any(|w| w == b"string"));
    // It is in the delivery log.
    let (_, log) = app
        .as_tenant(
            &t,
            Method::GET,
            &format!("/v1/webhooks/{id}/deliveries"),
            None,
        )
        .await;
    assert_eq!(log["data"].as_array().map(Vec::len), Some(1), "{log}");

    // A receiver that refuses: the answer says why (502), not the success message.
    receiver.script([Reply::status(500)]);
    let (s, e) = curl(
        &app,
        Method::POST,
        &format!("/v2/webhooks/{id}/test-event"),
        &h,
        Some(json!({"message": "string", "eventType": "IN_PROGRESS"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("500")),
        "{e}"
    );
    // Every reason at once: the seed requires both fields.
    let (s, e) = curl(
        &app,
        Method::POST,
        &format!("/v2/webhooks/{id}/test-event"),
        &h,
        Some(json!({"eventType": "NOPE"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(
        e["error"]["reasons"],
        json!([
            "message is required",
            "event type \"NOPE\" is not in the catalogue"
        ])
    );

    // The delete curl: the id in a JSON body, 204, then gone everywhere.
    let (s, e) = curl(&app, Method::DELETE, "/v2/webhooks", &h, Some(json!({}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (s, e) = curl(
        &app,
        Method::DELETE,
        "/v2/webhooks",
        &h,
        Some(json!({"id": "wh_unknown"})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
    let (s, body) = curl(
        &app,
        Method::DELETE,
        "/v2/webhooks",
        &h,
        Some(json!({"id": id})),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    let (_, list) = curl(&app, Method::GET, "/v2/webhooks", &h, None).await;
    assert_eq!(list, json!([]));
    let (s, _) = app
        .as_tenant(&t, Method::GET, &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = curl(
        &app,
        Method::POST,
        &format!("/v2/webhooks/{id}/test-event"),
        &h,
        Some(json!({"message": "m", "eventType": "IN_PROGRESS"})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // A webhook made through /v1 shows in the profile's list.
    app.webhook(
        &t,
        json!({"url": receiver.url("/v1"), "event_types": ["IN_PROGRESS"]}),
    )
    .await;
    let (_, list) = curl(&app, Method::GET, "/v2/webhooks", &h, None).await;
    assert_eq!(list[0]["url"], receiver.url("/v1"));
    assert!(list[0].get("description").is_none(), "{list}");
}
