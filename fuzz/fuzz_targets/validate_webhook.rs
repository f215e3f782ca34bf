//! Fuzzes the webhook validators: any bytes that parse as JSON go through
//! `webhook_create`, `rotate`, `tenant_create`, `api_key_create` and
//! `event_type_create`, which must answer a spec or reasons, never panic.
#![no_main]

use hookbox::api::validate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let known = |name: &str| name.len().is_multiple_of(2);
    let blocked = |host: &str| host.starts_with("10.").then(|| "private".to_owned());
    let ctx = validate::Ctx {
        require_https: data.first().is_some_and(|b| b & 1 == 1),
        known_event_type: &known,
        host_blocked: &blocked,
    };
    if let Err(reasons) = validate::webhook_create(&body, &ctx) {
        assert!(!reasons.is_empty(), "a refusal names a reason");
    }
    let _ = validate::rotate(&body);
    let _ = validate::tenant_create(&body);
    let _ = validate::api_key_create(&body);
    let _ = validate::event_type_create(&body);
    let _ = validate::test_event(&body, &ctx);
    let _ = validate::recover(&body);
});
