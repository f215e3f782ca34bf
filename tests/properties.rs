//! The fuzz targets of `fuzz/` as proptest properties, so stable `cargo test` runs
//! them on every CI run: the record codec, the request validators, the signature
//! verifier and the config parser must never panic on any input, and records and
//! signatures round-trip.

use std::collections::BTreeMap;
use std::time::Duration;

use hookbox::api::validate;
use hookbox::config::Config;
use hookbox::delivery::signer;
use hookbox::model::{
    Attempt, Delivery, DeliveryState, Event, OAuthConfig, Ordering, Secret, SigningSecret, Trigger,
    Webhook,
};
use hookbox::store::records::{Keyed, Record, decode_event, encode_event};
use proptest::prelude::*;
use serde_json::Value;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

/// Decoding arbitrary bytes fails or succeeds; a success re-encodes to a record
/// that decodes to the same value.
fn decode_any<T: Record + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    if let Ok(value) = T::from_bytes(bytes) {
        let again = value.to_bytes().expect("a decoded record encodes");
        assert_eq!(T::from_bytes(&again).expect("decodes"), value);
    }
}

/// [`decode_any`] for a record decoded under its key: a success re-encodes to a
/// record that decodes, under the id it decoded to, to the same value.
fn decode_keyed<T: Keyed + PartialEq + std::fmt::Debug>(
    key: T::Key<'_>,
    bytes: &[u8],
    key_of: impl for<'a> Fn(&'a T) -> T::Key<'a>,
) {
    if let Ok(value) = T::from_bytes(key, bytes) {
        let again = value.to_bytes().expect("a decoded record encodes");
        assert_eq!(
            T::from_bytes(key_of(&value), &again).expect("decodes"),
            value
        );
    }
}

/// [`decode_any`] for events, whose records also list their deliveries.
fn decode_any_event(bytes: &[u8]) {
    if let Ok((event, listed)) = decode_event("evt_1", bytes) {
        let ids = listed.listed().unwrap_or_default();
        let again = encode_event(&event, ids.iter().map(String::as_str)).expect("encodes");
        let (back, relisted) = decode_event(&event.id, &again).expect("decodes");
        assert_eq!(back, event);
        assert_eq!(relisted.listed(), Some(ids));
    }
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,40}", "[a-z_.]{0,12}"]
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

fn state() -> impl Strategy<Value = DeliveryState> {
    prop_oneof![
        Just(DeliveryState::Pending),
        Just(DeliveryState::Succeeded),
        Just(DeliveryState::Failed),
        Just(DeliveryState::Exhausted),
        Just(DeliveryState::Cancelled),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    (
        text(),
        text(),
        text(),
        text(),
        proptest::collection::vec(text(), 0..4),
        opt_text(),
        any::<i64>(),
    )
        .prop_map(
            |(id, tenant, event_type, payload, channels, idempotency_key, created_at)| Event {
                id,
                tenant,
                event_type,
                payload,
                channels,
                idempotency_key,
                created_at,
            },
        )
}

fn delivery() -> impl Strategy<Value = Delivery> {
    (
        (text(), text(), text(), text(), text(), state()),
        (
            any::<u32>(),
            any::<u32>(),
            any::<Option<i64>>(),
            any::<Option<u16>>(),
            opt_text(),
            any::<i64>(),
            any::<i64>(),
        ),
    )
        .prop_map(
            |(
                (id, tenant, event_id, webhook_id, event_type, state),
                (attempts, step, next, last_status, last_error, created_at, updated_at),
            )| Delivery {
                id,
                tenant,
                event_id,
                webhook_id,
                event_type,
                state,
                attempts,
                schedule_step: step,
                next_attempt_at: next,
                last_status,
                last_error,
                created_at,
                updated_at,
            },
        )
}

fn attempt() -> impl Strategy<Value = Attempt> {
    (
        text(),
        any::<u32>(),
        any::<i64>(),
        prop_oneof![
            Just(Trigger::Scheduled),
            Just(Trigger::Manual),
            Just(Trigger::Test)
        ],
        any::<Option<u16>>(),
        opt_text(),
        any::<u64>(),
        text(),
    )
        .prop_map(
            |(delivery_id, number, at, trigger, status, error, latency_ms, response_body)| {
                Attempt {
                    delivery_id,
                    number,
                    at,
                    trigger,
                    status,
                    error,
                    latency_ms,
                    response_body,
                }
            },
        )
}

fn secrets_map() -> impl Strategy<Value = BTreeMap<String, Secret>> {
    proptest::collection::btree_map(text(), text().prop_map(Secret::new), 0..3)
}

/// A valid payload filter (the record keeps its canonical text).
fn filter() -> impl Strategy<Value = hookbox::filter::Filter> {
    (any::<i64>(), text()).prop_map(|(n, s)| {
        let v = serde_json::json!({"data.amount": {"$gte": n}, "data.name": {"$ne": s}});
        hookbox::filter::Filter::parse(&v).expect("a valid filter")
    })
}

fn webhook() -> impl Strategy<Value = Webhook> {
    let oauth = proptest::option::of(
        (text(), text(), text(), opt_text(), secrets_map()).prop_map(
            |(token_url, client_id, secret, scope, headers)| OAuthConfig {
                token_url,
                client_id,
                client_secret: Secret::new(secret),
                scope,
                headers,
            },
        ),
    );
    let secrets = proptest::collection::vec(
        (text(), any::<Option<i64>>()).prop_map(|(s, expires_at)| SigningSecret {
            secret: Secret::new(s),
            expires_at,
        }),
        0..3,
    );
    (
        (
            text(),
            text(),
            text(),
            proptest::collection::vec(text(), 0..3),
            proptest::collection::vec(text(), 0..3),
            opt_text(),
            secrets_map(),
            oauth,
        ),
        (
            secrets,
            opt_text(),
            any::<bool>(),
            opt_text(),
            any::<Option<i64>>(),
            proptest::collection::btree_map(text(), text(), 0..3),
            any::<Option<u32>>(),
            (
                any::<i64>(),
                any::<i64>(),
                any::<Option<i64>>(),
                any::<Option<i64>>(),
            ),
            (any::<bool>(), proptest::option::of(filter())),
        ),
    )
        .prop_map(
            |(
                (id, tenant, url, event_types, channels, description, headers, oauth),
                (
                    secrets,
                    notification_email,
                    enabled,
                    disabled_reason,
                    disabled_at,
                    metadata,
                    rate,
                    (created_at, updated_at, deleted_at, failing_since),
                    (fifo, filter),
                ),
            )| Webhook {
                id,
                tenant,
                url,
                event_types,
                channels,
                description,
                headers,
                oauth,
                secrets,
                notification_email,
                enabled,
                disabled_reason,
                disabled_at,
                metadata,
                rate_limit_per_second: rate,
                created_at,
                updated_at,
                deleted_at,
                failing_since,
                version: updated_at.unsigned_abs(),
                ordering: if fifo { Ordering::Fifo } else { Ordering::None },
                filter,
            },
        )
}

/// Arbitrary JSON, a few levels deep.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::String),
        // Strings the validators look at closely.
        prop_oneof![
            Just("https://example.com/hook"),
            Just("http://127.0.0.1:1/x"),
            Just("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Just("*"),
            Just("shift.*"),
            Just("****"),
            Just("2026-01-01T00:00:00Z"),
            Just("a@b.co"),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(field_name(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Object keys: mostly the fields the validators know, sometimes anything.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop_oneof![
            Just("url"), Just("event_types"), Just("events"), Just("channels"),
            Just("headers"), Just("oauth"), Just("token_url"), Just("client_id"),
            Just("client_secret"), Just("secrets"), Just("secret"), Just("grace_seconds"),
            Just("notification_email"), Just("enabled"), Just("metadata"),
            Just("rate_limit_per_second"), Just("description"), Just("name"), Just("id"),
            Just("tenant"), Just("scopes"), Just("schema"), Just("since"), Just("type"),
            Just("data"), Just("idempotency_key"), Just("event_type"), Just("message"),
        ]
        .prop_map(str::to_owned),
        1 => text(),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn codec_decodes_arbitrary_bytes_without_panicking(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        // A known version byte in front reaches the bincode decoder most of the time
        // (1 for every record, 2 for webhooks).
        let mut v1 = vec![1];
        v1.extend_from_slice(&bytes);
        let mut v2 = vec![2];
        v2.extend_from_slice(&bytes);
        for b in [&bytes, &v1, &v2] {
            decode_any_event(b);
            decode_keyed::<Delivery>("dlv_1", b, |d| d.id.as_str());
            decode_any::<Webhook>(b);
            decode_keyed::<Attempt>(("dlv_1", 1), b, |a| (a.delivery_id.as_str(), a.number));
        }
    }

    #[test]
    fn codec_round_trips_events(e in event(), ids in proptest::collection::vec(text(), 0..4)) {
        let bytes = encode_event(&e, ids.iter().map(String::as_str)).expect("encodes");
        let (back, listed) = decode_event(&e.id, &bytes).expect("decodes");
        prop_assert_eq!(back, e);
        prop_assert_eq!(listed.listed(), Some(ids));
    }

    #[test]
    fn codec_round_trips_deliveries(d in delivery()) {
        let bytes = d.to_bytes().expect("encodes");
        prop_assert_eq!(Delivery::from_bytes(&d.id, &bytes).expect("decodes"), d);
    }

    #[test]
    fn codec_round_trips_attempts(a in attempt()) {
        let bytes = a.to_bytes().expect("encodes");
        prop_assert_eq!(
            Attempt::from_bytes((&a.delivery_id, a.number), &bytes).expect("decodes"),
            a
        );
    }

    #[test]
    fn codec_round_trips_webhooks_and_refuses_truncations(w in webhook(), cut in any::<prop::sample::Index>()) {
        let bytes = w.to_bytes().expect("encodes");
        prop_assert_eq!(Webhook::from_bytes(&bytes).expect("decodes"), w);
        // Any strict prefix is an error, never a panic or a different record.
        let n = cut.index(bytes.len());
        prop_assert!(Webhook::from_bytes(&bytes[..n]).is_err());
    }

    #[test]
    fn webhook_validators_never_panic(body in json(), https in any::<bool>()) {
        let known = |name: &str| name.len().is_multiple_of(2);
        let blocked = |host: &str| host.starts_with("127.").then(|| "loopback".to_owned());
        let ctx = validate::Ctx {
            require_https: https,
            known_event_type: &known,
            host_blocked: &blocked,
        };
        if let Err(reasons) = validate::webhook_create(&body, &ctx) {
            prop_assert!(!reasons.is_empty(), "a refusal names its reasons");
        }
        let _ = validate::rotate(&body);
        let _ = validate::tenant_create(&body);
        let _ = validate::api_key_create(&body);
        let _ = validate::event_type_create(&body);
        let _ = validate::test_event(&body, &ctx);
        let _ = validate::recover(&body);
    }

    #[test]
    fn event_validators_never_panic_on_json(body in json(), key in proptest::option::of(text())) {
        let raw = serde_json::to_vec(&body).expect("serialises");
        if let Ok(spec) = validate::event_create(&raw, key.as_deref()) {
            prop_assert!(serde_json::from_str::<Value>(spec.data.get()).is_ok());
        }
        let _ = validate::event_batch(&raw);
    }

    #[test]
    fn event_validators_never_panic_on_bytes(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = validate::event_create(&raw, None);
        let _ = validate::event_batch(&raw);
    }

    #[test]
    fn verify_never_panics(
        key in proptest::collection::vec(any::<u8>(), 0..80),
        id in ".{0,30}",
        ts in any::<i64>(),
        now in any::<i64>(),
        body in proptest::collection::vec(any::<u8>(), 0..100),
        header in prop_oneof![".{0,120}", "(v1,[A-Za-z0-9+/=]{0,50} ?){0,4}"],
        tolerance in proptest::option::of(any::<u64>()),
    ) {
        let tolerance = tolerance.map(Duration::from_secs);
        let _ = signer::verify(&key, &id, ts, &body, &header, now, tolerance);
        // What `sign` produces always verifies, appended to any junk.
        let good = signer::sign(&[&key], &id, ts, &body);
        prop_assert!(signer::verify(&key, &id, ts, &body, &good, ts, None).is_ok());
        let mixed = format!("{header} {good}");
        prop_assert!(signer::verify(&key, &id, ts, &body, &mixed, ts, None).is_ok());
    }

    #[test]
    fn decode_secret_never_panics(s in ".{0,100}") {
        let _ = signer::decode_secret(&s);
    }

    #[test]
    fn config_parser_never_panics(text in prop_oneof![
        ".{0,200}",
        // Lines of `key = value` over the real keys reach deeper than random text.
        proptest::collection::vec(
            (
                prop_oneof![
                    Just("listen"), Just("max_body_bytes"), Just("admin_token"),
                    Just("master_key"), Just("[delivery]\nretry_schedule"),
                    Just("[delivery]\njitter"), Just("[security]\nallow_networks"),
                    Just("[retention]\nevents"), Just("[smtp]\nport"), Just("[[event_types]]\nname"),
                ],
                prop_oneof![
                    Just("\"127.0.0.1:0\"".to_owned()), Just("-1".to_owned()), Just("1e400".to_owned()),
                    Just("[\"0s\", \"5s\"]".to_owned()), Just("\"5 days\"".to_owned()), Just("nan".to_owned()),
                    Just("18446744073709551616".to_owned()), Just("[\"::/0\"]".to_owned()),
                    "\"[^\"\\\\]{0,20}\"",
                ],
            ).prop_map(|(k, v)| format!("{k} = {v}\n")),
            0..6,
        ).prop_map(|lines| lines.concat()),
    ], env_value in ".{0,30}") {
        let _ = Config::from_toml(&text, &[]);
        for key in ["HOOKBOX_LISTEN", "HOOKBOX_MAX_BODY_BYTES", "HOOKBOX_ALLOW_NETWORKS", "HOOKBOX_REQUIRE_HTTPS"] {
            let _ = Config::from_toml("", &[(key.to_owned(), env_value.clone())]);
        }
    }
}
