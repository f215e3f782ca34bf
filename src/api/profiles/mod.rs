//! The seed API profiles (DESIGN.md section 10): each seed document's webhook API
//! served beside `/v1` over the same core. This file is the profile table (name,
//! seed, error shape, tenant header, route table) and the lookup dispatch uses
//! once `/v1` has no route for a path. One file per profile holds its routes, its
//! wire types and the thin mapping from its fields and shapes onto the `/v1`
//! handlers' shared functions (`webhooks.rs`). A profile must never copy a
//! handler, a check or a store call: what it needs that `/v1` does not expose is
//! refactored into a function both call.

pub mod facility_webhooks;
pub mod v2_webhooks;
pub mod webhook_create;
pub mod webhook_subscriptions;

use http::Method;
use serde_json::{Map, Value};

use super::error::{ApiError, ErrorStyle};
use super::routes::{Found, Route, find_in};
use super::validate::quote;
use crate::config::ApiProfile;

/// One profile: what dispatch and `/openapi.json` need to serve it.
pub struct Profile {
    /// Which profile this is (its name is the OpenAPI tag).
    pub which: ApiProfile,
    /// The seed documents it serves.
    pub seeds: &'static str,
    /// How its errors are shaped.
    pub style: ErrorStyle,
    /// The tenant header its seed documents (the admin token names the tenant
    /// with it; every alias of `X-Tenant-Id` is accepted).
    pub tenant_header: &'static str,
    /// Its routes, in the same form as `/v1`'s (`routes.rs`).
    pub routes: &'static [Route],
}

/// The profile table.
static PROFILES: [&Profile; 4] = [
    &v2_webhooks::PROFILE,
    &webhook_create::PROFILE,
    &webhook_subscriptions::PROFILE,
    &facility_webhooks::PROFILE,
];

/// The profile `which`.
pub fn profile(which: ApiProfile) -> &'static Profile {
    // Invariant: PROFILES holds one entry per ApiProfile (tested below).
    PROFILES
        .iter()
        .copied()
        .find(|p| p.which == which)
        .expect("every ApiProfile is in PROFILES")
}

/// Looks `method` and `path` up in the enabled profiles' routes: the profile and
/// what was found, or `None` when no enabled profile has the path. Called only
/// after `/v1` found no route, so the `/v1` path costs nothing more.
pub fn find(
    enabled: &[ApiProfile],
    method: &Method,
    path: &str,
) -> Option<(&'static Profile, Found)> {
    enabled
        .iter()
        .map(|w| profile(*w))
        .find_map(|p| match find_in(p.routes, method, path) {
            Found::NoPath => None,
            found => Some((p, found)),
        })
}

/// The body with only the fields its seed documents (`allowed`); every other
/// field is a reason (`unknown field "x"`), so a typo is not silently ignored and
/// `/v1`-only fields stay `/v1`'s. A body that is not an object is passed on for
/// the `/v1` validator to refuse.
fn seed_fields(body: Value, allowed: &[&str], r: &mut Vec<String>) -> Value {
    match body {
        Value::Object(map) => {
            let mut kept = Map::new();
            for (k, v) in map {
                if allowed.contains(&k.as_str()) {
                    kept.insert(k, v);
                } else {
                    r.push(format!("unknown field {}", quote(&k)));
                }
            }
            Value::Object(kept)
        }
        other => other,
    }
}

/// Joins the profile's own reasons with the `/v1` validation result: a 400 with
/// every reason when there is any.
fn merge<T>(mut own: Vec<String>, checked: Result<T, Vec<String>>) -> Result<T, ApiError> {
    match checked {
        Ok(v) if own.is_empty() => Ok(v),
        Ok(_) => Err(ApiError::invalid(own)),
        Err(more) => {
            own.extend(more);
            Err(ApiError::invalid(own))
        }
    }
}

#[cfg(test)]
mod tests;
