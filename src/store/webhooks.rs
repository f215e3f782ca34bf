//! Store operations on webhooks. Webhook records hold secrets, so each is sealed
//! whole with the master key before it is written. Invariants kept here: a webhook
//! that is disabled or deleted has no pending deliveries (saving it cancels them);
//! every change to a stored webhook is a read-modify-write of the stored record
//! inside one writer job, bumps its `version`, and is published on the change feed.

use std::sync::Arc;

use redb::{ReadableTable, WriteTransaction};

use super::changes::Change;
use super::tables::*;
use super::{Store, StoreError, decode, decode_at, encode, encode_keyed};
use crate::model::{Delivery, DeliveryState, UnixMs, Webhook};
use crate::secrets::Cipher;

/// What [`Store::update_webhook`] answers when the closure accepted the change:
/// the webhook as now stored and the closure's own result.
pub type Updated<R> = (Arc<Webhook>, R);

impl Store {
    /// Stores a new webhook at version 1; `Conflict` if its id is taken. Returns it
    /// as stored (the registry already shows it when this returns).
    pub async fn create_webhook(&self, webhook: Webhook) -> Result<Arc<Webhook>, StoreError> {
        let cipher = self.inner.cipher.clone();
        self.write_changes(move |txn| {
            if txn
                .open_table(WEBHOOKS)?
                .get(webhook.id.as_str())?
                .is_some()
            {
                return Err(StoreError::Conflict(format!("webhook {}", webhook.id)));
            }
            let mut webhook = webhook;
            webhook.version = 1;
            put_in(txn, &cipher, &webhook)?;
            let stored = Arc::new(webhook);
            Ok((stored.clone(), vec![Change::Webhook(stored)]))
        })
        .await
    }

    /// Changes a stored webhook atomically: inside one writer job, `f` gets the
    /// stored record (unsealed) and edits it. When `f` returns an error nothing is
    /// written and the error comes back as `Ok(Err(e))`; when it leaves the record
    /// unchanged nothing is written either. Otherwise the version is bumped, the
    /// record saved (cancelling pending deliveries if it is now disabled or
    /// deleted) and the change published before this returns. The id and tenant
    /// cannot be changed. `NotFound` if there is no such webhook.
    pub async fn update_webhook<R, E, F>(
        &self,
        id: String,
        f: F,
    ) -> Result<Result<Updated<R>, E>, StoreError>
    where
        R: Send + 'static,
        E: Send + 'static,
        F: FnOnce(&mut Webhook) -> Result<R, E> + Send + 'static,
    {
        let cipher = self.inner.cipher.clone();
        self.write_changes(move |txn| {
            let stored = match txn.open_table(WEBHOOKS)?.get(id.as_str())? {
                Some(v) => unseal(&cipher, v.value())?,
                None => return Err(StoreError::NotFound(format!("webhook {id}"))),
            };
            let mut next = stored.clone();
            let r = match f(&mut next) {
                Ok(r) => r,
                Err(e) => return Ok((Err(e), Vec::new())),
            };
            next.id = stored.id.clone();
            next.tenant = stored.tenant.clone();
            next.version = stored.version;
            if next == stored {
                return Ok((Ok((Arc::new(stored), r)), Vec::new()));
            }
            next.version = stored.version.saturating_add(1);
            put_in(txn, &cipher, &next)?;
            let next = Arc::new(next);
            Ok((Ok((next.clone(), r)), vec![Change::Webhook(next)]))
        })
        .await
    }

    /// Every webhook, deleted ones included (they keep their ids reserved), for
    /// loading the in-memory registry at start-up.
    pub fn load_webhooks(&self) -> Result<Vec<Webhook>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(WEBHOOKS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (_, v) = row?;
            out.push(unseal(&self.inner.cipher, v.value())?);
        }
        Ok(out)
    }

    /// One webhook by id, as stored.
    pub fn get_webhook(&self, id: &str) -> Result<Option<Webhook>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(WEBHOOKS)?;
        match table.get(id)? {
            Some(v) => Ok(Some(unseal(&self.inner.cipher, v.value())?)),
            None => Ok(None),
        }
    }
}

pub(super) fn unseal(cipher: &Cipher, sealed: &[u8]) -> Result<Webhook, StoreError> {
    let plain = cipher.open(sealed).map_err(StoreError::Seal)?;
    decode("webhooks", &plain)
}

/// Writes `webhook` inside `txn` as given (version included), cancelling pending
/// deliveries when it cannot be delivered to. Returns the number cancelled.
fn put_in(txn: &WriteTransaction, cipher: &Cipher, webhook: &Webhook) -> Result<usize, StoreError> {
    let sealed = cipher.seal(&encode("webhooks", webhook)?);
    let cancelled = if webhook.enabled && webhook.deleted_at.is_none() {
        0
    } else {
        cancel_pending(txn, &webhook.id, webhook.updated_at)?
    };
    txn.open_table(WEBHOOKS)?
        .insert(webhook.id.as_str(), sealed.as_slice())?;
    txn.open_table(TENANT_WEBHOOKS)?
        .insert((webhook.tenant.as_str(), webhook.id.as_str()), ())?;
    Ok(cancelled)
}

/// Marks a stored webhook deleted (used by tenant deletion). Returns it as now
/// stored, `None` when there is no such record.
pub(super) fn soft_delete_in(
    txn: &WriteTransaction,
    cipher: &Cipher,
    id: &str,
    now: UnixMs,
) -> Result<Option<Webhook>, StoreError> {
    let current = match txn.open_table(WEBHOOKS)?.get(id)? {
        Some(v) => unseal(cipher, v.value())?,
        None => return Ok(None),
    };
    if current.deleted_at.is_some() {
        return Ok(Some(current));
    }
    let mut w = current;
    w.deleted_at = Some(now);
    w.updated_at = now;
    w.version = w.version.saturating_add(1);
    put_in(txn, cipher, &w)?;
    Ok(Some(w))
}

/// Cancels every unfinished delivery of a webhook: out of the due index, state
/// `cancelled`. Returns how many.
pub(super) fn cancel_pending(
    txn: &WriteTransaction,
    webhook_id: &str,
    now: UnixMs,
) -> Result<usize, StoreError> {
    let mut pending = txn.open_table(PENDING)?;
    let mut entries = Vec::new();
    for row in pending.range((webhook_id, "")..)? {
        let (k, due) = row?;
        let (wh, dlv) = k.value();
        if wh != webhook_id {
            break;
        }
        entries.push((dlv.to_owned(), due.value()));
    }
    if entries.is_empty() {
        return Ok(0);
    }
    let mut due_index = txn.open_table(DUE)?;
    let mut deliveries = txn.open_table(DELIVERIES)?;
    for (dlv, due) in &entries {
        pending.remove((webhook_id, dlv.as_str()))?;
        due_index.remove((*due, dlv.as_str()))?;
        let updated = match deliveries.get(dlv.as_str())? {
            Some(v) => {
                let mut d: Delivery = decode_at("deliveries", dlv.as_str(), v.value())?;
                d.state = DeliveryState::Cancelled;
                d.next_attempt_at = None;
                d.updated_at = now;
                Some(encode_keyed("deliveries", &d)?)
            }
            None => None,
        };
        if let Some(bytes) = updated {
            deliveries.insert(dlv.as_str(), bytes.as_slice())?;
        }
    }
    Ok(entries.len())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::store::{Change, Subscriber};

    #[derive(Default)]
    struct Seen(Mutex<Vec<Change>>);

    impl Subscriber for Seen {
        fn apply(&self, changes: &[Change]) {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(changes.iter().cloned());
        }
    }

    fn webhook() -> Webhook {
        Webhook {
            id: "wh_1".into(),
            tenant: "acme".into(),
            url: "https://example.com/hook".into(),
            event_types: vec!["*".into()],
            channels: vec![],
            description: Some("first".into()),
            headers: Default::default(),
            oauth: None,
            secrets: vec![],
            notification_email: None,
            enabled: true,
            disabled_reason: None,
            disabled_at: None,
            metadata: Default::default(),
            rate_limit_per_second: None,
            created_at: 1,
            updated_at: 1,
            deleted_at: None,
            failing_since: None,
            version: 0,
            ordering: Default::default(),
            filter: None,
        }
    }

    #[tokio::test]
    async fn update_webhook_writes_only_accepted_changes_and_bumps_the_version() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            Store::open(&dir.path().join("t.redb"), Cipher::new(&[3; 32]), 1 << 20).expect("open");
        let seen = Arc::new(Seen::default());
        store.subscribe(seen.clone());
        let published = || seen.0.lock().map(|v| v.len()).unwrap_or(0);

        let created = store.create_webhook(webhook()).await.expect("create");
        assert_eq!(created.version, 1);
        assert_eq!(published(), 1);
        assert!(matches!(
            store.create_webhook(webhook()).await,
            Err(StoreError::Conflict(_))
        ));

        // A refused change writes and publishes nothing.
        let refused = store
            .update_webhook("wh_1".into(), |w| {
                w.enabled = false;
                Err::<(), _>("no")
            })
            .await
            .expect("store ok");
        assert_eq!(refused.err(), Some("no"));
        let stored = store.get_webhook("wh_1").expect("read").expect("exists");
        assert!(stored.enabled && stored.version == 1);
        assert_eq!(published(), 1);

        // A change that changes nothing keeps the version; the id cannot move.
        let (same, ()) = store
            .update_webhook("wh_1".into(), |w| {
                w.id = "wh_other".into();
                w.version = 99;
                Ok::<(), ()>(())
            })
            .await
            .expect("store ok")
            .expect("accepted");
        assert_eq!((same.id.as_str(), same.version), ("wh_1", 1));
        assert_eq!(published(), 1);

        // An accepted change is written against the stored record, bumped and
        // published.
        let (next, n) = store
            .update_webhook("wh_1".into(), |w| {
                w.description = Some("second".into());
                Ok::<u8, ()>(7)
            })
            .await
            .expect("store ok")
            .expect("accepted");
        assert_eq!((next.version, n), (2, 7));
        assert_eq!(
            store.get_webhook("wh_1").expect("read"),
            Some((*next).clone())
        );
        assert_eq!(published(), 2);
        assert!(matches!(
            seen.0.lock().expect("lock").last(),
            Some(Change::Webhook(w)) if w.description.as_deref() == Some("second")
        ));

        assert!(matches!(
            store
                .update_webhook("wh_none".into(), |_| Ok::<(), ()>(()))
                .await,
            Err(StoreError::NotFound(_))
        ));
        store.close();
    }
}
