//! Handlers for tenants, API keys, the event-type catalogue and the operational
//! routes (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`).

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use super::auth::require_admin;
use super::error::ApiError;
use super::{ApiState, Call, Reply, dto, json_response, no_content, validate};
use crate::model::{ApiKey, EventType, Scope, Tenant, new_id, now_ms};
use crate::secrets::{hash_key, random_token};

/// How long a tenant delete waits for the purge of its data before answering.
const PURGE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Answers the unauthenticated operational routes; `None` for every other path.
pub fn operational(state: &Arc<ApiState>, method: &Method, path: &str) -> Option<Reply> {
    let reply = match path {
        "/healthz" => json_response(StatusCode::OK, &json!({"status": "ok"})),
        "/readyz" if state.store.is_healthy() && !state.engine.is_stopping() => {
            json_response(StatusCode::OK, &json!({"status": "ready"}))
        }
        "/readyz" => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "unready", "reason": if state.store.is_healthy() {
                "shutting down"
            } else {
                "the store cannot write (disk full or read-only?)"
            }}),
        ),
        "/metrics" => {
            let mut resp = Response::new(Full::new(Bytes::from(
                state.engine.metrics_text(&state.store),
            )));
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            resp
        }
        "/openapi.json" => json_response(StatusCode::OK, &super::openapi::document()),
        _ => return None,
    };
    if method != Method::GET && method != Method::HEAD {
        return Some(Err(ApiError::method_not_allowed("GET")));
    }
    Some(Ok(reply))
}

pub async fn create_tenant(call: &Call<'_>) -> Reply {
    require_admin(&call.principal)?;
    let spec = validate::tenant_create(&call.json()?).map_err(ApiError::invalid)?;
    if let Some(id) = &spec.id
        && call.state.store.tenant_being_purged(id)?
    {
        return Err(ApiError::conflict(format!(
            "tenant {id} was deleted and its data is still being purged; try again shortly"
        )));
    }
    let now = now_ms();
    let tenant = Tenant {
        id: spec.id.unwrap_or_else(|| new_id("ten")),
        name: spec.name,
        created_at: now,
    };
    let catalogue: Vec<EventType> = call
        .state
        .seed_event_types
        .iter()
        .map(|(name, description)| EventType {
            tenant: tenant.id.clone(),
            name: name.clone(),
            description: description.clone(),
            schema: None,
            created_at: now,
        })
        .collect();
    call.state
        .store
        .create_tenant(tenant.clone(), catalogue.clone())
        .await?;
    call.state.registry.put_tenant(tenant.clone(), catalogue);
    Ok(json_response(
        StatusCode::CREATED,
        &dto::tenant_json(&tenant),
    ))
}

pub fn list_tenants(call: &Call<'_>) -> Reply {
    require_admin(&call.principal)?;
    let items = call
        .state
        .registry
        .tenants()
        .iter()
        .map(dto::tenant_json)
        .collect();
    Ok(json_response(StatusCode::OK, &dto::list_json(items, None)))
}

pub fn get_tenant(call: &Call<'_>, id: &str) -> Reply {
    require_admin(&call.principal)?;
    let t = call
        .state
        .registry
        .tenant(id)
        .ok_or_else(|| ApiError::not_found(format!("tenant {id}")))?;
    Ok(json_response(StatusCode::OK, &dto::tenant_json(&t)))
}

pub async fn delete_tenant(call: &Call<'_>, id: String) -> Reply {
    require_admin(&call.principal)?;
    let now = now_ms();
    call.state.store.delete_tenant(id.clone(), now).await?;
    call.state.registry.remove_tenant(&id, now);
    // The old data goes in chunks; a small tenant is gone before the answer, so the
    // id can be reused at once. A big one carries on in the background (the id
    // answers 409 until it is done).
    let purged = call.state.store.spawn_purge(id);
    let _ = tokio::time::timeout(PURGE_WAIT, purged).await;
    Ok(no_content())
}

pub async fn create_key(call: &Call<'_>) -> Reply {
    require_admin(&call.principal)?;
    let spec = validate::api_key_create(&call.json()?).map_err(ApiError::invalid)?;
    if call.state.registry.tenant(&spec.tenant).is_none() {
        return Err(ApiError::invalid(vec![format!(
            "tenant \"{}\" does not exist",
            spec.tenant
        )]));
    }
    let secret = random_token("hbk_");
    let key = ApiKey {
        id: new_id("key"),
        tenant: spec.tenant,
        name: spec.name,
        scopes: spec.scopes,
        hash: hash_key(&secret),
        prefix: secret.chars().take(8).collect(),
        created_at: now_ms(),
    };
    call.state.store.create_api_key(key.clone()).await?;
    call.state.registry.put_key(key.clone());
    Ok(json_response(
        StatusCode::CREATED,
        &dto::api_key_json(&key, Some(&secret)),
    ))
}

pub fn list_keys(call: &Call<'_>) -> Reply {
    require_admin(&call.principal)?;
    let tenant = call.query("tenant");
    let items = call
        .state
        .registry
        .keys()
        .iter()
        .filter(|k| tenant.is_none_or(|t| t == k.tenant))
        .map(|k| dto::api_key_json(k, None))
        .collect();
    Ok(json_response(StatusCode::OK, &dto::list_json(items, None)))
}

pub fn get_key(call: &Call<'_>, id: &str) -> Reply {
    require_admin(&call.principal)?;
    let k = call
        .state
        .registry
        .key(id)
        .ok_or_else(|| ApiError::not_found(format!("api key {id}")))?;
    Ok(json_response(StatusCode::OK, &dto::api_key_json(&k, None)))
}

pub async fn delete_key(call: &Call<'_>, id: String) -> Reply {
    require_admin(&call.principal)?;
    call.state.store.delete_api_key(id.clone()).await?;
    call.state.registry.remove_key(&id);
    Ok(no_content())
}

pub async fn create_event_type(call: &Call<'_>) -> Reply {
    let tenant = call.tenant_with(Scope::WebhooksWrite)?;
    let spec = validate::event_type_create(&call.json()?).map_err(ApiError::invalid)?;
    let et = EventType {
        tenant,
        name: spec.name,
        description: spec.description,
        schema: spec.schema,
        created_at: now_ms(),
    };
    call.state.store.create_event_type(et.clone()).await?;
    call.state.registry.put_event_type(et.clone());
    Ok(json_response(
        StatusCode::CREATED,
        &dto::event_type_json(&et),
    ))
}

pub fn list_event_types(call: &Call<'_>) -> Reply {
    let tenant = call.tenant_with(Scope::WebhooksRead)?;
    let items = call
        .state
        .registry
        .event_types(&tenant)
        .iter()
        .map(dto::event_type_json)
        .collect();
    Ok(json_response(StatusCode::OK, &dto::list_json(items, None)))
}

pub fn get_event_type(call: &Call<'_>, name: &str) -> Reply {
    let tenant = call.tenant_with(Scope::WebhooksRead)?;
    let et = call
        .state
        .registry
        .event_types(&tenant)
        .into_iter()
        .find(|e| e.name == name)
        .ok_or_else(|| ApiError::not_found(format!("event type {name}")))?;
    Ok(json_response(StatusCode::OK, &dto::event_type_json(&et)))
}

pub async fn delete_event_type(call: &Call<'_>, name: String) -> Reply {
    let tenant = call.tenant_with(Scope::WebhooksWrite)?;
    call.state
        .store
        .delete_event_type(tenant.clone(), name.clone())
        .await?;
    call.state.registry.remove_event_type(&tenant, &name);
    Ok(no_content())
}
