//! Payload filters through the API (DESIGN.md section 9): a webhook's filter decides
//! which events get a delivery to it (single and batch ingest, the `deliveries`
//! counts say so, only matching events reach the receiver), PATCH changes it for the
//! next event, invalid filters are a 400 with every reason and write nothing,
//! `/filter/test` explains, and the filter survives a restart.

use std::collections::BTreeSet;
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Tenant, TestApp};
use crate::receiver::TestReceiver;

const WAIT: Duration = Duration::from_secs(10);

fn big_euros() -> Value {
    json!({"data.amount": {"$gte": 100}, "data.currency": {"$in": ["EUR", "USD"]}})
}

async fn ingest(app: &TestApp, t: &Tenant, data: Value) -> (String, u64) {
    let e = app
        .event(t, json!({"type": "shift.created", "data": data}))
        .await;
    (
        e["id"].as_str().expect("event id").to_owned(),
        e["deliveries"].as_u64().expect("deliveries"),
    )
}

/// The event ids (`webhook-id`) each receiver path got.
fn received_by(rx: &TestReceiver, path: &str) -> BTreeSet<String> {
    rx.received()
        .iter()
        .filter(|r| r.path == path)
        .filter_map(|r| r.header("webhook-id").map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn only_events_that_pass_the_filter_get_a_delivery() {
    let rx = TestReceiver::start().await;
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let filtered = app
        .webhook(
            &t,
            json!({"url": rx.url("/filtered"), "event_types": ["shift.*"], "filter": big_euros()}),
        )
        .await;
    assert_eq!(filtered["filter"], big_euros(), "{filtered}");
    let plain = app
        .webhook(
            &t,
            json!({"url": rx.url("/plain"), "event_types": ["shift.created"]}),
        )
        .await;
    assert_eq!(plain["filter"], Value::Null, "{plain}");

    let mut want_filtered = BTreeSet::new();
    let mut all = BTreeSet::new();
    let (hit, n) = ingest(&app, &t, json!({"amount": 150, "currency": "EUR"})).await;
    assert_eq!(n, 2);
    want_filtered.insert(hit.clone());
    all.insert(hit);
    for miss in [
        json!({"amount": 50, "currency": "EUR"}),
        json!({"amount": 150, "currency": "GBP"}),
        json!({"amount": "150", "currency": "EUR"}),
        json!({"currency": "EUR"}),
    ] {
        let (id, n) = ingest(&app, &t, miss.clone()).await;
        assert_eq!(
            n, 1,
            "{miss} creates only the unfiltered webhook's delivery"
        );
        let ds = app.deliveries_of(&t, &id).await;
        assert_eq!(ds.len(), 1);
        assert_eq!(ds[0]["webhook_id"], plain["id"]);
        all.insert(id);
    }

    let batch = json!({"events": [
        {"type": "shift.created", "data": {"amount": 100.0, "currency": "USD"}},
        {"type": "shift.created", "data": {"amount": 99.5, "currency": "USD"}},
        {"type": "shift.report.created", "data": {"amount": 1000, "currency": "EUR"}},
        {"type": "shift.report.created", "data": {"amount": 1000, "currency": "eur"}},
    ]});
    let (s, b) = app
        .as_tenant(&t, Method::POST, "/v1/events/batch", Some(batch))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let counts: Vec<u64> = b["data"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["deliveries"].as_u64().expect("count"))
        .collect();
    // shift.report.created is not among the plain webhook's types.
    assert_eq!(counts, [2, 1, 1, 0], "{b}");
    for (i, item) in b["data"].as_array().expect("items").iter().enumerate() {
        let id = item["id"].as_str().expect("id").to_owned();
        if i == 0 || i == 2 {
            want_filtered.insert(id.clone());
        }
        if i < 2 {
            all.insert(id);
        }
    }

    // Every delivery that exists arrives; the filtered webhook got exactly the
    // events that pass its filter (the others have no delivery to it at all).
    rx.wait_for(want_filtered.len() + all.len(), WAIT).await;
    assert_eq!(received_by(&rx, "/filtered"), want_filtered);
    assert_eq!(received_by(&rx, "/plain"), all);
}

#[tokio::test]
async fn a_patched_filter_holds_from_the_next_event_and_null_clears_it() {
    let rx = TestReceiver::start().await;
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let w = app
        .webhook(
            &t,
            json!({"url": rx.url("/w"), "event_types": ["shift.created"],
                "filter": {"data.amount": {"$gte": 100}}}),
        )
        .await;
    let path = format!("/v1/webhooks/{}", w["id"].as_str().expect("id"));
    let (_, n) = ingest(&app, &t, json!({"amount": 50})).await;
    assert_eq!(n, 0);

    let (s, p) = app
        .as_tenant(
            &t,
            Method::PATCH,
            &path,
            Some(json!({"filter": {"$or": [{"data.amount": {"$lt": 100}}, {"data.vip": true}]}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(
        p["filter"],
        json!({"$or": [{"data.amount": {"$lt": 100}}, {"data.vip": true}]})
    );
    let (small, n) = ingest(&app, &t, json!({"amount": 50})).await;
    assert_eq!(n, 1);
    let (_, n) = ingest(&app, &t, json!({"amount": 500})).await;
    assert_eq!(n, 0);

    // A PATCH that leaves `filter` out keeps it.
    let (s, p) = app
        .as_tenant(&t, Method::PATCH, &path, Some(json!({"description": "d"})))
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert!(p["filter"].is_object(), "{p}");

    let (s, p) = app
        .as_tenant(&t, Method::PATCH, &path, Some(json!({"filter": null})))
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["filter"], Value::Null);
    let (big, n) = ingest(&app, &t, json!({"amount": 500})).await;
    assert_eq!(n, 1);
    rx.wait_for(2, WAIT).await;
    assert_eq!(received_by(&rx, "/w"), BTreeSet::from([small, big]));
}

#[tokio::test]
async fn invalid_filters_are_refused_with_every_reason_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let bad = json!({
        "data.amount": {"$gte": "x", "$regex": "^1"},
        "$or": [],
        "data.currency": {"$in": "EUR"},
        "payload.x": 1,
    });
    let (s, e) = app
        .as_tenant(
            &t,
            Method::POST,
            "/v1/webhooks",
            Some(
                json!({"url": "http://127.0.0.1:9/x", "event_types": ["shift.created"],
                "filter": bad.clone()}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let reasons: Vec<&str> = e["error"]["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for want in [
        "filter: data.amount: $regex is an unknown operator",
        "filter: $or must list at least one filter",
        "filter: data.currency: $in needs an array, got a string",
        "filter: unknown path \"payload.x\"",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(want)),
            "{reasons:?} lacks {want}"
        );
    }
    // "$gte": "x" is a valid string comparison; four reasons in all.
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    let (_, list) = app.as_tenant(&t, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(list["data"], json!([]), "nothing was created");

    let deep = (0..9).fold(json!({"data.x": 1}), |f, _| json!({"$not": f}));
    let huge = json!({"data.x": {"$in": vec!["y".repeat(100); 50]}});
    for (filter, want) in [
        (deep, "nested deeper than 8 levels"),
        (huge, "larger than 4096 bytes"),
        (json!("data.x"), "a filter must be a JSON object"),
    ] {
        let (s, e) = app
            .as_tenant(
                &t,
                Method::POST,
                "/v1/webhooks",
                Some(
                    json!({"url": "http://127.0.0.1:9/x", "event_types": ["*"], "filter": filter}),
                ),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
        assert!(e.to_string().contains(want), "{e} lacks {want}");
    }

    let w = app
        .webhook(
            &t,
            json!({"url": "http://127.0.0.1:9/x", "event_types": ["*"], "filter": {"type": "a"}}),
        )
        .await;
    let path = format!("/v1/webhooks/{}", w["id"].as_str().expect("id"));
    let (s, e) = app
        .as_tenant(
            &t,
            Method::PATCH,
            &path,
            Some(json!({"filter": bad, "description": "never"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(
        e["error"]["reasons"].as_array().map(Vec::len),
        Some(4),
        "{e}"
    );
    let (_, after) = app.as_tenant(&t, Method::GET, &path, None).await;
    assert_eq!(after["filter"], json!({"type": "a"}));
    assert_eq!(after["description"], Value::Null);
    assert_eq!(after["updated_at"], w["updated_at"], "nothing was written");
}

#[tokio::test]
async fn the_filter_test_route_explains_which_condition_failed() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let (s, k) = app
        .admin(
            Method::POST,
            "/v1/api-keys",
            Some(json!({"tenant": t.id, "name": "ro", "scopes": ["webhooks:read"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    let reader = Tenant {
        id: t.id.clone(),
        key: k["key"].as_str().expect("key").to_owned(),
    };
    let w = app
        .webhook(
            &t,
            json!({"url": "http://127.0.0.1:9/x", "event_types": ["*"], "filter": big_euros()}),
        )
        .await;
    let path = format!("/v1/webhooks/{}/filter/test", w["id"].as_str().expect("id"));
    let (s, ok) = app
        .as_tenant(
            &t,
            Method::POST,
            &path,
            Some(
                json!({"event": {"type": "anything", "data": {"amount": 100, "currency": "USD"}}}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{ok}");
    assert_eq!(ok, json!({"matches": true, "reasons": []}));
    let (s, no) = app
        .as_tenant(
            &reader,
            Method::POST,
            &path,
            Some(json!({"event": {"type": "x", "data": {"amount": 5},
                "timestamp": "2026-01-01T00:00:00Z"}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{no}");
    assert_eq!(
        no,
        json!({"matches": false, "reasons": [
            "data.amount is 5, which fails data.amount $gte 100",
            "data.currency is missing (the filter needs data.currency $in [\"EUR\",\"USD\"])",
        ]})
    );

    // The caller needs only webhooks:read; another tenant's webhook is a 404.
    let other = app.tenant_with_scopes("other", &["webhooks:read"]).await;
    let body = json!({"event": {"type": "x", "data": {}}});
    let (s, _) = app
        .as_tenant(&other, Method::POST, &path, Some(body.clone()))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // A webhook without a filter takes everything.
    let open = app
        .webhook(
            &t,
            json!({"url": "http://127.0.0.1:9/y", "event_types": ["*"]}),
        )
        .await;
    let open_path = format!(
        "/v1/webhooks/{}/filter/test",
        open["id"].as_str().expect("id")
    );
    let (s, a) = app
        .as_tenant(&t, Method::POST, &open_path, Some(body))
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(a, json!({"matches": true, "reasons": []}));

    // A malformed body lists every problem.
    let (s, e) = app
        .as_tenant(
            &t,
            Method::POST,
            &path,
            Some(json!({"event": {"data": 1, "timestamp": "soon", "extra": true}})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let text = e["error"]["reasons"].to_string();
    for want in [
        "event.type is required",
        "event.timestamp",
        "unknown field \\\"event.extra\\\"",
    ] {
        assert!(text.contains(want), "{text} lacks {want}");
    }
}

#[tokio::test]
async fn a_filter_survives_a_restart() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let w = app
        .webhook(
            &t,
            json!({"url": "http://127.0.0.1:9/x", "event_types": ["shift.created"],
                "filter": big_euros()}),
        )
        .await;
    let path = format!("/v1/webhooks/{}", w["id"].as_str().expect("id"));
    let app = app.restart().await;
    let (s, read) = app.as_tenant(&t, Method::GET, &path, None).await;
    assert_eq!(s, StatusCode::OK, "{read}");
    assert_eq!(read["filter"], big_euros());
    let (_, n) = ingest(&app, &t, json!({"amount": 5, "currency": "EUR"})).await;
    assert_eq!(n, 0);
    let (_, n) = ingest(&app, &t, json!({"amount": 500, "currency": "EUR"})).await;
    assert_eq!(n, 1);
}
