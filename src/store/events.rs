//! Store operations on events: the durable ingest commit (event, its deliveries and
//! the due index in one transaction, with idempotency) and event reads.

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::tables::*;
use super::{
    Store, StoreError, decode_at, decode_event, decode_plain, delivery_ids, encode_event,
    encode_keyed, encode_plain,
};
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

/// What the idempotency table holds per `(tenant, key)`: the first answer.
#[derive(Serialize, Deserialize)]
pub(super) struct IdempotencyRecord {
    pub(super) body_hash: [u8; 32],
    pub(super) event_id: String,
    pub(super) deliveries: u32,
    pub(super) created_at: UnixMs,
}

/// Each item's outcome, with the item handed back (so callers need not clone it).
pub type Ingested = Vec<(IngestOutcome, IngestItem)>;

/// What one `ingest` call waits for.
type IngestReply = tokio::sync::oneshot::Sender<Result<Ingested, StoreError>>;

/// One queued `ingest` call: its items, the API key it was authorised by (checked
/// again in the writer job), and where its answer goes.
type IngestCall = (Vec<IngestItem>, Option<String>, IngestReply);

/// Ingest calls waiting for the writer. Concurrent calls are combined into one
/// writer job (flat combining): the first caller submits the job, later callers only
/// join the queue, and the job takes everything queued when it runs. The tables are
/// then opened once per commit instead of once per call.
#[derive(Default)]
pub(super) struct IngestQueue {
    calls: Vec<IngestCall>,
    /// A job that will take `calls` is in the writer's queue.
    submitted: bool,
}

/// Answers the calls of a job that never ran (the writer refused it), so that none
/// waits forever and the next call submits a new job.
struct DrainOnDrop {
    queue: std::sync::Arc<std::sync::Mutex<IngestQueue>>,
    armed: bool,
}

impl DrainOnDrop {
    fn take(mut self) -> Vec<IngestCall> {
        self.armed = false;
        take_calls(&self.queue)
    }
}

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        if self.armed {
            for (_, _, reply) in take_calls(&self.queue) {
                let _ = reply.send(Err(StoreError::Unavailable(
                    "the write was not committed; the store cannot write".into(),
                )));
            }
        }
    }
}

fn take_calls(queue: &std::sync::Mutex<IngestQueue>) -> Vec<IngestCall> {
    let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
    q.submitted = false;
    std::mem::take(&mut q.calls)
}

impl Store {
    /// Stores events with their deliveries in one durable commit shared with other
    /// concurrent callers (group commit); returns after the fsync. Idempotency keys
    /// are resolved first: if any item of this call conflicts, nothing of it is
    /// written. Answers one outcome per item, in order, with the item itself.
    pub async fn ingest(&self, items: Vec<IngestItem>) -> Result<Ingested, StoreError> {
        self.ingest_as(items, None).await
    }

    /// [`Store::ingest`] for a caller authorised by API key `key_id`: the writer job
    /// checks that the key still exists when it commits, so a request that
    /// authenticated before its key (or tenant) was deleted stores nothing
    /// ([`StoreError::Revoked`]) even if the tenant id was created again meanwhile.
    pub async fn ingest_as(
        &self,
        items: Vec<IngestItem>,
        key_id: Option<String>,
    ) -> Result<Ingested, StoreError> {
        let writer = self.writer()?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let queue = self.inner.ingest_queue.clone();
        let submit = {
            let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
            q.calls.push((items, key_id, reply));
            !std::mem::replace(&mut q.submitted, true)
        };
        if submit {
            let guard = DrainOnDrop { queue, armed: true };
            let job: super::writer::Job = Box::new(move |txn| {
                let calls = guard.take();
                let results = ingest_calls(txn, &calls);
                Box::new(move |commit: Result<(), StoreError>| {
                    let failure = commit.err().map(|e| match e {
                        StoreError::Unavailable(msg) => msg,
                        other => other.to_string(),
                    });
                    for ((items, _, reply), result) in calls.into_iter().zip(results) {
                        let _ = reply.send(match &failure {
                            Some(msg) => Err(StoreError::Unavailable(msg.clone())),
                            None => {
                                result.map(|outcomes| outcomes.into_iter().zip(items).collect())
                            }
                        });
                    }
                })
            });
            // A refused job is dropped, and its guard answers everyone queued.
            writer.send(true, job);
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// An event with its deliveries, if it exists.
    pub fn get_event(&self, id: &str) -> Result<Option<(Event, Vec<Delivery>)>, StoreError> {
        let txn = self.read()?;
        let events = txn.open_table(EVENTS)?;
        let (event, listed) = match events.get(id)? {
            Some(v) => decode_event(id, v.value())?,
            None => return Ok(None),
        };
        let ids = delivery_ids(&txn.open_table(EVENT_DELIVERIES)?, id, listed)?;
        let deliveries = txn.open_table(DELIVERIES)?;
        let mut out = Vec::with_capacity(ids.len());
        for dlv in &ids {
            if let Some(v) = deliveries.get(dlv.as_str())? {
                out.push(decode_at("deliveries", dlv.as_str(), v.value())?);
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
            let (event, _) = decode_event(id, v.value())?;
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

/// The tables an ingest writes, opened once per commit.
struct IngestTables<'t> {
    idempotency: redb::Table<'t, (&'static str, &'static str), &'static [u8]>,
    events: redb::Table<'t, &'static str, &'static [u8]>,
    tenant_events: redb::Table<'t, (&'static str, &'static str), ()>,
    deliveries: redb::Table<'t, &'static str, &'static [u8]>,
    by_webhook: redb::Table<'t, (&'static str, &'static str), ()>,
    due: redb::Table<'t, (u64, &'static str), &'static str>,
    pending: redb::Table<'t, (&'static str, &'static str), u64>,
    api_keys: redb::Table<'t, &'static str, &'static [u8]>,
}

impl<'t> IngestTables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(IngestTables {
            idempotency: txn.open_table(IDEMPOTENCY)?,
            events: txn.open_table(EVENTS)?,
            tenant_events: txn.open_table(TENANT_EVENTS)?,
            deliveries: txn.open_table(DELIVERIES)?,
            by_webhook: txn.open_table(WEBHOOK_DELIVERIES)?,
            due: txn.open_table(DUE)?,
            pending: txn.open_table(PENDING)?,
            api_keys: txn.open_table(API_KEYS)?,
        })
    }
}

/// Runs every queued call in order; one result per call.
fn ingest_calls(
    txn: &WriteTransaction,
    calls: &[IngestCall],
) -> Vec<Result<Vec<IngestOutcome>, StoreError>> {
    let mut tables = match IngestTables::open(txn) {
        Ok(t) => t,
        Err(e) => {
            let msg = e.to_string();
            return calls
                .iter()
                .map(|_| Err(StoreError::Unavailable(msg.clone())))
                .collect();
        }
    };
    calls
        .iter()
        .map(|(items, key_id, _)| match key_id {
            Some(id) => match tables.api_keys.get(id.as_str()).map(|k| k.is_some()) {
                Ok(true) => ingest_call(&mut tables, items),
                Ok(false) => Err(StoreError::Revoked(id.clone())),
                Err(e) => Err(e.into()),
            },
            None => ingest_call(&mut tables, items),
        })
        .collect()
}

/// One call: all-or-nothing on idempotency conflicts.
fn ingest_call(
    t: &mut IngestTables,
    items: &[IngestItem],
) -> Result<Vec<IngestOutcome>, StoreError> {
    let mut seen = Vec::with_capacity(items.len());
    for item in items {
        seen.push(idempotent_answer(t, item)?);
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
            None => insert(t, item)?,
        });
    }
    Ok(out)
}

/// The earlier answer when the item's idempotency key was seen before.
fn idempotent_answer(
    t: &IngestTables,
    item: &IngestItem,
) -> Result<Option<IngestOutcome>, StoreError> {
    let event = &item.event;
    let Some(key) = &event.idempotency_key else {
        return Ok(None);
    };
    let Some(v) = t.idempotency.get((event.tenant.as_str(), key.as_str()))? else {
        return Ok(None);
    };
    let seen: IdempotencyRecord = decode_plain("idempotency", v.value())?;
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

/// Writes one new event (listing its deliveries), its deliveries and their index
/// entries.
fn insert(t: &mut IngestTables, item: &IngestItem) -> Result<IngestOutcome, StoreError> {
    let event = &item.event;
    let count = item.deliveries.len() as u32;
    let event_bytes = encode_event(event, item.deliveries.iter().map(|d| d.id.as_str()))?;
    let mut encoded = Vec::with_capacity(item.deliveries.len());
    for d in &item.deliveries {
        encoded.push(encode_keyed("deliveries", d)?);
    }
    if let Some(key) = &event.idempotency_key {
        let bytes = encode_plain(
            "idempotency",
            &IdempotencyRecord {
                body_hash: item.body_hash,
                event_id: event.id.clone(),
                deliveries: count,
                created_at: event.created_at,
            },
        )?;
        t.idempotency
            .insert((event.tenant.as_str(), key.as_str()), bytes.as_slice())?;
    }
    t.events.insert(event.id.as_str(), event_bytes.as_slice())?;
    t.tenant_events
        .insert((event.tenant.as_str(), event.id.as_str()), ())?;
    for (d, bytes) in item.deliveries.iter().zip(&encoded) {
        let at = d.next_attempt_at.unwrap_or(d.created_at).max(0) as u64;
        t.deliveries.insert(d.id.as_str(), bytes.as_slice())?;
        t.by_webhook
            .insert((d.webhook_id.as_str(), d.id.as_str()), ())?;
        t.due.insert((at, d.id.as_str()), d.webhook_id.as_str())?;
        t.pending
            .insert((d.webhook_id.as_str(), d.id.as_str()), at)?;
    }
    Ok(IngestOutcome::Created {
        event_id: event.id.clone(),
        deliveries: count,
    })
}

#[cfg(test)]
mod key_tests {
    use super::*;
    use crate::model::{ApiKey, Scope, Tenant};
    use crate::secrets::Cipher;

    fn item(tenant: &str) -> IngestItem {
        IngestItem {
            event: Event {
                id: crate::model::new_id("evt"),
                tenant: tenant.into(),
                event_type: "t".into(),
                payload: "{}".into(),
                channels: Vec::new(),
                idempotency_key: None,
                created_at: 1,
            },
            deliveries: Vec::new(),
            body_hash: [0; 32],
        }
    }

    /// An ingest authorised by a key that was deleted before the commit (a slow body
    /// racing a tenant delete and re-create) stores nothing; a live key stores.
    #[tokio::test]
    async fn an_ingest_by_a_key_deleted_before_the_commit_stores_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            Store::open(&dir.path().join("t.redb"), Cipher::new(&[3; 32]), 1 << 20).expect("open");
        let tenant = Tenant {
            id: "t3".into(),
            name: "T3".into(),
            created_at: 1,
        };
        store
            .create_tenant(tenant, Vec::new())
            .await
            .expect("tenant");
        let key = ApiKey {
            id: "key_1".into(),
            tenant: "t3".into(),
            name: "k".into(),
            scopes: vec![Scope::EventsWrite],
            hash: [7; 32],
            prefix: "hbk_x".into(),
            created_at: 1,
        };
        store.create_api_key(key).await.expect("key");
        let kept = store
            .ingest_as(vec![item("t3")], Some("key_1".into()))
            .await
            .expect("ingest with a live key");
        assert!(matches!(kept[0].0, IngestOutcome::Created { .. }));

        store.delete_api_key("key_1".into()).await.expect("revoke");
        let late = item("t3");
        let late_id = late.event.id.clone();
        let refused = store.ingest_as(vec![late], Some("key_1".into())).await;
        assert!(matches!(refused, Err(StoreError::Revoked(ref id)) if id == "key_1"));
        assert!(store.get_event(&late_id).expect("read").is_none());
        store.close();
    }
}
