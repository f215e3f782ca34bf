//! Issue 4 tests: OAuth2 client credentials for receivers, and test events.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;

use crate::delivery::verify_official;
use crate::helpers::TestApp;
use crate::receiver::{Reply, TestReceiver};

const WAIT: Duration = Duration::from_secs(10);

fn token(name: &str, expires_in: u64) -> Reply {
    Reply::status(200)
        .header("content-type", "application/json")
        .body(&format!(
            r#"{{"access_token":"{name}","token_type":"Bearer","expires_in":{expires_in}}}"#
        ))
}

async fn oauth_webhook(
    app: &TestApp,
    t: &crate::helpers::Tenant,
    rx: &TestReceiver,
    auth: &TestReceiver,
) -> serde_json::Value {
    app.webhook(
        t,
        json!({
            "url": rx.url("/hook"),
            "event_types": ["PROVIDER_CRED_APPROVED"],
            "oauth_configuration": {
                "token_url": auth.url("/oauth/token"),
                "client_id": "my-client-id",
                "client_secret": "my client&secret",
                "scope": "resource.read",
                "headers": {"X-Domain-Name": "example.com"}
            }
        }),
    )
    .await
}

#[tokio::test]
async fn one_token_serves_many_deliveries_and_the_request_is_form_encoded() {
    let app = TestApp::spawn().await;
    let rx = TestReceiver::start().await;
    let auth = TestReceiver::start_with(token("tok-1", 3600)).await;
    let t = app.tenant("cred").await;
    oauth_webhook(&app, &t, &rx, &auth).await;
    for i in 0..5 {
        app.event(
            &t,
            json!({"type": "PROVIDER_CRED_APPROVED", "data": {"n": i}}),
        )
        .await;
    }
    let got = rx.wait_for(5, WAIT).await;
    assert!(
        got.iter()
            .all(|r| r.header("authorization") == Some("Bearer tok-1"))
    );
    let token_requests = auth.received();
    assert_eq!(token_requests.len(), 1, "one token serves every delivery");
    let tr = &token_requests[0];
    assert_eq!(tr.path, "/oauth/token");
    assert_eq!(
        tr.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(tr.header("x-domain-name"), Some("example.com"));
    let form = std::str::from_utf8(&tr.body).expect("utf8 form");
    let mut fields: Vec<&str> = form.split('&').collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "client_id=my-client-id",
            "client_secret=my+client%26secret",
            "grant_type=client_credentials",
            "scope=resource.read"
        ]
    );
}

#[tokio::test]
async fn an_expired_token_is_refreshed() {
    let app = TestApp::spawn().await;
    let rx = TestReceiver::start().await;
    // A one-second token is refreshed a tenth of its life early, at 0.9 s.
    let auth = TestReceiver::start_with(token("tok-later", 3600)).await;
    auth.script([token("tok-short", 1)]);
    let t = app.tenant("cred").await;
    oauth_webhook(&app, &t, &rx, &auth).await;
    app.event(&t, json!({"type": "PROVIDER_CRED_APPROVED", "data": {}}))
        .await;
    rx.wait_for(1, WAIT).await;
    // Let the token's lifetime pass: expiry is the behaviour under test.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    app.event(&t, json!({"type": "PROVIDER_CRED_APPROVED", "data": {}}))
        .await;
    let got = rx.wait_for(2, WAIT).await;
    assert_eq!(got[0].header("authorization"), Some("Bearer tok-short"));
    assert_eq!(got[1].header("authorization"), Some("Bearer tok-later"));
    assert_eq!(auth.received().len(), 2);
}

#[tokio::test]
async fn a_401_triggers_exactly_one_refresh() {
    let app = TestApp::spawn().await;
    let rx = TestReceiver::start().await;
    rx.script([Reply::status(401)]);
    let auth = TestReceiver::start_with(token("tok-2", 3600)).await;
    auth.script([token("tok-1", 3600)]);
    let t = app.tenant("cred").await;
    oauth_webhook(&app, &t, &rx, &auth).await;
    let e = app
        .event(&t, json!({"type": "PROVIDER_CRED_APPROVED", "data": {}}))
        .await;
    let got = rx.wait_for(2, WAIT).await;
    assert_eq!(got[0].header("authorization"), Some("Bearer tok-1"));
    assert_eq!(got[1].header("authorization"), Some("Bearer tok-2"));
    assert_eq!(auth.received().len(), 2, "exactly one refresh");
    let id = app.deliveries_of(&t, e["id"].as_str().expect("id")).await[0]["id"]
        .as_str()
        .expect("delivery id")
        .to_owned();
    let d = app
        .wait_delivery(&t, &id, WAIT, |d| d["status"] == "succeeded")
        .await;
    assert_eq!(d["attempts"].as_array().map(Vec::len), Some(1), "{d}");
}

#[tokio::test]
async fn a_failing_token_endpoint_is_an_attempt_failure_with_a_reason() {
    let app = TestApp::spawn_with(|c| {
        c.delivery.retry_schedule = vec![Duration::ZERO, Duration::from_secs(3600)];
    })
    .await;
    let rx = TestReceiver::start().await;
    let auth = TestReceiver::start_with(Reply::status(500).body("token service down")).await;
    let t = app.tenant("cred").await;
    oauth_webhook(&app, &t, &rx, &auth).await;
    let e = app
        .event(&t, json!({"type": "PROVIDER_CRED_APPROVED", "data": {}}))
        .await;
    let id = app.deliveries_of(&t, e["id"].as_str().expect("id")).await[0]["id"]
        .as_str()
        .expect("delivery id")
        .to_owned();
    let d = app
        .wait_delivery(&t, &id, WAIT, |d| {
            d["attempts"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    assert_eq!(d["status"], "failed");
    let err = d["attempts"][0]["error"].as_str().unwrap_or_default();
    assert!(err.contains("OAuth token request failed"), "{err}");
    assert!(err.contains("500"), "{err}");
    assert!(rx.received().is_empty(), "no request without a token");
}

#[tokio::test]
async fn changing_oauth_settings_drops_the_cached_token() {
    let app = TestApp::spawn().await;
    let rx = TestReceiver::start().await;
    let auth = TestReceiver::start_with(token("tok-new", 3600)).await;
    auth.script([token("tok-old", 3600)]);
    let t = app.tenant("cred").await;
    let w = oauth_webhook(&app, &t, &rx, &auth).await;
    app.event(&t, json!({"type": "PROVIDER_CRED_APPROVED", "data": {}}))
        .await;
    rx.wait_for(1, WAIT).await;
    let (s, body) = app
        .as_tenant(
            &t,
            Method::PATCH,
            &format!("/v1/webhooks/{}", w["id"].as_str().expect("id")),
            Some(json!({"oauth": {
                "token_url": auth.url("/oauth/token"),
                "client_id": "other-client",
                "client_secret": "s2"
            }})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    app.event(&t, json!({"type": "PROVIDER_CRED_APPROVED", "data": {}}))
        .await;
    let got = rx.wait_for(2, WAIT).await;
    assert_eq!(got[1].header("authorization"), Some("Bearer tok-new"));
    let last = auth.received();
    assert_eq!(last.len(), 2);
    assert!(
        std::str::from_utf8(&last[1].body)
            .unwrap_or("")
            .contains("client_id=other-client")
    );
}

#[tokio::test]
async fn a_test_event_is_sent_signed_and_logged() {
    let app = TestApp::spawn().await;
    let rx = TestReceiver::start_with(Reply::status(200).body("thanks")).await;
    let t = app.tenant("cred").await;
    let w = app
        .webhook(
            &t,
            json!({"url": rx.url("/hook"), "event_types": ["PROVIDER_CRED_APPROVED"]}),
        )
        .await;
    let id = w["id"].as_str().expect("id");
    let secret = w["secrets"][0].as_str().expect("secret");
    // The seed's route and field names.
    let (s, attempt) = app
        .as_tenant(
            &t,
            Method::POST,
            &format!("/v1/webhooks/{id}/test-event"),
            Some(json!({"eventType": "PROVIDER_CRED_APPROVED", "message": "hello"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{attempt}");
    assert_eq!(attempt["status_code"], 200);
    assert_eq!(attempt["trigger"], "test");
    assert_eq!(attempt["response_body"], "thanks");
    assert!(attempt["latency_ms"].is_u64());
    let got = rx.received();
    assert_eq!(got.len(), 1, "sent right away");
    assert!(verify_official(secret, &got[0]));
    assert_eq!(got[0].json()["data"]["message"], "hello");
    assert_eq!(got[0].json()["type"], "PROVIDER_CRED_APPROVED");
    let (_, log) = app
        .as_tenant(
            &t,
            Method::GET,
            &format!("/v1/webhooks/{id}/deliveries"),
            None,
        )
        .await;
    assert_eq!(log["data"][0]["status"], "succeeded", "{log}");
    let dlv = log["data"][0]["id"].as_str().expect("delivery id");
    let (_, d) = app
        .as_tenant(&t, Method::GET, &format!("/v1/deliveries/{dlv}"), None)
        .await;
    assert_eq!(d["attempts"][0]["trigger"], "test");

    // A failing receiver: the attempt is returned with its status, and not retried.
    rx.script([Reply::status(503)]);
    let (s, attempt) = app
        .as_tenant(
            &t,
            Method::POST,
            &format!("/v1/webhooks/{id}/test"),
            Some(json!({"event_type": "PROVIDER_CRED_APPROVED", "message": "again"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(attempt["status_code"], 503);
    let (_, log) = app
        .as_tenant(
            &t,
            Method::GET,
            &format!("/v1/webhooks/{id}/deliveries"),
            None,
        )
        .await;
    assert_eq!(log["data"][0]["status"], "exhausted", "{log}");
    assert_eq!(log["data"][0]["attempts"], 1);

    // Unknown event types are refused with a reason.
    let (s, err) = app
        .as_tenant(
            &t,
            Method::POST,
            &format!("/v1/webhooks/{id}/test"),
            Some(json!({"event_type": "NOPE", "message": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{err}");
}
