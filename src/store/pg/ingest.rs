//! Ingest on PostgreSQL: events with their deliveries, committed before the caller
//! is answered (the 202), with concurrent callers combined into one transaction of a
//! few multi-row statements (`unnest`), and idempotency keys enforced across nodes by
//! the `idempotency` primary key. Same outcomes as the redb store's ingest: if any
//! item of one call conflicts, nothing of that call is written. A transaction that
//! stores deliveries announces new work to every node (one `NOTIFY` in it) and wakes
//! this node's delivery loop after its commit.

use crate::store::pg::conn::AsSql;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use super::conn::Tx;

use super::{PgError, PgStore, sql};
use crate::model::{Delivery, Event};
use crate::store::{IngestItem, IngestOutcome, Ingested, StoreError};

/// The multi-row insert of events, shared by ingest and `store copy`: ids, tenants,
/// types, payloads, channels (as `jsonb` arrays, ragged), idempotency keys and
/// creation times, one array each.
pub(super) const INSERT_EVENTS: &str = "INSERT INTO events (id, tenant, event_type, payload, \
     channels, idempotency_key, created_at) \
     SELECT id, tenant, event_type, payload, \
            ARRAY(SELECT jsonb_array_elements_text(channels)), key, created_at \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], \
                 $6::text[], $7::bigint[]) \
          AS u(id, tenant, event_type, payload, channels, key, created_at)";

/// The API keys among the given ones that exist, locked against deletion.
pub(super) const LIVE_KEYS: &str = "SELECT id FROM api_keys WHERE id = ANY($1) FOR KEY SHARE";

/// Claims an idempotency key for an event (nothing when the key is taken).
pub(super) const CLAIM_KEY: &str = "INSERT INTO idempotency (tenant, key, body_hash, event_id, \
     deliveries, created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING";

/// The earlier answer of a taken idempotency key.
pub(super) const SEEN_KEY: &str =
    "SELECT body_hash, event_id, deliveries FROM idempotency WHERE tenant = $1 AND key = $2";

/// Gives back an idempotency key a refused call claimed.
pub(super) const RELEASE_KEY: &str =
    "DELETE FROM idempotency WHERE tenant = $1 AND key = $2 AND event_id = $3";

/// The multi-row insert of deliveries, one array per column.
pub(super) const INSERT_DELIVERIES: &str = "INSERT INTO deliveries (id, tenant, event_id, \
     webhook_id, event_type, state, attempts, schedule_step, next_attempt_at, created_at, \
     updated_at) \
     SELECT id, tenant, event_id, webhook_id, event_type, 0, 0, 0, due, created, created \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                 $6::bigint[], $7::bigint[]) \
          AS u(id, tenant, event_id, webhook_id, event_type, due, created)";

/// One waiting call: its items, the API key that authorised it, where the answer goes.
struct Call {
    items: Vec<IngestItem>,
    key_id: Option<String>,
    reply: tokio::sync::oneshot::Sender<Result<Ingested, StoreError>>,
}

/// Why a combined transaction failed, for each of its calls.
enum Failed {
    Unavailable(String),
    Internal(Arc<StoreError>),
}

/// Calls waiting for the next transaction, and whether a task is running them.
#[derive(Default)]
pub(super) struct Combiner {
    calls: Vec<Call>,
    running: bool,
}

impl PgStore {
    /// Stores events with their deliveries, durably, in a transaction shared with
    /// other concurrent callers; returns after the commit. `key_id`, when given, must
    /// still exist at commit time ([`StoreError::Revoked`] otherwise). Answers one
    /// outcome per item, in order, with the item itself.
    pub async fn ingest_as(
        &self,
        items: Vec<IngestItem>,
        key_id: Option<String>,
    ) -> Result<Ingested, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let lead = {
            let mut c = self.ingest.lock().unwrap_or_else(|e| e.into_inner());
            c.calls.push(Call {
                items,
                key_id,
                reply,
            });
            !std::mem::replace(&mut c.running, true)
        };
        if lead {
            // A task of its own, so that a caller that goes away (a dropped request)
            // cannot strand the calls that joined its transaction.
            let store = self.clone();
            tokio::spawn(async move { store.run_ingests().await });
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Takes every waiting call into one transaction, until none is left.
    async fn run_ingests(&self) {
        loop {
            let calls = {
                let mut c = self.ingest.lock().unwrap_or_else(|e| e.into_inner());
                if c.calls.is_empty() {
                    c.running = false;
                    return;
                }
                std::mem::take(&mut c.calls)
            };
            match self.commit_calls(&calls).await {
                Ok(outcomes) => {
                    for (call, outcome) in calls.into_iter().zip(outcomes) {
                        let _ = call
                            .reply
                            .send(outcome.map(|o| o.into_iter().zip(call.items).collect()));
                    }
                }
                Err(e) => {
                    // Every call of the transaction gets the same answer: retry later
                    // when the database could not be reached, an internal error (with
                    // the cause shared) when it refused the transaction.
                    let shared = match e {
                        StoreError::Unavailable(why) => {
                            self.mark_pool(false);
                            Failed::Unavailable(why)
                        }
                        other => Failed::Internal(Arc::new(other)),
                    };
                    for call in calls {
                        let _ = call.reply.send(Err(match &shared {
                            Failed::Unavailable(why) => StoreError::Unavailable(why.clone()),
                            Failed::Internal(e) => {
                                StoreError::Postgres(PgError::Combined(e.clone()))
                            }
                        }));
                    }
                }
            }
        }
    }

    /// One transaction for `calls`: each call's outcomes, or an error for all.
    async fn commit_calls(
        &self,
        calls: &[Call],
    ) -> Result<Vec<Result<Vec<IngestOutcome>, StoreError>>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(sql)?;
        // Generic plans for the whole transaction (`plans.rs`), sent ahead of its
        // first statement in the same round trip (`biased`), whichever that is: a
        // batch of calls without API keys starts with the idempotency keys or the
        // inserts, and those would otherwise get PostgreSQL's own plans.
        let (_, (answers, work)) = tokio::try_join!(
            biased;
            async { tx.batch_execute(super::plans::GENERIC_PLANS).await.map_err(sql) },
            self.store_calls(&tx, calls),
        )?;
        tx.commit().await.map_err(sql)?;
        if work {
            self.wakeups.notify_one();
        }
        Ok(answers)
    }

    /// The statements of `commit_calls`' transaction before its commit: each
    /// call's outcomes, and whether deliveries were written.
    async fn store_calls(
        &self,
        tx: &Tx<'_>,
        calls: &[Call],
    ) -> Result<(Vec<Result<Vec<IngestOutcome>, StoreError>>, bool), StoreError> {
        let live = live_keys(tx, calls).await?;
        let mut answers = Vec::with_capacity(calls.len());
        let mut stored: Vec<&IngestItem> = Vec::new();
        for call in calls {
            if let Some(id) = call.key_id.as_ref().filter(|id| !live.contains(*id)) {
                answers.push(Err(StoreError::Revoked(id.clone())));
                continue;
            }
            let outcomes = claim_keys(tx, &call.items).await?;
            if outcomes
                .iter()
                .any(|o| matches!(o, Some(IngestOutcome::Conflict { .. })))
            {
                release_keys(tx, &call.items, &outcomes).await?;
                answers.push(Ok(outcomes
                    .into_iter()
                    .map(|o| match o {
                        Some(c @ IngestOutcome::Conflict { .. }) => c,
                        _ => IngestOutcome::NotStored,
                    })
                    .collect()));
                continue;
            }
            let mut out = Vec::with_capacity(call.items.len());
            for (item, seen) in call.items.iter().zip(outcomes) {
                out.push(match seen {
                    Some(replay) => replay,
                    None => {
                        stored.push(item);
                        IngestOutcome::Created {
                            event_id: item.event.id.clone(),
                            deliveries: item.deliveries.len() as u32,
                        }
                    }
                });
            }
            answers.push(Ok(out));
        }
        let work = stored.iter().any(|i| !i.deliveries.is_empty());
        if work {
            // Sent together with the inserts (tokio-postgres pipelines statements
            // of one connection polled at once), so the announcement costs no round
            // trip; PostgreSQL delivers it only if the transaction commits.
            tokio::try_join!(insert_events(tx, &stored), self.notify_work(tx))?;
        } else {
            insert_events(tx, &stored).await?;
        }
        Ok((answers, work))
    }
}

/// The API keys among the calls' that exist, locked against deletion until the
/// commit. Under generic plans (`commit_calls`): left to PostgreSQL, this lookup
/// was planned on every call (its generic plan's guess for an array of keys never
/// beats a custom plan's for one).
async fn live_keys(tx: &Tx<'_>, calls: &[Call]) -> Result<HashSet<String>, StoreError> {
    let ids: Vec<&str> = calls.iter().filter_map(|c| c.key_id.as_deref()).collect();
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let rows = tx
        .sql()
        .cached_query(LIVE_KEYS, &[&ids])
        .await
        .map_err(sql)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Claims the idempotency keys of a call's items: `None` for an item that may be
/// stored (no key, or its key is now claimed by it), the earlier answer (replay or
/// conflict) for a key seen before, on any node.
async fn claim_keys(
    tx: &Tx<'_>,
    items: &[IngestItem],
) -> Result<Vec<Option<IngestOutcome>>, StoreError> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let event = &item.event;
        let Some(key) = &event.idempotency_key else {
            out.push(None);
            continue;
        };
        // Waits for a concurrent claim of the same key on another node to commit or
        // roll back, then either claims it or reads the winner's answer.
        let claimed = tx
            .sql()
            .cached_execute(
                CLAIM_KEY,
                &[
                    &event.tenant,
                    key,
                    &item.body_hash.as_slice(),
                    &event.id,
                    &(item.deliveries.len() as i32),
                    &event.created_at,
                ],
            )
            .await
            .map_err(sql)?;
        if claimed == 1 {
            out.push(None);
            continue;
        }
        let seen = tx
            .sql()
            .cached_query_one(SEEN_KEY, &[&event.tenant, key])
            .await
            .map_err(sql)?;
        let hash: Vec<u8> = seen.get(0);
        let event_id: String = seen.get(1);
        let deliveries: i32 = seen.get(2);
        out.push(Some(if hash == item.body_hash {
            IngestOutcome::Replay {
                event_id,
                deliveries: deliveries.max(0) as u32,
            }
        } else {
            IngestOutcome::Conflict { event_id }
        }));
    }
    Ok(out)
}

/// Gives back the keys a refused call claimed.
async fn release_keys(
    tx: &Tx<'_>,
    items: &[IngestItem],
    outcomes: &[Option<IngestOutcome>],
) -> Result<(), StoreError> {
    for (item, seen) in items.iter().zip(outcomes) {
        if let (None, Some(key)) = (seen, &item.event.idempotency_key) {
            tx.sql()
                .cached_execute(RELEASE_KEY, &[&item.event.tenant, key, &item.event.id])
                .await
                .map_err(sql)?;
        }
    }
    Ok(())
}

/// Inserts the events and their deliveries: two statements whatever their number.
async fn insert_events(tx: &Tx<'_>, items: &[&IngestItem]) -> Result<(), StoreError> {
    if items.is_empty() {
        return Ok(());
    }
    let events: Vec<_> = items.iter().map(|i| &i.event).collect();
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    let tenants: Vec<&str> = events.iter().map(|e| e.tenant.as_str()).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let payloads: Vec<&str> = events.iter().map(|e| e.payload.as_str()).collect();
    let channels: Vec<serde_json::Value> = events
        .iter()
        .map(|e| serde_json::Value::from(e.channels.clone()))
        .collect();
    let keys: Vec<Option<&str>> = events
        .iter()
        .map(|e| e.idempotency_key.as_deref())
        .collect();
    let created: Vec<i64> = events.iter().map(|e| e.created_at).collect();
    tx.sql()
        .cached_execute(
            INSERT_EVENTS,
            &[
                &ids, &tenants, &types, &payloads, &channels, &keys, &created,
            ],
        )
        .await
        .map_err(sql)?;

    let deliveries: Vec<_> = items.iter().flat_map(|i| &i.deliveries).collect();
    if deliveries.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = deliveries.iter().map(|d| d.id.as_str()).collect();
    let tenants: Vec<&str> = deliveries.iter().map(|d| d.tenant.as_str()).collect();
    let events: Vec<&str> = deliveries.iter().map(|d| d.event_id.as_str()).collect();
    let webhooks: Vec<&str> = deliveries.iter().map(|d| d.webhook_id.as_str()).collect();
    let types: Vec<&str> = deliveries.iter().map(|d| d.event_type.as_str()).collect();
    let due: Vec<i64> = deliveries
        .iter()
        .map(|d| d.next_attempt_at.unwrap_or(d.created_at))
        .collect();
    let created: Vec<i64> = deliveries.iter().map(|d| d.created_at).collect();
    tx.sql()
        .cached_execute(
            INSERT_DELIVERIES,
            &[&ids, &tenants, &events, &webhooks, &types, &due, &created],
        )
        .await
        .map_err(sql)?;
    Ok(())
}

/// The combiner a new store starts with.
pub(super) fn combiner() -> Arc<Mutex<Combiner>> {
    Arc::new(Mutex::new(Combiner::default()))
}

impl PgStore {
    /// An event with its deliveries, if it exists.
    pub async fn get_event(&self, id: &str) -> Result<Option<(Event, Vec<Delivery>)>, StoreError> {
        let client = self.client().await?;
        let Some(e) = client
            .query_opt(
                "SELECT id, tenant, event_type, payload, channels, idempotency_key, created_at \
                 FROM events WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(sql)?
        else {
            return Ok(None);
        };
        let event = Event {
            id: e.get(0),
            tenant: e.get(1),
            event_type: e.get(2),
            payload: e.get(3),
            channels: e.get(4),
            idempotency_key: e.get(5),
            created_at: e.get(6),
        };
        let rows = client
            .query(
                "SELECT id, tenant, event_id, webhook_id, event_type, state, attempts, \
                 schedule_step, next_attempt_at, last_status, last_error, created_at, \
                 updated_at FROM deliveries WHERE event_id = $1 ORDER BY id",
                &[&id],
            )
            .await
            .map_err(sql)?;
        let deliveries = rows.iter().map(delivery).collect::<Result<_, _>>()?;
        Ok(Some((event, deliveries)))
    }
}

/// A `deliveries` row as the domain type.
pub(super) fn delivery(r: &tokio_postgres::Row) -> Result<Delivery, StoreError> {
    let state = super::codes::state(r.get(5))?;
    let attempts: i32 = r.get(6);
    let step: i32 = r.get(7);
    let status: Option<i16> = r.get(9);
    Ok(Delivery {
        id: r.get(0),
        tenant: r.get(1),
        event_id: r.get(2),
        webhook_id: r.get(3),
        event_type: r.get(4),
        state,
        attempts: attempts.max(0) as u32,
        schedule_step: step.max(0) as u32,
        next_attempt_at: r.get(8),
        last_status: status.map(|s| s.max(0) as u16),
        last_error: r.get(10),
        created_at: r.get(11),
        updated_at: r.get(12),
    })
}
