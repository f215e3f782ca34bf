//! Webhook handlers: register, list, read, update, soft delete, reveal and rotate
//! secrets, and send a test event. Every change is a read-modify-write of the stored
//! record inside the store's writer job (`Store::update_webhook`), conditional on
//! `If-Match`; handlers read the registry but never write it.

use std::sync::Arc;

use http::StatusCode;

use super::error::ApiError;
use super::router::{IfMatch, with_etag};
use super::{Call, Reply, dto, json_response, no_content, ok, validate};
use crate::delivery::signer;
use crate::delivery::ssrf::Guard;
use crate::model::{Secret, SigningSecret, Webhook, new_id, now_ms};
use crate::registry::Registry;

/// What validation needs to know about the caller's tenant, owned so that it can
/// run inside the store's writer job against the stored record.
struct Checks {
    registry: Registry,
    guard: Guard,
    require_https: bool,
    tenant: String,
}

impl Checks {
    fn new(call: &Call<'_>, tenant: &str) -> Checks {
        Checks {
            registry: call.state.registry.clone(),
            guard: call.state.guard.clone(),
            require_https: call.state.require_https,
            tenant: tenant.to_owned(),
        }
    }

    /// Runs `f` with the validation context for this tenant.
    fn with_ctx<R>(&self, f: impl FnOnce(&validate::Ctx) -> R) -> R {
        let known = |name: &str| {
            self.registry.has_event_type(&self.tenant, name) || name.starts_with("hookbox.")
        };
        let blocked = |host: &str| {
            self.guard
                .check_host_literal(host)
                .err()
                .map(|b| b.to_string())
        };
        let ctx = validate::Ctx {
            require_https: self.require_https,
            known_event_type: &known,
            host_blocked: &blocked,
        };
        f(&ctx)
    }
}

/// The webhook `id` of `tenant`; 404 when it is missing, deleted or another tenant's.
pub(super) fn owned(call: &Call<'_>, tenant: &str, id: &str) -> Result<Arc<Webhook>, ApiError> {
    call.state
        .registry
        .webhook(id)
        .filter(|w| w.tenant == tenant && w.deleted_at.is_none())
        .ok_or_else(|| ApiError::not_found(format!("webhook {id}")))
}

/// A conditional read-modify-write of webhook `id` of `tenant` inside the writer
/// job, against the stored record: 404 unless it is the tenant's live webhook (now
/// and at the write), then `change` on a copy (its error, e.g. a 400 listing every
/// reason, wins over a stale `If-Match`), then 412 (with the current `ETag`) unless
/// `If-Match`, when given, matches its version; only then is the copy kept.
async fn write<R: Send + 'static>(
    call: &Call<'_>,
    tenant: &str,
    id: &str,
    change: impl FnOnce(&mut Webhook) -> Result<R, ApiError> + Send + 'static,
) -> Result<(Arc<Webhook>, R), ApiError> {
    owned(call, tenant, id)?;
    let if_match = IfMatch::parse(&call.req.headers);
    let tenant = tenant.to_owned();
    let written = call.state.store.update_webhook(id.to_owned(), move |w| {
        if w.tenant != tenant || w.deleted_at.is_some() {
            return Err(ApiError::not_found(format!("webhook {}", w.id)));
        }
        let mut changed = w.clone();
        let r = change(&mut changed)?;
        if if_match.is_some_and(|cond| !cond.matches(w.version)) {
            let etag = dto::etag(w.version);
            let message =
                format!("the webhook has changed: If-Match does not match its current ETag {etag}");
            let mut e = ApiError::new(StatusCode::PRECONDITION_FAILED, message);
            e.headers.push((http::header::ETAG, etag));
            return Err(e);
        }
        *w = changed;
        Ok(r)
    });
    written.await?
}

/// A JSON answer about a webhook at `version`, with its `ETag`.
fn tagged<T: serde::Serialize>(status: StatusCode, body: &T, version: u64) -> Reply {
    Ok(with_etag(json_response(status, body), version))
}

pub async fn create(call: &Call<'_>) -> Reply {
    let tenant = call.tenant()?;
    let body = call.json()?;
    let spec = check_create(call, &tenant, &body, false).map_err(ApiError::invalid)?;
    let w = insert(call, tenant, spec, signer::generate_secret).await?;
    tagged(StatusCode::CREATED, &dto::Webhook::new(&w, true), w.version)
}

/// Validates a create body for `tenant` with the `/v1` rules; `https_only`
/// refuses `http://` even where the deployment allows it (a profile whose seed
/// says so). Shared by `/v1` and the seed profiles, so every reason is the same.
pub(super) fn check_create(
    call: &Call<'_>,
    tenant: &str,
    body: &serde_json::Value,
    https_only: bool,
) -> Result<validate::WebhookSpec, Vec<String>> {
    let mut checks = Checks::new(call, tenant);
    checks.require_https |= https_only;
    checks.with_ctx(|ctx| validate::webhook_create(body, ctx))
}

/// Stores a new webhook of `tenant` from a validated spec; when the spec has no
/// secret, `generate` makes one (`whsec_` for `/v1`, plain for seed 004). The
/// registry shows it once this returns (the store's change feed).
pub(super) async fn insert(
    call: &Call<'_>,
    tenant: String,
    spec: validate::WebhookSpec,
    generate: fn(&mut rand::rngs::ThreadRng) -> String,
) -> Result<Arc<Webhook>, ApiError> {
    let now = now_ms();
    let mut secrets = spec.secrets;
    if secrets.is_empty() {
        secrets.push(Secret::new(generate(&mut rand::rng())));
    }
    let secrets = secrets
        .into_iter()
        .map(|secret| SigningSecret {
            secret,
            expires_at: None,
        })
        .collect();
    let webhook = Webhook {
        id: new_id("wh"),
        tenant,
        url: spec.url,
        event_types: spec.event_types,
        channels: spec.channels,
        description: spec.description,
        headers: spec.headers,
        oauth: spec.oauth,
        secrets,
        notification_email: spec.notification_email,
        enabled: spec.enabled,
        disabled_reason: (!spec.enabled).then(|| "disabled by API".to_owned()),
        disabled_at: (!spec.enabled).then_some(now),
        metadata: spec.metadata,
        rate_limit_per_second: spec.rate_limit_per_second,
        created_at: now,
        updated_at: now,
        deleted_at: None,
        failing_since: None,
        version: 1,
        ordering: spec.ordering,
        filter: spec.filter,
    };
    Ok(call.state.store.create_webhook(webhook).await?)
}

/// Every live webhook of `tenant`, oldest first (the seed profiles' lists are
/// not paginated).
pub(super) fn all(call: &Call<'_>, tenant: &str) -> Vec<Arc<Webhook>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let (page, next) = call
            .state
            .registry
            .list_webhooks(tenant, cursor.as_deref(), 1000);
        out.extend(page);
        match next {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}

pub fn list(call: &Call<'_>) -> Reply {
    let tenant = call.tenant()?;
    let (limit, cursor) = call.page()?;
    let (page, next) = call
        .state
        .registry
        .list_webhooks(&tenant, cursor.as_deref(), limit);
    let data = page.iter().map(|w| dto::Webhook::new(w, false)).collect();
    ok(&dto::WebhookList::new(data, next))
}

pub fn get(call: &Call<'_>, id: &str) -> Reply {
    let tenant = call.tenant()?;
    let w = owned(call, &tenant, id)?;
    tagged(StatusCode::OK, &dto::Webhook::new(&w, false), w.version)
}

/// PATCH: validated and applied inside the writer job against the stored record
/// (a `"****"` keeps the stored value, not a copy read earlier), so a concurrent
/// change to other fields (a 410 disable, a rotation) is never undone.
pub async fn update(call: &Call<'_>, id: &str) -> Reply {
    let tenant = call.tenant()?;
    owned(call, &tenant, id)?;
    let body = call.json()?;
    let checks = Checks::new(call, &tenant);
    let now = now_ms();
    let (w, destination_changed) = write(call, &tenant, id, move |w| {
        let patch = checks
            .with_ctx(|ctx| validate::webhook_patch(&body, w, ctx))
            .map_err(ApiError::invalid)?;
        let (oauth, url) = (w.oauth.clone(), w.url.clone());
        patch.apply(w, now);
        Ok(w.oauth != oauth || w.url != url)
    })
    .await?;
    // A token was fetched for this destination; a new url or oauth fetches anew.
    if destination_changed {
        call.state.engine.forget_token(&w.id);
    }
    // A change of `ordering` applies to work not started yet, now.
    call.state.engine.webhook_changed(&w.id);
    tagged(StatusCode::OK, &dto::Webhook::new(&w, false), w.version)
}

pub async fn delete(call: &Call<'_>, id: &str) -> Reply {
    let tenant = call.tenant()?;
    remove(call, tenant, id).await?;
    Ok(no_content())
}

/// Soft-deletes webhook `id` of `tenant` (conditional on `If-Match`); the
/// deleted record. Shared by `/v1` and the seed profiles.
pub(super) async fn remove(
    call: &Call<'_>,
    tenant: String,
    id: &str,
) -> Result<Arc<Webhook>, ApiError> {
    let now = now_ms();
    let (w, ()) = write(call, &tenant, id, move |w| {
        w.deleted_at = Some(now);
        w.updated_at = now;
        Ok(())
    })
    .await?;
    call.state.engine.forget_token(&w.id);
    Ok(w)
}

pub fn secrets(call: &Call<'_>, id: &str) -> Reply {
    let tenant = call.tenant()?;
    let w = owned(call, &tenant, id)?;
    ok(&dto::WebhookSecrets::at(&w, now_ms()))
}

pub async fn rotate(call: &Call<'_>, id: &str) -> Reply {
    let tenant = call.tenant()?;
    let spec = validate::rotate(&call.json()?).map_err(ApiError::invalid)?;
    let now = now_ms();
    let new = spec
        .secret
        .unwrap_or_else(|| Secret::new(signer::generate_secret(&mut rand::rng())));
    let (w, ()) = write(call, &tenant, id, move |w| {
        // Keep at most two: the new current one and the previous current one,
        // which signs on for the grace period. Older ones are dropped now.
        let previous = w
            .active_secrets(now)
            .next()
            .cloned()
            .filter(|_| spec.grace_seconds > 0);
        w.secrets = vec![SigningSecret {
            secret: new,
            expires_at: None,
        }];
        if let Some(old) = previous {
            let grace_ms = spec.grace_seconds.min(i64::MAX as u64 / 1000) as i64 * 1000;
            w.secrets.push(SigningSecret {
                secret: old,
                expires_at: Some(now.saturating_add(grace_ms)),
            });
        }
        w.updated_at = now;
        Ok(())
    })
    .await?;
    tagged(StatusCode::OK, &dto::WebhookSecrets::at(&w, now), w.version)
}

pub async fn test(call: &Call<'_>, id: &str) -> Reply {
    let tenant = call.tenant()?;
    owned(call, &tenant, id)?;
    let spec = check_test(call, &tenant, &call.json()?).map_err(ApiError::invalid)?;
    let attempt = send_test(call, &tenant, id, &spec).await?;
    ok(&dto::Attempt::new(&attempt))
}

/// Validates a test-event body against `tenant`'s catalogue. Shared by `/v1` and
/// the seed profiles.
pub(super) fn check_test(
    call: &Call<'_>,
    tenant: &str,
    body: &serde_json::Value,
) -> Result<validate::TestEventSpec, Vec<String>> {
    Checks::new(call, tenant).with_ctx(|ctx| validate::test_event(body, ctx))
}

/// Sends a validated test event to webhook `id` of `tenant` now; the attempt
/// (recorded in the delivery log). Shared by `/v1` and the seed profiles.
pub(super) async fn send_test(
    call: &Call<'_>,
    tenant: &str,
    id: &str,
    spec: &validate::TestEventSpec,
) -> Result<crate::model::Attempt, ApiError> {
    let w = owned(call, tenant, id)?;
    Ok(call
        .state
        .engine
        .send_test(&w, &spec.event_type, &spec.message)
        .await?)
}
