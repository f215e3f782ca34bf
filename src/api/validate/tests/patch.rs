//! Patch, enable/disable and the small webhook bodies (rotate, test, recover).

use super::*;

#[test]
fn patch_null_clears_absent_keeps_secrets_refused() {
    let current = stored();
    let body = json!({"description": null, "channels": null, "headers": null, "metadata": null,
        "notification_email": null, "rate_limit_per_second": null, "oauth": null});
    let patch = webhook_patch(&body, &current, &ctx(true)).unwrap_or_else(|r| panic!("{r:?}"));
    let mut w = current.clone();
    patch.apply(&mut w, NOW);
    assert_eq!(w.description, None);
    assert!(w.channels.is_empty() && w.headers.is_empty() && w.metadata.is_empty());
    assert_eq!(
        (w.notification_email, w.rate_limit_per_second),
        (None, None)
    );
    assert_eq!(
        (w.url, w.event_types),
        (current.url.clone(), current.event_types.clone())
    );
    assert_eq!(w.updated_at, NOW);

    let patch = webhook_patch(
        &json!({"events": ["shift.*"], "description": "new"}),
        &current,
        &ctx(true),
    )
    .unwrap_or_else(|r| panic!("{r:?}"));
    let mut w = current.clone();
    patch.apply(&mut w, NOW);
    assert_eq!(w.event_types, ["shift.*"]);
    assert_eq!(w.description.as_deref(), Some("new"));
    assert_eq!(
        (w.channels, w.headers),
        (current.channels.clone(), current.headers.clone())
    );

    let r = reasons(webhook_patch(
        &json!({"url": null, "event_types": null, "enabled": null, "secrets": [S1]}),
        &current,
        &ctx(true),
    ));
    assert_eq!(
        r,
        [
            "url must not be null",
            "event_types must not be null",
            "secrets cannot be changed here; use POST /v1/webhooks/{id}/secrets/rotate",
            "enabled must be a boolean",
        ]
    );
    let r = reasons(webhook_patch(
        &json!({"url": "http://e.com", "colour": 1}),
        &current,
        &ctx(true),
    ));
    assert_eq!(r, ["url must be https", "unknown field \"colour\""]);
}

#[test]
fn patch_authorization_and_masks_use_the_state_after_the_patch() {
    let mut current = stored();
    current
        .headers
        .insert("Authorization".to_owned(), Secret::new("Bearer x"));
    let oauth =
        json!({"token_url": "https://auth.e.com/t", "client_id": "c", "client_secret": "s"});
    // Setting oauth while the stored headers carry Authorization is refused...
    let r = reasons(webhook_patch(
        &json!({"oauth": oauth}),
        &current,
        &ctx(true),
    ));
    assert_eq!(
        r,
        ["header \"Authorization\" is reserved when oauth is set"]
    );
    // ...unless the same patch replaces the headers.
    let body = json!({"oauth": oauth, "headers": {"X-Api-Key": "****"}});
    let patch = webhook_patch(&body, &current, &ctx(true)).unwrap_or_else(|r| panic!("{r:?}"));
    let mut w = current.clone();
    patch.apply(&mut w, NOW);
    // The mask kept the stored value; the dropped header is gone.
    assert_eq!(w.headers.len(), 1);
    assert_eq!(w.headers["X-Api-Key"].expose(), "stored-value");

    // With oauth stored, adding Authorization is refused; a masked client secret keeps the stored one.
    let mut with_oauth = stored();
    with_oauth.oauth = Some(OAuthConfig {
        token_url: "https://auth.e.com/t".to_owned(),
        client_id: "c".to_owned(),
        client_secret: Secret::new("stored-secret"),
        scope: None,
        headers: BTreeMap::new(),
    });
    let r = reasons(webhook_patch(
        &json!({"headers": {"authorization": "x"}}),
        &with_oauth,
        &ctx(true),
    ));
    assert_eq!(
        r,
        ["header \"authorization\" is reserved when oauth is set"]
    );
    let body = json!({"oauth": {"token_url": "https://auth.e.com/t2", "client_id": "c",
        "client_secret": "****", "scope": "read"}});
    let patch = webhook_patch(&body, &with_oauth, &ctx(true)).unwrap_or_else(|r| panic!("{r:?}"));
    let mut w = with_oauth.clone();
    patch.apply(&mut w, NOW);
    let o = w.oauth.unwrap_or_else(|| panic!("oauth dropped"));
    assert_eq!(
        (o.token_url.as_str(), o.client_secret.expose()),
        ("https://auth.e.com/t2", "stored-secret")
    );
    // Clearing oauth frees Authorization again.
    assert!(
        webhook_patch(
            &json!({"oauth": null, "headers": {"Authorization": "y"}}),
            &with_oauth,
            &ctx(true)
        )
        .is_ok()
    );
}

#[test]
fn enabling_and_disabling() {
    let mut w = stored();
    WebhookPatch {
        enabled: Some(false),
        ..Default::default()
    }
    .apply(&mut w, NOW);
    assert!(!w.enabled);
    assert_eq!(
        (w.disabled_reason.as_deref(), w.disabled_at),
        (Some("disabled by API"), Some(NOW))
    );

    w.disabled_reason = Some("failing for 5 days".to_owned());
    w.failing_since = Some(NOW - 10);
    WebhookPatch {
        enabled: Some(true),
        ..Default::default()
    }
    .apply(&mut w, NOW + 1);
    assert!(w.enabled);
    assert_eq!(
        (w.disabled_reason, w.disabled_at, w.failing_since),
        (None, None, None)
    );
    assert_eq!(w.updated_at, NOW + 1);
}

#[test]
fn small_bodies() {
    let spec = rotate(&json!({})).unwrap_or_else(|r| panic!("{r:?}"));
    assert_eq!(
        (spec.secret, spec.grace_seconds),
        (None, DEFAULT_GRACE_SECONDS)
    );
    let spec =
        rotate(&json!({"secret": S2, "grace_seconds": 0})).unwrap_or_else(|r| panic!("{r:?}"));
    assert_eq!(
        spec.secret.map(|s| s.expose().to_owned()).as_deref(),
        Some(S2)
    );
    let r = reasons(rotate(
        &json!({"secret": "nope", "grace_seconds": 604801, "x": 1}),
    ));
    assert_eq!(
        r,
        [
            "secret must start with \"whsec_\"",
            "grace_seconds must be an integer between 0 and 604800",
            "unknown field \"x\"",
        ]
    );

    let spec = test_event(
        &json!({"message": "hi", "eventType": "IN_PROGRESS"}),
        &ctx(true),
    )
    .unwrap_or_else(|r| panic!("{r:?}"));
    assert_eq!(
        (spec.event_type.as_str(), spec.message.as_str()),
        ("IN_PROGRESS", "hi")
    );
    assert!(test_event(&json!({"event_type": "IN_PROGRESS"}), &ctx(true)).is_ok());
    let r = reasons(test_event(
        &json!({"event_type": "NOPE", "message": 1}),
        &ctx(true),
    ));
    assert_eq!(
        r,
        [
            "event type \"NOPE\" is not in the catalogue",
            "message must be a string"
        ]
    );

    assert_eq!(
        recover_at(&json!({"since": "2025-11-22T05:00:00Z"}), NOW),
        Ok(1_763_787_600_000)
    );
    let r = reasons(recover_at(&json!({"since": "2030-01-01T00:00:00Z"}), NOW));
    assert_eq!(r, ["since must not be in the future"]);
    let r = reasons(recover_at(&json!({"since": "yesterday"}), NOW));
    assert_eq!(
        r,
        ["since must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z"]
    );
    assert_eq!(reasons(recover_at(&json!({}), NOW)), ["since is required"]);
}

/// JSON Schema (and so the document) calls `5.0` an integer: integral floats are
/// accepted where an integer is, fractions still refused (found by Schemathesis).
#[test]
fn integral_floats_are_integers() {
    let spec = rotate(&json!({"grace_seconds": 125415.0})).unwrap_or_else(|r| panic!("{r:?}"));
    assert_eq!(spec.grace_seconds, 125_415);
    assert_eq!(
        reasons(rotate(&json!({"grace_seconds": 1.5}))),
        ["grace_seconds must be an integer between 0 and 604800"]
    );
    let p = webhook_patch(
        &json!({"rate_limit_per_second": 5.0}),
        &stored(),
        &ctx(true),
    )
    .unwrap_or_else(|r| panic!("{r:?}"));
    assert_eq!(p.rate_limit_per_second, Some(Some(5)));
}
