//! Request validation: JSON bodies in, validated specs (or every reason they are
//! wrong) out. Pure code: it must never do I/O, touch the store or hyper, or panic
//! on anything a client sends.
//!
//! Webhook-style bodies are parsed as [`serde_json::Value`] and checked field by
//! field so that a 400 lists every problem at once. Event ingest is the hot path, so
//! [`event_create`] uses a derived deserializer with a [`RawValue`] for `data`, which
//! keeps the payload byte-for-byte.
//!
//! Reasons are short English sentences that name the field as the client spelled it
//! (`events must contain at least 1 element` when the seed alias `events` was sent),
//! quote client strings with Rust escaping (`event type "FOO" is not in the
//! catalogue`) and never echo secret values (header values, client secrets, signing
//! secrets).

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::dto::MASK;

mod origin;
#[cfg(test)]
mod sec_tests;
use crate::model::{self, OAuthConfig, Scope, Secret, UnixMs, Webhook};

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
const MAX_TEXT_LEN: usize = 1024;
/// Longest tenant id, in characters.
const MAX_TENANT_ID_LEN: usize = 64;
/// Longest tenant or API key name, in characters.
const MAX_NAME_LEN: usize = 200;
/// Longest metadata key, in characters.
const MAX_METADATA_KEY_LEN: usize = 256;
/// Longest header name, in bytes; real servers refuse far shorter ones anyway.
const MAX_HEADER_NAME_LEN: usize = 256;
/// Longest e-mail address (RFC 5321 path limit).
const MAX_EMAIL_LEN: usize = 254;
/// Message of a test event when the client sends none.
const DEFAULT_TEST_MESSAGE: &str = "This is a test event from hookbox.";

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

/// A validated `POST /v1/webhooks` body, ready to become a [`model::Webhook`].
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSpec {
    pub url: String,
    /// Normalised filters: exact names, `*`, or `prefix.*`/`prefix_*`; no duplicates.
    pub event_types: Vec<String>,
    /// Channel filter; empty means every channel. No duplicates.
    pub channels: Vec<String>,
    pub description: Option<String>,
    pub headers: BTreeMap<String, Secret>,
    pub oauth: Option<OAuthConfig>,
    /// 0..=2 `whsec_` secrets, current first; empty means the handler generates one.
    pub secrets: Vec<Secret>,
    pub notification_email: Option<String>,
    pub enabled: bool,
    pub metadata: BTreeMap<String, String>,
    pub rate_limit_per_second: Option<u32>,
}

/// A validated `PATCH /v1/webhooks/{id}` body. `None` leaves a field alone; for
/// clearable fields `Some(None)` (or an empty collection) clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    pub description: Option<Option<String>>,
    pub headers: Option<BTreeMap<String, Secret>>,
    pub oauth: Option<Option<OAuthConfig>>,
    pub notification_email: Option<Option<String>>,
    pub enabled: Option<bool>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub rate_limit_per_second: Option<Option<u32>>,
}

impl WebhookPatch {
    /// Applies the patch to `w` and stamps `updated_at = now`.
    ///
    /// Re-enabling a disabled webhook forgets why it was disabled and its failure
    /// run (so auto-disable starts afresh); disabling it through the API records
    /// `"disabled by API"` as the reason.
    pub fn apply(self, w: &mut Webhook, now: UnixMs) {
        if let Some(url) = self.url {
            w.url = url;
        }
        if let Some(event_types) = self.event_types {
            w.event_types = event_types;
        }
        if let Some(channels) = self.channels {
            w.channels = channels;
        }
        if let Some(description) = self.description {
            w.description = description;
        }
        if let Some(headers) = self.headers {
            w.headers = headers;
        }
        if let Some(oauth) = self.oauth {
            w.oauth = oauth;
        }
        if let Some(email) = self.notification_email {
            w.notification_email = email;
        }
        if let Some(metadata) = self.metadata {
            w.metadata = metadata;
        }
        if let Some(rate) = self.rate_limit_per_second {
            w.rate_limit_per_second = rate;
        }
        if let Some(enabled) = self.enabled {
            if enabled && !w.enabled {
                w.disabled_reason = None;
                w.disabled_at = None;
                w.failing_since = None;
            } else if !enabled && w.enabled {
                w.disabled_reason = Some("disabled by API".to_owned());
                w.disabled_at = Some(now);
            }
            w.enabled = enabled;
        }
        w.updated_at = now;
    }
}

/// A validated `POST /v1/webhooks/{id}/secrets/rotate` body.
#[derive(Debug, Clone, PartialEq)]
pub struct RotateSpec {
    /// The new current secret; `None` means the handler generates one.
    pub secret: Option<Secret>,
    /// How long the previous secret keeps signing.
    pub grace_seconds: u64,
}

/// A validated `POST /v1/webhooks/{id}/test` body.
#[derive(Debug, Clone, PartialEq)]
pub struct TestEventSpec {
    /// A catalogued event type.
    pub event_type: String,
    /// Free text put in the test payload (a default when the client sent none).
    pub message: String,
}

/// A validated `POST /v1/tenants` body.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantSpec {
    /// The requested id (`[A-Za-z0-9_-]{1,64}`); `None` means the handler picks one.
    pub id: Option<String>,
    pub name: String,
}

/// A validated `POST /v1/api-keys` body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeySpec {
    /// The tenant id the key acts for (existence is the handler's check).
    pub tenant: String,
    pub name: String,
    /// Non-empty, without duplicates, in the order given.
    pub scopes: Vec<Scope>,
}

/// A validated `POST /v1/event-types` body.
#[derive(Debug, Clone, PartialEq)]
pub struct EventTypeSpec {
    pub name: String,
    pub description: Option<String>,
    /// A JSON Schema object, as compact JSON text.
    pub schema: Option<String>,
}

/// A validated event from `POST /v1/events` (or one item of a batch).
#[derive(Debug, Clone)]
pub struct EventSpec {
    /// Not yet checked against the catalogue: the handler does that with the store.
    pub event_type: String,
    /// The payload exactly as the client sent it.
    pub data: Box<RawValue>,
    /// No duplicates, in the order given.
    pub channels: Vec<String>,
    pub idempotency_key: Option<String>,
}

// ---------------------------------------------------------------------------
// Field access with alias and unknown-field bookkeeping.

/// The fields of one JSON object, remembering which names were asked for so that
/// everything else can be reported as unknown (catches typos such as `colour`).
struct Fields<'a> {
    map: &'a Map<String, Value>,
    /// `""` for the body, `"oauth."` (as the client spelled it) for nested objects.
    prefix: String,
    known: Vec<&'static str>,
}

/// One field as found in the body: its name as the client spelled it (with the
/// nesting prefix) and its value.
struct Field<'a> {
    name: String,
    value: &'a Value,
}

impl<'a> Fields<'a> {
    /// Starts reading `v`, or records that `what` is not an object.
    fn of(v: &'a Value, prefix: String, what: &str, r: &mut Vec<String>) -> Option<Self> {
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
    fn get(&mut self, names: &[&'static str], r: &mut Vec<String>) -> Option<Field<'a>> {
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
    fn finish(self, r: &mut Vec<String>) {
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
    fn is_null(&self) -> bool {
        self.value.is_null()
    }

    fn string(&self, r: &mut Vec<String>) -> Option<&'a str> {
        let s = self.value.as_str();
        if s.is_none() {
            r.push(format!("{} must be a string", self.name));
        }
        s
    }

    /// A string of 1..=`max` characters.
    fn text(&self, max: usize, r: &mut Vec<String>) -> Option<String> {
        let s = self.string(r)?;
        check_text(&self.name, s, max, r).then(|| s.to_owned())
    }
}

/// A required field: absent or `null` is a reason.
fn required<'a>(f: Option<Field<'a>>, name: &str, r: &mut Vec<String>) -> Option<Field<'a>> {
    match f {
        Some(f) if !f.is_null() => Some(f),
        _ => {
            r.push(format!("{name} is required"));
            None
        }
    }
}

/// Checks that `s` holds 1..=`max` characters and is not only whitespace.
fn check_text(name: &str, s: &str, max: usize, r: &mut Vec<String>) -> bool {
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
fn no_control_chars(name: &str, s: &str, r: &mut Vec<String>) -> bool {
    let ok = !s.chars().any(char::is_control);
    if !ok {
        r.push(format!(
            "{name} must not contain control characters (such as CR or LF)"
        ));
    }
    ok
}

/// Quotes a client-supplied string for a reason: escaped, and cut at 64
/// characters (on a char boundary) so a huge key cannot balloon the response.
fn quote(s: &str) -> String {
    const MAX: usize = 64;
    if s.chars().count() > MAX {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut:?}...")
    } else {
        format!("{s:?}")
    }
}

// ---------------------------------------------------------------------------
// Webhook fields.

/// Checks a webhook or token URL: parses, http(s), has a host, https when
/// required, no userinfo or fragment, at most 2048 bytes, host not blocked.
fn check_url(name: &str, s: &str, ctx: &Ctx, r: &mut Vec<String>) -> Option<String> {
    let before = r.len();
    if s.len() > MAX_URL_LEN {
        r.push(format!("{name} must be at most {MAX_URL_LEN} characters"));
        return None;
    }
    if has_zone_id(s) {
        // A zone id (`[fe80::1%25lo]`, or `%lo` raw) names a local interface: the
        // host is not one global address the SSRF guard could judge.
        r.push(format!(
            "{name} host must not carry an IPv6 zone id (\"%\" inside the brackets)"
        ));
        return None;
    }
    let uri: http::Uri = match s.parse() {
        Ok(uri) => uri,
        Err(_) => {
            r.push(format!("{name} is not a valid URL"));
            return None;
        }
    };
    // http::Uri silently drops a fragment; receivers never see one, so a URL with
    // a fragment would not be delivered to as written.
    if s.contains('#') {
        r.push(format!("{name} must not contain a fragment"));
    }
    match uri.scheme_str() {
        Some(scheme) if scheme.eq_ignore_ascii_case("https") => {}
        Some(scheme) if scheme.eq_ignore_ascii_case("http") => {
            if ctx.require_https {
                r.push(format!("{name} must be https"));
            }
        }
        Some(_) => r.push(format!("{name} must use http or https")),
        None => r.push(format!("{name} must be an absolute http(s) URL")),
    }
    match uri.authority() {
        None => r.push(format!("{name} must have a host")),
        Some(authority) => {
            if authority.as_str().contains('@') {
                r.push(format!("{name} must not contain user credentials"));
            }
            let host = authority.host();
            let bare = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            if bare.is_empty() {
                r.push(format!("{name} must have a host"));
            } else if let Some(why) = (ctx.host_blocked)(bare) {
                r.push(format!("{name} host {bare} is not allowed: {why}"));
            }
            // http::Uri accepts any digits as a port (e.g. 99999); an empty port
            // (`host:`) means the default and is fine.
            let port_ok = match port_text(authority.as_str()) {
                None | Some("") => true,
                Some(p) => p.parse::<u16>().is_ok_and(|n| n != 0),
            };
            if !port_ok {
                r.push(format!("{name} port must be between 1 and 65535"));
            }
        }
    }
    (r.len() == before).then(|| s.to_owned())
}

/// Whether the authority of URL text `s` holds a bracketed IPv6 literal with a
/// zone id (`%` inside the brackets, encoded as `%25` or raw).
fn has_zone_id(s: &str) -> bool {
    let rest = s.split_once("://").map_or(s, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host = authority.rsplit('@').next().unwrap_or(authority);
    host.split_once('[')
        .and_then(|(_, tail)| tail.split_once(']'))
        .is_some_and(|(literal, _)| literal.contains('%'))
}

/// The port text of an authority (`user@host:port`, `[v6]:port`), if any.
fn port_text(authority: &str) -> Option<&str> {
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let tail = match host_port.rfind(']') {
        Some(i) => host_port.get(i + 1..).unwrap_or(""),
        None => host_port,
    };
    tail.rsplit_once(':').map(|(_, port)| port)
}

/// Whether `c` may appear in an event-type name (and a filter's prefix).
fn event_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')
}

/// Normalises one event-type filter: `*`/`all` -> `*`; `prefix.*`/`prefix_*`
/// kept; an exact name must be in the catalogue.
fn event_filter(s: &str, ctx: &Ctx) -> Result<String, String> {
    if s == "*" || s == "all" {
        return Ok("*".to_owned());
    }
    let Some(stem_sep) = s.strip_suffix('*') else {
        return if (ctx.known_event_type)(s) {
            Ok(s.to_owned())
        } else {
            Err(format!("event type {} is not in the catalogue", quote(s)))
        };
    };
    let Some(stem) = stem_sep.strip_suffix(['.', '_']) else {
        return Err(format!(
            "event type filter {} is not valid: \"*\" may only follow \".\" or \"_\" at the end",
            quote(s)
        ));
    };
    if stem.is_empty() {
        Err(format!(
            "event type filter {} needs a non-empty prefix",
            quote(s)
        ))
    } else if !stem.chars().all(event_name_char) {
        Err(format!(
            "event type filter {} may only contain letters, digits, \"_\", \".\", \":\" and \"-\" before the \"*\"",
            quote(s)
        ))
    } else {
        Ok(s.to_owned())
    }
}

/// `event_types` (or an alias): 1..=100 filters, normalised, duplicates removed.
fn check_event_types(f: &Field, ctx: &Ctx, r: &mut Vec<String>) -> Option<Vec<String>> {
    let Some(items) = f.value.as_array() else {
        r.push(format!("{} must be an array of strings", f.name));
        return None;
    };
    if items.is_empty() {
        r.push(format!("{} must contain at least 1 element", f.name));
        return None;
    }
    if items.len() > MAX_EVENT_TYPES {
        r.push(format!(
            "{} must contain no more than {MAX_EVENT_TYPES} elements",
            f.name
        ));
        return None;
    }
    let before = r.len();
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Some(s) = item.as_str() else {
            r.push(format!("{}[{i}] must be a string", f.name));
            continue;
        };
        match event_filter(s, ctx) {
            Ok(filter) if !out.contains(&filter) => out.push(filter),
            Ok(_) => {}
            Err(reason) => r.push(reason),
        }
    }
    (r.len() == before).then_some(out)
}

/// A list of channel names (webhook filter or event channels): at most 100, each
/// 1..=128 characters, duplicates removed.
fn check_channel_list<'s>(
    name: &str,
    items: impl ExactSizeIterator<Item = Option<&'s str>>,
    r: &mut Vec<String>,
) -> Option<Vec<String>> {
    if items.len() > MAX_CHANNELS {
        r.push(format!(
            "{name} must contain no more than {MAX_CHANNELS} elements"
        ));
        return None;
    }
    let before = r.len();
    let mut out: Vec<String> = Vec::new();
    for (i, item) in items.enumerate() {
        let Some(s) = item else {
            r.push(format!("{name}[{i}] must be a string"));
            continue;
        };
        if s.is_empty() {
            r.push(format!("{name}[{i}] must not be empty"));
        } else if s.chars().count() > MAX_CHANNEL_LEN {
            r.push(format!(
                "{name}[{i}] must be at most {MAX_CHANNEL_LEN} characters"
            ));
        } else if !out.iter().any(|c| c == s) {
            out.push(s.to_owned());
        }
    }
    (r.len() == before).then_some(out)
}

fn check_channels(f: &Field, r: &mut Vec<String>) -> Option<Vec<String>> {
    let Some(items) = f.value.as_array() else {
        r.push(format!("{} must be an array of strings", f.name));
        return None;
    };
    check_channel_list(&f.name, items.iter().map(Value::as_str), r)
}

/// Which custom header names a map refuses (beyond the framing headers, which
/// every map refuses), and how its reasons name a header.
struct HeaderRules {
    label: &'static str,
    reserved: &'static [&'static str],
    reserved_prefix: Option<&'static str>,
}

/// Headers that frame the HTTP message; a custom value would corrupt the request.
const FRAMING_HEADERS: [&str; 8] = [
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "upgrade",
];

/// Webhook headers: we also set `user-agent` and every `webhook-*` signature header.
const WEBHOOK_HEADERS: HeaderRules = HeaderRules {
    label: "header",
    reserved: &["user-agent"],
    reserved_prefix: Some("webhook-"),
};

/// OAuth token-request headers: only framing headers are ours (an extra
/// `authorization` is legitimate for token endpoints that want Basic auth).
const OAUTH_HEADERS: HeaderRules = HeaderRules {
    label: "oauth header",
    reserved: &[],
    reserved_prefix: None,
};

/// RFC 7230 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A custom header map. A value of exactly `"****"` (what reads show) keeps the
/// value in `keep` under the same name, so a client may send back what it read;
/// with nothing to keep it is refused rather than stored as a literal mask. When
/// `moved` says why the stored values' destination changed, a mask keeps nothing
/// and each masked value must be sent again.
fn check_headers(
    f: &Field,
    rules: &HeaderRules,
    keep: Option<&BTreeMap<String, Secret>>,
    moved: Option<&str>,
    r: &mut Vec<String>,
) -> Option<BTreeMap<String, Secret>> {
    let Some(map) = f.value.as_object() else {
        r.push(format!("{} must be an object of strings", f.name));
        return None;
    };
    if map.len() > MAX_HEADERS {
        r.push(format!(
            "{} must contain no more than {MAX_HEADERS} entries",
            f.name
        ));
        return None;
    }
    let label = rules.label;
    let before = r.len();
    let mut out = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (name, value) in map {
        let lower = name.to_ascii_lowercase();
        if name.is_empty() || name.len() > MAX_HEADER_NAME_LEN || !name.bytes().all(is_tchar) {
            r.push(format!("{label} name {} is not a valid token", quote(name)));
            continue;
        }
        if FRAMING_HEADERS.contains(&lower.as_str())
            || rules.reserved.contains(&lower.as_str())
            || rules.reserved_prefix.is_some_and(|p| lower.starts_with(p))
        {
            r.push(format!("{label} {} is reserved", quote(name)));
        }
        if !seen.insert(lower) {
            r.push(format!(
                "{label} {} is given more than once (names are case-insensitive)",
                quote(name)
            ));
        }
        let Some(v) = value.as_str() else {
            r.push(format!("{}[{}] must be a string", f.name, quote(name)));
            continue;
        };
        if v.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            r.push(format!(
                "{label} {} value must not contain CR, LF or NUL",
                quote(name)
            ));
        } else if v.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            r.push(format!(
                "{label} {} value must not contain control characters",
                quote(name)
            ));
        } else if v.len() > MAX_HEADER_VALUE_BYTES {
            r.push(format!(
                "{label} {} value must be at most {MAX_HEADER_VALUE_BYTES} bytes",
                quote(name)
            ));
        } else if v == MASK {
            let kept = keep.and_then(|k| k.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)));
            match kept {
                Some(_) if let Some(why) = moved => {
                    r.push(format!("{}.{name} must be sent again: {why}", f.name));
                }
                Some((_, secret)) => {
                    out.insert(name.clone(), secret.clone());
                }
                None => r.push(format!(
                    "{label} {} value is the mask \"****\"; send the real value",
                    quote(name)
                )),
            }
        } else {
            out.insert(name.clone(), Secret::new(v));
        }
    }
    (r.len() == before).then_some(out)
}

/// The `oauth` object. `current` is the stored configuration (PATCH), whose
/// secrets a masked `"****"` keeps.
fn check_oauth(
    f: &Field,
    ctx: &Ctx,
    current: Option<&OAuthConfig>,
    r: &mut Vec<String>,
) -> Option<OAuthConfig> {
    let before = r.len();
    let mut fields = Fields::of(f.value, format!("{}.", f.name), &f.name, r)?;
    let p = fields.prefix.clone();

    let token_url = required(fields.get(&["token_url"], r), &format!("{p}token_url"), r)
        .and_then(|f| f.string(r).and_then(|s| check_url(&f.name, s, ctx, r)));
    // Stored OAuth secrets belong to the token endpoint: a mask keeps them only
    // while it stays at the same scheme, host and port.
    let moved = match (current, &token_url) {
        (Some(c), Some(next)) if !origin::same_destination(&c.token_url, next) => {
            Some(format!("{p}token_url moves to another host"))
        }
        _ => None,
    };
    let client_id = required(fields.get(&["client_id"], r), &format!("{p}client_id"), r)
        .and_then(|f| f.text(MAX_TEXT_LEN, r));
    let client_secret = required(
        fields.get(&["client_secret"], r),
        &format!("{p}client_secret"),
        r,
    )
    .and_then(|f| {
        let s = f.text(MAX_TEXT_LEN, r)?;
        if s != MASK {
            return Some(Secret::new(s));
        }
        if let (Some(why), Some(_)) = (&moved, current) {
            r.push(format!("{} must be sent again: {why}", f.name));
            return None;
        }
        let kept = current.map(|c| c.client_secret.clone());
        if kept.is_none() {
            r.push(format!(
                "{} is the mask \"****\"; send the real value",
                f.name
            ));
        }
        kept
    });
    let scope = match fields.get(&["scope"], r) {
        Some(f) if !f.is_null() => f.text(MAX_TEXT_LEN, r),
        _ => None,
    };
    let headers = match fields.get(&["headers"], r) {
        Some(f) if !f.is_null() => check_headers(
            &f,
            &OAUTH_HEADERS,
            current.map(|c| &c.headers),
            moved.as_deref(),
            r,
        ),
        _ => Some(BTreeMap::new()),
    };
    fields.finish(r);

    if r.len() != before {
        return None;
    }
    Some(OAuthConfig {
        token_url: token_url?,
        client_id: client_id?,
        client_secret: client_secret?,
        scope,
        headers: headers?,
    })
}

/// One signing secret: `whsec_` + standard base64 of 24..=64 bytes. The value is
/// never echoed in a reason.
fn check_signing_secret(name: &str, v: &Value, r: &mut Vec<String>) -> Option<Secret> {
    let Some(s) = v.as_str() else {
        r.push(format!("{name} must be a string"));
        return None;
    };
    let Some(encoded) = s.strip_prefix(SECRET_PREFIX) else {
        r.push(format!("{name} must start with \"{SECRET_PREFIX}\""));
        return None;
    };
    // Strict standard base64 (padded), the encoding the Standard Webhooks
    // libraries decode, so a secret we accept is one receivers can verify with.
    match base64::engine::general_purpose::STANDARD.decode(encoded) {
        Err(_) => {
            r.push(format!(
                "{name} must be \"{SECRET_PREFIX}\" followed by standard base64"
            ));
            None
        }
        Ok(bytes) if !SECRET_BYTES.contains(&bytes.len()) => {
            r.push(format!(
                "{name} must decode to {} to {} bytes, not {}",
                SECRET_BYTES.start(),
                SECRET_BYTES.end(),
                bytes.len()
            ));
            None
        }
        Ok(_) => Some(Secret::new(s)),
    }
}

fn check_secrets(f: &Field, r: &mut Vec<String>) -> Option<Vec<Secret>> {
    let Some(items) = f.value.as_array() else {
        r.push(format!("{} must be an array of strings", f.name));
        return None;
    };
    if items.len() > MAX_SECRETS {
        r.push(format!(
            "{} must contain no more than {MAX_SECRETS} elements",
            f.name
        ));
    }
    let before = r.len();
    let mut out: Vec<Secret> = Vec::new();
    // Each entry is still checked so one answer lists every bad secret, but a
    // huge array gets a bounded number of reasons.
    for (i, item) in items.iter().enumerate().take(MAX_SECRETS + 8) {
        if let Some(secret) = check_signing_secret(&format!("{}[{i}]", f.name), item, r) {
            if out.contains(&secret) {
                r.push(format!("{} must not contain the same secret twice", f.name));
            } else {
                out.push(secret);
            }
        }
    }
    (r.len() == before).then_some(out)
}

/// A plausible address that the SMTP client will also accept: one `@`, a
/// non-empty local part, a dotted domain without empty labels, no whitespace.
fn plausible_email(s: &str) -> bool {
    let shape = s.len() <= MAX_EMAIL_LEN
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && s.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && domain.split('.').all(|label| !label.is_empty())
        });
    shape && s.parse::<lettre::Address>().is_ok()
}

fn check_email(f: &Field, r: &mut Vec<String>) -> Option<String> {
    let s = f.string(r)?;
    if plausible_email(s) {
        Some(s.to_owned())
    } else {
        r.push(format!("{} is not a valid email address", f.name));
        None
    }
}

fn check_description(f: &Field, r: &mut Vec<String>) -> Option<String> {
    let s = f.string(r)?;
    if s.chars().count() > MAX_DESCRIPTION_LEN {
        r.push(format!(
            "{} must be at most {MAX_DESCRIPTION_LEN} characters",
            f.name
        ));
        return None;
    }
    Some(s.to_owned())
}

fn check_bool(f: &Field, r: &mut Vec<String>) -> Option<bool> {
    let b = f.value.as_bool();
    if b.is_none() {
        r.push(format!("{} must be a boolean", f.name));
    }
    b
}

fn check_metadata(f: &Field, r: &mut Vec<String>) -> Option<BTreeMap<String, String>> {
    let Some(map) = f.value.as_object() else {
        r.push(format!("{} must be an object of strings", f.name));
        return None;
    };
    if map.len() > MAX_METADATA {
        r.push(format!(
            "{} must contain no more than {MAX_METADATA} entries",
            f.name
        ));
        return None;
    }
    let before = r.len();
    let mut out = BTreeMap::new();
    for (k, v) in map {
        if k.is_empty() || k.chars().count() > MAX_METADATA_KEY_LEN {
            r.push(format!(
                "{} keys must be 1 to {MAX_METADATA_KEY_LEN} characters",
                f.name
            ));
            continue;
        }
        match v.as_str() {
            Some(s) if s.chars().count() <= MAX_TEXT_LEN => {
                out.insert(k.clone(), s.to_owned());
            }
            Some(_) => r.push(format!(
                "{}[{}] must be at most {MAX_TEXT_LEN} characters",
                f.name,
                quote(k)
            )),
            None => r.push(format!("{}[{}] must be a string", f.name, quote(k))),
        }
    }
    (r.len() == before).then_some(out)
}

fn check_rate_limit(f: &Field, r: &mut Vec<String>) -> Option<u32> {
    match f.value.as_u64() {
        Some(n @ 1..=MAX_RATE_LIMIT) => u32::try_from(n).ok(),
        _ => {
            r.push(format!(
                "{} must be an integer between 1 and {MAX_RATE_LIMIT}",
                f.name
            ));
            None
        }
    }
}

/// Reads every webhook field of a create (`current == None`) or patch body into a
/// patch, plus the create-only secrets. Reasons accumulate in `r`.
fn webhook_fields(
    body: &Value,
    ctx: &Ctx,
    current: Option<&Webhook>,
    r: &mut Vec<String>,
) -> (WebhookPatch, Vec<Secret>) {
    let mut p = WebhookPatch::default();
    let mut secrets = Vec::new();
    let Some(mut fields) = Fields::of(body, String::new(), "request body", r) else {
        return (p, secrets);
    };
    let creating = current.is_none();

    match fields.get(&["url"], r) {
        Some(f) if !f.is_null() => {
            p.url = f.string(r).and_then(|s| check_url(&f.name, s, ctx, r));
        }
        Some(f) => r.push(format!("{} must not be null", f.name)),
        None if creating => r.push("url is required".to_owned()),
        None => {}
    }
    match fields.get(&["event_types", "subscriptions", "events"], r) {
        Some(f) if !f.is_null() => p.event_types = check_event_types(&f, ctx, r),
        Some(f) => r.push(format!("{} must not be null", f.name)),
        None if creating => r.push("event_types is required".to_owned()),
        None => {}
    }
    match fields.get(&["channels", "facilities"], r) {
        Some(f) if f.is_null() => p.channels = Some(Vec::new()),
        Some(f) => p.channels = check_channels(&f, r),
        None => {}
    }
    match fields.get(&["description"], r) {
        Some(f) if f.is_null() => p.description = Some(None),
        Some(f) => p.description = check_description(&f, r).map(Some),
        None => {}
    }

    // OAuth first: whether `authorization` is a reserved header depends on it.
    let oauth_field = fields.get(&["oauth", "oauth_configuration"], r);
    let oauth_set = match &oauth_field {
        Some(f) => !f.is_null(),
        None => current.is_some_and(|w| w.oauth.is_some()),
    };
    match &oauth_field {
        Some(f) if f.is_null() => p.oauth = Some(None),
        Some(f) => {
            let cur = current.and_then(|w| w.oauth.as_ref());
            p.oauth = check_oauth(f, ctx, cur, r).map(Some);
        }
        None => {}
    }
    // Stored header values belong to the webhook's destination: a mask keeps them
    // only while `url` stays at the same scheme, host and port.
    let url_moved = match (current, &p.url) {
        (Some(w), Some(next)) if !origin::same_destination(&w.url, next) => {
            Some("url moves to another host".to_owned())
        }
        _ => None,
    };
    let headers_field = fields.get(&["headers"], r);
    let header_names: Vec<&str> = match &headers_field {
        Some(f) => f
            .value
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default(),
        None => current
            .map(|w| w.headers.keys().map(String::as_str).collect())
            .unwrap_or_default(),
    };
    match &headers_field {
        Some(f) if f.is_null() => p.headers = Some(BTreeMap::new()),
        Some(f) => {
            p.headers = check_headers(
                f,
                &WEBHOOK_HEADERS,
                current.map(|w| &w.headers),
                url_moved.as_deref(),
                r,
            )
        }
        // Stored header values left out of the PATCH would follow the webhook to
        // its new host just as masked ones would.
        None => {
            if let (Some(why), Some(w)) = (&url_moved, current) {
                for name in w.headers.keys() {
                    r.push(format!("headers.{name} must be sent again: {why}"));
                }
            }
        }
    }
    if oauth_set {
        for name in header_names {
            if name.eq_ignore_ascii_case("authorization") {
                r.push(format!(
                    "header {} is reserved when oauth is set",
                    quote(name)
                ));
            }
        }
    }

    match fields.get(&["secrets"], r) {
        Some(f) if !creating => r.push(format!(
            "{} cannot be changed here; use POST /v1/webhooks/{{id}}/secrets/rotate",
            f.name
        )),
        Some(f) if f.is_null() => {}
        Some(f) => secrets = check_secrets(&f, r).unwrap_or_default(),
        None => {}
    }
    match fields.get(&["notification_email", "notificationEmail"], r) {
        Some(f) if f.is_null() => p.notification_email = Some(None),
        Some(f) => p.notification_email = check_email(&f, r).map(Some),
        None => {}
    }
    if let Some(f) = fields.get(&["enabled"], r) {
        p.enabled = check_bool(&f, r);
    }
    match fields.get(&["metadata"], r) {
        Some(f) if f.is_null() => p.metadata = Some(BTreeMap::new()),
        Some(f) => p.metadata = check_metadata(&f, r),
        None => {}
    }
    match fields.get(&["rate_limit_per_second"], r) {
        Some(f) if f.is_null() => p.rate_limit_per_second = Some(None),
        Some(f) => p.rate_limit_per_second = check_rate_limit(&f, r).map(Some),
        None => {}
    }
    fields.finish(r);
    (p, secrets)
}

/// Validates a `POST /v1/webhooks` body (seed aliases included: `subscriptions`
/// and `events` for `event_types`, `facilities` for `channels`,
/// `oauth_configuration` for `oauth`, `notificationEmail`).
pub fn webhook_create(body: &Value, ctx: &Ctx) -> Result<WebhookSpec, Vec<String>> {
    let mut r = Vec::new();
    let (p, secrets) = webhook_fields(body, ctx, None, &mut r);
    if !r.is_empty() {
        return Err(r);
    }
    let (Some(url), Some(event_types)) = (p.url, p.event_types) else {
        // Unreachable: a missing or invalid url/event_types always adds a reason.
        return Err(vec!["url and event_types are required".to_owned()]);
    };
    Ok(WebhookSpec {
        url,
        event_types,
        channels: p.channels.unwrap_or_default(),
        description: p.description.flatten(),
        headers: p.headers.unwrap_or_default(),
        oauth: p.oauth.flatten(),
        secrets,
        notification_email: p.notification_email.flatten(),
        enabled: p.enabled.unwrap_or(true),
        metadata: p.metadata.unwrap_or_default(),
        rate_limit_per_second: p.rate_limit_per_second.flatten(),
    })
}

/// Validates a `PATCH /v1/webhooks/{id}` body against the stored webhook. Same
/// rules and aliases as create; `null` clears optional fields; `secrets` are
/// refused (rotation has its own route).
pub fn webhook_patch(
    body: &Value,
    current: &Webhook,
    ctx: &Ctx,
) -> Result<WebhookPatch, Vec<String>> {
    let mut r = Vec::new();
    let (p, _) = webhook_fields(body, ctx, Some(current), &mut r);
    if r.is_empty() { Ok(p) } else { Err(r) }
}

// ---------------------------------------------------------------------------
// Other small bodies.

/// Validates a rotation body `{secret?, grace_seconds?}`; `{}` is fine.
pub fn rotate(body: &Value) -> Result<RotateSpec, Vec<String>> {
    let mut r = Vec::new();
    let Some(mut fields) = Fields::of(body, String::new(), "request body", &mut r) else {
        return Err(r);
    };
    let secret = match fields.get(&["secret"], &mut r) {
        Some(f) if !f.is_null() => check_signing_secret(&f.name, f.value, &mut r),
        _ => None,
    };
    let grace_seconds = match fields.get(&["grace_seconds"], &mut r) {
        Some(f) if !f.is_null() => match f.value.as_u64() {
            Some(n) if n <= MAX_GRACE_SECONDS => n,
            _ => {
                r.push(format!(
                    "{} must be an integer between 0 and {MAX_GRACE_SECONDS}",
                    f.name
                ));
                0
            }
        },
        _ => DEFAULT_GRACE_SECONDS,
    };
    fields.finish(&mut r);
    if r.is_empty() {
        Ok(RotateSpec {
            secret,
            grace_seconds,
        })
    } else {
        Err(r)
    }
}

/// Validates a test-event body `{event_type (alias eventType), message?}`.
pub fn test_event(body: &Value, ctx: &Ctx) -> Result<TestEventSpec, Vec<String>> {
    let mut r = Vec::new();
    let Some(mut fields) = Fields::of(body, String::new(), "request body", &mut r) else {
        return Err(r);
    };
    let event_type = required(
        fields.get(&["event_type", "eventType"], &mut r),
        "event_type",
        &mut r,
    )
    .and_then(|f| {
        let s = f.string(&mut r)?;
        if (ctx.known_event_type)(s) {
            Some(s.to_owned())
        } else {
            r.push(format!("event type {} is not in the catalogue", quote(s)));
            None
        }
    });
    let message = match fields.get(&["message"], &mut r) {
        Some(f) if !f.is_null() => f.text(MAX_TEXT_LEN, &mut r),
        _ => Some(DEFAULT_TEST_MESSAGE.to_owned()),
    };
    fields.finish(&mut r);
    match (event_type, message) {
        (Some(event_type), Some(message)) if r.is_empty() => Ok(TestEventSpec {
            event_type,
            message,
        }),
        _ => Err(r),
    }
}

/// Validates a recover body `{since: RFC 3339}` against the current clock.
pub fn recover(body: &Value) -> Result<UnixMs, Vec<String>> {
    recover_at(body, model::now_ms())
}

/// [`recover`] with an explicit clock: `since` must not be after `now`.
pub fn recover_at(body: &Value, now: UnixMs) -> Result<UnixMs, Vec<String>> {
    let mut r = Vec::new();
    let Some(mut fields) = Fields::of(body, String::new(), "request body", &mut r) else {
        return Err(r);
    };
    let since = required(fields.get(&["since"], &mut r), "since", &mut r).and_then(|f| {
        let s = f.string(&mut r)?;
        match model::parse_rfc3339(s) {
            Some(ms) if ms <= now => Some(ms),
            Some(_) => {
                r.push(format!("{} must not be in the future", f.name));
                None
            }
            None => {
                r.push(format!(
                    "{} must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z",
                    f.name
                ));
                None
            }
        }
    });
    fields.finish(&mut r);
    match since {
        Some(ms) if r.is_empty() => Ok(ms),
        _ => Err(r),
    }
}

/// Checks a tenant id: 1..=64 of `[A-Za-z0-9_-]`.
fn check_tenant_id(f: &Field, r: &mut Vec<String>) -> Option<String> {
    let s = f.string(r)?;
    let ok = !s.is_empty()
        && s.len() <= MAX_TENANT_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Some(s.to_owned())
    } else {
        r.push(format!(
            "{} must be 1 to {MAX_TENANT_ID_LEN} letters, digits, \"_\" or \"-\"",
            f.name
        ));
        None
    }
}

/// Validates a `POST /v1/tenants` body `{id?, name}`.
pub fn tenant_create(body: &Value) -> Result<TenantSpec, Vec<String>> {
    let mut r = Vec::new();
    let Some(mut fields) = Fields::of(body, String::new(), "request body", &mut r) else {
        return Err(r);
    };
    let id = match fields.get(&["id"], &mut r) {
        Some(f) if !f.is_null() => check_tenant_id(&f, &mut r),
        _ => None,
    };
    let name = required(fields.get(&["name"], &mut r), "name", &mut r)
        .and_then(|f| f.text(MAX_NAME_LEN, &mut r))
        .filter(|s| no_control_chars("name", s, &mut r));
    fields.finish(&mut r);
    match name {
        Some(name) if r.is_empty() => Ok(TenantSpec { id, name }),
        _ => Err(r),
    }
}

/// Validates a `POST /v1/api-keys` body `{tenant, name, scopes}`.
pub fn api_key_create(body: &Value) -> Result<ApiKeySpec, Vec<String>> {
    let mut r = Vec::new();
    let Some(mut fields) = Fields::of(body, String::new(), "request body", &mut r) else {
        return Err(r);
    };
    let tenant = required(fields.get(&["tenant"], &mut r), "tenant", &mut r)
        .and_then(|f| check_tenant_id(&f, &mut r));
    let name = required(fields.get(&["name"], &mut r), "name", &mut r)
        .and_then(|f| f.text(MAX_NAME_LEN, &mut r))
        .filter(|s| no_control_chars("name", s, &mut r));
    let scopes = required(fields.get(&["scopes"], &mut r), "scopes", &mut r).and_then(|f| {
        let Some(items) = f.value.as_array() else {
            r.push(format!("{} must be an array of strings", f.name));
            return None;
        };
        if items.is_empty() {
            r.push(format!("{} must contain at least 1 element", f.name));
            return None;
        }
        let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item.as_str().map(|s| (s, Scope::parse(s))) {
                Some((_, Some(scope))) if !out.contains(&scope) => out.push(scope),
                Some((_, Some(_))) => {}
                Some((s, None)) => r.push(format!(
                    "scope {} is not one of {}",
                    quote(s),
                    known.join(", ")
                )),
                None => r.push(format!("{}[{i}] must be a string", f.name)),
            }
        }
        Some(out)
    });
    fields.finish(&mut r);
    match (tenant, name, scopes) {
        (Some(tenant), Some(name), Some(scopes)) if r.is_empty() => Ok(ApiKeySpec {
            tenant,
            name,
            scopes,
        }),
        _ => Err(r),
    }
}

/// Validates a `POST /v1/event-types` body `{name, description?, schema?}`.
pub fn event_type_create(body: &Value) -> Result<EventTypeSpec, Vec<String>> {
    let mut r = Vec::new();
    let Some(mut fields) = Fields::of(body, String::new(), "request body", &mut r) else {
        return Err(r);
    };
    let name = required(fields.get(&["name"], &mut r), "name", &mut r).and_then(|f| {
        let s = f.string(&mut r)?;
        let before = r.len();
        if s.is_empty() || s.chars().count() > MAX_EVENT_TYPE_LEN || !s.chars().all(event_name_char)
        {
            r.push(format!(
                "{} must be 1 to {MAX_EVENT_TYPE_LEN} letters, digits, \"_\", \".\", \":\" or \"-\"",
                f.name
            ));
        }
        if s == "all" {
            r.push(format!(
                "{} must not be \"all\": it means every event type",
                f.name
            ));
        }
        if s.starts_with("hookbox.") {
            r.push(format!(
                "{} must not start with \"hookbox.\": those names are reserved for operational events",
                f.name
            ));
        }
        (r.len() == before).then(|| s.to_owned())
    });
    let description = match fields.get(&["description"], &mut r) {
        Some(f) if !f.is_null() => check_description(&f, &mut r),
        _ => None,
    };
    let schema = match fields.get(&["schema"], &mut r) {
        Some(f) if !f.is_null() => {
            if f.value.is_object() {
                Some(f.value.to_string())
            } else {
                r.push(format!("{} must be a JSON object (a JSON Schema)", f.name));
                None
            }
        }
        _ => None,
    };
    fields.finish(&mut r);
    match name {
        Some(name) if r.is_empty() => Ok(EventTypeSpec {
            name,
            description,
            schema,
        }),
        _ => Err(r),
    }
}

// ---------------------------------------------------------------------------
// Events: the ingest hot path.

/// The wire shape of one event. Every field is optional here so that the checks
/// below can report all missing fields at once instead of serde's first.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an event object")]
struct RawEvent {
    #[serde(rename = "type", alias = "event_type", alias = "eventType")]
    event_type: Option<String>,
    /// `Some` whenever the key is present, even for `"data": null`.
    #[serde(default, deserialize_with = "present_raw")]
    data: Option<Box<RawValue>>,
    channels: Option<Vec<String>>,
    #[serde(alias = "idempotencyKey")]
    idempotency_key: Option<String>,
}

/// Deserializes a present value (including `null`) as raw JSON, so that a
/// missing `data` and `"data": null` stay distinguishable.
fn present_raw<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

/// Turns a serde error into one reason: a syntax error means the bytes are not
/// JSON; anything else means JSON of the wrong shape.
fn serde_reason(e: &serde_json::Error) -> String {
    match e.classify() {
        serde_json::error::Category::Data => format!("invalid request: {e}"),
        _ => format!("invalid JSON: {e}"),
    }
}

/// Checks an idempotency key: 1..=256 characters, none of them a control
/// character.
fn check_idempotency_key(name: &str, key: &str, r: &mut Vec<String>) -> bool {
    let n = key.chars().count();
    let ok = (1..=MAX_IDEMPOTENCY_KEY_LEN).contains(&n);
    if !ok {
        r.push(format!(
            "{name} must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters"
        ));
    }
    ok && no_control_chars(name, key, r)
}

/// The field checks of one parsed event.
fn check_event(ev: RawEvent, header_key: Option<&str>) -> Result<EventSpec, Vec<String>> {
    let mut r = Vec::new();
    match &ev.event_type {
        None => r.push("type is required".to_owned()),
        Some(t) if t.is_empty() => r.push("type must not be empty".to_owned()),
        Some(t) if t.chars().count() > MAX_EVENT_TYPE_LEN => r.push(format!(
            "type must be at most {MAX_EVENT_TYPE_LEN} characters"
        )),
        Some(_) => {}
    }
    match &ev.data {
        None => r.push("data is required".to_owned()),
        // A raw value is skipped over, not parsed, so serde_json's recursion limit
        // never saw it: without this check a 100k-deep payload would be stored,
        // then read back as null and break receivers that parse recursively.
        Some(data) if nests_deeper_than(data.get(), MAX_DATA_DEPTH) => r.push(format!(
            "data must not nest arrays and objects more than {MAX_DATA_DEPTH} levels deep"
        )),
        Some(_) => {}
    }
    let channels = match &ev.channels {
        Some(cs) => check_channel_list("channels", cs.iter().map(|c| Some(c.as_str())), &mut r),
        None => Some(Vec::new()),
    };
    if let Some(k) = header_key {
        check_idempotency_key("Idempotency-Key header", k, &mut r);
    }
    if let Some(k) = &ev.idempotency_key {
        check_idempotency_key("idempotency_key", k, &mut r);
        if header_key.is_some_and(|h| h != k) {
            r.push(
                "idempotency_key differs from the Idempotency-Key header; send one or make them equal"
                    .to_owned(),
            );
        }
    }
    match (ev.event_type, ev.data, channels) {
        (Some(event_type), Some(data), Some(channels)) if r.is_empty() => Ok(EventSpec {
            event_type,
            data,
            channels,
            idempotency_key: ev.idempotency_key.or_else(|| header_key.map(str::to_owned)),
        }),
        _ => Err(r),
    }
}

/// Whether the JSON text `json` (known to be valid) nests arrays and objects more
/// than `max` levels deep. One pass over the bytes, skipping string contents.
fn nests_deeper_than(json: &str, max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for b in json.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Validates one `POST /v1/events` body, keeping `data` byte-for-byte. The
/// `Idempotency-Key` header, when given, must agree with any body key. Whether the
/// type is catalogued is the handler's check.
pub fn event_create(
    raw: &[u8],
    header_idempotency_key: Option<&str>,
) -> Result<EventSpec, Vec<String>> {
    parse_event(raw, "request body")
        .map_err(|reason| vec![reason])
        .and_then(|ev| check_event(ev, header_idempotency_key))
}

/// The first byte that is not JSON whitespace.
fn first_byte(raw: &[u8]) -> Option<u8> {
    raw.iter().find(|b| !b.is_ascii_whitespace()).copied()
}

/// Parses one event object. serde's derive would also accept a JSON array of the
/// fields in order, so anything but an object is refused up front.
fn parse_event(raw: &[u8], what: &str) -> Result<RawEvent, String> {
    if first_byte(raw) != Some(b'{') {
        return Err(format!("{what} must be a JSON object"));
    }
    serde_json::from_slice(raw).map_err(|e| serde_reason(&e))
}

/// The `{"events": [...]}` form of a batch.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object with an \"events\" array")]
struct RawBatch {
    events: Vec<Box<RawValue>>,
}

/// Validates a `POST /v1/events/batch` body: `{"events": [...]}` or a bare array
/// of 1..=1000 events. Reasons of an item are prefixed `events[i]: `. Idempotency
/// keys must be distinct within a batch.
pub fn event_batch(raw: &[u8]) -> Result<Vec<EventSpec>, Vec<String>> {
    let items: Vec<Box<RawValue>> = match first_byte(raw) {
        Some(b'[') => serde_json::from_slice(raw),
        Some(b'{') => serde_json::from_slice::<RawBatch>(raw).map(|b| b.events),
        _ => {
            return Err(vec![
                "request body must be {\"events\": [...]} or a JSON array of events".to_owned(),
            ]);
        }
    }
    .map_err(|e| vec![serde_reason(&e)])?;
    if items.is_empty() {
        return Err(vec!["events must contain at least 1 element".to_owned()]);
    }
    if items.len() > MAX_BATCH {
        return Err(vec![format!(
            "events must contain no more than {MAX_BATCH} elements"
        )]);
    }
    let mut r = Vec::new();
    let mut out = Vec::with_capacity(items.len());
    let mut keys: BTreeMap<String, usize> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        // Each item was already checked to be JSON, so only shape errors remain.
        let parsed = parse_event(item.get().as_bytes(), "event")
            .map_err(|reason| vec![reason])
            .and_then(|ev| check_event(ev, None));
        match parsed {
            Ok(spec) => {
                if let Some(k) = &spec.idempotency_key {
                    if let Some(j) = keys.get(k) {
                        r.push(format!(
                            "events[{i}]: idempotency_key repeats the one of events[{j}]"
                        ));
                    } else {
                        keys.insert(k.clone(), i);
                    }
                }
                out.push(spec);
            }
            Err(reasons) => r.extend(reasons.into_iter().map(|x| format!("events[{i}]: {x}"))),
        }
    }
    if r.is_empty() { Ok(out) } else { Err(r) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SigningSecret;
    use serde_json::json;

    /// The seeds' catalogues (a sample of each), plus an operational event.
    const CATALOGUE: &[&str] = &[
        "IN_PROGRESS",
        "PSV_COMPLETED",
        "PROVIDER_CRED_APPROVED",
        "PATIENT_CREATED",
        "APPOINTMENT_CANCELLED",
        "validation_request.approved",
        "donation.hosted.payment_received",
        "shift.created",
        "shift.report.created",
        "hookbox.webhook.disabled",
    ];
    const S1: &str = "whsec_sDV1aKqitCLClI12m7UPFbAAvZfZquJw";
    const S2: &str = "whsec_mryefgHPBVHJwux0o3BYW7hPM0BZlcCa";
    const NOW: UnixMs = 1_763_790_000_000;

    fn known(name: &str) -> bool {
        CATALOGUE.contains(&name)
    }

    fn blocked(host: &str) -> Option<String> {
        match host {
            "127.0.0.1" | "::1" => Some("loopback address".to_owned()),
            "169.254.169.254" => Some("cloud metadata address".to_owned()),
            _ => None,
        }
    }

    pub(super) fn ctx(require_https: bool) -> Ctx<'static> {
        Ctx {
            require_https,
            known_event_type: &known,
            host_blocked: &blocked,
        }
    }

    pub(super) fn reasons<T: std::fmt::Debug>(res: Result<T, Vec<String>>) -> Vec<String> {
        match res {
            Ok(v) => panic!("expected reasons, got {v:?}"),
            Err(r) => r,
        }
    }

    pub(super) fn assert_has(r: &[String], want: &str) {
        assert!(r.iter().any(|x| x == want), "missing {want:?} in {r:#?}");
    }

    pub(super) fn stored() -> Webhook {
        Webhook {
            id: "wh_1".to_owned(),
            tenant: "acme".to_owned(),
            url: "https://example.com/hook".to_owned(),
            event_types: vec!["IN_PROGRESS".to_owned()],
            channels: vec!["P-1".to_owned()],
            description: Some("old".to_owned()),
            headers: BTreeMap::from([("X-Api-Key".to_owned(), Secret::new("stored-value"))]),
            oauth: None,
            secrets: vec![SigningSecret {
                secret: Secret::new(S1),
                expires_at: None,
            }],
            notification_email: Some("ops@example.com".to_owned()),
            enabled: true,
            disabled_reason: None,
            disabled_at: None,
            metadata: BTreeMap::from([("team".to_owned(), "a".to_owned())]),
            rate_limit_per_second: Some(5),
            created_at: NOW - 1000,
            updated_at: NOW - 1000,
            deleted_at: None,
            failing_since: None,
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let body = json!({
            "url": "http://example.com/hook",
            "event_types": ["IN_PROGRESS", "FOO"],
            "secrets": [S1, "whsec_!!!not-base64", S2],
            "headers": {"X-Ok": "line1\r\nline2", "webhook-id": "x", "bad name": "v"},
            "notification_email": "not an email",
            "colour": "blue",
            "rate_limit_per_second": 0,
            "enabled": "yes",
        });
        let r = reasons(webhook_create(&body, &ctx(true)));
        for want in [
            "url must be https",
            "event type \"FOO\" is not in the catalogue",
            "secrets must contain no more than 2 elements",
            "secrets[1] must be \"whsec_\" followed by standard base64",
            "header \"X-Ok\" value must not contain CR, LF or NUL",
            "header \"webhook-id\" is reserved",
            "header name \"bad name\" is not a valid token",
            "notification_email is not a valid email address",
            "unknown field \"colour\"",
            "rate_limit_per_second must be an integer between 1 and 100000",
            "enabled must be a boolean",
        ] {
            assert_has(&r, want);
        }
        assert_eq!(r.len(), 11, "{r:#?}");
        assert!(
            !r.iter().any(|x| x.contains("line1")),
            "header value echoed"
        );
    }

    #[test]
    fn seed_000_oauth_configuration_and_headers() {
        let body = json!({
            "url": "https://yourdomain.com/webhook-endpoint",
            "event_types": ["IN_PROGRESS"],
            "description": "Provider Created Webhook",
            "headers": {"X-Api-Key": "abcdef123456"},
            "oauth_configuration": {
                "client_id": "my-client-id",
                "client_secret": "my-client-secret",
                "token_url": "https://auth.example.com/oauth/token",
                "scope": "resource.read",
                "headers": {"X-Domain-Name": "example.com"}
            }
        });
        let spec = webhook_create(&body, &ctx(true)).unwrap_or_else(|r| panic!("{r:?}"));
        assert_eq!(spec.url, "https://yourdomain.com/webhook-endpoint");
        assert_eq!(spec.event_types, ["IN_PROGRESS"]);
        assert_eq!(
            spec.description.as_deref(),
            Some("Provider Created Webhook")
        );
        assert_eq!(spec.headers["X-Api-Key"].expose(), "abcdef123456");
        let oauth = spec.oauth.unwrap_or_else(|| panic!("oauth missing"));
        assert_eq!(oauth.token_url, "https://auth.example.com/oauth/token");
        assert_eq!(oauth.client_id, "my-client-id");
        assert_eq!(oauth.client_secret.expose(), "my-client-secret");
        assert_eq!(oauth.scope.as_deref(), Some("resource.read"));
        assert_eq!(oauth.headers["X-Domain-Name"].expose(), "example.com");
        assert!(spec.secrets.is_empty() && spec.enabled);

        // scope and headers are nullable in the seed.
        let body = json!({
            "url": "https://a.example/h", "event_types": ["IN_PROGRESS"],
            "oauth_configuration": {"client_id": "c", "client_secret": "s",
                "token_url": "https://auth.example.com/t", "scope": null, "headers": null}
        });
        let spec = webhook_create(&body, &ctx(true)).unwrap_or_else(|r| panic!("{r:?}"));
        let oauth = spec.oauth.unwrap_or_else(|| panic!("oauth missing"));
        assert_eq!((oauth.scope, oauth.headers.len()), (None, 0));
    }

    #[test]
    fn seed_002_subscriptions_and_notification_email() {
        let body = json!({
            "url": "https://clinic.example/hooks",
            "subscriptions": ["PATIENT_CREATED", "APPOINTMENT_CANCELLED", "PATIENT_CREATED"],
            "notificationEmail": "alerts@clinic.example",
        });
        let spec = webhook_create(&body, &ctx(true)).unwrap_or_else(|r| panic!("{r:?}"));
        assert_eq!(
            spec.event_types,
            ["PATIENT_CREATED", "APPOINTMENT_CANCELLED"]
        );
        assert_eq!(
            spec.notification_email.as_deref(),
            Some("alerts@clinic.example")
        );

        let body = json!({"url": "https://clinic.example/hooks",
            "subscriptions": ["PATIENT_CREATED"], "notificationEmail": null});
        let spec = webhook_create(&body, &ctx(true)).unwrap_or_else(|r| panic!("{r:?}"));
        assert_eq!(spec.notification_email, None);

        let body = json!({"url": "https://x.example/h", "subscriptions": []});
        let r = reasons(webhook_create(&body, &ctx(true)));
        assert_eq!(r, ["subscriptions must contain at least 1 element"]);
    }

    #[test]
    fn seed_003_events_and_https_only() {
        let body = json!({
            "url": "https://example.com/webhooks",
            "events": ["validation_request.approved", "donation.hosted.payment_received"],
        });
        let spec = webhook_create(&body, &ctx(true)).unwrap_or_else(|r| panic!("{r:?}"));
        assert_eq!(
            spec.event_types,
            [
                "validation_request.approved",
                "donation.hosted.payment_received"
            ]
        );
        let body = json!({"url": "http://example.com/webhooks", "events": ["nope"]});
        let r = reasons(webhook_create(&body, &ctx(true)));
        assert_eq!(
            r,
            [
                "url must be https",
                "event type \"nope\" is not in the catalogue"
            ]
        );
        // The example config relaxes https for local receivers.
        let body = json!({"url": "http://localhost:9000/h", "events": ["shift.created"]});
        assert!(webhook_create(&body, &ctx(false)).is_ok());
    }

    #[test]
    fn seed_004_all_facilities_and_two_secrets() {
        let body = json!({
            "url": "https://exemple.com/webhook",
            "events": ["all"],
            "facilities": ["P-123456", "P-123457"],
            "secrets": [S1, S2],
        });
        let spec = webhook_create(&body, &ctx(true)).unwrap_or_else(|r| panic!("{r:?}"));
        assert_eq!(spec.event_types, ["*"]);
        assert_eq!(spec.channels, ["P-123456", "P-123457"]);
        let secrets: Vec<&str> = spec.secrets.iter().map(Secret::expose).collect();
        assert_eq!(secrets, [S1, S2]);

        let body = json!({"url": "https://e.com/w", "events": "all",
            "facilities": [1], "secrets": "x"});
        let r = reasons(webhook_create(&body, &ctx(true)));
        assert_eq!(
            r,
            [
                "events must be an array of strings",
                "facilities[0] must be a string",
                "secrets must be an array of strings"
            ]
        );
    }

    #[test]
    fn urls() {
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        let cases: &[(&str, Option<&str>)] = &[
            ("https://example.com/hook?x=1", None),
            ("HTTPS://Example.COM:8443/", None),
            ("http://example.com", Some("url must be https")),
            ("ftp://example.com/", Some("url must use http or https")),
            ("example.com/hook", Some("url is not a valid URL")),
            ("/relative", Some("url must be an absolute http(s) URL")),
            (
                "https://user:pass@example.com/",
                Some("url must not contain user credentials"),
            ),
            (
                "https://example.com/#frag",
                Some("url must not contain a fragment"),
            ),
            ("https://exa mple.com/", Some("url is not a valid URL")),
            (
                "https://127.0.0.1/h",
                Some("url host 127.0.0.1 is not allowed: loopback address"),
            ),
            (
                "https://[::1]:8080/h",
                Some("url host ::1 is not allowed: loopback address"),
            ),
            (
                "https://example.com:0/",
                Some("url port must be between 1 and 65535"),
            ),
            (
                "https://example.com:99999/",
                Some("url port must be between 1 and 65535"),
            ),
            (
                "https://[::1]:0/",
                Some("url port must be between 1 and 65535"),
            ),
            ("https://example.com:/h", None),
            ("https://héllo.example/", Some("url is not a valid URL")),
            (&long, Some("url must be at most 2048 characters")),
        ];
        for (url, want) in cases {
            let body = json!({"url": url, "event_types": ["*"]});
            match (webhook_create(&body, &ctx(true)), want) {
                (Ok(_), None) => {}
                (Err(r), Some(want)) => assert_has(&r, want),
                (got, _) => panic!("{url}: got {got:?}, want {want:?}"),
            }
        }
        let r = reasons(webhook_create(
            &json!({"url": 5, "event_types": ["*"]}),
            &ctx(true),
        ));
        assert_eq!(r, ["url must be a string"]);
        let r = reasons(webhook_create(&json!({}), &ctx(true)));
        assert_eq!(r, ["url is required", "event_types is required"]);
        let r = reasons(webhook_create(&json!([1]), &ctx(true)));
        assert_eq!(r, ["request body must be a JSON object"]);
    }

    #[test]
    fn event_type_filters() {
        let ok: &[(&[&str], &[&str])] = &[
            (&["*"], &["*"]),
            (&["all", "*", "IN_PROGRESS"], &["*", "IN_PROGRESS"]),
            (
                &["shift.*", "PROVIDER_*", "shift.*"],
                &["shift.*", "PROVIDER_*"],
            ),
            (&["hookbox.webhook.disabled"], &["hookbox.webhook.disabled"]),
        ];
        for (input, want) in ok {
            let spec = webhook_create(
                &json!({"url": "https://e.com", "event_types": input}),
                &ctx(true),
            )
            .unwrap_or_else(|r| panic!("{input:?}: {r:?}"));
            assert_eq!(&spec.event_types, want);
        }
        let bad: &[(&str, &str)] = &[
            (".*", "event type filter \".*\" needs a non-empty prefix"),
            ("_*", "event type filter \"_*\" needs a non-empty prefix"),
            (
                "shift*",
                "event type filter \"shift*\" is not valid: \"*\" may only follow \".\" or \"_\" at the end",
            ),
            (
                "a b.*",
                "event type filter \"a b.*\" may only contain letters, digits, \"_\", \".\", \":\" and \"-\" before the \"*\"",
            ),
            ("sh*ift", "event type \"sh*ift\" is not in the catalogue"),
            ("", "event type \"\" is not in the catalogue"),
        ];
        for (input, want) in bad {
            let r = reasons(webhook_create(
                &json!({"url": "https://e.com", "event_types": [input]}),
                &ctx(true),
            ));
            assert_eq!(r, [*want], "{input}");
        }
        let many: Vec<String> = (0..=MAX_EVENT_TYPES).map(|i| format!("t{i}.*")).collect();
        let r = reasons(webhook_create(
            &json!({"url": "https://e.com", "event_types": many}),
            &ctx(true),
        ));
        assert_eq!(r, ["event_types must contain no more than 100 elements"]);
        let r = reasons(webhook_create(
            &json!({"url": "https://e.com", "event_types": ["*"], "events": ["*"]}),
            &ctx(true),
        ));
        assert_eq!(
            r,
            ["\"event_types\" and \"events\" are the same field; send only one"]
        );
    }

    #[test]
    fn headers() {
        let big = "v".repeat(MAX_HEADER_VALUE_BYTES + 1);
        let cases: &[(Value, Option<&str>)] = &[
            (
                json!({"X-Api-Key": "k", "X-Tab": "a\tb", "x-utf8": "héllo"}),
                None,
            ),
            (
                json!({"User-Agent": "me"}),
                Some("header \"User-Agent\" is reserved"),
            ),
            (
                json!({"Webhook-Signature": "x"}),
                Some("header \"Webhook-Signature\" is reserved"),
            ),
            (
                json!({"Content-Type": "text/plain"}),
                Some("header \"Content-Type\" is reserved"),
            ),
            (
                json!({"Transfer-Encoding": "chunked"}),
                Some("header \"Transfer-Encoding\" is reserved"),
            ),
            (
                json!({"X-A": "a\u{0}b"}),
                Some("header \"X-A\" value must not contain CR, LF or NUL"),
            ),
            (
                json!({"X-A": "a\u{7}b"}),
                Some("header \"X-A\" value must not contain control characters"),
            ),
            (
                json!({"X-A": big}),
                Some("header \"X-A\" value must be at most 4096 bytes"),
            ),
            (json!({"X-A": 1}), Some("headers[\"X-A\"] must be a string")),
            (
                json!({"X-A": "1", "x-a": "2"}),
                Some("header \"x-a\" is given more than once (names are case-insensitive)"),
            ),
            (
                json!({"": "1"}),
                Some("header name \"\" is not a valid token"),
            ),
            (
                json!({"X-A": "****"}),
                Some("header \"X-A\" value is the mask \"****\"; send the real value"),
            ),
            (
                json!("X-A: 1"),
                Some("headers must be an object of strings"),
            ),
            // Without oauth, Authorization is the client's own business.
            (json!({"Authorization": "Bearer abc"}), None),
        ];
        for (headers, want) in cases {
            let body = json!({"url": "https://e.com", "event_types": ["*"], "headers": headers});
            match (webhook_create(&body, &ctx(true)), want) {
                (Ok(_), None) => {}
                (Err(r), Some(want)) => assert_eq!(r, [*want]),
                (got, _) => panic!("{headers}: got {got:?}, want {want:?}"),
            }
        }
        let many: Map<String, Value> = (0..=MAX_HEADERS)
            .map(|i| (format!("X-{i}"), json!("v")))
            .collect();
        let r = reasons(webhook_create(
            &json!({"url": "https://e.com", "event_types": ["*"], "headers": many}),
            &ctx(true),
        ));
        assert_eq!(r, ["headers must contain no more than 32 entries"]);
    }

    #[test]
    fn oauth_rules() {
        let base = |oauth: Value, headers: Value| json!({"url": "https://e.com", "event_types": ["*"], "oauth": oauth, "headers": headers});
        let good = json!({"token_url": "https://auth.e.com/t", "client_id": "c", "client_secret": "s",
            "headers": {"Authorization": "Basic abc"}});
        assert!(webhook_create(&base(good.clone(), json!({})), &ctx(true)).is_ok());
        let r = reasons(webhook_create(
            &base(good, json!({"authorization": "x"})),
            &ctx(true),
        ));
        assert_eq!(
            r,
            ["header \"authorization\" is reserved when oauth is set"]
        );

        let bad = json!({"token_url": "http://127.0.0.1/t", "client_id": "", "scope": 3,
            "headers": {"Host": "x"}, "grant": "password"});
        let r = reasons(webhook_create(&base(bad, Value::Null), &ctx(true)));
        assert_eq!(
            r,
            [
                "oauth.token_url must be https",
                "oauth.token_url host 127.0.0.1 is not allowed: loopback address",
                "oauth.client_id must not be empty",
                "oauth.client_secret is required",
                "oauth.scope must be a string",
                "oauth header \"Host\" is reserved",
                "unknown field \"oauth.grant\"",
            ]
        );
        let r = reasons(webhook_create(&base(json!("x"), Value::Null), &ctx(true)));
        assert_eq!(r, ["oauth must be a JSON object"]);
    }

    #[test]
    fn secrets_and_emails() {
        let short = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode([7u8; 23])
        );
        let long = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode([7u8; 65])
        );
        let max = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode([7u8; 64])
        );
        let cases: &[(Value, Option<&str>)] = &[
            (json!([]), None),
            (Value::Null, None),
            (json!([max]), None),
            (
                json!(["sDV1aKqitCLClI12m7UPFbAAvZfZquJw"]),
                Some("secrets[0] must start with \"whsec_\""),
            ),
            (
                json!([short]),
                Some("secrets[0] must decode to 24 to 64 bytes, not 23"),
            ),
            (
                json!([long]),
                Some("secrets[0] must decode to 24 to 64 bytes, not 65"),
            ),
            (
                json!([S1, S1]),
                Some("secrets must not contain the same secret twice"),
            ),
            (json!([7]), Some("secrets[0] must be a string")),
        ];
        for (secrets, want) in cases {
            let body = json!({"url": "https://e.com", "event_types": ["*"], "secrets": secrets});
            match (webhook_create(&body, &ctx(true)), want) {
                (Ok(_), None) => {}
                (Err(r), Some(want)) => assert_eq!(r, [*want]),
                (got, _) => panic!("{secrets}: got {got:?}, want {want:?}"),
            }
        }
        let long_local = format!("{}@example.com", "a".repeat(250));
        for (email, ok) in [
            ("ops@example.com", true),
            ("first.last+tag@sub.example.co", true),
            ("ops@localhost", false),
            ("@example.com", false),
            ("a@@example.com", false),
            ("a b@example.com", false),
            ("a@example..com", false),
            ("a@example.com.", false),
            (long_local.as_str(), false),
        ] {
            let body =
                json!({"url": "https://e.com", "event_types": ["*"], "notification_email": email});
            assert_eq!(webhook_create(&body, &ctx(true)).is_ok(), ok, "{email}");
        }
    }

    #[test]
    fn other_create_fields_and_limits() {
        let body = json!({"url": "https://e.com", "event_types": ["*"], "description": null,
            "channels": null, "metadata": {"team": "billing"}, "rate_limit_per_second": 100000,
            "enabled": false});
        let spec = webhook_create(&body, &ctx(true)).unwrap_or_else(|r| panic!("{r:?}"));
        assert_eq!(spec.metadata["team"], "billing");
        assert_eq!(spec.rate_limit_per_second, Some(100_000));
        assert!(!spec.enabled && spec.channels.is_empty() && spec.description.is_none());

        let meta: Map<String, Value> = (0..=MAX_METADATA)
            .map(|i| (format!("k{i}"), json!("v")))
            .collect();
        let channels: Vec<String> = (0..=MAX_CHANNELS).map(|i| format!("c{i}")).collect();
        let body = json!({"url": "https://e.com", "event_types": ["*"],
            "description": "d".repeat(MAX_DESCRIPTION_LEN + 1), "channels": channels,
            "metadata": meta, "rate_limit_per_second": 1.5});
        let r = reasons(webhook_create(&body, &ctx(true)));
        assert_eq!(
            r,
            [
                "channels must contain no more than 100 elements",
                "description must be at most 1024 characters",
                "metadata must contain no more than 50 entries",
                "rate_limit_per_second must be an integer between 1 and 100000",
            ]
        );
        let body = json!({"url": "https://e.com", "event_types": ["*"], "channels": ["", "x".repeat(129)],
            "metadata": {"k": 1}});
        let r = reasons(webhook_create(&body, &ctx(true)));
        assert_eq!(
            r,
            [
                "channels[0] must not be empty",
                "channels[1] must be at most 128 characters",
                "metadata[\"k\"] must be a string",
            ]
        );
    }

    #[test]
    fn patch_null_clears_absent_keeps_secrets_refused() {
        let current = stored();
        let body = json!({"description": null, "channels": null, "headers": null, "metadata": null,
            "notification_email": null, "rate_limit_per_second": null, "oauth": null});
        let patch = webhook_patch(&body, &current, &ctx(true)).unwrap_or_else(|r| panic!("{r:?}"));
        let mut w = current.clone();
        patch.apply(&mut w, NOW);
        assert_eq!(w.description, None);
        assert!(w.channels.is_empty() && w.headers.is_empty() && w.metadata.is_empty());
        assert_eq!(
            (w.notification_email, w.rate_limit_per_second),
            (None, None)
        );
        assert_eq!(
            (w.url, w.event_types),
            (current.url.clone(), current.event_types.clone())
        );
        assert_eq!(w.updated_at, NOW);

        let patch = webhook_patch(
            &json!({"events": ["shift.*"], "description": "new"}),
            &current,
            &ctx(true),
        )
        .unwrap_or_else(|r| panic!("{r:?}"));
        let mut w = current.clone();
        patch.apply(&mut w, NOW);
        assert_eq!(w.event_types, ["shift.*"]);
        assert_eq!(w.description.as_deref(), Some("new"));
        assert_eq!(
            (w.channels, w.headers),
            (current.channels.clone(), current.headers.clone())
        );

        let r = reasons(webhook_patch(
            &json!({"url": null, "event_types": null, "enabled": null, "secrets": [S1]}),
            &current,
            &ctx(true),
        ));
        assert_eq!(
            r,
            [
                "url must not be null",
                "event_types must not be null",
                "secrets cannot be changed here; use POST /v1/webhooks/{id}/secrets/rotate",
                "enabled must be a boolean",
            ]
        );
        let r = reasons(webhook_patch(
            &json!({"url": "http://e.com", "colour": 1}),
            &current,
            &ctx(true),
        ));
        assert_eq!(r, ["url must be https", "unknown field \"colour\""]);
    }

    #[test]
    fn patch_authorization_and_masks_use_the_state_after_the_patch() {
        let mut current = stored();
        current
            .headers
            .insert("Authorization".to_owned(), Secret::new("Bearer x"));
        let oauth =
            json!({"token_url": "https://auth.e.com/t", "client_id": "c", "client_secret": "s"});
        // Setting oauth while the stored headers carry Authorization is refused...
        let r = reasons(webhook_patch(
            &json!({"oauth": oauth}),
            &current,
            &ctx(true),
        ));
        assert_eq!(
            r,
            ["header \"Authorization\" is reserved when oauth is set"]
        );
        // ...unless the same patch replaces the headers.
        let body = json!({"oauth": oauth, "headers": {"X-Api-Key": "****"}});
        let patch = webhook_patch(&body, &current, &ctx(true)).unwrap_or_else(|r| panic!("{r:?}"));
        let mut w = current.clone();
        patch.apply(&mut w, NOW);
        // The mask kept the stored value; the dropped header is gone.
        assert_eq!(w.headers.len(), 1);
        assert_eq!(w.headers["X-Api-Key"].expose(), "stored-value");

        // With oauth stored, adding Authorization is refused; a masked client secret keeps the stored one.
        let mut with_oauth = stored();
        with_oauth.oauth = Some(OAuthConfig {
            token_url: "https://auth.e.com/t".to_owned(),
            client_id: "c".to_owned(),
            client_secret: Secret::new("stored-secret"),
            scope: None,
            headers: BTreeMap::new(),
        });
        let r = reasons(webhook_patch(
            &json!({"headers": {"authorization": "x"}}),
            &with_oauth,
            &ctx(true),
        ));
        assert_eq!(
            r,
            ["header \"authorization\" is reserved when oauth is set"]
        );
        let body = json!({"oauth": {"token_url": "https://auth.e.com/t2", "client_id": "c",
            "client_secret": "****", "scope": "read"}});
        let patch =
            webhook_patch(&body, &with_oauth, &ctx(true)).unwrap_or_else(|r| panic!("{r:?}"));
        let mut w = with_oauth.clone();
        patch.apply(&mut w, NOW);
        let o = w.oauth.unwrap_or_else(|| panic!("oauth dropped"));
        assert_eq!(
            (o.token_url.as_str(), o.client_secret.expose()),
            ("https://auth.e.com/t2", "stored-secret")
        );
        // Clearing oauth frees Authorization again.
        assert!(
            webhook_patch(
                &json!({"oauth": null, "headers": {"Authorization": "y"}}),
                &with_oauth,
                &ctx(true)
            )
            .is_ok()
        );
    }

    #[test]
    fn enabling_and_disabling() {
        let mut w = stored();
        WebhookPatch {
            enabled: Some(false),
            ..Default::default()
        }
        .apply(&mut w, NOW);
        assert!(!w.enabled);
        assert_eq!(
            (w.disabled_reason.as_deref(), w.disabled_at),
            (Some("disabled by API"), Some(NOW))
        );

        w.disabled_reason = Some("failing for 5 days".to_owned());
        w.failing_since = Some(NOW - 10);
        WebhookPatch {
            enabled: Some(true),
            ..Default::default()
        }
        .apply(&mut w, NOW + 1);
        assert!(w.enabled);
        assert_eq!(
            (w.disabled_reason, w.disabled_at, w.failing_since),
            (None, None, None)
        );
        assert_eq!(w.updated_at, NOW + 1);
    }

    #[test]
    fn small_bodies() {
        let spec = rotate(&json!({})).unwrap_or_else(|r| panic!("{r:?}"));
        assert_eq!(
            (spec.secret, spec.grace_seconds),
            (None, DEFAULT_GRACE_SECONDS)
        );
        let spec =
            rotate(&json!({"secret": S2, "grace_seconds": 0})).unwrap_or_else(|r| panic!("{r:?}"));
        assert_eq!(
            spec.secret.map(|s| s.expose().to_owned()).as_deref(),
            Some(S2)
        );
        let r = reasons(rotate(
            &json!({"secret": "nope", "grace_seconds": 604801, "x": 1}),
        ));
        assert_eq!(
            r,
            [
                "secret must start with \"whsec_\"",
                "grace_seconds must be an integer between 0 and 604800",
                "unknown field \"x\"",
            ]
        );

        let spec = test_event(
            &json!({"message": "hi", "eventType": "IN_PROGRESS"}),
            &ctx(true),
        )
        .unwrap_or_else(|r| panic!("{r:?}"));
        assert_eq!(
            (spec.event_type.as_str(), spec.message.as_str()),
            ("IN_PROGRESS", "hi")
        );
        assert!(test_event(&json!({"event_type": "IN_PROGRESS"}), &ctx(true)).is_ok());
        let r = reasons(test_event(
            &json!({"event_type": "NOPE", "message": 1}),
            &ctx(true),
        ));
        assert_eq!(
            r,
            [
                "event type \"NOPE\" is not in the catalogue",
                "message must be a string"
            ]
        );

        assert_eq!(
            recover_at(&json!({"since": "2025-11-22T05:00:00Z"}), NOW),
            Ok(1_763_787_600_000)
        );
        let r = reasons(recover_at(&json!({"since": "2030-01-01T00:00:00Z"}), NOW));
        assert_eq!(r, ["since must not be in the future"]);
        let r = reasons(recover_at(&json!({"since": "yesterday"}), NOW));
        assert_eq!(
            r,
            ["since must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z"]
        );
        assert_eq!(reasons(recover_at(&json!({}), NOW)), ["since is required"]);
    }

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
        let ok =
            event_batch(br#"{"events":[{"type":"a","data":{"x": 1}},{"type":"b","data":[]}]}"#)
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

    #[test]
    fn quote_cuts_on_char_boundaries() {
        let s = "é".repeat(100);
        let q = quote(&s);
        assert!(q.ends_with("\"...") && q.chars().count() == 64 + 5, "{q}");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_input_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256), s in ".{0,40}") {
            let _ = event_create(&bytes, Some(&s));
            let _ = event_batch(&bytes);
            let current = stored();
            for body in [
                json!({"url": s, "event_types": [s], "headers": {&s: &s}, "secrets": [&s],
                    "notification_email": s, "oauth": {"token_url": s, "client_id": s, "client_secret": s}}),
                json!({&s: s, "channels": [s], "metadata": {&s: s}}),
            ] {
                let _ = webhook_create(&body, &ctx(true));
                let _ = webhook_patch(&body, &current, &ctx(false));
                let _ = rotate(&body);
                let _ = recover_at(&body, NOW);
                let _ = tenant_create(&body);
                let _ = api_key_create(&body);
                let _ = event_type_create(&body);
            }
        }
    }
}
