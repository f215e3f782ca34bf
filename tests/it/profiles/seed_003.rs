//! Seed 003 (profile `webhook-subscriptions`): `POST /v1/webhook-subscriptions`
//! `{events, url}` (https only) -> 200 `{"data": {...}, "object":
//! "webhook_subscription"}`; list, read, soft delete; the seed's 400 and 403
//! bodies. Delivery: the webhook it made is pointed at the loopback receiver
//! through /v1 (the profile itself accepts https only) and the event verifies.

use hookbox::config::ApiProfile;
use http::{Method, StatusCode};
use serde_json::json;

use super::{curl, first, is_timestamp, keys, spawn, verify_standard};
use crate::receiver::TestReceiver;

const PATH: &str = "/v1/webhook-subscriptions";

#[tokio::test]
async fn seed_003_subscriptions_envelopes_errors_and_soft_delete() {
    let app = spawn(&[ApiProfile::WebhookSubscriptions]).await;
    let t = app.tenant("validation").await;
    let auth = format!("Bearer {}", t.key);
    let h = [("authorization", auth.as_str())];

    // The seed's example: events and an https URL.
    let (s, created) = curl(
        &app,
        Method::POST,
        PATH,
        &h,
        Some(json!({
            "events": ["validation_request.approved"],
            "url": "https://example.com/my-webhook-handler"
        })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{created}");
    assert_eq!(keys(&created), ["data", "object"]);
    assert_eq!(created["object"], "webhook_subscription");
    let d = &created["data"];
    assert_eq!(
        keys(d),
        [
            "createdAt",
            "deletedAt",
            "events",
            "id",
            "secret",
            "updatedAt",
            "url"
        ]
    );
    assert_eq!(d["events"], json!(["validation_request.approved"]));
    assert_eq!(d["url"], "https://example.com/my-webhook-handler");
    assert!(
        is_timestamp(&d["createdAt"]) && is_timestamp(&d["updatedAt"]),
        "{d}"
    );
    assert!(d["deletedAt"].is_null(), "{d}");
    let secret = d["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("whsec_"));
    let id = d["id"].as_str().expect("id").to_owned();

    // The seed's 400: https only (even though this deployment allows http on
    // /v1), every reason listed, the seed's code, title and message.
    let receiver = TestReceiver::start().await;
    let (s, e) = curl(
        &app,
        Method::POST,
        PATH,
        &h,
        Some(json!({"events": ["validation_request.nope"], "url": receiver.url("/hook")})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(
        e,
        json!({"error": {
            "code": "bad_request",
            "title": "Bad request",
            "message": "One or more of the inputs were invalid",
            "reasons": [
                "url must be https",
                "event type \"validation_request.nope\" is not in the catalogue"
            ]
        }})
    );

    // The seed's 403: a key without the scope.
    let reader = app.tenant_with_scopes("reader", &["webhooks:read"]).await;
    let auth_r = format!("Bearer {}", reader.key);
    let (s, e) = curl(
        &app,
        Method::POST,
        PATH,
        &[("authorization", &auth_r)],
        Some(json!({"events": ["validation_request.approved"], "url": "https://example.com/h"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert_eq!(e["error"]["code"], "forbidden");
    assert_eq!(e["error"]["title"], "Forbidden");
    assert_eq!(
        e["error"]["message"],
        "Access is denied due to missing scope permissions"
    );
    // Reading is within that key's scope: its tenant has none.
    let (s, list) = curl(&app, Method::GET, PATH, &[("authorization", &auth_r)], None).await;
    assert_eq!((s, list), (StatusCode::OK, json!([])));

    // List and read: the same envelope per item, the secret masked.
    let (s, list) = curl(&app, Method::GET, PATH, &h, None).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["object"], "webhook_subscription");
    assert_eq!(list[0]["data"]["id"], id.as_str());
    assert_eq!(list[0]["data"]["secret"], "****");
    let (s, one) = curl(&app, Method::GET, &format!("{PATH}/{id}"), &h, None).await;
    assert_eq!(s, StatusCode::OK, "{one}");
    assert_eq!(one, list[0]);

    // Deliver: point it at the loopback receiver through /v1 (a /v1 PATCH shows
    // through the profile), then ingest a matching event.
    let (s, p) = app
        .as_tenant(
            &t,
            Method::PATCH,
            &format!("/v1/webhooks/{id}"),
            Some(json!({"url": receiver.url("/hook")})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let (_, one) = curl(&app, Method::GET, &format!("{PATH}/{id}"), &h, None).await;
    assert_eq!(one["data"]["url"], receiver.url("/hook"));
    app.event(
        &t,
        json!({"type": "validation_request.approved", "data": {"request": "vr_1"}}),
    )
    .await;
    let got = first(&receiver).await;
    verify_standard(&got, &secret);
    assert_eq!(got.json()["type"], "validation_request.approved");

    // Soft delete: the envelope with deletedAt, then 404 (hookbox's shape).
    let (s, gone) = curl(&app, Method::DELETE, &format!("{PATH}/{id}"), &h, None).await;
    assert_eq!(s, StatusCode::OK, "{gone}");
    assert_eq!(gone["object"], "webhook_subscription");
    assert!(is_timestamp(&gone["data"]["deletedAt"]), "{gone}");
    let (s, e) = curl(&app, Method::GET, &format!("{PATH}/{id}"), &h, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
    assert_eq!(e["error"]["code"], "not_found");
    let (_, list) = curl(&app, Method::GET, PATH, &h, None).await;
    assert_eq!(list, json!([]));
    let (s, _) = app
        .as_tenant(&t, Method::GET, &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
