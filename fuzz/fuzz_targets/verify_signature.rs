//! Fuzzes the signature verifier with arbitrary headers, secrets, ids and bodies:
//! it must answer Ok or an error, never panic, and a header signed by `sign`
//! always verifies.
#![no_main]

use hookbox::delivery::signer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Split the input into secret | id | header | body on 0xff bytes.
    let mut parts = data.splitn(4, |b| *b == 0xff);
    let secret = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let id = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let header = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let body = parts.next().unwrap_or_default();
    let ts = i64::from(data.len() as u32) * 7919 - 1_000_000;
    let key = signer::decode_secret(&secret).unwrap_or_else(|_| secret.as_bytes().to_vec());
    let _ = signer::verify(
        &key,
        &id,
        ts,
        body,
        &header,
        ts,
        Some(std::time::Duration::from_secs(300)),
    );
    let _ = signer::verify(
        &key,
        &id,
        i64::MIN,
        body,
        &header,
        i64::MAX,
        Some(std::time::Duration::from_secs(u64::MAX)),
    );
    let good = signer::sign(&[&key], &id, ts, body);
    assert!(signer::verify(&key, &id, ts, body, &good, ts, None).is_ok());
});
