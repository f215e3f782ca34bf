//! Seed 004 (profile `facility-webhooks`): `POST /api/v2/public/webhooks/facility`
//! with the seed's example body (two plain 32-character secrets) -> 201 `{"data":
//! {id, url, events, clientId, facilities, secrets}}`; a generated plain secret;
//! `all`; the seed's 400 (every reason in `message`), 401 and 403 bodies; list,
//! read, delete. Delivery: signed with the plain secrets' UTF-8 bytes, verified as
//! that platform's receivers do (and not as base64, which would differ).

use hookbox::config::ApiProfile;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{curl, first, keys, spawn, verify_plain};
use crate::receiver::TestReceiver;

const PATH: &str = "/api/v2/public/webhooks/facility";
const SEED_SECRETS: [&str; 2] = [
    "sDV1aKqitCLClI12m7UPFbAAvZfZquJw",
    "mryefgHPBVHJwux0o3BYW7hPM0BZlcCa",
];

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn seed_004_facility_webhooks_plain_secrets_and_nest_errors() {
    let app = spawn(&[ApiProfile::FacilityWebhooks]).await;
    let t = app.tenant("staffing").await;
    let auth = format!("Bearer {}", t.key);
    let h = [("authorization", auth.as_str())];

    // The seed's example body, field for field.
    let (s, created) = curl(
        &app,
        Method::POST,
        PATH,
        &h,
        Some(json!({
            "url": "https://exemple.com/webhook",
            "events": ["shift.report.created", "shift.request.created"],
            "facilities": ["P-123456", "P-123457"],
            "secrets": SEED_SECRETS
        })),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert_eq!(keys(&created), ["data"]);
    let d = &created["data"];
    assert_eq!(
        keys(d),
        ["clientId", "events", "facilities", "id", "secrets", "url"]
    );
    assert_eq!(d["url"], "https://exemple.com/webhook");
    assert_eq!(
        d["events"],
        json!(["shift.report.created", "shift.request.created"])
    );
    assert_eq!(d["clientId"], t.id.as_str());
    assert_eq!(d["facilities"], json!(["P-123456", "P-123457"]));
    assert_eq!(d["secrets"], json!(SEED_SECRETS));
    let example_id = d["id"].as_str().expect("id").to_owned();

    // No secrets: one plain secret of 32 letters and digits is generated; `all`.
    let receiver = TestReceiver::start().await;
    let (s, created) = curl(
        &app,
        Method::POST,
        PATH,
        &h,
        Some(json!({"url": receiver.url("/shifts"), "events": ["all"],
            "facilities": ["P-123456"]})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let d = &created["data"];
    assert_eq!(d["events"], json!(["all"]));
    let generated = strings(&d["secrets"]);
    assert_eq!(generated.len(), 1, "{d}");
    assert_eq!(generated[0].len(), 32);
    assert!(generated[0].bytes().all(|b| b.is_ascii_alphanumeric()));
    let id = d["id"].as_str().expect("id").to_owned();

    // /v1 reveals the plain secret as it is.
    let (_, revealed) = app
        .as_tenant(&t, Method::GET, &format!("/v1/webhooks/{id}/secrets"), None)
        .await;
    assert_eq!(strings(&revealed["secrets"]), generated);

    // Deliver to the facility: signed with the secret's UTF-8 bytes.
    app.event(
        &t,
        json!({"type": "shift.created", "data": {"shift": 1}, "channels": ["P-123456"]}),
    )
    .await;
    let got = first(&receiver).await;
    assert!(verify_plain(&got, &generated[0]), "plain-secret signature");
    // A receiver that decoded the secret as base64 would not verify it.
    let as_base64 = format!("whsec_{}", generated[0]);
    assert!(
        standardwebhooks::Webhook::new(&as_base64)
            .map(|w| w.verify(&got.body, &got.headers).is_err())
            .unwrap_or(true)
    );
    // The seed's two secrets (rotation): both sign; either verifies.
    let (s, p) = app
        .as_tenant(
            &t,
            Method::PATCH,
            &format!("/v1/webhooks/{example_id}"),
            Some(json!({"url": receiver.url("/example")})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    app.event(
        &t,
        json!({"type": "shift.report.created", "data": {}, "channels": ["P-123457"]}),
    )
    .await;
    let got = receiver
        .wait_for(2, std::time::Duration::from_secs(10))
        .await;
    let example = got
        .iter()
        .find(|r| r.path == "/example")
        .expect("delivered");
    assert_eq!(
        example
            .header("webhook-signature")
            .map(|s| s.split(' ').count()),
        Some(2)
    );
    assert!(verify_plain(example, SEED_SECRETS[0]));
    assert!(verify_plain(example, SEED_SECRETS[1]));

    // List and read: `{"data": ...}`, secrets masked, a /v1 PATCH shows through.
    let (s, list) = curl(&app, Method::GET, PATH, &h, None).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let items = list["data"].as_array().expect("data array");
    assert_eq!(items.len(), 2, "{list}");
    assert!(items.iter().all(|w| {
        w["secrets"]
            .as_array()
            .is_some_and(|s| s.iter().all(|v| v == "****"))
    }));
    let (s, one) = curl(&app, Method::GET, &format!("{PATH}/{example_id}"), &h, None).await;
    assert_eq!(s, StatusCode::OK, "{one}");
    assert_eq!(one["data"]["url"], receiver.url("/example"));

    // The seed's "Request Validation Error": every reason in `message`.
    let (s, e) = curl(
        &app,
        Method::POST,
        PATH,
        &h,
        Some(json!({"url": 5, "events": "all", "facilities": [1],
            "secrets": ["a", "b", "c"]})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(keys(&e), ["error", "message", "statusCode"]);
    assert_eq!(e["error"], "Bad Request");
    assert_eq!(e["statusCode"], 400);
    let message = strings(&e["message"]);
    for want in [
        "url must be a string",
        "events must be an array of strings",
        "facilities[0] must be a string",
        "secrets must contain no more than 2 elements",
        "secrets[0] must be 16 to 64 characters long",
    ] {
        assert!(message.iter().any(|m| m == want), "{want}: {message:?}");
    }
    let (s, e) = curl(
        &app,
        Method::POST,
        PATH,
        &h,
        Some(json!({"url": receiver.url("/x"), "events": ["all"],
            "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert!(
        e["message"][0]
            .as_str()
            .is_some_and(|m| m.contains("whsec_")),
        "{e}"
    );
    // /v1 still takes only whsec_ secrets.
    let (s, e) = app
        .as_tenant(
            &t,
            Method::POST,
            "/v1/webhooks",
            Some(json!({"url": receiver.url("/v1"), "event_types": ["*"],
                "secrets": [SEED_SECRETS[0]]})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");

    // The seed's 401 and 403 bodies.
    let (s, e) = curl(&app, Method::GET, PATH, &[], None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(e, json!({"message": "Unauthorized", "statusCode": 401}));
    let reader = app.tenant_with_scopes("reader", &["webhooks:read"]).await;
    let auth_r = format!("Bearer {}", reader.key);
    let (s, e) = curl(
        &app,
        Method::POST,
        PATH,
        &[("authorization", &auth_r)],
        Some(json!({"url": receiver.url("/x"), "events": ["all"]})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        e,
        json!({"message": "Forbidden Resource", "error": "Forbidden", "statusCode": 403})
    );

    // Delete: 204, then 404 in the same shape.
    let (s, _) = curl(&app, Method::DELETE, &format!("{PATH}/{id}"), &h, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, e) = curl(&app, Method::GET, &format!("{PATH}/{id}"), &h, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
    assert_eq!(e["error"], "Not Found");
    assert_eq!(e["statusCode"], 404);
    let (s, e) = curl(&app, Method::PUT, PATH, &h, None).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{e}");
    assert_eq!(e["statusCode"], 405);
}
