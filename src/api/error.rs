//! The one place that turns errors into HTTP responses, and the error body's wire
//! type (`Error`, with its derived schema). Internal causes are logged
//! with their whole chain and never sent to the client.

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;

use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;

/// An error answer: status, machine code, message and every reason.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub reasons: Vec<String>,
    /// Extra headers (e.g. `Allow` on 405).
    pub headers: Vec<(header::HeaderName, String)>,
}

/// Every error status but 500 (`internal`, "Internal server error"): its machine
/// code and title.
const KINDS: &[(u16, &str, &str)] = &[
    (400, "bad_request", "Bad request"),
    (401, "unauthorized", "Unauthorized"),
    (403, "forbidden", "Forbidden"),
    (404, "not_found", "Not found"),
    (405, "method_not_allowed", "Method not allowed"),
    (409, "conflict", "Conflict"),
    (412, "precondition_failed", "Precondition failed"),
    (413, "payload_too_large", "Payload too large"),
    (415, "unsupported_media_type", "Unsupported media type"),
    (429, "too_many_requests", "Too many requests"),
    (503, "unavailable", "Service unavailable"),
    (502, "bad_gateway", "Bad gateway"),
];

impl ApiError {
    /// An error of `status` (its code from [`KINDS`]) with `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        let kind = KINDS.iter().find(|k| k.0 == status.as_u16());
        let code = kind.map_or("internal", |k| k.1);
        ApiError {
            status,
            code,
            message: message.into(),
            reasons: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// This error with `reasons`.
    pub fn with_reasons(mut self, reasons: Vec<String>) -> Self {
        self.reasons = reasons;
        self
    }

    /// 400 with every validation reason.
    pub fn invalid(reasons: Vec<String>) -> Self {
        let message = "One or more of the inputs were invalid";
        Self::new(StatusCode::BAD_REQUEST, message).with_reasons(reasons)
    }

    /// 400 with one reason.
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::invalid(vec![reason.into()])
    }

    /// 401.
    pub fn unauthorized() -> Self {
        let message = "A valid API key or admin token is required (Authorization: Bearer <key>)";
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 403 naming what is missing.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 404.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{} not found", what.into()))
    }

    /// 405 with the allowed methods.
    pub fn method_not_allowed(allow: &str) -> Self {
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("allowed methods: {allow}"),
        );
        e.headers.push((header::ALLOW, allow.to_owned()));
        e
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// 413.
    pub fn too_large(limit: usize) -> Self {
        let message = format!("the request body is larger than {limit} bytes");
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }

    /// 415.
    pub fn unsupported_media_type() -> Self {
        let message = "the request body must be application/json";
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, message)
    }

    /// 502: a receiver did not accept a test event sent on the caller's behalf.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, message)
    }

    /// 503: the store cannot write (disk full, read-only) or is shutting down.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, reason)
    }

    /// 500 for an internal failure: the cause is logged, the client sees nothing of it.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        tracing::error!(error = %chain, "internal error");
        let message = "internal error; the cause is in the server log";
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The response for this error in hookbox's shape.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        self.render(ErrorStyle::Hookbox)
    }

    /// The response for this error in `style`.
    pub fn render(self, style: ErrorStyle) -> Response<Full<Bytes>> {
        let mut resp = match style {
            ErrorStyle::Hookbox => {
                let body = Error::new(self.code, &self.message, &self.reasons);
                super::json_response(self.status, &body)
            }
            ErrorStyle::Nest => nest_response(&self),
        };
        for (name, value) in self.headers {
            if let Ok(v) = http::HeaderValue::from_str(&value) {
                resp.headers_mut().insert(name, v);
            }
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => ApiError::conflict(format!("{what} already exists")),
            StoreError::NotFound(what) => ApiError::not_found(what),
            // The key was deleted (with its tenant, or revoked) while the request
            // was being read: as if it had been presented after the deletion.
            StoreError::Revoked(_) => ApiError::unauthorized(),
            StoreError::Unavailable(reason) => {
                ApiError::unavailable(format!("the store cannot accept writes: {reason}"))
            }
            StoreError::Closed => ApiError::unavailable("the server is shutting down"),
            other => ApiError::internal(&other),
        }
    }
}

/// How a route's errors are shaped: hookbox's own, or the NestJS shape seed 004
/// documents. The status and the reasons are the same in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStyle {
    /// `{"error": {"code", "title", "message", "reasons"}}` (DESIGN.md section 2;
    /// also seed 003's shape).
    Hookbox,
    /// Seed 004: `{"message": [...], "error": "Bad Request", "statusCode": 400}`,
    /// `{"message": "Unauthorized", "statusCode": 401}`, `{"message": "Forbidden
    /// Resource", "error": "Forbidden", "statusCode": 403}`, and `{"message",
    /// "error", "statusCode"}` for every other status.
    Nest,
}

/// A body in seed 004's error shape.
fn nest_response(e: &ApiError) -> Response<Full<Bytes>> {
    let status_code = e.status.as_u16();
    let error = e.status.canonical_reason().unwrap_or("Error");
    match e.status {
        StatusCode::BAD_REQUEST => {
            let message = match e.reasons.is_empty() {
                true => std::slice::from_ref(&e.message),
                false => &e.reasons,
            };
            let body = NestBadRequest {
                message,
                error,
                status_code,
            };
            super::json_response(e.status, &body)
        }
        StatusCode::UNAUTHORIZED => {
            let body = NestUnauthorized {
                message: "Unauthorized",
                status_code,
            };
            super::json_response(e.status, &body)
        }
        status => {
            let message = match status {
                StatusCode::FORBIDDEN => "Forbidden Resource",
                _ => &e.message,
            };
            super::json_response(
                e.status,
                &NestError {
                    message,
                    error,
                    status_code,
                },
            )
        }
    }
}

/// Seed 004's 400: every reason in `message`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NestBadRequest<'a> {
    /// Every problem found.
    pub message: &'a [String],
    /// `"Bad Request"`.
    pub error: &'a str,
    /// 400.
    pub status_code: u16,
}

/// Seed 004's 401.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NestUnauthorized<'a> {
    /// `"Unauthorized"`.
    pub message: &'a str,
    /// 401.
    pub status_code: u16,
}

/// Seed 004's shape for every other error (403 is `"Forbidden Resource"`).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NestError<'a> {
    /// What went wrong.
    pub message: &'a str,
    /// The status's reason phrase (`"Forbidden"`, `"Not Found"`).
    pub error: &'a str,
    /// The HTTP status.
    pub status_code: u16,
}

/// The error codes, one per status.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PreconditionFailed,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unavailable,
    BadGateway,
    Internal,
}

/// The inside of an error body.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail<'a> {
    #[schema(value_type = ErrorCode)]
    pub code: &'a str,
    pub title: &'static str,
    pub message: &'a str,
    /// Every problem found; empty when there is none to list.
    pub reasons: &'a [String],
}

/// Every error answer: `{"error": {...}}`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Error<'a> {
    pub error: ErrorDetail<'a>,
}

impl<'a> Error<'a> {
    /// An error body. `reasons` is always present (an empty array when there is
    /// nothing to list), so clients can read it without checking for its absence.
    pub fn new(code: &'a str, message: &'a str, reasons: &'a [String]) -> Self {
        let title = KINDS
            .iter()
            .find(|k| k.1 == code)
            .map_or("Internal server error", |k| k.2);
        Error {
            error: ErrorDetail {
                code,
                title,
                message,
                reasons,
            },
        }
    }
}
