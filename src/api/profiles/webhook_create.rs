//! Profile `webhook-create` (seed 002, a practice-management API):
//! `POST /v1/webhook/create` with the `TENANT` and `API-KEY` headers,
//! `{url, subscriptions, notificationEmail?}` -> 200 `{id, url, subscriptions,
//! notificationEmail, secret, createdDate, updatedDate}`. A thin mapping onto
//! `webhooks.rs`; it never validates or stores anything itself.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Profile, merge, seed_fields};
use crate::api::error::ErrorStyle;
use crate::api::routes::Access::Tenant;
use crate::api::routes::Body::Json;
use crate::api::routes::{SEMANTIC, json, route, wire};
use crate::api::{Call, Reply, dto, ok, requests as rq, webhooks};
use crate::config::ApiProfile;
use crate::delivery::signer;
use crate::model::{self, Scope::WebhooksWrite};

/// The fields seed 002 documents.
const CREATE_FIELDS: &[&str] = &["url", "subscriptions", "notificationEmail"];

/// The profile.
pub(super) static PROFILE: Profile = Profile {
    which: ApiProfile::WebhookCreate,
    seeds: "002",
    style: ErrorStyle::Hookbox,
    tenant_header: "TENANT",
    routes: &[route!(POST "/v1/webhook/create", Tenant(WebhooksWrite),
        "Create a new webhook for the tenant; the answer shows its secret (seed 002)",
        json::<WebhookCreateRequest>(), OK, Json(wire::<CreatedWebhook>()), errors SEMANTIC,
        |c| Box::pin(create(c)))],
};

/// `POST /v1/webhook/create` (seed 002).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookCreateRequest {
    /// The URL where the webhook will send notifications.
    #[schema(schema_with = rq::url)]
    pub url: String,
    /// Event types the webhook subscribes to (catalogued names, `*` or `prefix_*`).
    #[schema(schema_with = rq::event_types)]
    pub subscriptions: Vec<String>,
    /// Where delivery-failure notifications go.
    #[schema(schema_with = rq::email)]
    #[serde(rename = "notificationEmail")]
    pub notification_email: Option<String>,
}

/// The created webhook, with its signing secret (shown only here and through
/// `GET /v1/webhooks/{id}/secrets`).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreatedWebhook<'a> {
    pub id: &'a str,
    pub url: &'a str,
    pub subscriptions: &'a [String],
    #[schema(required = true)]
    pub notification_email: Option<&'a str>,
    /// The Standard Webhooks signing secret (`whsec_...`).
    pub secret: &'a str,
    #[schema(schema_with = dto::timestamp)]
    pub created_date: String,
    #[schema(required = true, schema_with = dto::timestamp_or_null)]
    pub updated_date: Option<String>,
}

async fn create(call: &Call<'_>) -> Reply {
    let tenant = call.tenant()?;
    let mut own = Vec::new();
    let body = seed_fields(call.json()?, CREATE_FIELDS, &mut own);
    let spec = merge(own, webhooks::check_create(call, &tenant, &body, false))?;
    let w = webhooks::insert(call, tenant, spec, signer::generate_secret).await?;
    let now = model::now_ms();
    let secret = w.active_secrets(now).next().map_or("", |s| s.expose());
    ok(&CreatedWebhook {
        id: &w.id,
        url: &w.url,
        subscriptions: &w.event_types,
        notification_email: w.notification_email.as_deref(),
        secret,
        created_date: model::rfc3339(w.created_at),
        updated_date: Some(model::rfc3339(w.updated_at)),
    })
}
