//! Admin and catalogue bodies: tenants, API keys and event types. Pure: no I/O
//! (whether a named tenant exists is the handler's check).

use serde_json::Value;

use super::fields::{check_description, event_name_char};
use super::*;
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

/// Checks a tenant id: 1..=64 of `[A-Za-z0-9_-]`.
fn check_tenant_id(f: &Field, r: &mut Vec<String>) -> Option<String> {
    let s = f.string(r)?;
    let ok = !s.is_empty()
        && s.len() <= MAX_TENANT_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Some(s.to_owned())
    } else {
        r.push(format!(
            "{} must be 1 to {MAX_TENANT_ID_LEN} letters, digits, \"_\" or \"-\"",
            f.name
        ));
        None
    }
}

/// Validates a `POST /v1/tenants` body `{id?, name}`.
pub fn tenant_create(body: &Value) -> Result<TenantSpec, Vec<String>> {
    let mut r = Vec::new();
    let Some(mut fields) = Fields::of(body, String::new(), "request body", &mut r) else {
        return Err(r);
    };
    let id = match fields.get(&["id"], &mut r) {
        Some(f) if !f.is_null() => check_tenant_id(&f, &mut r),
        _ => None,
    };
    let name = required(fields.get(&["name"], &mut r), "name", &mut r)
        .and_then(|f| f.text(MAX_NAME_LEN, &mut r))
        .filter(|s| no_control_chars("name", s, &mut r));
    fields.finish(&mut r);
    match name {
        Some(name) if r.is_empty() => Ok(TenantSpec { id, name }),
        _ => Err(r),
    }
}

/// Validates a `POST /v1/api-keys` body `{tenant, name, scopes}`.
pub fn api_key_create(body: &Value) -> Result<ApiKeySpec, Vec<String>> {
    let mut r = Vec::new();
    let Some(mut fields) = Fields::of(body, String::new(), "request body", &mut r) else {
        return Err(r);
    };
    let tenant = required(fields.get(&["tenant"], &mut r), "tenant", &mut r)
        .and_then(|f| check_tenant_id(&f, &mut r));
    let name = required(fields.get(&["name"], &mut r), "name", &mut r)
        .and_then(|f| f.text(MAX_NAME_LEN, &mut r))
        .filter(|s| no_control_chars("name", s, &mut r));
    let scopes = required(fields.get(&["scopes"], &mut r), "scopes", &mut r).and_then(|f| {
        let items = f.strings(true, usize::MAX, &mut r)?;
        let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item.as_str().map(|s| (s, Scope::parse(s))) {
                Some((_, Some(scope))) if !out.contains(&scope) => out.push(scope),
                Some((_, Some(_))) => {}
                Some((s, None)) => r.push(format!(
                    "scope {} is not one of {}",
                    quote(s),
                    known.join(", ")
                )),
                None => r.push(format!("{}[{i}] must be a string", f.name)),
            }
        }
        Some(out)
    });
    fields.finish(&mut r);
    match (tenant, name, scopes) {
        (Some(tenant), Some(name), Some(scopes)) if r.is_empty() => Ok(ApiKeySpec {
            tenant,
            name,
            scopes,
        }),
        _ => Err(r),
    }
}

/// Validates a `POST /v1/event-types` body `{name, description?, schema?}`.
pub fn event_type_create(body: &Value) -> Result<EventTypeSpec, Vec<String>> {
    let mut r = Vec::new();
    let Some(mut fields) = Fields::of(body, String::new(), "request body", &mut r) else {
        return Err(r);
    };
    let name = required(fields.get(&["name"], &mut r), "name", &mut r).and_then(|f| {
        let s = f.string(&mut r)?;
        let before = r.len();
        if s.is_empty() || s.chars().count() > MAX_EVENT_TYPE_LEN || !s.chars().all(event_name_char)
        {
            r.push(format!(
                "{} must be 1 to {MAX_EVENT_TYPE_LEN} letters, digits, \"_\", \".\", \":\" or \"-\"",
                f.name
            ));
        }
        if s == "all" {
            r.push(format!(
                "{} must not be \"all\": it means every event type",
                f.name
            ));
        }
        if s.starts_with("hookbox.") {
            r.push(format!(
                "{} must not start with \"hookbox.\": those names are reserved for operational events",
                f.name
            ));
        }
        (r.len() == before).then(|| s.to_owned())
    });
    let description = match fields.get(&["description"], &mut r) {
        Some(f) if !f.is_null() => check_description(&f, &mut r),
        _ => None,
    };
    let schema = match fields.get(&["schema"], &mut r) {
        Some(f) if !f.is_null() => {
            if f.value.is_object() {
                Some(f.value.to_string())
            } else {
                r.push(format!("{} must be a JSON object (a JSON Schema)", f.name));
                None
            }
        }
        _ => None,
    };
    fields.finish(&mut r);
    match name {
        Some(name) if r.is_empty() => Ok(EventTypeSpec {
            name,
            description,
            schema,
        }),
        _ => Err(r),
    }
}
