//! Unit tests of `api/router.rs`.

use super::*;

#[test]
fn request_ids_are_adopted_only_when_sane() {
    let cases = [
        ("abc-123", true),
        ("trace:01H.x_y", true),
        ("", false),
        ("has space", false),
        ("new\nline", false),
        ("quote\"", false),
    ];
    for (id, sane) in cases {
        assert_eq!(is_sane_request_id(id), sane, "{id:?}");
    }
    assert!(is_sane_request_id(&"a".repeat(64)));
    assert!(!is_sane_request_id(&"a".repeat(65)));

    let mut headers = HeaderMap::new();
    headers.insert(X_REQUEST_ID, HeaderValue::from_static("given-1"));
    assert_eq!(request_id(&headers), "given-1");
    headers.insert(X_REQUEST_ID, HeaderValue::from_static("bad id"));
    assert!(request_id(&headers).starts_with("req_"));
    assert!(request_id(&HeaderMap::new()).starts_with("req_"));
}

#[test]
fn if_match_parsing() {
    let parse = |values: &[&str]| {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(http::header::IF_MATCH, HeaderValue::from_str(v).unwrap());
        }
        IfMatch::parse(&h)
    };
    assert_eq!(parse(&[]), None);
    assert_eq!(parse(&["*"]), Some(IfMatch::Any));
    assert_eq!(parse(&["\"3\""]), Some(IfMatch::Versions(vec![3])));
    assert_eq!(
        parse(&["\"3\", W/\"4\" , \"5\"", "\"6\""]),
        Some(IfMatch::Versions(vec![3, 5, 6]))
    );
    let garbage = parse(&["3", "W/\"4\"", "\"x\""]).unwrap();
    assert_eq!(garbage, IfMatch::Versions(vec![]));
    assert!(!garbage.matches(3) && !garbage.matches(4));
    assert!(IfMatch::Any.matches(9));
    assert!(IfMatch::Versions(vec![2, 9]).matches(9));
}

#[test]
fn query_decoding() {
    assert_eq!(
        parse_query("since=2026-01-01T00%3A00%3A00Z&limit=5&x"),
        vec![
            ("since".into(), "2026-01-01T00:00:00Z".into()),
            ("limit".into(), "5".into()),
            ("x".into(), "".into())
        ]
    );
    assert_eq!(parse_query("a=%zz%4"), vec![("a".into(), "%zz%4".into())]);
    assert_eq!(parse_query("a=%41%"), vec![("a".into(), "A%".into())]);
}
