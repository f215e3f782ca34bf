//! Fuzzes event ingest validation on raw bytes (the hot path parses bytes itself):
//! `event_create` and `event_batch` answer a spec or reasons, never panic, and an
//! accepted event keeps `data` as valid JSON.
#![no_main]

use hookbox::api::validate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(spec) = validate::event_create(data, None) {
        assert!(serde_json::from_str::<serde_json::Value>(spec.data.get()).is_ok());
    }
    let _ = validate::event_create(data, Some("key-1"));
    let _ = validate::event_batch(data);
});
