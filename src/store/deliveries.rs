//! Store operations on deliveries: the due index the scheduler reads, recording
//! attempt outcomes (lazily durable: losing one only causes a redelivery), the
//! delivery log, manual retry, recover, and the retention purge.

use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};

use super::records::EventDeliveries;
use super::tables::*;
use super::{Store, StoreError, decode_at, decode_event, delivery_ids, encode_event, encode_keyed};
use crate::model::{Attempt, Delivery, DeliveryState, Event, UnixMs};

/// One entry of the due index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DueEntry {
    /// When it is due (Unix ms).
    pub due: u64,
    pub delivery_id: String,
    pub webhook_id: String,
}

/// What follows a scheduled attempt, decided by the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Delivered.
    Succeeded,
    /// Failed; try again at this time.
    RetryAt(UnixMs),
    /// Failed; the schedule is used up.
    Exhausted,
}

/// The outcome of one scheduled attempt, to record.
#[derive(Debug, Clone)]
pub struct AttemptWrite {
    /// The due entry the attempt was made for; it is the attempt's lease.
    pub entry: DueEntry,
    pub attempt: Attempt,
    pub next: Next,
}

/// A finished delivery about to be purged: (delivery id, webhook id, attempts).
type Finished = (String, String, u32);

/// Whether an event's deliveries are in the `event_deliveries` index (an event
/// stored before format 3) rather than listed in its record.
type Indexed = bool;

/// What `recover` re-queues.
#[derive(Debug, Clone, Copy)]
pub struct RecoverScope {
    pub since: UnixMs,
    pub now: UnixMs,
}

/// What a webhook's delivery log lists (`list_webhook_deliveries`).
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// Only deliveries in this state.
    pub state: Option<DeliveryState>,
    /// Only deliveries of this event type.
    pub event_type: Option<String>,
    /// Only deliveries created at or after this time.
    pub since: Option<UnixMs>,
    /// Only deliveries created at or before this time.
    pub until: Option<UnixMs>,
}

/// The states `recover` re-queues.
fn recoverable(state: DeliveryState) -> bool {
    matches!(
        state,
        DeliveryState::Failed | DeliveryState::Exhausted | DeliveryState::Cancelled
    )
}

/// The smallest id with `prefix` generated at or after `ms` (ids are ULIDs, whose
/// text sorts by time), used as a range bound.
pub(crate) fn id_floor(prefix: &str, ms: UnixMs) -> String {
    let ms = u64::try_from(ms).unwrap_or(0);
    format!("{prefix}_{}", ulid::Ulid::from_parts(ms, 0))
}

impl Store {
    /// Up to `limit` due entries with a due time at or before `now`, in due order,
    /// starting strictly after `after` when given.
    pub fn due_entries(
        &self,
        now: UnixMs,
        after: Option<&(u64, String)>,
        limit: usize,
    ) -> Result<Vec<DueEntry>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(DUE)?;
        let end = (now.max(0) as u64).saturating_add(1);
        let range = match after {
            Some((due, id)) => table.range((*due, id.as_str())..(end, ""))?,
            None => table.range((0u64, "")..(end, ""))?,
        };
        let mut out = Vec::with_capacity(limit.min(1024));
        for row in range {
            let (k, v) = row?;
            let (due, id) = k.value();
            if after.is_some_and(|(d, i)| *d == due && i == id) {
                continue;
            }
            out.push(DueEntry {
                due,
                delivery_id: id.to_owned(),
                webhook_id: v.value().to_owned(),
            });
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    /// The earliest due time in the index, if any delivery is unfinished.
    pub fn next_due(&self) -> Result<Option<u64>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(DUE)?;
        Ok(table.first()?.map(|(k, _)| k.value().0))
    }

    /// How many deliveries are unfinished.
    pub fn due_count(&self) -> Result<u64, StoreError> {
        let txn = self.read()?;
        Ok(txn.open_table(DUE)?.len()?)
    }

    /// A delivery and its event, as the worker needs them for an attempt.
    pub fn delivery_with_event(&self, id: &str) -> Result<Option<(Delivery, Event)>, StoreError> {
        let txn = self.read()?;
        let deliveries = txn.open_table(DELIVERIES)?;
        let d: Delivery = match deliveries.get(id)? {
            Some(v) => decode_at("deliveries", id, v.value())?,
            None => return Ok(None),
        };
        let events = txn.open_table(EVENTS)?;
        let e = match events.get(d.event_id.as_str())? {
            Some(v) => decode_event(&d.event_id, v.value())?.0,
            None => return Ok(None),
        };
        Ok(Some((d, e)))
    }

    /// A delivery with all its attempts, oldest first.
    pub fn get_delivery(&self, id: &str) -> Result<Option<(Delivery, Vec<Attempt>)>, StoreError> {
        let txn = self.read()?;
        let deliveries = txn.open_table(DELIVERIES)?;
        let d: Delivery = match deliveries.get(id)? {
            Some(v) => decode_at("deliveries", id, v.value())?,
            None => return Ok(None),
        };
        let attempts = txn.open_table(ATTEMPTS)?;
        let mut out = Vec::new();
        for row in attempts.range((id, 0u32)..=(id, u32::MAX))? {
            let (k, v) = row?;
            out.push(decode_at("attempts", k.value(), v.value())?);
        }
        Ok(Some((d, out)))
    }

    /// A webhook's delivery log, newest first, narrowed by `filter`; `cursor` is
    /// the last id of the previous page. The time bounds narrow the index range
    /// (ids sort by creation time), so they cost nothing extra.
    pub fn list_webhook_deliveries(
        &self,
        webhook_id: &str,
        filter: &DeliveryFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Delivery>, Option<String>), StoreError> {
        let txn = self.read()?;
        let index = txn.open_table(WEBHOOK_DELIVERIES)?;
        let deliveries = txn.open_table(DELIVERIES)?;
        let low = filter
            .since
            .map(|ms| id_floor("dlv", ms))
            .unwrap_or_default();
        let mut high = filter
            .until
            .map(|ms| id_floor("dlv", ms.saturating_add(1)))
            .unwrap_or_else(|| "\u{10ffff}".to_owned());
        if let Some(c) = cursor.filter(|c| *c < high.as_str()) {
            high = c.to_owned();
        }
        if low >= high {
            return Ok((Vec::new(), None));
        }
        let range = index.range((webhook_id, low.as_str())..(webhook_id, high.as_str()))?;
        let mut out: Vec<Delivery> = Vec::new();
        for row in range.rev() {
            let (k, _) = row?;
            let id = k.value().1;
            let Some(v) = deliveries.get(id)? else {
                continue;
            };
            let d: Delivery = decode_at("deliveries", id, v.value())?;
            if filter.state.is_some_and(|s| s != d.state)
                || filter
                    .event_type
                    .as_deref()
                    .is_some_and(|t| t != d.event_type)
            {
                continue;
            }
            if out.len() == limit {
                let next = out.last().map(|d| d.id.clone());
                return Ok((out, next));
            }
            out.push(d);
        }
        Ok((out, None))
    }

    /// How many deliveries [`Store::recover`] would re-queue now (a dry run).
    pub fn count_recoverable(&self, webhook_id: &str, since: UnixMs) -> Result<u64, StoreError> {
        let txn = self.read()?;
        let index = txn.open_table(WEBHOOK_DELIVERIES)?;
        let deliveries = txn.open_table(DELIVERIES)?;
        let floor = id_floor("dlv", since);
        let mut n = 0;
        for row in index.range((webhook_id, floor.as_str())..)? {
            let (k, _) = row?;
            let (wh, id) = k.value();
            if wh != webhook_id {
                break;
            }
            let Some(v) = deliveries.get(id)? else {
                continue;
            };
            let d: Delivery = decode_at("deliveries", id, v.value())?;
            if recoverable(d.state) {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Records scheduled attempts and moves their deliveries on. Lazily durable: a
    /// crash may lose the record, and then the delivery is simply attempted again.
    /// Returns the deliveries as updated, in order (`None` when it vanished).
    pub async fn record_attempts(
        &self,
        writes: Vec<AttemptWrite>,
    ) -> Result<Vec<Option<Delivery>>, StoreError> {
        self.write(false, move |txn| {
            let mut tables = AttemptTables::open(txn)?;
            let mut out = Vec::with_capacity(writes.len());
            for w in &writes {
                out.push(record_one(&mut tables, w)?);
            }
            Ok(out)
        })
        .await
    }

    /// Records a manual attempt of a delivery. Success finishes it (leaving the due
    /// index); a failure leaves its state and schedule as they were.
    pub async fn record_manual(
        &self,
        attempt: Attempt,
        succeeded: bool,
    ) -> Result<Delivery, StoreError> {
        self.write(true, move |txn| {
            let mut attempt = attempt;
            let mut deliveries = txn.open_table(DELIVERIES)?;
            let id = attempt.delivery_id.clone();
            let mut d: Delivery = match deliveries.get(id.as_str())? {
                Some(v) => decode_at("deliveries", id.as_str(), v.value())?,
                None => return Err(StoreError::NotFound(format!("delivery {id}"))),
            };
            d.attempts += 1;
            // The stored record carries its number, like scheduled attempts do.
            attempt.number = d.attempts;
            let bytes = encode_keyed("attempts", &attempt)?;
            d.last_status = attempt.status;
            d.last_error = attempt.error.clone();
            d.updated_at = attempt.at;
            if succeeded {
                d.state = DeliveryState::Succeeded;
                unschedule(txn, &d)?;
                d.next_attempt_at = None;
            }
            let number = d.attempts;
            let dbytes = encode_keyed("deliveries", &d)?;
            txn.open_table(ATTEMPTS)?
                .insert((id.as_str(), number), bytes.as_slice())?;
            deliveries.insert(id.as_str(), dbytes.as_slice())?;
            Ok(d)
        })
        .await
    }

    /// Re-queues, due at `scope.now`, every failed, exhausted or cancelled delivery of
    /// a webhook created at or after `scope.since`, restarting its retry schedule.
    /// Returns how many.
    pub async fn recover(
        &self,
        webhook_id: String,
        scope: RecoverScope,
    ) -> Result<u64, StoreError> {
        self.write(true, move |txn| {
            let floor = id_floor("dlv", scope.since);
            let mut todo = Vec::new();
            {
                let index = txn.open_table(WEBHOOK_DELIVERIES)?;
                let deliveries = txn.open_table(DELIVERIES)?;
                for row in index.range((webhook_id.as_str(), floor.as_str())..)? {
                    let (k, _) = row?;
                    let (wh, id) = k.value();
                    if wh != webhook_id {
                        break;
                    }
                    let Some(v) = deliveries.get(id)? else {
                        continue;
                    };
                    let d: Delivery = decode_at("deliveries", id, v.value())?;
                    if recoverable(d.state) {
                        todo.push(d);
                    }
                }
            }
            let mut deliveries = txn.open_table(DELIVERIES)?;
            let mut due = txn.open_table(DUE)?;
            let mut pending = txn.open_table(PENDING)?;
            let at = scope.now.max(0) as u64;
            for mut d in todo.iter().cloned() {
                unschedule_with(&mut due, &mut pending, &d)?;
                d.state = if d.attempts == 0 {
                    DeliveryState::Pending
                } else {
                    DeliveryState::Failed
                };
                d.schedule_step = 0;
                d.next_attempt_at = Some(scope.now);
                d.updated_at = scope.now;
                let bytes = encode_keyed("deliveries", &d)?;
                deliveries.insert(d.id.as_str(), bytes.as_slice())?;
                due.insert((at, d.id.as_str()), d.webhook_id.as_str())?;
                pending.insert((d.webhook_id.as_str(), d.id.as_str()), at)?;
            }
            Ok(todo.len() as u64)
        })
        .await
    }

    /// Deletes up to `limit` events created before `cutoff` whose deliveries are all
    /// finished, with their deliveries, attempts and index entries. Returns how many
    /// events were removed; call again until it returns less than `limit`.
    pub async fn purge_before(&self, cutoff: UnixMs, limit: usize) -> Result<usize, StoreError> {
        self.write(false, move |txn| {
            let ceiling = id_floor("evt", cutoff);
            let mut victims: Vec<(Event, Indexed, Vec<Finished>)> = Vec::new();
            {
                let events = txn.open_table(EVENTS)?;
                let by_event = txn.open_table(EVENT_DELIVERIES)?;
                let deliveries = txn.open_table(DELIVERIES)?;
                // Ids sort by creation time, so everything old enough sits below the
                // ceiling id. Events still being delivered are skipped (bounded scan).
                'events: for row in events.range("evt_"..ceiling.as_str())?.take(limit * 4) {
                    let (k, v) = row?;
                    let (event, listed) = decode_event(k.value(), v.value())?;
                    let indexed = listed == EventDeliveries::Indexed;
                    let mut ds = Vec::new();
                    for dlv in delivery_ids(&by_event, &event.id, listed)? {
                        if let Some(dv) = deliveries.get(dlv.as_str())? {
                            let d: Delivery = decode_at("deliveries", dlv.as_str(), dv.value())?;
                            if !d.state.is_final() {
                                continue 'events;
                            }
                            ds.push((dlv, d.webhook_id, d.attempts));
                        }
                    }
                    victims.push((event, indexed, ds));
                    if victims.len() == limit {
                        break;
                    }
                }
            }
            let mut events = txn.open_table(EVENTS)?;
            let mut tenant_events = txn.open_table(TENANT_EVENTS)?;
            let mut idem = txn.open_table(IDEMPOTENCY)?;
            let mut by_event = txn.open_table(EVENT_DELIVERIES)?;
            let mut by_webhook = txn.open_table(WEBHOOK_DELIVERIES)?;
            let mut deliveries = txn.open_table(DELIVERIES)?;
            let mut attempts = txn.open_table(ATTEMPTS)?;
            for (event, indexed, ds) in &victims {
                events.remove(event.id.as_str())?;
                tenant_events.remove((event.tenant.as_str(), event.id.as_str()))?;
                if let Some(key) = &event.idempotency_key {
                    idem.remove((event.tenant.as_str(), key.as_str()))?;
                }
                for (dlv, wh, n) in ds {
                    if *indexed {
                        by_event.remove((event.id.as_str(), dlv.as_str()))?;
                    }
                    by_webhook.remove((wh.as_str(), dlv.as_str()))?;
                    deliveries.remove(dlv.as_str())?;
                    for i in 1..=*n {
                        attempts.remove((dlv.as_str(), i))?;
                    }
                }
            }
            Ok(victims.len())
        })
        .await
    }
}

/// The tables recording an attempt touches, opened once for a whole batch.
struct AttemptTables<'t> {
    deliveries: redb::Table<'t, &'static str, &'static [u8]>,
    pending: redb::Table<'t, (&'static str, &'static str), u64>,
    due: redb::Table<'t, (u64, &'static str), &'static str>,
    attempts: redb::Table<'t, (&'static str, u32), &'static [u8]>,
}

impl<'t> AttemptTables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(AttemptTables {
            deliveries: txn.open_table(DELIVERIES)?,
            pending: txn.open_table(PENDING)?,
            due: txn.open_table(DUE)?,
            attempts: txn.open_table(ATTEMPTS)?,
        })
    }
}

fn record_one(t: &mut AttemptTables, w: &AttemptWrite) -> Result<Option<Delivery>, StoreError> {
    let id = w.entry.delivery_id.as_str();
    let mut d: Delivery = match t.deliveries.get(id)? {
        Some(v) => decode_at("deliveries", id, v.value())?,
        None => return Ok(None),
    };
    // The due entry is the attempt's lease: if it is gone or moved (the webhook was
    // disabled, or the delivery recovered or retried meanwhile), record the attempt
    // but leave the state and schedule to whoever moved it.
    let leased = t
        .pending
        .get((w.entry.webhook_id.as_str(), id))?
        .is_some_and(|due| due.value() == w.entry.due);
    d.attempts += 1;
    d.last_status = w.attempt.status;
    d.last_error = w.attempt.error.clone();
    d.updated_at = w.attempt.at;
    let mut attempt = w.attempt.clone();
    attempt.number = d.attempts;
    let abytes = encode_keyed("attempts", &attempt)?;
    if leased {
        d.schedule_step += 1;
        t.due.remove((w.entry.due, id))?;
        match w.next {
            Next::Succeeded => {
                d.state = DeliveryState::Succeeded;
                d.next_attempt_at = None;
                t.pending.remove((w.entry.webhook_id.as_str(), id))?;
            }
            Next::Exhausted => {
                d.state = DeliveryState::Exhausted;
                d.next_attempt_at = None;
                t.pending.remove((w.entry.webhook_id.as_str(), id))?;
            }
            Next::RetryAt(at) => {
                let at_key = at.max(0) as u64;
                d.state = DeliveryState::Failed;
                d.next_attempt_at = Some(at);
                t.due.insert((at_key, id), w.entry.webhook_id.as_str())?;
                t.pending
                    .insert((w.entry.webhook_id.as_str(), id), at_key)?;
            }
        }
    } else if w.next == Next::Succeeded && !d.state.is_final() {
        d.state = DeliveryState::Succeeded;
        unschedule_with(&mut t.due, &mut t.pending, &d)?;
        d.next_attempt_at = None;
    }
    let dbytes = encode_keyed("deliveries", &d)?;
    t.attempts.insert((id, attempt.number), abytes.as_slice())?;
    t.deliveries.insert(id, dbytes.as_slice())?;
    Ok(Some(d))
}

/// Removes a delivery from the due and pending indexes, wherever it is scheduled.
fn unschedule(txn: &WriteTransaction, d: &Delivery) -> Result<(), StoreError> {
    let mut due = txn.open_table(DUE)?;
    let mut pending = txn.open_table(PENDING)?;
    unschedule_with(&mut due, &mut pending, d)
}

fn unschedule_with(
    due: &mut redb::Table<(u64, &'static str), &'static str>,
    pending: &mut redb::Table<(&'static str, &'static str), u64>,
    d: &Delivery,
) -> Result<(), StoreError> {
    if let Some(at) = pending.remove((d.webhook_id.as_str(), d.id.as_str()))? {
        due.remove((at.value(), d.id.as_str()))?;
    }
    Ok(())
}

impl Store {
    /// The earliest due time strictly after `now`, if any.
    pub fn next_due_after(&self, now: UnixMs) -> Result<Option<u64>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(DUE)?;
        let from = (now.max(0) as u64).saturating_add(1);
        let mut range = table.range((from, "")..)?;
        Ok(match range.next() {
            Some(row) => Some(row?.0.value().0),
            None => None,
        })
    }

    /// Up to `limit` of a webhook's unfinished deliveries that are due by `now`, in
    /// creation order after `after`; also the cursor to continue from (`None` when
    /// the end was reached).
    pub fn pending_due(
        &self,
        webhook_id: &str,
        after: Option<&str>,
        now: UnixMs,
        limit: usize,
    ) -> Result<(Vec<DueEntry>, Option<String>), StoreError> {
        // The refill's walk with no byte budget: entries only (`store/refill.rs`).
        let (entries, next) = self.pending_due_loaded(webhook_id, after, now, limit, 0, 0)?;
        Ok((entries.into_iter().map(|(e, _)| e).collect(), next))
    }

    /// Finishes a delivery that can no longer be attempted (its webhook is gone or
    /// disabled, or its records vanished): out of the due index, state `cancelled`.
    pub async fn cancel_delivery(&self, entry: DueEntry, now: UnixMs) -> Result<(), StoreError> {
        self.write(false, move |txn| {
            let mut due = txn.open_table(DUE)?;
            let mut pending = txn.open_table(PENDING)?;
            let mut deliveries = txn.open_table(DELIVERIES)?;
            let updated = match deliveries.get(entry.delivery_id.as_str())? {
                Some(v) => {
                    let mut d: Delivery =
                        decode_at("deliveries", entry.delivery_id.as_str(), v.value())?;
                    if d.state.is_final() {
                        None
                    } else {
                        d.state = DeliveryState::Cancelled;
                        d.next_attempt_at = None;
                        d.updated_at = now;
                        Some(encode_keyed("deliveries", &d)?)
                    }
                }
                None => None,
            };
            due.remove((entry.due, entry.delivery_id.as_str()))?;
            let leased = pending
                .get((entry.webhook_id.as_str(), entry.delivery_id.as_str()))?
                .is_some_and(|d| d.value() == entry.due);
            if leased {
                pending.remove((entry.webhook_id.as_str(), entry.delivery_id.as_str()))?;
            }
            if let Some(bytes) = updated {
                deliveries.insert(entry.delivery_id.as_str(), bytes.as_slice())?;
            }
            Ok(())
        })
        .await
    }

    /// Records a test event with its one delivery and attempt, for the delivery log.
    pub async fn record_test(
        &self,
        event: Event,
        delivery: Delivery,
        attempt: Attempt,
    ) -> Result<(), StoreError> {
        self.write(true, move |txn| {
            let e = encode_event(&event, [delivery.id.as_str()])?;
            let d = encode_keyed("deliveries", &delivery)?;
            let a = encode_keyed("attempts", &attempt)?;
            txn.open_table(EVENTS)?
                .insert(event.id.as_str(), e.as_slice())?;
            txn.open_table(TENANT_EVENTS)?
                .insert((event.tenant.as_str(), event.id.as_str()), ())?;
            txn.open_table(DELIVERIES)?
                .insert(delivery.id.as_str(), d.as_slice())?;
            txn.open_table(WEBHOOK_DELIVERIES)?
                .insert((delivery.webhook_id.as_str(), delivery.id.as_str()), ())?;
            txn.open_table(ATTEMPTS)?
                .insert((delivery.id.as_str(), attempt.number), a.as_slice())?;
            Ok(())
        })
        .await
    }
}
