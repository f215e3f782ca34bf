//! Request wire types: the JSON bodies the API takes, with their OpenAPI schemas
//! derived (`ToSchema`). Validation (`validate/`) reads the same bodies field by
//! field so that a 400 lists every reason; a unit test checks that the fields it
//! reads (aliases included, from [`crate::api::validate::ALIASES`]) are exactly the
//! properties declared here. Limits come from the validator's constants, so the
//! document and the checks cannot disagree. Never does I/O.
//!
//! Seed aliases are separate properties described as such; `openapi.rs` adds the
//! rule "send only one spelling" (and "one of the spellings is required") from the
//! alias table, so a body the document calls valid is never refused for its shape.

use std::collections::BTreeMap;

use serde::Deserialize;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AdditionalProperties, Array, ArrayBuilder, Object, ObjectBuilder, Schema, SchemaType, Type,
};
use utoipa::{PartialSchema, ToSchema};

use super::validate::{
    DEFAULT_GRACE_SECONDS, MAX_BATCH, MAX_CHANNEL_LEN, MAX_CHANNELS, MAX_DESCRIPTION_LEN,
    MAX_EVENT_TYPE_LEN, MAX_EVENT_TYPES, MAX_GRACE_SECONDS, MAX_HEADER_VALUE_BYTES, MAX_HEADERS,
    MAX_IDEMPOTENCY_KEY_LEN, MAX_METADATA, MAX_NAME_LEN, MAX_RATE_LIMIT, MAX_SECRETS, MAX_TEXT_LEN,
    MAX_URL_LEN,
};

/// A string of `min..=max` characters with at least one that is not whitespace.
pub(crate) fn text(min: usize, max: usize) -> ObjectBuilder {
    let b = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(min))
        .max_length(Some(max));
    if min > 0 { b.pattern(Some(r"\S")) } else { b }
}

pub(crate) fn nullable(mut o: Object) -> Object {
    if let SchemaType::Type(t) = o.schema_type {
        o.schema_type = SchemaType::from_iter([t, Type::Null]);
    }
    o
}

pub(crate) fn array(items: impl Into<RefOr<Schema>>, min: usize, max: usize) -> ArrayBuilder {
    ArrayBuilder::new()
        .items(items.into())
        .min_items(Some(min))
        .max_items(Some(max))
}

fn nullable_array(a: Array) -> Array {
    let mut a = a;
    a.schema_type = SchemaType::from_iter([Type::Array, Type::Null]);
    a
}

/// A map of strings with at most `max` entries.
fn string_map(max: usize, value: Object) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(Schema::Object(
            value,
        )))))
        .max_properties(Some(max))
        .build()
}

pub(crate) fn url() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(MAX_URL_LEN))
        .pattern(Some(
            "^https?://[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?(/[A-Za-z0-9._~/-]*)?(\\?[A-Za-z0-9._~=&-]*)?$",
        ))
        .description(Some(
            "http(s) URL with a host, no user credentials or fragment; https when \
             the server requires it; hosts in blocked networks are refused (400)",
        ))
        .build()
}

pub(crate) fn event_types() -> Array {
    array(
        text(1, MAX_EVENT_TYPE_LEN + 2).pattern(Some(r"^[A-Za-z0-9_.:\-]+([._]\*)?$|^\*$")),
        1,
        MAX_EVENT_TYPES,
    )
    .description(Some(
        "Catalogued names (an unknown name is a 400), `*` or `all` for every type, \
         `prefix.*` or `prefix_*` for a prefix",
    ))
    .build()
}

pub(crate) fn channels() -> Array {
    nullable_array(array(text(1, MAX_CHANNEL_LEN), 0, MAX_CHANNELS).build())
}

fn header_value() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(MAX_HEADER_VALUE_BYTES))
        .pattern(Some("^[^\\x00-\\x08\\x0a-\\x1f\\x7f]*$"))
        .build()
}

/// Header names are RFC 7230 tokens; some are reserved (framing, `webhook-*`,
/// `user-agent`, `authorization` with OAuth): a 400 names them.
pub(crate) fn headers() -> Object {
    let mut m = nullable(string_map(MAX_HEADERS, header_value()));
    m.property_names = Some(Box::new(Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$"))
            .build(),
    )));
    m.description = Some(
        "Sent with every delivery. `\"****\"` in a PATCH keeps the stored value; reserved \
         names (framing headers, `webhook-*`, `user-agent`, `authorization` with oauth) are a 400"
            .to_owned(),
    );
    m
}

pub(crate) fn optional_text() -> Object {
    nullable(text(1, MAX_TEXT_LEN).build())
}

pub(crate) fn email() -> Object {
    nullable(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$"))
            .max_length(Some(254))
            .build(),
    )
}

/// `whsec_` + standard base64 (padded) of 24..=64 bytes: 32..=88 characters.
fn signing_secret() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(concat!(
            "^whsec_(?:(?:[A-Za-z0-9+/]{4}){8,20}(?:[A-Za-z0-9+/][AQgw]==|",
            "[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?|(?:[A-Za-z0-9+/]{4}){21}",
            "(?:[A-Za-z0-9+/][AQgw]==)?)$"
        )))
        .description(Some("`whsec_` + standard base64 of 24 to 64 bytes"))
        .build()
}

fn secrets() -> Array {
    nullable_array(
        array(signing_secret(), 0, MAX_SECRETS)
            .unique_items(true)
            .description(Some(
                "Current first; distinct; one is generated when none is given",
            ))
            .build(),
    )
}

fn metadata() -> Object {
    nullable(string_map(
        MAX_METADATA,
        nullable(text(0, MAX_TEXT_LEN).build()),
    ))
}

fn rate_limit() -> Object {
    nullable(
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(MAX_RATE_LIMIT))
            .build(),
    )
}

fn ordering() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["none", "fifo"]))
        .build()
}

pub(crate) fn description() -> Object {
    nullable(text(0, MAX_DESCRIPTION_LEN).build())
}

fn bool_() -> Object {
    ObjectBuilder::new().schema_type(Type::Boolean).build()
}

pub(crate) fn oauth() -> RefOr<Schema> {
    let mut o = match OAuthRequest::schema() {
        RefOr::T(Schema::Object(o)) => o,
        other => return other,
    };
    o.schema_type = SchemaType::from_iter([Type::Object, Type::Null]);
    RefOr::T(Schema::Object(o))
}

/// OAuth2 client credentials fetched before each delivery (cached).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuthRequest {
    #[schema(schema_with = url)]
    pub token_url: String,
    #[schema(schema_with = client_text)]
    pub client_id: String,
    /// `"****"` in a PATCH keeps the stored secret.
    #[schema(schema_with = client_text)]
    pub client_secret: String,
    #[schema(schema_with = optional_text)]
    pub scope: Option<String>,
    #[schema(schema_with = headers)]
    pub headers: Option<BTreeMap<String, String>>,
}

pub(crate) fn client_text() -> Object {
    text(1, MAX_TEXT_LEN).build()
}

/// Declares the webhook body fields shared by create and patch.
macro_rules! webhook_body {
    ($(#[$doc:meta])* $name:ident, $url:ty { $($extra:tt)* }) => {
        $(#[$doc])*
        #[derive(Deserialize, ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            #[schema(schema_with = url)]
            pub url: $url,
            #[schema(schema_with = event_types)]
            pub event_types: Option<Vec<String>>,
            /// Seed alias of `event_types`; send only one spelling.
            #[schema(schema_with = event_types)]
            pub subscriptions: Option<Vec<String>>,
            /// Seed alias of `event_types`; send only one spelling.
            #[schema(schema_with = event_types)]
            pub events: Option<Vec<String>>,
            /// Events must carry one of these channels; empty or null: every channel.
            #[schema(schema_with = channels)]
            pub channels: Option<Vec<String>>,
            /// Seed alias of `channels`; send only one spelling.
            #[schema(schema_with = channels)]
            pub facilities: Option<Vec<String>>,
            #[schema(schema_with = description)]
            pub description: Option<String>,
            #[schema(schema_with = headers)]
            pub headers: Option<BTreeMap<String, String>>,
            #[schema(schema_with = oauth)]
            pub oauth: Option<OAuthRequest>,
            /// Seed alias of `oauth`; send only one spelling.
            #[schema(schema_with = oauth)]
            pub oauth_configuration: Option<OAuthRequest>,
            #[schema(schema_with = email)]
            pub notification_email: Option<String>,
            /// Seed alias of `notification_email`; send only one spelling.
            #[schema(schema_with = email)]
            #[serde(rename = "notificationEmail")]
            pub notification_email_alias: Option<String>,
            #[schema(schema_with = bool_)]
            pub enabled: Option<bool>,
            /// String values, at most 50 entries.
            #[schema(schema_with = metadata)]
            pub metadata: Option<BTreeMap<String, String>>,
            #[schema(schema_with = rate_limit)]
            pub rate_limit_per_second: Option<u32>,
            /// `"fifo"`: deliveries go one at a time in event order, a retry
            /// keeping the head of the line. Default `"none"`.
            #[schema(schema_with = ordering)]
            pub ordering: Option<String>,
            /// Payload filter; null: every event (clears it on PATCH).
            #[schema(schema_with = super::dto::filter_or_null)]
            pub filter: Option<serde_json::Value>,
            $($extra)*
        }
    };
}

webhook_body!(
    /// `POST /v1/webhooks`. One spelling of `event_types` is required.
    WebhookCreate, String {
        #[schema(schema_with = secrets)]
        pub secrets: Option<Vec<String>>,
    }
);

webhook_body!(
    /// `PATCH /v1/webhooks/{id}`: absent fields are kept; null clears an optional
    /// field. Secrets change only through rotation.
    WebhookPatch, Option<String> {}
);

/// `POST /v1/webhooks/{id}/secrets/rotate`; `{}` (or no body) generates a secret.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotate {
    /// The new current secret; generated when absent.
    #[schema(schema_with = nullable_secret)]
    pub secret: Option<String>,
    /// How long the previous secret keeps signing; 0 drops it now.
    #[schema(schema_with = grace)]
    pub grace_seconds: Option<u64>,
}

fn nullable_secret() -> Object {
    nullable(signing_secret())
}

fn grace() -> Object {
    nullable(
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .maximum(Some(MAX_GRACE_SECONDS))
            .default(Some(DEFAULT_GRACE_SECONDS.into()))
            .build(),
    )
}

pub(crate) fn event_type_name() -> Object {
    text(1, MAX_EVENT_TYPE_LEN)
        .description(Some(
            "A name in the tenant's catalogue (an unknown one is a 400)",
        ))
        .build()
}

/// `POST /v1/webhooks/{id}/test`. One spelling of `event_type` is required.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestEvent {
    #[schema(schema_with = event_type_name)]
    pub event_type: Option<String>,
    /// Seed alias of `event_type`; send only one spelling.
    #[schema(schema_with = event_type_name)]
    #[serde(rename = "eventType")]
    pub event_type_alias: Option<String>,
    #[schema(schema_with = optional_text)]
    pub message: Option<String>,
}

/// `POST /v1/webhooks/{id}/recover`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Recover {
    /// Deliveries created at or after this time; not in the future (a 400).
    #[schema(format = DateTime)]
    pub since: String,
    /// Only count: answer 200 with how many would be re-queued, change nothing.
    #[schema(default = false)]
    pub dry_run: Option<bool>,
}

/// A tenant id: 1 to 64 letters, digits, `_` or `-`.
fn tenant_id() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[A-Za-z0-9_-]{1,64}$"))
        .build()
}

/// No control characters (CR, LF, NUL...), at least one visible character.
const NO_CONTROL_TEXT: &str = concat!(
    "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f]",
    "[^\\u0000-\\u001f\\u007f-\\u009f]*$"
);

fn name() -> Object {
    text(1, MAX_NAME_LEN).pattern(Some(NO_CONTROL_TEXT)).build()
}

/// `POST /v1/tenants`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantCreate {
    /// Picked by the server when absent.
    #[schema(schema_with = nullable_tenant_id)]
    pub id: Option<String>,
    #[schema(schema_with = name)]
    pub name: String,
}

fn nullable_tenant_id() -> Object {
    nullable(tenant_id())
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

/// `POST /v1/api-keys`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyCreate {
    /// An existing tenant (a missing one is a 400).
    #[schema(schema_with = tenant_id)]
    pub tenant: String,
    #[schema(schema_with = name)]
    pub name: String,
    #[schema(min_items = 1)]
    pub scopes: Vec<ScopeName>,
}

fn new_event_type_name() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(r"^(?!all$)(?!hookbox\.)[A-Za-z0-9_.:\-]{1,128}$"))
        .description(Some(
            "Letters, digits, `_`, `.`, `:` or `-`; not `all`, not starting with `hookbox.`",
        ))
        .build()
}

fn json_schema_object() -> Object {
    nullable(
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("A JSON Schema for the events' `data`"))
            .build(),
    )
}

/// `POST /v1/event-types`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventTypeCreate {
    #[schema(schema_with = new_event_type_name)]
    pub name: String,
    #[schema(schema_with = description)]
    pub description: Option<String>,
    #[schema(schema_with = json_schema_object)]
    pub schema: Option<serde_json::Value>,
}

fn ingest_type() -> Object {
    text(1, MAX_EVENT_TYPE_LEN)
        .pattern(None::<String>)
        .description(Some(
            "A name in the tenant's catalogue (an unknown one is a 400)",
        ))
        .build()
}

fn idempotency_key() -> Object {
    nullable(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_IDEMPOTENCY_KEY_LEN))
            .pattern(Some("^[^\\u0000-\\u001f\\u007f-\\u009f]+$"))
            .description(Some(
                "Same as the Idempotency-Key header; no control characters",
            ))
            .build(),
    )
}

fn event_channels() -> Array {
    nullable_array(
        array(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(MAX_CHANNEL_LEN)),
            0,
            MAX_CHANNELS,
        )
        .build(),
    )
}

/// `POST /v1/events` (and each item of a batch). One spelling of `type` is required.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventCreate {
    #[serde(rename = "type")]
    #[schema(schema_with = ingest_type)]
    pub event_type: Option<String>,
    /// Seed alias of `type`; send only one spelling.
    #[serde(rename = "event_type")]
    #[schema(schema_with = ingest_type)]
    pub event_type_alias: Option<String>,
    /// Seed alias of `type`; send only one spelling.
    #[serde(rename = "eventType")]
    #[schema(schema_with = ingest_type)]
    pub event_type_camel: Option<String>,
    /// Any JSON, nested at most 100 levels; delivered byte-for-byte.
    #[schema(schema_with = crate::api::dto::any_json)]
    pub data: serde_json::Value,
    #[schema(schema_with = event_channels)]
    pub channels: Option<Vec<String>>,
    #[schema(schema_with = idempotency_key)]
    pub idempotency_key: Option<String>,
    /// Seed alias of `idempotency_key`; send only one spelling.
    #[serde(rename = "idempotencyKey")]
    #[schema(schema_with = idempotency_key)]
    pub idempotency_key_alias: Option<String>,
}

fn batch_events() -> Array {
    array(
        RefOr::Ref(utoipa::openapi::Ref::from_schema_name("EventCreate")),
        1,
        MAX_BATCH,
    )
    .description(Some("Idempotency keys must be distinct within a batch"))
    .build()
}

/// `POST /v1/events/batch`: `{"events": [...]}` or a bare array of 1..=1000 events.
pub struct EventBatch;

impl utoipa::PartialSchema for EventBatch {
    fn schema() -> RefOr<Schema> {
        let wrapped = RefOr::Ref(utoipa::openapi::Ref::from_schema_name("BatchWrapper"));
        let one_of = utoipa::openapi::schema::OneOfBuilder::new()
            .item(wrapped)
            .item(batch_events())
            .build();
        RefOr::T(Schema::OneOf(one_of))
    }
}

impl ToSchema for EventBatch {
    fn schemas(out: &mut Vec<(String, RefOr<Schema>)>) {
        out.push(("BatchWrapper".to_owned(), BatchWrapper::schema()));
    }
}

/// `{"events": [...]}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchWrapper {
    #[schema(schema_with = batch_events)]
    pub events: Vec<EventCreate>,
}

fn portal_ttl() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(super::validate::portal::MIN_TTL_SECONDS))
        .maximum(Some(super::validate::portal::MAX_TTL_SECONDS))
        .default(Some(super::validate::portal::DEFAULT_TTL_SECONDS.into()))
        .description(Some("How long the link works, in seconds (at most 24 h)"))
        .build()
}

/// `POST /v1/portal/sessions`; `{}` (or no body) asks for the default session.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortalSessionCreate {
    /// A session that can only read (`webhooks:read`). Default false, except that a
    /// caller without `webhooks:write` always gets a read-only session, and asking
    /// it for `false` explicitly is a 403.
    pub read_only: Option<bool>,
    #[schema(schema_with = portal_ttl)]
    pub ttl_seconds: Option<u64>,
}
