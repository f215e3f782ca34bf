//! The HTTP API: routing, auth, wire types, validation and handlers. Handlers talk
//! to the store and registry; they never import redb or hyper's connection types.

mod auth;
pub mod dto;
mod error;
mod events;
pub mod filters;
mod handlers;
mod openapi;
mod portal;
pub mod profiles;
pub mod requests;
mod router;
pub mod routes;
pub mod server;
pub mod validate;
mod webhooks;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode, header};
use http_body_util::Full;

pub use error::ApiError;

use crate::delivery::Engine;
use crate::delivery::ssrf::Guard;
use crate::model::Secret;
use crate::registry::Registry;
use crate::store::Db;

/// Everything a handler may use. Shared by all connections.
pub struct ApiState {
    pub store: Db,
    pub registry: Registry,
    pub admin_token: Secret,
    pub max_body_bytes: usize,
    pub require_https: bool,
    /// Refuses blocked literal hosts at registration (the connector re-checks at send).
    pub guard: Guard,
    /// The catalogue every new tenant starts with (from config).
    pub seed_event_types: Vec<(String, Option<String>)>,
    /// The delivery engine: wakes on ingest, runs test events and manual retries.
    pub engine: Engine,
    /// The seed API profiles served beside `/v1` (config `[api] profiles`).
    pub profiles: Vec<crate::config::ApiProfile>,
    /// The portal page's shell, branding and headers (`[portal]`, `public_url`).
    pub portal: crate::portal::PortalSite,
}

/// A request whose body has been read within the size limit.
pub struct Req {
    pub method: Method,
    pub headers: HeaderMap,
    pub query: Vec<(String, String)>,
    pub body: Bytes,
}

/// One call, after dispatch has enforced its route's access (`routes.rs`).
pub struct Call<'a> {
    pub state: &'a Arc<ApiState>,
    /// Who is calling; `None` on public routes.
    pub principal: Option<auth::Principal>,
    /// The tenant a tenant route acts on (already checked to exist and to be the
    /// key's own); `None` on admin and public routes.
    pub tenant: Option<String>,
    /// The path parameter (`{id}`, `{name}`); empty when the route has none.
    pub id: String,
    pub req: Req,
}

impl Call<'_> {
    /// The tenant the call acts on. Dispatch resolved it from the route's access,
    /// so a handler never checks a scope itself.
    pub fn tenant(&self) -> Result<String, ApiError> {
        self.tenant
            .clone()
            .ok_or_else(|| ApiError::forbidden("this route does not act for a tenant"))
    }

    /// The path parameter.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The body as JSON (an empty body reads as `{}`); 415 unless the content type
    /// is JSON, 400 with the parser's reason when it is malformed.
    pub fn json(&self) -> Result<serde_json::Value, ApiError> {
        if self.req.body.is_empty() {
            return Ok(serde_json::Value::Object(Default::default()));
        }
        self.require_json_type()?;
        serde_json::from_slice(&self.req.body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
    }

    /// 415 unless the content type is `application/json` (parameters allowed).
    pub fn require_json_type(&self) -> Result<(), ApiError> {
        let ok = self
            .req
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                let v = v.trim();
                v.eq_ignore_ascii_case("application/json")
                    || v.to_ascii_lowercase().ends_with("+json")
            });
        if ok {
            Ok(())
        } else {
            Err(ApiError::unsupported_media_type())
        }
    }

    /// A query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.req
            .query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `limit` (1..=1000, default 50) and `cursor` query parameters.
    pub fn page(&self) -> Result<(usize, Option<String>), ApiError> {
        let limit = match self.query("limit") {
            None => 50,
            Some(s) => match s.parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => n,
                _ => {
                    return Err(ApiError::bad_request(
                        "limit must be an integer from 1 to 1000",
                    ));
                }
            },
        };
        let cursor = self
            .query("cursor")
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        Ok((limit, cursor))
    }
}

/// A JSON response of a wire type (`dto.rs`).
pub fn json_response<T: serde::Serialize + ?Sized>(
    status: StatusCode,
    body: &T,
) -> Response<Full<Bytes>> {
    // Wire types hold strings, numbers and maps with string keys, which always
    // serialize; the fallback only guards against a future type that does not.
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// A JSON answer of a wire type with `status`, as a [`Reply`].
pub fn reply<T: serde::Serialize + ?Sized>(status: StatusCode, body: &T) -> Reply {
    Ok(json_response(status, body))
}

/// A 200 JSON answer of a wire type, as a [`Reply`].
pub fn ok<T: serde::Serialize + ?Sized>(body: &T) -> Reply {
    reply(StatusCode::OK, body)
}

/// A 204 response.
pub fn no_content() -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

/// What a handler returns.
pub type Reply = Result<Response<Full<Bytes>>, ApiError>;
