//! Profile `webhook-subscriptions` (seed 003, a validation/donation API):
//! `POST /v1/webhook-subscriptions` `{events, url}` (https only, whatever the
//! deployment allows elsewhere) -> 200 `{"data": {id, events, url, secret,
//! createdAt, updatedAt, deletedAt}, "object": "webhook_subscription"}`; `GET` (a
//! bare array of those envelopes), `GET`/`DELETE .../{id}` (soft delete: the
//! envelope with `deletedAt`). Errors are hookbox's shape, which is seed 003's. A
//! thin mapping onto `webhooks.rs`; it never validates or stores anything itself.

use std::future::ready;

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
use crate::model::{self, Scope::WebhooksRead, Scope::WebhooksWrite};

/// The fields seed 003 documents.
const CREATE_FIELDS: &[&str] = &["events", "url"];

/// The profile.
pub(super) static PROFILE: Profile = Profile {
    which: ApiProfile::WebhookSubscriptions,
    seeds: "003",
    style: ErrorStyle::Hookbox,
    tenant_header: "X-Tenant-Id",
    routes: &[
        route!(POST "/v1/webhook-subscriptions", Tenant(WebhooksWrite),
            "Create a webhook subscription (https only); the answer shows its secret (seed 003)",
            json::<SubscriptionCreate>(), OK, Json(wire::<SubscriptionEnvelope>()), errors SEMANTIC,
            |c| Box::pin(create(c))),
        route!(GET "/v1/webhook-subscriptions", Tenant(WebhooksRead),
            "List webhook subscriptions, secrets masked (seed 003)", None, OK,
            Json(wire::<SubscriptionList>()), |c| Box::pin(ready(list(c)))),
        route!(GET "/v1/webhook-subscriptions/{id}", Tenant(WebhooksRead),
            "Read a webhook subscription, secret masked (seed 003)", None, OK,
            Json(wire::<SubscriptionEnvelope>()), |c| Box::pin(ready(get(c)))),
        route!(DELETE "/v1/webhook-subscriptions/{id}", Tenant(WebhooksWrite),
            "Soft-delete a webhook subscription; answers it with deletedAt (seed 003)", None, OK,
            Json(wire::<SubscriptionEnvelope>()), |c| Box::pin(delete(c))),
    ],
};

/// `POST /v1/webhook-subscriptions` (seed 003).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionCreate {
    /// Events to subscribe to (catalogued names, `*` or `prefix.*`).
    #[schema(schema_with = rq::event_types)]
    pub events: Vec<String>,
    /// Where notifications are sent; https only.
    #[schema(schema_with = rq::url)]
    pub url: String,
}

/// A subscription as seed 003 shows it.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Subscription<'a> {
    pub id: &'a str,
    pub events: &'a [String],
    pub url: &'a str,
    /// The signing secret in the create answer, `"****"` elsewhere.
    pub secret: &'a str,
    #[schema(schema_with = dto::timestamp)]
    pub created_at: String,
    #[schema(schema_with = dto::timestamp)]
    pub updated_at: String,
    /// When it was deleted; `null` while it is live.
    #[schema(required = true, schema_with = dto::timestamp_or_null)]
    pub deleted_at: Option<String>,
}

/// `{"data": <subscription>, "object": "webhook_subscription"}`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionEnvelope<'a> {
    pub data: Subscription<'a>,
    /// Always `"webhook_subscription"`.
    pub object: &'static str,
}

impl<'a> SubscriptionEnvelope<'a> {
    fn new(w: &'a model::Webhook, reveal: bool) -> Self {
        let secret = w.active_secrets(model::now_ms()).next();
        SubscriptionEnvelope {
            data: Subscription {
                id: &w.id,
                events: &w.event_types,
                url: &w.url,
                secret: secret.map_or(dto::MASK, |s| dto::shown(s, reveal)),
                created_at: model::rfc3339(w.created_at),
                updated_at: model::rfc3339(w.updated_at),
                deleted_at: w.deleted_at.map(model::rfc3339),
            },
            object: "webhook_subscription",
        }
    }
}

/// `GET /v1/webhook-subscriptions`: a bare array of envelopes.
#[derive(Serialize, ToSchema)]
#[serde(transparent)]
pub struct SubscriptionList<'a>(pub Vec<SubscriptionEnvelope<'a>>);

async fn create(call: &Call<'_>) -> Reply {
    let tenant = call.tenant()?;
    let mut own = Vec::new();
    let body = seed_fields(call.json()?, CREATE_FIELDS, &mut own);
    // The seed's rule: https only, even where the deployment allows http.
    let spec = merge(own, webhooks::check_create(call, &tenant, &body, true))?;
    let w = webhooks::insert(call, tenant, spec, signer::generate_secret).await?;
    ok(&SubscriptionEnvelope::new(&w, true))
}

fn list(call: &Call<'_>) -> Reply {
    let tenant = call.tenant()?;
    let all = webhooks::all(call, &tenant);
    let items = all
        .iter()
        .map(|w| SubscriptionEnvelope::new(w, false))
        .collect();
    ok(&SubscriptionList(items))
}

fn get(call: &Call<'_>) -> Reply {
    let tenant = call.tenant()?;
    let w = webhooks::owned(call, &tenant, call.id())?;
    ok(&SubscriptionEnvelope::new(&w, false))
}

async fn delete(call: &Call<'_>) -> Reply {
    let tenant = call.tenant()?;
    let w = webhooks::remove(call, tenant, call.id()).await?;
    ok(&SubscriptionEnvelope::new(&w, false))
}
