//! Unit tests of `api/profiles/v2_webhooks.rs`.

use super::*;
use serde_json::json;

#[test]
fn delete_bodies() {
    assert_eq!(body_id(&json!({"id": "wh_1"})), Ok("wh_1".to_owned()));
    assert_eq!(body_id(&json!({})), Err(vec!["id is required".to_owned()]));
    assert_eq!(
        body_id(&json!({"id": 5, "x": 1})),
        Err(vec![
            "unknown field \"x\"".to_owned(),
            "id must be a string".to_owned()
        ])
    );
    assert_eq!(
        body_id(&json!([1])),
        Err(vec!["request body must be a JSON object".to_owned()])
    );
}
