//! Handlers for tenants, API keys, the event-type catalogue and the operational
//! routes (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`). Access (admin,
//! scope, tenant) is enforced by dispatch from the route table, never here.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

use super::error::ApiError;
use super::{Call, Reply, dto, json_response, no_content, ok, reply, validate};
use crate::model::{ApiKey, EventType, Tenant, new_id, now_ms};
use crate::secrets::{hash_key, random_token};

/// How long a tenant delete waits for the purge of its data before answering.
const PURGE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// `GET /healthz`.
pub fn healthz() -> Reply {
    ok(&dto::Health { status: "ok" })
}

/// `GET /readyz`: 503 with the reason while the store cannot write or shutdown
/// has begun.
pub fn readyz(call: &Call<'_>) -> Reply {
    let state = &call.state;
    let reason = if let Some(why) = state.store.unready_reason() {
        Some(why)
    } else if state.engine.is_stopping() {
        Some("shutting down")
    } else {
        None
    };
    let (code, status) = match reason {
        None => (StatusCode::OK, "ready"),
        Some(_) => (StatusCode::SERVICE_UNAVAILABLE, "unready"),
    };
    reply(code, &dto::Ready { status, reason })
}

/// `GET /metrics`: the Prometheus text format.
pub async fn metrics(call: &Call<'_>) -> Reply {
    let mut resp = Response::new(Full::new(Bytes::from(
        call.state.engine.metrics_text(&call.state.store).await,
    )));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    Ok(resp)
}

/// `GET /openapi.json`, generated from the route table, the enabled seed
/// profiles' tables and the wire types.
pub fn openapi(call: &Call<'_>) -> Reply {
    ok(&super::openapi::document(&call.state.profiles))
}

pub async fn create_tenant(call: &Call<'_>) -> Reply {
    let spec = validate::tenant_create(&call.json()?).map_err(ApiError::invalid)?;
    if let Some(id) = &spec.id
        && call.state.store.tenant_being_purged(id.clone()).await?
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
    // The registry shows the tenant once this returns (the store's change feed).
    call.state
        .store
        .create_tenant(tenant.clone(), catalogue)
        .await?;
    reply(StatusCode::CREATED, &dto::Tenant::new(&tenant))
}

pub fn list_tenants(call: &Call<'_>) -> Reply {
    let tenants = call.state.registry.tenants();
    let data = tenants.iter().map(dto::Tenant::new).collect();
    ok(&dto::TenantList::new(data, None))
}

pub fn get_tenant(call: &Call<'_>, id: &str) -> Reply {
    let t = call
        .state
        .registry
        .tenant(id)
        .ok_or_else(|| ApiError::not_found(format!("tenant {id}")))?;
    ok(&dto::Tenant::new(&t))
}

pub async fn delete_tenant(call: &Call<'_>, id: String) -> Reply {
    let now = now_ms();
    // The registry follows from the store's TenantDeleted change.
    call.state.store.delete_tenant(id.clone(), now).await?;
    // The old data goes in chunks; a small tenant is gone before the answer, so the
    // id can be reused at once. A big one carries on in the background (the id
    // answers 409 until it is done).
    let purged = call.state.store.spawn_purge(id);
    let _ = tokio::time::timeout(PURGE_WAIT, purged).await;
    Ok(no_content())
}

pub async fn create_key(call: &Call<'_>) -> Reply {
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
    let resp = json_response(StatusCode::CREATED, &dto::ApiKey::new(&key, Some(&secret)));
    call.state.store.create_api_key(key).await?;
    Ok(resp)
}

pub fn list_keys(call: &Call<'_>) -> Reply {
    let tenant = call.query("tenant");
    let keys = call.state.registry.keys();
    let data = keys
        .iter()
        .filter(|k| tenant.is_none_or(|t| t == k.tenant))
        .map(|k| dto::ApiKey::new(k, None))
        .collect();
    ok(&dto::ApiKeyList::new(data, None))
}

pub fn get_key(call: &Call<'_>, id: &str) -> Reply {
    let k = call
        .state
        .registry
        .key(id)
        .ok_or_else(|| ApiError::not_found(format!("api key {id}")))?;
    ok(&dto::ApiKey::new(&k, None))
}

pub async fn delete_key(call: &Call<'_>, id: String) -> Reply {
    call.state.store.delete_api_key(id).await?;
    Ok(no_content())
}

pub async fn create_event_type(call: &Call<'_>) -> Reply {
    let tenant = call.tenant()?;
    let spec = validate::event_type_create(&call.json()?).map_err(ApiError::invalid)?;
    let et = EventType {
        tenant,
        name: spec.name,
        description: spec.description,
        schema: spec.schema,
        created_at: now_ms(),
    };
    let resp = json_response(StatusCode::CREATED, &dto::EventType::new(&et));
    call.state.store.create_event_type(et).await?;
    Ok(resp)
}

pub fn list_event_types(call: &Call<'_>) -> Reply {
    let tenant = call.tenant()?;
    let types = call.state.registry.event_types(&tenant);
    let data = types.iter().map(dto::EventType::new).collect();
    ok(&dto::EventTypeList::new(data, None))
}

pub fn get_event_type(call: &Call<'_>, name: &str) -> Reply {
    let tenant = call.tenant()?;
    let et = call
        .state
        .registry
        .event_types(&tenant)
        .into_iter()
        .find(|e| e.name == name)
        .ok_or_else(|| ApiError::not_found(format!("event type {name}")))?;
    ok(&dto::EventType::new(&et))
}

pub async fn delete_event_type(call: &Call<'_>, name: String) -> Reply {
    let tenant = call.tenant()?;
    call.state.store.delete_event_type(tenant, name).await?;
    Ok(no_content())
}
