//! `POST /v1/webhooks/{id}/filter/test`: whether an event would pass a webhook's
//! payload filter, and which conditions failed. Holds the route's request and
//! response wire types and its handler; it reads the registry and never writes
//! anything (no event is stored, nothing is delivered).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

use super::error::ApiError;
use super::validate::MAX_EVENT_TYPE_LEN;
use super::webhooks::owned;
use super::{Call, Reply, dto, ok, validate};
use crate::filter::Subject;

/// `POST /v1/webhooks/{id}/filter/test`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterTest {
    pub event: FilterTestEvent,
}

/// The event to try, shaped like the delivered body. It need not be in the
/// catalogue, and it is not stored.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterTestEvent {
    /// The event type.
    #[serde(rename = "type")]
    #[schema(schema_with = event_type)]
    pub event_type: String,
    /// The payload (any JSON).
    #[schema(schema_with = dto::any_json)]
    pub data: serde_json::Value,
    /// The event's time (RFC 3339); now when absent.
    #[schema(format = DateTime)]
    pub timestamp: Option<String>,
}

fn event_type() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_EVENT_TYPE_LEN))
        .pattern(Some(r"\S"))
        .build()
}

/// The answer: whether the event passes the webhook's filter (always true for a
/// webhook without one), and one reason per failed condition, naming its path.
/// Event types and channels are not considered: only the filter.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterTestResult {
    pub matches: bool,
    /// Empty exactly when `matches` is true.
    pub reasons: Vec<String>,
}

pub async fn test(call: &Call<'_>, id: &str) -> Reply {
    let tenant = call.tenant()?;
    let w = owned(call, &tenant, id)?;
    let body = call.json()?;
    let spec = validate::filter_test(&body).map_err(ApiError::invalid)?;
    let reasons = match &w.filter {
        Some(filter) => {
            let subject = Subject::new(&spec.event_type, spec.timestamp, &spec.data);
            filter.explain(&subject)
        }
        None => Vec::new(),
    };
    ok(&FilterTestResult {
        matches: reasons.is_empty(),
        reasons,
    })
}
