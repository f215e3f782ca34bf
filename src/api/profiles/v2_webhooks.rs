//! Profile `v2-webhooks` (seeds 000 and 001, a credentialing platform):
//! `POST /v2/webhooks` -> 201 `{"id"}`, `GET /v2/webhooks` -> a bare array with
//! `organization_id` and masked secrets, `DELETE /v2/webhooks` with a body `{"id"}`
//! -> 204, `POST /v2/webhooks/{webhookId}/test-event` -> `{"message": "Test event
//! sent successfully"}`. A thin mapping onto `webhooks.rs`; it never validates,
//! stores or sends anything itself.

use std::collections::BTreeMap;
use std::future::ready;

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::{Profile, merge, seed_fields};
use crate::api::error::{ApiError, ErrorStyle};
use crate::api::routes::Access::Tenant;
use crate::api::routes::Body::{Empty, Json};
use crate::api::routes::{SEMANTIC, json, route, wire};
use crate::api::{Call, Reply, dto, no_content, ok, reply, requests as rq, webhooks};
use crate::config::ApiProfile;
use crate::delivery::signer;
use crate::model::{self, Scope::WebhooksRead, Scope::WebhooksWrite};

/// The register fields seed 000 documents.
const CREATE_FIELDS: &[&str] = &[
    "url",
    "event_types",
    "description",
    "headers",
    "oauth_configuration",
];
/// The test-event fields seed 001 documents.
const TEST_FIELDS: &[&str] = &["message", "eventType"];
/// A test event can also be refused by the receiver (502, with the reason).
const TEST_ERRORS: &[u16] = &[400, 502];

/// The profile.
pub(super) static PROFILE: Profile = Profile {
    which: ApiProfile::V2Webhooks,
    seeds: "000, 001",
    style: ErrorStyle::Hookbox,
    tenant_header: "organization-id",
    routes: &[
        route!(POST "/v2/webhooks", Tenant(WebhooksWrite),
            "Register a webhook for credentialing events (seed 000)", json::<V2WebhookCreate>(),
            CREATED, Json(wire::<V2Created>()), errors SEMANTIC, |c| Box::pin(create(c))),
        route!(GET "/v2/webhooks", Tenant(WebhooksRead),
            "Retrieve all registered webhooks, secrets masked (seed 001)", None, OK,
            Json(wire::<V2WebhookList>()), |c| Box::pin(ready(list(c)))),
        route!(DELETE "/v2/webhooks", Tenant(WebhooksWrite),
            "Remove a registered webhook named in the body (seed 001)", json::<V2WebhookDelete>(),
            NO_CONTENT, Empty, |c| Box::pin(delete(c))),
        route!(POST "/v2/webhooks/{webhookId}/test-event", Tenant(WebhooksWrite),
            "Send a test event to a registered webhook now (seed 001)", json::<V2TestEvent>(), OK,
            Json(wire::<V2TestSent>()), errors TEST_ERRORS, |c| Box::pin(test_event(c))),
    ],
};

/// `POST /v2/webhooks` (seed 000).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct V2WebhookCreate {
    /// Callback URL to which data should be posted.
    #[schema(schema_with = rq::url)]
    pub url: String,
    /// Event types that trigger a post (catalogued names, `*` or `prefix.*`).
    #[schema(schema_with = rq::event_types)]
    pub event_types: Vec<String>,
    /// Title/description of the webhook.
    #[schema(schema_with = rq::description)]
    pub description: Option<String>,
    /// Static headers sent with every delivery.
    #[schema(schema_with = rq::headers)]
    pub headers: Option<BTreeMap<String, String>>,
    /// OAuth2 client credentials (`token_url`, `client_id`, `client_secret`,
    /// `scope?`, `headers?`).
    #[schema(schema_with = rq::oauth)]
    pub oauth_configuration: Option<rq::OAuthRequest>,
}

/// The register answer: the new webhook's id.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct V2Created<'a> {
    pub id: &'a str,
}

/// One webhook as seed 001 lists it; header values and the OAuth client secret are
/// `"****"`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct V2Webhook<'a> {
    pub id: &'a str,
    /// The tenant.
    pub organization_id: &'a str,
    pub url: &'a str,
    pub event_types: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    /// Values are `"****"`.
    pub headers: BTreeMap<&'a str, &'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth_configuration: Option<dto::OAuth<'a>>,
    #[schema(schema_with = dto::timestamp)]
    pub created_at: String,
}

impl<'a> V2Webhook<'a> {
    fn new(w: &'a model::Webhook) -> Self {
        V2Webhook {
            id: &w.id,
            organization_id: &w.tenant,
            url: &w.url,
            event_types: &w.event_types,
            description: w.description.as_deref(),
            headers: dto::headers(&w.headers, false),
            oauth_configuration: w.oauth.as_ref().map(|o| dto::OAuth::new(o, false)),
            created_at: model::rfc3339(w.created_at),
        }
    }
}

/// `GET /v2/webhooks`: a bare array.
#[derive(Serialize, ToSchema)]
#[serde(transparent)]
pub struct V2WebhookList<'a>(pub Vec<V2Webhook<'a>>);

/// `DELETE /v2/webhooks`: the webhook to remove.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct V2WebhookDelete {
    /// The id `POST /v2/webhooks` returned.
    #[schema(min_length = 1)]
    pub id: String,
}

/// `POST /v2/webhooks/{webhookId}/test-event`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct V2TestEvent {
    /// Put in the test event's payload.
    #[schema(schema_with = rq::client_text)]
    pub message: String,
    /// A catalogued event type.
    #[schema(schema_with = rq::event_type_name)]
    #[serde(rename = "eventType")]
    pub event_type: String,
}

/// The test-event answer when the receiver accepted it.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct V2TestSent {
    /// `"Test event sent successfully"`.
    pub message: &'static str,
}

async fn create(call: &Call<'_>) -> Reply {
    let tenant = call.tenant()?;
    let mut own = Vec::new();
    let body = seed_fields(call.json()?, CREATE_FIELDS, &mut own);
    let spec = merge(own, webhooks::check_create(call, &tenant, &body, false))?;
    let w = webhooks::insert(call, tenant, spec, signer::generate_secret).await?;
    reply(StatusCode::CREATED, &V2Created { id: &w.id })
}

fn list(call: &Call<'_>) -> Reply {
    let tenant = call.tenant()?;
    let all = webhooks::all(call, &tenant);
    let items = all.iter().map(|w| V2Webhook::new(w)).collect();
    ok(&V2WebhookList(items))
}

async fn delete(call: &Call<'_>) -> Reply {
    let tenant = call.tenant()?;
    let id = body_id(&call.json()?).map_err(ApiError::invalid)?;
    webhooks::remove(call, tenant, &id).await?;
    Ok(no_content())
}

/// The `id` of a delete body, or every reason it is wrong.
fn body_id(body: &Value) -> Result<String, Vec<String>> {
    let mut r = Vec::new();
    let body = seed_fields(body.clone(), &["id"], &mut r);
    match body.get("id") {
        _ if !body.is_object() => r.push("request body must be a JSON object".to_owned()),
        None | Some(Value::Null) => r.push("id is required".to_owned()),
        Some(Value::String(s)) if s.is_empty() => r.push("id must not be empty".to_owned()),
        Some(Value::String(s)) if r.is_empty() => return Ok(s.clone()),
        Some(Value::String(_)) => {}
        Some(_) => r.push("id must be a string".to_owned()),
    }
    Err(r)
}

async fn test_event(call: &Call<'_>) -> Reply {
    let tenant = call.tenant()?;
    webhooks::owned(call, &tenant, call.id())?;
    let mut own = Vec::new();
    let body = seed_fields(call.json()?, TEST_FIELDS, &mut own);
    if body.is_object() && body.get("message").is_none_or(Value::is_null) {
        own.push("message is required".to_owned());
    }
    let spec = merge(own, webhooks::check_test(call, &tenant, &body))?;
    let attempt = webhooks::send_test(call, &tenant, call.id(), &spec).await?;
    match (attempt.status, &attempt.error) {
        (Some(status), _) if (200..300).contains(&status) => ok(&V2TestSent {
            message: "Test event sent successfully",
        }),
        (Some(status), _) => Err(ApiError::bad_gateway(format!(
            "Test event was not accepted: the receiver answered {status}"
        ))),
        (None, error) => Err(ApiError::bad_gateway(format!(
            "Test event was not delivered: {}",
            error.as_deref().unwrap_or("no answer")
        ))),
    }
}

#[cfg(test)]
#[path = "v2_webhooks_tests.rs"]
mod tests;
