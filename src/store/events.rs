//! Store operations on events: the durable ingest commit (event, its deliveries and
//! the due index in one transaction, with idempotency) and event reads.

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::tables::*;
use super::{Store, StoreError, decode, encode};
use crate::model::{Delivery, Event, UnixMs};

/// One event to ingest with the deliveries it fans out to.
#[derive(Debug, Clone)]
pub struct IngestItem {
    pub event: Event,
    /// Deliveries in state pending, each with `next_attempt_at` set.
    pub deliveries: Vec<Delivery>,
    /// A hash of the event (type, data, channels), compared when the idempotency
    /// key repeats.
    pub body_hash: [u8; 32],
}

/// What ingesting one item did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Stored now, with this many deliveries.
    Created { event_id: String, deliveries: u32 },
    /// The idempotency key was seen with the same body: the first answer.
    Replay { event_id: String, deliveries: u32 },
    /// The idempotency key was seen with a different body; nothing written.
    Conflict { event_id: String },
    /// Another item of the same call conflicted, so this one was not written either.
    NotStored,
}

#[derive(Serialize, Deserialize)]
struct IdempotencyRecord {
    body_hash: [u8; 32],
    event_id: String,
    deliveries: u32,
    created_at: UnixMs,
}

impl Store {
    /// Stores events with their deliveries in one durable commit shared with other
    /// concurrent callers (group commit); returns after the fsync. Idempotency keys
    /// are resolved first: if any item conflicts, nothing at all is written.
    pub async fn ingest(&self, items: Vec<IngestItem>) -> Result<Vec<IngestOutcome>, StoreError> {
        self.write(true, move |txn| {
            let mut seen = Vec::with_capacity(items.len());
            for item in &items {
                seen.push(idempotent_answer(txn, item)?);
            }
            if seen
                .iter()
                .any(|o| matches!(o, Some(IngestOutcome::Conflict { .. })))
            {
                // One answer per item, in order, so callers can say which conflicted.
                return Ok(seen
                    .into_iter()
                    .map(|o| match o {
                        Some(c @ IngestOutcome::Conflict { .. }) => c,
                        _ => IngestOutcome::NotStored,
                    })
                    .collect());
            }
            let mut out = Vec::with_capacity(items.len());
            for (item, answer) in items.iter().zip(seen) {
                out.push(match answer {
                    Some(replay) => replay,
                    None => insert(txn, item)?,
                });
            }
            Ok(out)
        })
        .await
    }

    /// An event with its deliveries, if it exists.
    pub fn get_event(&self, id: &str) -> Result<Option<(Event, Vec<Delivery>)>, StoreError> {
        let txn = self.read()?;
        let events = txn.open_table(EVENTS)?;
        let event: Event = match events.get(id)? {
            Some(v) => decode("events", v.value())?,
            None => return Ok(None),
        };
        let index = txn.open_table(EVENT_DELIVERIES)?;
        let deliveries = txn.open_table(DELIVERIES)?;
        let mut out = Vec::new();
        for row in index.range((id, "")..)? {
            let (k, _) = row?;
            let (evt, dlv) = k.value();
            if evt != id {
                break;
            }
            if let Some(v) = deliveries.get(dlv)? {
                out.push(decode("deliveries", v.value())?);
            }
        }
        Ok(Some((event, out)))
    }

    /// A tenant's events, newest first, optionally of one type and not older than
    /// `since`; `cursor` is the last id of the previous page.
    pub fn list_events(
        &self,
        tenant: &str,
        event_type: Option<&str>,
        since: Option<UnixMs>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Event>, Option<String>), StoreError> {
        let txn = self.read()?;
        let index = txn.open_table(TENANT_EVENTS)?;
        let events = txn.open_table(EVENTS)?;
        let floor = since.map(|ms| super::deliveries::id_floor("evt", ms));
        let lower = (tenant, floor.as_deref().unwrap_or(""));
        let mut out = Vec::new();
        let range = match cursor {
            Some(c) => index.range(lower..(tenant, c))?,
            None => index.range(lower..=(tenant, "\u{10ffff}"))?,
        };
        for row in range.rev() {
            let (k, _) = row?;
            let (t, id) = k.value();
            if t != tenant {
                continue;
            }
            let Some(v) = events.get(id)? else { continue };
            let event: Event = decode("events", v.value())?;
            if event_type.is_some_and(|ty| ty != event.event_type) {
                continue;
            }
            if out.len() == limit {
                let next = out.last().map(|e: &Event| e.id.clone());
                return Ok((out, next));
            }
            out.push(event);
        }
        Ok((out, None))
    }
}

/// The earlier answer when the item's idempotency key was seen before.
fn idempotent_answer(
    txn: &WriteTransaction,
    item: &IngestItem,
) -> Result<Option<IngestOutcome>, StoreError> {
    let event = &item.event;
    let Some(key) = &event.idempotency_key else {
        return Ok(None);
    };
    let idem = txn.open_table(IDEMPOTENCY)?;
    let Some(v) = idem.get((event.tenant.as_str(), key.as_str()))? else {
        return Ok(None);
    };
    let seen: IdempotencyRecord = decode("idempotency", v.value())?;
    Ok(Some(if seen.body_hash == item.body_hash {
        IngestOutcome::Replay {
            event_id: seen.event_id,
            deliveries: seen.deliveries,
        }
    } else {
        IngestOutcome::Conflict {
            event_id: seen.event_id,
        }
    }))
}

/// Writes one new event, its deliveries and their index entries.
fn insert(txn: &WriteTransaction, item: &IngestItem) -> Result<IngestOutcome, StoreError> {
    let event = &item.event;
    let mut idem = txn.open_table(IDEMPOTENCY)?;
    let count = item.deliveries.len() as u32;
    let event_bytes = encode("events", event)?;
    let mut encoded = Vec::with_capacity(item.deliveries.len());
    for d in &item.deliveries {
        encoded.push(encode("deliveries", d)?);
    }
    let idem_bytes = match &event.idempotency_key {
        Some(_) => Some(encode(
            "idempotency",
            &IdempotencyRecord {
                body_hash: item.body_hash,
                event_id: event.id.clone(),
                deliveries: count,
                created_at: event.created_at,
            },
        )?),
        None => None,
    };

    txn.open_table(EVENTS)?
        .insert(event.id.as_str(), event_bytes.as_slice())?;
    txn.open_table(TENANT_EVENTS)?
        .insert((event.tenant.as_str(), event.id.as_str()), ())?;
    if let (Some(key), Some(bytes)) = (&event.idempotency_key, &idem_bytes) {
        idem.insert((event.tenant.as_str(), key.as_str()), bytes.as_slice())?;
    }
    if !item.deliveries.is_empty() {
        let mut deliveries = txn.open_table(DELIVERIES)?;
        let mut by_webhook = txn.open_table(WEBHOOK_DELIVERIES)?;
        let mut by_event = txn.open_table(EVENT_DELIVERIES)?;
        let mut due = txn.open_table(DUE)?;
        let mut pending = txn.open_table(PENDING)?;
        for (d, bytes) in item.deliveries.iter().zip(&encoded) {
            let at = d.next_attempt_at.unwrap_or(d.created_at).max(0) as u64;
            deliveries.insert(d.id.as_str(), bytes.as_slice())?;
            by_webhook.insert((d.webhook_id.as_str(), d.id.as_str()), ())?;
            by_event.insert((event.id.as_str(), d.id.as_str()), ())?;
            due.insert((at, d.id.as_str()), d.webhook_id.as_str())?;
            pending.insert((d.webhook_id.as_str(), d.id.as_str()), at)?;
        }
    }
    Ok(IngestOutcome::Created {
        event_id: event.id.clone(),
        deliveries: count,
    })
}
