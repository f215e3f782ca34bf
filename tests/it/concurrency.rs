//! No lost updates: a PATCH racing the engine's 410 disable never re-enables the
//! webhook, and `ETag` / `If-Match` make webhook writes conditional (412 on a stale
//! version, nothing changed).

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Tenant, TestApp};
use crate::receiver::{Reply, TestReceiver};

const WAIT: Duration = Duration::from_secs(15);

/// A call with a tenant's key and extra headers; returns status, `ETag` and JSON.
async fn call_h(
    app: &TestApp,
    t: &Tenant,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, Option<String>, Value) {
    use http_body_util::{BodyExt, Full};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", app.base))
        .header("authorization", format!("Bearer {}", t.key));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let bytes = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            serde_json::to_vec(&b).expect("json")
        }
        None => Vec::new(),
    };
    let req = req
        .body(Full::new(bytes::Bytes::from(bytes)))
        .expect("request");
    let resp = tokio::time::timeout(WAIT, client.request(req))
        .await
        .expect("answer in time")
        .expect("request succeeds");
    let status = resp.status();
    let etag = resp
        .headers()
        .get(http::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        etag,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

/// The webhook's ETag as a GET shows it.
async fn etag(app: &TestApp, t: &Tenant, id: &str) -> String {
    let (s, etag, body) = call_h(
        app,
        t,
        Method::GET,
        &format!("/v1/webhooks/{id}"),
        &[],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    etag.expect("GET gives an ETag")
}

#[tokio::test]
async fn a_patch_racing_a_410_never_re_enables_the_webhook() {
    let app = TestApp::spawn().await;
    let gone = TestReceiver::start_with(Reply::status(410)).await;
    let observer = TestReceiver::start().await;
    let t = app.tenant("acme").await;
    // Every disable is announced as an operational event; its arrival means the
    // engine's disable (and everything before it) is done.
    app.webhook(
        &t,
        json!({"url": observer.url("/ops"), "event_types": ["hookbox.webhook.disabled"]}),
    )
    .await;
    let tries = 30;
    let mut re_enabled = Vec::new();
    let mut lost_patches = Vec::new();
    for i in 0..tries {
        let w = app
            .webhook(
                &t,
                json!({"url": gone.url(&format!("/gone/{i}")), "event_types": ["shift.created"]}),
            )
            .await;
        let id = w["id"].as_str().expect("id").to_owned();
        let path = format!("/v1/webhooks/{id}");
        let announced = || {
            observer
                .received()
                .iter()
                .any(|r| r.json()["data"]["webhook_id"] == id.as_str())
        };
        // PATCHes of only the description leave with the event and keep coming,
        // one at a time, until the engine's 410 disable has been announced: one of
        // them is always in flight when the disable is written.
        let patching = async {
            let deadline = tokio::time::Instant::now() + WAIT;
            let mut last = String::new();
            let mut n = 0;
            while !announced() {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "try {i}: the disable of {id} was never announced"
                );
                n += 1;
                last = format!("try {i}.{n}");
                let (s, body) = app
                    .as_tenant(&t, Method::PATCH, &path, Some(json!({"description": last})))
                    .await;
                assert_eq!(s, StatusCode::OK, "{body}");
            }
            last
        };
        let event = app.event(&t, json!({"type": "shift.created", "data": {"i": i}}));
        let (last, _) = tokio::join!(patching, event);
        let (_, w) = app.as_tenant(&t, Method::GET, &path, None).await;
        if !last.is_empty() && w["description"] != last.as_str() {
            lost_patches.push(id.clone());
        }
        if w["enabled"] != false {
            re_enabled.push(id);
        }
    }
    assert!(
        re_enabled.is_empty(),
        "{} of {tries} webhooks ended re-enabled: {re_enabled:?}",
        re_enabled.len()
    );
    assert!(
        lost_patches.is_empty(),
        "{} of {tries} webhooks lost their last PATCH: {lost_patches:?}",
        lost_patches.len()
    );
}

#[tokio::test]
async fn etags_and_if_match_make_webhook_writes_conditional() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let (s, created, w) = call_h(
        &app,
        &t,
        Method::POST,
        "/v1/webhooks",
        &[],
        Some(json!({"url": "http://127.0.0.1:9/hook", "event_types": ["*"], "description": "v1"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{w}");
    let id = w["id"].as_str().expect("id").to_owned();
    let path = format!("/v1/webhooks/{id}");
    let created = created.expect("POST gives an ETag");
    let first = etag(&app, &t, &id).await;
    assert_eq!(first, created);
    assert!(
        first.starts_with('"') && first.ends_with('"'),
        "strong: {first}"
    );

    // PATCH with the current ETag succeeds and answers the new one.
    let (s, second, body) = call_h(
        &app,
        &t,
        Method::PATCH,
        &path,
        &[("if-match", first.as_str())],
        Some(json!({"description": "v2"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let second = second.expect("PATCH gives an ETag");
    assert_ne!(second, first);
    assert_eq!(etag(&app, &t, &id).await, second);

    // A stale If-Match is 412 in the error shape, and changes nothing.
    let (s, current, body) = call_h(
        &app,
        &t,
        Method::PATCH,
        &path,
        &[("if-match", first.as_str())],
        Some(json!({"description": "lost"})),
    )
    .await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED, "{body}");
    assert_eq!(
        current.as_deref(),
        Some(second.as_str()),
        "412 names the current ETag"
    );
    assert_eq!(body["error"]["code"], "precondition_failed");
    assert!(body["error"]["message"].as_str().is_some());
    let (_, now) = app.as_tenant(&t, Method::GET, &path, None).await;
    assert_eq!(now["description"], "v2");
    assert_eq!(etag(&app, &t, &id).await, second);

    // An invalid body is a 400 listing every reason, stale If-Match or not (a 412
    // would hide them; Schemathesis found it), and changes nothing either.
    let (s, _, body) = call_h(
        &app,
        &t,
        Method::PATCH,
        &path,
        &[("if-match", first.as_str())],
        Some(json!({"description": 5, "ordering": "lifo"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let reasons = body["error"]["reasons"].to_string();
    assert!(
        reasons.contains("description") && reasons.contains("ordering"),
        "{body}"
    );
    assert_eq!(etag(&app, &t, &id).await, second);

    // Weak tags never match; `*` matches any existing webhook.
    let weak = format!("W/{second}");
    let (s, _, _) = call_h(
        &app,
        &t,
        Method::PATCH,
        &path,
        &[("if-match", weak.as_str())],
        Some(json!({"description": "weak"})),
    )
    .await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED);
    let (s, _, body) = call_h(
        &app,
        &t,
        Method::PATCH,
        &path,
        &[("if-match", "*")],
        Some(json!({"description": "v3"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["description"], "v3");
    let third = etag(&app, &t, &id).await;

    // Rotate: stale is 412 and keeps the secret; current succeeds with a new ETag.
    let (_, before) = app
        .as_tenant(&t, Method::GET, &format!("{path}/secrets"), None)
        .await;
    let (s, _, body) = call_h(
        &app,
        &t,
        Method::POST,
        &format!("{path}/secrets/rotate"),
        &[("if-match", second.as_str())],
        Some(json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED, "{body}");
    let (_, after) = app
        .as_tenant(&t, Method::GET, &format!("{path}/secrets"), None)
        .await;
    assert_eq!(after, before, "a refused rotation changes nothing");
    let (s, fourth, body) = call_h(
        &app,
        &t,
        Method::POST,
        &format!("{path}/secrets/rotate"),
        &[("if-match", third.as_str())],
        Some(json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let fourth = fourth.expect("rotate gives an ETag");
    assert_ne!(fourth, third);
    assert_eq!(body["secrets"].as_array().map(Vec::len), Some(2));

    // DELETE: stale is 412 and the webhook stays; current deletes it.
    let (s, _, _) = call_h(
        &app,
        &t,
        Method::DELETE,
        &path,
        &[("if-match", third.as_str())],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED);
    let (s, _) = app.as_tenant(&t, Method::GET, &path, None).await;
    assert_eq!(s, StatusCode::OK, "still there");
    let (s, _, _) = call_h(
        &app,
        &t,
        Method::DELETE,
        &path,
        &[("if-match", fourth.as_str())],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.as_tenant(&t, Method::GET, &path, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // A deleted webhook is 404 even with `*`: only existing ones match.
    let (s, _, _) = call_h(
        &app,
        &t,
        Method::PATCH,
        &path,
        &[("if-match", "*")],
        Some(json!({"description": "ghost"})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_read_right_after_each_write_sees_it() {
    // The registry follows the store's change feed, applied before the writer
    // answers: every GET right after a write shows it.
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    for i in 0..20 {
        let w = app
            .webhook(
                &t,
                json!({"url": "http://127.0.0.1:9/hook", "event_types": ["*"], "description": format!("d{i}")}),
            )
            .await;
        let path = format!("/v1/webhooks/{}", w["id"].as_str().expect("id"));
        let (s, got) = app.as_tenant(&t, Method::GET, &path, None).await;
        assert_eq!(
            (s, &got["description"]),
            (StatusCode::OK, &json!(format!("d{i}")))
        );
        let (s, _) = app
            .as_tenant(&t, Method::PATCH, &path, Some(json!({"enabled": false})))
            .await;
        assert_eq!(s, StatusCode::OK);
        let (_, got) = app.as_tenant(&t, Method::GET, &path, None).await;
        assert_eq!(got["enabled"], false);
        assert_eq!(got["disabled_reason"], "disabled by API");
    }
    let (s, _) = app
        .as_tenant(
            &t,
            Method::POST,
            "/v1/event-types",
            Some(json!({"name": "fresh.type"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    app.event(&t, json!({"type": "fresh.type", "data": {}}))
        .await;
}
