//! Property tests of the filter module: the compiled evaluator agrees with a
//! straightforward reference evaluator that walks the filter's JSON directly, and
//! the parser (a stable, bounded fuzz) never panics on any JSON value or byte string.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::*;

const TS: i64 = 1_796_046_872_123;
const TIMES: [&str; 4] = [
    "2026-11-30T13:54:32.123Z",
    "2026-11-30T13:54:32Z",
    "2026-11-30T14:54:33+01:00",
    "1999-01-01T00:00:00Z",
];

// ---- The reference: reads the filter JSON and the delivered body as they are. ----

fn ref_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| ref_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| ref_eq(v, w)))
        }
        _ => a == b,
    }
}

fn ref_lookup<'a>(body: &'a Value, path: &str) -> Option<&'a Value> {
    let mut at = body;
    for seg in path.split('.') {
        at = match at {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) if seg == "0" || !seg.starts_with('0') => {
                a.get(seg.parse::<usize>().ok()?)?
            }
            _ => return None,
        };
    }
    Some(at)
}

fn ms(v: &Value) -> Value {
    let t: jiff::Timestamp = v.as_str().and_then(|s| s.parse().ok()).expect("a time");
    Value::from(t.as_millisecond())
}

fn ref_op(path: &str, op: &str, operand: &Value, got: Option<&Value>) -> bool {
    if path == "timestamp" && op != "$prefix" && op != "$exists" {
        let got = got.map(ms);
        let operand = match operand {
            Value::Array(items) => Value::Array(items.iter().map(ms).collect()),
            v => ms(v),
        };
        return ref_op("", op, &operand, got.as_ref());
    }
    let cmp = |g: &Value| match (g, operand) {
        (Value::Number(a), Value::Number(b)) => a.as_f64().partial_cmp(&b.as_f64()),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ => None,
    };
    use std::cmp::Ordering::*;
    match op {
        "$eq" => got.is_some_and(|g| ref_eq(g, operand)),
        "$ne" => !got.is_some_and(|g| ref_eq(g, operand)),
        "$gt" => got.and_then(cmp) == Some(Greater),
        "$gte" => matches!(got.and_then(cmp), Some(Greater | Equal)),
        "$lt" => got.and_then(cmp) == Some(Less),
        "$lte" => matches!(got.and_then(cmp), Some(Less | Equal)),
        "$in" => got.is_some_and(|g| operand.as_array().unwrap().iter().any(|v| ref_eq(g, v))),
        "$nin" => !got.is_some_and(|g| operand.as_array().unwrap().iter().any(|v| ref_eq(g, v))),
        "$exists" => got.is_some() == operand.as_bool().unwrap(),
        "$prefix" => got
            .and_then(Value::as_str)
            .is_some_and(|s| s.starts_with(operand.as_str().unwrap())),
        other => panic!("reference has no {other}"),
    }
}

fn ref_match(filter: &Value, body: &Value) -> bool {
    filter
        .as_object()
        .unwrap()
        .iter()
        .all(|(k, v)| match k.as_str() {
            "$and" => v.as_array().unwrap().iter().all(|f| ref_match(f, body)),
            "$or" => v.as_array().unwrap().iter().any(|f| ref_match(f, body)),
            "$not" => !ref_match(v, body),
            path => {
                let got = ref_lookup(body, path);
                match v {
                    Value::Object(ops) if ops.keys().any(|k| k.starts_with('$')) => ops
                        .iter()
                        .all(|(op, operand)| ref_op(path, op, operand, got)),
                    literal => ref_op(path, "$eq", literal, got),
                }
            }
        })
}

// ---- Generators over a small vocabulary, so conditions often hit. ----

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-2i64..3).prop_map(Value::from),
        prop_oneof![Just(1.0), Just(1.5), Just(-0.0), Just(2.0)].prop_map(Value::from),
        prop_oneof![Just("a"), Just("b"), Just("1"), Just("é"), Just("")].prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(prop_oneof![Just("x"), Just("y")], inner, 0..3).prop_map(
                |m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            ),
        ]
    })
}

fn condition() -> impl Strategy<Value = (String, Value)> {
    let data_path = prop_oneof![
        Just("data"),
        Just("data.x"),
        Just("data.y"),
        Just("data.x.x"),
        Just("data.y.0"),
        Just("data.z")
    ];
    let data_op = (
        prop_oneof![
            Just("$eq"),
            Just("$ne"),
            Just("$gt"),
            Just("$gte"),
            Just("$lt"),
            Just("$lte"),
            Just("$in"),
            Just("$nin"),
            Just("$exists"),
            Just("$prefix"),
            Just("=")
        ],
        value(),
        prop::collection::vec(value(), 0..3),
        any::<bool>(),
        prop_oneof![Just("a"), Just(""), Just("1")],
    )
        .prop_filter_map("an operand of the right type", |(op, v, list, b, p)| {
            Some(match op {
                "$in" | "$nin" => (op, Value::Array(list)),
                "$exists" => (op, Value::Bool(b)),
                "$prefix" => (op, Value::from(p)),
                "$gt" | "$gte" | "$lt" | "$lte" if !(v.is_number() || v.is_string()) => {
                    return None;
                }
                // A literal must not look like an operator object.
                "=" if v
                    .as_object()
                    .is_some_and(|m| m.keys().any(|k| k.starts_with('$'))) =>
                {
                    return None;
                }
                _ => (op, v),
            })
        });
    let on_data = (data_path, data_op).prop_map(|(path, (op, operand))| {
        let cond = if op == "=" {
            operand
        } else {
            json!({ op: operand })
        };
        (path.to_owned(), cond)
    });
    let on_type = (
        prop_oneof![Just("$eq"), Just("$prefix"), Just("$gt"), Just("$ne")],
        prop_oneof![Just("order.paid"), Just("order."), Just("a.b"), Just("p")],
    )
        .prop_map(|(op, s)| ("type".to_owned(), json!({ op: s })));
    let on_time = (
        prop_oneof![
            Just("$eq"),
            Just("$gt"),
            Just("$gte"),
            Just("$lt"),
            Just("$lte"),
            Just("$ne")
        ],
        prop::sample::select(TIMES.to_vec()),
    )
        .prop_map(|(op, t)| ("timestamp".to_owned(), json!({ op: t })));
    let time_prefix = prop_oneof![Just("2026-11-30T13"), Just("2026-12")]
        .prop_map(|p| ("timestamp".to_owned(), json!({ "$prefix": p })));
    prop_oneof![6 => on_data, 1 => on_type, 1 => on_time, 1 => time_prefix]
}

fn filter_value() -> impl Strategy<Value = Value> {
    let leaf = prop::collection::vec(condition(), 0..3)
        .prop_map(|cs| Value::Object(cs.into_iter().collect::<Map<_, _>>()));
    leaf.prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..3).prop_map(|fs| json!({ "$and": fs })),
            prop::collection::vec(inner.clone(), 1..3).prop_map(|fs| json!({ "$or": fs })),
            inner.clone().prop_map(|f| json!({ "$not": f })),
            (inner, condition()).prop_map(|(mut f, (k, v))| {
                f.as_object_mut().unwrap().insert(k, v);
                f
            }),
        ]
    })
}

fn event() -> impl Strategy<Value = (String, Value)> {
    let data = prop::collection::btree_map(prop_oneof![Just("x"), Just("y")], value(), 0..3)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()));
    (
        prop_oneof![Just("order.paid"), Just("a.b")],
        prop_oneof![4 => data, 1 => value()],
    )
        .prop_map(|(t, d)| (t.to_owned(), d))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn compiled_filters_agree_with_the_reference((f, (ty, data)) in (filter_value(), event())) {
        let compiled = Filter::parse(&f).expect("generated filters are valid");
        let text = data.to_string();
        let subject = Subject::new(&ty, TS, &text);
        let body = json!({"type": ty, "timestamp": crate::model::rfc3339(TS), "data": data});
        let want = ref_match(&f, &body);
        prop_assert_eq!(compiled.matches(&subject), want, "filter {} body {}", f, body);
        prop_assert_eq!(compiled.explain(&subject).is_empty(), want);
        prop_assert!(subject.data_parses() <= 1);
    }
}

// ---- Stable bounded fuzz: any JSON, any bytes; the parser never panics. ----

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "$and",
            "$or",
            "$not",
            "$eq",
            "$ne",
            "$gt",
            "$gte",
            "$lt",
            "$lte",
            "$in",
            "$nin",
            "$exists",
            "$prefix",
            "$regex",
            "type",
            "timestamp",
            "data",
            "data.x",
            "data..",
            "data.0",
            "x",
        ])
        .prop_map(str::to_owned),
        "\\PC{0,6}",
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        prop::sample::select(TIMES.to_vec()).prop_map(Value::from),
    ];
    leaf.prop_recursive(12, 64, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn parsing_any_json_never_panics_and_accepted_filters_round_trip(
        v in any_json(),
        data in any_json(),
    ) {
        if let Ok(f) = Filter::parse(&v) {
            prop_assert!(f.source().len() <= MAX_BYTES);
            let again = Filter::from_json(f.source()).expect("canonical text parses");
            prop_assert_eq!(&again, &f);
            let text = data.to_string();
            let s = Subject::new("t", TS, &text);
            prop_assert_eq!(f.matches(&s), f.explain(&s).is_empty());
        }
    }

    #[test]
    fn parsing_any_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
            let _ = Filter::parse(&v);
        }
        let _ = Filter::from_json(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn parsing_json_like_text_never_panics(text in "[\\[\\]{}\",:$a-z0-9.\\- ]{0,64}") {
        let _ = Filter::from_json(&text);
        let _ = Filter::from_json(&format!("{{\"data.x\":{text}}}"));
        let _ = Filter::from_json(&format!("{{\"$or\":[{text}]}}"));
    }
}
