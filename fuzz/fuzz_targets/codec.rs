//! Fuzzes the store's records: decoding any bytes as any record type (any version
//! this build knows) fails or succeeds, never panics, and a record that decodes
//! re-encodes to bytes that decode again.
#![no_main]

use hookbox::model::{Attempt, Delivery, Event, Webhook};
use hookbox::store::records::Record;
use libfuzzer_sys::fuzz_target;

fn check<T: Record>(data: &[u8]) {
    if let Ok(value) = T::from_bytes(data) {
        let again = value.to_bytes().expect("a decoded record encodes");
        assert!(T::from_bytes(&again).is_ok(), "re-encoded record decodes");
    }
}

fuzz_target!(|data: &[u8]| {
    check::<Event>(data);
    check::<Delivery>(data);
    check::<Webhook>(data);
    check::<Attempt>(data);
});
