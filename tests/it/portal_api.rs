//! Portal sessions through the API: creation and its validation, revocation,
//! expiry, the routes a portal token may reach (walked from the route table),
//! read-only sessions, tenant isolation, the new delivery-log filters and the
//! recover dry run, and the page's security headers.

use std::time::Duration;

use bytes::Bytes;
use hookbox::api::routes::{Access, ROUTES};
use hookbox::model::{PortalSession, now_ms};
use hookbox::secrets::hash_key;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::helpers::{Tenant, TestApp};
use crate::receiver::{Reply, TestReceiver};

/// Creates a portal session with a tenant's key; returns (status, answer).
async fn open(app: &TestApp, t: &Tenant, body: Value) -> (StatusCode, Value) {
    app.as_tenant(t, Method::POST, "/v1/portal/sessions", Some(body))
        .await
}

/// A portal session's token.
async fn token(app: &TestApp, t: &Tenant, read_only: bool) -> String {
    let (s, v) = open(app, t, json!({"read_only": read_only})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["token"].as_str().expect("token").to_owned()
}

async fn as_portal(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    app.call(method, path, token, &[], body).await
}

#[tokio::test]
async fn sessions_are_created_validated_and_revoked() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let (s, v) = open(&app, &t, json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let token = v["token"].as_str().expect("token");
    assert!(token.starts_with("hbp_"), "{token}");
    assert_eq!(
        v["url"].as_str().expect("url"),
        format!("{}/portal#token={token}", app.base)
    );
    assert_eq!(v["read_only"], false);
    let expires =
        hookbox::model::parse_rfc3339(v["expires_at"].as_str().expect("expiry")).expect("rfc3339");
    let in_an_hour = now_ms() + 3_600_000;
    assert!((in_an_hour - expires).abs() < 60_000, "{v}");
    // Only the hash is stored.
    let store = &app.app.as_ref().expect("running").store;
    let stored = store
        .portal_session(&hash_key(token))
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.tenant, t.id);
    let (s, me) = as_portal(&app, token, Method::GET, "/v1/portal/sessions", None).await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["tenant"], t.id.as_str());

    // Every reason at once, and nothing written.
    let before = store
        .portal_session_count(t.id.clone())
        .await
        .expect("count");
    let (s, e) = open(
        &app,
        &t,
        json!({"read_only": "no", "ttl_seconds": 86401, "extra": 1}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(
        e["error"]["reasons"].as_array().expect("reasons").len(),
        3,
        "{e}"
    );
    for ttl in [json!(0), json!(59), json!(-5), json!("1h"), json!(90000)] {
        let (s, e) = open(&app, &t, json!({ "ttl_seconds": ttl })).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{ttl}: {e}");
    }
    assert_eq!(
        store
            .portal_session_count(t.id.clone())
            .await
            .expect("count"),
        before
    );
    let (s, v) = open(&app, &t, json!({"ttl_seconds": 86400})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    // The admin token acts for a tenant it names.
    let (s, e) = app
        .admin(Method::POST, "/v1/portal/sessions", Some(json!({})))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/portal/sessions",
            &app.admin,
            &[("x-tenant-id", &t.id)],
            Some(json!({"read_only": true})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let admin_made = v["token"].as_str().expect("token").to_owned();

    // A portal token cannot mint sessions, nor revoke them.
    let (s, e) = as_portal(
        &app,
        token,
        Method::POST,
        "/v1/portal/sessions",
        Some(json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    let (s, e) = as_portal(&app, token, Method::DELETE, "/v1/portal/sessions", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");

    // Revoking ends every session of the tenant, with a clear message.
    let (s, _) = app
        .as_tenant(&t, Method::DELETE, "/v1/portal/sessions", None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    for tok in [token, admin_made.as_str()] {
        let (s, e) = as_portal(&app, tok, Method::GET, "/v1/webhooks", None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{e}");
        let msg = e["error"]["message"].as_str().expect("message");
        assert!(msg.contains("revoked"), "{msg}");
    }
    assert_eq!(
        store
            .portal_session_count(t.id.clone())
            .await
            .expect("count"),
        0
    );

    // Deleting the tenant purges its sessions.
    let tok = token_of(&app, &t).await;
    let (s, _) = app
        .admin(Method::DELETE, &format!("/v1/tenants/{}", t.id), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = as_portal(&app, &tok, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store
        .portal_session_count(t.id.clone())
        .await
        .expect("count")
        > 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sessions not purged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn token_of(app: &TestApp, t: &Tenant) -> String {
    token(app, t, false).await
}

#[tokio::test]
async fn an_expired_session_is_refused_with_a_clear_message() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let store = &app.app.as_ref().expect("running").store;
    let token = "hbp_expired-for-the-test";
    store
        .create_portal_session(PortalSession {
            hash: hash_key(token),
            tenant: t.id.clone(),
            read_only: false,
            created_at: now_ms() - 7_200_000,
            expires_at: now_ms() - 1,
        })
        .await
        .expect("stored");
    let (s, e) = as_portal(&app, token, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{e}");
    let msg = e["error"]["message"].as_str().expect("message");
    assert!(msg.contains("expired"), "{msg}");
}

/// Walks the route table: a portal token gets past authorisation exactly on the
/// routes marked `portal`, and is refused (403) everywhere else that needs a
/// caller: admin routes, ingest, event reads, catalogue writes, sessions.
#[tokio::test]
async fn a_portal_token_reaches_only_the_routes_marked_portal() {
    let app = TestApp::spawn().await;
    let t = app.tenant("walk").await;
    let tok = token(&app, &t, false).await;
    let mut portal = 0;
    for r in ROUTES {
        if r.access == Access::Public {
            continue;
        }
        let path = r.path.replace("{id}", "x1").replace("{name}", "x1");
        let body = (r.method == Method::POST || r.method == Method::PATCH).then(|| json!({}));
        let (s, v) = as_portal(&app, &tok, r.method.clone(), &path, body).await;
        if r.portal {
            portal += 1;
            assert!(
                s != StatusCode::FORBIDDEN && s != StatusCode::UNAUTHORIZED,
                "{} {}: {s} {v}",
                r.method,
                r.path
            );
        } else {
            assert_eq!(s, StatusCode::FORBIDDEN, "{} {}: {v}", r.method, r.path);
        }
    }
    assert!(portal >= 15, "only {portal} portal routes");
    for (method, path) in [
        (Method::POST, "/v1/events"),
        (Method::POST, "/v1/events/batch"),
        (Method::GET, "/v1/tenants"),
        (Method::POST, "/v1/api-keys"),
    ] {
        assert!(
            ROUTES
                .iter()
                .any(|r| r.method == method && r.path == path && !r.portal),
            "{method} {path} must not be a portal route"
        );
    }
}

#[tokio::test]
async fn a_read_only_session_reads_and_cannot_write() {
    let app = TestApp::spawn().await;
    let receiver = TestReceiver::start().await;
    let t = app.tenant("ro").await;
    let w = app
        .webhook(
            &t,
            json!({"url": receiver.url("/h"), "event_types": ["PATIENT_CREATED"]}),
        )
        .await;
    let id = w["id"].as_str().expect("id");
    let e = app
        .event(&t, json!({"type": "PATIENT_CREATED", "data": {"n": 1}}))
        .await;
    let dlv = app
        .deliveries_of(&t, e["id"].as_str().expect("event"))
        .await;
    let dlv = dlv[0]["id"].as_str().expect("delivery").to_owned();
    let ro = token(&app, &t, true).await;
    let (s, me) = as_portal(&app, &ro, Method::GET, "/v1/portal/sessions", None).await;
    assert_eq!(
        (s, &me["read_only"]),
        (StatusCode::OK, &json!(true)),
        "{me}"
    );
    for path in [
        "/v1/webhooks".to_owned(),
        format!("/v1/webhooks/{id}"),
        format!("/v1/webhooks/{id}/deliveries"),
        format!("/v1/deliveries/{dlv}"),
        "/v1/event-types".to_owned(),
    ] {
        let (s, v) = as_portal(&app, &ro, Method::GET, &path, None).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
    }
    let writes = [
        (
            Method::POST,
            "/v1/webhooks".to_owned(),
            Some(json!({"url": receiver.url("/x"), "event_types": ["*"]})),
        ),
        (
            Method::PATCH,
            format!("/v1/webhooks/{id}"),
            Some(json!({"enabled": false})),
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
            format!("/v1/webhooks/{id}/test"),
            Some(json!({"event_type": "PATIENT_CREATED"})),
        ),
        (
            Method::POST,
            format!("/v1/webhooks/{id}/recover"),
            Some(json!({"since": "2026-01-01T00:00:00Z"})),
        ),
        (Method::POST, format!("/v1/deliveries/{dlv}/retry"), None),
    ];
    for (method, path, body) in writes {
        let (s, v) = as_portal(&app, &ro, method.clone(), &path, body).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}: {v}");
    }
    let (_, still) = app
        .as_tenant(&t, Method::GET, &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(still["enabled"], true, "nothing was written");

    // A key that only reads gets read-only sessions, and cannot ask for more.
    let reader = app.tenant_with_scopes("reader", &["webhooks:read"]).await;
    let (s, v) = open(&app, &reader, json!({})).await;
    assert_eq!(
        (s, &v["read_only"]),
        (StatusCode::CREATED, &json!(true)),
        "{v}"
    );
    let (s, v) = open(&app, &reader, json!({"read_only": false})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let no_read = app.tenant_with_scopes("ingest", &["events:write"]).await;
    let (s, v) = open(&app, &no_read, json!({"read_only": true})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
}

#[tokio::test]
async fn another_tenants_token_sees_404s() {
    let app = TestApp::spawn().await;
    let receiver = TestReceiver::start().await;
    let a = app.tenant("a").await;
    let b = app.tenant("b").await;
    let w = app
        .webhook(
            &a,
            json!({"url": receiver.url("/h"), "event_types": ["PATIENT_CREATED"]}),
        )
        .await;
    let id = w["id"].as_str().expect("id");
    let e = app
        .event(&a, json!({"type": "PATIENT_CREATED", "data": {}}))
        .await;
    let dlv = app
        .deliveries_of(&a, e["id"].as_str().expect("event"))
        .await;
    let dlv = dlv[0]["id"].as_str().expect("delivery").to_owned();
    let tok_b = token(&app, &b, false).await;
    let calls = [
        (Method::GET, format!("/v1/webhooks/{id}"), None),
        (
            Method::PATCH,
            format!("/v1/webhooks/{id}"),
            Some(json!({"enabled": false})),
        ),
        (Method::DELETE, format!("/v1/webhooks/{id}"), None),
        (Method::GET, format!("/v1/webhooks/{id}/secrets"), None),
        (Method::GET, format!("/v1/webhooks/{id}/deliveries"), None),
        (
            Method::POST,
            format!("/v1/webhooks/{id}/test"),
            Some(json!({"event_type": "PATIENT_CREATED"})),
        ),
        (
            Method::POST,
            format!("/v1/webhooks/{id}/recover"),
            Some(json!({"since": "2026-01-01T00:00:00Z", "dry_run": true})),
        ),
        (Method::GET, format!("/v1/deliveries/{dlv}"), None),
        (Method::POST, format!("/v1/deliveries/{dlv}/retry"), None),
    ];
    for (method, path, body) in calls {
        let (s, v) = as_portal(&app, &tok_b, method.clone(), &path, body).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {path}: {v}");
    }
    let (s, list) = as_portal(&app, &tok_b, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["data"], json!([]), "{list}");
    // Naming another tenant with the header is refused, not honoured.
    let (s, v) = app
        .call(
            Method::GET,
            "/v1/webhooks",
            &tok_b,
            &[("x-tenant-id", &a.id)],
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
}

#[tokio::test]
async fn delivery_log_filters_and_recover_dry_run() {
    let app = TestApp::spawn().await;
    let receiver = TestReceiver::start_with(Reply::status(500).body("nope")).await;
    let t = app.tenant("f").await;
    let w = app
        .webhook(
            &t,
            json!({"url": receiver.url("/h"), "event_types": ["PATIENT_CREATED", "shift.created"]}),
        )
        .await;
    let id = w["id"].as_str().expect("id");
    let start = hookbox::model::rfc3339(now_ms() - 1000);
    for ty in ["PATIENT_CREATED", "shift.created", "shift.created"] {
        let e = app.event(&t, json!({"type": ty, "data": {}})).await;
        let d = app
            .deliveries_of(&t, e["id"].as_str().expect("event"))
            .await;
        let d = d[0]["id"].as_str().expect("delivery").to_owned();
        app.wait_delivery(&t, &d, Duration::from_secs(10), |d| {
            d["status"] == "exhausted"
        })
        .await;
    }
    let list = |q: String| {
        let app = &app;
        let t = &t;
        async move {
            let (s, v) = app
                .as_tenant(
                    t,
                    Method::GET,
                    &format!("/v1/webhooks/{id}/deliveries?{q}"),
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{q}: {v}");
            v["data"].as_array().expect("data").len()
        }
    };
    assert_eq!(list("event_type=shift.created".into()).await, 2);
    assert_eq!(
        list("event_type=PATIENT_CREATED&status=exhausted".into()).await,
        1
    );
    assert_eq!(list("status=succeeded".into()).await, 0);
    assert_eq!(
        list(format!("since={}", start.replace(':', "%3A"))).await,
        3
    );
    assert_eq!(list("until=2020-01-01T00:00:00Z".into()).await, 0);
    assert_eq!(
        list("since=2020-01-01T00:00:00Z&until=2999-01-01T00:00:00Z&limit=2".into()).await,
        2
    );
    let (s, e) = app
        .as_tenant(
            &t,
            Method::GET,
            &format!("/v1/webhooks/{id}/deliveries?since=yesterday&until=x&status=meh&event_type="),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(
        e["error"]["reasons"].as_array().expect("reasons").len(),
        4,
        "{e}"
    );

    // The dry run counts and changes nothing; the real run re-queues that many.
    let recover = |body: Value| {
        let app = &app;
        let t = &t;
        async move {
            app.as_tenant(
                t,
                Method::POST,
                &format!("/v1/webhooks/{id}/recover"),
                Some(body),
            )
            .await
        }
    };
    let (s, dry) = recover(json!({"since": start, "dry_run": true})).await;
    assert_eq!(s, StatusCode::OK, "{dry}");
    assert_eq!(dry, json!({"requeued": 3, "dry_run": true}));
    assert_eq!(
        list("status=exhausted".into()).await,
        3,
        "the dry run changed nothing"
    );
    let (s, e) = recover(json!({"since": start, "dry_run": "yes"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (s, real) = recover(json!({"since": start})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{real}");
    assert_eq!(real, json!({"requeued": 3, "dry_run": false}));
}

/// GET with a plain client; returns status, headers and body.
async fn get(url: &str) -> (StatusCode, http::HeaderMap, Bytes) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = Request::get(url)
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .expect("in time")
        .expect("answer");
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (parts.status, parts.headers, bytes)
}

#[tokio::test]
async fn the_page_is_served_with_a_strict_policy_and_branding() {
    let app = TestApp::spawn_with(|c| {
        c.portal.name = "Acme <Hooks>".into();
        c.portal.accent = "#ff0066".into();
        c.portal.logo_url = "https://cdn.example.com/logo.png".into();
        c.portal.frame_ancestors = vec!["https://app.example.com".into()];
    })
    .await;
    for path in [
        "/portal",
        "/portal/",
        "/portal/webhooks/wh_1",
        "/portal/deliveries/dlv_1",
    ] {
        let (s, h, body) = get(&format!("{}{path}", app.base)).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        assert_eq!(h["content-type"], "text/html; charset=utf-8");
        let csp = h["content-security-policy"].to_str().expect("csp");
        for part in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' https://cdn.example.com",
            "connect-src 'self'",
            "frame-ancestors https://app.example.com",
            "base-uri 'none'",
            "form-action 'none'",
        ] {
            assert!(csp.contains(part), "{csp} lacks {part}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
        let html = String::from_utf8_lossy(&body);
        assert!(html.contains("Acme &lt;Hooks&gt;"), "{html}");
        assert!(
            !html.contains("<script>") && !html.contains(" style="),
            "{html}"
        );
    }
    let (s, h, css) = get(&format!("{}/portal/assets/brand.css", app.base)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        h["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/css")
    );
    assert!(String::from_utf8_lossy(&css).contains("--accent: #ff0066"));
    let (s, h, _) = get(&format!("{}/portal/assets/app.js", app.base)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        h["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/javascript")
    );
    assert!(
        h["cache-control"]
            .to_str()
            .expect("cache")
            .contains("max-age")
    );
    let (s, _, _) = get(&format!("{}/portal/assets/nope.js", app.base)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Without frame_ancestors nobody may frame the page.
    let plain = TestApp::spawn().await;
    let (_, h, _) = get(&format!("{}/portal", plain.base)).await;
    let csp = h["content-security-policy"].to_str().expect("csp");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(h["x-frame-options"], "DENY");
}
