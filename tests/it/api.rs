//! API tests (issue #2): auth and scopes, admin tenant selection, tenants and keys,
//! the event-type catalogue, and the helpers the other `api_*` files share. Webhook
//! CRUD lives in `api_webhooks.rs`, seed flows in `api_seeds.rs`, restart and
//! at-rest checks in `api_persist.rs`.

use base64::Engine as _;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Tenant, TestApp};

/// Valid signing secrets (`whsec_` + base64 of 32 bytes).
pub const S1: &str = "whsec_aG9va2JveC10ZXN0LXNlY3JldC1vbmUtMzJieXRlcyE=";
pub const S2: &str = "whsec_aG9va2JveC10ZXN0LXNlY3JldC10d28tMzJieXRlcyE=";
pub const S3: &str = "whsec_aG9va2JveC10ZXN0LXNlY3JldC0zLTMyYnl0ZXMhISE=";

/// The ids of a list answer, in order.
pub fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|w| w["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Every webhook of the tenant, as listed (one page of up to 1000).
pub async fn listed(app: &TestApp, t: &Tenant) -> Value {
    let (s, l) = app
        .as_tenant(t, Method::GET, "/v1/webhooks?limit=1000", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{l}");
    l
}

/// The reasons of an error answer.
pub fn reasons(err: &Value) -> Vec<String> {
    err["error"]["reasons"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts `secret` is `whsec_` + standard base64 of 32 bytes.
pub fn assert_generated_secret(secret: &str) {
    let b64 = secret
        .strip_prefix("whsec_")
        .unwrap_or_else(|| panic!("{secret} lacks whsec_"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("standard base64");
    assert_eq!(bytes.len(), 32, "{secret}");
}

/// A minimal valid webhook body.
pub fn hook(url: &str) -> Value {
    json!({"url": url, "event_types": ["shift.created"]})
}

#[tokio::test]
async fn missing_or_unknown_key_is_401_and_both_auth_headers_work() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let (s, e) = app.raw(Method::GET, "/v1/webhooks", &[], Vec::new()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(e["error"]["code"], "unauthorized");
    for h in [
        ("authorization", "Bearer hbk_not_a_key"),
        ("authorization", "Basic dXNlcjpwYXNz"),
        ("authorization", "Bearer "),
        ("api-key", "hbk_not_a_key"),
    ] {
        let (s, _) = app.raw(Method::GET, "/v1/webhooks", &[h], Vec::new()).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{h:?}");
    }
    let bearer = format!("Bearer {}", t.key);
    let lower_bearer = format!("bearer  {} ", t.key);
    for h in [
        vec![("authorization", bearer.as_str())],
        vec![("authorization", lower_bearer.as_str())],
        vec![("api-key", t.key.as_str())],
        vec![("API-KEY", t.key.as_str())],
        // A proxy's Basic credentials do not hide the seeds' API-KEY header.
        vec![
            ("authorization", "Basic dXNlcjpwYXNz"),
            ("api-key", t.key.as_str()),
        ],
    ] {
        let (s, l) = app.raw(Method::GET, "/v1/webhooks", &h, Vec::new()).await;
        assert_eq!(s, StatusCode::OK, "{h:?}: {l}");
        assert_eq!(l, json!({"data": [], "next_cursor": null}));
    }
    // A wrong bearer token is not rescued by a right API-KEY.
    let (s, _) = app
        .raw(
            Method::GET,
            "/v1/webhooks",
            &[("authorization", "Bearer hbk_wrong"), ("api-key", &t.key)],
            Vec::new(),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Unauthenticated operational routes.
    let (s, _) = app.raw(Method::GET, "/healthz", &[], Vec::new()).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn scopes_and_admin_routes_are_enforced_with_403() {
    let app = TestApp::spawn().await;
    let full = app.tenant("acme").await;
    let w = app.webhook(&full, hook("http://127.0.0.1:9/h")).await;
    let id = w["id"].as_str().expect("id");
    // A read-only key of the same tenant.
    let (s, k) = app
        .admin(
            Method::POST,
            "/v1/api-keys",
            Some(json!({"tenant": full.id, "name": "ro", "scopes": ["webhooks:read"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    let ro = Tenant {
        id: full.id.clone(),
        key: k["key"].as_str().expect("key").to_owned(),
    };
    let (s, _) = app.as_tenant(&ro, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .as_tenant(&ro, Method::GET, &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let before = listed(&app, &full).await;
    let forbidden: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            "/v1/webhooks".into(),
            Some(hook("http://127.0.0.1:9/x")),
        ),
        (
            Method::PATCH,
            format!("/v1/webhooks/{id}"),
            Some(json!({"description": "x"})),
        ),
        (Method::DELETE, format!("/v1/webhooks/{id}"), None),
        (Method::GET, format!("/v1/webhooks/{id}/secrets"), None),
        (
            Method::POST,
            format!("/v1/webhooks/{id}/secrets/rotate"),
            Some(json!({})),
        ),
        (
            Method::POST,
            "/v1/events".into(),
            Some(json!({"type": "shift.created", "data": {}})),
        ),
        (
            Method::POST,
            "/v1/event-types".into(),
            Some(json!({"name": "new.type"})),
        ),
        (Method::GET, "/v1/tenants".into(), None),
        (
            Method::POST,
            "/v1/tenants".into(),
            Some(json!({"name": "evil"})),
        ),
        (Method::GET, "/v1/api-keys".into(), None),
    ];
    for (m, path, body) in forbidden {
        let (s, e) = app.as_tenant(&ro, m.clone(), &path, body.clone()).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{m} {path}: {e}");
        assert_eq!(e["error"]["code"], "forbidden");
        assert_eq!(e["error"]["title"], "Forbidden");
        // A full-scope tenant key is still refused on admin routes.
        if path.starts_with("/v1/tenants") || path.starts_with("/v1/api-keys") {
            let (s, _) = app.as_tenant(&full, m, &path, body).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{path} with a tenant key");
        }
    }
    assert_eq!(listed(&app, &full).await, before, "a 403 wrote something");
    let (s, l) = app.admin(Method::GET, "/v1/tenants", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&l), vec![full.id.clone()], "{l}");
}

#[tokio::test]
async fn admin_selects_the_tenant_by_header_and_its_aliases() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let w = app.webhook(&t, hook("http://127.0.0.1:9/h")).await;
    for h in ["X-Tenant-Id", "organization-id", "TENANT"] {
        let (s, l) = app
            .call(Method::GET, "/v1/webhooks", &app.admin, &[(h, &t.id)], None)
            .await;
        assert_eq!(s, StatusCode::OK, "{h}: {l}");
        assert_eq!(ids(&l), vec![w["id"].as_str().expect("id")], "{h}");
    }
    let (s, e) = app.admin(Method::GET, "/v1/webhooks", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (s, _) = app
        .call(
            Method::GET,
            "/v1/webhooks",
            &app.admin,
            &[("x-tenant-id", "ten_nobody")],
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // A tenant key naming another tenant does not get to act for it.
    let other = app.tenant("other").await;
    let (s, _) = app
        .call(
            Method::GET,
            "/v1/webhooks",
            &t.key,
            &[("x-tenant-id", &other.id)],
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn tenants_and_keys_crud_and_the_key_is_shown_once() {
    let app = TestApp::spawn().await;
    let (s, t) = app
        .admin(
            Method::POST,
            "/v1/tenants",
            Some(json!({"id": "acme", "name": "Acme"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    assert_eq!(t["id"], "acme");
    assert_eq!(t["name"], "Acme");
    assert!(t["created_at"].as_str().is_some_and(|c| c.ends_with('Z')));
    let (s, _) = app
        .admin(
            Method::POST,
            "/v1/tenants",
            Some(json!({"id": "acme", "name": "Again"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, g) = app.admin(Method::GET, "/v1/tenants/acme", None).await;
    assert_eq!((s, &g), (StatusCode::OK, &t));
    let (s, k) = app
        .admin(
            Method::POST,
            "/v1/api-keys",
            Some(json!({"tenant": "acme", "name": "ci", "scopes": ["webhooks:read", "webhooks:write"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    let key = k["key"].as_str().expect("key shown on create").to_owned();
    assert!(key.starts_with("hbk_"), "{key}");
    let key_id = k["id"].as_str().expect("key id").to_owned();
    let (_, list) = app.admin(Method::GET, "/v1/api-keys", None).await;
    let (_, one) = app
        .admin(Method::GET, &format!("/v1/api-keys/{key_id}"), None)
        .await;
    for shown in [&list, &one] {
        assert!(
            !shown.to_string().contains(&key),
            "key shown again: {shown}"
        );
    }
    assert_eq!(list["data"][0]["id"], key_id.as_str());
    assert!(list["data"][0].get("key").is_none());
    assert_eq!(one["scopes"], json!(["webhooks:read", "webhooks:write"]));
    let t = Tenant {
        id: "acme".into(),
        key: key.clone(),
    };
    let (s, _) = app.as_tenant(&t, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(s, StatusCode::OK);
    // Bad key bodies list every reason and write nothing.
    let (s, e) = app
        .admin(
            Method::POST,
            "/v1/api-keys",
            Some(json!({"tenant": "nobody", "scopes": ["webhooks:fly"]})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert!(reasons(&e).len() >= 2, "{e}");
    let (_, after) = app.admin(Method::GET, "/v1/api-keys", None).await;
    assert_eq!(after, list);
    // Deleting the key revokes it at once.
    let (s, _) = app
        .admin(Method::DELETE, &format!("/v1/api-keys/{key_id}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.as_tenant(&t, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = app
        .admin(Method::DELETE, &format!("/v1/api-keys/{key_id}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Deleting the tenant removes its keys and its webhooks.
    let t2 = app.tenant("beta").await;
    let w = app.webhook(&t2, hook("http://127.0.0.1:9/h")).await;
    let (s, _) = app
        .admin(Method::DELETE, &format!("/v1/tenants/{}", t2.id), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.as_tenant(&t2, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = app
        .call(
            Method::GET,
            &format!("/v1/webhooks/{}", w["id"].as_str().expect("id")),
            &app.admin,
            &[("x-tenant-id", &t2.id)],
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, tenants) = app.admin(Method::GET, "/v1/tenants", None).await;
    assert_eq!(ids(&tenants), vec!["acme".to_owned()]);
}

#[tokio::test]
async fn the_event_type_catalogue_is_seeded_and_editable() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let (s, l) = app
        .as_tenant(&t, Method::GET, "/v1/event-types", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = l["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    for seeded in ["PROVIDER_CRED_APPROVED", "PATIENT_CREATED", "shift.created"] {
        assert!(names.contains(&seeded), "{seeded} not seeded: {names:?}");
    }
    let (s, e) = app
        .as_tenant(
            &t,
            Method::POST,
            "/v1/event-types",
            Some(
                json!({"name": "donation.hosted.payment_received", "description": "paid",
                "schema": {"type": "object"}}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    assert_eq!(e["schema"], json!({"type": "object"}));
    let (s, _) = app
        .as_tenant(
            &t,
            Method::POST,
            "/v1/event-types",
            Some(json!({"name": "donation.hosted.payment_received"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    app.webhook(
        &t,
        json!({"url": "http://127.0.0.1:9/d", "event_types": ["donation.hosted.payment_received"]}),
    )
    .await;
    let (s, _) = app
        .as_tenant(&t, Method::DELETE, "/v1/event-types/shift.created", None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, e) = app
        .as_tenant(
            &t,
            Method::POST,
            "/v1/webhooks",
            Some(hook("http://127.0.0.1:9/h")),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        reasons(&e),
        vec!["event type \"shift.created\" is not in the catalogue"]
    );
    // Another tenant's catalogue is untouched.
    let other = app.tenant("other").await;
    app.webhook(&other, hook("http://127.0.0.1:9/h")).await;
}
