//! Response bodies: domain model in, JSON out. Pure code; it must never reveal a
//! secret (header value, OAuth client secret, signing secret) unless the caller
//! asked for it on purpose (`reveal`, `secrets_json`), and never do I/O.
//!
//! Shapes follow DESIGN.md section 2: single objects bare, lists as
//! `{"data": [...], "next_cursor": ...}`, timestamps RFC 3339 UTC, errors as
//! `{"error": {"code", "title", "message", "reasons"}}`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::model::{self, ApiKey, EventType, OAuthConfig, Secret, Tenant, UnixMs, Webhook};

/// What reads show instead of a secret value. A PATCH that sends it back for a
/// header or the OAuth client secret keeps the stored value.
pub const MASK: &str = "****";

/// A map of secret header values, masked unless `reveal`.
fn headers_json(headers: &BTreeMap<String, Secret>, reveal: bool) -> Value {
    let map: Map<String, Value> = headers
        .iter()
        .map(|(name, value)| {
            let shown = if reveal { value.expose() } else { MASK };
            (name.clone(), Value::from(shown))
        })
        .collect();
    Value::Object(map)
}

fn oauth_json(o: &OAuthConfig, reveal: bool) -> Value {
    json!({
        "token_url": o.token_url,
        "client_id": o.client_id,
        "client_secret": if reveal { o.client_secret.expose() } else { MASK },
        "scope": o.scope,
        "headers": headers_json(&o.headers, reveal),
    })
}

/// The webhook as the API shows it, with the secrets active now. `reveal` (create
/// only) shows header values, the OAuth client secret and the signing secrets;
/// otherwise each is `"****"`.
pub fn webhook_json(w: &Webhook, reveal: bool) -> Value {
    webhook_json_at(w, reveal, model::now_ms())
}

/// [`webhook_json`] with an explicit clock, which decides which secrets are
/// still active (an old secret past its grace period is not listed).
pub fn webhook_json_at(w: &Webhook, reveal: bool, now: UnixMs) -> Value {
    let secrets: Vec<&str> = w
        .active_secrets(now)
        .map(|s| if reveal { s.expose() } else { MASK })
        .collect();
    json!({
        "id": w.id,
        "tenant": w.tenant,
        "url": w.url,
        "event_types": w.event_types,
        "channels": w.channels,
        "description": w.description,
        "headers": headers_json(&w.headers, reveal),
        "oauth": w.oauth.as_ref().map(|o| oauth_json(o, reveal)),
        "secrets": secrets,
        "notification_email": w.notification_email,
        "enabled": w.enabled,
        "disabled_reason": w.disabled_reason,
        "disabled_at": w.disabled_at.map(model::rfc3339),
        "metadata": w.metadata,
        "rate_limit_per_second": w.rate_limit_per_second,
        "created_at": model::rfc3339(w.created_at),
        "updated_at": model::rfc3339(w.updated_at),
    })
}

/// The `ETag` of a webhook at `version`: a strong entity tag, `"<version>"`.
pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// `GET /v1/webhooks/{id}/secrets`: the plain secrets active at `now`, current
/// first, as `{"secrets": ["whsec_...", ...]}`.
pub fn secrets_json(w: &Webhook, now: UnixMs) -> Value {
    let secrets: Vec<&str> = w.active_secrets(now).map(Secret::expose).collect();
    json!({ "secrets": secrets })
}

/// A tenant: `{id, name, created_at}`.
pub fn tenant_json(t: &Tenant) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "created_at": model::rfc3339(t.created_at),
    })
}

/// An API key record. `key` is the full key, given only in the creation answer
/// (it is never stored, so it cannot be shown again).
pub fn api_key_json(k: &ApiKey, key: Option<&str>) -> Value {
    let scopes: Vec<&str> = k.scopes.iter().map(|s| s.as_str()).collect();
    let mut v = json!({
        "id": k.id,
        "tenant": k.tenant,
        "name": k.name,
        "prefix": k.prefix,
        "scopes": scopes,
        "created_at": model::rfc3339(k.created_at),
    });
    if let (Some(key), Some(obj)) = (key, v.as_object_mut()) {
        obj.insert("key".to_owned(), Value::from(key));
    }
    v
}

/// A catalogue entry: `{name, description, schema, created_at}`. The schema was
/// validated as a JSON object on the way in; if stored text ever fails to parse
/// it is shown as `null` rather than failing the whole answer.
pub fn event_type_json(e: &EventType) -> Value {
    let schema = e
        .schema
        .as_deref()
        .and_then(|s| serde_json::from_str::<Value>(s).ok());
    json!({
        "name": e.name,
        "description": e.description,
        "schema": schema,
        "created_at": model::rfc3339(e.created_at),
    })
}

/// A page of a list: `{"data": [...], "next_cursor": "..." | null}`.
pub fn list_json(items: Vec<Value>, next_cursor: Option<String>) -> Value {
    json!({ "data": items, "next_cursor": next_cursor })
}

/// The human title of an error code (seed 003 shows one next to the code).
fn error_title(code: &str) -> &'static str {
    match code {
        "bad_request" => "Bad request",
        "unauthorized" => "Unauthorized",
        "forbidden" => "Forbidden",
        "not_found" => "Not found",
        "conflict" => "Conflict",
        "payload_too_large" => "Payload too large",
        "unsupported_media_type" => "Unsupported media type",
        "too_many_requests" => "Too many requests",
        "method_not_allowed" => "Method not allowed",
        "unavailable" => "Service unavailable",
        _ => "Internal server error",
    }
}

/// An error body: `{"error": {"code", "title", "message", "reasons"}}`. `reasons`
/// is always present (an empty array when there is nothing to list), so clients
/// can read it without checking for its absence.
pub fn error_json(code: &str, message: &str, reasons: &[String]) -> Value {
    json!({
        "error": {
            "code": code,
            "title": error_title(code),
            "message": message,
            "reasons": reasons,
        }
    })
}

/// An event as the API shows it (`data` parsed back into JSON).
pub fn event_json(e: &model::Event) -> Value {
    let data: Value = serde_json::from_str(&e.payload).unwrap_or(Value::Null);
    json!({
        "id": e.id,
        "type": e.event_type,
        "data": data,
        "channels": e.channels,
        "idempotency_key": e.idempotency_key,
        "created_at": model::rfc3339(e.created_at),
    })
}

/// A delivery as the API shows it.
pub fn delivery_json(d: &model::Delivery) -> Value {
    json!({
        "id": d.id,
        "event_id": d.event_id,
        "webhook_id": d.webhook_id,
        "event_type": d.event_type,
        "status": d.state.as_str(),
        "attempts": d.attempts,
        "next_attempt_at": d.next_attempt_at.map(model::rfc3339),
        "last_status_code": d.last_status,
        "last_error": d.last_error,
        "created_at": model::rfc3339(d.created_at),
        "updated_at": model::rfc3339(d.updated_at),
    })
}

/// One attempt as the API shows it.
pub fn attempt_json(a: &model::Attempt) -> Value {
    json!({
        "number": a.number,
        "at": model::rfc3339(a.at),
        "trigger": a.trigger.as_str(),
        "status_code": a.status,
        "error": a.error,
        "latency_ms": a.latency_ms,
        "response_body": a.response_body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Scope, SigningSecret};

    const SIGNING: &str = "whsec_c0RWMWFLcWl0Q0xDbEkxMm03VVBGYkFB";
    const OLD_SIGNING: &str = "whsec_bXJ5ZWZnSFBCVkhKd3V4MG8zQllXN2hQ";
    const NOW: UnixMs = 1_763_790_000_000;

    fn webhook() -> Webhook {
        Webhook {
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
        }
    }

    #[test]
    fn masked_webhook_hides_every_secret() {
        let v = webhook_json_at(&webhook(), false, NOW);
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
        let v = webhook_json_at(&webhook(), true, NOW);
        assert_eq!(v["headers"]["X-Api-Key"], "abcdef123456");
        assert_eq!(v["oauth"]["client_secret"], "my-client-secret");
        assert_eq!(v["secrets"], json!([SIGNING, OLD_SIGNING]));
    }

    #[test]
    fn webhook_fields_and_timestamps() {
        let v = webhook_json_at(&webhook(), false, NOW);
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
        assert_eq!(webhook_json_at(&w, false, NOW)["oauth"], Value::Null);
    }

    #[test]
    fn expired_secret_is_not_listed() {
        let w = webhook();
        assert_eq!(
            webhook_json_at(&w, false, NOW + 1000)["secrets"],
            json!(["****"])
        );
        assert_eq!(
            secrets_json(&w, NOW),
            json!({ "secrets": [SIGNING, OLD_SIGNING] })
        );
        assert_eq!(
            secrets_json(&w, NOW + 1000),
            json!({ "secrets": [SIGNING] })
        );
    }

    #[test]
    fn api_key_shows_key_only_when_given() {
        let k = ApiKey {
            id: "key_1".to_owned(),
            tenant: "acme".to_owned(),
            name: "ci".to_owned(),
            scopes: vec![Scope::WebhooksRead, Scope::EventsWrite],
            hash: [0; 32],
            prefix: "hbk_ab12".to_owned(),
            created_at: NOW,
        };
        let listed = api_key_json(&k, None);
        assert!(listed.get("key").is_none());
        assert!(listed.get("hash").is_none());
        assert_eq!(listed["scopes"], json!(["webhooks:read", "events:write"]));
        assert_eq!(api_key_json(&k, Some("hbk_secret"))["key"], "hbk_secret");
    }

    #[test]
    fn small_shapes() {
        let t = Tenant {
            id: "acme".to_owned(),
            name: "Acme".to_owned(),
            created_at: NOW,
        };
        assert_eq!(
            tenant_json(&t),
            json!({"id": "acme", "name": "Acme", "created_at": model::rfc3339(NOW)})
        );
        let e = EventType {
            tenant: "acme".to_owned(),
            name: "shift.created".to_owned(),
            description: None,
            schema: Some(r#"{"type":"object"}"#.to_owned()),
            created_at: NOW,
        };
        assert_eq!(event_type_json(&e)["schema"], json!({"type": "object"}));
        assert_eq!(
            list_json(vec![json!(1)], None),
            json!({"data": [1], "next_cursor": null})
        );
        assert_eq!(
            error_json("bad_request", "invalid input", &[]),
            json!({"error": {"code": "bad_request", "title": "Bad request",
                "message": "invalid input", "reasons": []}})
        );
    }
}
