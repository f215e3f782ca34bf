//! Profile `facility-webhooks` (seed 004, a staffing marketplace):
//! `POST /api/v2/public/webhooks/facility` `{url, events (may include "all"),
//! facilities?, secrets? (0..2 plain)}` -> 201 `{"data": {id, url, events,
//! clientId, facilities, secrets}}`; `GET` (list), `GET`/`DELETE .../{id}`. Errors
//! in seed 004's NestJS shape. Its secrets are plain strings (16 to 64 printable
//! ASCII characters), generated as 32 alphanumerics when absent; the signer uses
//! their UTF-8 bytes as the HMAC key. A thin mapping onto `webhooks.rs`: besides
//! the plain-secret rule it never validates or stores anything itself.

use std::future::ready;

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::schema::{Array, ArrayBuilder, ObjectBuilder, Type};

use super::{Profile, merge, seed_fields};
use crate::api::error::ErrorStyle;
use crate::api::routes::Access::Tenant;
use crate::api::routes::Body::{Empty, Json};
use crate::api::routes::{SEMANTIC, json, route, wire};
use crate::api::validate::MAX_SECRETS;
use crate::api::{Call, Reply, dto, no_content, ok, reply, requests as rq, webhooks};
use crate::config::ApiProfile;
use crate::delivery::signer::{self, SECRET_PREFIX};
use crate::model::{self, Scope::WebhooksRead, Scope::WebhooksWrite, Secret};

/// The fields seed 004 documents.
const CREATE_FIELDS: &[&str] = &["url", "events", "facilities", "secrets"];
/// Shortest and longest plain secret, in characters.
const PLAIN_LEN: std::ops::RangeInclusive<usize> = 16..=64;

/// The profile.
pub(super) static PROFILE: Profile = Profile {
    which: ApiProfile::FacilityWebhooks,
    seeds: "004",
    style: ErrorStyle::Nest,
    tenant_header: "X-Tenant-Id",
    routes: &[
        route!(POST "/api/v2/public/webhooks/facility", Tenant(WebhooksWrite),
            "Create a webhook for facilities; the answer shows its secrets (seed 004)",
            json::<FacilityWebhookCreate>(), CREATED, Json(wire::<FacilityWebhookData>()),
            errors SEMANTIC, |c| Box::pin(create(c))),
        route!(GET "/api/v2/public/webhooks/facility", Tenant(WebhooksRead),
            "List facility webhooks, secrets masked (seed 004)", None, OK,
            Json(wire::<FacilityWebhookList>()), |c| Box::pin(ready(list(c)))),
        route!(GET "/api/v2/public/webhooks/facility/{id}", Tenant(WebhooksRead),
            "Read a facility webhook, secrets masked (seed 004)", None, OK,
            Json(wire::<FacilityWebhookData>()), |c| Box::pin(ready(get(c)))),
        route!(DELETE "/api/v2/public/webhooks/facility/{id}", Tenant(WebhooksWrite),
            "Delete a facility webhook (seed 004)", None, NO_CONTENT, Empty,
            |c| Box::pin(delete(c))),
    ],
};

/// A plain secret: 16 to 64 printable ASCII characters. One starting with
/// `whsec_` is a semantic 400 (said in the description, not the pattern: a
/// look-ahead is beyond some schema tools' regex engines).
fn plain_secrets() -> Array {
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(*PLAIN_LEN.start()))
                .max_length(Some(*PLAIN_LEN.end()))
                .pattern(Some("^[\\x20-\\x7e]+$"))
                .build(),
        )
        .max_items(Some(MAX_SECRETS))
        .unique_items(true)
        .description(Some(
            "Plain secrets, current first; 32 random letters and digits are generated \
             when none is given. Receivers use the secret's UTF-8 bytes as the HMAC key. \
             A value starting with `whsec_` is refused (400): use /v1/webhooks for those.",
        ))
        .build()
}

/// `POST /api/v2/public/webhooks/facility` (seed 004).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FacilityWebhookCreate {
    /// The URL called when an event is triggered.
    #[schema(schema_with = rq::url)]
    pub url: String,
    /// Events to listen to; `all` means every event.
    #[schema(schema_with = rq::event_types)]
    pub events: Vec<String>,
    /// Facility ids: events must carry one of them; none means every facility.
    #[schema(schema_with = rq::channels)]
    pub facilities: Option<Vec<String>>,
    #[schema(schema_with = plain_secrets)]
    pub secrets: Option<Vec<String>>,
}

/// A facility webhook as seed 004 shows it.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FacilityWebhook<'a> {
    pub id: &'a str,
    pub url: &'a str,
    /// `all` stands for every event.
    pub events: Vec<&'a str>,
    /// The tenant.
    pub client_id: &'a str,
    pub facilities: &'a [String],
    /// The plain secrets in the create answer, `"****"` elsewhere.
    pub secrets: Vec<&'a str>,
}

impl<'a> FacilityWebhook<'a> {
    fn new(w: &'a model::Webhook, reveal: bool) -> Self {
        FacilityWebhook {
            id: &w.id,
            url: &w.url,
            events: w
                .event_types
                .iter()
                .map(|e| if e == "*" { "all" } else { e.as_str() })
                .collect(),
            client_id: &w.tenant,
            facilities: &w.channels,
            secrets: w
                .active_secrets(model::now_ms())
                .map(|s| dto::shown(s, reveal))
                .collect(),
        }
    }
}

/// `{"data": <webhook>}`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FacilityWebhookData<'a> {
    pub data: FacilityWebhook<'a>,
}

/// `{"data": [<webhook>, ...]}`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FacilityWebhookList<'a> {
    pub data: Vec<FacilityWebhook<'a>>,
}

/// Seed 004's own rule: takes `secrets` (absent or null: none) out of the body,
/// so `/v1`'s checks never see it, and checks it, pushing every reason. A value
/// that starts with `whsec_` is refused: in hookbox that prefix marks a base64
/// Standard Webhooks secret, so the platform's receivers (which use the UTF-8
/// bytes) would not verify what hookbox signs with it.
fn take_plain_secrets(body: &mut Value, r: &mut Vec<String>) -> Vec<Secret> {
    let items = match body.as_object_mut().and_then(|map| map.remove("secrets")) {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => {
            r.push("secrets must be an array".to_owned());
            return Vec::new();
        }
    };
    if items.len() > MAX_SECRETS {
        r.push(format!(
            "secrets must contain no more than {MAX_SECRETS} elements"
        ));
    }
    let mut out: Vec<Secret> = Vec::new();
    for (i, item) in items.iter().enumerate().take(MAX_SECRETS + 8) {
        let name = format!("secrets[{i}]");
        let Some(s) = item.as_str() else {
            r.push(format!("{name} must be a string"));
            continue;
        };
        let before = r.len();
        if !PLAIN_LEN.contains(&s.chars().count()) {
            r.push(format!(
                "{name} must be {} to {} characters long",
                PLAIN_LEN.start(),
                PLAIN_LEN.end()
            ));
        }
        if !s.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            r.push(format!(
                "{name} must contain only printable ASCII characters"
            ));
        }
        if s.starts_with(SECRET_PREFIX) {
            r.push(format!(
                "{name} must not start with \"{SECRET_PREFIX}\" (that marks a base64 Standard \
                 Webhooks secret: register it through /v1/webhooks, or send a plain secret)"
            ));
        }
        if r.len() == before {
            let secret = Secret::new(s);
            if out.contains(&secret) {
                r.push("secrets must not contain the same secret twice".to_owned());
            } else {
                out.push(secret);
            }
        }
    }
    out
}

async fn create(call: &Call<'_>) -> Reply {
    let tenant = call.tenant()?;
    let mut own = Vec::new();
    let mut body = seed_fields(call.json()?, CREATE_FIELDS, &mut own);
    // The plain secrets are this profile's own rule; the rest is `/v1`'s.
    let secrets = take_plain_secrets(&mut body, &mut own);
    let mut spec = merge(own, webhooks::check_create(call, &tenant, &body, false))?;
    spec.secrets = secrets;
    let w = webhooks::insert(call, tenant, spec, signer::generate_plain_secret).await?;
    let data = FacilityWebhook::new(&w, true);
    reply(StatusCode::CREATED, &FacilityWebhookData { data })
}

fn list(call: &Call<'_>) -> Reply {
    let tenant = call.tenant()?;
    let all = webhooks::all(call, &tenant);
    let data = all.iter().map(|w| FacilityWebhook::new(w, false)).collect();
    ok(&FacilityWebhookList { data })
}

fn get(call: &Call<'_>) -> Reply {
    let tenant = call.tenant()?;
    let w = webhooks::owned(call, &tenant, call.id())?;
    let data = FacilityWebhook::new(&w, false);
    ok(&FacilityWebhookData { data })
}

async fn delete(call: &Call<'_>) -> Reply {
    let tenant = call.tenant()?;
    webhooks::remove(call, tenant, call.id()).await?;
    Ok(no_content())
}

#[cfg(test)]
#[path = "facility_webhooks_tests.rs"]
mod tests;
