//! Event and delivery reads on PostgreSQL, with the answers of the redb store
//! (`store/events.rs`, `store/deliveries.rs`): the same order (newest first by id),
//! the same cursors (the last id of the previous page) and the same filters, and the
//! due-time reads the scheduler and metrics use. It only reads; it never takes a
//! lock or a lease.

use tokio_postgres::Row;

use super::{PgStore, sql};
use crate::model::{Attempt, Delivery, DeliveryState, Event, UnixMs};
use crate::store::deliveries::id_floor;
use crate::store::{DeliveryFilter, StoreError};

/// The `deliveries` columns `ingest::delivery` reads, in its order.
pub(super) const DELIVERY_COLUMNS: &str = "id, tenant, event_id, webhook_id, event_type, \
     state, attempts, schedule_step, next_attempt_at, last_status, last_error, created_at, \
     updated_at";

/// The `events` columns [`event`] reads, in its order.
pub(super) const EVENT_COLUMNS: &str =
    "id, tenant, event_type, payload, channels, idempotency_key, created_at";

/// The `attempts` columns [`attempt`] reads, in its order.
const ATTEMPT_COLUMNS: &str =
    "delivery_id, number, at, trigger, status, error, latency_ms, response_body";

/// Above every id: the upper bound of an open range (as on redb).
const TOP: &str = "\u{10ffff}";

impl PgStore {
    /// A tenant's events, newest first, narrowed to one type and to events created
    /// at or after `since`; `cursor` is the last id of the previous page. Returns the
    /// page and the cursor of the next one (`None` at the end).
    pub async fn list_events(
        &self,
        tenant: &str,
        event_type: Option<&str>,
        since: Option<UnixMs>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Event>, Option<String>), StoreError> {
        let client = self.client().await?;
        let floor = since.map(|ms| id_floor("evt", ms)).unwrap_or_default();
        let below = cursor.unwrap_or(TOP);
        let rows = client
            .query(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM events \
                     WHERE tenant = $1 AND id >= $2 AND id < $3 \
                       AND ($4::text IS NULL OR event_type = $4) \
                     ORDER BY id DESC LIMIT $5"
                ),
                &[&tenant, &floor, &below, &event_type, &page_limit(limit)],
            )
            .await
            .map_err(sql)?;
        let events: Vec<Event> = rows.iter().map(event).collect();
        Ok(page(events, limit, |e| e.id.clone()))
    }

    /// A delivery with all its attempts, oldest first, from one snapshot (a
    /// read-only repeatable-read transaction): two statements each in their own
    /// snapshot could show an attempt whose outcome the delivery row does not have
    /// yet, when a completion commits between them.
    pub async fn get_delivery(
        &self,
        id: &str,
    ) -> Result<Option<(Delivery, Vec<Attempt>)>, StoreError> {
        let mut conn = self.client().await?;
        let tx = conn
            .read_only(tokio_postgres::IsolationLevel::RepeatableRead)
            .await
            .map_err(sql)?;
        let Some(row) = tx
            .query_opt(
                &format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(sql)?
        else {
            return Ok(None);
        };
        let delivery = super::ingest::delivery(&row)?;
        let attempts = tx
            .query(
                &format!(
                    "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE delivery_id = $1 \
                     ORDER BY number"
                ),
                &[&id],
            )
            .await
            .map_err(sql)?
            .iter()
            .map(attempt)
            .collect::<Result<_, _>>()?;
        tx.commit().await.map_err(sql)?;
        Ok(Some((delivery, attempts)))
    }

    /// A delivery and its event, as the worker needs them for an attempt; `None`
    /// when either is gone.
    pub async fn delivery_with_event(
        &self,
        id: &str,
    ) -> Result<Option<(Delivery, Event)>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT d.id, d.tenant, d.event_id, d.webhook_id, d.event_type, d.state, \
                        d.attempts, d.schedule_step, d.next_attempt_at, d.last_status, \
                        d.last_error, d.created_at, d.updated_at, \
                        e.id, e.tenant, e.event_type, e.payload, e.channels, \
                        e.idempotency_key, e.created_at \
                 FROM deliveries d JOIN events e ON e.id = d.event_id WHERE d.id = $1",
                &[&id],
            )
            .await
            .map_err(sql)?;
        let Some(row) = row else { return Ok(None) };
        let delivery = super::ingest::delivery(&row)?;
        let event = Event {
            id: row.get(13),
            tenant: row.get(14),
            event_type: row.get(15),
            payload: row.get(16),
            channels: row.get(17),
            idempotency_key: row.get(18),
            created_at: row.get(19),
        };
        Ok(Some((delivery, event)))
    }

    /// A webhook's delivery log, newest first, narrowed by `filter`; `cursor` is the
    /// last id of the previous page. The time bounds are id bounds (ids sort by
    /// creation time), so they narrow the index range as on redb.
    pub async fn list_webhook_deliveries(
        &self,
        webhook_id: &str,
        filter: &DeliveryFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Delivery>, Option<String>), StoreError> {
        let low = filter
            .since
            .map(|ms| id_floor("dlv", ms))
            .unwrap_or_default();
        let mut high = filter
            .until
            .map(|ms| id_floor("dlv", ms.saturating_add(1)))
            .unwrap_or_else(|| TOP.to_owned());
        if let Some(c) = cursor.filter(|c| *c < high.as_str()) {
            high = c.to_owned();
        }
        if low >= high {
            return Ok((Vec::new(), None));
        }
        let state = filter.state.map(super::codes::state_code);
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries \
                     WHERE webhook_id = $1 AND id >= $2 AND id < $3 \
                       AND ($4::smallint IS NULL OR state = $4) \
                       AND ($5::text IS NULL OR event_type = $5) \
                     ORDER BY id DESC LIMIT $6"
                ),
                &[
                    &webhook_id,
                    &low,
                    &high,
                    &state,
                    &filter.event_type,
                    &page_limit(limit),
                ],
            )
            .await
            .map_err(sql)?;
        let deliveries = rows
            .iter()
            .map(super::ingest::delivery)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page(deliveries, limit, |d| d.id.clone()))
    }

    /// How many deliveries [`PgStore::recover`] would re-queue now (a dry run):
    /// the webhook's failed, exhausted or cancelled deliveries created at or after
    /// `since`.
    pub async fn count_recoverable(
        &self,
        webhook_id: &str,
        since: UnixMs,
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM deliveries \
                 WHERE webhook_id = $1 AND id >= $2 AND state = ANY($3)",
                &[&webhook_id, &id_floor("dlv", since), &recoverable_codes()],
            )
            .await
            .map_err(sql)?
            .get(0);
        Ok(n.max(0) as u64)
    }

    /// The earliest due time of any unfinished delivery, if there is one.
    pub async fn next_due(&self) -> Result<Option<u64>, StoreError> {
        let client = self.client().await?;
        let due: Option<i64> = client
            .query_one(
                "SELECT min(next_attempt_at) FROM deliveries WHERE next_attempt_at IS NOT NULL",
                &[],
            )
            .await
            .map_err(sql)?
            .get(0);
        Ok(due.map(|d| d.max(0) as u64))
    }

    /// How many deliveries are unfinished (due now or later, leased or not).
    pub async fn due_count(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM deliveries WHERE next_attempt_at IS NOT NULL",
                &[],
            )
            .await
            .map_err(sql)?
            .get(0);
        Ok(n.max(0) as u64)
    }

    /// The earliest due time strictly after `now`, if any.
    pub async fn next_due_after(&self, now: UnixMs) -> Result<Option<u64>, StoreError> {
        let client = self.client().await?;
        let due: Option<i64> = client
            .query_one(
                "SELECT min(next_attempt_at) FROM deliveries WHERE next_attempt_at > $1",
                &[&now.max(0)],
            )
            .await
            .map_err(sql)?
            .get(0);
        Ok(due.map(|d| d.max(0) as u64))
    }
}

/// The state codes `recover` re-queues (as on redb: failed, exhausted, cancelled).
pub(super) fn recoverable_codes() -> Vec<i16> {
    [
        DeliveryState::Failed,
        DeliveryState::Exhausted,
        DeliveryState::Cancelled,
    ]
    .into_iter()
    .map(super::codes::state_code)
    .collect()
}

/// How many rows a page query reads: one more than the page, to know whether a
/// next page exists.
fn page_limit(limit: usize) -> i64 {
    i64::try_from(limit)
        .unwrap_or(i64::MAX - 1)
        .saturating_add(1)
}

/// Cuts the rows read by a page query (at most `limit + 1`) to the page, with the
/// redb store's cursor: the page's last id when more rows follow, else `None`.
fn page<T>(mut rows: Vec<T>, limit: usize, id: impl Fn(&T) -> String) -> (Vec<T>, Option<String>) {
    if rows.len() <= limit {
        return (rows, None);
    }
    rows.truncate(limit);
    let next = rows.last().map(id);
    (rows, next)
}

/// An `events` row (in [`EVENT_COLUMNS`] order) as the domain type.
pub(super) fn event(r: &Row) -> Event {
    Event {
        id: r.get(0),
        tenant: r.get(1),
        event_type: r.get(2),
        payload: r.get(3),
        channels: r.get(4),
        idempotency_key: r.get(5),
        created_at: r.get(6),
    }
}

/// An `attempts` row (in [`ATTEMPT_COLUMNS`] order) as the domain type; an unknown
/// trigger code is a corrupt row.
fn attempt(r: &Row) -> Result<Attempt, StoreError> {
    let number: i32 = r.get(1);
    let status: Option<i16> = r.get(4);
    let latency: i64 = r.get(6);
    Ok(Attempt {
        delivery_id: r.get(0),
        number: number.max(0) as u32,
        at: r.get(2),
        trigger: super::codes::trigger(r.get(3))?,
        status: status.map(|s| s.max(0) as u16),
        error: r.get(5),
        latency_ms: latency.max(0) as u64,
        response_body: r.get(7),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PortalSession, Trigger};
    use crate::notify::email::ThrottleState;
    use crate::store::RecoverScope;

    /// Compiles only if every future of this file's part of the interface (and the
    /// other new parts) is `Send`: the `store::Db` facade awaits them in spawned
    /// tasks. Never called.
    #[allow(dead_code)]
    fn futures_are_send(s: &PgStore, f: &DeliveryFilter, hash: &[u8; 32], e: Event, d: Delivery) {
        fn send<T: Send>(_: T) {}
        let a = Attempt {
            delivery_id: String::new(),
            number: 0,
            at: 0,
            trigger: Trigger::Manual,
            status: None,
            error: None,
            latency_ms: 0,
            response_body: String::new(),
        };
        let scope = RecoverScope { since: 0, now: 0 };
        send(s.list_events("t", Some("x"), Some(1), Some("c"), 1));
        send(s.get_delivery("d"));
        send(s.delivery_with_event("d"));
        send(s.list_webhook_deliveries("w", f, Some("c"), 1));
        send(s.count_recoverable("w", 0));
        send(s.next_due());
        send(s.due_count());
        send(s.next_due_after(0));
        send(s.record_manual(a.clone(), true));
        send(s.record_test(e, d, a));
        send(s.recover("w".into(), scope));
        send(s.purge_before(0, 1));
        send(s.notify_state("w"));
        send(s.update_notify_state("w".into(), |t: &ThrottleState| (t.clone(), 1u8)));
        send(s.applied_seeds());
        send(s.seed_event_types(vec![], vec![]));
        send(s.portal_session(hash));
        send(s.create_portal_session(PortalSession {
            hash: *hash,
            tenant: String::new(),
            read_only: true,
            created_at: 0,
            expires_at: 0,
        }));
        send(s.revoke_portal_sessions("t".into()));
        send(s.portal_session_count("t"));
        send(s.tenants_being_purged());
        send(s.tenant_being_purged("t"));
        send(s.purge_tenant("t".into()));
        send(s.purge_tenant_chunk("t".into(), 1));
        send(s.stop_purges());
        send(s.mark_orphaned_tenants(0));
        send(s.try_job_lease("j", 1));
        send(s.release_job_lease("j"));
    }

    #[test]
    fn a_page_has_a_cursor_only_when_more_rows_follow() {
        let id = |n: &u32| n.to_string();
        assert_eq!(page(vec![3, 2, 1], 3, id), (vec![3, 2, 1], None));
        assert_eq!(
            page(vec![4, 3, 2, 1], 3, id),
            (vec![4, 3, 2], Some("2".into()))
        );
        assert_eq!(page(Vec::<u32>::new(), 3, id), (vec![], None));
        assert_eq!(page(vec![1], 0, id), (vec![], None));
        assert_eq!(page_limit(usize::MAX), i64::MAX);
    }
}
