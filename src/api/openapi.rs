//! `/openapi.json`: an OpenAPI 3.1 document built from the route table, so every
//! route the router answers is listed (a test checks both directions), with a JSON
//! Schema (2020-12, as OpenAPI 3.1 uses) for every request and response body.
//!
//! The schemas are written by hand next to the code they describe: request bodies
//! follow `validate.rs` (field names, seed aliases, limits; unknown fields are
//! refused, hence `additionalProperties: false`), responses follow `dto.rs` and the
//! handlers. `tests/it/openapi.rs` checks real responses against them.

use serde_json::{Map, Value, json};

use super::validate::{
    DEFAULT_GRACE_SECONDS, MAX_BATCH, MAX_CHANNEL_LEN, MAX_CHANNELS, MAX_DESCRIPTION_LEN,
    MAX_EVENT_TYPE_LEN, MAX_EVENT_TYPES, MAX_GRACE_SECONDS, MAX_HEADERS, MAX_IDEMPOTENCY_KEY_LEN,
    MAX_METADATA, MAX_RATE_LIMIT, MAX_SECRETS, MAX_URL_LEN,
};
use crate::model::{DeliveryState, Scope};
use Body::{Empty, Json, Text};

/// What a successful answer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// `application/json` described by the named component schema.
    Json(&'static str),
    /// No body (204).
    Empty,
    /// `text/plain` (the Prometheus exposition format).
    Text,
}

/// One documented operation.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// Path template, e.g. `/v1/webhooks/{id}`.
    pub path: &'static str,
    /// Lower-case HTTP method.
    pub method: &'static str,
    /// One line for humans.
    pub summary: &'static str,
    /// The scope needed, `"admin"` for the admin token, `""` for no authentication.
    pub scope: &'static str,
    /// The component schema of the JSON request body, if the operation takes one.
    pub request: Option<&'static str>,
    /// The success status code.
    pub status: u16,
    /// The success body.
    pub response: Body,
    /// Query parameters (names of `components/parameters`).
    pub query: &'static [&'static str],
}

/// Shorthand for the table below.
#[allow(clippy::too_many_arguments)]
const fn op(
    method: &'static str,
    path: &'static str,
    scope: &'static str,
    summary: &'static str,
    request: Option<&'static str>,
    status: u16,
    response: Body,
    query: &'static [&'static str],
) -> Operation {
    Operation {
        path,
        method,
        summary,
        scope,
        request,
        status,
        response,
        query,
    }
}

const PAGE: &[&str] = &["limit", "cursor"];
const NONE: &[&str] = &[];

/// Every operation the server answers.
pub const OPERATIONS: &[Operation] = &[
    op(
        "post",
        "/v1/tenants",
        "admin",
        "Create a tenant",
        Some("TenantCreate"),
        201,
        Json("Tenant"),
        NONE,
    ),
    op(
        "get",
        "/v1/tenants",
        "admin",
        "List tenants",
        None,
        200,
        Json("TenantList"),
        NONE,
    ),
    op(
        "get",
        "/v1/tenants/{id}",
        "admin",
        "Read a tenant",
        None,
        200,
        Json("Tenant"),
        NONE,
    ),
    op(
        "delete",
        "/v1/tenants/{id}",
        "admin",
        "Delete a tenant, its keys and catalogue; soft-delete its webhooks",
        None,
        204,
        Empty,
        NONE,
    ),
    op(
        "post",
        "/v1/api-keys",
        "admin",
        "Create an API key (the key is shown once)",
        Some("ApiKeyCreate"),
        201,
        Json("ApiKeyCreated"),
        NONE,
    ),
    op(
        "get",
        "/v1/api-keys",
        "admin",
        "List API keys (hashes are never shown)",
        None,
        200,
        Json("ApiKeyList"),
        &["tenant"],
    ),
    op(
        "get",
        "/v1/api-keys/{id}",
        "admin",
        "Read an API key",
        None,
        200,
        Json("ApiKey"),
        NONE,
    ),
    op(
        "delete",
        "/v1/api-keys/{id}",
        "admin",
        "Revoke an API key",
        None,
        204,
        Empty,
        NONE,
    ),
    op(
        "get",
        "/v1/event-types",
        "webhooks:read",
        "List the tenant's event types",
        None,
        200,
        Json("EventTypeList"),
        NONE,
    ),
    op(
        "post",
        "/v1/event-types",
        "webhooks:write",
        "Add an event type",
        Some("EventTypeCreate"),
        201,
        Json("EventType"),
        NONE,
    ),
    op(
        "get",
        "/v1/event-types/{name}",
        "webhooks:read",
        "Read an event type",
        None,
        200,
        Json("EventType"),
        NONE,
    ),
    op(
        "delete",
        "/v1/event-types/{name}",
        "webhooks:write",
        "Remove an event type",
        None,
        204,
        Empty,
        NONE,
    ),
    op(
        "post",
        "/v1/webhooks",
        "webhooks:write",
        "Register a webhook (201 with its secrets)",
        Some("WebhookCreate"),
        201,
        Json("Webhook"),
        NONE,
    ),
    op(
        "get",
        "/v1/webhooks",
        "webhooks:read",
        "List webhooks, cursor-paginated, secrets masked",
        None,
        200,
        Json("WebhookList"),
        PAGE,
    ),
    op(
        "get",
        "/v1/webhooks/{id}",
        "webhooks:read",
        "Read a webhook (masked)",
        None,
        200,
        Json("Webhook"),
        NONE,
    ),
    op(
        "patch",
        "/v1/webhooks/{id}",
        "webhooks:write",
        "Update a webhook partially",
        Some("WebhookPatch"),
        200,
        Json("Webhook"),
        NONE,
    ),
    op(
        "delete",
        "/v1/webhooks/{id}",
        "webhooks:write",
        "Soft-delete a webhook (204)",
        None,
        204,
        Empty,
        NONE,
    ),
    op(
        "get",
        "/v1/webhooks/{id}/secrets",
        "webhooks:write",
        "Reveal the active signing secrets",
        None,
        200,
        Json("WebhookSecrets"),
        NONE,
    ),
    op(
        "post",
        "/v1/webhooks/{id}/secrets/rotate",
        "webhooks:write",
        "Rotate the signing secret (dual-secret grace period)",
        Some("Rotate"),
        200,
        Json("WebhookSecrets"),
        NONE,
    ),
    op(
        "post",
        "/v1/webhooks/{id}/test",
        "webhooks:write",
        "Send a test event now and return the attempt",
        Some("TestEvent"),
        200,
        Json("Attempt"),
        NONE,
    ),
    op(
        "post",
        "/v1/webhooks/{id}/test-event",
        "webhooks:write",
        "The seed spelling of /v1/webhooks/{id}/test",
        Some("TestEvent"),
        200,
        Json("Attempt"),
        NONE,
    ),
    op(
        "get",
        "/v1/webhooks/{id}/deliveries",
        "webhooks:read",
        "The webhook's delivery log",
        None,
        200,
        Json("DeliveryList"),
        &["status", "limit", "cursor"],
    ),
    op(
        "post",
        "/v1/webhooks/{id}/recover",
        "webhooks:write",
        "Re-queue failed, exhausted and cancelled deliveries since a time",
        Some("Recover"),
        202,
        Json("Recovered"),
        NONE,
    ),
    op(
        "post",
        "/v1/events",
        "events:write",
        "Ingest one event (202 once durable; 200 for an idempotent replay)",
        Some("EventCreate"),
        202,
        Json("IngestAccepted"),
        NONE,
    ),
    op(
        "get",
        "/v1/events",
        "events:read",
        "List events (type, since, cursor)",
        None,
        200,
        Json("EventList"),
        &["type", "since", "limit", "cursor"],
    ),
    op(
        "post",
        "/v1/events/batch",
        "events:write",
        "Ingest up to 1,000 events in one durable commit",
        Some("EventBatch"),
        202,
        Json("BatchAccepted"),
        NONE,
    ),
    op(
        "get",
        "/v1/events/{id}",
        "events:read",
        "An event with its deliveries",
        None,
        200,
        Json("EventDetail"),
        NONE,
    ),
    op(
        "get",
        "/v1/deliveries/{id}",
        "webhooks:read",
        "A delivery with all its attempts",
        None,
        200,
        Json("DeliveryDetail"),
        NONE,
    ),
    op(
        "post",
        "/v1/deliveries/{id}/retry",
        "webhooks:write",
        "Attempt a delivery again now",
        None,
        200,
        Json("DeliveryRetried"),
        NONE,
    ),
    op(
        "get",
        "/healthz",
        "",
        "Liveness",
        None,
        200,
        Json("Health"),
        NONE,
    ),
    op(
        "get",
        "/readyz",
        "",
        "Readiness: 503 when the store cannot write or shutdown began",
        None,
        200,
        Json("Ready"),
        NONE,
    ),
    op(
        "get",
        "/metrics",
        "",
        "Prometheus metrics",
        None,
        200,
        Text,
        NONE,
    ),
    op(
        "get",
        "/openapi.json",
        "",
        "This document",
        None,
        200,
        Json("OpenApi"),
        NONE,
    ),
];

/// The error statuses every `/v1` operation may answer (all with the `Error` body).
const V1_ERRORS: &[(u16, &str)] = &[
    (400, "Invalid input; every reason is listed"),
    (401, "Missing or unknown key"),
    (403, "Missing scope, or the admin token is needed"),
    (
        404,
        "No such route or object (another tenant's objects included)",
    ),
    (
        405,
        "Method not allowed on this route (see the Allow header)",
    ),
    (
        409,
        "Conflict (already exists, idempotency key reused, webhook disabled)",
    ),
    (413, "Body over max_body_bytes"),
    (415, "Body is not application/json"),
    (500, "Internal error; the cause is in the server log"),
    (503, "The store cannot write, or shutdown began"),
];

// ---------------------------------------------------------------------------
// Schema helpers.

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn string() -> Value {
    json!({"type": "string"})
}

fn text(max: usize) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": max})
}

fn timestamp() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn integer(min: u64, max: u64) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": max})
}

fn uint() -> Value {
    json!({"type": "integer", "minimum": 0})
}

fn boolean() -> Value {
    json!({"type": "boolean"})
}

fn strings() -> Value {
    json!({"type": "array", "items": {"type": "string"}})
}

fn array(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

fn string_map() -> Value {
    json!({"type": "object", "additionalProperties": {"type": "string"}})
}

/// `schema` or `null`.
fn nullable(schema: Value) -> Value {
    let mut s = schema;
    match s.get("type").cloned() {
        Some(Value::String(t)) => {
            s["type"] = json!([t, "null"]);
            s
        }
        _ => json!({"oneOf": [s, {"type": "null"}]}),
    }
}

/// `schema` with a description.
fn described(schema: Value, description: &str) -> Value {
    let mut s = schema;
    s["description"] = json!(description);
    s
}

/// The same schema as `of`, documented as the seed spelling of `canonical`.
fn alias(of: &Value, canonical: &str) -> Value {
    described(
        of.clone(),
        &format!("Alternative (seed) name of `{canonical}`; send only one of the two"),
    )
}

/// A closed object: the listed properties, the `required` ones always present,
/// nothing else.
fn object(props: Vec<(&str, Value)>, required: &[&str]) -> Value {
    let properties: Map<String, Value> =
        props.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// `{"data": [item], "next_cursor": string | null}`.
fn list(item: &str) -> Value {
    object(
        vec![
            ("data", array(r(item))),
            (
                "next_cursor",
                described(
                    nullable(string()),
                    "Pass as `cursor` for the next page; null on the last page",
                ),
            ),
        ],
        &["data", "next_cursor"],
    )
}

/// Requires one of several spellings of a field.
fn one_of_names(names: &[&str]) -> Value {
    let options: Vec<Value> = names.iter().map(|n| json!({"required": [n]})).collect();
    json!(options)
}

// ---------------------------------------------------------------------------
// Request bodies (validate.rs).

fn tenant_id() -> Value {
    json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"})
}

fn scopes() -> Value {
    let names: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
    json!({"type": "array", "items": {"type": "string", "enum": names}, "minItems": 1})
}

fn signing_secret() -> Value {
    json!({
        "type": "string",
        "pattern": "^whsec_[A-Za-z0-9+/]+={0,2}$",
        "description": "`whsec_` and standard base64 of 24 to 64 bytes",
    })
}

fn oauth_request() -> Value {
    object(
        vec![
            (
                "token_url",
                json!({"type": "string", "format": "uri", "maxLength": MAX_URL_LEN}),
            ),
            ("client_id", text(1024)),
            (
                "client_secret",
                described(text(1024), "`\"****\"` in a PATCH keeps the stored secret"),
            ),
            ("scope", nullable(text(1024))),
            ("headers", nullable(header_map())),
        ],
        &["token_url", "client_id", "client_secret"],
    )
}

fn header_map() -> Value {
    let mut m = string_map();
    m["maxProperties"] = json!(MAX_HEADERS);
    m["description"] = json!("Header values; `\"****\"` in a PATCH keeps the stored value");
    m
}

/// The fields of a webhook create (`creating`) or patch body, with seed aliases.
fn webhook_request(creating: bool) -> Value {
    let url = json!({"type": "string", "format": "uri", "maxLength": MAX_URL_LEN});
    let event_types = described(
        json!({
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "minItems": 1,
            "maxItems": MAX_EVENT_TYPES,
        }),
        "Catalogued names, `*` or `all` for every type, `prefix.*` for a prefix",
    );
    let channels = nullable(json!({
        "type": "array",
        "items": {"type": "string", "minLength": 1, "maxLength": MAX_CHANNEL_LEN},
        "maxItems": MAX_CHANNELS,
    }));
    let oauth = nullable(r("OAuthRequest"));
    let email = nullable(json!({"type": "string", "format": "email"}));
    let mut metadata = string_map();
    metadata["maxProperties"] = json!(MAX_METADATA);
    let mut props = vec![
        ("url", url),
        ("event_types", event_types.clone()),
        ("subscriptions", alias(&event_types, "event_types")),
        ("events", alias(&event_types, "event_types")),
        ("channels", channels.clone()),
        ("facilities", alias(&channels, "channels")),
        (
            "description",
            nullable(json!({"type": "string", "maxLength": MAX_DESCRIPTION_LEN})),
        ),
        ("headers", nullable(header_map())),
        ("oauth", oauth.clone()),
        ("oauth_configuration", alias(&oauth, "oauth")),
        ("notification_email", email.clone()),
        ("notificationEmail", alias(&email, "notification_email")),
        ("enabled", boolean()),
        ("metadata", nullable(metadata)),
        (
            "rate_limit_per_second",
            nullable(integer(1, MAX_RATE_LIMIT)),
        ),
    ];
    if creating {
        props.push((
            "secrets",
            described(
                nullable(json!({
                    "type": "array",
                    "items": signing_secret(),
                    "maxItems": MAX_SECRETS,
                })),
                "Current first; one is generated when none is given",
            ),
        ));
        let mut s = object(props, &["url"]);
        s["anyOf"] = one_of_names(&["event_types", "subscriptions", "events"]);
        s
    } else {
        described(
            object(props, &[]),
            "Absent fields are kept; null clears an optional field",
        )
    }
}

fn event_create() -> Value {
    let ty = json!({"type": "string", "minLength": 1, "maxLength": MAX_EVENT_TYPE_LEN});
    let key = nullable(json!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_IDEMPOTENCY_KEY_LEN,
    }));
    let mut s = object(
        vec![
            (
                "type",
                described(ty.clone(), "A name in the tenant's catalogue"),
            ),
            ("event_type", alias(&ty, "type")),
            ("eventType", alias(&ty, "type")),
            (
                "data",
                json!({"description": "Any JSON; delivered byte-for-byte"}),
            ),
            (
                "channels",
                nullable(json!({
                    "type": "array",
                    "items": {"type": "string", "minLength": 1, "maxLength": MAX_CHANNEL_LEN},
                    "maxItems": MAX_CHANNELS,
                })),
            ),
            (
                "idempotency_key",
                described(key.clone(), "Same as the Idempotency-Key header"),
            ),
            ("idempotencyKey", alias(&key, "idempotency_key")),
        ],
        &["data"],
    );
    s["anyOf"] = one_of_names(&["type", "event_type", "eventType"]);
    s
}

fn event_batch() -> Value {
    let events = json!({
        "type": "array",
        "items": r("EventCreate"),
        "minItems": 1,
        "maxItems": MAX_BATCH,
    });
    json!({
        "oneOf": [
            object(vec![("events", events.clone())], &["events"]),
            events,
        ],
        "description": "Idempotency keys must be distinct within a batch",
    })
}

// ---------------------------------------------------------------------------
// Response bodies (dto.rs and the handlers).

fn webhook() -> Value {
    let oauth = object(
        vec![
            ("token_url", string()),
            ("client_id", string()),
            (
                "client_secret",
                described(string(), "`\"****\"` except in the create answer"),
            ),
            ("scope", nullable(string())),
            ("headers", string_map()),
        ],
        &[
            "token_url",
            "client_id",
            "client_secret",
            "scope",
            "headers",
        ],
    );
    object(
        vec![
            ("id", string()),
            ("tenant", string()),
            ("url", string()),
            ("event_types", strings()),
            ("channels", strings()),
            ("description", nullable(string())),
            (
                "headers",
                described(
                    string_map(),
                    "Values are `\"****\"` except in the create answer",
                ),
            ),
            ("oauth", nullable(oauth)),
            (
                "secrets",
                described(
                    strings(),
                    "Active signing secrets, current first; `\"****\"` except in the create answer",
                ),
            ),
            ("notification_email", nullable(string())),
            ("enabled", boolean()),
            ("disabled_reason", nullable(string())),
            ("disabled_at", nullable(timestamp())),
            ("metadata", string_map()),
            ("rate_limit_per_second", nullable(uint())),
            ("created_at", timestamp()),
            ("updated_at", timestamp()),
        ],
        &[
            "id",
            "tenant",
            "url",
            "event_types",
            "channels",
            "description",
            "headers",
            "oauth",
            "secrets",
            "notification_email",
            "enabled",
            "disabled_reason",
            "disabled_at",
            "metadata",
            "rate_limit_per_second",
            "created_at",
            "updated_at",
        ],
    )
}

/// An API key; `with_key` for the creation answer, the only one that shows it.
fn api_key(with_key: bool) -> Value {
    let mut props = vec![
        ("id", string()),
        ("tenant", string()),
        ("name", string()),
        (
            "prefix",
            described(string(), "The key's first 8 characters"),
        ),
        ("scopes", scopes()),
        ("created_at", timestamp()),
    ];
    let mut required = vec!["id", "tenant", "name", "prefix", "scopes", "created_at"];
    if with_key {
        props.push(("key", described(string(), "The full key; shown only here")));
        required.push("key");
    }
    object(props, &required)
}

/// Delivery fields (`attempts` is either a count or the attempts themselves).
fn delivery_props(attempts: Value) -> Vec<(&'static str, Value)> {
    let states: Vec<&str> = [
        DeliveryState::Pending,
        DeliveryState::Succeeded,
        DeliveryState::Failed,
        DeliveryState::Exhausted,
        DeliveryState::Cancelled,
    ]
    .iter()
    .map(|s| s.as_str())
    .collect();
    vec![
        ("id", string()),
        ("event_id", string()),
        ("webhook_id", string()),
        ("event_type", string()),
        ("status", json!({"type": "string", "enum": states})),
        ("attempts", attempts),
        ("next_attempt_at", nullable(timestamp())),
        ("last_status_code", nullable(uint())),
        ("last_error", nullable(string())),
        ("created_at", timestamp()),
        ("updated_at", timestamp()),
    ]
}

const DELIVERY_REQUIRED: &[&str] = &[
    "id",
    "event_id",
    "webhook_id",
    "event_type",
    "status",
    "attempts",
    "next_attempt_at",
    "last_status_code",
    "last_error",
    "created_at",
    "updated_at",
];

fn with(
    mut props: Vec<(&'static str, Value)>,
    extra: (&'static str, Value),
) -> Vec<(&'static str, Value)> {
    props.push(extra);
    props
}

fn required_plus(base: &[&'static str], extra: &'static str) -> Vec<&'static str> {
    let mut v = base.to_vec();
    v.push(extra);
    v
}

fn event_props() -> Vec<(&'static str, Value)> {
    vec![
        ("id", string()),
        ("type", string()),
        ("data", json!({"description": "The payload as sent"})),
        ("channels", strings()),
        ("idempotency_key", nullable(string())),
        ("created_at", timestamp()),
    ]
}

const EVENT_REQUIRED: &[&str] = &[
    "id",
    "type",
    "data",
    "channels",
    "idempotency_key",
    "created_at",
];

fn error() -> Value {
    let codes = [
        "bad_request",
        "unauthorized",
        "forbidden",
        "not_found",
        "method_not_allowed",
        "conflict",
        "payload_too_large",
        "unsupported_media_type",
        "unavailable",
        "internal",
    ];
    object(
        vec![(
            "error",
            object(
                vec![
                    ("code", json!({"type": "string", "enum": codes})),
                    ("title", string()),
                    ("message", string()),
                    (
                        "reasons",
                        described(
                            strings(),
                            "Every problem found; empty when there is none to list",
                        ),
                    ),
                ],
                &["code", "title", "message", "reasons"],
            ),
        )],
        &["error"],
    )
}

/// Every component schema.
pub fn schemas() -> Map<String, Value> {
    let attempt = object(
        vec![
            ("number", integer(1, u64::from(u32::MAX))),
            ("at", timestamp()),
            (
                "trigger",
                json!({"type": "string", "enum": ["scheduled", "manual", "test"]}),
            ),
            ("status_code", nullable(uint())),
            ("error", nullable(string())),
            ("latency_ms", uint()),
            (
                "response_body",
                described(string(), "The first 4 KiB of the receiver's answer"),
            ),
        ],
        &[
            "number",
            "at",
            "trigger",
            "status_code",
            "error",
            "latency_ms",
            "response_body",
        ],
    );
    let entries: Vec<(&str, Value)> = vec![
        // Requests.
        (
            "TenantCreate",
            object(
                vec![
                    (
                        "id",
                        described(nullable(tenant_id()), "Generated when absent"),
                    ),
                    ("name", text(200)),
                ],
                &["name"],
            ),
        ),
        (
            "ApiKeyCreate",
            object(
                vec![
                    ("tenant", tenant_id()),
                    ("name", text(200)),
                    ("scopes", scopes()),
                ],
                &["tenant", "name", "scopes"],
            ),
        ),
        (
            "EventTypeCreate",
            object(
                vec![
                    (
                        "name",
                        json!({
                            "type": "string",
                            "pattern": format!("^[A-Za-z0-9_.:-]{{1,{MAX_EVENT_TYPE_LEN}}}$"),
                            "description": "Not `all`, not starting with `hookbox.`",
                        }),
                    ),
                    (
                        "description",
                        nullable(json!({"type": "string", "maxLength": MAX_DESCRIPTION_LEN})),
                    ),
                    (
                        "schema",
                        described(
                            nullable(json!({"type": "object"})),
                            "A JSON Schema for the payload (stored, not enforced)",
                        ),
                    ),
                ],
                &["name"],
            ),
        ),
        ("OAuthRequest", oauth_request()),
        ("WebhookCreate", webhook_request(true)),
        ("WebhookPatch", webhook_request(false)),
        (
            "Rotate",
            object(
                vec![
                    (
                        "secret",
                        described(
                            nullable(signing_secret()),
                            "The new secret; generated when absent",
                        ),
                    ),
                    ("grace_seconds", {
                        let mut g = nullable(integer(0, MAX_GRACE_SECONDS));
                        g["default"] = json!(DEFAULT_GRACE_SECONDS);
                        g["description"] =
                            json!("How long the previous secret keeps signing; 0 drops it now");
                        g
                    }),
                ],
                &[],
            ),
        ),
        ("TestEvent", {
            let ty = described(string(), "A name in the catalogue (or `hookbox.*`)");
            let mut s = object(
                vec![
                    ("event_type", ty.clone()),
                    ("eventType", alias(&ty, "event_type")),
                    ("message", nullable(text(1024))),
                ],
                &[],
            );
            s["anyOf"] = one_of_names(&["event_type", "eventType"]);
            s
        }),
        (
            "Recover",
            object(
                vec![(
                    "since",
                    described(
                        timestamp(),
                        "Deliveries created at or after this time; not in the future",
                    ),
                )],
                &["since"],
            ),
        ),
        ("EventCreate", event_create()),
        ("EventBatch", event_batch()),
        // Responses.
        (
            "Tenant",
            object(
                vec![
                    ("id", string()),
                    ("name", string()),
                    ("created_at", timestamp()),
                ],
                &["id", "name", "created_at"],
            ),
        ),
        ("TenantList", list("Tenant")),
        ("ApiKey", api_key(false)),
        ("ApiKeyCreated", api_key(true)),
        ("ApiKeyList", list("ApiKey")),
        (
            "EventType",
            object(
                vec![
                    ("name", string()),
                    ("description", nullable(string())),
                    ("schema", nullable(json!({"type": "object"}))),
                    ("created_at", timestamp()),
                ],
                &["name", "description", "schema", "created_at"],
            ),
        ),
        ("EventTypeList", list("EventType")),
        ("Webhook", webhook()),
        ("WebhookList", list("Webhook")),
        (
            "WebhookSecrets",
            object(
                vec![(
                    "secrets",
                    described(strings(), "The active signing secrets, current first"),
                )],
                &["secrets"],
            ),
        ),
        (
            "IngestAccepted",
            object(
                vec![
                    ("id", string()),
                    (
                        "deliveries",
                        described(uint(), "How many deliveries were created"),
                    ),
                ],
                &["id", "deliveries"],
            ),
        ),
        (
            "BatchAccepted",
            object(
                vec![(
                    "data",
                    array(object(
                        vec![
                            ("id", string()),
                            ("deliveries", uint()),
                            (
                                "replayed",
                                described(
                                    boolean(),
                                    "True when the idempotency key matched a stored event",
                                ),
                            ),
                        ],
                        &["id", "deliveries", "replayed"],
                    )),
                )],
                &["data"],
            ),
        ),
        (
            "Recovered",
            object(vec![("requeued", uint())], &["requeued"]),
        ),
        ("Event", object(event_props(), EVENT_REQUIRED)),
        (
            "EventDetail",
            object(
                with(event_props(), ("deliveries", array(r("Delivery")))),
                &required_plus(EVENT_REQUIRED, "deliveries"),
            ),
        ),
        ("EventList", list("Event")),
        (
            "Delivery",
            object(
                delivery_props(described(uint(), "How many attempts were made")),
                DELIVERY_REQUIRED,
            ),
        ),
        (
            "DeliveryDetail",
            object(delivery_props(array(r("Attempt"))), DELIVERY_REQUIRED),
        ),
        (
            "DeliveryRetried",
            object(
                with(delivery_props(uint()), ("attempt", r("Attempt"))),
                &required_plus(DELIVERY_REQUIRED, "attempt"),
            ),
        ),
        ("DeliveryList", list("Delivery")),
        ("Attempt", attempt),
        ("Error", error()),
        (
            "Health",
            object(
                vec![("status", json!({"type": "string", "enum": ["ok"]}))],
                &["status"],
            ),
        ),
        (
            "Ready",
            object(
                vec![
                    (
                        "status",
                        json!({"type": "string", "enum": ["ready", "unready"]}),
                    ),
                    ("reason", string()),
                ],
                &["status"],
            ),
        ),
        (
            "OpenApi",
            json!({"type": "object", "description": "An OpenAPI 3.1 document"}),
        ),
    ];
    entries
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// Query parameters shared by the operations that take them.
fn parameters() -> Value {
    json!({
        "limit": {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}},
        "cursor": {"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "`next_cursor` of the previous page"},
        "status": {"name": "status", "in": "query", "schema": {"type": "string", "enum": ["pending", "succeeded", "failed", "exhausted", "cancelled"]}},
        "type": {"name": "type", "in": "query", "schema": {"type": "string"}, "description": "Only events of this type"},
        "since": {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}, "description": "Only events created at or after this time"},
        "tenant": {"name": "tenant", "in": "query", "schema": {"type": "string"}, "description": "Only this tenant's keys"},
    })
}

fn json_content(schema: &str) -> Value {
    json!({"application/json": {"schema": r(schema)}})
}

fn status_text(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted (durable)",
        204 => "No content",
        _ => "Success",
    }
}

/// One operation object.
fn operation(o: &Operation) -> Value {
    let mut responses = Map::new();
    let success = match o.response {
        Json(schema) => {
            json!({"description": status_text(o.status), "content": json_content(schema)})
        }
        Empty => json!({"description": status_text(o.status)}),
        Text => json!({
            "description": status_text(o.status),
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }),
    };
    responses.insert(o.status.to_string(), success);
    if o.path == "/v1/events" && o.method == "post" {
        responses.insert(
            "200".to_owned(),
            json!({
                "description": "An idempotent replay: the stored event, nothing new delivered",
                "content": json_content("IngestAccepted"),
            }),
        );
    }
    if o.path.starts_with("/v1/") {
        for (status, _) in V1_ERRORS {
            responses.insert(
                status.to_string(),
                json!({"$ref": format!("#/components/responses/E{status}")}),
            );
        }
    } else if o.path == "/readyz" {
        responses.insert(
            "503".to_owned(),
            json!({"description": "Not ready, with the reason", "content": json_content("Ready")}),
        );
    }
    if !o.path.starts_with("/v1/") {
        responses.insert(
            "405".to_owned(),
            json!({"$ref": "#/components/responses/E405"}),
        );
    }
    let mut op = json!({
        "operationId": format!("{}{}", o.method, o.path.replace(['/', '{', '}', '-', '.'], "_")),
        "summary": o.summary,
        "responses": responses,
    });
    if o.scope.is_empty() {
        op["security"] = json!([]);
    } else {
        op["x-scope"] = json!(o.scope);
    }
    let mut params: Vec<Value> = Vec::new();
    if let Some(start) = o.path.find('{') {
        let name = o.path[start + 1..].split('}').next().unwrap_or("id");
        params.push(
            json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}),
        );
    }
    for q in o.query {
        params.push(json!({"$ref": format!("#/components/parameters/{q}")}));
    }
    if o.path == "/v1/events" && o.method == "post" {
        params.push(json!({
            "name": "Idempotency-Key", "in": "header",
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY_LEN},
            "description": "Same as the body's idempotency_key",
        }));
    }
    if !o.scope.is_empty() && o.scope != "admin" {
        params.push(json!({
            "name": "X-Tenant-Id", "in": "header", "schema": {"type": "string"},
            "description": "With the admin token: the tenant to act for (aliases organization-id, TENANT)",
        }));
    }
    if !params.is_empty() {
        op["parameters"] = json!(params);
    }
    if let Some(schema) = o.request {
        op["requestBody"] = json!({
            "required": schema != "Rotate",
            "content": json_content(schema),
        });
    }
    op
}

/// The OpenAPI document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for o in OPERATIONS {
        let entry = paths
            .entry(o.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[o.method] = operation(o);
    }
    let mut responses = Map::new();
    for (status, description) in V1_ERRORS {
        responses.insert(
            format!("E{status}"),
            json!({"description": description, "content": json_content("Error")}),
        );
    }
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "hookbox",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "An embedded webhook gateway: ingest events, deliver them signed (Standard Webhooks) with retries.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API key (hbk_...) or the admin token"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "API-KEY", "description": "The seed spelling of the bearer key"},
            },
            "parameters": parameters(),
            "responses": responses,
            "schemas": schemas(),
        },
        "security": [{"bearer": []}, {"apiKey": []}],
    })
}

#[cfg(test)]
mod tests {
    use super::super::router::Route;
    use super::*;

    /// A concrete path for a template: `{id}` and `{name}` become `x1`.
    fn concrete(template: &str) -> String {
        template.replace("{id}", "x1").replace("{name}", "x1")
    }

    #[test]
    fn every_route_is_documented_and_every_documented_route_exists() {
        for o in OPERATIONS {
            if !o.path.starts_with("/v1/") {
                continue;
            }
            let path = concrete(o.path);
            let route = Route::parse(&path).unwrap_or_else(|| panic!("{} is not routed", o.path));
            let m: http::Method = o.method.to_uppercase().parse().unwrap();
            assert!(
                route.allowed().contains(&m),
                "{} {} not allowed by router",
                o.method,
                o.path
            );
        }
        let doc = document();
        // One sample per path shape the router knows (aliases included).
        let samples = [
            "/v1/tenants",
            "/v1/tenants/x1",
            "/v1/api-keys",
            "/v1/api-keys/x1",
            "/v1/event-types",
            "/v1/event-types/x1",
            "/v1/webhooks",
            "/v1/webhooks/x1",
            "/v1/webhooks/x1/secrets",
            "/v1/webhooks/x1/secrets/rotate",
            "/v1/webhooks/x1/test",
            "/v1/webhooks/x1/test-event",
            "/v1/webhooks/x1/deliveries",
            "/v1/webhooks/x1/recover",
            "/v1/events",
            "/v1/events/batch",
            "/v1/events/x1",
            "/v1/deliveries/x1",
            "/v1/deliveries/x1/retry",
        ];
        let paths = doc["paths"].as_object().unwrap();
        for path in samples {
            let route = Route::parse(path).expect("sample parses");
            let template = paths
                .keys()
                .find(|t| concrete(t) == path)
                .unwrap_or_else(|| panic!("{path} is routed but not documented"));
            for m in route.allowed() {
                let key = m.as_str().to_lowercase();
                assert!(
                    doc["paths"][template][&key].is_object(),
                    "{key} {template} is routed but not documented"
                );
            }
        }
        // And the documented /v1 paths are exactly the sampled ones.
        let documented = paths.keys().filter(|p| p.starts_with("/v1/")).count();
        assert_eq!(documented, samples.len());
    }

    #[test]
    fn success_codes_follow_the_method() {
        for o in OPERATIONS {
            let want = match (o.method, o.path) {
                ("delete", _) => 204,
                ("post", "/v1/events" | "/v1/events/batch") => 202,
                ("post", p) if p.ends_with("/recover") => 202,
                ("post", "/v1/tenants" | "/v1/api-keys" | "/v1/event-types" | "/v1/webhooks") => {
                    201
                }
                _ => 200,
            };
            assert_eq!(o.status, want, "{} {}", o.method, o.path);
            assert_eq!(o.status == 204, o.response == Body::Empty);
        }
    }

    #[test]
    fn every_reference_names_a_schema() {
        let schemas = schemas();
        for o in OPERATIONS {
            for name in o.request.into_iter().chain(match o.response {
                Json(n) => Some(n),
                _ => None,
            }) {
                assert!(schemas.contains_key(name), "{name} is not a schema");
            }
        }
    }
}
