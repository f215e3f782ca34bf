//! Response wire types: the domain model in, typed `Serialize` structs out, with
//! their OpenAPI schemas derived (`ToSchema`), so a field added here is in
//! `/openapi.json` by construction. Pure code; it must never reveal a secret
//! (header value, OAuth client secret, signing secret) unless the caller asked for
//! it on purpose (`reveal`, [`WebhookSecrets`]), and never do I/O.
//!
//! Shapes follow DESIGN.md section 2: single objects bare, lists as
//! `{"data": [...], "next_cursor": ...}`, timestamps RFC 3339 UTC, errors as
//! `{"error": {"code", "title", "message", "reasons"}}`. Structs borrow from the
//! model, so a list answer copies no strings before serializing.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;
use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};

use crate::model::{self, OAuthConfig, Secret, UnixMs};

pub use super::error::{
    Error, ErrorCode, ErrorDetail, ErrorStyle, NestBadRequest, NestError, NestUnauthorized,
};

/// What reads show instead of a secret value. A PATCH that sends it back for a
/// header or the OAuth client secret keeps the stored value.
pub const MASK: &str = "****";

/// Any JSON value (event payloads).
pub(crate) fn any_json() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .description(Some("Any JSON value"))
        .build()
}

/// An RFC 3339 UTC timestamp, always with milliseconds.
pub(crate) fn timestamp() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::DateTime,
        )))
        .build()
}

/// A webhook's `ordering`: `"none"` or `"fifo"`.
fn ordering() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["none", "fifo"]))
        .build()
}

/// [`timestamp`] or `null`.
pub(crate) fn timestamp_or_null() -> Object {
    let mut t = timestamp();
    t.schema_type = SchemaType::from_iter([Type::String, Type::Null]);
    t
}

/// A webhook's payload filter (DESIGN.md section 9) or `null`, in requests and reads.
pub(crate) fn filter_or_null() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .description(Some(
            "Payload filter over the delivered body; null: every event. Keys are paths \
             (`type`, `timestamp`, `data`, `data.<dotted keys>`) or `$and`/`$or` (non-empty \
             arrays of filters) and `$not` (a filter); a path's value is a literal (equality) \
             or an object of operators `$eq` `$ne` `$gt` `$gte` `$lt` `$lte` `$in` `$nin` \
             `$exists` `$prefix`. Numbers compare as numbers (1 == 1.0), strings as strings, \
             nothing across types (the string \"100\" is not >= 99). A missing path satisfies \
             only `$exists: false`, `$ne` and `$nin`. At most 8 levels of nested filters and \
             4096 bytes of canonical JSON; reads show the canonical form (keys sorted).",
        ))
        .build()
}

/// A secret's value when `reveal`, else [`MASK`].
pub(crate) fn shown(secret: &Secret, reveal: bool) -> &str {
    if reveal { secret.expose() } else { MASK }
}

/// A map of secret header values, masked unless `reveal`.
pub(crate) fn headers(headers: &BTreeMap<String, Secret>, reveal: bool) -> BTreeMap<&str, &str> {
    headers
        .iter()
        .map(|(name, value)| (name.as_str(), shown(value, reveal)))
        .collect()
}

/// A webhook's OAuth client-credentials settings.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuth<'a> {
    pub token_url: &'a str,
    pub client_id: &'a str,
    /// `"****"` except in the create answer.
    pub client_secret: &'a str,
    #[schema(required = true)]
    pub scope: Option<&'a str>,
    /// Values are `"****"` except in the create answer.
    pub headers: BTreeMap<&'a str, &'a str>,
}

impl<'a> OAuth<'a> {
    /// The settings; the client secret and header values `"****"` unless `reveal`.
    pub(crate) fn new(o: &'a OAuthConfig, reveal: bool) -> Self {
        OAuth {
            token_url: &o.token_url,
            client_id: &o.client_id,
            client_secret: shown(&o.client_secret, reveal),
            scope: o.scope.as_deref(),
            headers: headers(&o.headers, reveal),
        }
    }
}

/// A webhook as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Webhook<'a> {
    pub id: &'a str,
    pub tenant: &'a str,
    pub url: &'a str,
    pub event_types: &'a [String],
    pub channels: &'a [String],
    #[schema(required = true)]
    pub description: Option<&'a str>,
    /// Values are `"****"` except in the create answer.
    pub headers: BTreeMap<&'a str, &'a str>,
    #[schema(required = true)]
    pub oauth: Option<OAuth<'a>>,
    /// Active signing secrets, current first; `"****"` except in the create answer.
    pub secrets: Vec<&'a str>,
    #[schema(required = true)]
    pub notification_email: Option<&'a str>,
    pub enabled: bool,
    #[schema(required = true)]
    pub disabled_reason: Option<&'a str>,
    #[schema(required = true, schema_with = timestamp_or_null)]
    pub disabled_at: Option<String>,
    pub metadata: &'a BTreeMap<String, String>,
    #[schema(required = true, minimum = 1)]
    pub rate_limit_per_second: Option<u32>,
    /// `"none"` or `"fifo"` (one delivery at a time in event order).
    #[schema(schema_with = ordering)]
    pub ordering: &'static str,
    #[schema(required = true, schema_with = filter_or_null)]
    pub filter: Option<serde_json::Value>,
    #[schema(schema_with = timestamp)]
    pub created_at: String,
    #[schema(schema_with = timestamp)]
    pub updated_at: String,
}

impl<'a> Webhook<'a> {
    /// The webhook with the secrets active now. `reveal` (create only) shows header
    /// values, the OAuth client secret and the signing secrets; otherwise each is
    /// `"****"`.
    pub fn new(w: &'a model::Webhook, reveal: bool) -> Self {
        Self::at(w, reveal, model::now_ms())
    }

    /// [`Webhook::new`] with an explicit clock, which decides which secrets are
    /// still active (an old secret past its grace period is not listed).
    pub fn at(w: &'a model::Webhook, reveal: bool, now: UnixMs) -> Self {
        Webhook {
            id: &w.id,
            tenant: &w.tenant,
            url: &w.url,
            event_types: &w.event_types,
            channels: &w.channels,
            description: w.description.as_deref(),
            headers: headers(&w.headers, reveal),
            oauth: w.oauth.as_ref().map(|o| OAuth::new(o, reveal)),
            secrets: w.active_secrets(now).map(|s| shown(s, reveal)).collect(),
            notification_email: w.notification_email.as_deref(),
            enabled: w.enabled,
            disabled_reason: w.disabled_reason.as_deref(),
            disabled_at: w.disabled_at.map(model::rfc3339),
            metadata: &w.metadata,
            rate_limit_per_second: w.rate_limit_per_second,
            ordering: w.ordering.as_str(),
            filter: w.filter.as_ref().map(crate::filter::Filter::to_value),
            created_at: model::rfc3339(w.created_at),
            updated_at: model::rfc3339(w.updated_at),
        }
    }
}

/// The `ETag` of a webhook at `version`: a strong entity tag, `"<version>"`.
pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// `GET /v1/webhooks/{id}/secrets` and rotation: the plain secrets active now,
/// current first.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSecrets<'a> {
    pub secrets: Vec<&'a str>,
}

impl<'a> WebhookSecrets<'a> {
    /// The secrets of `w` active at `now`.
    pub fn at(w: &'a model::Webhook, now: UnixMs) -> Self {
        WebhookSecrets {
            secrets: w.active_secrets(now).map(Secret::expose).collect(),
        }
    }
}

/// A tenant.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Tenant<'a> {
    pub id: &'a str,
    pub name: &'a str,
    #[schema(schema_with = timestamp)]
    pub created_at: String,
}

impl<'a> Tenant<'a> {
    /// The tenant's wire form.
    pub fn new(t: &'a model::Tenant) -> Self {
        Tenant {
            id: &t.id,
            name: &t.name,
            created_at: model::rfc3339(t.created_at),
        }
    }
}

/// An API key record. `key` is the full key, given only in the creation answer
/// (it is never stored, so it cannot be shown again).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKey<'a> {
    pub id: &'a str,
    pub tenant: &'a str,
    pub name: &'a str,
    /// The key's first 8 characters.
    pub prefix: &'a str,
    #[schema(value_type = Vec<crate::api::requests::ScopeName>)]
    pub scopes: Vec<&'static str>,
    #[schema(schema_with = timestamp)]
    pub created_at: String,
    /// The full key; only in the creation answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<&'a str>,
}

impl<'a> ApiKey<'a> {
    /// The key's wire form; `key` only when it was just created.
    pub fn new(k: &'a model::ApiKey, key: Option<&'a str>) -> Self {
        ApiKey {
            id: &k.id,
            tenant: &k.tenant,
            name: &k.name,
            prefix: &k.prefix,
            scopes: k.scopes.iter().map(|s| s.as_str()).collect(),
            created_at: model::rfc3339(k.created_at),
            key,
        }
    }
}

/// A catalogue entry. The schema was validated as a JSON object on the way in; if
/// stored text ever fails to parse it is shown as `null` rather than failing the
/// whole answer.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventType<'a> {
    pub name: &'a str,
    #[schema(required = true)]
    pub description: Option<&'a str>,
    /// A JSON Schema for the event's `data`, or `null`.
    #[schema(required = true, value_type = Option<Object>)]
    pub schema: Option<&'a RawValue>,
    #[schema(schema_with = timestamp)]
    pub created_at: String,
}

impl<'a> EventType<'a> {
    /// The entry's wire form.
    pub fn new(e: &'a model::EventType) -> Self {
        EventType {
            name: &e.name,
            description: e.description.as_deref(),
            schema: e
                .schema
                .as_deref()
                .and_then(|s| serde_json::from_str::<&RawValue>(s).ok()),
            created_at: model::rfc3339(e.created_at),
        }
    }
}

/// The fields every event answer has, in one place (why they are repeated rather
/// than flattened: [`EventDetail`]).
macro_rules! event_type {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident: $ty:ty),* }) => {
        $(#[$doc])*
        #[derive(Serialize, ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name<'a> {
            pub id: &'a str,
            #[serde(rename = "type")]
            pub event_type: &'a str,
            #[schema(schema_with = any_json)]
            pub data: Option<&'a RawValue>,
            pub channels: &'a [String],
            #[schema(required = true)]
            pub idempotency_key: Option<&'a str>,
            #[schema(schema_with = timestamp)]
            pub created_at: String,
            $($(#[$fdoc])* pub $field: $ty),*
        }

        impl<'a> $name<'a> {
            fn base(e: &'a model::Event, $($field: $ty),*) -> Self {
                $name {
                    id: &e.id,
                    event_type: &e.event_type,
                    data: serde_json::from_str::<&RawValue>(&e.payload).ok(),
                    channels: &e.channels,
                    idempotency_key: e.idempotency_key.as_deref(),
                    created_at: model::rfc3339(e.created_at),
                    $($field),*
                }
            }
        }
    };
}

event_type!(
    /// An event as the API shows it; `data` is the stored payload byte-for-byte.
    Event {}
);
event_type!(
    /// An event with its deliveries. It repeats [`Event`]'s fields rather than
    /// flattening it: both schemas are closed (`additionalProperties: false`), and a
    /// closed schema cannot be extended through `allOf`.
    EventDetail { deliveries: Vec<Delivery<'a>> }
);

impl<'a> Event<'a> {
    /// The event's wire form.
    pub fn new(e: &'a model::Event) -> Self {
        Self::base(e)
    }
}

impl<'a> EventDetail<'a> {
    /// The event and its deliveries.
    pub fn new(e: &'a model::Event, deliveries: &'a [model::Delivery]) -> Self {
        Self::base(e, deliveries.iter().map(Delivery::new).collect())
    }
}

/// The delivery states, as the API names them.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Succeeded,
    Failed,
    Exhausted,
    Cancelled,
}

/// The fields every delivery answer has, in one place.
macro_rules! delivery_type {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident: $ty:ty),* }) => {
        $(#[$doc])*
        #[derive(Serialize, ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name<'a> {
            pub id: &'a str,
            pub event_id: &'a str,
            pub webhook_id: &'a str,
            pub event_type: &'a str,
            #[schema(value_type = DeliveryStatus)]
            pub status: &'static str,
            #[schema(required = true, schema_with = timestamp_or_null)]
            pub next_attempt_at: Option<String>,
            #[schema(required = true)]
            pub last_status_code: Option<u16>,
            #[schema(required = true)]
            pub last_error: Option<&'a str>,
            #[schema(schema_with = timestamp)]
            pub created_at: String,
            #[schema(schema_with = timestamp)]
            pub updated_at: String,
            $($(#[$fdoc])* pub $field: $ty),*
        }

        impl<'a> $name<'a> {
            fn base(d: &'a model::Delivery, $($field: $ty),*) -> Self {
                $name {
                    id: &d.id,
                    event_id: &d.event_id,
                    webhook_id: &d.webhook_id,
                    event_type: &d.event_type,
                    status: d.state.as_str(),
                    next_attempt_at: d.next_attempt_at.map(model::rfc3339),
                    last_status_code: d.last_status,
                    last_error: d.last_error.as_deref(),
                    created_at: model::rfc3339(d.created_at),
                    updated_at: model::rfc3339(d.updated_at),
                    $($field),*
                }
            }
        }
    };
}

delivery_type!(
    /// A delivery in a list or an event: `attempts` is how many were made.
    Delivery { attempts: u32 }
);
delivery_type!(
    /// A delivery with all its attempts.
    DeliveryDetail { attempts: Vec<Attempt<'a>> }
);
delivery_type!(
    /// The answer of a manual retry: the delivery and the attempt just made.
    DeliveryRetried { attempts: u32, attempt: Attempt<'a> }
);

impl<'a> Delivery<'a> {
    /// The delivery's wire form.
    pub fn new(d: &'a model::Delivery) -> Self {
        Self::base(d, d.attempts)
    }
}

impl<'a> DeliveryDetail<'a> {
    /// The delivery with its attempts.
    pub fn new(d: &'a model::Delivery, attempts: &'a [model::Attempt]) -> Self {
        Self::base(d, attempts.iter().map(Attempt::new).collect())
    }
}

impl<'a> DeliveryRetried<'a> {
    /// The delivery after a manual retry, with that attempt.
    pub fn new(d: &'a model::Delivery, attempt: &'a model::Attempt) -> Self {
        Self::base(d, d.attempts, Attempt::new(attempt))
    }
}

/// What started an attempt.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AttemptTrigger {
    Scheduled,
    Manual,
    Test,
}

/// One attempt as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Attempt<'a> {
    #[schema(minimum = 1)]
    pub number: u32,
    #[schema(schema_with = timestamp)]
    pub at: String,
    #[schema(value_type = AttemptTrigger)]
    pub trigger: &'static str,
    #[schema(required = true)]
    pub status_code: Option<u16>,
    #[schema(required = true)]
    pub error: Option<&'a str>,
    pub latency_ms: u64,
    /// The first 4 KiB of the receiver's answer.
    pub response_body: &'a str,
}

impl<'a> Attempt<'a> {
    /// The attempt's wire form.
    pub fn new(a: &'a model::Attempt) -> Self {
        Attempt {
            number: a.number,
            at: model::rfc3339(a.at),
            trigger: a.trigger.as_str(),
            status_code: a.status,
            error: a.error.as_deref(),
            latency_ms: a.latency_ms,
            response_body: &a.response_body,
        }
    }
}

/// Concrete list types (one schema name each): `{"data": [...], "next_cursor"}`.
macro_rules! list_type {
    ($name:ident, $item:ident) => {
        #[doc = concat!("A page of ", stringify!($item), "s.")]
        #[derive(Serialize, ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name<'a> {
            pub data: Vec<$item<'a>>,
            /// Pass as `cursor` for the next page; `null` on the last page.
            #[schema(required = true)]
            pub next_cursor: Option<String>,
        }

        impl<'a> $name<'a> {
            /// The page and the cursor of the next one.
            pub fn new(data: Vec<$item<'a>>, next_cursor: Option<String>) -> Self {
                $name { data, next_cursor }
            }
        }
    };
}

list_type!(TenantList, Tenant);
list_type!(ApiKeyList, ApiKey);
list_type!(EventTypeList, EventType);
list_type!(WebhookList, Webhook);
list_type!(EventList, Event);
list_type!(DeliveryList, Delivery);

/// The answer to one ingested event (202, or 200 for an idempotent replay).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestAccepted {
    pub id: String,
    /// How many deliveries were created.
    pub deliveries: u32,
}

/// One event of a batch answer.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchItem {
    pub id: String,
    pub deliveries: u32,
    /// True when the idempotency key matched a stored event.
    pub replayed: bool,
}

/// The answer to a batch, in the order sent.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchAccepted {
    pub data: Vec<BatchItem>,
}

/// How many deliveries a recover re-queued.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Recovered {
    /// How many deliveries were re-queued (with `dry_run`: would be).
    pub requeued: u64,
    /// True when nothing was changed: `requeued` is the count a real run would
    /// re-queue now.
    pub dry_run: bool,
}

/// `/healthz`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    #[schema(value_type = String, pattern = "^ok$")]
    pub status: &'static str,
}

/// `/readyz`: `ready`, or `unready` with the reason.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Ready {
    #[schema(value_type = String, pattern = "^(ready|unready)$")]
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// An OpenAPI 3.1 document (this one).
#[derive(Serialize, ToSchema)]
pub struct OpenApiDocument {
    pub openapi: String,
}

#[cfg(test)]
#[path = "dto_tests.rs"]
mod tests;

/// `POST /v1/portal/sessions`: the link to hand a customer. The token is shown only
/// here; the server keeps its hash.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortalSession {
    /// `{public_url}/portal#token=<token>`: the token travels in the fragment, which
    /// browsers never send to a server.
    pub url: String,
    /// The bearer token (`hbp_...`) the portal page uses against this API.
    #[schema(pattern = "^hbp_")]
    pub token: String,
    /// When the link stops working (RFC 3339).
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// Whether the session can only read.
    pub read_only: bool,
}

/// `GET /v1/portal/sessions`: the calling portal session (or, for a key or the
/// admin token, what a session it creates by default may do).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortalSessionInfo<'a> {
    pub tenant: &'a str,
    /// Whether the session can only read.
    pub read_only: bool,
    /// When the link stops working (RFC 3339); null when the caller is not a
    /// portal session.
    #[schema(required = true, schema_with = timestamp_or_null)]
    pub expires_at: Option<String>,
}
