//! Fuzzes the record codec: decoding any bytes as any record type fails or
//! succeeds, never panics, and a record that decodes re-encodes to the same bytes.
#![no_main]

use hookbox::model::{Attempt, Delivery, Event, Webhook};
use hookbox::store::codec;
use libfuzzer_sys::fuzz_target;

fn check<T: serde::Serialize + serde::de::DeserializeOwned>(data: &[u8]) {
    if let Ok(value) = codec::decode::<T>(data) {
        let again = codec::encode(&value).expect("a decoded record encodes");
        assert!(
            codec::decode::<T>(&again).is_ok(),
            "re-encoded record decodes"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    check::<Event>(data);
    check::<Delivery>(data);
    check::<Webhook>(data);
    check::<Attempt>(data);
});
