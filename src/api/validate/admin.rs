//! Admin and catalogue bodies: tenants, API keys and event types. Pure: no I/O
//! (whether a named tenant exists is the handler's check). The required fields
//! (`unwrap_or_default` below) are present once the table's check passed.

use serde_json::Value;

use super::table::{API_KEY, Cx, EVENT_TYPE, PLAIN, TENANT};
use crate::model::Scope;

/// A validated `POST /v1/tenants` body.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantSpec {
    /// The requested id (`[A-Za-z0-9_-]{1,64}`); `None` means the handler picks one.
    pub id: Option<String>,
    pub name: String,
}

/// A validated `POST /v1/api-keys` body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeySpec {
    /// The tenant id the key acts for (existence is the handler's check).
    pub tenant: String,
    pub name: String,
    /// Non-empty, without duplicates, in the order given.
    pub scopes: Vec<Scope>,
}

/// A validated `POST /v1/event-types` body.
#[derive(Debug, Clone, PartialEq)]
pub struct EventTypeSpec {
    pub name: String,
    pub description: Option<String>,
    /// A JSON Schema object, as compact JSON text.
    pub schema: Option<String>,
}

/// Validates a `POST /v1/tenants` body `{id?, name}`.
pub fn tenant_create(body: &Value) -> Result<TenantSpec, Vec<String>> {
    let mut v = TENANT.check(body, &mut Cx::new(&PLAIN, 0, None))?;
    Ok(TenantSpec {
        id: v.take("id"),
        name: v.take("name").unwrap_or_default(),
    })
}

/// Validates a `POST /v1/api-keys` body `{tenant, name, scopes}`.
pub fn api_key_create(body: &Value) -> Result<ApiKeySpec, Vec<String>> {
    let mut v = API_KEY.check(body, &mut Cx::new(&PLAIN, 0, None))?;
    Ok(ApiKeySpec {
        tenant: v.take("tenant").unwrap_or_default(),
        name: v.take("name").unwrap_or_default(),
        scopes: v.take("scopes").unwrap_or_default(),
    })
}

/// Validates a `POST /v1/event-types` body `{name, description?, schema?}`.
pub fn event_type_create(body: &Value) -> Result<EventTypeSpec, Vec<String>> {
    let mut v = EVENT_TYPE.check(body, &mut Cx::new(&PLAIN, 0, None))?;
    Ok(EventTypeSpec {
        name: v.take("name").unwrap_or_default(),
        description: v.take("description"),
        schema: v.take("schema"),
    })
}
