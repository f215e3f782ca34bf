//! Tenants, API keys and event-type catalogues on PostgreSQL, with the rules of the
//! redb store (`store/admin.rs`): a taken or still-purging tenant id is a conflict,
//! a key needs its tenant, deleting a tenant removes its keys and catalogue and
//! soft-deletes its webhooks in the same transaction. Every write announces what it
//! changed to the other nodes inside its transaction (`announce.rs`) and publishes
//! it on this node's change feed after the commit. Also the reads the change
//! listener re-reads other nodes' changes with.

use std::sync::Arc;

use super::conn::AsSql;
use tokio_postgres::Row;

use super::{PgStore, is_unique_violation, sql};
use crate::model::{ApiKey, EventType, Scope, Tenant};
use crate::store::StoreError;
use crate::store::changes::Change;
use crate::store::codec::CodecError;

impl PgStore {
    /// Creates a tenant and seeds its catalogue; `Conflict` if the id is taken or
    /// still being purged after a delete.
    pub async fn create_tenant(
        &self,
        tenant: Tenant,
        catalogue: Vec<EventType>,
    ) -> Result<(), StoreError> {
        let _order = self.writes.lock().await;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(sql)?;
        let purging = tx
            .query_opt("SELECT 1 FROM tenant_purges WHERE id = $1", &[&tenant.id])
            .await
            .map_err(sql)?;
        if purging.is_some() {
            return Err(StoreError::Conflict(format!(
                "tenant {} (deleted, its data still being purged)",
                tenant.id
            )));
        }
        let inserted = tx
            .execute(
                "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO NOTHING",
                &[&tenant.id, &tenant.name, &tenant.created_at],
            )
            .await
            .map_err(sql)?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!("tenant {}", tenant.id)));
        }
        for et in &catalogue {
            insert_event_type(&tx, et).await?;
        }
        let changes = [Change::TenantCreated { tenant, catalogue }];
        self.announce(&tx, &changes).await?;
        tx.commit().await.map_err(sql)?;
        self.publish(&changes);
        Ok(())
    }

    /// Every tenant, in id order.
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        all_tenants(&self.client().await?).await
    }

    /// Deletes a tenant with its keys and catalogue, soft-deletes its webhooks
    /// (cancelling their unfinished deliveries) and marks the id as being purged,
    /// in one transaction. Returns the deleted webhooks' ids, or `NotFound`.
    pub async fn delete_tenant(&self, id: String, now: i64) -> Result<Vec<String>, StoreError> {
        let _order = self.writes.lock().await;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(sql)?;
        let deleted = tx
            .execute("DELETE FROM tenants WHERE id = $1", &[&id])
            .await
            .map_err(sql)?;
        if deleted == 0 {
            return Err(StoreError::NotFound(format!("tenant {id}")));
        }
        tx.execute(
            "INSERT INTO tenant_purges (id, deleted_at) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET deleted_at = EXCLUDED.deleted_at",
            &[&id, &now],
        )
        .await
        .map_err(sql)?;
        let keys: Vec<String> = tx
            .query(
                "DELETE FROM api_keys WHERE tenant = $1 RETURNING id",
                &[&id],
            )
            .await
            .map_err(sql)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let event_types: Vec<String> = tx
            .query(
                "DELETE FROM event_types WHERE tenant = $1 RETURNING name",
                &[&id],
            )
            .await
            .map_err(sql)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let webhook_ids: Vec<String> = tx
            .query(
                "SELECT id FROM webhooks WHERE tenant = $1 ORDER BY id FOR UPDATE",
                &[&id],
            )
            .await
            .map_err(sql)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        // Their unfinished deliveries locked at once in id order, as every
        // multi-row delivery write does; each webhook's cancel below then finds
        // its rows already held.
        tx.execute(
            "SELECT 1 FROM deliveries WHERE webhook_id = ANY($1) \
             AND next_attempt_at IS NOT NULL ORDER BY id FOR UPDATE",
            &[&webhook_ids],
        )
        .await
        .map_err(sql)?;
        let mut webhooks = Vec::with_capacity(webhook_ids.len());
        for wh in &webhook_ids {
            if let Some(w) = super::webhooks::soft_delete_in(&tx, &self.cipher, wh, now).await? {
                webhooks.push(Arc::new(w));
            }
        }
        let changes = [Change::TenantDeleted {
            id,
            keys,
            event_types,
            webhooks,
        }];
        self.announce(&tx, &changes).await?;
        tx.commit().await.map_err(sql)?;
        self.publish(&changes);
        Ok(webhook_ids)
    }

    /// Stores a new API key record; `NotFound` without its tenant.
    pub async fn create_api_key(&self, key: ApiKey) -> Result<(), StoreError> {
        let _order = self.writes.lock().await;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(sql)?;
        let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
        // The tenant is locked against a concurrent delete while the key goes in.
        let inserted = tx
            .execute(
                "INSERT INTO api_keys (id, tenant, name, scopes, hash, prefix, created_at) \
                 SELECT $1, t.id, $3, $4, $5, $6, $7 FROM tenants t WHERE t.id = $2 \
                 FOR KEY SHARE OF t",
                &[
                    &key.id,
                    &key.tenant,
                    &key.name,
                    &scopes,
                    &key.hash.as_slice(),
                    &key.prefix,
                    &key.created_at,
                ],
            )
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("api key {}", key.id))
                } else {
                    sql(e)
                }
            })?;
        if inserted == 0 {
            return Err(StoreError::NotFound(format!("tenant {}", key.tenant)));
        }
        let changes = [Change::KeyCreated(key)];
        self.announce(&tx, &changes).await?;
        tx.commit().await.map_err(sql)?;
        self.publish(&changes);
        Ok(())
    }

    /// Every API key record (hashes only), in id order.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        all_api_keys(&self.client().await?).await
    }

    /// Deletes an API key; `NotFound` if there is none.
    pub async fn delete_api_key(&self, id: String) -> Result<(), StoreError> {
        let _order = self.writes.lock().await;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(sql)?;
        let deleted = tx
            .execute("DELETE FROM api_keys WHERE id = $1", &[&id])
            .await
            .map_err(sql)?;
        if deleted == 0 {
            return Err(StoreError::NotFound(format!("api key {id}")));
        }
        let changes = [Change::KeyDeleted { id }];
        self.announce(&tx, &changes).await?;
        tx.commit().await.map_err(sql)?;
        self.publish(&changes);
        Ok(())
    }

    /// Adds an event type to a tenant's catalogue; `Conflict` if it exists.
    pub async fn create_event_type(&self, et: EventType) -> Result<(), StoreError> {
        let _order = self.writes.lock().await;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(sql)?;
        insert_event_type(&tx, &et).await?;
        let changes = [Change::EventTypesAdded(vec![et])];
        self.announce(&tx, &changes).await?;
        tx.commit().await.map_err(sql)?;
        self.publish(&changes);
        Ok(())
    }

    /// Every event type of every tenant, by tenant then name.
    pub async fn list_event_types(&self) -> Result<Vec<EventType>, StoreError> {
        all_event_types(&self.client().await?).await
    }

    /// Removes an event type from a tenant's catalogue; `NotFound` if absent.
    pub async fn delete_event_type(&self, tenant: String, name: String) -> Result<(), StoreError> {
        let _order = self.writes.lock().await;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(sql)?;
        let deleted = tx
            .execute(
                "DELETE FROM event_types WHERE tenant = $1 AND name = $2",
                &[&tenant, &name],
            )
            .await
            .map_err(sql)?;
        if deleted == 0 {
            return Err(StoreError::NotFound(format!("event type {name}")));
        }
        let changes = [Change::EventTypeDeleted { tenant, name }];
        self.announce(&tx, &changes).await?;
        tx.commit().await.map_err(sql)?;
        self.publish(&changes);
        Ok(())
    }
}

/// Inserts one catalogue entry; `Conflict` if the tenant has it already.
async fn insert_event_type<C: AsSql>(client: &C, et: &EventType) -> Result<(), StoreError> {
    let client = client.sql();
    let inserted = client
        .execute(
            "INSERT INTO event_types (tenant, name, description, schema, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, name) DO NOTHING",
            &[
                &et.tenant,
                &et.name,
                &et.description,
                &et.schema,
                &et.created_at,
            ],
        )
        .await
        .map_err(sql)?;
    if inserted == 0 {
        return Err(StoreError::Conflict(format!("event type {}", et.name)));
    }
    Ok(())
}

/// Every tenant, in id order.
pub(super) async fn all_tenants<C: AsSql>(c: &C) -> Result<Vec<Tenant>, StoreError> {
    let c = c.sql();
    let rows = c
        .query("SELECT id, name, created_at FROM tenants ORDER BY id", &[])
        .await
        .map_err(sql)?;
    Ok(rows.iter().map(tenant).collect())
}

/// One tenant with its whole catalogue, if it exists.
pub(super) async fn tenant_with_catalogue<C: AsSql>(
    c: &C,
    id: &str,
) -> Result<Option<(Tenant, Vec<EventType>)>, StoreError> {
    let c = c.sql();
    let Some(row) = c
        .query_opt(
            "SELECT id, name, created_at FROM tenants WHERE id = $1",
            &[&id],
        )
        .await
        .map_err(sql)?
    else {
        return Ok(None);
    };
    let rows = c
        .query(
            &format!("SELECT {EVENT_TYPE} FROM event_types WHERE tenant = $1 ORDER BY name"),
            &[&id],
        )
        .await
        .map_err(sql)?;
    Ok(Some((tenant(&row), rows.iter().map(event_type).collect())))
}

/// Every API key record (hashes only), in id order.
pub(super) async fn all_api_keys<C: AsSql>(c: &C) -> Result<Vec<ApiKey>, StoreError> {
    let c = c.sql();
    let rows = c
        .query(&format!("SELECT {API_KEY} FROM api_keys ORDER BY id"), &[])
        .await
        .map_err(sql)?;
    rows.iter().map(api_key).collect()
}

/// One API key record, if it exists.
pub(super) async fn api_key_by_id<C: AsSql>(c: &C, id: &str) -> Result<Option<ApiKey>, StoreError> {
    let c = c.sql();
    let row = c
        .query_opt(
            &format!("SELECT {API_KEY} FROM api_keys WHERE id = $1"),
            &[&id],
        )
        .await
        .map_err(sql)?;
    row.as_ref().map(api_key).transpose()
}

/// Every event type of every tenant, by tenant then name.
pub(super) async fn all_event_types<C: AsSql>(c: &C) -> Result<Vec<EventType>, StoreError> {
    let c = c.sql();
    let rows = c
        .query(
            &format!("SELECT {EVENT_TYPE} FROM event_types ORDER BY tenant, name"),
            &[],
        )
        .await
        .map_err(sql)?;
    Ok(rows.iter().map(event_type).collect())
}

/// The named `(tenant, name)` catalogue entries that exist, by tenant then name.
pub(super) async fn event_types_named<C: AsSql>(
    c: &C,
    tenants: &[&str],
    names: &[&str],
) -> Result<Vec<EventType>, StoreError> {
    let c = c.sql();
    let rows = c
        .query(
            &format!(
                "SELECT {EVENT_TYPE} FROM event_types \
                 WHERE (tenant, name) IN (SELECT * FROM unnest($1::text[], $2::text[])) \
                 ORDER BY tenant, name"
            ),
            &[&tenants, &names],
        )
        .await
        .map_err(sql)?;
    Ok(rows.iter().map(event_type).collect())
}

/// The columns [`event_type`] reads.
const EVENT_TYPE: &str = "tenant, name, description, schema, created_at";

/// The columns [`api_key`] reads.
const API_KEY: &str = "id, tenant, name, scopes, hash, prefix, created_at";

/// A `tenants` row (`id, name, created_at`) as the domain type.
fn tenant(r: &Row) -> Tenant {
    Tenant {
        id: r.get(0),
        name: r.get(1),
        created_at: r.get(2),
    }
}

/// An `event_types` row ([`EVENT_TYPE`]) as the domain type.
fn event_type(r: &Row) -> EventType {
    EventType {
        tenant: r.get(0),
        name: r.get(1),
        description: r.get(2),
        schema: r.get(3),
        created_at: r.get(4),
    }
}

/// An `api_keys` row ([`API_KEY`]) as the domain type; an unknown scope or a hash of the wrong
/// length is a corrupt row.
fn api_key(r: &Row) -> Result<ApiKey, StoreError> {
    let scopes: Vec<String> = r.get(3);
    let hash: Vec<u8> = r.get(4);
    let corrupt = |what: String| StoreError::Corrupt {
        table: "api_keys",
        source: CodecError::Invalid(what),
    };
    Ok(ApiKey {
        id: r.get(0),
        tenant: r.get(1),
        name: r.get(2),
        scopes: scopes
            .iter()
            .map(|s| Scope::parse(s).ok_or_else(|| corrupt(format!("scope {s}"))))
            .collect::<Result<_, _>>()?,
        hash: hash
            .try_into()
            .map_err(|_| corrupt("hash length".to_owned()))?,
        prefix: r.get(5),
        created_at: r.get(6),
    })
}
