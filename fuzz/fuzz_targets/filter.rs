//! Fuzzes the payload-filter parser on raw bytes: `Filter::from_json` answers a
//! filter or reasons, never panics; an accepted filter's canonical text parses back
//! to the same filter, and evaluating it against the input as `data` never panics.
#![no_main]

use hookbox::filter::{Filter, Subject};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(filter) = Filter::from_json(text) {
        let again = Filter::from_json(filter.source()).expect("canonical text parses");
        assert_eq!(again, filter);
        let subject = Subject::new("order.paid", 1_796_046_872_123, text);
        assert_eq!(filter.matches(&subject), filter.explain(&subject).is_empty());
    }
});
