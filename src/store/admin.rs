//! Store operations on tenants, API keys and event-type catalogues.

use redb::{ReadableTable, WriteTransaction};

use super::tables::*;
use super::{Store, StoreError, decode, encode};
use crate::model::{ApiKey, EventType, Tenant};

impl Store {
    /// Creates a tenant and seeds its catalogue; `Conflict` if the id is taken.
    pub async fn create_tenant(
        &self,
        tenant: Tenant,
        catalogue: Vec<EventType>,
    ) -> Result<(), StoreError> {
        self.write(true, move |txn| {
            let mut tenants = txn.open_table(TENANTS)?;
            if tenants.get(tenant.id.as_str())?.is_some() {
                return Err(StoreError::Conflict(format!("tenant {}", tenant.id)));
            }
            // A deleted tenant's id stays taken until its old data is purged.
            if txn
                .open_table(TENANT_PURGES)?
                .get(tenant.id.as_str())?
                .is_some()
            {
                return Err(StoreError::Conflict(format!(
                    "tenant {} (deleted, its data still being purged)",
                    tenant.id
                )));
            }
            let bytes = encode("tenants", &tenant)?;
            let mut types = txn.open_table(EVENT_TYPES)?;
            let mut encoded = Vec::with_capacity(catalogue.len());
            for et in &catalogue {
                encoded.push(encode("event_types", et)?);
            }
            tenants.insert(tenant.id.as_str(), bytes.as_slice())?;
            for (et, bytes) in catalogue.iter().zip(&encoded) {
                types.insert((et.tenant.as_str(), et.name.as_str()), bytes.as_slice())?;
            }
            Ok(())
        })
        .await
    }

    /// Every tenant, in id order.
    pub fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(TENANTS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (_, v) = row?;
            out.push(decode("tenants", v.value())?);
        }
        Ok(out)
    }

    /// Deletes a tenant with its keys and catalogue, soft-deletes its webhooks
    /// (cancelling their deliveries) and marks the id for purging: its events,
    /// deliveries, attempts and idempotency records are then removed in chunks by
    /// [`Store::purge_tenant`], and the id cannot be created again until that is
    /// done. Returns the deleted webhooks' ids, or `NotFound`.
    pub async fn delete_tenant(&self, id: String, now: i64) -> Result<Vec<String>, StoreError> {
        let cipher = self.inner.cipher.clone();
        self.write(true, move |txn| {
            let mut tenants = txn.open_table(TENANTS)?;
            if tenants.get(id.as_str())?.is_none() {
                return Err(StoreError::NotFound(format!("tenant {id}")));
            }
            // Collect the webhook ids before writing, per the writer's job invariant.
            let mut webhook_ids = Vec::new();
            {
                let index = txn.open_table(TENANT_WEBHOOKS)?;
                for row in index.range((id.as_str(), "")..)? {
                    let (k, _) = row?;
                    let (tenant, wh) = k.value();
                    if tenant != id {
                        break;
                    }
                    webhook_ids.push(wh.to_owned());
                }
            }
            tenants.remove(id.as_str())?;
            txn.open_table(TENANT_PURGES)?
                .insert(id.as_str(), now.max(0) as u64)?;
            txn.open_table(API_KEYS)?
                .retain(|_, v| decode::<ApiKey>("api_keys", v).map_or(true, |k| k.tenant != id))?;
            txn.open_table(EVENT_TYPES)?.retain(|(t, _), _| t != id)?;
            for wh in &webhook_ids {
                super::webhooks::soft_delete_in(txn, &cipher, wh, now)?;
            }
            Ok(webhook_ids)
        })
        .await
    }

    /// Stores a new API key record.
    pub async fn create_api_key(&self, key: ApiKey) -> Result<(), StoreError> {
        self.write(true, move |txn| {
            if txn.open_table(TENANTS)?.get(key.tenant.as_str())?.is_none() {
                return Err(StoreError::NotFound(format!("tenant {}", key.tenant)));
            }
            let bytes = encode("api_keys", &key)?;
            txn.open_table(API_KEYS)?
                .insert(key.id.as_str(), bytes.as_slice())?;
            Ok(())
        })
        .await
    }

    /// Every API key record (hashes only), in id order.
    pub fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(API_KEYS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (_, v) = row?;
            out.push(decode("api_keys", v.value())?);
        }
        Ok(out)
    }

    /// Deletes an API key; `NotFound` if there is none.
    pub async fn delete_api_key(&self, id: String) -> Result<(), StoreError> {
        self.write(true, move |txn| {
            let mut keys = txn.open_table(API_KEYS)?;
            match keys.remove(id.as_str())? {
                Some(_) => Ok(()),
                None => Err(StoreError::NotFound(format!("api key {id}"))),
            }
        })
        .await
    }

    /// Adds an event type to a tenant's catalogue; `Conflict` if it exists.
    pub async fn create_event_type(&self, et: EventType) -> Result<(), StoreError> {
        self.write(true, move |txn| insert_event_type(txn, &et))
            .await
    }

    /// The config seed names applied by an earlier start.
    pub fn applied_seeds(&self) -> Result<Vec<String>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(META)?;
        match table.get(SEEDS_KEY)? {
            Some(v) => decode("meta", v.value()),
            None => Ok(Vec::new()),
        }
    }

    /// Adds any of `types` missing from their tenants' catalogues (config seeds new
    /// since the last start) and records `applied` as the seeds now applied, so a
    /// seeded type a tenant deleted is not added back. Returns how many were added.
    pub async fn seed_event_types(
        &self,
        types: Vec<EventType>,
        applied: Vec<String>,
    ) -> Result<usize, StoreError> {
        self.write(true, move |txn| {
            let seeds = encode("meta", &applied)?;
            txn.open_table(META)?.insert(SEEDS_KEY, seeds.as_slice())?;
            let mut table = txn.open_table(EVENT_TYPES)?;
            let mut missing = Vec::new();
            for et in &types {
                if table.get((et.tenant.as_str(), et.name.as_str()))?.is_none() {
                    missing.push((et, encode("event_types", et)?));
                }
            }
            for (et, bytes) in &missing {
                table.insert((et.tenant.as_str(), et.name.as_str()), bytes.as_slice())?;
            }
            Ok(missing.len())
        })
        .await
    }

    /// Every event type of every tenant.
    pub fn list_event_types(&self) -> Result<Vec<EventType>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(EVENT_TYPES)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (_, v) = row?;
            out.push(decode("event_types", v.value())?);
        }
        Ok(out)
    }

    /// Removes an event type from a tenant's catalogue; `NotFound` if absent.
    pub async fn delete_event_type(&self, tenant: String, name: String) -> Result<(), StoreError> {
        self.write(true, move |txn| {
            let mut table = txn.open_table(EVENT_TYPES)?;
            match table.remove((tenant.as_str(), name.as_str()))? {
                Some(_) => Ok(()),
                None => Err(StoreError::NotFound(format!("event type {name}"))),
            }
        })
        .await
    }
}

/// The META key of the applied config seeds.
const SEEDS_KEY: &str = "applied_seed_event_types";

fn insert_event_type(txn: &WriteTransaction, et: &EventType) -> Result<(), StoreError> {
    let mut table = txn.open_table(EVENT_TYPES)?;
    if table.get((et.tenant.as_str(), et.name.as_str()))?.is_some() {
        return Err(StoreError::Conflict(format!("event type {}", et.name)));
    }
    let bytes = encode("event_types", et)?;
    table.insert((et.tenant.as_str(), et.name.as_str()), bytes.as_slice())?;
    Ok(())
}
