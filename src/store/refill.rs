//! The backlog refill's read: a webhook's due pending entries and, in the same read
//! transaction, their deliveries and events within a byte budget, so one refill of
//! the in-memory queue costs one read transaction. It only reads; it never writes
//! and never changes the record format.

use super::tables::*;
use super::{DueEntry, Store, StoreError, decode_at, decode_event};
use crate::model::{Delivery, Event, UnixMs};

/// One refilled entry with its records, when they were read.
pub type Refilled = (DueEntry, Option<(Delivery, Event)>);

impl Store {
    /// Up to `limit` of a webhook's unfinished deliveries due by `now`, in creation
    /// order after `after`, with the cursor to continue from (`None` at the end);
    /// in the same read transaction the delivery and event of each entry taken,
    /// oldest first, while their payloads (plus `overhead` each) fit in `budget`
    /// bytes. Entries past the budget come without records (their attempt reads
    /// them back); so does an entry whose records are gone (its attempt cancels
    /// it). One refill costs one transaction; [`Store::pending_due`] is this walk
    /// with no budget.
    pub fn pending_due_loaded(
        &self,
        webhook_id: &str,
        after: Option<&str>,
        now: UnixMs,
        limit: usize,
        budget: usize,
        overhead: usize,
    ) -> Result<(Vec<Refilled>, Option<String>), StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(PENDING)?;
        let deliveries = txn.open_table(DELIVERIES)?;
        let events = txn.open_table(EVENTS)?;
        let now = now.max(0) as u64;
        let range = match after {
            Some(a) => table.range((webhook_id, a)..=(webhook_id, "\u{10ffff}"))?,
            None => table.range((webhook_id, "")..=(webhook_id, "\u{10ffff}"))?,
        };
        let mut left = budget;
        let mut out = Vec::new();
        for row in range {
            let (k, v) = row?;
            let (_, id) = k.value();
            if after == Some(id) {
                continue;
            }
            let due = v.value();
            if due > now {
                continue;
            }
            let mut loaded = None;
            if left > 0
                && let Some(dv) = deliveries.get(id)?
            {
                let d: Delivery = decode_at("deliveries", id, dv.value())?;
                if let Some(ev) = events.get(d.event_id.as_str())? {
                    let (e, _) = decode_event(&d.event_id, ev.value())?;
                    let weight = e.payload.len() + overhead;
                    if weight <= left {
                        left -= weight;
                        loaded = Some((d, e));
                    } else {
                        left = 0;
                    }
                }
            }
            out.push((
                DueEntry {
                    due,
                    delivery_id: id.to_owned(),
                    webhook_id: webhook_id.to_owned(),
                },
                loaded,
            ));
            if out.len() == limit {
                return Ok((out, Some(id.to_owned())));
            }
        }
        Ok((out, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Tenant;
    use crate::secrets::Cipher;
    use crate::store::IngestItem;

    fn item(n: u32) -> IngestItem {
        let event = Event {
            id: crate::model::new_id("evt"),
            tenant: "t".to_owned(),
            event_type: "t".to_owned(),
            payload: format!("{{\"n\":{n:04}}}"),
            channels: Vec::new(),
            idempotency_key: None,
            created_at: 1,
        };
        let delivery = crate::delivery::plan::delivery(&event, "wh", None, 1);
        IngestItem {
            event,
            deliveries: vec![delivery],
            body_hash: [0; 32],
        }
    }

    /// The refill reads the same entries as `pending_due`, in the same order, and
    /// the records of the oldest ones whose payloads fit the budget, in one read.
    #[tokio::test]
    async fn refill_reads_entries_and_records_within_the_budget() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            Store::open(&dir.path().join("db"), Cipher::new(&[7; 32]), 1 << 20).expect("open");
        store
            .create_tenant(
                Tenant {
                    id: "t".to_owned(),
                    name: "t".to_owned(),
                    created_at: 1,
                },
                Vec::new(),
            )
            .await
            .expect("tenant");
        store
            .ingest((0..10).map(item).collect())
            .await
            .expect("ingest");
        let (ids, next) = store
            .pending_due("wh", None, i64::MAX, 8)
            .expect("pending_due");
        // Every payload is 10 bytes: 3 fit a budget of 3 * (10 + 100).
        let (got, got_next) = store
            .pending_due_loaded("wh", None, i64::MAX, 8, 3 * 110 + 50, 100)
            .expect("refill");
        assert_eq!(got_next, next);
        assert_eq!(
            got.iter()
                .map(|(e, _)| e.delivery_id.clone())
                .collect::<Vec<_>>(),
            ids.iter()
                .map(|e| e.delivery_id.clone())
                .collect::<Vec<_>>()
        );
        let loaded: Vec<_> = got.iter().filter_map(|(_, l)| l.as_ref()).collect();
        assert_eq!(loaded.len(), 3, "the oldest three fit the budget");
        for ((entry, l), n) in got.iter().zip(0..3) {
            let (d, e) = l.as_ref().expect("loaded");
            assert_eq!(d.id, entry.delivery_id);
            assert_eq!(d.event_id, e.id);
            assert_eq!(e.payload, format!("{{\"n\":{n:04}}}"));
        }
        // The rest of the backlog: from the cursor, no budget, ids only.
        let (rest, end) = store
            .pending_due_loaded("wh", next.as_deref(), i64::MAX, 8, 0, 100)
            .expect("refill");
        assert_eq!(rest.len(), 2);
        assert!(end.is_none());
        assert!(rest.iter().all(|(_, l)| l.is_none()));
        store.close();
    }
}
