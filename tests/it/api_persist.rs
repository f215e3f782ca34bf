//! Persistence through the API: a restart on the same data dir keeps tenants, keys,
//! catalogues and webhooks; secrets are not readable in the redb file; the admin
//! token file is private.

use http::{Method, StatusCode};
use serde_json::json;

use crate::api::{S1, S2, ids, listed};
use crate::helpers::TestApp;

#[tokio::test]
async fn a_restart_keeps_everything() {
    let app = TestApp::spawn().await;
    let admin = app.admin.clone();
    let t = app.tenant("acme").await;
    let (s, _) = app
        .as_tenant(
            &t,
            Method::POST,
            "/v1/event-types",
            Some(json!({"name": "order.paid", "description": "paid"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = app
        .as_tenant(
            &t,
            Method::POST,
            "/v1/event-types",
            Some(json!({"name": "order.gone"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = app
        .as_tenant(&t, Method::DELETE, "/v1/event-types/order.gone", None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let kept = app
        .webhook(
            &t,
            json!({"url": "http://127.0.0.1:9/a", "event_types": ["order.paid", "shift.*"],
                "headers": {"X-Api-Key": "k1"}, "secrets": [S1],
                "oauth": {"token_url": "http://127.0.0.1:9/token", "client_id": "c",
                    "client_secret": "cs"}, "metadata": {"team": "ops"}}),
        )
        .await;
    let kid = kept["id"].as_str().expect("id").to_owned();
    let (s, _) = app
        .as_tenant(
            &t,
            Method::PATCH,
            &format!("/v1/webhooks/{kid}"),
            Some(json!({"description": "patched", "enabled": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .as_tenant(
            &t,
            Method::POST,
            &format!("/v1/webhooks/{kid}/secrets/rotate"),
            Some(json!({"secret": S2})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let gone = app
        .webhook(
            &t,
            json!({"url": "http://127.0.0.1:9/b", "event_types": ["order.paid"]}),
        )
        .await;
    let gid = gone["id"].as_str().expect("id").to_owned();
    let (s, _) = app
        .as_tenant(&t, Method::DELETE, &format!("/v1/webhooks/{gid}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // A deleted tenant stays deleted, with its key and webhook.
    let dead = app.tenant("dead").await;
    let dead_hook = app
        .webhook(
            &dead,
            json!({"url": "http://127.0.0.1:9/d", "event_types": ["shift.created"]}),
        )
        .await;
    let dead_path = format!("/v1/webhooks/{}", dead_hook["id"].as_str().expect("id"));
    let (s, _) = app
        .admin(Method::DELETE, &format!("/v1/tenants/{}", dead.id), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    let (_, tenants) = app.admin(Method::GET, "/v1/tenants", None).await;
    let (_, keys) = app.admin(Method::GET, "/v1/api-keys", None).await;
    let (_, types) = app
        .as_tenant(&t, Method::GET, "/v1/event-types", None)
        .await;
    let (_, one) = app
        .as_tenant(&t, Method::GET, &format!("/v1/webhooks/{kid}"), None)
        .await;
    let (_, secrets) = app
        .as_tenant(
            &t,
            Method::GET,
            &format!("/v1/webhooks/{kid}/secrets"),
            None,
        )
        .await;
    let list = listed(&app, &t).await;
    assert_eq!(ids(&list), vec![kid.clone()]);

    let app = app.restart().await;
    assert_eq!(app.admin, admin, "the admin token is kept in the data dir");
    assert_eq!(app.admin(Method::GET, "/v1/tenants", None).await.1, tenants);
    assert_eq!(app.admin(Method::GET, "/v1/api-keys", None).await.1, keys);
    let (s, types_after) = app
        .as_tenant(&t, Method::GET, "/v1/event-types", None)
        .await;
    assert_eq!(s, StatusCode::OK, "the key still works");
    assert_eq!(types_after, types);
    assert!(!types_after.to_string().contains("order.gone"));
    assert_eq!(listed(&app, &t).await, list);
    let (_, one_after) = app
        .as_tenant(&t, Method::GET, &format!("/v1/webhooks/{kid}"), None)
        .await;
    assert_eq!(one_after, one);
    assert_eq!(one_after["description"], "patched");
    assert_eq!(one_after["enabled"], false);
    let (_, secrets_after) = app
        .as_tenant(
            &t,
            Method::GET,
            &format!("/v1/webhooks/{kid}/secrets"),
            None,
        )
        .await;
    assert_eq!(secrets_after, secrets);
    assert_eq!(secrets_after["secrets"], json!([S2, S1]));
    let (s, _) = app
        .as_tenant(&t, Method::GET, &format!("/v1/webhooks/{gid}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "a deleted webhook came back");
    let (s, _) = app
        .as_tenant(&dead, Method::GET, "/v1/webhooks", None)
        .await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "a deleted tenant's key came back"
    );
    let (s, _) = app
        .call(
            Method::GET,
            &dead_path,
            &app.admin,
            &[("x-tenant-id", &dead.id)],
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "a deleted tenant came back");
}

#[tokio::test]
async fn secrets_are_not_readable_in_the_redb_file() {
    const HEADER_VALUE: &str = "hdr-value-7f3a9c1e5b";
    const CLIENT_SECRET: &str = "oauth-client-secret-2d8e4b6a";
    const TOKEN_HEADER: &str = "token-header-value-9c1e7f3a";
    let mut app = TestApp::spawn_redb_with(|_| {}).await;
    let t = app.tenant("acme").await;
    app.webhook(
        &t,
        json!({"url": "http://127.0.0.1:9/a", "event_types": ["shift.created"],
            "headers": {"X-Api-Key": HEADER_VALUE}, "secrets": [S1, S2],
            "oauth_configuration": {"token_url": "http://127.0.0.1:9/token",
                "client_id": "client-id", "client_secret": CLIENT_SECRET,
                "headers": {"X-Token-Extra": TOKEN_HEADER}}}),
    )
    .await;
    let generated = app
        .webhook(
            &t,
            json!({"url": "http://127.0.0.1:9/b", "event_types": ["shift.created"]}),
        )
        .await;
    let generated = generated["secrets"][0].as_str().expect("secret").to_owned();
    let admin = app.admin.clone();
    let key = t.key.clone();
    app.stop().await;
    let bytes = std::fs::read(app.data_file()).expect("data file");
    assert!(bytes.len() > 1000, "the data file is empty?");
    let plain = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    for secret in [
        HEADER_VALUE,
        CLIENT_SECRET,
        TOKEN_HEADER,
        S1,
        S2,
        &S1[6..],
        &generated,
        &generated[6..],
        &admin,
        &key,
    ] {
        assert!(!plain(secret), "{secret} is readable in the redb file");
    }
    // Sanity check of the search itself: tenant names are stored in the clear.
    assert!(plain("acme"), "the byte search finds nothing at all");
}

#[cfg(unix)]
#[tokio::test]
async fn the_admin_token_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn().await;
    let path = app.dir.path().join("admin-token");
    let meta = std::fs::metadata(&path).expect("admin-token exists");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&path).expect("readable by us");
    assert_eq!(text.trim(), app.admin);
    let (s, _) = app.admin(Method::GET, "/v1/tenants", None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn a_deleted_seeded_event_type_stays_deleted_after_a_restart() {
    let app = TestApp::spawn().await;
    let t = app.tenant("seeded").await;
    let (s, _) = app
        .as_tenant(&t, Method::DELETE, "/v1/event-types/shift.created", None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let app = app.restart().await;
    let (s, list) = app
        .as_tenant(&t, Method::GET, "/v1/event-types", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = list["data"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(!names.contains(&"shift.created"), "{names:?}");
    assert!(names.contains(&"PATIENT_CREATED"), "{names:?}");
}
