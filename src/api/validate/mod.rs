//! Request validation: JSON bodies in, validated specs (or every reason they are
//! wrong) out. Pure code: it must never do I/O, touch the store or hyper, or panic
//! on anything a client sends.
//!
//! Each JSON body's fields are declared once, in the field table (`table.rs`:
//! spellings, kind, whether required; each kind's check in `kinds.rs`), which
//! both the checks here and the OpenAPI document (`requests.rs`) read. One file
//! per resource holds the body functions: [`webhook`] (create, patch, rotate,
//! test, recover; field checkers in `fields.rs`), [`event`] (ingest, the hot path),
//! [`admin`] (tenants, API keys, the catalogue) and [`portal`]. This file holds the
//! limits and the field access every resource shares: [`Fields`] looks a field up
//! under all its spellings, so aliases, "send only one spelling" and unknown-field
//! reasons come from one place.
//!
//! Webhook-style bodies are parsed as [`serde_json::Value`] and checked field by
//! field so that a 400 lists every problem at once (serde alone stops at the
//! first). Event ingest uses a derived deserializer with a `RawValue` for `data`,
//! which keeps the payload byte-for-byte.
//!
//! Reasons are short English sentences that name the field as the client spelled it
//! (`events must contain at least 1 element` when the seed alias `events` was sent),
//! quote client strings with Rust escaping (`event type "FOO" is not in the
//! catalogue`) and never echo secret values (header values, client secrets, signing
//! secrets).

pub mod admin;
pub mod event;
mod fields;
mod kinds;
mod origin;
pub mod portal;
#[cfg(test)]
mod sec_tests;
pub(crate) mod table;
#[cfg(test)]
mod tests;
pub mod webhook;

use serde_json::{Map, Value};

pub use admin::{
    ApiKeySpec, EventTypeSpec, TenantSpec, api_key_create, event_type_create, tenant_create,
};
pub use event::{EventSpec, event_batch, event_create};
pub use portal::{PortalSessionSpec, portal_session_create};
pub use webhook::{
    FilterTestSpec, RotateSpec, TestEventSpec, WebhookPatch, WebhookSpec, filter_test,
    filter_test_at, recover, recover_at, recover_spec, recover_spec_at, rotate, test_event,
    webhook_create, webhook_patch,
};

/// Longest accepted webhook or token URL, in bytes.
pub const MAX_URL_LEN: usize = 2048;
/// Most event-type filters on one webhook.
pub const MAX_EVENT_TYPES: usize = 100;
/// Most channels on one webhook or one event.
pub const MAX_CHANNELS: usize = 100;
/// Longest channel name, in characters.
pub const MAX_CHANNEL_LEN: usize = 128;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_LEN: usize = 1024;
/// Most custom headers on one webhook (and on one OAuth token request).
pub const MAX_HEADERS: usize = 32;
/// Longest custom header value, in bytes.
pub const MAX_HEADER_VALUE_BYTES: usize = 4096;
/// Most signing secrets a webhook holds at once.
pub const MAX_SECRETS: usize = 2;
/// Most metadata entries on one webhook.
pub const MAX_METADATA: usize = 50;
/// Highest `rate_limit_per_second`.
pub const MAX_RATE_LIMIT: u64 = 100_000;
/// Longest rotation grace period (7 days).
pub const MAX_GRACE_SECONDS: u64 = 604_800;
/// Rotation grace period when none is given (24 hours).
pub const DEFAULT_GRACE_SECONDS: u64 = 86_400;
/// Most events in one batch.
pub const MAX_BATCH: usize = 1000;
/// Longest event-type name, in characters.
pub const MAX_EVENT_TYPE_LEN: usize = 128;
/// Longest idempotency key, in characters.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 256;
/// Deepest nesting of arrays and objects accepted in event `data`. Below
/// serde_json's recursion limit (128) with room for the delivery envelope, so every
/// payload we accept parses back (event reads, receivers using serde_json).
pub const MAX_DATA_DEPTH: usize = 100;
/// Prefix of every signing secret (Standard Webhooks).
pub const SECRET_PREFIX: &str = "whsec_";
/// Fewest and most key bytes a signing secret may decode to.
pub const SECRET_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// Longest free-text value we accept where no tighter limit applies (names,
/// client ids, scopes, metadata values, test messages), in characters.
pub(crate) const MAX_TEXT_LEN: usize = 1024;
/// Longest tenant id, in characters.
pub(crate) const MAX_TENANT_ID_LEN: usize = 64;
/// Longest tenant or API key name, in characters.
pub(crate) const MAX_NAME_LEN: usize = 200;
/// Longest metadata key, in characters.
pub(crate) const MAX_METADATA_KEY_LEN: usize = 256;
/// Longest header name, in bytes; real servers refuse far shorter ones anyway.
pub(crate) const MAX_HEADER_NAME_LEN: usize = 256;
/// Longest e-mail address (RFC 5321 path limit).
pub(crate) const MAX_EMAIL_LEN: usize = 254;
/// Message of a test event when the client sends none.
pub(crate) const DEFAULT_TEST_MESSAGE: &str = "This is a test event from hookbox.";

/// Every aliased field's spellings (canonical first, then the seed aliases), read
/// from the field tables ([`table`]); `openapi.rs` documents "send only one
/// spelling" from them.
pub fn aliases() -> impl Iterator<Item = &'static [&'static str]> {
    [&table::WEBHOOK, &table::TEST_EVENT, &table::EVENT]
        .into_iter()
        .flat_map(|t| t.fields.iter().map(|d| d.names))
        .filter(|n| n.len() > 1)
}

/// Every accepted spelling of the aliased field `canonical`, canonical first
/// (empty for a field without aliases).
pub fn names(canonical: &str) -> &'static [&'static str] {
    aliases().find(|n| n[0] == canonical).unwrap_or(&[])
}

/// What validation needs from the handler: the tenant's catalogue and the SSRF
/// literal-host check. Both are plain functions so this module stays pure.
pub struct Ctx<'a> {
    /// Refuse plain `http://` URLs (config `security.require_https`).
    pub require_https: bool,
    /// Whether an exact event-type name is in the tenant's catalogue.
    pub known_event_type: &'a dyn Fn(&str) -> bool,
    /// Given a URL host (IPv6 literals without their brackets), why it is refused
    /// (e.g. `"loopback address"`), or `None` when it may be used.
    pub host_blocked: &'a dyn Fn(&str) -> Option<String>,
}

/// The fields of one JSON object, remembering which names were asked for so that
/// everything else can be reported as unknown (catches typos such as `colour`).
pub(crate) struct Fields<'a> {
    pub(crate) map: &'a Map<String, Value>,
    /// `""` for the body, `"oauth."` (as the client spelled it) for nested objects.
    pub(crate) prefix: String,
    known: Vec<&'static str>,
}

/// One field as found in the body: its name as the client spelled it (with the
/// nesting prefix) and its value.
pub(crate) struct Field<'a> {
    pub(crate) name: String,
    pub(crate) value: &'a Value,
}

impl<'a> Fields<'a> {
    /// Starts reading `v`, or records that `what` is not an object.
    pub(crate) fn of(
        v: &'a Value,
        prefix: String,
        what: &str,
        r: &mut Vec<String>,
    ) -> Option<Self> {
        match v.as_object() {
            Some(map) => Some(Self {
                map,
                prefix,
                known: Vec::new(),
            }),
            None => {
                r.push(format!("{what} must be a JSON object"));
                None
            }
        }
    }

    /// Looks a field up under its name and aliases. Sending two spellings of one
    /// field is ambiguous, so it is a reason; the first spelling listed wins.
    pub(crate) fn get(&mut self, names: &[&'static str], r: &mut Vec<String>) -> Option<Field<'a>> {
        self.known.extend_from_slice(names);
        let present: Vec<(&'a String, &'a Value)> = names
            .iter()
            .filter_map(|n| self.map.get_key_value(*n))
            .collect();
        if present.len() > 1 {
            let spelled: Vec<String> = present
                .iter()
                .map(|(k, _)| quote(&format!("{}{k}", self.prefix)))
                .collect();
            r.push(format!(
                "{} are the same field; send only one",
                spelled.join(" and ")
            ));
        }
        present.first().map(|(k, v)| Field {
            name: format!("{}{k}", self.prefix),
            value: v,
        })
    }

    /// Reports every field that no `get` asked for.
    pub(crate) fn finish(self, r: &mut Vec<String>) {
        for k in self.map.keys() {
            if !self.known.contains(&k.as_str()) {
                r.push(format!(
                    "unknown field {}",
                    quote(&format!("{}{k}", self.prefix))
                ));
            }
        }
    }
}

impl<'a> Field<'a> {
    pub(crate) fn is_null(&self) -> bool {
        self.value.is_null()
    }

    pub(crate) fn string(&self, r: &mut Vec<String>) -> Option<&'a str> {
        let s = self.value.as_str();
        if s.is_none() {
            r.push(format!("{} must be a string", self.name));
        }
        s
    }

    /// An array (of strings, each checked by the caller) of at most `max`
    /// elements, and at least one when `non_empty`.
    pub(crate) fn strings(
        &self,
        non_empty: bool,
        max: usize,
        r: &mut Vec<String>,
    ) -> Option<&'a [Value]> {
        let Some(items) = self.value.as_array() else {
            r.push(format!("{} must be an array of strings", self.name));
            return None;
        };
        if non_empty && items.is_empty() {
            r.push(format!("{} must contain at least 1 element", self.name));
            return None;
        }
        self.at_most(items.len(), max, "elements", r)
            .then_some(items)
    }

    /// An object (of strings, each checked by the caller) of at most `max` entries.
    pub(crate) fn string_map(
        &self,
        max: usize,
        r: &mut Vec<String>,
    ) -> Option<&'a Map<String, Value>> {
        let Some(map) = self.value.as_object() else {
            r.push(format!("{} must be an object of strings", self.name));
            return None;
        };
        self.at_most(map.len(), max, "entries", r).then_some(map)
    }

    /// Whether `len` is at most `max`; otherwise records why.
    pub(crate) fn at_most(&self, len: usize, max: usize, unit: &str, r: &mut Vec<String>) -> bool {
        let ok = len <= max;
        if !ok {
            r.push(format!(
                "{} must contain no more than {max} {unit}",
                self.name
            ));
        }
        ok
    }

    /// A string of 1..=`max` characters.
    pub(crate) fn text(&self, max: usize, r: &mut Vec<String>) -> Option<String> {
        let s = self.string(r)?;
        check_text(&self.name, s, max, r).then(|| s.to_owned())
    }
}

/// A required field: absent or `null` is a reason.
pub(crate) fn required<'a>(
    f: Option<Field<'a>>,
    name: &str,
    r: &mut Vec<String>,
) -> Option<Field<'a>> {
    match f {
        Some(f) if !f.is_null() => Some(f),
        _ => {
            r.push(format!("{name} is required"));
            None
        }
    }
}

/// Checks that `s` holds 1..=`max` characters and is not only whitespace.
pub(crate) fn check_text(name: &str, s: &str, max: usize, r: &mut Vec<String>) -> bool {
    if s.trim().is_empty() {
        r.push(format!("{name} must not be empty"));
        false
    } else if s.chars().count() > max {
        r.push(format!("{name} must be at most {max} characters"));
        false
    } else {
        true
    }
}

/// Whether `s` is free of control characters (CR, LF, NUL, tab and the rest of
/// C0, DEL, C1), which would let a stored value forge lines in logs, e-mails or
/// headers; pushes a reason naming the field when it is not.
pub(crate) fn no_control_chars(name: &str, s: &str, r: &mut Vec<String>) -> bool {
    let ok = !s.chars().any(char::is_control);
    if !ok {
        r.push(format!(
            "{name} must not contain control characters (such as CR or LF)"
        ));
    }
    ok
}

/// A non-negative whole number. JSON Schema calls `5.0` an integer, so an integral
/// float is one too (a body the document allows is never refused for its shape).
pub(crate) fn whole_number(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
            .map(|f| f as u64)
    })
}

/// Quotes a client-supplied string for a reason: escaped, and cut at 64
/// characters (on a char boundary) so a huge key cannot balloon the response.
pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 64;
    if s.chars().count() > MAX {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut:?}...")
    } else {
        format!("{s:?}")
    }
}
