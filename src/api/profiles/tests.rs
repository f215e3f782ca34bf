//! Unit tests of `api/profiles/mod.rs`.

use super::*;

#[test]
fn the_table_has_every_profile_once_and_no_path_of_v1() {
    for which in ApiProfile::ALL {
        assert_eq!(profile(which).which, which);
        for r in profile(which).routes {
            assert!(
                matches!(super::super::routes::find(&r.method, r.path), Found::NoPath),
                "{} {} shadows or is shadowed by /v1",
                r.method,
                r.path
            );
            for other in ApiProfile::ALL.iter().filter(|o| **o != which) {
                assert!(
                    matches!(
                        find_in(profile(*other).routes, &r.method, r.path),
                        Found::NoPath
                    ),
                    "{} {} is in two profiles",
                    r.method,
                    r.path
                );
            }
        }
    }
}

#[test]
fn disabled_profiles_are_not_found() {
    let post = Method::POST;
    assert!(find(&[], &post, "/v2/webhooks").is_none());
    assert!(find(&[ApiProfile::WebhookCreate], &post, "/v2/webhooks").is_none());
    assert!(matches!(
        find(&[ApiProfile::V2Webhooks], &post, "/v2/webhooks"),
        Some((_, Found::Route(..)))
    ));
    assert!(matches!(
        find(&[ApiProfile::V2Webhooks], &Method::PUT, "/v2/webhooks"),
        Some((_, Found::WrongMethod(_)))
    ));
}

#[test]
fn seed_fields_keeps_the_documented_ones_and_names_the_rest() {
    let mut r = Vec::new();
    let kept = seed_fields(
        serde_json::json!({"url": "u", "events": [], "channels": [], "colour": 1}),
        &["url", "events"],
        &mut r,
    );
    assert_eq!(kept, serde_json::json!({"url": "u", "events": []}));
    assert_eq!(
        r,
        ["unknown field \"channels\"", "unknown field \"colour\""]
    );
}
