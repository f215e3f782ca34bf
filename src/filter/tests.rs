//! Table-driven tests of the filter language: operators and edge cases, validation
//! reasons (all listed at once), explanations and the lazy, shared parse of `data`.

use serde_json::{Value, json};

use super::*;

/// 2026-11-30T13:54:32.123Z
const TS: i64 = 1_796_046_872_123;

fn filter(v: Value) -> Filter {
    Filter::parse(&v).unwrap_or_else(|r| panic!("{v} refused: {r:?}"))
}

fn check(f: &Value, ty: &str, data: &str) -> bool {
    let s = Subject::new(ty, TS, data);
    let fl = filter(f.clone());
    let got = fl.matches(&s);
    // Explanations are empty exactly when the filter matches.
    assert_eq!(got, fl.explain(&s).is_empty(), "{f} on {data}");
    got
}

#[test]
fn the_timestamp_constant_is_what_the_cases_assume() {
    assert_eq!(crate::model::rfc3339(TS), "2026-11-30T13:54:32.123Z");
}

#[test]
fn operators_and_edge_cases() {
    let data = r#"{"amount": 150, "price": 1.5, "currency": "EUR", "name": "Zoë",
        "prénom": "Zoë", "名前": "花子", "flag": true, "none": null, "code": "100",
        "tags": ["a", "b"], "items": [{"sku": "X-1"}, {"sku": "Y-2"}],
        "nested": {"deep": {"x": 1}}, "big": 9007199254740993, "neg": -0.0,
        "empty": {}, "list": []}"#;
    let cases: &[(Value, bool)] = &[
        // Literals are equality.
        (json!({"data.currency": "EUR"}), true),
        (json!({"data.currency": "USD"}), false),
        (json!({"data.amount": 150}), true),
        (json!({"data.amount": 150.0}), true),
        (json!({"data.price": 1.5}), true),
        (json!({"data.amount": "150"}), false),
        (json!({"data.flag": true}), true),
        (json!({"data.none": null}), true),
        (json!({"data.missing": null}), false),
        (json!({"data.neg": 0}), true),
        // Integers beyond 2^53 compare exactly.
        (json!({"data.big": 9007199254740993u64}), true),
        (json!({"data.big": 9007199254740992u64}), false),
        (json!({"data.big": {"$gt": 9007199254740992u64}}), true),
        (json!({"data.big": {"$gt": 9007199254740992.0}}), true),
        // Objects by key set and values, in any order; arrays element by element.
        (json!({"data.nested": {"deep": {"x": 1.0}}}), true),
        (json!({"data.nested.deep": {"x": 1, "y": 2}}), false),
        (json!({"data.empty": {}}), true),
        (json!({"data.tags": ["a", "b"]}), true),
        (json!({"data.tags": ["b", "a"]}), false),
        (json!({"data.tags": "a"}), false),
        (json!({"data.list": []}), true),
        // Index segments into arrays.
        (json!({"data.items.1.sku": "Y-2"}), true),
        (json!({"data.tags.0": "a"}), true),
        (json!({"data.tags.2": {"$exists": true}}), false),
        (json!({"data.tags.01": {"$exists": true}}), false),
        (json!({"data.amount.0": {"$exists": true}}), false),
        // $eq / $ne, also on missing paths and across types.
        (json!({"data.amount": {"$eq": 150}}), true),
        (json!({"data.amount": {"$ne": 150}}), false),
        (json!({"data.amount": {"$ne": "150"}}), true),
        (json!({"data.missing": {"$ne": 1}}), true),
        (json!({"data.missing": {"$eq": 1}}), false),
        (json!({"data.none": {"$ne": null}}), false),
        // Order: numbers with numbers, strings with strings, nothing across.
        (json!({"data.amount": {"$gte": 100}}), true),
        (json!({"data.amount": {"$gte": 150.0}}), true),
        (json!({"data.amount": {"$gt": 150}}), false),
        (json!({"data.amount": {"$lt": 150.5}}), true),
        (json!({"data.amount": {"$lte": 149.999}}), false),
        (json!({"data.price": {"$gt": 1}}), true),
        (json!({"data.price": {"$lt": 2}}), true),
        (json!({"data.code": {"$gte": 99}}), false),
        (json!({"data.code": {"$lt": 99}}), false),
        (json!({"data.amount": {"$gte": "100"}}), false),
        (json!({"data.currency": {"$gt": "EUA"}}), true),
        (json!({"data.currency": {"$lt": "EUA"}}), false),
        (json!({"data.name": {"$gt": "Zoe"}}), true),
        (json!({"data.missing": {"$gt": 0}}), false),
        (json!({"data.missing": {"$lt": 0}}), false),
        (json!({"data.flag": {"$gt": 0}}), false),
        (json!({"data.amount": {"$gte": 100, "$lt": 200}}), true),
        (json!({"data.amount": {"$gte": 100, "$lt": 150}}), false),
        // $in / $nin.
        (json!({"data.currency": {"$in": ["EUR", "USD"]}}), true),
        (json!({"data.currency": {"$in": []}}), false),
        (json!({"data.amount": {"$in": [150.0]}}), true),
        (json!({"data.amount": {"$in": ["150"]}}), false),
        (json!({"data.tags": {"$in": [["a", "b"]]}}), true),
        (json!({"data.currency": {"$nin": ["EUR"]}}), false),
        (json!({"data.currency": {"$nin": ["GBP"]}}), true),
        (json!({"data.missing": {"$in": [null]}}), false),
        (json!({"data.missing": {"$nin": ["x"]}}), true),
        // $exists: null is a value.
        (json!({"data.none": {"$exists": true}}), true),
        (json!({"data.missing": {"$exists": false}}), true),
        (json!({"data.missing": {"$exists": true}}), false),
        (json!({"data.amount": {"$exists": false}}), false),
        (json!({"data": {"$exists": true}}), true),
        // $prefix: strings only.
        (json!({"data.currency": {"$prefix": "EU"}}), true),
        (json!({"data.currency": {"$prefix": ""}}), true),
        (json!({"data.amount": {"$prefix": "1"}}), false),
        (json!({"data.missing": {"$prefix": ""}}), false),
        (json!({"data.name": {"$prefix": "Zo"}}), true),
        (json!({"data.name": {"$prefix": "Zoë"}}), true),
        (json!({"data.name": {"$prefix": "Zoe"}}), false),
        // Unicode keys and values.
        (json!({"data.prénom": "Zoë"}), true),
        (json!({"data.名前": "花子"}), true),
        (json!({"data.名前": {"$in": ["太郎", "花子"]}}), true),
        // type and timestamp.
        (json!({"type": "order.paid"}), true),
        (json!({"type": {"$prefix": "order."}}), true),
        (json!({"type": {"$in": ["a", "order.paid"]}}), true),
        (json!({"type": {"$ne": "order.paid"}}), false),
        (
            json!({"timestamp": {"$gte": "2026-11-30T13:54:32.123Z"}}),
            true,
        ),
        (json!({"timestamp": {"$gt": "2026-11-30T13:54:32Z"}}), true),
        (
            json!({"timestamp": {"$lt": "2026-11-30T14:54:32+01:00"}}),
            false,
        ),
        (json!({"timestamp": "2026-11-30T14:54:32.123+01:00"}), true),
        (json!({"timestamp": {"$prefix": "2026-11-30T13"}}), true),
        (json!({"timestamp": {"$exists": true}}), true),
        // Combinators, nested.
        (json!({}), true),
        (
            json!({"$and": [{"data.amount": 150}, {"data.currency": "EUR"}]}),
            true,
        ),
        (
            json!({"$and": [{"data.amount": 150}, {"data.currency": "USD"}]}),
            false,
        ),
        (
            json!({"$or": [{"data.amount": 1}, {"data.currency": "EUR"}]}),
            true,
        ),
        (
            json!({"$or": [{"data.amount": 1}, {"data.currency": "USD"}]}),
            false,
        ),
        (json!({"$not": {"data.currency": "USD"}}), true),
        (json!({"$not": {"data.currency": "EUR"}}), false),
        (json!({"$not": {"data.missing": 1}}), true),
        (
            json!({"$or": [{"$and": [{"data.amount": {"$gt": 100}}, {"$not": {"data.flag": false}}]},
                           {"type": "never"}]}),
            true,
        ),
        (
            json!({"data.currency": "EUR", "$not": {"$or": [{"data.tags.0": "a"}, {"data.x": 1}]}}),
            false,
        ),
    ];
    for (f, want) in cases {
        assert_eq!(check(f, "order.paid", data), *want, "{f}");
    }
}

#[test]
fn data_that_is_not_an_object_or_not_json() {
    let f = json!({"data": {"$gte": 3}});
    assert!(check(&f, "t", "3.5"));
    assert!(!check(&f, "t", "\"4\""));
    assert!(check(&json!({"data": [1, "x"]}), "t", "[1.0,\"x\"]"));
    assert!(check(&json!({"data.a": {"$exists": false}}), "t", "[1]"));
    // Unparsable data (never stored by ingest) reads as missing, it does not panic.
    assert!(check(&json!({"data": {"$exists": false}}), "t", "{nope"));
    assert!(!check(&json!({"data.a": 1}), "t", "{nope"));
}

fn reasons(v: Value) -> Vec<String> {
    match Filter::parse(&v) {
        Ok(f) => panic!("{v} accepted as {f:?}"),
        Err(r) => r,
    }
}

#[test]
fn each_invalid_filter_is_refused_with_its_reason() {
    let nest = |mut v: Value, levels: usize| {
        for _ in 0..levels {
            v = json!({ "$not": v });
        }
        v
    };
    let cases: &[(Value, &str)] = &[
        (
            json!([]),
            "filter: a filter must be a JSON object, got an array",
        ),
        (json!(null), "got null"),
        (
            json!({"data.x": {"$regex": "a"}}),
            "filter: data.x: $regex is an unknown operator",
        ),
        (json!({"$nor": []}), "unknown combinator \"$nor\""),
        (json!({"$gte": 1}), "$gte is an operator: use it on a path"),
        (
            json!({"data.x": {"$and": []}}),
            "$and is a combinator, not an operator",
        ),
        (
            json!({"data.x": {"$gt": true}}),
            "$gt needs a number or a string, got a boolean",
        ),
        (
            json!({"data.x": {"$lte": [1]}}),
            "$lte needs a number or a string, got an array",
        ),
        (
            json!({"data.x": {"$in": "EUR"}}),
            "$in needs an array, got a string",
        ),
        (
            json!({"data.x": {"$nin": {"a": 1}}}),
            "$nin needs an array, got an object",
        ),
        (
            json!({"data.x": {"$exists": 1}}),
            "$exists needs a boolean, got a number",
        ),
        (
            json!({"data.x": {"$prefix": 1}}),
            "$prefix needs a string, got a number",
        ),
        (
            json!({"data.x": {"$eq": 1, "plain": 2}}),
            "may hold only $ keys, but also has \"plain\"",
        ),
        (
            json!({"$and": []}),
            "filter: $and must list at least one filter",
        ),
        (
            json!({"$or": []}),
            "filter: $or must list at least one filter",
        ),
        (
            json!({"$or": {"a": 1}}),
            "$or takes an array of filters, got an object",
        ),
        (
            json!({"$and": [1]}),
            "filter.$and[0]: a filter must be a JSON object, got a number",
        ),
        (
            json!({"$not": [1]}),
            "filter.$not: a filter must be a JSON object, got an array",
        ),
        (json!({"id": "evt_1"}), "unknown path \"id\""),
        (json!({"payload.x": 1}), "unknown path \"payload.x\""),
        (json!({"data.": 1}), "path \"data.\" has an empty segment"),
        (
            json!({"data.a..b": 1}),
            "path \"data.a..b\" has an empty segment",
        ),
        (
            json!({"type": 5}),
            "type: $eq needs a string (type is a string), got a number",
        ),
        (
            json!({"type": {"$in": ["a", 1]}}),
            "type: $in [1] needs a string",
        ),
        (
            json!({"timestamp": {"$gte": "yesterday"}}),
            "needs an RFC 3339 timestamp string, got a string",
        ),
        (
            json!({"timestamp": {"$lt": 5}}),
            "needs an RFC 3339 timestamp string, got a number",
        ),
        (nest(json!({"data.x": 1}), 8), "nested deeper than 8 levels"),
        (
            json!({"data.x": {"$in": vec!["a".repeat(100); 41]}}),
            "larger than 4096 bytes as canonical JSON",
        ),
    ];
    for (v, want) in cases {
        let got = reasons(v.clone());
        assert!(
            got.iter().any(|r| r.contains(want)),
            "{v}: {got:?} lacks {want}"
        );
    }
    // Seven levels of $not under the top filter (8 in all) are fine.
    assert!(Filter::parse(&nest(json!({"data.x": 1}), 7)).is_ok());
    let at_limit = json!({"data.x": {"$in": vec!["a".repeat(100); 39]}});
    assert!(Filter::parse(&at_limit).is_ok());
}

#[test]
fn every_reason_is_listed_at_once() {
    let v = json!({
        "data.a": {"$regex": "x", "$gt": [], "$in": 3},
        "$and": [],
        "$or": [{"data.b": {"$exists": "yes"}}, {"nope": 1}],
        "$not": {"timestamp": {"$lt": "soon"}},
        "type": 7,
    });
    let got = reasons(v);
    let wants = [
        "filter: data.a: $regex is an unknown operator",
        "filter: data.a: $gt needs a number or a string, got an array",
        "filter: data.a: $in needs an array, got a number",
        "filter: $and must list at least one filter",
        "filter.$or[0]: data.b: $exists needs a boolean, got a string",
        "filter.$or[1]: unknown path \"nope\"",
        "filter.$not: timestamp: $lt needs an RFC 3339 timestamp string",
        "filter: type: $eq needs a string",
    ];
    for want in wants {
        assert!(
            got.iter().any(|r| r.contains(want)),
            "{got:#?} lacks {want}"
        );
    }
    assert_eq!(got.len(), wants.len(), "{got:#?}");
}

#[test]
fn canonical_text_is_compact_with_sorted_keys_and_round_trips() {
    let f = filter(json!({"data.z": {"$lt": 5, "$gt": 1}, "data.a": "é"}));
    assert_eq!(f.source(), r#"{"data.a":"é","data.z":{"$gt":1,"$lt":5}}"#);
    let again = Filter::from_json(f.source()).expect("canonical text parses");
    assert_eq!(again, f);
    assert_eq!(
        again.to_value(),
        json!({"data.a": "é", "data.z": {"$gt": 1, "$lt": 5}})
    );
    assert!(Filter::from_json("{").unwrap_err()[0].contains("not valid JSON"));
}

#[test]
fn explanations_name_the_failed_condition_and_its_path() {
    let f = filter(json!({
        "data.amount": {"$gte": 100},
        "data.currency": {"$in": ["EUR", "USD"]},
        "data.code": {"$gt": 99},
        "data.ref": {"$exists": true},
        "type": "order.paid",
    }));
    let s = Subject::new(
        "order.paid",
        TS,
        r#"{"amount": 50, "currency": "EUR", "code": "100"}"#,
    );
    let why = f.explain(&s);
    assert_eq!(
        why,
        [
            "data.amount is 50, which fails data.amount $gte 100",
            "data.code is \"100\" (a string), but data.code $gt 99 applies only to numbers: values are not converted across types",
            "data.ref is missing (the filter needs data.ref $exists true)",
        ]
    );
    let or = filter(json!({"$or": [{"data.amount": 1}, {"type": "x"}]}));
    assert_eq!(
        or.explain(&s),
        [
            "$or: no branch held (data.amount is 50, which fails data.amount $eq 1; type is \"order.paid\", which fails type $eq \"x\")"
        ]
    );
    let not = filter(json!({"$not": {"data.currency": "EUR", "type": "order.paid"}}));
    assert_eq!(
        not.explain(&s),
        ["$not: the negated filter held (data.currency $eq \"EUR\" and type $eq \"order.paid\")"]
    );
    let ts = filter(json!({"timestamp": {"$lt": "2026-01-01T00:00:00Z"}}));
    assert_eq!(
        ts.explain(&s),
        [
            "timestamp is \"2026-11-30T13:54:32.123Z\", which fails timestamp $lt \"2026-01-01T00:00:00Z\""
        ]
    );
    let long = Subject::new(
        "t",
        TS,
        r#"{"s": "ééééééééééééééééééééééééééééééééééééééééééééééééééééééééééé"}"#,
    );
    let why = filter(json!({"data.s": "x"})).explain(&long);
    assert!(why[0].contains("...") && why[0].len() < 200, "{why:?}");
}

#[test]
fn data_is_parsed_once_per_event_and_only_when_a_condition_needs_it() {
    let on_type = filter(json!({"type": {"$prefix": "order."}, "timestamp": {"$exists": true}}));
    let on_data: Vec<Filter> = (0..100)
        .map(|i| filter(json!({"data.amount": {"$gte": i}})))
        .collect();
    let s = Subject::new("order.paid", TS, r#"{"amount": 50}"#);
    assert!(on_type.matches(&s));
    assert_eq!(s.data_parses(), 0);
    let matched = on_data.iter().filter(|f| f.matches(&s)).count();
    assert_eq!(matched, 51);
    for f in &on_data {
        f.explain(&s);
    }
    assert_eq!(s.data_parses(), 1);
}
