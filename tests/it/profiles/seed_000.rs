//! Seed 000 (profile `v2-webhooks`): `POST /v2/webhooks` with Bearer auth and the
//! `organization-id` header, every documented field (static headers, OAuth2
//! client credentials with token-exchange headers) -> 201 `{"id"}`; a delivery
//! to the webhook it made carries the static headers and the OAuth token and
//! verifies with the official Standard Webhooks library.

use hookbox::config::ApiProfile;
use http::{Method, StatusCode};
use serde_json::json;

use super::{curl, first, keys, spawn, verify_standard};
use crate::receiver::{Reply, TestReceiver};

#[tokio::test]
async fn seed_000_register_webhook_with_headers_and_oauth() {
    let app = spawn(&[ApiProfile::V2Webhooks]).await;
    let t = app.tenant("credentialing").await;
    let auth = format!("Bearer {}", t.key);
    let h = [
        ("authorization", auth.as_str()),
        ("organization-id", t.id.as_str()),
    ];

    // The seed's curl line, body as written.
    let seed_body = json!({
        "url": "https://yourdomain.com/webhook-endpoint",
        "event_types": ["IN_PROGRESS"],
        "description": "Provider Created Webhook",
        "headers": {"X-Api-Key": "abcdef123456"},
        "oauth_configuration": {
            "client_id": "my-client-id",
            "client_secret": "my-client-secret",
            "token_url": "https://auth.example.com/oauth/token"
        }
    });
    let (s, created) = curl(&app, Method::POST, "/v2/webhooks", &h, Some(seed_body)).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert_eq!(keys(&created), ["id"], "{created}");
    let id = created["id"].as_str().expect("id");
    // An ordinary webhook: /v1 shows it with every field the seed sent.
    let (s, w) = app
        .as_tenant(&t, Method::GET, &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{w}");
    assert_eq!(w["url"], "https://yourdomain.com/webhook-endpoint");
    assert_eq!(w["event_types"], json!(["IN_PROGRESS"]));
    assert_eq!(w["description"], "Provider Created Webhook");
    assert_eq!(w["headers"], json!({"X-Api-Key": "****"}));
    assert_eq!(w["oauth"]["client_id"], "my-client-id");
    assert_eq!(
        w["oauth"]["token_url"],
        "https://auth.example.com/oauth/token"
    );

    // Every documented field at once, including oauth_configuration.scope and
    // .headers, pointing at loopback: a token endpoint and the receiver.
    let tokens = TestReceiver::start_with(
        Reply::status(200)
            .header("content-type", "application/json")
            .body(r#"{"access_token":"tok-1","token_type":"Bearer","expires_in":3600}"#),
    )
    .await;
    let receiver = TestReceiver::start().await;
    let (s, created) = curl(
        &app,
        Method::POST,
        "/v2/webhooks",
        &h,
        Some(json!({
            "url": receiver.url("/webhook-endpoint"),
            "event_types": ["PROVIDER_CRED_APPROVED"],
            "description": "Provider Created Webhook",
            "headers": {"X-Api-Key": "abcdef123456"},
            "oauth_configuration": {
                "client_id": "my-client-id",
                "client_secret": "my-client-secret",
                "token_url": tokens.url("/oauth/token"),
                "scope": "resource.read",
                "headers": {"X-Domain-Name": "example.com"}
            }
        })),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id");

    app.event(
        &t,
        json!({"type": "PROVIDER_CRED_APPROVED", "data": {"provider": "p-1"}}),
    )
    .await;
    let got = first(&receiver).await;
    assert_eq!(got.path, "/webhook-endpoint");
    assert_eq!(got.header("x-api-key"), Some("abcdef123456"));
    assert_eq!(got.header("authorization"), Some("Bearer tok-1"));
    let token_req = first(&tokens).await;
    assert_eq!(token_req.header("x-domain-name"), Some("example.com"));
    let form = String::from_utf8_lossy(&token_req.body).into_owned();
    for part in [
        "grant_type=client_credentials",
        "client_id=my-client-id",
        "client_secret=my-client-secret",
        "scope=resource.read",
    ] {
        assert!(form.contains(part), "{form}");
    }
    let (s, secrets) = app
        .as_tenant(&t, Method::GET, &format!("/v1/webhooks/{id}/secrets"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    verify_standard(&got, secrets["secrets"][0].as_str().expect("secret"));
    assert_eq!(got.json()["data"], json!({"provider": "p-1"}));

    // Invalid input: every reason in one 400 (hookbox's error shape), nothing written.
    let (s, e) = curl(
        &app,
        Method::POST,
        "/v2/webhooks",
        &h,
        Some(json!({
            "url": "ftp://yourdomain.com",
            "event_types": ["NOT_A_TYPE"],
            "oauth_configuration": {"client_id": "c"},
            "channels": ["x"]
        })),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let reasons: Vec<&str> = e["error"]["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    for want in [
        "unknown field \"channels\"",
        "url must use http or https",
        "event type \"NOT_A_TYPE\" is not in the catalogue",
        "oauth_configuration.client_secret is required",
        "oauth_configuration.token_url is required",
    ] {
        assert!(reasons.contains(&want), "{want}: {reasons:?}");
    }
    let (_, list) = curl(&app, Method::GET, "/v2/webhooks", &h, None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");

    // Missing key: 401; a key without webhooks:write: 403.
    let (s, _) = curl(&app, Method::POST, "/v2/webhooks", &[], Some(json!({}))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let reader = app.tenant_with_scopes("reader", &["webhooks:read"]).await;
    let auth = format!("Bearer {}", reader.key);
    let (s, e) = curl(
        &app,
        Method::POST,
        "/v2/webhooks",
        &[("authorization", &auth)],
        Some(json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
}
