//! Event and delivery handlers: durable ingest (single and batch) with the fast
//! path into the engine, event reads, the delivery log, recover and manual retry.

use std::iter::once;

use http::StatusCode;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::webhooks::owned;
use super::{Call, Reply, dto, ok, reply, validate};
use crate::delivery::{plan_deliveries, wanted};
use crate::model::{DeliveryState, Event, UnixMs, new_id, now_ms, parse_rfc3339};
use crate::store::{DeliveryFilter, IngestItem, IngestOutcome, RecoverScope};

/// Builds the event and its deliveries for one validated spec.
fn prepare(call: &Call<'_>, tenant: &str, spec: validate::EventSpec, now: UnixMs) -> IngestItem {
    let body_hash = fingerprint(&spec);
    let event = Event {
        id: new_id("evt"),
        tenant: tenant.to_owned(),
        event_type: spec.event_type,
        payload: spec.data.get().to_owned(),
        channels: spec.channels,
        idempotency_key: spec.idempotency_key,
        created_at: now,
    };
    let targets = wanted(
        &event,
        call.state
            .registry
            .matching(tenant, &event.event_type, &event.channels),
    );
    let deliveries = plan_deliveries(
        &event,
        targets.iter().map(|w| w.id.as_str()),
        call.state.engine.first_delay_ms(),
        now,
    );
    IngestItem {
        event,
        deliveries,
        body_hash,
    }
}

/// 400 naming every event type missing from the tenant's catalogue (`events[i]: `
/// before each when `batch`).
fn known_types<'a>(
    call: &Call<'_>,
    tenant: &str,
    batch: bool,
    types: impl Iterator<Item = &'a str>,
) -> Result<(), ApiError> {
    let reasons: Vec<String> = types
        .enumerate()
        .filter(|(_, ty)| !call.state.registry.has_event_type(tenant, ty))
        .map(|(i, ty)| {
            let prefix = if batch {
                format!("events[{i}]: ")
            } else {
                String::new()
            };
            format!("{prefix}event type \"{ty}\" is not in the catalogue")
        })
        .collect();
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(reasons))
    }
}

/// What an idempotency key is bound to: the event's type, data (its exact bytes)
/// and channels, not the request's envelope. So a retry of the same event matches
/// whatever the whitespace or field order around `data`, whether the key came as
/// a header or a field, and whether it came alone or in a batch.
fn fingerprint(spec: &validate::EventSpec) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut part = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    part(spec.event_type.as_bytes());
    part(spec.data.get().as_bytes());
    for c in &spec.channels {
        part(c.as_bytes());
    }
    h.finalize().into()
}

/// A committed new event: counted, and its deliveries handed to the engine
/// without a store read (the fast path).
fn accepted(call: &Call<'_>, item: IngestItem) {
    let engine = &call.state.engine;
    engine.metrics().observe_ingest(&item.event.event_type, 1);
    engine.hand_over(item);
}

fn idempotency_header(call: &Call<'_>) -> Result<Option<String>, ApiError> {
    match call.req.headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.to_owned()))
            .map_err(|_| ApiError::bad_request("the Idempotency-Key header must be visible ASCII")),
    }
}

/// A committed outcome as the batch answer shows it, a new event handed to the
/// engine; `None` for a conflict or nothing stored.
fn settled(call: &Call<'_>, outcome: IngestOutcome, item: IngestItem) -> Option<dto::BatchItem> {
    let (id, deliveries, replayed) = match outcome {
        IngestOutcome::Created {
            event_id,
            deliveries,
        } => {
            accepted(call, item);
            (event_id, deliveries, false)
        }
        IngestOutcome::Replay {
            event_id,
            deliveries,
        } => (event_id, deliveries, true),
        IngestOutcome::Conflict { .. } | IngestOutcome::NotStored => return None,
    };
    Some(dto::BatchItem {
        id,
        deliveries,
        replayed,
    })
}

pub async fn ingest(call: &Call<'_>) -> Reply {
    let tenant = call.tenant()?;
    call.require_json_type()?;
    let header_key = idempotency_header(call)?;
    let spec =
        validate::event_create(&call.req.body, header_key.as_deref()).map_err(ApiError::invalid)?;
    known_types(call, &tenant, false, once(spec.event_type.as_str()))?;
    let item = prepare(call, &tenant, spec, now_ms());
    let key = caller_key(call);
    let answered = call.state.store.ingest_as(vec![item], key).await?.pop();
    if let Some((IngestOutcome::Conflict { event_id }, _)) = &answered {
        return Err(ApiError::conflict(format!(
            "idempotency key already used for event {event_id} with a different body"
        )));
    }
    match answered.and_then(|(outcome, item)| settled(call, outcome, item)) {
        Some(dto::BatchItem {
            id,
            deliveries,
            replayed,
        }) => {
            let status = if replayed {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            reply(status, &dto::IngestAccepted { id, deliveries })
        }
        None => Err(ApiError::unavailable("the store returned no outcome")),
    }
}

pub async fn ingest_batch(call: &Call<'_>) -> Reply {
    let tenant = call.tenant()?;
    call.require_json_type()?;
    let specs = validate::event_batch(&call.req.body).map_err(ApiError::invalid)?;
    let types = specs.iter().map(|s| s.event_type.as_str());
    known_types(call, &tenant, true, types)?;
    let now = now_ms();
    let items: Vec<IngestItem> = specs
        .into_iter()
        .map(|spec| prepare(call, &tenant, spec, now))
        .collect();
    let answered = call.state.store.ingest_as(items, caller_key(call)).await?;
    let conflicts: Vec<String> = answered
        .iter()
        .enumerate()
        .filter_map(|(i, (o, _))| match o {
            IngestOutcome::Conflict { event_id } => Some(format!(
                "events[{i}]: idempotency key already used for event {event_id} with a different body"
            )),
            _ => None,
        })
        .collect();
    if !conflicts.is_empty() {
        let e = ApiError::conflict("idempotency conflict; nothing was stored");
        return Err(e.with_reasons(conflicts));
    }
    let data = answered
        .into_iter()
        .filter_map(|(outcome, item)| settled(call, outcome, item))
        .collect();
    reply(StatusCode::ACCEPTED, &dto::BatchAccepted { data })
}

pub async fn get(call: &Call<'_>, id: &str) -> Reply {
    let tenant = call.tenant()?;
    let found = call.state.store.get_event(id.to_owned()).await?;
    let (event, deliveries) = found
        .filter(|(e, _)| e.tenant == tenant)
        .ok_or_else(|| ApiError::not_found(format!("event {id}")))?;
    ok(&dto::EventDetail::new(&event, &deliveries))
}

pub async fn list(call: &Call<'_>) -> Reply {
    let tenant = call.tenant()?;
    let (limit, cursor) = call.page()?;
    let since = match call.query("since") {
        None => None,
        Some(s) => Some(
            parse_rfc3339(s)
                .ok_or_else(|| ApiError::bad_request("since must be an RFC 3339 timestamp"))?,
        ),
    };
    let ty = call.query("type").map(str::to_owned);
    let (events, next) = call
        .state
        .store
        .list_events(tenant, ty, since, cursor, limit)
        .await?;
    let data = events.iter().map(dto::Event::new).collect();
    ok(&dto::EventList::new(data, next))
}

pub async fn webhook_deliveries(call: &Call<'_>, id: &str) -> Reply {
    let tenant = call.tenant()?;
    owned(call, &tenant, id)?;
    let (limit, cursor) = call.page()?;
    let filter = delivery_filter(call)?;
    let (items, next) = call
        .state
        .store
        .list_webhook_deliveries(id.to_owned(), filter, cursor, limit)
        .await?;
    let data = items.iter().map(dto::Delivery::new).collect();
    ok(&dto::DeliveryList::new(data, next))
}

/// The delivery log's filters (`status`, `event_type`, `since`, `until`), every
/// reason listed.
fn delivery_filter(call: &Call<'_>) -> Result<DeliveryFilter, ApiError> {
    let mut reasons = Vec::new();
    let mut time = |name: &str| match call.query(name) {
        None => None,
        Some(s) => parse_rfc3339(s).or_else(|| {
            reasons.push(format!("{name} must be an RFC 3339 timestamp"));
            None
        }),
    };
    let since = time("since");
    let until = time("until");
    let state = match call.query("status") {
        None => None,
        Some(s) => DeliveryState::parse(s).or_else(|| {
            reasons.push(
                "status must be one of pending, succeeded, failed, exhausted, cancelled".into(),
            );
            None
        }),
    };
    let event_type = match call.query("event_type") {
        Some("") => {
            reasons.push("event_type must not be empty".into());
            None
        }
        other => other.map(str::to_owned),
    };
    if reasons.is_empty() {
        Ok(DeliveryFilter {
            state,
            event_type,
            since,
            until,
        })
    } else {
        Err(ApiError::invalid(reasons))
    }
}

pub async fn recover(call: &Call<'_>, id: &str) -> Reply {
    let tenant = call.tenant()?;
    let webhook = owned(call, &tenant, id)?;
    let (since, dry_run) = validate::recover_spec(&call.json()?).map_err(ApiError::invalid)?;
    let store = &call.state.store;
    let (status, requeued) = if dry_run {
        let n = store.count_recoverable(webhook.id.clone(), since).await?;
        (StatusCode::OK, n)
    } else if !webhook.enabled {
        return Err(ApiError::conflict(
            "the webhook is disabled; enable it (PATCH enabled=true) before recovering",
        ));
    } else {
        let scope = RecoverScope {
            since,
            now: now_ms(),
        };
        let n = store.recover(webhook.id.clone(), scope).await?;
        call.state.engine.recovered(&webhook.id);
        (StatusCode::ACCEPTED, n)
    };
    reply(status, &dto::Recovered { requeued, dry_run })
}

pub async fn delivery(call: &Call<'_>, id: &str) -> Reply {
    let tenant = call.tenant()?;
    let found = call.state.store.get_delivery(id.to_owned()).await?;
    let (d, attempts) = found
        .filter(|(d, _)| d.tenant == tenant)
        .ok_or_else(|| ApiError::not_found(format!("delivery {id}")))?;
    ok(&dto::DeliveryDetail::new(&d, &attempts))
}

pub async fn retry(call: &Call<'_>, id: &str) -> Reply {
    let tenant = call.tenant()?;
    let found = call.state.store.delivery_with_event(id.to_owned()).await?;
    let (d, event) = found
        .filter(|(d, _)| d.tenant == tenant)
        .ok_or_else(|| ApiError::not_found(format!("delivery {id}")))?;
    let webhook = owned(call, &tenant, &d.webhook_id)?;
    if !webhook.enabled {
        return Err(ApiError::conflict(
            "the webhook is disabled; enable it (PATCH enabled=true) before retrying",
        ));
    }
    if let Some(head) = call.state.engine.line_head_before(&webhook, &d).await? {
        return Err(ApiError::conflict(format!(
            "delivery {id} is behind {head} in this webhook's FIFO line (ordering \"fifo\"); \
             it is attempted once the deliveries before it succeed, are exhausted or are cancelled"
        )));
    }
    let (attempt, updated) = call.state.engine.retry_now(&webhook, &d, &event).await?;
    ok(&dto::DeliveryRetried::new(&updated, &attempt))
}

/// The id of the API key the call was authorised by (`None` for the admin token),
/// which the store checks again when it commits the ingest: a key deleted with its
/// tenant while a slow body was arriving stores nothing under a re-created id.
fn caller_key(call: &Call<'_>) -> Option<String> {
    match &call.principal {
        Some(super::auth::Principal::Key(key)) => Some(key.id.clone()),
        _ => None,
    }
}
