//! Unit tests of `api/routes.rs`.

use super::*;

fn found(method: Method, path: &str) -> Option<(&'static str, String)> {
    match find(&method, path) {
        Found::Route(r, p) => Some((r.path, p)),
        _ => None,
    }
}

#[test]
fn paths_match_templates() {
    assert_eq!(
        found(Method::GET, "/v1/webhooks/"),
        Some(("/v1/webhooks", String::new()))
    );
    assert_eq!(
        found(Method::POST, "/v1/webhooks/wh_1/secrets/rotate"),
        Some(("/v1/webhooks/{id}/secrets/rotate", "wh_1".into()))
    );
    assert_eq!(
        found(Method::POST, "/v1/events/batch"),
        Some(("/v1/events/batch", String::new()))
    );
    assert_eq!(
        found(Method::GET, "/v1/events/evt_1"),
        Some(("/v1/events/{id}", "evt_1".into()))
    );
    assert!(matches!(find(&Method::GET, "/v1/nope"), Found::NoPath));
    assert!(matches!(find(&Method::GET, "/v2/webhooks"), Found::NoPath));
    assert!(matches!(
        find(&Method::GET, "/v1/webhooks//secrets"),
        Found::NoPath
    ));
    assert!(found(Method::HEAD, "/healthz").is_some());
    assert!(found(Method::HEAD, "/v1/webhooks").is_none());
}

#[test]
fn wrong_method_lists_the_allowed_ones() {
    match find(&Method::PUT, "/v1/webhooks/wh_1") {
        Found::WrongMethod(m) => assert_eq!(m, ["GET", "PATCH", "DELETE"]),
        _ => panic!("expected 405"),
    }
    match find(&Method::GET, "/v1/events/batch") {
        Found::WrongMethod(m) => assert_eq!(m, ["POST"]),
        _ => panic!("expected 405"),
    }
}

#[test]
fn each_method_and_template_is_listed_once() {
    let mut seen = std::collections::BTreeSet::new();
    for r in ROUTES {
        assert!(
            seen.insert((r.method.as_str(), r.path)),
            "{} {}",
            r.method,
            r.path
        );
        assert_eq!(
            r.status == StatusCode::NO_CONTENT,
            matches!(r.response, Empty),
            "{} {}",
            r.method,
            r.path
        );
    }
}
