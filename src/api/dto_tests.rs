//! Unit tests of the response wire types: masking, shapes, timestamps.

use serde_json::{Value, json};

use super::*;
use crate::model::{
    ApiKey as KeyRecord, EventType as TypeRecord, Scope, SigningSecret, Tenant as TenantRecord,
    Webhook as WebhookRecord,
};

fn to_v<T: Serialize>(t: T) -> Value {
    serde_json::to_value(t).expect("serializes")
}

const SIGNING: &str = "whsec_c0RWMWFLcWl0Q0xDbEkxMm03VVBGYkFB";
const OLD_SIGNING: &str = "whsec_bXJ5ZWZnSFBCVkhKd3V4MG8zQllXN2hQ";
const NOW: UnixMs = 1_763_790_000_000;

fn webhook() -> WebhookRecord {
    WebhookRecord {
        id: "wh_1".to_owned(),
        tenant: "acme".to_owned(),
        url: "https://example.com/hook".to_owned(),
        event_types: vec!["IN_PROGRESS".to_owned()],
        channels: vec![],
        description: Some("Provider Created Webhook".to_owned()),
        headers: BTreeMap::from([("X-Api-Key".to_owned(), Secret::new("abcdef123456"))]),
        oauth: Some(OAuthConfig {
            token_url: "https://auth.example.com/oauth/token".to_owned(),
            client_id: "my-client-id".to_owned(),
            client_secret: Secret::new("my-client-secret"),
            scope: Some("resource.read".to_owned()),
            headers: BTreeMap::from([(
                "X-Domain-Name".to_owned(),
                Secret::new("tokenheadervalue"),
            )]),
        }),
        secrets: vec![
            SigningSecret {
                secret: Secret::new(SIGNING),
                expires_at: None,
            },
            SigningSecret {
                secret: Secret::new(OLD_SIGNING),
                expires_at: Some(NOW + 1000),
            },
        ],
        notification_email: Some("ops@example.com".to_owned()),
        enabled: false,
        disabled_reason: Some("disabled by API".to_owned()),
        disabled_at: Some(NOW),
        metadata: BTreeMap::from([("team".to_owned(), "billing".to_owned())]),
        rate_limit_per_second: Some(10),
        created_at: NOW - 5000,
        updated_at: NOW,
        deleted_at: None,
        failing_since: None,
        version: 1,
        ordering: Default::default(),
        filter: None,
    }
}

#[test]
fn masked_webhook_hides_every_secret() {
    let v = to_v(Webhook::at(&webhook(), false, NOW));
    assert_eq!(v["headers"]["X-Api-Key"], "****");
    assert_eq!(v["oauth"]["client_secret"], "****");
    assert_eq!(v["oauth"]["headers"]["X-Domain-Name"], "****");
    assert_eq!(v["oauth"]["client_id"], "my-client-id");
    assert_eq!(v["secrets"], json!(["****", "****"]));
    let text = v.to_string();
    for secret in [
        "abcdef123456",
        "my-client-secret",
        "tokenheadervalue",
        SIGNING,
        OLD_SIGNING,
    ] {
        assert!(!text.contains(secret), "{secret} leaked in {text}");
    }
}

#[test]
fn revealed_webhook_shows_secrets_current_first() {
    let v = to_v(Webhook::at(&webhook(), true, NOW));
    assert_eq!(v["headers"]["X-Api-Key"], "abcdef123456");
    assert_eq!(v["oauth"]["client_secret"], "my-client-secret");
    assert_eq!(v["secrets"], json!([SIGNING, OLD_SIGNING]));
}

#[test]
fn webhook_fields_and_timestamps() {
    let v = to_v(Webhook::at(&webhook(), false, NOW));
    let keys: Vec<&str> = v
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    for k in [
        "id",
        "url",
        "event_types",
        "channels",
        "description",
        "headers",
        "oauth",
        "secrets",
        "notification_email",
        "enabled",
        "disabled_reason",
        "disabled_at",
        "metadata",
        "rate_limit_per_second",
        "created_at",
        "updated_at",
    ] {
        assert!(keys.contains(&k), "missing {k}");
    }
    assert_eq!(v["disabled_at"], model::rfc3339(NOW));
    assert_eq!(v["created_at"], "2025-11-22T05:39:55.000Z");
    assert_eq!(v["metadata"]["team"], "billing");
    let mut w = webhook();
    w.oauth = None;
    assert_eq!(to_v(Webhook::at(&w, false, NOW))["oauth"], Value::Null);
}

#[test]
fn expired_secret_is_not_listed() {
    let w = webhook();
    assert_eq!(
        to_v(Webhook::at(&w, false, NOW + 1000))["secrets"],
        json!(["****"])
    );
    assert_eq!(
        to_v(WebhookSecrets::at(&w, NOW)),
        json!({ "secrets": [SIGNING, OLD_SIGNING] })
    );
    assert_eq!(
        to_v(WebhookSecrets::at(&w, NOW + 1000)),
        json!({ "secrets": [SIGNING] })
    );
}

#[test]
fn api_key_shows_key_only_when_given() {
    let k = KeyRecord {
        id: "key_1".to_owned(),
        tenant: "acme".to_owned(),
        name: "ci".to_owned(),
        scopes: vec![Scope::WebhooksRead, Scope::EventsWrite],
        hash: [0; 32],
        prefix: "hbk_ab12".to_owned(),
        created_at: NOW,
    };
    let listed = to_v(ApiKey::new(&k, None));
    assert!(listed.get("key").is_none());
    assert!(listed.get("hash").is_none());
    assert_eq!(listed["scopes"], json!(["webhooks:read", "events:write"]));
    assert_eq!(
        to_v(ApiKey::new(&k, Some("hbk_secret")))["key"],
        "hbk_secret"
    );
}

#[test]
fn small_shapes() {
    let t = TenantRecord {
        id: "acme".to_owned(),
        name: "Acme".to_owned(),
        created_at: NOW,
    };
    assert_eq!(
        to_v(Tenant::new(&t)),
        json!({"id": "acme", "name": "Acme", "created_at": model::rfc3339(NOW)})
    );
    let e = TypeRecord {
        tenant: "acme".to_owned(),
        name: "shift.created".to_owned(),
        description: None,
        schema: Some(r#"{"type":"object"}"#.to_owned()),
        created_at: NOW,
    };
    assert_eq!(
        to_v(EventType::new(&e))["schema"],
        json!({"type": "object"})
    );
    assert_eq!(
        to_v(TenantList {
            data: vec![],
            next_cursor: None
        }),
        json!({"data": [], "next_cursor": null})
    );
    assert_eq!(
        to_v(Error::new("bad_request", "invalid input", &[])),
        json!({"error": {"code": "bad_request", "title": "Bad request",
            "message": "invalid input", "reasons": []}})
    );
}
