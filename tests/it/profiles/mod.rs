//! The seed API profiles (DESIGN.md section 10), one file per seed document: each
//! plays the document's own examples (curl lines, example bodies, example errors)
//! against a live server with the profile on, compares every documented field and
//! status, then delivers an event to the webhook it made and verifies the
//! signature as that platform's receivers would. This file holds the shared kit
//! and the "profiles off" checks.

mod seed_000;
mod seed_001;
mod seed_002;
mod seed_003;
mod seed_004;

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use hookbox::config::{ApiProfile, EventTypeSeed};
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::receiver::Received;

/// Event types of the seed documents the tests use, added to the test catalogue.
const SEED_EVENT_TYPES: &[&str] = &[
    "IN_PROGRESS",
    "shift.request.created",
    "validation_request.rejected",
];

/// hookbox with `profiles` enabled and the seeds' event types catalogued.
pub async fn spawn(profiles: &[ApiProfile]) -> TestApp {
    TestApp::spawn_with(|c| {
        c.api_profiles = profiles.to_vec();
        c.event_types
            .extend(SEED_EVENT_TYPES.iter().map(|name| EventTypeSeed {
                name: (*name).to_owned(),
                description: None,
            }));
    })
    .await
}

/// A request with raw headers and a JSON body (or none), as a seed's curl line
/// sends it.
pub async fn curl(
    app: &TestApp,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut h: Vec<(&str, &str)> = headers.to_vec();
    let bytes = match body {
        Some(b) => {
            h.push(("content-type", "application/json"));
            serde_json::to_vec(&b).expect("json")
        }
        None => Vec::new(),
    };
    app.raw(method, path, &h, bytes).await
}

/// Whether `v` is an RFC 3339 UTC timestamp.
pub fn is_timestamp(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.ends_with('Z') && s.parse::<jiff::Timestamp>().is_ok())
}

/// The keys of a JSON object, sorted.
pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

/// Waits for the first request at the receiver.
pub async fn first(receiver: &crate::receiver::TestReceiver) -> Received {
    receiver.wait_for(1, Duration::from_secs(10)).await[0].clone()
}

/// Verifies a delivery with the official Standard Webhooks library, as a receiver
/// holding the `whsec_` secret does.
pub fn verify_standard(got: &Received, secret: &str) {
    let wh = standardwebhooks::Webhook::new(secret).expect("a whsec_ secret");
    wh.verify(&got.body, &got.headers)
        .expect("the official library verifies the delivery");
    assert!(
        wh.verify(b"{}", &got.headers).is_err(),
        "a forged body fails"
    );
}

/// Verifies a delivery the way seed 004's receivers do with a plain secret: the
/// HMAC-SHA256 key is the secret's UTF-8 bytes, the signed content
/// `{webhook-id}.{webhook-timestamp}.{body}`, one `v1,<base64>` per active secret.
pub fn verify_plain(got: &Received, secret: &str) -> bool {
    let id = got.header("webhook-id").expect("webhook-id");
    let ts = got.header("webhook-timestamp").expect("webhook-timestamp");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&got.body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    got.header("webhook-signature")
        .expect("webhook-signature")
        .split(' ')
        .any(|entry| entry == format!("v1,{expected}"))
}

/// Every profile path answers 404 (hookbox's error shape) when its profile is off.
async fn assert_off(app: &TestApp, off: &[ApiProfile], key: &str) {
    let auth = format!("Bearer {key}");
    for which in off {
        let paths: &[(Method, &str)] = match which {
            ApiProfile::V2Webhooks => &[
                (Method::POST, "/v2/webhooks"),
                (Method::GET, "/v2/webhooks"),
                (Method::DELETE, "/v2/webhooks"),
                (Method::POST, "/v2/webhooks/wh_1/test-event"),
            ],
            ApiProfile::WebhookCreate => &[(Method::POST, "/v1/webhook/create")],
            ApiProfile::WebhookSubscriptions => &[
                (Method::POST, "/v1/webhook-subscriptions"),
                (Method::GET, "/v1/webhook-subscriptions"),
                (Method::GET, "/v1/webhook-subscriptions/wh_1"),
                (Method::DELETE, "/v1/webhook-subscriptions/wh_1"),
            ],
            ApiProfile::FacilityWebhooks => &[
                (Method::POST, "/api/v2/public/webhooks/facility"),
                (Method::GET, "/api/v2/public/webhooks/facility"),
                (Method::GET, "/api/v2/public/webhooks/facility/wh_1"),
                (Method::DELETE, "/api/v2/public/webhooks/facility/wh_1"),
            ],
        };
        for (method, path) in paths {
            let (s, body) = curl(
                app,
                method.clone(),
                path,
                &[("authorization", &auth)],
                Some(json!({"url": "https://example.com/x", "events": ["all"]})),
            )
            .await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{method} {path}: {body}");
            assert_eq!(body["error"]["code"], "not_found", "{method} {path}");
        }
    }
    let (_, doc) = app.raw(Method::GET, "/openapi.json", &[], Vec::new()).await;
    for which in off {
        assert!(
            !doc.to_string().contains(&format!("\"{}\"", which.name())),
            "{} is in the document",
            which.name()
        );
    }
}

#[tokio::test]
async fn profiles_off_by_default_their_paths_are_404() {
    let app = spawn(&[]).await;
    let t = app.tenant("off").await;
    assert_off(&app, &ApiProfile::ALL, &t.key).await;
    // The /v1 routes the profiles sit beside are untouched.
    let (s, _) = app.as_tenant(&t, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn one_profile_on_leaves_the_others_off() {
    let app = spawn(&[ApiProfile::FacilityWebhooks]).await;
    let t = app.tenant("one").await;
    assert_off(
        &app,
        &[
            ApiProfile::V2Webhooks,
            ApiProfile::WebhookCreate,
            ApiProfile::WebhookSubscriptions,
        ],
        &t.key,
    )
    .await;
    let (s, body) = app
        .as_tenant(&t, Method::GET, "/api/v2/public/webhooks/facility", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"data": []}));
    let (_, doc) = app.raw(Method::GET, "/openapi.json", &[], Vec::new()).await;
    assert_eq!(
        doc["tags"],
        json!([{"name": "facility-webhooks",
        "description": "Seed API profile serving seed document(s) 004"}])
    );
}

#[tokio::test]
async fn every_profile_on_is_documented_tagged_and_scoped_as_enforced() {
    let app = spawn(&ApiProfile::ALL).await;
    let (s, doc) = app.raw(Method::GET, "/openapi.json", &[], Vec::new()).await;
    assert_eq!(s, StatusCode::OK);
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = piece.split('"').next().unwrap_or_default();
        assert!(doc["components"]["schemas"][name].is_object(), "{name}");
    }
    let reader = app.tenant_with_scopes("reader", &["webhooks:read"]).await;
    let writer = app.tenant_with_scopes("writer", &["webhooks:write"]).await;
    let mut seen = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let Some(tag) = op["tags"][0].as_str() else {
                continue;
            };
            seen.push(tag.to_owned());
            assert!(ApiProfile::from_name(tag).is_some(), "{method} {template}");
            for name in template
                .split('{')
                .skip(1)
                .filter_map(|s| s.split('}').next())
            {
                let declared = op["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path"));
                assert!(declared, "{method} {template}: {name}");
            }
            // The documented scope is the one dispatch enforces.
            let path = template.replace("{id}", "x1").replace("{webhookId}", "x1");
            let m: Method = method.to_uppercase().parse().expect("method");
            let body = (m != Method::GET).then(|| json!({}));
            let (with, without) = match op["x-scope"].as_str() {
                Some("webhooks:read") => (&reader, &writer),
                Some("webhooks:write") => (&writer, &reader),
                other => panic!("{method} {template}: scope {other:?}"),
            };
            let (s, v) = app.as_tenant(without, m.clone(), &path, body.clone()).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{method} {template}: {v}");
            let (s, v) = app.as_tenant(with, m, &path, body).await;
            assert!(
                s != StatusCode::FORBIDDEN && s != StatusCode::UNAUTHORIZED,
                "{method} {template}: {s} {v}"
            );
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 4, "{seen:?}");
}
