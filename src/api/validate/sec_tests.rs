//! Unit tests of the security rules in validation: masked secrets bound to their
//! destination, IPv6 zone ids, control characters in names and idempotency keys.
//! Test code only; it reuses the fixtures of `validate::tests`.

use std::collections::BTreeMap;

use serde_json::json;

use super::tests::{assert_has, ctx, reasons, stored};
use super::*;
use crate::model::OAuthConfig;

fn with_oauth() -> Webhook {
    let mut w = stored();
    w.oauth = Some(OAuthConfig {
        token_url: "https://auth.example.com/token".to_owned(),
        client_id: "c".to_owned(),
        client_secret: Secret::new("stored-secret"),
        scope: None,
        headers: BTreeMap::from([("X-Tenant".to_owned(), Secret::new("stored-tenant"))]),
    });
    w
}

#[test]
fn a_mask_keeps_header_values_only_while_the_url_stays_on_its_host() {
    let current = stored();
    let moved = "headers.X-Api-Key must be sent again: url moves to another host";
    // Another host, scheme or port: the masked (or omitted) value must be re-sent.
    for url in [
        "https://attacker.example/hook",
        "http://example.com/hook",
        "https://example.com:8443/hook",
    ] {
        let r = reasons(webhook_patch(
            &json!({"url": url, "headers": {"X-Api-Key": "****"}}),
            &current,
            &ctx(false),
        ));
        assert_eq!(r, [moved], "{url}");
        let r = reasons(webhook_patch(&json!({"url": url}), &current, &ctx(false)));
        assert_eq!(r, [moved], "{url} with headers left out");
    }
    // Sending the value again, or dropping the header, is fine.
    let body = json!({"url": "https://attacker.example/hook", "headers": {"X-Api-Key": "new"}});
    let mut w = current.clone();
    webhook_patch(&body, &current, &ctx(true))
        .unwrap_or_else(|r| panic!("{r:?}"))
        .apply(&mut w, 0);
    assert_eq!(w.headers["X-Api-Key"].expose(), "new");
    let body = json!({"url": "https://attacker.example/hook", "headers": null});
    assert!(webhook_patch(&body, &current, &ctx(true)).is_ok());
    // Same scheme, host and port (another path, explicit default port): kept.
    let body = json!({"url": "https://EXAMPLE.com:443/other", "headers": {"X-Api-Key": "****"}});
    let mut w = current.clone();
    webhook_patch(&body, &current, &ctx(true))
        .unwrap_or_else(|r| panic!("{r:?}"))
        .apply(&mut w, 0);
    assert_eq!(w.headers["X-Api-Key"].expose(), "stored-value");
}

#[test]
fn a_mask_keeps_oauth_secrets_only_while_the_token_url_stays_on_its_host() {
    let current = with_oauth();
    let body = json!({"oauth_configuration": {
        "token_url": "https://evil.example/token", "client_id": "c",
        "client_secret": "****", "headers": {"X-Tenant": "****"}}});
    let r = reasons(webhook_patch(&body, &current, &ctx(true)));
    let why = "oauth_configuration.token_url moves to another host";
    assert_has(
        &r,
        &format!("oauth_configuration.client_secret must be sent again: {why}"),
    );
    assert_has(
        &r,
        &format!("oauth_configuration.headers.X-Tenant must be sent again: {why}"),
    );
    assert_eq!(r.len(), 2, "{r:?}");

    // Real values move fine; the same host keeps masked ones.
    let body = json!({"oauth": {"token_url": "https://evil.example/token", "client_id": "c",
        "client_secret": "fresh", "headers": {"X-Tenant": "t2"}}});
    let mut w = current.clone();
    webhook_patch(&body, &current, &ctx(true))
        .unwrap_or_else(|r| panic!("{r:?}"))
        .apply(&mut w, 0);
    let o = w.oauth.expect("oauth");
    assert_eq!(o.client_secret.expose(), "fresh");
    assert_eq!(o.headers["X-Tenant"].expose(), "t2");
    let body = json!({"oauth": {"token_url": "https://auth.example.com/v2/token",
        "client_id": "c", "client_secret": "****", "headers": {"X-Tenant": "****"}}});
    let mut w = current.clone();
    webhook_patch(&body, &current, &ctx(true))
        .unwrap_or_else(|r| panic!("{r:?}"))
        .apply(&mut w, 0);
    let o = w.oauth.expect("oauth");
    assert_eq!(o.client_secret.expose(), "stored-secret");
    assert_eq!(o.headers["X-Tenant"].expose(), "stored-tenant");

    // Moving only the webhook url leaves the OAuth secrets with their token url.
    let body = json!({"url": "https://elsewhere.example/hook", "headers": {"X-Api-Key": "v"}});
    assert!(webhook_patch(&body, &current, &ctx(true)).is_ok());
}

#[test]
fn ipv6_zone_ids_are_refused() {
    for url in [
        "http://[fe80::1%25lo]/",
        "http://[fe80::1%lo]/",
        "https://[fe80::1%25eth0]:8443/x",
    ] {
        let body = json!({"url": url, "event_types": ["*"]});
        let r = reasons(webhook_create(&body, &ctx(false)));
        assert_eq!(
            r,
            ["url host must not carry an IPv6 zone id (\"%\" inside the brackets)"],
            "{url}"
        );
    }
    let body = json!({"url": "https://example.com/", "event_types": ["*"], "oauth": {
        "token_url": "http://[fe80::1%25lo]/token", "client_id": "c", "client_secret": "s"}});
    let r = reasons(webhook_create(&body, &ctx(false)));
    assert_eq!(
        r,
        ["oauth.token_url host must not carry an IPv6 zone id (\"%\" inside the brackets)"]
    );
    // A percent elsewhere is no zone id.
    let body = json!({"url": "https://[2001:db8::1]/a%20b", "event_types": ["*"]});
    assert!(webhook_create(&body, &ctx(false)).is_ok());
}

#[test]
fn control_characters_are_refused_in_names_and_idempotency_keys() {
    for name in ["a\r\nInjected: yes", "a\nb", "a\u{0}b", "a\tb", "a\u{85}b"] {
        let r = reasons(tenant_create(&json!({"name": name})));
        assert_eq!(
            r,
            ["name must not contain control characters (such as CR or LF)"]
        );
        let r = reasons(api_key_create(
            &json!({"tenant": "t", "name": name, "scopes": ["events:read"]}),
        ));
        assert_eq!(
            r,
            ["name must not contain control characters (such as CR or LF)"]
        );
    }
    let body = br#"{"type":"t","data":1,"idempotency_key":"k\r\nX: y"}"#;
    let r = reasons(event_create(body, None));
    assert_eq!(
        r,
        ["idempotency_key must not contain control characters (such as CR or LF)"]
    );
    let r = reasons(event_create(br#"{"type":"t","data":1}"#, Some("k\tx")));
    assert_eq!(
        r,
        ["Idempotency-Key header must not contain control characters (such as CR or LF)"]
    );
    let r = reasons(event_batch(
        br#"[{"type":"t","data":1,"idempotency_key":"a\nb"}]"#,
    ));
    assert_eq!(
        r,
        ["events[0]: idempotency_key must not contain control characters (such as CR or LF)"]
    );
    // Ordinary text, Unicode included, is fine.
    assert!(tenant_create(&json!({"name": "Acme Gesundheit GmbH ü"})).is_ok());
    let body = r#"{"type":"t","data":1,"idempotency_key":"order-42/é"}"#;
    assert!(event_create(body.as_bytes(), None).is_ok());
}
