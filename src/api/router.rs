//! Dispatch: looks the method and path up in the route table (`routes.rs`),
//! enforces the route's access (token, scope, tenant) before reading the body, and
//! reads bodies within `max_body_bytes`. It never names a route itself.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use tracing::Instrument;

use super::error::{ApiError, ErrorStyle};
use super::routes::{Access, Found, Route, find};
use super::{ApiState, Call, Reply, Req, auth, profiles};
use crate::model::new_id;

/// A parsed `If-Match` request header (RFC 9110 section 13.1.1), compared strongly
/// against a webhook's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: any existing webhook matches.
    Any,
    /// The strong tags given; weak (`W/`) or malformed ones match nothing.
    Versions(Vec<u64>),
}

impl IfMatch {
    /// The condition in `headers`, `None` when there is no `If-Match`. Several
    /// headers or comma-separated lists are combined.
    pub fn parse(headers: &HeaderMap) -> Option<IfMatch> {
        let mut values = headers.get_all(http::header::IF_MATCH).iter().peekable();
        values.peek()?;
        let mut versions = Vec::new();
        for value in values {
            let Ok(text) = value.to_str() else { continue };
            for tag in text.split(',').map(str::trim) {
                if tag == "*" {
                    return Some(IfMatch::Any);
                }
                if let Some(v) = tag
                    .strip_prefix('"')
                    .and_then(|t| t.strip_suffix('"'))
                    .and_then(|t| t.parse::<u64>().ok())
                {
                    versions.push(v);
                }
            }
        }
        Some(IfMatch::Versions(versions))
    }

    /// Whether a webhook at `version` satisfies the condition.
    pub fn matches(&self, version: u64) -> bool {
        match self {
            IfMatch::Any => true,
            IfMatch::Versions(v) => v.contains(&version),
        }
    }
}

/// Adds the `ETag` of a webhook at `version` to a response.
pub fn with_etag(mut resp: Response<Full<Bytes>>, version: u64) -> Response<Full<Bytes>> {
    if let Ok(v) = HeaderValue::from_str(&super::dto::etag(version)) {
        resp.headers_mut().insert(http::header::ETAG, v);
    }
    resp
}

/// The longest `X-Request-Id` we adopt from a caller.
const MAX_REQUEST_ID: usize = 64;

/// Answers one request. Never fails: every error becomes a JSON error response.
///
/// Every request runs in a span with its method, path (never the query string, which
/// may carry cursors or other caller data) and request id; the id is the caller's
/// `X-Request-Id` when it is a sane token, else a fresh one, and is echoed in the
/// response. One INFO line per request records status and latency; header values
/// are never logged.
pub async fn dispatch(state: &Arc<ApiState>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let request_id = request_id(req.headers());
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        path = req.uri().path(),
        request_id = %request_id,
    );
    // Inside the span, so an internal error's log line carries the request id.
    let mut resp = route(state, req).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::info!(
            status = resp.status().as_u16(),
            // Microsecond resolution, printed as milliseconds (e.g. 0.295).
            latency_ms = started.elapsed().as_micros() as f64 / 1000.0,
            "request"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(X_REQUEST_ID, value);
    }
    resp
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The caller's `X-Request-Id` when it is 1..=64 characters of `[A-Za-z0-9._:-]`
/// (safe to log and to echo), else a new `req_...` id.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane_request_id(v))
        .map_or_else(|| new_id("req"), str::to_owned)
}

fn is_sane_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Finds the route (`/v1` first, then the enabled seed profiles) and answers,
/// errors in the shape of the route's profile.
async fn route(state: &Arc<ApiState>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (route, id, style) = match find(req.method(), req.uri().path()) {
        Found::Route(route, id) => (route, id, ErrorStyle::Hookbox),
        Found::WrongMethod(allowed) => {
            return ApiError::method_not_allowed(&allowed.join(", ")).into_response();
        }
        // Only a path `/v1` does not have can be a profile's, so the `/v1` path
        // costs no more with profiles enabled.
        Found::NoPath => match profiles::find(&state.profiles, req.method(), req.uri().path()) {
            Some((p, Found::Route(route, id))) => (route, id, p.style),
            Some((p, Found::WrongMethod(allowed))) => {
                return ApiError::method_not_allowed(&allowed.join(", ")).render(p.style);
            }
            _ => {
                return ApiError::not_found(format!("route {}", req.uri().path())).into_response();
            }
        },
    };
    match call(state, route, id, req).await {
        Ok(resp) => resp,
        Err(e) => e.render(style),
    }
}

/// Enforces the route's access, reads the body and runs its handler.
async fn call(
    state: &Arc<ApiState>,
    route: &'static Route,
    id: String,
    req: Request<Incoming>,
) -> Reply {
    // Authenticate, authorise and resolve the tenant before reading the body, so
    // anonymous or under-scoped callers cannot make us buffer megabytes.
    let (principal, tenant) = match route.access {
        Access::Public => (None, None),
        access => {
            let principal = auth::authenticate(
                req.headers(),
                state.admin_token.expose(),
                &state.registry,
                &state.store,
            )
            .await?;
            auth::require_portal_route(&principal, route.portal)?;
            let tenant = match access {
                Access::Tenant(scope) => {
                    auth::require(&principal, scope)?;
                    Some(auth::tenant_of(&principal, req.headers(), &state.registry)?)
                }
                _ => {
                    auth::require_admin(&principal)?;
                    None
                }
            };
            (Some(principal), tenant)
        }
    };
    let query = parse_query(req.uri().query().unwrap_or(""));
    let (parts, body) = req.into_parts();
    let body = match route.access {
        Access::Public => Bytes::new(),
        _ => {
            read_body(
                parts.headers.get(http::header::CONTENT_LENGTH),
                body,
                state.max_body_bytes,
            )
            .await?
        }
    };
    let call = Call {
        state,
        principal,
        tenant,
        id,
        req: Req {
            method: parts.method,
            headers: parts.headers,
            query,
            body,
        },
    };
    (route.handler)(&call).await
}

async fn read_body(
    content_length: Option<&http::HeaderValue>,
    body: Incoming,
    limit: usize,
) -> Result<Bytes, ApiError> {
    if let Some(len) = content_length
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > limit as u64
    {
        return Err(ApiError::too_large(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => {
            let bytes = collected.to_bytes();
            crate::delivery::alloc::churned(bytes.len());
            Ok(bytes)
        }
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::too_large(limit)),
        Err(e) => Err(ApiError::bad_request(format!(
            "cannot read the request body: {e}"
        ))),
    }
}

/// Splits a query string into decoded pairs (`+` is a space, `%XX` a byte; the
/// `application/x-www-form-urlencoded` rules).
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
