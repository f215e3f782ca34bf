//! The seed documents' register/list/delete flows, each driven over HTTP with the
//! seed's own field names and headers (seeds 000 to 004 in /work/shared/seeds).

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api::{S1, S2, S3, assert_generated_secret, ids, listed, reasons};
use crate::helpers::TestApp;

/// An admin call acting for `tenant` through the seed-000 `organization-id` header.
async fn as_org(
    app: &TestApp,
    tenant: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    app.call(
        method,
        path,
        &app.admin,
        &[("organization-id", tenant)],
        body,
    )
    .await
}

#[tokio::test]
async fn seed_000_001_credentialing_register_list_masked_delete() {
    let app = TestApp::spawn().await;
    let (s, _) = app
        .admin(
            Method::POST,
            "/v1/tenants",
            Some(json!({"id": "org-1", "name": "Credentialing Org"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    // The seed's IN_PROGRESS is not in the test config's catalogue: add it.
    let (s, e) = as_org(
        &app,
        "org-1",
        Method::POST,
        "/v1/event-types",
        Some(json!({"name": "IN_PROGRESS", "description": "Credentialing is in progress"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    let body = json!({
        "url": "https://yourdomain.com/webhook-endpoint",
        "event_types": ["IN_PROGRESS", "PROVIDER_CRED_APPROVED"],
        "description": "Provider Created Webhook",
        "headers": {"X-Api-Key": "abcdef123456"},
        "oauth_configuration": {
            "client_id": "my-client-id",
            "client_secret": "my-client-secret",
            "token_url": "https://auth.example.com/oauth/token",
            "scope": "resource.read",
            "headers": {"X-Domain-Name": "example.com"}
        }
    });
    let (s, w) = as_org(&app, "org-1", Method::POST, "/v1/webhooks", Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{w}");
    let id = w["id"].as_str().expect("id").to_owned();
    assert_eq!(w["tenant"], "org-1");
    assert_eq!(w["headers"]["X-Api-Key"], "abcdef123456");
    assert_eq!(w["oauth"]["client_secret"], "my-client-secret");
    assert_eq!(
        w["oauth"]["token_url"],
        "https://auth.example.com/oauth/token"
    );
    assert_generated_secret(w["secrets"][0].as_str().expect("secret"));
    // The list masks the OAuth client secret and header values (seed 001).
    let (s, l) = as_org(&app, "org-1", Method::GET, "/v1/webhooks", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&l), vec![id.clone()]);
    let listed = &l["data"][0];
    assert_eq!(listed["headers"], json!({"X-Api-Key": "****"}));
    assert_eq!(listed["oauth"]["client_id"], "my-client-id");
    assert_eq!(listed["oauth"]["client_secret"], "****");
    assert_eq!(listed["oauth"]["headers"], json!({"X-Domain-Name": "****"}));
    assert_eq!(listed["oauth"]["scope"], "resource.read");
    assert_eq!(listed["description"], "Provider Created Webhook");
    assert_eq!(
        listed["event_types"],
        json!(["IN_PROGRESS", "PROVIDER_CRED_APPROVED"])
    );
    assert!(listed["created_at"].is_string());
    let text = l.to_string();
    for secret in ["abcdef123456", "my-client-secret", "example.com\""] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    // The seed's `test-event` route exists (POST only); test events are covered
    // with the delivery tests.
    let (s, _) = as_org(
        &app,
        "org-1",
        Method::GET,
        &format!("/v1/webhooks/{id}/test-event"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    // Delete, then it is gone.
    let path = format!("/v1/webhooks/{id}");
    let (s, _) = as_org(&app, "org-1", Method::DELETE, &path, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = as_org(&app, "org-1", Method::GET, &path, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, l) = as_org(&app, "org-1", Method::GET, "/v1/webhooks", None).await;
    assert_eq!(l, json!({"data": [], "next_cursor": null}));
}

#[tokio::test]
async fn seed_002_tenant_and_api_key_headers_subscriptions_generated_secret() {
    let app = TestApp::spawn().await;
    let t = app.tenant("practice").await;
    let body = serde_json::to_vec(&json!({
        "url": "https://practice.example.com/hooks",
        "subscriptions": ["PATIENT_CREATED"],
        "notificationEmail": "alerts@practice.example.com"
    }))
    .expect("json");
    // The seed's TENANT + API-KEY pair, with the tenant's own key.
    let (s, w) = app
        .raw(
            Method::POST,
            "/v1/webhooks",
            &[
                ("TENANT", &t.id),
                ("API-KEY", &t.key),
                ("content-type", "application/json"),
            ],
            body.clone(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{w}");
    assert_eq!(w["event_types"], json!(["PATIENT_CREATED"]));
    assert_eq!(w["notification_email"], "alerts@practice.example.com");
    assert_eq!(w["url"], "https://practice.example.com/hooks");
    let secrets = w["secrets"].as_array().expect("secrets");
    assert_eq!(secrets.len(), 1, "one generated secret");
    assert_generated_secret(secrets[0].as_str().expect("secret"));
    // And with the admin token in API-KEY acting for the TENANT.
    let (s, w2) = app
        .raw(
            Method::POST,
            "/v1/webhooks",
            &[
                ("TENANT", &t.id),
                ("API-KEY", &app.admin),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{w2}");
    assert_ne!(w2["secrets"][0], w["secrets"][0], "secrets are random");
    let (s, l) = app
        .raw(
            Method::GET,
            "/v1/webhooks",
            &[("TENANT", &t.id), ("API-KEY", &t.key)],
            Vec::new(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let mut want = vec![
        w["id"].as_str().expect("id").to_owned(),
        w2["id"].as_str().expect("id").to_owned(),
    ];
    want.sort();
    assert_eq!(ids(&l), want);
    assert_eq!(l["data"][0]["secrets"], json!(["****"]));
    let (s, _) = app
        .raw(
            Method::DELETE,
            &format!("/v1/webhooks/{}", want[0]),
            &[("TENANT", &t.id), ("API-KEY", &t.key)],
            Vec::new(),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(ids(&listed(&app, &t).await), vec![want[1].clone()]);
}

#[tokio::test]
async fn seed_003_https_only_dotted_events_scope_403_soft_delete() {
    let app = TestApp::spawn_with(|c| c.security.require_https = true).await;
    let t = app.tenant("validation").await;
    for name in [
        "donation.hosted.payment_received",
        "agent_verification.pending_review",
    ] {
        let (s, e) = app
            .as_tenant(
                &t,
                Method::POST,
                "/v1/event-types",
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{e}");
    }
    let events = json!([
        "validation_request.approved",
        "donation.hosted.payment_received",
        "agent_verification.pending_review"
    ]);
    let (s, e) = app
        .as_tenant(
            &t,
            Method::POST,
            "/v1/webhooks",
            Some(json!({"url": "http://example.com/my-webhook-handler", "events": events})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(e["error"]["code"], "bad_request");
    assert_eq!(e["error"]["title"], "Bad request");
    assert!(e["error"]["message"].is_string());
    assert_eq!(reasons(&e), vec!["url must be https"]);
    let w = app
        .webhook(
            &t,
            json!({"url": "https://example.com/my-webhook-handler", "events": events}),
        )
        .await;
    assert_eq!(w["event_types"], events);
    // A key without webhooks:write gets the seed's 403 shape.
    let (s, k) = app
        .admin(
            Method::POST,
            "/v1/api-keys",
            Some(json!({"tenant": t.id, "name": "events only", "scopes": ["events:write"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let key = k["key"].as_str().expect("key");
    let (s, e) = app
        .call(
            Method::POST,
            "/v1/webhooks",
            key,
            &[],
            Some(
                json!({"url": "https://example.com/x", "events": ["validation_request.approved"]}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(e["error"]["code"], "forbidden");
    assert_eq!(e["error"]["title"], "Forbidden");
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("missing scope")),
        "{e}"
    );
    // Soft delete.
    let path = format!("/v1/webhooks/{}", w["id"].as_str().expect("id"));
    let (s, _) = app.as_tenant(&t, Method::DELETE, &path, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.as_tenant(&t, Method::GET, &path, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(ids(&listed(&app, &t).await).is_empty());
}

#[tokio::test]
async fn seed_004_all_events_facilities_two_secrets_and_many_reasons() {
    let app = TestApp::spawn().await;
    let t = app.tenant("staffing").await;
    let w = app
        .webhook(
            &t,
            json!({"url": "https://exemple.com/webhook", "events": ["all"],
                "facilities": ["P-123456", "P-123457"], "secrets": [S1, S2]}),
        )
        .await;
    assert_eq!(w["event_types"], json!(["*"]));
    assert_eq!(w["channels"], json!(["P-123456", "P-123457"]));
    assert_eq!(w["secrets"], json!([S1, S2]), "given order, current first");
    let id = w["id"].as_str().expect("id");
    let (_, g) = app
        .as_tenant(&t, Method::GET, &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(g["secrets"], json!(["****", "****"]));
    let (_, r) = app
        .as_tenant(&t, Method::GET, &format!("/v1/webhooks/{id}/secrets"), None)
        .await;
    assert_eq!(r["secrets"], json!([S1, S2]));
    let before = listed(&app, &t).await;
    let (s, e) = app
        .as_tenant(
            &t,
            Method::POST,
            "/v1/webhooks",
            Some(json!({"url": 5, "events": [], "facilities": [1, "P-1"],
                "secrets": [S1, S2, S3]})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        reasons(&e),
        vec![
            "url must be a string",
            "events must contain at least 1 element",
            "facilities[0] must be a string",
            "secrets must contain no more than 2 elements",
        ]
    );
    let (s, e) = app
        .as_tenant(
            &t,
            Method::POST,
            "/v1/webhooks",
            Some(
                json!({"url": "https://exemple.com/webhook", "events": "all",
                "facilities": "P-1", "secrets": "x"}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(reasons(&e).len(), 3, "{e}");
    assert_eq!(listed(&app, &t).await, before, "a 400 wrote something");
}
