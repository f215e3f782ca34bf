//! Store operations on webhooks. Webhook records hold secrets, so each is sealed
//! whole with the master key before it is written. Invariant kept here: a webhook
//! that is disabled or deleted has no pending deliveries (saving it cancels them).

use redb::{ReadableTable, WriteTransaction};

use super::tables::*;
use super::{Store, StoreError, decode, encode};
use crate::model::{Delivery, DeliveryState, UnixMs, Webhook};
use crate::secrets::Cipher;

impl Store {
    /// Creates or replaces a webhook. When the saved webhook is disabled or deleted,
    /// its pending deliveries are cancelled in the same transaction; returns how many.
    pub async fn put_webhook(&self, webhook: Webhook) -> Result<usize, StoreError> {
        let cipher = self.inner.cipher.clone();
        self.write(true, move |txn| put_in(txn, &cipher, &webhook))
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

fn unseal(cipher: &Cipher, sealed: &[u8]) -> Result<Webhook, StoreError> {
    let plain = cipher.open(sealed).map_err(StoreError::Seal)?;
    decode("webhooks", &plain)
}

/// Writes `webhook` inside `txn`, cancelling pending deliveries when it cannot be
/// delivered to. Returns the number cancelled.
pub(super) fn put_in(
    txn: &WriteTransaction,
    cipher: &Cipher,
    webhook: &Webhook,
) -> Result<usize, StoreError> {
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

/// Marks a stored webhook deleted (used by tenant deletion).
pub(super) fn soft_delete_in(
    txn: &WriteTransaction,
    cipher: &Cipher,
    id: &str,
    now: UnixMs,
) -> Result<(), StoreError> {
    let current = match txn.open_table(WEBHOOKS)?.get(id)? {
        Some(v) => unseal(cipher, v.value())?,
        None => return Ok(()),
    };
    if current.deleted_at.is_some() {
        return Ok(());
    }
    let mut w = current;
    w.deleted_at = Some(now);
    w.updated_at = now;
    put_in(txn, cipher, &w)?;
    Ok(())
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
                let mut d: Delivery = decode("deliveries", v.value())?;
                d.state = DeliveryState::Cancelled;
                d.next_attempt_at = None;
                d.updated_at = now;
                Some(encode("deliveries", &d)?)
            }
            None => None,
        };
        if let Some(bytes) = updated {
            deliveries.insert(dlv.as_str(), bytes.as_slice())?;
        }
    }
    Ok(entries.len())
}
