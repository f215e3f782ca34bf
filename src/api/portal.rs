//! Portal session handlers: `POST /v1/portal/sessions` mints a short-lived `hbp_`
//! token for the calling tenant and answers the link; `DELETE` revokes every
//! session of the tenant. Tokens are stored only as SHA-256 hashes; a token never
//! appears in a log line or a query string.

use http::StatusCode;

use super::auth::{PORTAL_TOKEN_PREFIX, Principal};
use super::error::ApiError;
use super::{Call, Reply, dto, no_content, ok, reply, validate};
use crate::model::{PortalSession, Scope, now_ms, rfc3339};
use crate::secrets::{hash_key, random_token};

/// Whether the caller may create a session that writes.
fn can_write(principal: &Option<Principal>) -> bool {
    match principal {
        Some(Principal::Admin) => true,
        Some(Principal::Key(k)) => k.scopes.contains(&Scope::WebhooksWrite),
        // Dispatch never lets a portal session reach these routes.
        Some(Principal::Portal(_)) | None => false,
    }
}

pub async fn create(call: &Call<'_>) -> Reply {
    let tenant = call.tenant()?;
    let spec = validate::portal_session_create(&call.json()?).map_err(ApiError::invalid)?;
    // A session never holds more than its creator: a read-only key gets a
    // read-only session, and asking it for a writing one is refused.
    let writer = can_write(&call.principal);
    let read_only = match spec.read_only {
        Some(false) if !writer => {
            return Err(ApiError::forbidden(
                "Access is denied due to missing scope permissions: webhooks:write is \
                 required for a session that writes (ask for read_only: true)",
            ));
        }
        Some(r) => r,
        None => !writer,
    };
    let token = random_token(PORTAL_TOKEN_PREFIX);
    let now = now_ms();
    let expires_at = now + (spec.ttl_seconds as i64) * 1000;
    let session = PortalSession {
        hash: hash_key(&token),
        tenant,
        read_only,
        created_at: now,
        expires_at,
    };
    call.state.store.create_portal_session(session).await?;
    let url = format!("{}/portal#token={token}", call.state.portal.public_url);
    reply(
        StatusCode::CREATED,
        &dto::PortalSession {
            url,
            token,
            expires_at: rfc3339(expires_at),
            read_only,
        },
    )
}

pub async fn revoke(call: &Call<'_>) -> Reply {
    let tenant = call.tenant()?;
    let n = call.state.store.revoke_portal_sessions(tenant).await?;
    tracing::info!(sessions = n, "portal sessions revoked");
    Ok(no_content())
}

pub async fn current(call: &Call<'_>) -> Reply {
    let tenant = call.tenant()?;
    let (read_only, expires_at) = match &call.principal {
        Some(Principal::Portal(s)) => (s.read_only, Some(rfc3339(s.expires_at))),
        // A key or the admin: what a session it created by default could do.
        other => (!can_write(other), None),
    };
    ok(&dto::PortalSessionInfo {
        tenant: &tenant,
        read_only,
        expires_at,
    })
}
