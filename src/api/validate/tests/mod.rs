//! Unit tests of the validators, table-driven, one file per resource; this file
//! holds the shared fixtures and the never-panics property.

mod bodies;
mod patch;
mod webhook;

pub(super) use std::collections::BTreeMap;

pub(super) use super::*;
pub(super) use crate::model::{OAuthConfig, Scope, Secret, SigningSecret, UnixMs, Webhook};
pub(super) use base64::Engine as _;
pub(super) use serde_json::json;

/// The seeds' catalogues (a sample of each), plus an operational event.
pub(super) const CATALOGUE: &[&str] = &[
    "IN_PROGRESS",
    "PSV_COMPLETED",
    "PROVIDER_CRED_APPROVED",
    "PATIENT_CREATED",
    "APPOINTMENT_CANCELLED",
    "validation_request.approved",
    "donation.hosted.payment_received",
    "shift.created",
    "shift.report.created",
    "hookbox.webhook.disabled",
];
pub(super) const S1: &str = "whsec_sDV1aKqitCLClI12m7UPFbAAvZfZquJw";
pub(super) const S2: &str = "whsec_mryefgHPBVHJwux0o3BYW7hPM0BZlcCa";
pub(super) const NOW: UnixMs = 1_763_790_000_000;

pub(super) fn known(name: &str) -> bool {
    CATALOGUE.contains(&name)
}

pub(super) fn blocked(host: &str) -> Option<String> {
    match host {
        "127.0.0.1" | "::1" => Some("loopback address".to_owned()),
        "169.254.169.254" => Some("cloud metadata address".to_owned()),
        _ => None,
    }
}

pub(super) fn ctx(require_https: bool) -> Ctx<'static> {
    Ctx {
        require_https,
        known_event_type: &known,
        host_blocked: &blocked,
    }
}

pub(super) fn reasons<T: std::fmt::Debug>(res: Result<T, Vec<String>>) -> Vec<String> {
    match res {
        Ok(v) => panic!("expected reasons, got {v:?}"),
        Err(r) => r,
    }
}

pub(super) fn assert_has(r: &[String], want: &str) {
    assert!(r.iter().any(|x| x == want), "missing {want:?} in {r:#?}");
}

pub(super) fn stored() -> Webhook {
    Webhook {
        id: "wh_1".to_owned(),
        tenant: "acme".to_owned(),
        url: "https://example.com/hook".to_owned(),
        event_types: vec!["IN_PROGRESS".to_owned()],
        channels: vec!["P-1".to_owned()],
        description: Some("old".to_owned()),
        headers: BTreeMap::from([("X-Api-Key".to_owned(), Secret::new("stored-value"))]),
        oauth: None,
        secrets: vec![SigningSecret {
            secret: Secret::new(S1),
            expires_at: None,
        }],
        notification_email: Some("ops@example.com".to_owned()),
        enabled: true,
        disabled_reason: None,
        disabled_at: None,
        metadata: BTreeMap::from([("team".to_owned(), "a".to_owned())]),
        rate_limit_per_second: Some(5),
        created_at: NOW - 1000,
        updated_at: NOW - 1000,
        deleted_at: None,
        failing_since: None,
        version: 1,
        ordering: Default::default(),
        filter: None,
    }
}

#[test]
fn quote_cuts_on_char_boundaries() {
    let s = "é".repeat(100);
    let q = quote(&s);
    assert!(q.ends_with("\"...") && q.chars().count() == 64 + 5, "{q}");
}

proptest::proptest! {
    #[test]
    fn arbitrary_input_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256), s in ".{0,40}") {
        let _ = event_create(&bytes, Some(&s));
        let _ = event_batch(&bytes);
        let current = stored();
        for body in [
            json!({"url": s, "event_types": [s], "headers": {&s: &s}, "secrets": [&s],
                "notification_email": s, "oauth": {"token_url": s, "client_id": s, "client_secret": s}}),
            json!({&s: s, "channels": [s], "metadata": {&s: s}}),
        ] {
            let _ = webhook_create(&body, &ctx(true));
            let _ = webhook_patch(&body, &current, &ctx(false));
            let _ = rotate(&body);
            let _ = recover_at(&body, NOW);
            let _ = tenant_create(&body);
            let _ = api_key_create(&body);
            let _ = event_type_create(&body);
        }
    }
}
