//! Routing: maps a method and path to a handler, authenticates `/v1` calls before
//! reading their bodies, and reads bodies within `max_body_bytes`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use tracing::Instrument;

use super::error::ApiError;
use super::{ApiState, Call, Reply, Req, auth, events, handlers, webhooks};
use crate::model::new_id;

/// Every `/v1` route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Tenants,
    Tenant(String),
    ApiKeys,
    ApiKey(String),
    EventTypes,
    EventType(String),
    Webhooks,
    Webhook(String),
    WebhookSecrets(String),
    WebhookRotate(String),
    WebhookTest(String),
    WebhookDeliveries(String),
    WebhookRecover(String),
    Events,
    EventBatch,
    Event(String),
    Delivery(String),
    DeliveryRetry(String),
}

impl Route {
    /// Parses a path below `/v1/`.
    pub fn parse(path: &str) -> Option<Route> {
        let rest = path.strip_prefix("/v1/")?;
        let segs: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
        let id = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Some(match segs.as_slice() {
            ["tenants"] => Route::Tenants,
            ["tenants", t] => Route::Tenant(id(t)?),
            ["api-keys"] => Route::ApiKeys,
            ["api-keys", k] => Route::ApiKey(id(k)?),
            ["event-types"] => Route::EventTypes,
            ["event-types", n] => Route::EventType(id(n)?),
            ["webhooks"] => Route::Webhooks,
            ["webhooks", w] => Route::Webhook(id(w)?),
            ["webhooks", w, "secrets"] => Route::WebhookSecrets(id(w)?),
            ["webhooks", w, "secrets", "rotate"] => Route::WebhookRotate(id(w)?),
            ["webhooks", w, "test"] | ["webhooks", w, "test-event"] => Route::WebhookTest(id(w)?),
            ["webhooks", w, "deliveries"] => Route::WebhookDeliveries(id(w)?),
            ["webhooks", w, "recover"] => Route::WebhookRecover(id(w)?),
            ["events"] => Route::Events,
            ["events", "batch"] => Route::EventBatch,
            ["events", e] => Route::Event(id(e)?),
            ["deliveries", d] => Route::Delivery(id(d)?),
            ["deliveries", d, "retry"] => Route::DeliveryRetry(id(d)?),
            _ => return None,
        })
    }

    /// The methods this route answers, for 405 and `Allow`.
    pub fn allowed(&self) -> &'static [Method] {
        use Route::*;
        match self {
            Tenants | ApiKeys | EventTypes | Webhooks | Events => &[Method::GET, Method::POST],
            Tenant(_) | ApiKey(_) | EventType(_) => &[Method::GET, Method::DELETE],
            Webhook(_) => &[Method::GET, Method::PATCH, Method::DELETE],
            WebhookSecrets(_) | WebhookDeliveries(_) | Event(_) | Delivery(_) => &[Method::GET],
            WebhookRotate(_) | WebhookTest(_) | WebhookRecover(_) | EventBatch
            | DeliveryRetry(_) => &[Method::POST],
        }
    }
}

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
    let mut resp = async {
        match route(state, req).await {
            Ok(resp) => resp,
            // Inside the span, so an internal error's log line carries the request id.
            Err(e) => e.into_response(),
        }
    }
    .instrument(span.clone())
    .await;
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

async fn route(state: &Arc<ApiState>, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_owned();
    if let Some(resp) = handlers::operational(state, req.method(), &path) {
        return resp;
    }
    let route = Route::parse(&path).ok_or_else(|| ApiError::not_found(format!("route {path}")))?;
    let allowed = route.allowed();
    if !allowed.contains(req.method()) {
        let list: Vec<&str> = allowed.iter().map(Method::as_str).collect();
        return Err(ApiError::method_not_allowed(&list.join(", ")));
    }
    // Authenticate before reading the body, so anonymous callers cannot make us
    // buffer megabytes.
    let principal = auth::authenticate(req.headers(), state.admin_token.expose(), &state.registry)?;
    let query = parse_query(req.uri().query().unwrap_or(""));
    let (parts, body) = req.into_parts();
    let body = read_body(
        parts.headers.get(http::header::CONTENT_LENGTH),
        body,
        state.max_body_bytes,
    )
    .await?;
    let call = Call {
        state,
        principal,
        req: Req {
            method: parts.method,
            headers: parts.headers,
            query,
            body,
        },
    };
    let m = &call.req.method;
    use Route::*;
    match route {
        Tenants if m == Method::POST => handlers::create_tenant(&call).await,
        Tenants => handlers::list_tenants(&call),
        Tenant(id) if m == Method::DELETE => handlers::delete_tenant(&call, id).await,
        Tenant(id) => handlers::get_tenant(&call, &id),
        ApiKeys if m == Method::POST => handlers::create_key(&call).await,
        ApiKeys => handlers::list_keys(&call),
        ApiKey(id) if m == Method::DELETE => handlers::delete_key(&call, id).await,
        ApiKey(id) => handlers::get_key(&call, &id),
        EventTypes if m == Method::POST => handlers::create_event_type(&call).await,
        EventTypes => handlers::list_event_types(&call),
        EventType(name) if m == Method::DELETE => handlers::delete_event_type(&call, name).await,
        EventType(name) => handlers::get_event_type(&call, &name),
        Webhooks if m == Method::POST => webhooks::create(&call).await,
        Webhooks => webhooks::list(&call),
        Webhook(id) if m == Method::PATCH => webhooks::update(&call, &id).await,
        Webhook(id) if m == Method::DELETE => webhooks::delete(&call, &id).await,
        Webhook(id) => webhooks::get(&call, &id),
        WebhookSecrets(id) => webhooks::secrets(&call, &id),
        WebhookRotate(id) => webhooks::rotate(&call, &id).await,
        WebhookTest(id) => webhooks::test(&call, &id).await,
        WebhookDeliveries(id) => events::webhook_deliveries(&call, &id).await,
        WebhookRecover(id) => events::recover(&call, &id).await,
        Events if m == Method::POST => events::ingest(&call).await,
        Events => events::list(&call).await,
        EventBatch => events::ingest_batch(&call).await,
        Event(id) => events::get(&call, &id).await,
        Delivery(id) => events::delivery(&call, &id).await,
        DeliveryRetry(id) => events::retry(&call, &id).await,
    }
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
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::too_large(limit)),
        Err(e) => Err(ApiError::bad_request(format!(
            "cannot read the request body: {e}"
        ))),
    }
}

/// Splits a query string into decoded pairs (`+` is a space, `%XX` a byte).
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse() {
        assert_eq!(Route::parse("/v1/webhooks"), Some(Route::Webhooks));
        assert_eq!(Route::parse("/v1/webhooks/"), Some(Route::Webhooks));
        assert_eq!(
            Route::parse("/v1/webhooks/wh_1/secrets/rotate"),
            Some(Route::WebhookRotate("wh_1".into()))
        );
        assert_eq!(Route::parse("/v1/events/batch"), Some(Route::EventBatch));
        assert_eq!(Route::parse("/v1/nope"), None);
        assert_eq!(Route::parse("/v2/webhooks"), None);
        assert_eq!(Route::parse("/v1/webhooks//secrets"), None);
    }

    #[test]
    fn request_ids_are_adopted_only_when_sane() {
        let cases = [
            ("abc-123", true),
            ("trace:01H.x_y", true),
            ("", false),
            ("has space", false),
            ("new\nline", false),
            ("quote\"", false),
        ];
        for (id, sane) in cases {
            assert_eq!(is_sane_request_id(id), sane, "{id:?}");
        }
        assert!(is_sane_request_id(&"a".repeat(64)));
        assert!(!is_sane_request_id(&"a".repeat(65)));

        let mut headers = HeaderMap::new();
        headers.insert(X_REQUEST_ID, HeaderValue::from_static("given-1"));
        assert_eq!(request_id(&headers), "given-1");
        headers.insert(X_REQUEST_ID, HeaderValue::from_static("bad id"));
        assert!(request_id(&headers).starts_with("req_"));
        assert!(request_id(&HeaderMap::new()).starts_with("req_"));
    }

    #[test]
    fn if_match_parsing() {
        let parse = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(http::header::IF_MATCH, HeaderValue::from_str(v).unwrap());
            }
            IfMatch::parse(&h)
        };
        assert_eq!(parse(&[]), None);
        assert_eq!(parse(&["*"]), Some(IfMatch::Any));
        assert_eq!(parse(&["\"3\""]), Some(IfMatch::Versions(vec![3])));
        assert_eq!(
            parse(&["\"3\", W/\"4\" , \"5\"", "\"6\""]),
            Some(IfMatch::Versions(vec![3, 5, 6]))
        );
        let garbage = parse(&["3", "W/\"4\"", "\"x\""]).unwrap();
        assert_eq!(garbage, IfMatch::Versions(vec![]));
        assert!(!garbage.matches(3) && !garbage.matches(4));
        assert!(IfMatch::Any.matches(9));
        assert!(IfMatch::Versions(vec![2, 9]).matches(9));
    }

    #[test]
    fn query_decoding() {
        assert_eq!(
            parse_query("since=2026-01-01T00%3A00%3A00Z&limit=5&x"),
            vec![
                ("since".into(), "2026-01-01T00:00:00Z".into()),
                ("limit".into(), "5".into()),
                ("x".into(), "".into())
            ]
        );
        assert_eq!(parse_query("a=%zz%4"), vec![("a".into(), "%zz%4".into())]);
        assert_eq!(parse_query("a=%41%"), vec![("a".into(), "A%".into())]);
    }
}
