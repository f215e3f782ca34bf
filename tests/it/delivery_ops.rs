//! Delivery operations seen through the API: the SSRF guard at registration and
//! at connect time, idempotent and batch ingest, recover and manual retry,
//! cancellation on disable or delete, the read endpoints, and a restart with
//! deliveries still pending.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::delivery_outcomes::{codes, hook, one_delivery};
use crate::helpers::{Tenant, TestApp};
use crate::receiver::{Reply, TestReceiver};

const WAIT: Duration = Duration::from_secs(10);
const LONG_AGO: &str = "2000-01-01T00:00:00Z";

/// A schedule whose second attempt is an hour away, so failed deliveries stay pending.
fn one_hour_retry() -> Vec<Duration> {
    vec![Duration::ZERO, Duration::from_secs(3600)]
}

/// A name other than `localhost` that /etc/hosts maps to a loopback address.
fn loopback_alias() -> Option<String> {
    let hosts = std::fs::read_to_string("/etc/hosts").ok()?;
    hosts.lines().find_map(|line| {
        let mut words = line.split('#').next()?.split_whitespace();
        let addr: std::net::IpAddr = words.next()?.parse().ok()?;
        if !addr.is_loopback() {
            return None;
        }
        words
            .find(|n| {
                let n = n.to_ascii_lowercase();
                n != "localhost"
                    && !n.ends_with(".localhost")
                    && n.contains(|c: char| c.is_ascii_alphabetic())
            })
            .map(str::to_owned)
    })
}

#[tokio::test]
async fn without_the_allow_list_internal_addresses_are_refused() {
    let app = TestApp::spawn_with(|c| c.security.allow_networks = vec![]).await;
    let rx = TestReceiver::start().await;
    let t = app.tenant("acme").await;
    let port = rx.addr.port();
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        "http://10.0.0.1/".to_owned(),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        format!("http://[::1]:{port}/"),
        "http://[::ffff:127.0.0.1]/".to_owned(),
        format!("http://localhost:{port}/hook"),
    ] {
        let (s, b) = app
            .as_tenant(
                &t,
                Method::POST,
                "/v1/webhooks",
                Some(json!({"url": url, "event_types": ["*"]})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{url}: {b}");
        let reasons = b["error"]["reasons"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            reasons
                .iter()
                .any(|r| r.as_str().is_some_and(|r| r.contains("url"))),
            "{url}: {b}"
        );
    }
    let (_, list) = app.as_tenant(&t, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(list["data"], json!([]), "a refused webhook was stored");

    // A name that passes registration but resolves to loopback is refused when
    // connecting (only where the hosts file has such a name).
    if let Some(name) = loopback_alias() {
        hook(&app, &t, &format!("http://{name}:{port}/hook")).await;
        let id = one_delivery(&app, &t).await;
        let d = app
            .wait_delivery(&t, &id, WAIT, |d| {
                d["attempts"].as_array().is_some_and(|a| !a.is_empty())
            })
            .await;
        let err = d["attempts"][0]["error"].as_str().unwrap_or("");
        assert!(err.contains("SSRF"), "{name}: {d}");
        assert!(rx.received().is_empty(), "the guard let a request through");
    }
}

#[tokio::test]
async fn with_the_loopback_allow_list_registration_and_delivery_work() {
    let app = TestApp::spawn().await;
    let rx = TestReceiver::start().await;
    let t = app.tenant("acme").await;
    hook(&app, &t, &format!("http://127.0.0.1:{}/a", rx.addr.port())).await;
    hook(&app, &t, &format!("http://localhost:{}/b", rx.addr.port())).await;
    let e = app
        .event(&t, json!({"type": "shift.created", "data": {}}))
        .await;
    assert_eq!(e["deliveries"], 2);
    rx.wait_for(2, WAIT).await;
}

/// The ingest call with an optional `Idempotency-Key` header.
async fn ingest(app: &TestApp, t: &Tenant, key: Option<&str>, body: &Value) -> (StatusCode, Value) {
    let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
    app.call(
        Method::POST,
        "/v1/events",
        &t.key,
        &headers,
        Some(body.clone()),
    )
    .await
}

/// The delivery log of a webhook, optionally filtered by status.
async fn log(app: &TestApp, t: &Tenant, wh: &str, status: Option<&str>) -> Vec<Value> {
    let q = status.map(|s| format!("?status={s}")).unwrap_or_default();
    let (s, b) = app
        .as_tenant(
            t,
            Method::GET,
            &format!("/v1/webhooks/{wh}/deliveries{q}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["data"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer_and_refuses_a_different_body() {
    let app = TestApp::spawn().await;
    let rx = TestReceiver::start().await;
    let t = app.tenant("acme").await;
    let wh = hook(&app, &t, &rx.url("/hook")).await;

    // The header form.
    let body = json!({"type": "shift.created", "data": {"n": 1}});
    let (s1, a) = ingest(&app, &t, Some("k-1"), &body).await;
    assert_eq!(s1, StatusCode::ACCEPTED, "{a}");
    let (s2, b) = ingest(&app, &t, Some("k-1"), &body).await;
    assert_eq!(s2, StatusCode::OK, "{b}");
    assert_eq!(a, b, "a replay answers with the first id and count");
    let (s3, c) = ingest(
        &app,
        &t,
        Some("k-1"),
        &json!({"type": "shift.created", "data": {"n": 2}}),
    )
    .await;
    assert_eq!(s3, StatusCode::CONFLICT, "{c}");

    // The field form.
    let body = json!({"type": "shift.created", "data": {"n": 3}, "idempotency_key": "k-2"});
    let (s1, a) = ingest(&app, &t, None, &body).await;
    assert_eq!(s1, StatusCode::ACCEPTED, "{a}");
    let (s2, b) = ingest(&app, &t, None, &body).await;
    assert_eq!(s2, StatusCode::OK, "{b}");
    assert_eq!(a["id"], b["id"]);
    let (s3, _) = ingest(
        &app,
        &t,
        None,
        &json!({"type": "shift.created", "data": {"n": 4}, "idempotency_key": "k-2"}),
    )
    .await;
    assert_eq!(s3, StatusCode::CONFLICT);

    // Two events, two deliveries, two requests; nothing for the replays.
    let (_, events) = app
        .as_tenant(&t, Method::GET, "/v1/events?type=shift.created", None)
        .await;
    assert_eq!(events["data"].as_array().map(Vec::len), Some(2), "{events}");
    for d in log(&app, &t, &wh, None).await {
        let id = d["id"].as_str().expect("id").to_owned();
        app.wait_delivery(&t, &id, WAIT, |d| d["status"] == "succeeded")
            .await;
    }
    assert_eq!(log(&app, &t, &wh, None).await.len(), 2);
    assert_eq!(rx.received().len(), 2);
}

#[tokio::test]
async fn idempotency_compares_the_event_not_the_envelope() {
    let app = TestApp::spawn().await;
    let rx = TestReceiver::start().await;
    let t = app.tenant("acme").await;
    hook(&app, &t, &rx.url("/hook")).await;
    let auth = format!("Bearer {}", t.key);
    let h = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("idempotency-key", "k-1"),
    ];
    let (s, a) = app
        .raw(
            Method::POST,
            "/v1/events",
            &h,
            br#"{"type":"shift.created","data":{"n":1}}"#.to_vec(),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{a}");
    // The same event re-sent with other whitespace is the same event.
    let (s, b) = app
        .raw(
            Method::POST,
            "/v1/events",
            &h,
            br#"{ "type": "shift.created", "data": {"n":1} }"#.to_vec(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(a["id"], b["id"]);
    // The same event re-sent through the batch endpoint is the same event.
    let (s, c) = app
        .as_tenant(
            &t,
            Method::POST,
            "/v1/events/batch",
            Some(json!({"events": [{"type": "shift.created", "data": {"n": 1}, "idempotency_key": "k-1"}]})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{c}");
    assert_eq!(c["data"][0]["id"], a["id"], "{c}");
    // Same key and data but another type is a different event.
    let (s, d) = app
        .as_tenant(
            &t,
            Method::POST,
            "/v1/events/batch",
            Some(json!({"events": [{"type": "PATIENT_CREATED", "data": {"n": 1}, "idempotency_key": "k-1"}]})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{d}");
    // A batch conflict names the item by its position, and nothing is stored.
    let mixed = json!({"events": [
        {"type": "shift.created", "data": {"n": 7}},
        {"type": "shift.created", "data": {"n": 8}, "idempotency_key": "k-1"},
    ]});
    let (s, e) = app
        .as_tenant(&t, Method::POST, "/v1/events/batch", Some(mixed))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert_eq!(
        e["error"]["reasons"].as_array().map(Vec::len),
        Some(1),
        "{e}"
    );
    assert!(
        e["error"]["reasons"][0]
            .as_str()
            .is_some_and(|r| r.starts_with("events[1]")),
        "{e}"
    );
    // The same key twice in one batch is refused outright.
    let twice = json!({"events": [
        {"type": "shift.created", "data": {"n": 2}, "idempotency_key": "k-2"},
        {"type": "shift.created", "data": {"n": 2}, "idempotency_key": "k-2"},
    ]});
    let (s, e) = app
        .as_tenant(&t, Method::POST, "/v1/events/batch", Some(twice))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let got = rx.wait_for(1, WAIT).await;
    let (_, events) = app.as_tenant(&t, Method::GET, "/v1/events", None).await;
    assert_eq!(events["data"].as_array().map(Vec::len), Some(1), "{events}");
    assert_eq!(got.len(), 1);
}

#[tokio::test]
async fn a_batch_is_accepted_with_an_id_per_event_and_each_is_delivered() {
    let app = TestApp::spawn().await;
    let rx = TestReceiver::start().await;
    let t = app.tenant("acme").await;
    hook(&app, &t, &rx.url("/hook")).await;
    let events: Vec<Value> = (0..5)
        .map(|i| json!({"type": "shift.created", "data": {"i": i}}))
        .collect();
    let (s, b) = app
        .as_tenant(
            &t,
            Method::POST,
            "/v1/events/batch",
            Some(json!({"events": events})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let items = b["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 5, "{b}");
    let mut ids: Vec<String> = items
        .iter()
        .map(|i| i["id"].as_str().expect("event id").to_owned())
        .collect();
    assert!(items.iter().all(|i| i["deliveries"] == 1), "{b}");
    let got = rx.wait_for(5, WAIT).await;
    let mut seen: Vec<String> = got
        .iter()
        .map(|r| r.header("webhook-id").unwrap_or("").to_owned())
        .collect();
    ids.sort();
    seen.sort();
    assert_eq!(ids, seen);
    // Each event arrives with its own data, in order of the batch.
    let mut data: Vec<i64> = got
        .iter()
        .map(|r| r.json()["data"]["i"].as_i64().unwrap_or(-1))
        .collect();
    data.sort_unstable();
    assert_eq!(data, [0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn recover_requeues_exhausted_deliveries_which_then_succeed() {
    let app = TestApp::spawn().await;
    let rx = TestReceiver::start().await;
    rx.script(std::iter::repeat_n(Reply::status(503), 8));
    let t = app.tenant("acme").await;
    let wh = hook(&app, &t, &rx.url("/hook")).await;
    let a = one_delivery(&app, &t).await;
    let b = one_delivery(&app, &t).await;
    let mut last = Value::Null;
    for id in [&a, &b] {
        last = app
            .wait_delivery(&t, id, WAIT, |d| d["status"] == "exhausted")
            .await;
    }
    assert_eq!(log(&app, &t, &wh, Some("exhausted")).await.len(), 2);
    let (s, r) = app
        .as_tenant(
            &t,
            Method::POST,
            &format!("/v1/webhooks/{wh}/recover"),
            Some(json!({"since": LONG_AGO})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{r}");
    assert_eq!(r["requeued"], 2, "{r}");
    for id in [&a, &b] {
        let d = app
            .wait_delivery(&t, id, WAIT, |d| d["status"] == "succeeded")
            .await;
        assert_eq!(codes(&d).len(), 5, "{d}");
        assert_eq!(codes(&d)[4], 200);
    }
    // A `since` after the deliveries were made recovers nothing.
    let (s, r) = app
        .as_tenant(
            &t,
            Method::POST,
            &format!("/v1/webhooks/{wh}/recover"),
            Some(json!({"since": last["updated_at"]})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{r}");
    assert_eq!(r["requeued"], 0);
}

#[tokio::test]
async fn a_manual_retry_of_an_exhausted_delivery_succeeds() {
    let app = TestApp::spawn().await;
    let rx = TestReceiver::start().await;
    rx.script(std::iter::repeat_n(Reply::status(500), 4));
    let t = app.tenant("acme").await;
    hook(&app, &t, &rx.url("/hook")).await;
    let id = one_delivery(&app, &t).await;
    app.wait_delivery(&t, &id, WAIT, |d| d["status"] == "exhausted")
        .await;
    let (s, r) = app
        .as_tenant(
            &t,
            Method::POST,
            &format!("/v1/deliveries/{id}/retry"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["attempt"]["trigger"], "manual");
    assert_eq!(r["attempt"]["status_code"], 200);
    let (_, d) = app
        .as_tenant(&t, Method::GET, &format!("/v1/deliveries/{id}"), None)
        .await;
    assert_eq!(d["status"], "succeeded");
    assert_eq!(codes(&d).len(), 5, "{d}");
    assert_eq!(d["attempts"][4]["trigger"], "manual");
    assert_eq!(d["attempts"][4]["number"], 5);
    assert_eq!(rx.received().len(), 5);
}

#[tokio::test]
async fn disabling_or_deleting_a_webhook_cancels_its_pending_deliveries() {
    let app = TestApp::spawn_with(|c| c.delivery.retry_schedule = one_hour_retry()).await;
    let rx = TestReceiver::start().await;
    rx.script([Reply::status(500), Reply::status(500)]);
    let t = app.tenant("acme").await;
    let off = hook(&app, &t, &rx.url("/disabled")).await;
    let gone = hook(&app, &t, &rx.url("/deleted")).await;
    let e = app
        .event(&t, json!({"type": "shift.created", "data": {}}))
        .await;
    assert_eq!(e["deliveries"], 2);
    let dlv = app.deliveries_of(&t, e["id"].as_str().expect("id")).await;
    let of = |wh: &str| {
        dlv.iter()
            .find(|d| d["webhook_id"] == wh)
            .and_then(|d| d["id"].as_str())
            .expect("a delivery per webhook")
            .to_owned()
    };
    let (d_off, d_gone) = (of(&off), of(&gone));
    for id in [&d_off, &d_gone] {
        let d = app
            .wait_delivery(&t, id, WAIT, |d| d["status"] == "failed")
            .await;
        assert!(d["next_attempt_at"].is_string(), "{d}");
    }
    assert_eq!(log(&app, &t, &off, Some("failed")).await.len(), 1);

    let patch = |enabled: bool| json!({ "enabled": enabled });
    let (s, w) = app
        .as_tenant(
            &t,
            Method::PATCH,
            &format!("/v1/webhooks/{off}"),
            Some(patch(false)),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{w}");
    assert_eq!(w["enabled"], false);
    let (s, _) = app
        .as_tenant(&t, Method::DELETE, &format!("/v1/webhooks/{gone}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    for id in [&d_off, &d_gone] {
        let (_, d) = app
            .as_tenant(&t, Method::GET, &format!("/v1/deliveries/{id}"), None)
            .await;
        assert_eq!(d["status"], "cancelled", "{d}");
        assert_eq!(d["next_attempt_at"], Value::Null, "{d}");
    }

    // Re-enabling does not resurrect them; recover does.
    let (s, w) = app
        .as_tenant(
            &t,
            Method::PATCH,
            &format!("/v1/webhooks/{off}"),
            Some(patch(true)),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{w}");
    assert_eq!(w["enabled"], true);
    assert_eq!(w["disabled_reason"], Value::Null, "{w}");
    let (_, d) = app
        .as_tenant(&t, Method::GET, &format!("/v1/deliveries/{d_off}"), None)
        .await;
    assert_eq!(d["status"], "cancelled", "{d}");
    assert_eq!(log(&app, &t, &off, Some("cancelled")).await.len(), 1);
    let (s, r) = app
        .as_tenant(
            &t,
            Method::POST,
            &format!("/v1/webhooks/{off}/recover"),
            Some(json!({"since": LONG_AGO})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{r}");
    assert_eq!(r["requeued"], 1);
    let d = app
        .wait_delivery(&t, &d_off, WAIT, |d| d["status"] == "succeeded")
        .await;
    assert_eq!(codes(&d), [json!(500), json!(200)]);
    // The deleted webhook's delivery is never attempted again.
    let paths: Vec<String> = rx.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths.iter().filter(|p| *p == "/deleted").count(),
        1,
        "{paths:?}"
    );
}

#[tokio::test]
async fn events_and_deliveries_can_be_read_back() {
    let app = TestApp::spawn_with(|c| c.delivery.retry_schedule = one_hour_retry()).await;
    let big = "x".repeat(10 * 1024);
    let rx = TestReceiver::start_with(Reply::status(500).body(&big)).await;
    let t = app.tenant("acme").await;
    let wh = hook(&app, &t, &rx.url("/hook")).await;
    let e1 = app
        .event(
            &t,
            json!({"type": "shift.created", "data": {"n": 1}, "channels": ["P-1"]}),
        )
        .await;
    let e2 = app
        .event(&t, json!({"type": "PATIENT_CREATED", "data": {"n": 2}}))
        .await;
    assert_eq!(e2["deliveries"], 0);
    let id1 = e1["id"].as_str().expect("id");

    let (s, ev) = app
        .as_tenant(&t, Method::GET, &format!("/v1/events/{id1}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{ev}");
    assert_eq!(ev["type"], "shift.created");
    assert_eq!(ev["data"], json!({"n": 1}));
    assert_eq!(ev["channels"], json!(["P-1"]));
    assert_eq!(ev["deliveries"].as_array().map(Vec::len), Some(1));
    let dlv = ev["deliveries"][0]["id"]
        .as_str()
        .expect("delivery id")
        .to_owned();
    assert_eq!(ev["deliveries"][0]["webhook_id"], wh.as_str());

    let (_, list) = app
        .as_tenant(&t, Method::GET, "/v1/events?type=PATIENT_CREATED", None)
        .await;
    let ids: Vec<&Value> = list["data"]
        .as_array()
        .map(|a| a.iter().map(|e| &e["id"]).collect())
        .unwrap_or_default();
    assert_eq!(ids, [&e2["id"]], "{list}");
    let (_, list) = app.as_tenant(&t, Method::GET, "/v1/events", None).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(2), "{list}");

    let d = app
        .wait_delivery(&t, &dlv, WAIT, |d| d["status"] == "failed")
        .await;
    let a = &d["attempts"][0];
    assert_eq!(a["status_code"], 500);
    assert_eq!(a["number"], 1);
    assert!(a["latency_ms"].is_u64(), "{a}");
    assert!(a["at"].is_string(), "{a}");
    assert_eq!(
        a["response_body"].as_str().map(str::len),
        Some(4096),
        "snippet is capped"
    );
    assert_eq!(d["last_status_code"], 500);

    let failed = log(&app, &t, &wh, Some("failed")).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["id"], dlv.as_str());
    assert!(log(&app, &t, &wh, Some("succeeded")).await.is_empty());
    let (s, b) = app
        .as_tenant(
            &t,
            Method::GET,
            &format!("/v1/webhooks/{wh}/deliveries?status=bogus"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");

    // Another tenant sees none of it.
    let other = app.tenant("other").await;
    for path in [format!("/v1/events/{id1}"), format!("/v1/deliveries/{dlv}")] {
        let (s, _) = app.as_tenant(&other, Method::GET, &path, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn a_pending_delivery_completes_after_a_restart() {
    let app = TestApp::spawn_with(|c| {
        c.delivery.retry_schedule = vec![Duration::ZERO, Duration::from_millis(500)];
    })
    .await;
    let rx = TestReceiver::start().await;
    rx.script([Reply::status(500)]);
    let t = app.tenant("acme").await;
    hook(&app, &t, &rx.url("/hook")).await;
    let id = one_delivery(&app, &t).await;
    app.wait_delivery(&t, &id, WAIT, |d| d["status"] == "failed")
        .await;
    let app = app.restart().await;
    let d = app
        .wait_delivery(&t, &id, WAIT, |d| d["status"] == "succeeded")
        .await;
    assert_eq!(codes(&d), [json!(500), json!(200)], "{d}");
    assert_eq!(rx.received().len(), 2);
}
