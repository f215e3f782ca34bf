//! Webhook handlers: register, list, read, update, soft delete, reveal and rotate
//! secrets, and send a test event.

use std::sync::Arc;

use http::StatusCode;

use super::error::ApiError;
use super::{Call, Reply, dto, json_response, no_content, validate};
use crate::delivery::signer;
use crate::model::{Scope, Secret, SigningSecret, Webhook, new_id, now_ms};

/// The validation context for this call's tenant.
fn with_ctx<R>(call: &Call<'_>, tenant: &str, f: impl FnOnce(&validate::Ctx) -> R) -> R {
    let registry = &call.state.registry;
    let guard = &call.state.guard;
    let known = |name: &str| registry.has_event_type(tenant, name) || name.starts_with("hookbox.");
    let blocked = |host: &str| guard.check_host_literal(host).err().map(|b| b.to_string());
    let ctx = validate::Ctx {
        require_https: call.state.require_https,
        known_event_type: &known,
        host_blocked: &blocked,
    };
    f(&ctx)
}

/// The webhook `id` of `tenant`; 404 when it is missing, deleted or another tenant's.
pub(super) fn owned(call: &Call<'_>, tenant: &str, id: &str) -> Result<Arc<Webhook>, ApiError> {
    call.state
        .registry
        .webhook(id)
        .filter(|w| w.tenant == tenant && w.deleted_at.is_none())
        .ok_or_else(|| ApiError::not_found(format!("webhook {id}")))
}

pub async fn create(call: &Call<'_>) -> Reply {
    let tenant = call.tenant_with(Scope::WebhooksWrite)?;
    let body = call.json()?;
    let spec = with_ctx(call, &tenant, |ctx| validate::webhook_create(&body, ctx))
        .map_err(ApiError::invalid)?;
    let now = now_ms();
    let mut secrets: Vec<SigningSecret> = spec
        .secrets
        .into_iter()
        .map(|secret| SigningSecret {
            secret,
            expires_at: None,
        })
        .collect();
    if secrets.is_empty() {
        secrets.push(SigningSecret {
            secret: Secret::new(signer::generate_secret(&mut rand::rng())),
            expires_at: None,
        });
    }
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
    };
    call.state.store.put_webhook(webhook.clone()).await?;
    let body = dto::webhook_json(&webhook, true);
    call.state.registry.put_webhook(webhook);
    Ok(json_response(StatusCode::CREATED, &body))
}

pub fn list(call: &Call<'_>) -> Reply {
    let tenant = call.tenant_with(Scope::WebhooksRead)?;
    let (limit, cursor) = call.page()?;
    let (page, next) = call
        .state
        .registry
        .list_webhooks(&tenant, cursor.as_deref(), limit);
    let items = page.iter().map(|w| dto::webhook_json(w, false)).collect();
    Ok(json_response(StatusCode::OK, &dto::list_json(items, next)))
}

pub fn get(call: &Call<'_>, id: &str) -> Reply {
    let tenant = call.tenant_with(Scope::WebhooksRead)?;
    let w = owned(call, &tenant, id)?;
    Ok(json_response(StatusCode::OK, &dto::webhook_json(&w, false)))
}

pub async fn update(call: &Call<'_>, id: &str) -> Reply {
    let tenant = call.tenant_with(Scope::WebhooksWrite)?;
    let current = owned(call, &tenant, id)?;
    let body = call.json()?;
    let patch = with_ctx(call, &tenant, |ctx| {
        validate::webhook_patch(&body, &current, ctx)
    })
    .map_err(ApiError::invalid)?;
    let mut next = (*current).clone();
    patch.apply(&mut next, now_ms());
    call.state.store.put_webhook(next.clone()).await?;
    // A token was fetched for this destination; a new url or oauth fetches anew.
    if next.oauth != current.oauth || next.url != current.url {
        call.state.engine.forget_token(&next.id);
    }
    let body = dto::webhook_json(&next, false);
    call.state.registry.put_webhook(next);
    Ok(json_response(StatusCode::OK, &body))
}

pub async fn delete(call: &Call<'_>, id: &str) -> Reply {
    let tenant = call.tenant_with(Scope::WebhooksWrite)?;
    let mut w = (*owned(call, &tenant, id)?).clone();
    let now = now_ms();
    w.deleted_at = Some(now);
    w.updated_at = now;
    call.state.store.put_webhook(w.clone()).await?;
    call.state.engine.forget_token(&w.id);
    call.state.registry.put_webhook(w);
    Ok(no_content())
}

pub fn secrets(call: &Call<'_>, id: &str) -> Reply {
    let tenant = call.tenant_with(Scope::WebhooksWrite)?;
    let w = owned(call, &tenant, id)?;
    Ok(json_response(
        StatusCode::OK,
        &dto::secrets_json(&w, now_ms()),
    ))
}

pub async fn rotate(call: &Call<'_>, id: &str) -> Reply {
    let tenant = call.tenant_with(Scope::WebhooksWrite)?;
    let spec = validate::rotate(&call.json()?).map_err(ApiError::invalid)?;
    let mut w = (*owned(call, &tenant, id)?).clone();
    let now = now_ms();
    let new = spec
        .secret
        .unwrap_or_else(|| Secret::new(signer::generate_secret(&mut rand::rng())));
    // Keep at most two: the new current one and the previous current one, which
    // signs on for the grace period. Older ones are dropped now.
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
        w.secrets.push(SigningSecret {
            secret: old,
            expires_at: Some(
                now.saturating_add(spec.grace_seconds.min(i64::MAX as u64 / 1000) as i64 * 1000),
            ),
        });
    }
    w.updated_at = now;
    call.state.store.put_webhook(w.clone()).await?;
    let body = dto::secrets_json(&w, now);
    call.state.registry.put_webhook(w);
    Ok(json_response(StatusCode::OK, &body))
}

pub async fn test(call: &Call<'_>, id: &str) -> Reply {
    let tenant = call.tenant_with(Scope::WebhooksWrite)?;
    let w = owned(call, &tenant, id)?;
    let body = call.json()?;
    let spec = with_ctx(call, &tenant, |ctx| validate::test_event(&body, ctx))
        .map_err(ApiError::invalid)?;
    let attempt = call
        .state
        .engine
        .send_test(&w, &spec.event_type, &spec.message)
        .await?;
    Ok(json_response(StatusCode::OK, &dto::attempt_json(&attempt)))
}
