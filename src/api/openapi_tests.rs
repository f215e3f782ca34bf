//! Unit tests of `api/openapi.rs`.

use super::*;
use crate::api::validate::names;

#[test]
fn every_reference_resolves_and_every_route_is_documented() {
    let doc = document(&ApiProfile::ALL);
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = piece.split('"').next().unwrap_or_default();
        assert!(doc["components"]["schemas"][name].is_object(), "{name}");
    }
    let profile_routes = ApiProfile::ALL
        .iter()
        .flat_map(|p| profiles::profile(*p).routes.iter());
    for r in ROUTES.iter().chain(profile_routes) {
        let op = &doc["paths"][r.path][r.method.as_str().to_lowercase()];
        assert!(op.is_object(), "{} {}", r.method, r.path);
        let scope = match r.access {
            Access::Public => None,
            Access::Admin => Some("admin"),
            Access::Tenant(s) => Some(s.as_str()),
        };
        assert_eq!(op["x-scope"].as_str(), scope, "{} {}", r.method, r.path);
    }
}

#[test]
fn aliases_are_documented_with_the_one_spelling_rule() {
    let doc = document(&[]);
    let create = &doc["components"]["schemas"]["WebhookCreate"];
    for n in names("event_types") {
        assert!(create["properties"][n].is_object(), "{n}");
    }
    // The rules alone (without the property schemas), judged on objects that only
    // say which spellings were sent: any two spellings of one field are refused,
    // each one alone is accepted, and none at all only where one is required.
    let cases = [
        ("WebhookCreate", "event_types", true),
        ("WebhookCreate", "channels", false),
        ("WebhookCreate", "oauth", false),
        ("WebhookCreate", "notification_email", false),
        ("WebhookPatch", "event_types", false),
        ("WebhookPatch", "channels", false),
        ("TestEvent", "event_type", true),
        ("EventCreate", "type", true),
        ("EventCreate", "idempotency_key", false),
    ];
    for (schema, canonical, required) in cases {
        let s = &doc["components"]["schemas"][schema];
        let mut rules = json!({"dependentSchemas": s["dependentSchemas"]});
        if s["allOf"].is_array() {
            rules["allOf"] = s["allOf"].clone();
        }
        let rules = jsonschema::validator_for(&rules).expect("the rules compile");
        let spellings: Vec<&str> = names(canonical)
            .iter()
            .copied()
            .filter(|n| s["properties"][n].is_object())
            .collect();
        assert!(spellings.len() > 1, "{schema}.{canonical}");
        // The body's other required aliased field, sent once.
        let needed = match schema {
            "WebhookCreate" => Some("event_types"),
            "EventCreate" => Some("type"),
            _ => None,
        };
        let mut others = json!({});
        if let Some(n) = needed.filter(|n| *n != canonical) {
            others[n] = json!(0);
        }
        for (i, a) in spellings.iter().enumerate() {
            let mut one = others.clone();
            one[*a] = json!(0);
            assert!(rules.is_valid(&one), "{schema}: {one}");
            for b in &spellings[i + 1..] {
                let mut two = one.clone();
                two[*b] = json!(0);
                assert!(!rules.is_valid(&two), "{schema} allows {two}");
            }
        }
        assert_eq!(rules.is_valid(&others), !required, "{schema}.{canonical}");
    }
    // Each rule is stated once, though two tables share `event_type`/`eventType`.
    let test_event = &doc["components"]["schemas"]["TestEvent"];
    assert_eq!(test_event["allOf"].as_array().map(Vec::len), Some(1));
}

#[test]
fn profiles_appear_tagged_only_when_enabled() {
    let none = document(&[]);
    assert!(none["paths"]["/v2/webhooks"].is_null());
    assert!(none["tags"].is_null());
    let one = document(&[ApiProfile::FacilityWebhooks]);
    assert!(one["paths"]["/v2/webhooks"].is_null());
    let op = &one["paths"]["/api/v2/public/webhooks/facility"]["post"];
    assert_eq!(op["tags"], json!(["facility-webhooks"]));
    assert_eq!(
        op["responses"]["400"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/NestBadRequest"
    );
    assert_eq!(
        op["responses"]["401"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/NestUnauthorized"
    );
    assert_eq!(one["tags"][0]["name"], "facility-webhooks");
    // /v1 is unchanged by a profile.
    assert_eq!(none["paths"]["/v1/webhooks"], one["paths"]["/v1/webhooks"]);
    let all = document(&ApiProfile::ALL);
    let v2 = &all["paths"]["/v2/webhooks"];
    assert_eq!(v2["get"]["tags"], json!(["v2-webhooks"]));
    assert_eq!(v2["get"]["parameters"][0]["name"], "organization-id");
    assert!(
        v2["delete"]["requestBody"]["required"]
            .as_bool()
            .unwrap_or(false)
    );
}
