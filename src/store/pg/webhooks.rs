//! Webhooks on PostgreSQL, with the rules of the redb store (`store/webhooks.rs`):
//! every change is a read-modify-write of the stored row inside one transaction
//! (`SELECT ... FOR UPDATE`, so concurrent writers on any node never lose each
//! other's updates), bumps `version`, cancels unfinished deliveries when the webhook
//! is disabled or deleted, is announced to the other nodes inside its transaction
//! (`announce.rs`) and is published on this node's change feed after the commit.
//! Headers, OAuth settings and signing secrets are sealed with the master key in one
//! `sealed` column; the rest are plain columns.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::conn::{AsSql, Tx};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;

use super::{PgStore, is_unique_violation, sql};
use crate::model::{UnixMs, Webhook};
use crate::secrets::Cipher;
use crate::store::StoreError;
use crate::store::changes::Change;
use crate::store::codec::{self, CodecError};
use crate::store::records::{OAuthV1, SigningSecretV1, WebhookV3};
use crate::store::webhooks::Updated;

/// The sealed part of a webhook row (version byte 1 of the record codec): every
/// field that holds a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SealedPartsV1 {
    headers: BTreeMap<String, String>,
    oauth: Option<OAuthV1>,
    secrets: Vec<SigningSecretV1>,
}

/// The columns read back into a webhook, in `row_to_webhook`'s order.
const COLUMNS: &str = "id, tenant, url, event_types, channels, description, sealed, \
     notification_email, enabled, disabled_reason, disabled_at, metadata, \
     rate_limit_per_second, created_at, updated_at, deleted_at, failing_since, version, \
     ordering, filter";

impl PgStore {
    /// Stores a new webhook at version 1; `Conflict` if its id is taken. Returns it
    /// as stored.
    pub async fn create_webhook(&self, webhook: Webhook) -> Result<Arc<Webhook>, StoreError> {
        let _order = self.writes.lock().await;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(sql)?;
        let mut webhook = webhook;
        webhook.version = 1;
        insert(&tx, &self.cipher, &webhook)
            .await
            .map_err(|e| match e {
                Insert::Taken => StoreError::Conflict(format!("webhook {}", webhook.id)),
                Insert::Store(e) => e,
            })?;
        let stored = Arc::new(webhook);
        let changes = [Change::Webhook(stored.clone())];
        self.announce(&tx, &changes).await?;
        tx.commit().await.map_err(sql)?;
        self.publish(&changes);
        Ok(stored)
    }

    /// Changes a stored webhook atomically, as `Store::update_webhook` does: `f`
    /// edits the stored record inside one transaction holding its row lock; an
    /// error from `f` or an unchanged record writes nothing; otherwise the version
    /// is bumped, the row saved (cancelling unfinished deliveries when it is now
    /// disabled or deleted) and the change published. `NotFound` without the row.
    pub async fn update_webhook<R, E, F>(
        &self,
        id: String,
        f: F,
    ) -> Result<Result<Updated<R>, E>, StoreError>
    where
        F: FnOnce(&mut Webhook) -> Result<R, E>,
    {
        let _order = self.writes.lock().await;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(sql)?;
        let stored = match locked(&tx, &self.cipher, &id).await? {
            Some(w) => w,
            None => return Err(StoreError::NotFound(format!("webhook {id}"))),
        };
        let mut next = stored.clone();
        let r = match f(&mut next) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        next.id = stored.id.clone();
        next.tenant = stored.tenant.clone();
        next.version = stored.version;
        if next == stored {
            return Ok(Ok((Arc::new(stored), r)));
        }
        next.version = stored.version.saturating_add(1);
        save(&tx, &self.cipher, &next).await?;
        let next = Arc::new(next);
        let changes = [Change::Webhook(next.clone())];
        self.announce(&tx, &changes).await?;
        tx.commit().await.map_err(sql)?;
        self.publish(&changes);
        Ok(Ok((next, r)))
    }

    /// Every webhook, deleted ones included, in id order.
    pub async fn load_webhooks(&self) -> Result<Vec<Webhook>, StoreError> {
        all_webhooks(&self.client().await?, &self.cipher).await
    }

    /// One webhook by id, as stored.
    pub async fn get_webhook(&self, id: &str) -> Result<Option<Webhook>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {COLUMNS} FROM webhooks WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(sql)?;
        row.map(|r| row_to_webhook(&self.cipher, &r)).transpose()
    }
}

/// Every webhook, deleted ones included, in id order.
pub(super) async fn all_webhooks<C: AsSql>(
    c: &C,
    cipher: &Cipher,
) -> Result<Vec<Webhook>, StoreError> {
    let c = c.sql();
    let rows = c
        .query(&format!("SELECT {COLUMNS} FROM webhooks ORDER BY id"), &[])
        .await
        .map_err(sql)?;
    rows.iter().map(|r| row_to_webhook(cipher, r)).collect()
}

/// The webhooks among `ids` that exist, as stored, in id order.
pub(super) async fn webhooks_by_id<C: AsSql>(
    c: &C,
    cipher: &Cipher,
    ids: &[&str],
) -> Result<Vec<Webhook>, StoreError> {
    let c = c.sql();
    let rows = c
        .query(
            &format!("SELECT {COLUMNS} FROM webhooks WHERE id = ANY($1) ORDER BY id"),
            &[&ids],
        )
        .await
        .map_err(sql)?;
    rows.iter().map(|r| row_to_webhook(cipher, r)).collect()
}

/// Marks a webhook deleted inside `tx` (tenant deletion). Returns it as now stored,
/// `None` when there is no such row.
pub(super) async fn soft_delete_in(
    tx: &Tx<'_>,
    cipher: &Cipher,
    id: &str,
    now: UnixMs,
) -> Result<Option<Webhook>, StoreError> {
    let Some(mut w) = locked(tx, cipher, id).await? else {
        return Ok(None);
    };
    if w.deleted_at.is_some() {
        return Ok(Some(w));
    }
    w.deleted_at = Some(now);
    w.updated_at = now;
    w.version = w.version.saturating_add(1);
    save(tx, cipher, &w).await?;
    Ok(Some(w))
}

/// Reads a webhook row and locks it until `tx` ends.
async fn locked(tx: &Tx<'_>, cipher: &Cipher, id: &str) -> Result<Option<Webhook>, StoreError> {
    let row = tx
        .query_opt(
            &format!("SELECT {COLUMNS} FROM webhooks WHERE id = $1 FOR UPDATE"),
            &[&id],
        )
        .await
        .map_err(sql)?;
    row.map(|r| row_to_webhook(cipher, &r)).transpose()
}

/// Why an insert failed: the id is taken, or the store failed.
pub(super) enum Insert {
    Taken,
    Store(StoreError),
}

/// Inserts a webhook row as given (version included), sealing its secrets; used by
/// `create_webhook` and by `store copy`, so both seal the same way.
pub(super) async fn insert<C: AsSql>(
    client: &C,
    cipher: &Cipher,
    w: &Webhook,
) -> Result<(), Insert> {
    let client = client.sql();
    let v = Columns::of(cipher, w).map_err(Insert::Store)?;
    client
        .execute(
            &format!(
                "INSERT INTO webhooks ({COLUMNS}) VALUES \
                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                  $17, $18, $19, $20)"
            ),
            &v.params(),
        )
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Insert::Taken
            } else {
                Insert::Store(sql(e))
            }
        })?;
    Ok(())
}

/// Writes every column of an existing row, cancelling its unfinished deliveries
/// when it can no longer be delivered to.
async fn save(tx: &Tx<'_>, cipher: &Cipher, w: &Webhook) -> Result<(), StoreError> {
    let v = Columns::of(cipher, w)?;
    tx.execute(
        "UPDATE webhooks SET tenant = $2, url = $3, event_types = $4, channels = $5, \
         description = $6, sealed = $7, notification_email = $8, enabled = $9, \
         disabled_reason = $10, disabled_at = $11, metadata = $12, \
         rate_limit_per_second = $13, created_at = $14, updated_at = $15, \
         deleted_at = $16, failing_since = $17, version = $18, ordering = $19, \
         filter = $20 WHERE id = $1",
        &v.params(),
    )
    .await
    .map_err(sql)?;
    if !w.enabled || w.deleted_at.is_some() {
        tx.execute(
            // Rows locked in id order, as every multi-row delivery write does.
            "WITH l AS MATERIALIZED (SELECT id FROM deliveries \
                 WHERE webhook_id = $1 AND next_attempt_at IS NOT NULL ORDER BY id FOR UPDATE) \
             UPDATE deliveries d SET state = 4, next_attempt_at = NULL, updated_at = $2, \
                 lease_id = NULL, lease_until = NULL \
             FROM l WHERE d.id = l.id AND d.next_attempt_at IS NOT NULL",
            &[&w.id, &w.updated_at],
        )
        .await
        .map_err(sql)?;
    }
    Ok(())
}

/// A webhook as the values of its columns, in [`COLUMNS`] order.
struct Columns {
    v: WebhookV3,
    sealed: Vec<u8>,
    metadata: serde_json::Value,
    rate: Option<i32>,
    version: i64,
    ordering: i16,
}

impl Columns {
    fn of(cipher: &Cipher, w: &Webhook) -> Result<Columns, StoreError> {
        let v = WebhookV3::from(w);
        let parts = SealedPartsV1 {
            headers: v.headers.clone(),
            oauth: v.oauth.clone(),
            secrets: v.secrets.clone(),
        };
        let plain = codec::encode(&parts).map_err(|source| StoreError::Corrupt {
            table: "webhooks",
            source,
        })?;
        Ok(Columns {
            sealed: cipher.seal(&plain),
            metadata: serde_json::to_value(&v.metadata).unwrap_or_default(),
            rate: v
                .rate_limit_per_second
                .map(|r| r.min(i32::MAX as u32) as i32),
            version: v.version.min(i64::MAX as u64) as i64,
            ordering: i16::from(v.ordering),
            v,
        })
    }

    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 20] {
        let v = &self.v;
        [
            &v.id,
            &v.tenant,
            &v.url,
            &v.event_types,
            &v.channels,
            &v.description,
            &self.sealed,
            &v.notification_email,
            &v.enabled,
            &v.disabled_reason,
            &v.disabled_at,
            &self.metadata,
            &self.rate,
            &v.created_at,
            &v.updated_at,
            &v.deleted_at,
            &v.failing_since,
            &self.version,
            &self.ordering,
            &v.filter,
        ]
    }
}

fn row_to_webhook(cipher: &Cipher, r: &Row) -> Result<Webhook, StoreError> {
    let corrupt = |source: CodecError| StoreError::Corrupt {
        table: "webhooks",
        source,
    };
    let sealed: Vec<u8> = r.get(6);
    let plain = cipher.open(&sealed).map_err(StoreError::Seal)?;
    let parts: SealedPartsV1 = codec::decode(&plain).map_err(corrupt)?;
    let metadata: serde_json::Value = r.get(11);
    let metadata: BTreeMap<String, String> = serde_json::from_value(metadata)
        .map_err(|e| corrupt(CodecError::Invalid(format!("metadata: {e}"))))?;
    let rate: Option<i32> = r.get(12);
    let version: i64 = r.get(17);
    let ordering: i16 = r.get(18);
    let v = WebhookV3 {
        id: r.get(0),
        tenant: r.get(1),
        url: r.get(2),
        event_types: r.get(3),
        channels: r.get(4),
        description: r.get(5),
        headers: parts.headers,
        oauth: parts.oauth,
        secrets: parts.secrets,
        notification_email: r.get(7),
        enabled: r.get(8),
        disabled_reason: r.get(9),
        disabled_at: r.get(10),
        metadata,
        rate_limit_per_second: rate.map(|r| r.max(0) as u32),
        created_at: r.get(13),
        updated_at: r.get(14),
        deleted_at: r.get(15),
        failing_since: r.get(16),
        version: version.max(0) as u64,
        ordering: u8::try_from(ordering)
            .map_err(|_| corrupt(CodecError::Invalid(format!("ordering {ordering}"))))?,
        filter: r.get(19),
    };
    Webhook::try_from(v).map_err(corrupt)
}
