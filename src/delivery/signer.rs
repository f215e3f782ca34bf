//! Standard Webhooks signing and verification: pure functions of keys, ids, times and
//! bytes. This module must never do I/O, read the clock, draw its own randomness or
//! log a secret; callers pass the time and the random source in.
//!
//! The signed content is `"{msg_id}.{timestamp}.{body}"` and a signature header is a
//! space-separated list of `v1,<base64 HMAC-SHA256>` entries, one per active secret
//! (<https://www.standardwebhooks.com/>).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The prefix of a signing secret's text form.
pub const SECRET_PREFIX: &str = "whsec_";

/// The signature scheme version this module produces and accepts.
const VERSION: &str = "v1";

/// How far a timestamp may be from the receiver's clock by default, as receivers
/// using the official libraries enforce it.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// Length of a standard base64 encoding of a 32-byte HMAC-SHA256 tag.
const TAG_B64_LEN: usize = 44;

/// A signing secret that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The text after the optional `whsec_` prefix is not standard base64.
    #[error("signing secret is not valid base64 (expected whsec_ followed by standard base64)")]
    InvalidBase64(#[source] base64::DecodeError),
    /// The secret decodes to no bytes at all, which would sign with an empty key.
    #[error("signing secret is empty")]
    Empty,
}

/// Why a signature header does not authenticate a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The timestamp is further in the past than the tolerance allows (a replay, or a
    /// very late retry).
    #[error(
        "timestamp {timestamp} is {age_secs} s old, beyond the tolerance of {tolerance_secs} s"
    )]
    TimestampTooOld {
        timestamp: i64,
        age_secs: i64,
        tolerance_secs: u64,
    },
    /// The timestamp is further in the future than the tolerance allows (clock skew).
    #[error(
        "timestamp {timestamp} is {ahead_secs} s in the future, beyond the tolerance of {tolerance_secs} s"
    )]
    TimestampTooNew {
        timestamp: i64,
        ahead_secs: i64,
        tolerance_secs: u64,
    },
    /// The header is well formed but no `v1` entry matches the message.
    #[error("no signature matches (wrong secret, or the id, timestamp or body was altered)")]
    NoMatchingSignature,
    /// The header has no entry of the form `<version>,<signature>`.
    #[error("malformed signature header: {0}")]
    MalformedHeader(&'static str),
}

/// Generates a new signing secret: `whsec_` + standard base64 of 32 random bytes.
pub fn generate_secret<R: rand::Rng + ?Sized>(rng: &mut R) -> String {
    let mut key = [0u8; 32];
    rng.fill(&mut key);
    let mut out = String::with_capacity(SECRET_PREFIX.len() + TAG_B64_LEN);
    out.push_str(SECRET_PREFIX);
    STANDARD.encode_string(key, &mut out);
    out
}

/// Length of a generated plain secret (seed 004's form).
pub const PLAIN_SECRET_LEN: usize = 32;

/// Generates a plain secret, the form seed 004 documents: 32 random ASCII letters
/// and digits, used as the HMAC key by its UTF-8 bytes.
pub fn generate_plain_secret<R: rand::Rng + ?Sized>(rng: &mut R) -> String {
    const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..PLAIN_SECRET_LEN)
        .map(|_| char::from(ALPHANUMERIC[rng.random_range(0..ALPHANUMERIC.len())]))
        .collect()
}

/// The HMAC key bytes of a signing secret: with the `whsec_` prefix, the standard
/// base64 after it (Standard Webhooks); without it, a plain secret (seed 004's
/// form), whose key is its UTF-8 bytes.
pub fn decode_secret(s: &str) -> Result<Vec<u8>, SignError> {
    let key = match s.strip_prefix(SECRET_PREFIX) {
        Some(encoded) => STANDARD.decode(encoded).map_err(SignError::InvalidBase64)?,
        None => s.as_bytes().to_vec(),
    };
    if key.is_empty() {
        return Err(SignError::Empty);
    }
    Ok(key)
}

/// Signs one message with every key: the `webhook-signature` header value, one
/// `v1,<base64>` entry per key, in the order of `keys`.
pub fn sign(keys: &[&[u8]], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut out = String::with_capacity(keys.len() * (VERSION.len() + 1 + TAG_B64_LEN + 1));
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(VERSION);
        out.push(',');
        STANDARD.encode_string(tag(key, msg_id, timestamp, body), &mut out);
    }
    out
}

/// Checks a `webhook-signature` header the way a receiver does: the timestamp must
/// be within `tolerance` of `now_unix` (seconds; `None` skips the check) and at least
/// one `v1` entry must match the HMAC of the message under `key`. Entries of other
/// versions are ignored, as the specification requires.
pub fn verify(
    key: &[u8],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    signature_header: &str,
    now_unix: i64,
    tolerance: Option<Duration>,
) -> Result<(), VerifyError> {
    let entries = || {
        signature_header
            .split_ascii_whitespace()
            .filter_map(|entry| entry.split_once(','))
    };
    if entries().next().is_none() {
        return Err(VerifyError::MalformedHeader(
            "expected space-separated entries of the form v1,<base64>",
        ));
    }

    if let Some(tolerance) = tolerance {
        check_timestamp(timestamp, now_unix, tolerance)?;
    }

    let mut expected = [0u8; TAG_B64_LEN];
    // Invariant: a 32-byte tag always encodes to exactly 44 base64 characters, so
    // the buffer is large enough.
    let written = STANDARD
        .encode_slice(tag(key, msg_id, timestamp, body), &mut expected)
        .expect("a 32-byte tag encodes to 44 base64 characters");
    let expected = &expected[..written];

    // Every candidate is compared in constant time, and the loop does not stop at the
    // first match, so timing reveals nothing about which entry matched.
    let mut matched = subtle::Choice::from(0u8);
    for (version, signature) in entries() {
        if version == VERSION {
            matched |= signature.as_bytes().ct_eq(expected);
        }
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(VerifyError::NoMatchingSignature)
    }
}

/// Rejects timestamps outside `now_unix +- tolerance`.
fn check_timestamp(timestamp: i64, now_unix: i64, tolerance: Duration) -> Result<(), VerifyError> {
    let tolerance_secs = tolerance.as_secs();
    let limit = i64::try_from(tolerance_secs).unwrap_or(i64::MAX);
    // Saturating: a hostile timestamp near i64::MIN or MAX must not overflow.
    let age = now_unix.saturating_sub(timestamp);
    if age > limit {
        return Err(VerifyError::TimestampTooOld {
            timestamp,
            age_secs: age,
            tolerance_secs,
        });
    }
    let ahead = timestamp.saturating_sub(now_unix);
    if ahead > limit {
        return Err(VerifyError::TimestampTooNew {
            timestamp,
            ahead_secs: ahead,
            tolerance_secs,
        });
    }
    Ok(())
}

/// HMAC-SHA256 of `"{msg_id}.{timestamp}.{body}"`, fed piece by piece so the body
/// is never copied: this runs once per secret on every delivery attempt.
fn tag(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
    // Invariant: HMAC accepts keys of any length (long keys are hashed, short ones
    // padded), so `new_from_slice` cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    let mut digits = [0u8; 20];
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(decimal(timestamp, &mut digits));
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// Writes `n` in decimal into `buf` without allocating and returns the digits.
/// Twenty bytes hold every i64, the longest being `-9223372036854775808`.
fn decimal(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut rest = n.unsigned_abs();
    let mut start = buf.len();
    loop {
        start -= 1;
        // `rest % 10` is below 10, so the cast cannot truncate.
        buf[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        start -= 1;
        buf[start] = b'-';
    }
    &buf[start..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn key() -> Vec<u8> {
        decode_secret(SECRET).expect("the test vector secret is valid")
    }

    #[test]
    fn standard_webhooks_test_vector() {
        let key = key();
        assert_eq!(sign(&[&key], MSG_ID, TS, BODY), EXPECTED);
        assert_eq!(
            verify(
                &key,
                MSG_ID,
                TS,
                BODY,
                EXPECTED,
                TS,
                Some(DEFAULT_TOLERANCE)
            ),
            Ok(())
        );
    }

    #[test]
    fn decimal_matches_display() {
        for n in [0, 7, -7, 10, 1_614_265_330, i64::MAX, i64::MIN] {
            let mut buf = [0u8; 20];
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes(), "{n}");
        }
    }

    #[test]
    fn official_library_verifies_our_signatures() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let secret = generate_secret(&mut rng);
        let key = decode_secret(&secret).expect("generated secrets decode");
        let now = jiff::Timestamp::now().as_second();
        let body = br#"{"type":"shift.report.created","data":{"id":42}}"#;
        let header = sign(&[&key], "evt_01J", now, body);

        let mut headers = http::HeaderMap::new();
        headers.insert("webhook-id", http::HeaderValue::from_static("evt_01J"));
        headers.insert(
            "webhook-timestamp",
            http::HeaderValue::from_str(&now.to_string()).expect("digits are a valid header"),
        );
        headers.insert(
            "webhook-signature",
            http::HeaderValue::from_str(&header).expect("base64 is a valid header"),
        );
        let official = standardwebhooks::Webhook::new(&secret).expect("official lib takes it");
        official
            .verify(body, &headers)
            .expect("official library accepts our signature");

        // And a tampered body is refused by it too, so the check above is meaningful.
        assert!(official.verify(b"{}", &headers).is_err());
    }

    #[test]
    fn plain_secrets_sign_with_their_utf8_bytes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let plain = generate_plain_secret(&mut rng);
        assert_eq!(plain.len(), PLAIN_SECRET_LEN);
        assert!(plain.bytes().all(|b| b.is_ascii_alphanumeric()), "{plain}");
        assert_ne!(plain, generate_plain_secret(&mut rng));
        // Seed 004's example secret: its key is its 32 UTF-8 bytes, not the 24 bytes
        // its text would decode to as base64.
        let seed = "sDV1aKqitCLClI12m7UPFbAAvZfZquJw";
        let key = decode_secret(seed).expect("plain secrets decode");
        assert_eq!(key, seed.as_bytes());
        // The official library, given the same key bytes as base64, verifies it.
        let now = jiff::Timestamp::now().as_second();
        let body = br#"{"type":"shift.created","data":{}}"#;
        let header = sign(&[&key], "evt_p", now, body);
        let mut headers = http::HeaderMap::new();
        headers.insert("webhook-id", http::HeaderValue::from_static("evt_p"));
        headers.insert(
            "webhook-timestamp",
            http::HeaderValue::from_str(&now.to_string()).expect("digits"),
        );
        headers.insert(
            "webhook-signature",
            http::HeaderValue::from_str(&header).expect("base64"),
        );
        let as_standard = format!("{SECRET_PREFIX}{}", STANDARD.encode(seed));
        let official = standardwebhooks::Webhook::new(&as_standard).expect("valid");
        official.verify(body, &headers).expect("same key bytes");
    }

    #[test]
    fn generated_secrets_have_the_standard_shape() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let a = generate_secret(&mut rng);
        let b = generate_secret(&mut rng);
        assert_ne!(a, b);
        assert!(a.starts_with(SECRET_PREFIX));
        assert_eq!(decode_secret(&a).map(|k| k.len()).ok(), Some(32));
    }

    #[test]
    fn decode_secret_cases() {
        let cases: [(&str, Option<usize>); 5] = [
            (SECRET, Some(24)),
            // Without the prefix a secret is plain: its UTF-8 bytes are the key.
            ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", Some(32)),
            ("whsec_not base64!", None),
            ("whsec_", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(decode_secret(input).map(|k| k.len()).ok(), want, "{input}");
        }
    }

    #[test]
    fn two_keys_give_two_entries_each_verifying() {
        let old = key();
        let new = decode_secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").expect("valid");
        let header = sign(&[&new, &old], MSG_ID, TS, BODY);
        let entries: Vec<&str> = header.split(' ').collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[1], EXPECTED,
            "order is kept: the old key signs second"
        );
        for (i, k) in [&new, &old].into_iter().enumerate() {
            assert_eq!(verify(k, MSG_ID, TS, BODY, entries[i], TS, None), Ok(()));
            assert_eq!(verify(k, MSG_ID, TS, BODY, &header, TS, None), Ok(()));
        }
    }

    #[test]
    fn verify_cases() {
        let key = key();
        let tol = Some(DEFAULT_TOLERANCE);
        let wrong = decode_secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").expect("valid");
        let mismatch = Err(VerifyError::NoMatchingSignature);
        type Case<'a> = (&'a str, &'a [u8], &'a [u8], i64, &'a str, i64, bool);
        // (name, key, body, timestamp, header, now, ok)
        let cases: [Case; 10] = [
            ("valid", &key, BODY, TS, EXPECTED, TS, true),
            ("within tolerance", &key, BODY, TS, EXPECTED, TS + 300, true),
            ("wrong key", &wrong, BODY, TS, EXPECTED, TS, false),
            (
                "tampered body",
                &key,
                b"{\"test\": 1}",
                TS,
                EXPECTED,
                TS,
                false,
            ),
            (
                "tampered timestamp",
                &key,
                BODY,
                TS + 1,
                EXPECTED,
                TS,
                false,
            ),
            ("stale", &key, BODY, TS, EXPECTED, TS + 301, false),
            ("future", &key, BODY, TS, EXPECTED, TS - 301, false),
            (
                "other versions ignored",
                &key,
                BODY,
                TS,
                "v2,abc v1,xyz",
                TS,
                false,
            ),
            (
                "match among several",
                &key,
                BODY,
                TS,
                "v1,bm90IGl0 v1a,x v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                TS,
                true,
            ),
            ("empty header", &key, BODY, TS, "", TS, false),
        ];
        for (name, k, body, ts, header, now, ok) in cases {
            let got = verify(k, MSG_ID, ts, body, header, now, tol);
            assert_eq!(got.is_ok(), ok, "{name}: {got:?}");
        }
        assert_eq!(
            verify(&wrong, MSG_ID, TS, BODY, EXPECTED, TS, tol),
            mismatch
        );
        assert!(matches!(
            verify(&key, MSG_ID, TS, BODY, EXPECTED, TS + 301, tol),
            Err(VerifyError::TimestampTooOld { age_secs: 301, .. })
        ));
        assert!(matches!(
            verify(&key, MSG_ID, TS, BODY, EXPECTED, TS - 301, tol),
            Err(VerifyError::TimestampTooNew {
                ahead_secs: 301,
                ..
            })
        ));
        assert!(matches!(
            verify(&key, MSG_ID, TS, BODY, "garbage", TS, tol),
            Err(VerifyError::MalformedHeader(_))
        ));
        // No tolerance: an old but authentic signature passes.
        assert_eq!(
            verify(&key, MSG_ID, TS, BODY, EXPECTED, TS + 86_400, None),
            Ok(())
        );
        // Extreme timestamps never overflow.
        assert!(verify(&key, MSG_ID, i64::MIN, BODY, EXPECTED, i64::MAX, tol).is_err());
    }
}
