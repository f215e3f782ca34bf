//! Request wire types: the JSON bodies the API takes. Each body's OpenAPI schema is
//! built from the field table the validator reads (`validate/table.rs`): one entry
//! per field (spellings, kind with its constraint, whether required) gives both the
//! check and the schema, so the document and the checks cannot disagree. Never
//! does I/O.
//!
//! Seed aliases are separate properties with the same schema; `openapi.rs` adds the
//! rule "send only one spelling" (and "one of the spellings is required") from the
//! alias table, so a body the document calls valid is never refused for its shape.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{OneOfBuilder, Schema};
use utoipa::{PartialSchema, ToSchema};

use super::validate::table::{
    API_KEY, BATCH, Dflt, EVENT, EVENT_TYPE, F, Kind, OAUTH, PORTAL_SESSION, RECOVER, ROTATE, Req,
    TENANT, TEST_EVENT, Table, WEBHOOK, WEBHOOK_HEADERS,
};
use super::validate::{
    MAX_BATCH, MAX_CHANNEL_LEN, MAX_CHANNELS, MAX_DESCRIPTION_LEN, MAX_EMAIL_LEN,
    MAX_EVENT_TYPE_LEN, MAX_EVENT_TYPES, MAX_HEADER_VALUE_BYTES, MAX_HEADERS,
    MAX_IDEMPOTENCY_KEY_LEN, MAX_METADATA, MAX_NAME_LEN, MAX_SECRETS, MAX_TEXT_LEN, MAX_URL_LEN,
};

/// What `validate::fields::check_url` accepts in shape (the blocked networks and
/// `require_https` aside): scheme in any case; a host name of letters, digits, `-`
/// and `_` between dots with at most one trailing dot, or a bracketed IPv6
/// address; a port of 1..=65535 (leading zeros allowed) or empty; RFC 3986 path
/// and query characters with `%XX` escapes. A unit test holds the two together.
pub(crate) const URL_PATTERN: &str = concat!(
    "^[Hh][Tt][Tt][Pp][Ss]?://",
    "([A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*\\.?|\\[[0-9A-Fa-f:.]+\\])",
    "(:(0*(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?)?",
    "(/([A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})*)?",
    "(\\?([A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?$"
);

/// `whsec_` + standard base64 (padded) of 24..=64 bytes: 32..=88 characters.
const SECRET_PATTERN: &str = concat!(
    "^whsec_(?:(?:[A-Za-z0-9+/]{4}){8,20}(?:[A-Za-z0-9+/][AQgw]==|",
    "[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?|(?:[A-Za-z0-9+/]{4}){21}",
    "(?:[A-Za-z0-9+/][AQgw]==)?)$"
);

/// No control characters (CR, LF, NUL...), at least one visible character.
const NO_CONTROL_TEXT: &str = concat!(
    "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f]",
    "[^\\u0000-\\u001f\\u007f-\\u009f]*$"
);

const CATALOGUED: &str = "A name in the tenant's catalogue (an unknown one is a 400)";

/// A string of `min..=max` characters with at least one that is not whitespace.
fn text(min: usize, max: usize) -> Value {
    let mut s = json!({"type": "string", "minLength": min, "maxLength": max});
    if min > 0 {
        s["pattern"] = r"\S".into();
    }
    s
}

/// Adds `null` to a schema's type.
fn nullable(mut s: Value) -> Value {
    if let Some(t) = s["type"].as_str() {
        s["type"] = json!([t, "null"]);
    }
    s
}

fn array(items: Value, min: usize, max: usize) -> Value {
    json!({"type": "array", "items": items, "minItems": min, "maxItems": max})
}

fn with(mut s: Value, key: &str, v: impl Into<Value>) -> Value {
    s[key] = v.into();
    s
}

/// The utoipa form of a schema built here as JSON (a unit test checks that the
/// conversion keeps every schema exactly). utoipa cannot read a schema without
/// `type` back, so a typeless property (only [`Kind::Any`]) is put back as its
/// utoipa value.
fn schema(mut v: Value) -> RefOr<Schema> {
    let typeless: Vec<String> = v
        .get_mut("properties")
        .and_then(Value::as_object_mut)
        .map(|p| {
            let any: Vec<String> = p
                .iter()
                .filter(|(_, s)| s.get("type").is_none())
                .map(|(k, _)| k.clone())
                .collect();
            p.retain(|k, _| !any.contains(k));
            any
        })
        .unwrap_or_default();
    let mut s = serde_json::from_value(v).unwrap_or_else(|_| RefOr::T(Schema::default()));
    if let RefOr::T(Schema::Object(o)) = &mut s {
        for k in typeless {
            o.properties.insert(k, super::dto::any_json().into());
        }
    }
    s
}

impl Kind {
    /// The JSON Schema of a value of this kind (not nullable).
    fn schema(self) -> Value {
        match self {
            Kind::Text(min, max) => text(min, max),
            Kind::ClientSecret => text(1, MAX_TEXT_LEN),
            Kind::Name => with(text(1, MAX_NAME_LEN), "pattern", NO_CONTROL_TEXT),
            Kind::TenantId => json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}),
            Kind::Url => json!({"type": "string", "maxLength": MAX_URL_LEN, "pattern": URL_PATTERN,
                "description": "http(s) URL with a host, no user credentials or fragment; https \
                    when the server requires it; hosts in blocked networks are refused (400)"}),
            Kind::EventTypes => with(
                array(
                    with(
                        text(1, MAX_EVENT_TYPE_LEN + 2),
                        "pattern",
                        r"^[A-Za-z0-9_.:\-]+([._]\*)?$|^\*$",
                    ),
                    1,
                    MAX_EVENT_TYPES,
                ),
                "description",
                "Catalogued names (an unknown name is a 400), `*` or `all` for every type, \
                 `prefix.*` or `prefix_*` for a prefix",
            ),
            Kind::Channels { ingest: false } => array(text(1, MAX_CHANNEL_LEN), 0, MAX_CHANNELS),
            Kind::Channels { ingest: true } => array(
                json!({"type": "string", "minLength": 1, "maxLength": MAX_CHANNEL_LEN}),
                0,
                MAX_CHANNELS,
            ),
            // Header names are RFC 7230 tokens; some are reserved: a 400 names them.
            Kind::Headers(_) => json!({"type": "object", "maxProperties": MAX_HEADERS,
                "additionalProperties": {"type": "string", "maxLength": MAX_HEADER_VALUE_BYTES,
                    "pattern": "^[^\\x00-\\x08\\x0a-\\x1f\\x7f]*$"},
                "propertyNames": {"type": "string", "pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$"},
                "description": "Sent with every delivery. `\"****\"` in a PATCH keeps the stored \
                    value; reserved names (framing headers, `webhook-*`, `user-agent`, \
                    `authorization` with oauth) are a 400"}),
            Kind::Metadata => json!({"type": "object", "maxProperties": MAX_METADATA,
                "additionalProperties": nullable(text(0, MAX_TEXT_LEN))}),
            Kind::Secret => json!({"type": "string", "pattern": SECRET_PATTERN,
                "description": "`whsec_` + standard base64 of 24 to 64 bytes"}),
            Kind::Secrets => with(
                with(
                    array(Kind::Secret.schema(), 0, MAX_SECRETS),
                    "uniqueItems",
                    true,
                ),
                "description",
                "Current first; distinct; one is generated when none is given",
            ),
            Kind::Int(min, max) => json!({"type": "integer", "minimum": min, "maximum": max}),
            Kind::Seconds(min, max) => json!({"type": "integer", "minimum": min, "maximum": max}),
            Kind::Ordering => json!({"type": "string", "enum": ["none", "fifo"]}),
            Kind::Bool { .. } => json!({"type": "boolean"}),
            Kind::Email => json!({"type": "string", "maxLength": MAX_EMAIL_LEN,
                "pattern": r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$"}),
            Kind::OAuth => body_schema(&OAUTH, true),
            Kind::Catalogued => with(text(1, MAX_EVENT_TYPE_LEN), "description", CATALOGUED),
            Kind::IngestType => json!({"type": "string", "minLength": 1,
                "maxLength": MAX_EVENT_TYPE_LEN, "description": CATALOGUED}),
            Kind::NewEventType => json!({"type": "string",
                "pattern": r"^(?!all$)(?!hookbox\.)[A-Za-z0-9_.:\-]{1,128}$",
                "description": "Letters, digits, `_`, `.`, `:` or `-`; not `all`, not starting \
                    with `hookbox.`"}),
            Kind::JsonSchema => {
                json!({"type": "object", "description": "A JSON Schema for the events' `data`"})
            }
            Kind::Since => json!({"type": "string", "format": "date-time"}),
            Kind::Filter => to_json(super::dto::filter_or_null()),
            Kind::Scopes => json!({"type": "array", "minItems": 1,
                "items": {"$ref": "#/components/schemas/ScopeName"}}),
            Kind::Any => to_json(super::dto::any_json()),
            Kind::IdempotencyKey => json!({"type": "string", "minLength": 1,
                "maxLength": MAX_IDEMPOTENCY_KEY_LEN,
                "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]+$",
                "description": "Same as the Idempotency-Key header; no control characters"}),
            Kind::Batch => batch_events(),
        }
    }
}

fn to_json(s: impl serde::Serialize) -> Value {
    serde_json::to_value(s).unwrap_or_default()
}

/// The schema of one field, as every one of its spellings is documented.
fn field_schema(d: &F) -> Value {
    let mut s = d.kind.schema();
    if matches!(d.req, Req::Null | Req::CreateOnly) {
        s = nullable(s);
    }
    if let Some(doc) = d.doc {
        s["description"] = doc.into();
    }
    match d.default {
        Some(Dflt::Int(n)) => s["default"] = n.into(),
        Some(Dflt::Bool(b)) => s["default"] = b.into(),
        None => {}
    }
    s
}

/// A body's schema from its table: every spelling a property, no other property;
/// a PATCH (`creating == false`) leaves out create-only fields and requires nothing.
/// Aliased required fields get their rule in `openapi.rs`.
fn body_schema(t: &Table, creating: bool) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    for d in t.fields {
        if d.req == Req::CreateOnly && !creating {
            continue;
        }
        let need = d.req == Req::Need || (d.req == Req::NeedOnCreate && creating);
        if need && d.names.len() == 1 {
            required.push(d.names[0]);
        }
        let s = field_schema(d);
        for n in d.names {
            props.insert((*n).to_owned(), s.clone());
        }
    }
    let mut s = json!({"type": "object", "additionalProperties": false, "properties": props});
    if !t.doc.is_empty() {
        s["description"] = t.doc.into();
    }
    if !required.is_empty() {
        s["required"] = required.into();
    }
    s
}

/// Declares a body type whose schema is its table's.
macro_rules! bodies {
    ($($(#[$doc:meta])* $name:ident = $table:expr, $creating:expr, $desc:expr;)*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                let mut s = body_schema(&$table, $creating);
                if !$desc.is_empty() {
                    s["description"] = $desc.into();
                }
                schema(s)
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }

            fn schemas(out: &mut Vec<(String, RefOr<Schema>)>) {
                if $table.fields.iter().any(|d| matches!(d.kind, Kind::Scopes)) {
                    out.push(("ScopeName".to_owned(), ScopeName::schema()));
                }
            }
        }
    )*};
}

bodies! {
    /// `POST /v1/webhooks`. One spelling of `event_types` is required.
    WebhookCreate = WEBHOOK, true,
        "`POST /v1/webhooks`. One spelling of `event_types` is required.";
    /// `PATCH /v1/webhooks/{id}`: absent fields are kept; null clears an optional
    /// field. Secrets change only through rotation.
    WebhookPatch = WEBHOOK, false,
        "`PATCH /v1/webhooks/{id}`: absent fields are kept; null clears an optional\n\
         field. Secrets change only through rotation.";
    /// `POST /v1/webhooks/{id}/secrets/rotate`; `{}` (or no body) generates a secret.
    Rotate = ROTATE, true, "";
    /// `POST /v1/webhooks/{id}/test`. One spelling of `event_type` is required.
    TestEvent = TEST_EVENT, true, "";
    /// `POST /v1/webhooks/{id}/recover`.
    Recover = RECOVER, true, "";
    /// `POST /v1/tenants`.
    TenantCreate = TENANT, true, "";
    /// `POST /v1/api-keys`.
    ApiKeyCreate = API_KEY, true, "";
    /// `POST /v1/event-types`.
    EventTypeCreate = EVENT_TYPE, true, "";
    /// `POST /v1/events` (and each item of a batch). One spelling of `type` is required.
    EventCreate = EVENT, true, "";
    /// `{"events": [...]}`.
    BatchWrapper = BATCH, true, "";
    /// `POST /v1/portal/sessions`; `{}` (or no body) asks for the default session.
    PortalSessionCreate = PORTAL_SESSION, true, "";
}

/// An API key scope.
#[derive(Deserialize, ToSchema)]
pub enum ScopeName {
    #[serde(rename = "webhooks:read")]
    WebhooksRead,
    #[serde(rename = "webhooks:write")]
    WebhooksWrite,
    #[serde(rename = "events:write")]
    EventsWrite,
    #[serde(rename = "events:read")]
    EventsRead,
}

/// The OAuth object as the seed profiles declare it (its schema is [`oauth`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthRequest {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub scope: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
}

fn batch_events() -> Value {
    with(
        array(
            json!({"$ref": "#/components/schemas/EventCreate"}),
            1,
            MAX_BATCH,
        ),
        "description",
        "Idempotency keys must be distinct within a batch",
    )
}

/// `POST /v1/events/batch`: `{"events": [...]}` or a bare array of 1..=1000 events.
pub struct EventBatch;

impl PartialSchema for EventBatch {
    fn schema() -> RefOr<Schema> {
        let wrapped = RefOr::Ref(utoipa::openapi::Ref::from_schema_name("BatchWrapper"));
        let one_of = OneOfBuilder::new()
            .item(wrapped)
            .item(schema(batch_events()))
            .build();
        RefOr::T(Schema::OneOf(one_of))
    }
}

impl ToSchema for EventBatch {
    fn schemas(out: &mut Vec<(String, RefOr<Schema>)>) {
        out.push(("BatchWrapper".to_owned(), BatchWrapper::schema()));
    }
}

// The field schemas the seed profiles reuse (`schema_with`).

pub(crate) fn url() -> RefOr<Schema> {
    schema(Kind::Url.schema())
}

pub(crate) fn event_types() -> RefOr<Schema> {
    schema(Kind::EventTypes.schema())
}

pub(crate) fn channels() -> RefOr<Schema> {
    schema(nullable(Kind::Channels { ingest: false }.schema()))
}

pub(crate) fn headers() -> RefOr<Schema> {
    schema(nullable(Kind::Headers(&WEBHOOK_HEADERS).schema()))
}

pub(crate) fn email() -> RefOr<Schema> {
    schema(nullable(Kind::Email.schema()))
}

pub(crate) fn description() -> RefOr<Schema> {
    schema(nullable(text(0, MAX_DESCRIPTION_LEN)))
}

pub(crate) fn oauth() -> RefOr<Schema> {
    schema(nullable(Kind::OAuth.schema()))
}

pub(crate) fn client_text() -> RefOr<Schema> {
    schema(text(1, MAX_TEXT_LEN))
}

pub(crate) fn event_type_name() -> RefOr<Schema> {
    schema(Kind::Catalogued.schema())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every schema built here as JSON survives the conversion to utoipa's types
    /// unchanged (nothing dropped, nothing added).
    #[test]
    fn schemas_convert_exactly() {
        let tables = [
            &WEBHOOK,
            &OAUTH,
            &ROTATE,
            &TEST_EVENT,
            &RECOVER,
            &TENANT,
            &API_KEY,
            &EVENT_TYPE,
            &EVENT,
            &BATCH,
            &PORTAL_SESSION,
        ];
        for t in tables {
            for creating in [true, false] {
                let v = body_schema(t, creating);
                let back = to_json(schema(v.clone()));
                assert!(back == v, "{back}\n{v}");
            }
        }
        let b = batch_events();
        assert_eq!(to_json(schema(b.clone())), b);
    }
}
