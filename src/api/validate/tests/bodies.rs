//! Admin bodies (tenants, keys, event types) and event ingest (single and batch).

use super::*;

#[test]
fn admin_bodies() {
    let t = tenant_create(&json!({"id": "acme_1-x", "name": "Acme"}))
        .unwrap_or_else(|r| panic!("{r:?}"));
    assert_eq!(
        (t.id.as_deref(), t.name.as_str()),
        (Some("acme_1-x"), "Acme")
    );
    assert_eq!(
        tenant_create(&json!({"name": "Acme"})).map(|t| t.id),
        Ok(None)
    );
    let r = reasons(tenant_create(&json!({"id": "a/b", "name": " "})));
    assert_eq!(
        r,
        [
            "id must be 1 to 64 letters, digits, \"_\" or \"-\"",
            "name must not be empty"
        ]
    );
    let r = reasons(tenant_create(
        &json!({"id": "a".repeat(65), "name": "n".repeat(201)}),
    ));
    assert_eq!(r.len(), 2);

    let k = api_key_create(&json!({"tenant": "acme", "name": "ci",
        "scopes": ["webhooks:read", "events:write", "webhooks:read"]}))
    .unwrap_or_else(|r| panic!("{r:?}"));
    assert_eq!(k.scopes, [Scope::WebhooksRead, Scope::EventsWrite]);
    let r = reasons(api_key_create(
        &json!({"tenant": "acme", "name": "ci", "scopes": ["admin", 1]}),
    ));
    assert_eq!(
        r,
        [
            "scope \"admin\" is not one of webhooks:read, webhooks:write, events:write, events:read",
            "scopes[1] must be a string",
        ]
    );
    let r = reasons(api_key_create(&json!({"scopes": []})));
    assert_eq!(
        r,
        [
            "tenant is required",
            "name is required",
            "scopes must contain at least 1 element"
        ]
    );

    let e = event_type_create(&json!({"name": "shift.report:v2-x", "description": "d",
        "schema": {"type": "object"}}))
    .unwrap_or_else(|r| panic!("{r:?}"));
    assert_eq!(e.schema.as_deref(), Some(r#"{"type":"object"}"#));
    for (name, want) in [
        (
            "*",
            "name must be 1 to 128 letters, digits, \"_\", \".\", \":\" or \"-\"",
        ),
        ("all", "name must not be \"all\": it means every event type"),
        (
            "hookbox.delivery.exhausted",
            "name must not start with \"hookbox.\": those names are reserved for operational events",
        ),
        (
            "",
            "name must be 1 to 128 letters, digits, \"_\", \".\", \":\" or \"-\"",
        ),
    ] {
        assert_eq!(
            reasons(event_type_create(&json!({"name": name}))),
            [want],
            "{name}"
        );
    }
    let r = reasons(event_type_create(&json!({"name": "a", "schema": "{}"})));
    assert_eq!(r, ["schema must be a JSON object (a JSON Schema)"]);
}

#[test]
fn event_keeps_data_bytes_exactly() {
    let raw =
        br#"{"type":"shift.created","data":{"a":1.0000,"b":[ 1 ,2]},"channels":["P-1","P-1"]}"#;
    let ev = event_create(raw, None).unwrap_or_else(|r| panic!("{r:?}"));
    assert_eq!(ev.data.get(), r#"{"a":1.0000,"b":[ 1 ,2]}"#);
    assert_eq!(
        (ev.event_type.as_str(), ev.channels.as_slice()),
        ("shift.created", ["P-1".to_owned()].as_slice())
    );
    let ev = event_create(
        br#"{"event_type":"x","data":null,"idempotency_key":"k"}"#,
        Some("k"),
    )
    .unwrap_or_else(|r| panic!("{r:?}"));
    assert_eq!(
        (ev.data.get(), ev.idempotency_key.as_deref()),
        ("null", Some("k"))
    );
    let ev = event_create(br#"{"type":"x","data":"\u00e9"}"#, Some("hk"))
        .unwrap_or_else(|r| panic!("{r:?}"));
    assert_eq!(
        (ev.data.get(), ev.idempotency_key.as_deref()),
        (r#""\u00e9""#, Some("hk"))
    );
}

#[test]
fn event_data_nesting_is_bounded() {
    let nested = |n: usize| {
        format!(
            "{{\"type\":\"t\",\"data\":{}{}}}",
            "[".repeat(n),
            "]".repeat(n)
        )
    };
    assert!(event_create(nested(MAX_DATA_DEPTH).as_bytes(), None).is_ok());
    // What is accepted parses back, alone and inside the delivery envelope.
    let deepest = format!(
        "{}{}",
        "[".repeat(MAX_DATA_DEPTH),
        "]".repeat(MAX_DATA_DEPTH)
    );
    assert!(serde_json::from_str::<Value>(&deepest).is_ok());
    assert!(serde_json::from_str::<Value>(&format!("{{\"data\":{deepest}}}")).is_ok());
    assert_has(
        &reasons(event_create(nested(MAX_DATA_DEPTH + 1).as_bytes(), None)),
        "data must not nest arrays and objects more than 100 levels deep",
    );
    assert_has(
        &reasons(event_create(nested(100_000).as_bytes(), None)),
        "data must not nest arrays and objects more than 100 levels deep",
    );
    // Brackets inside strings (escaped quotes too) do not count.
    let in_string = format!(
        "{{\"type\":\"t\",\"data\":{{\"s\":\"\\\"{}\"}}}}",
        "[".repeat(500)
    );
    assert!(
        event_create(in_string.as_bytes(), None).is_ok(),
        "{in_string}"
    );
    assert!(event_batch(format!("[{}]", &nested(200)[..]).as_bytes()).is_err());
}

#[test]
fn event_reasons() {
    let long_key = "k".repeat(MAX_IDEMPOTENCY_KEY_LEN + 1);
    let many: Vec<String> = (0..=MAX_CHANNELS).map(|i| i.to_string()).collect();
    let cases: Vec<(Vec<u8>, Option<&str>, Vec<String>)> = vec![
        (b"{}".to_vec(), None, vec!["type is required".into(), "data is required".into()]),
        (br#"{"type":"","data":1,"channels":[""],"idempotency_key":""}"#.to_vec(), None, vec![
            "type must not be empty".into(),
            "channels[0] must not be empty".into(),
            "idempotency_key must be 1 to 256 characters".into(),
        ]),
        (format!(r#"{{"type":"{}","data":1}}"#, "t".repeat(129)).into_bytes(), None,
            vec!["type must be at most 128 characters".into()]),
        (json!({"type": "t", "data": 1, "channels": many}).to_string().into_bytes(), None,
            vec!["channels must contain no more than 100 elements".into()]),
        (br#"{"type":"t","data":1,"idempotency_key":"a"}"#.to_vec(), Some("b"),
            vec!["idempotency_key differs from the Idempotency-Key header; send one or make them equal".into()]),
        (br#"{"type":"t","data":1}"#.to_vec(), Some(long_key.as_str()),
            vec!["Idempotency-Key header must be 1 to 256 characters".into()]),

        (br#"{"type":1}"#.to_vec(), None,
            vec!["invalid request: invalid type: integer `1`, expected a string at line 1 column 9".into()]),
        (br#"{"type":"t","data":"#.to_vec(), None,
            vec!["invalid JSON: EOF while parsing a value at line 1 column 19".into()]),
        (br#"["t", 1]"#.to_vec(), None, vec!["request body must be a JSON object".into()]),
        (b"\xff".to_vec(), None, vec!["request body must be a JSON object".into()]),
        (b"".to_vec(), None, vec!["request body must be a JSON object".into()]),
        (b"{\"type\":\"\xff\"}".to_vec(), None,
            vec!["invalid JSON: invalid unicode code point at line 1 column 10".into()]),
    ];
    // serde names the unknown field (and lists the known ones) in one reason.
    let r = reasons(event_create(br#"{"type":"t","data":1,"colour":2}"#, None));
    assert_eq!(r.len(), 1);
    assert!(
        r.iter()
            .all(|x| x.starts_with("invalid request: unknown field `colour`, expected one of"))
    );
    for (raw, header, want) in cases {
        let r = reasons(event_create(&raw, header));
        assert_eq!(r, want, "{}", String::from_utf8_lossy(&raw));
    }
}

#[test]
fn batches() {
    let ok = event_batch(br#"{"events":[{"type":"a","data":{"x": 1}},{"type":"b","data":[]}]}"#)
        .unwrap_or_else(|r| panic!("{r:?}"));
    assert_eq!(ok.len(), 2);
    assert_eq!(ok.first().map(|e| e.data.get()), Some(r#"{"x": 1}"#));
    let ok = event_batch(br#" [{"type":"a","data":1}]"#).unwrap_or_else(|r| panic!("{r:?}"));
    assert_eq!(ok.len(), 1);

    let r = reasons(event_batch(
        br#"[{"type":"a","data":1,"idempotency_key":"k"},{"data":1},{"type":"a","data":1,"idempotency_key":"k"},{"type":"a","data":1,"x":1},["a",1]]"#,
    ));
    assert_eq!(r.len(), 4, "{r:#?}");
    assert_eq!(
        r.first().map(String::as_str),
        Some("events[1]: type is required")
    );
    assert_eq!(
        r.get(1).map(String::as_str),
        Some("events[2]: idempotency_key repeats the one of events[0]")
    );
    assert!(
        r.get(2)
            .is_some_and(|x| x.starts_with("events[3]: invalid request: unknown field `x`"))
    );

    assert_eq!(
        reasons(event_batch(b"[]")),
        ["events must contain at least 1 element"]
    );
    let big = format!(
        "[{}]",
        vec![r#"{"type":"a","data":1}"#; MAX_BATCH + 1].join(",")
    );
    assert_eq!(
        reasons(event_batch(big.as_bytes())),
        ["events must contain no more than 1000 elements"]
    );
    let full = format!(
        "[{}]",
        vec![r#"{"type":"a","data":1}"#; MAX_BATCH].join(",")
    );
    assert!(event_batch(full.as_bytes()).is_ok());
    assert_eq!(
        reasons(event_batch(b"42")),
        ["request body must be {\"events\": [...]} or a JSON array of events"]
    );
    let r = reasons(event_batch(br#"{"items":[]}"#));
    assert!(
        r.first()
            .is_some_and(|x| x.starts_with("invalid request: unknown field `items`")),
        "{r:?}"
    );
}
