//! Authentication and authorisation: who is calling (an API key, a portal session
//! token or the admin token), which tenant the call acts on, and whether it holds
//! the scope it needs. A portal token is looked up in the store only when it has
//! the `hbp_` prefix, so API keys and ingest never pay for it.

use std::sync::Arc;

use http::HeaderMap;

use super::error::ApiError;
use crate::model::{ApiKey, PortalSession, Scope, now_ms};
use crate::registry::Registry;
use crate::secrets::{constant_time_eq, hash_key};
use crate::store::Db;

/// The prefix of portal session tokens.
pub const PORTAL_TOKEN_PREFIX: &str = "hbp_";

/// Who is calling.
#[derive(Clone, Debug)]
pub enum Principal {
    /// The admin token: manages tenants and keys, may act for any tenant.
    Admin,
    /// A tenant's API key.
    Key(Arc<ApiKey>),
    /// A portal session: acts for its tenant on the routes marked `portal` only.
    Portal(Arc<PortalSession>),
}

/// Identifies the caller from `Authorization: Bearer <key>` or the seeds' `API-KEY`.
pub async fn authenticate(
    headers: &HeaderMap,
    admin_token: &str,
    registry: &Registry,
    store: &Db,
) -> Result<Principal, ApiError> {
    let presented = bearer(headers).ok_or_else(ApiError::unauthorized)?;
    if constant_time_eq(presented.as_bytes(), admin_token.as_bytes()) {
        return Ok(Principal::Admin);
    }
    if presented.starts_with(PORTAL_TOKEN_PREFIX) {
        return portal_session(presented, registry, store)
            .await
            .map(Principal::Portal);
    }
    // Keys are looked up by their hash, so no comparison of key text happens here.
    registry
        .key_by_hash(&hash_key(presented))
        .map(Principal::Key)
        .ok_or_else(ApiError::unauthorized)
}

/// The live session of a portal token: 401 with a message saying why when it is
/// unknown or revoked, expired, or its tenant is gone.
async fn portal_session(
    token: &str,
    registry: &Registry,
    store: &Db,
) -> Result<Arc<PortalSession>, ApiError> {
    let refused = |message: &str| {
        let mut e = ApiError::unauthorized();
        e.message = message.to_owned();
        e
    };
    let session = store
        .portal_session(&hash_key(token))
        .await?
        .ok_or_else(|| {
            refused("This portal link was revoked or is not valid; ask for a new link")
        })?;
    if now_ms() >= session.expires_at {
        return Err(refused("This portal link has expired; ask for a new link"));
    }
    if registry.tenant(&session.tenant).is_none() {
        return Err(refused(
            "This portal link was revoked or is not valid; ask for a new link",
        ));
    }
    Ok(Arc::new(session))
}

/// The presented key: a Bearer token, else the `API-KEY` header. An `Authorization`
/// header of another scheme (e.g. Basic auth added by a proxy) does not hide
/// `API-KEY`.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let from_authorization = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty());
    if from_authorization.is_some() {
        return from_authorization;
    }
    headers
        .get("api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The tenant a call acts on: the key's own, or for the admin the one named by
/// `X-Tenant-Id` (aliases `organization-id`, `TENANT`), which must exist.
pub fn tenant_of(
    principal: &Principal,
    headers: &HeaderMap,
    registry: &Registry,
) -> Result<String, ApiError> {
    let named = ["x-tenant-id", "organization-id", "tenant"]
        .iter()
        .find_map(|h| headers.get(*h))
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty());
    match principal {
        Principal::Key(key) => match named {
            Some(t) if t != key.tenant => Err(ApiError::forbidden(
                "this API key belongs to another tenant than the one named",
            )),
            _ => Ok(key.tenant.clone()),
        },
        Principal::Portal(s) => match named {
            Some(t) if t != s.tenant => Err(ApiError::forbidden(
                "this portal session belongs to another tenant than the one named",
            )),
            _ => Ok(s.tenant.clone()),
        },
        Principal::Admin => {
            let t = named.ok_or_else(|| {
                ApiError::bad_request(
                    "the admin token must name a tenant with the X-Tenant-Id header",
                )
            })?;
            if registry.tenant(t).is_none() {
                return Err(ApiError::not_found(format!("tenant {t}")));
            }
            Ok(t.to_owned())
        }
    }
}

/// Fails with 403 unless the caller holds `scope` (the admin holds every scope).
pub fn require(principal: &Principal, scope: Scope) -> Result<(), ApiError> {
    match principal {
        Principal::Admin => Ok(()),
        Principal::Key(k) if k.scopes.contains(&scope) => Ok(()),
        Principal::Portal(s) if s.scopes().contains(&scope) => Ok(()),
        // The message is seed 003's, word for word; the reason names the scope.
        Principal::Key(_) | Principal::Portal(_) => {
            let e = ApiError::forbidden("Access is denied due to missing scope permissions");
            Err(e.with_reasons(vec![format!("{} is required", scope.as_str())]))
        }
    }
}

/// Fails with 403 when a portal session calls a route not marked `portal` in the
/// route table (admin routes, ingest, event reads, catalogue writes, sessions).
pub fn require_portal_route(principal: &Principal, portal: bool) -> Result<(), ApiError> {
    match principal {
        Principal::Portal(_) if !portal => Err(ApiError::forbidden(
            "a portal session cannot use this route",
        )),
        _ => Ok(()),
    }
}

/// Fails with 403 unless the caller is the admin.
pub fn require_admin(principal: &Principal) -> Result<(), ApiError> {
    match principal {
        Principal::Admin => Ok(()),
        Principal::Key(_) | Principal::Portal(_) => {
            Err(ApiError::forbidden("this route needs the admin token"))
        }
    }
}
