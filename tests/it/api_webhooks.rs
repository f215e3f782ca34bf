//! Webhook API tests (issue #2): get, PATCH, soft delete, cursor pagination,
//! secrets and rotation, validation with every reason, body limits (413/415/400)
//! that write nothing, and tenant isolation.

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api::{S1, S2, S3, assert_generated_secret, hook, ids, listed, reasons};
use crate::helpers::TestApp;

/// POSTs a JSON webhook body of about `size` bytes with chunked transfer encoding
/// over a raw socket; returns the status code and the raw answer.
async fn chunked_post(app: &TestApp, key: &str, size: usize) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://");
    let mut sock = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let body = format!(
        r#"{{"url": "http://127.0.0.1:9/h", "event_types": ["shift.created"], "description": "{}"}}"#,
        "x".repeat(size)
    );
    let mut req = format!(
        "POST /v1/webhooks HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {key}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    for chunk in body.as_bytes().chunks(512) {
        req.push_str(&format!("{:x}\r\n", chunk.len()));
        req.push_str(std::str::from_utf8(chunk).expect("ascii"));
        req.push_str("\r\n");
    }
    req.push_str("0\r\n\r\n");
    // The server may answer and close before reading everything; a failed write
    // then is fine, the answer is what counts.
    let _ = sock.write_all(req.as_bytes()).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        sock.read_to_end(&mut answer),
    )
    .await
    .expect("answer within 10 s");
    if read.is_err() && answer.is_empty() {
        panic!("no answer: {read:?}");
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn webhook_lifecycle_get_patch_soft_delete() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let w = app
        .webhook(
            &t,
            json!({"url": "http://127.0.0.1:9/h", "event_types": ["shift.*", "PATIENT_CREATED"],
                "description": "first", "headers": {"X-Api-Key": "abc123"},
                "metadata": {"team": "ops"}, "rate_limit_per_second": 5}),
        )
        .await;
    let id = w["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("wh_"), "{id}");
    assert_eq!(w["headers"]["X-Api-Key"], "abc123", "create reveals");
    assert_eq!(w["enabled"], true);
    assert_eq!(w["disabled_reason"], Value::Null);
    let path = format!("/v1/webhooks/{id}");
    let (s, g) = app.as_tenant(&t, Method::GET, &path, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(g["headers"]["X-Api-Key"], "****");
    assert_eq!(g["secrets"], json!(["****"]));
    assert_eq!(g["event_types"], json!(["shift.*", "PATIENT_CREATED"]));
    // A partial update changes only what it names.
    let (s, p) = app
        .as_tenant(
            &t,
            Method::PATCH,
            &path,
            Some(json!({"description": "second", "enabled": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["description"], "second");
    assert_eq!(p["enabled"], false);
    assert!(p["disabled_reason"].is_string(), "{p}");
    for same in [
        "url",
        "event_types",
        "headers",
        "metadata",
        "rate_limit_per_second",
        "created_at",
        "secrets",
    ] {
        assert_eq!(p[same], g[same], "{same} changed");
    }
    let (_, g2) = app.as_tenant(&t, Method::GET, &path, None).await;
    assert_eq!(g2, p);
    // An invalid patch changes nothing.
    let (s, e) = app
        .as_tenant(
            &t,
            Method::PATCH,
            &path,
            Some(json!({"description": "third", "url": "ftp://x", "secrets": [S1]})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(reasons(&e).len(), 2, "{e}");
    let (_, g3) = app.as_tenant(&t, Method::GET, &path, None).await;
    assert_eq!(g3, p);
    // Soft delete: 204, then 404 everywhere, and not listed.
    let (s, _) = app.as_tenant(&t, Method::DELETE, &path, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    for (m, p, b) in [
        (Method::GET, path.clone(), None),
        (Method::DELETE, path.clone(), None),
        (
            Method::PATCH,
            path.clone(),
            Some(json!({"description": "x"})),
        ),
        (Method::GET, format!("{path}/secrets"), None),
        (
            Method::POST,
            format!("{path}/secrets/rotate"),
            Some(json!({})),
        ),
    ] {
        let (s, e) = app.as_tenant(&t, m.clone(), &p, b).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{m} {p}: {e}");
        assert_eq!(e["error"]["code"], "not_found");
    }
    assert!(ids(&listed(&app, &t).await).is_empty());
}

#[tokio::test]
async fn listing_paginates_with_a_cursor_over_several_pages() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let mut created = Vec::new();
    for i in 0..7 {
        let w = app
            .webhook(&t, hook(&format!("http://127.0.0.1:9/h{i}")))
            .await;
        created.push(w["id"].as_str().expect("id").to_owned());
    }
    // A deleted one is skipped by every page.
    let gone = created.remove(3);
    let (s, _) = app
        .as_tenant(&t, Method::DELETE, &format!("/v1/webhooks/{gone}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut path = "/v1/webhooks?limit=2".to_owned();
    loop {
        let (s, page) = app.as_tenant(&t, Method::GET, &path, None).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        pages += 1;
        let got = ids(&page);
        assert!(got.len() <= 2, "{page}");
        for w in page["data"].as_array().expect("data") {
            assert_eq!(w["secrets"], json!(["****"]), "list masks secrets");
        }
        seen.extend(got);
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/webhooks?limit=2&cursor={c}"),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 3);
    let mut want = created.clone();
    want.sort();
    assert_eq!(seen, want, "every live webhook once, in id order");
    let (s, page) = app.as_tenant(&t, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&page).len(), 6);
    assert_eq!(page["next_cursor"], Value::Null);
    for bad in ["limit=0", "limit=1001", "limit=abc"] {
        let (s, _) = app
            .as_tenant(&t, Method::GET, &format!("/v1/webhooks?{bad}"), None)
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn secrets_are_revealed_with_write_scope_and_rotate_keeps_two() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let w = app.webhook(&t, hook("http://127.0.0.1:9/h")).await;
    let id = w["id"].as_str().expect("id");
    let first = w["secrets"][0].as_str().expect("secret").to_owned();
    assert_generated_secret(&first);
    assert_eq!(w["secrets"].as_array().map(Vec::len), Some(1));
    let (s, r) = app
        .as_tenant(&t, Method::GET, &format!("/v1/webhooks/{id}/secrets"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r, json!({"secrets": [first]}));
    let (s, rot) = app
        .as_tenant(
            &t,
            Method::POST,
            &format!("/v1/webhooks/{id}/secrets/rotate"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{rot}");
    let pair: Vec<String> = rot["secrets"]
        .as_array()
        .expect("secrets")
        .iter()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect();
    assert_eq!(pair.len(), 2, "{rot}");
    assert_generated_secret(&pair[0]);
    assert_ne!(pair[0], first, "the new secret comes first");
    assert_eq!(pair[1], first);
    let (_, g) = app
        .as_tenant(&t, Method::GET, &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(g["secrets"], json!(["****", "****"]));
    let (_, r) = app
        .as_tenant(&t, Method::GET, &format!("/v1/webhooks/{id}/secrets"), None)
        .await;
    assert_eq!(r["secrets"], json!(pair));
    // Rotating to a given secret drops the oldest; grace 0 drops the previous too.
    let (s, rot) = app
        .as_tenant(
            &t,
            Method::POST,
            &format!("/v1/webhooks/{id}/secrets/rotate"),
            Some(json!({"secret": S3})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{rot}");
    assert_eq!(rot["secrets"], json!([S3, pair[0]]));
    let (s, rot) = app
        .as_tenant(
            &t,
            Method::POST,
            &format!("/v1/webhooks/{id}/secrets/rotate"),
            Some(json!({"secret": S1, "grace_seconds": 0})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{rot}");
    assert_eq!(rot["secrets"], json!([S1]));
    let (s, e) = app
        .as_tenant(
            &t,
            Method::POST,
            &format!("/v1/webhooks/{id}/secrets/rotate"),
            Some(json!({"secret": "whsec_short", "grace_seconds": -1})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(reasons(&e).len(), 2, "{e}");
    let (_, r) = app
        .as_tenant(&t, Method::GET, &format!("/v1/webhooks/{id}/secrets"), None)
        .await;
    assert_eq!(
        r["secrets"],
        json!([S1]),
        "a refused rotation changed secrets"
    );
}

#[tokio::test]
async fn one_400_lists_every_validation_reason_and_writes_nothing() {
    let app = TestApp::spawn_with(|c| c.security.require_https = true).await;
    let t = app.tenant("acme").await;
    let before = listed(&app, &t).await;
    let body = json!({
        "url": "http://example.com/hook",
        "event_types": ["PROVIDER_CRED_APPROVED", "NOT_A_TYPE", "bad*"],
        "secrets": [S1, "whsec_!!!", S2],
        "headers": {"X-Ok": "a\r\nb", "webhook-signature": "x", "bad name": "v",
            "Content-Type": "text/plain", "Authorization": "Basic x"},
        "oauth": {"token_url": "ftp://auth.example.com/token", "client_id": "c"},
        "notification_email": "not an email",
        "colour": "blue",
        "rate_limit_per_second": 0,
        "enabled": "yes",
        "metadata": {"k": 1},
    });
    let (s, e) = app
        .as_tenant(&t, Method::POST, "/v1/webhooks", Some(body))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(e["error"]["code"], "bad_request");
    let r = reasons(&e);
    for want in [
        "url must be https",
        "event type \"NOT_A_TYPE\" is not in the catalogue",
        "secrets must contain no more than 2 elements",
        "secrets[1] must be \"whsec_\" followed by standard base64",
        "header \"X-Ok\" value must not contain CR, LF or NUL",
        "header \"webhook-signature\" is reserved",
        "header name \"bad name\" is not a valid token",
        "header \"Content-Type\" is reserved",
        "header \"Authorization\" is reserved when oauth is set",
        "notification_email is not a valid email address",
        "unknown field \"colour\"",
        "rate_limit_per_second must be an integer between 1 and 100000",
        "enabled must be a boolean",
    ] {
        assert!(r.iter().any(|x| x == want), "missing {want:?} in {r:#?}");
    }
    for fragment in ["bad*", "oauth.token_url", "oauth.client_secret", "metadata"] {
        assert!(
            r.iter().any(|x| x.contains(fragment)),
            "no reason about {fragment} in {r:#?}"
        );
    }
    assert!(!e.to_string().contains("a\\r\\nb"), "header value echoed");
    // Blocked literal hosts and missing fields.
    let (s, e) = app
        .as_tenant(
            &t,
            Method::POST,
            "/v1/webhooks",
            Some(json!({"url": "https://169.254.169.254/latest"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let r = reasons(&e);
    assert!(r.iter().any(|x| x.contains("169.254.169.254")), "{r:?}");
    assert!(r.contains(&"event_types is required".to_owned()), "{r:?}");
    assert_eq!(listed(&app, &t).await, before, "a 400 wrote something");
}

#[tokio::test]
async fn bad_bodies_get_413_415_400_and_write_nothing() {
    let app = TestApp::spawn_with(|c| c.max_body_bytes = 2048).await;
    let t = app.tenant("acme").await;
    let auth = format!("Bearer {}", t.key);
    let json_type = ("content-type", "application/json");
    let big = serde_json::to_vec(&json!({"url": "http://127.0.0.1:9/h",
        "event_types": ["shift.created"], "description": "x".repeat(3000)}))
    .expect("json");
    // (headers, body, expected status, expected error code)
    type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<u8>, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("authorization", &auth), json_type],
            big,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            vec![("authorization", &auth), ("content-type", "text/plain")],
            serde_json::to_vec(&hook("http://127.0.0.1:9/h")).expect("json"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            vec![("authorization", &auth)],
            serde_json::to_vec(&hook("http://127.0.0.1:9/h")).expect("json"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            vec![("authorization", &auth), json_type],
            br#"{"url": "http://127.0.0.1:9/h", "event_types": ["#.to_vec(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            vec![("authorization", &auth), json_type],
            b"[1, 2]".to_vec(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
    ];
    for (headers, body, status, code) in cases {
        let (s, e) = app.raw(Method::POST, "/v1/webhooks", &headers, body).await;
        assert_eq!(s, status, "{e}");
        assert_eq!(e["error"]["code"], code, "{e}");
    }
    // A chunked body (no Content-Length) is cut off at the limit too.
    let (s, e) = chunked_post(&app, &t.key, 3000).await;
    assert_eq!(s, 413, "{e}");
    assert!(e.contains("payload_too_large"), "{e}");
    // Anonymous large bodies are refused before they are read.
    let (s, _) = app
        .raw(
            Method::POST,
            "/v1/webhooks",
            &[json_type],
            vec![b' '; 100_000],
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(ids(&listed(&app, &t).await).is_empty(), "an error wrote");
    let (s, e) = app.as_tenant(&t, Method::GET, "/v1/nope", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
    let (s, e) = app.as_tenant(&t, Method::PUT, "/v1/webhooks", None).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{e}");
}

#[tokio::test]
async fn a_tenant_can_neither_see_nor_change_another_tenants_webhooks() {
    let app = TestApp::spawn().await;
    let a = app.tenant("a").await;
    let b = app.tenant("b").await;
    let wa = app
        .webhook(
            &a,
            json!({"url": "http://127.0.0.1:9/a", "event_types": ["shift.created"], "description": "A's"}),
        )
        .await;
    let id = wa["id"].as_str().expect("id");
    let path = format!("/v1/webhooks/{id}");
    let (_, a_before) = app.as_tenant(&a, Method::GET, &path, None).await;
    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, path.clone(), None),
        (
            Method::PATCH,
            path.clone(),
            Some(json!({"description": "B's now"})),
        ),
        (Method::DELETE, path.clone(), None),
        (Method::GET, format!("{path}/secrets"), None),
        (
            Method::POST,
            format!("{path}/secrets/rotate"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("{path}/test"),
            Some(json!({"event_type": "shift.created", "message": "hi"})),
        ),
        (Method::GET, format!("{path}/deliveries"), None),
    ];
    for (m, p, body) in attempts {
        let (s, e) = app.as_tenant(&b, m.clone(), &p, body.clone()).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "B: {m} {p}: {e}");
        // The admin acting for B is held to the same rule.
        let (s, _) = app
            .call(m.clone(), &p, &app.admin, &[("x-tenant-id", &b.id)], body)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "admin for B: {m} {p}");
    }
    assert!(ids(&listed(&app, &b).await).is_empty());
    let (s, a_after) = app.as_tenant(&a, Method::GET, &path, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(a_after, a_before, "B changed A's webhook");
    assert_eq!(ids(&listed(&app, &a).await), vec![id.to_owned()]);
}
