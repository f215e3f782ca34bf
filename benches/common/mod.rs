//! What the benchmarks share: a webhook of tenant `acme` built field by field, so
//! each benchmark states only what it varies. Never measures anything itself.

use std::collections::BTreeMap;

use hookbox::model::{Ordering, Webhook};

/// Webhook number `i` of tenant `acme`, enabled, subscribed to `event_type`, with no
/// channel, no filter and no secret.
pub fn webhook(i: usize, event_type: &str) -> Webhook {
    Webhook {
        id: format!("wh_{i:026}"),
        tenant: "acme".into(),
        url: format!("https://example.com/hooks/{i}"),
        event_types: vec![event_type.to_owned()],
        channels: Vec::new(),
        description: None,
        headers: BTreeMap::new(),
        oauth: None,
        secrets: Vec::new(),
        notification_email: None,
        enabled: true,
        disabled_reason: None,
        disabled_at: None,
        metadata: BTreeMap::new(),
        rate_limit_per_second: None,
        created_at: 0,
        updated_at: 0,
        deleted_at: None,
        failing_since: None,
        version: 1,
        ordering: Ordering::None,
        filter: None,
    }
}
