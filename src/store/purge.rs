//! Purging a deleted tenant's data: its events (payloads), deliveries, attempts
//! (response bodies), idempotency records, due/pending entries, notification state,
//! webhook index rows and portal sessions, in small transactions so the writer never stalls on a
//! big tenant. Must never touch another tenant's rows, and never write anything
//! in a job that fails (the writer's job invariant).
//!
//! `delete_tenant` (admin.rs) records the id in `TENANT_PURGES` in the same durable
//! commit that removes the tenant; `create_tenant` refuses an id found there, so a
//! re-created tenant can never see the old data. The marker goes away with the last
//! chunk; a purge cut short by a crash or stop resumes at the next start.

use std::sync::atomic::{AtomicBool, Ordering};

use redb::{ReadableTable, WriteTransaction};

use super::records::EventDeliveries;
use super::tables::*;
use super::{Store, StoreError, decode_at, decode_event, delivery_ids};
use crate::model::Delivery;

/// Rows (events, deliveries, attempts, index rows) one purge transaction removes at
/// most, give or take one event's fan-out; the same order as retention's 500 events.
pub const PURGE_CHUNK_ROWS: usize = 2000;

/// The running purge tasks and the flag that stops them.
#[derive(Default)]
pub(super) struct PurgeTasks {
    stop: AtomicBool,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// One delivery to remove: (delivery id, webhook id, attempt numbers).
type DeliveryRows = (String, String, Vec<u32>);

impl Store {
    /// Ids of deleted tenants whose data is still being purged.
    pub fn tenants_being_purged(&self) -> Result<Vec<String>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(TENANT_PURGES)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, _) = row?;
            out.push(k.value().to_owned());
        }
        Ok(out)
    }

    /// Whether `tenant` was deleted and its data is still being purged (then the id
    /// cannot be created again yet).
    pub fn tenant_being_purged(&self, tenant: &str) -> Result<bool, StoreError> {
        let txn = self.read()?;
        Ok(txn.open_table(TENANT_PURGES)?.get(tenant)?.is_some())
    }

    /// Removes the next chunk (about `max_rows` rows) of a deleted tenant's data, in
    /// one lazily durable transaction (a lost chunk is simply redone: the marker is
    /// durable). Returns true when nothing is left and the marker is gone.
    pub async fn purge_tenant_chunk(
        &self,
        tenant: String,
        max_rows: usize,
    ) -> Result<bool, StoreError> {
        self.write(false, move |txn| purge_chunk(txn, &tenant, max_rows.max(1)))
            .await
    }

    /// Purges a deleted tenant's data chunk by chunk until none is left, or until
    /// [`Store::stop_purges`] (then the marker stays and the purge resumes at the
    /// next start).
    pub async fn purge_tenant(&self, tenant: String) -> Result<(), StoreError> {
        while !self.inner.purges.stop.load(Ordering::SeqCst) {
            if self
                .purge_tenant_chunk(tenant.clone(), PURGE_CHUNK_ROWS)
                .await?
            {
                break;
            }
        }
        Ok(())
    }

    /// Runs [`Store::purge_tenant`] as a task, logging how it ended; the answer
    /// comes when it has ended. [`Store::stop_purges`] stops and awaits it.
    pub fn spawn_purge(&self, tenant: String) -> tokio::sync::oneshot::Receiver<()> {
        let (done, ended) = tokio::sync::oneshot::channel();
        let store = self.clone();
        let task = tokio::spawn(async move {
            match store.purge_tenant(tenant.clone()).await {
                Ok(()) if store.inner.purges.stop.load(Ordering::SeqCst) => {
                    tracing::info!(%tenant, "tenant purge paused; it resumes at the next start")
                }
                Ok(()) => tracing::info!(%tenant, "deleted tenant's data purged"),
                Err(e) => {
                    tracing::warn!(%tenant, error = %e, "tenant purge stopped; it resumes at the next start")
                }
            }
            let _ = done.send(());
        });
        let mut tasks = self
            .inner
            .purges
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
        ended
    }

    /// Stops the running purges after their current chunk and waits for them, so
    /// no task holds the store when it closes. Later purges stop at once.
    pub async fn stop_purges(&self) {
        self.inner.purges.stop.store(true, Ordering::SeqCst);
        let tasks = std::mem::take(
            &mut *self
                .inner
                .purges
                .tasks
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for task in tasks {
            let _ = task.await;
        }
    }

    /// Marks for purging every tenant id that owns events or idempotency records
    /// but no tenant record (tenants deleted by a version that did not purge).
    /// Returns the ids marked. One pass that skips from tenant to tenant; lazily
    /// durable, since a lost mark is simply found again at the next start.
    pub async fn mark_orphaned_tenants(&self, now: i64) -> Result<Vec<String>, StoreError> {
        // Read first: almost every start finds none, and then writes nothing.
        let found = {
            let txn = self.read()?;
            orphans(
                &txn.open_table(TENANTS)?,
                &txn.open_table(TENANT_PURGES)?,
                &txn.open_table(TENANT_EVENTS)?,
                &txn.open_table(IDEMPOTENCY)?,
            )?
        };
        if found.is_empty() {
            return Ok(found);
        }
        self.write(false, move |txn| {
            let orphans = orphans(
                &txn.open_table(TENANTS)?,
                &txn.open_table(TENANT_PURGES)?,
                &txn.open_table(TENANT_EVENTS)?,
                &txn.open_table(IDEMPOTENCY)?,
            )?;
            let mut purges = txn.open_table(TENANT_PURGES)?;
            let at = now.max(0) as u64;
            for t in &orphans {
                purges.insert(t.as_str(), at)?;
            }
            Ok(orphans)
        })
        .await
    }
}

/// Tenant ids that own events or idempotency records but neither a tenant record
/// nor a purge mark.
fn orphans(
    tenants: &impl ReadableTable<&'static str, &'static [u8]>,
    purges: &impl ReadableTable<&'static str, u64>,
    tenant_events: &impl ReadableTable<(&'static str, &'static str), ()>,
    idempotency: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
) -> Result<Vec<String>, StoreError> {
    let mut found = distinct_tenants(tenant_events)?;
    found.extend(distinct_tenants(idempotency)?);
    found.sort();
    found.dedup();
    let mut out = Vec::new();
    for t in found {
        if tenants.get(t.as_str())?.is_none() && purges.get(t.as_str())?.is_none() {
            out.push(t);
        }
    }
    Ok(out)
}

/// The distinct first key parts of a `(tenant, _)` table, one range lookup each.
fn distinct_tenants<V: redb::Value + 'static>(
    table: &impl ReadableTable<(&'static str, &'static str), V>,
) -> Result<Vec<String>, StoreError> {
    let mut out: Vec<String> = Vec::new();
    loop {
        let next = {
            let mut range = match out.last() {
                // No stored id reaches U+10FFFF, so this skips the whole tenant.
                Some(t) => table.range((t.as_str(), "\u{10ffff}")..)?,
                None => table.range::<(&str, &str)>(..)?,
            };
            match range.next() {
                Some(row) => Some(row?.0.value().0.to_owned()),
                None => None,
            }
        };
        match next {
            Some(t) if out.last() != Some(&t) => out.push(t),
            _ => return Ok(out),
        }
    }
}

/// One purge transaction for `tenant`: events first (with everything hanging off
/// them), then leftover idempotency records, then webhook rows and the marker.
fn purge_chunk(txn: &WriteTransaction, tenant: &str, max_rows: usize) -> Result<bool, StoreError> {
    // Read everything first: a job that fails must not have written.
    // (event id, idempotency key, its rows in `event_deliveries`?, its deliveries)
    let mut events: Vec<(String, Option<String>, bool, Vec<DeliveryRows>)> = Vec::new();
    let mut rows = 0usize;
    {
        let tenant_events = txn.open_table(TENANT_EVENTS)?;
        let event_table = txn.open_table(EVENTS)?;
        let by_event = txn.open_table(EVENT_DELIVERIES)?;
        let deliveries = txn.open_table(DELIVERIES)?;
        let attempts = txn.open_table(ATTEMPTS)?;
        for row in tenant_events.range((tenant, "")..)? {
            let (k, _) = row?;
            let (t, evt) = k.value();
            if t != tenant || rows >= max_rows {
                break;
            }
            let (key, listed) = match event_table.get(evt)? {
                Some(v) => {
                    let (event, listed) = decode_event(evt, v.value())?;
                    (event.idempotency_key, listed)
                }
                None => (None, EventDeliveries::Indexed),
            };
            let indexed = listed == EventDeliveries::Indexed;
            let mut ds = Vec::new();
            for dlv in delivery_ids(&by_event, evt, listed)? {
                let webhook = match deliveries.get(dlv.as_str())? {
                    Some(v) => {
                        decode_at::<Delivery>("deliveries", dlv.as_str(), v.value())?.webhook_id
                    }
                    None => String::new(),
                };
                let mut numbers = Vec::new();
                for arow in attempts.range((dlv.as_str(), 0u32)..=(dlv.as_str(), u32::MAX))? {
                    numbers.push(arow?.0.value().1);
                }
                rows += 2 + numbers.len();
                ds.push((dlv, webhook, numbers));
            }
            rows += 1;
            events.push((evt.to_owned(), key, indexed, ds));
        }
    }
    if !events.is_empty() {
        let mut tenant_events = txn.open_table(TENANT_EVENTS)?;
        let mut event_table = txn.open_table(EVENTS)?;
        let mut idem = txn.open_table(IDEMPOTENCY)?;
        let mut by_event = txn.open_table(EVENT_DELIVERIES)?;
        let mut by_webhook = txn.open_table(WEBHOOK_DELIVERIES)?;
        let mut deliveries = txn.open_table(DELIVERIES)?;
        let mut attempts = txn.open_table(ATTEMPTS)?;
        let mut pending = txn.open_table(PENDING)?;
        let mut due = txn.open_table(DUE)?;
        for (evt, key, indexed, ds) in &events {
            for (dlv, webhook, numbers) in ds {
                for n in numbers {
                    attempts.remove((dlv.as_str(), *n))?;
                }
                if let Some(at) = pending.remove((webhook.as_str(), dlv.as_str()))? {
                    due.remove((at.value(), dlv.as_str()))?;
                }
                by_webhook.remove((webhook.as_str(), dlv.as_str()))?;
                if *indexed {
                    by_event.remove((evt.as_str(), dlv.as_str()))?;
                }
                deliveries.remove(dlv.as_str())?;
            }
            if let Some(key) = key {
                idem.remove((tenant, key.as_str()))?;
            }
            event_table.remove(evt.as_str())?;
            tenant_events.remove((tenant, evt.as_str()))?;
        }
        return Ok(false);
    }

    // No events left: idempotency records without an event (none are expected),
    // then the webhook rows and the marker.
    let mut keys = Vec::new();
    {
        let idem = txn.open_table(IDEMPOTENCY)?;
        for row in idem.range((tenant, "")..)? {
            let (k, _) = row?;
            let (t, key) = k.value();
            if t != tenant || keys.len() >= max_rows {
                break;
            }
            keys.push(key.to_owned());
        }
    }
    if !keys.is_empty() {
        let mut idem = txn.open_table(IDEMPOTENCY)?;
        for key in &keys {
            idem.remove((tenant, key.as_str()))?;
        }
        return Ok(false);
    }
    let mut webhooks = Vec::new();
    {
        let index = txn.open_table(TENANT_WEBHOOKS)?;
        for row in index.range((tenant, "")..)? {
            let (k, _) = row?;
            let (t, wh) = k.value();
            if t != tenant {
                break;
            }
            webhooks.push(wh.to_owned());
        }
    }
    // Reads every session before its first write, like the rest of this job.
    super::portal::remove_sessions(txn, |s| s.tenant == tenant)?;
    let mut index = txn.open_table(TENANT_WEBHOOKS)?;
    let mut notify = txn.open_table(NOTIFY)?;
    for wh in &webhooks {
        notify.remove(wh.as_str())?;
        index.remove((tenant, wh.as_str()))?;
    }
    txn.open_table(TENANT_PURGES)?.remove(tenant)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Event, Tenant};
    use crate::secrets::Cipher;
    use crate::store::IngestItem;

    fn event(tenant: &str, n: u32) -> IngestItem {
        IngestItem {
            event: Event {
                id: crate::model::new_id("evt"),
                tenant: tenant.to_owned(),
                event_type: "t".to_owned(),
                payload: format!("{{\"n\":{n}}}"),
                channels: Vec::new(),
                idempotency_key: Some(format!("k{n}")),
                created_at: 1,
            },
            deliveries: Vec::new(),
            body_hash: [0; 32],
        }
    }

    fn tenant(id: &str) -> Tenant {
        Tenant {
            id: id.to_owned(),
            name: id.to_owned(),
            created_at: 1,
        }
    }

    /// A data file from a version that removed only the tenant record: the data is
    /// found at start, the id refused, and the purge goes in chunks leaving the
    /// other tenant alone.
    #[tokio::test]
    async fn orphaned_data_is_marked_and_purged_in_chunks() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            Store::open(&dir.path().join("db"), Cipher::new(&[7; 32]), 1 << 20).expect("open");
        for id in ["old", "keep"] {
            store
                .create_tenant(tenant(id), Vec::new())
                .await
                .expect("tenant");
            let items = (0..5).map(|n| event(id, n)).collect();
            store.ingest(items).await.expect("ingest");
        }
        store
            .write(true, |txn| {
                txn.open_table(TENANTS)?.remove("old")?;
                Ok(())
            })
            .await
            .expect("old-style delete");

        assert_eq!(store.mark_orphaned_tenants(2).await.expect("mark"), ["old"]);
        assert_eq!(store.tenants_being_purged().expect("read"), ["old"]);
        let again = store.create_tenant(tenant("old"), Vec::new()).await;
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");

        let mut chunks = 0;
        while !store
            .purge_tenant_chunk("old".to_owned(), 2)
            .await
            .expect("chunk")
        {
            chunks += 1;
            assert!(chunks < 10, "the purge ends");
        }
        assert_eq!(chunks, 3, "5 events in chunks of 2");
        assert!(!store.tenant_being_purged("old").expect("read"));
        assert!(
            store
                .list_events("old", None, None, None, 100)
                .expect("list")
                .0
                .is_empty()
        );
        assert_eq!(
            store
                .list_events("keep", None, None, None, 100)
                .expect("list")
                .0
                .len(),
            5
        );
        store
            .create_tenant(tenant("old"), Vec::new())
            .await
            .expect("id free again");
        // The old keys are gone: the same key ingests afresh; the other tenant's stay.
        let fresh = store.ingest(vec![event("old", 0)]).await.expect("ingest");
        assert!(matches!(
            fresh[0].0,
            crate::store::IngestOutcome::Created { .. }
        ));
        let kept = store.ingest(vec![event("keep", 0)]).await.expect("ingest");
        assert!(matches!(
            kept[0].0,
            crate::store::IngestOutcome::Replay { .. }
        ));
        assert!(
            store
                .mark_orphaned_tenants(3)
                .await
                .expect("mark")
                .is_empty()
        );
        store.close();
    }
}
