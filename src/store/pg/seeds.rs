//! The config seeds on PostgreSQL: which seed event types were applied (a `meta`
//! row, the same bytes as redb's META record, so `store copy` moves it as is) and
//! adding new seeds to every tenant's catalogue. Publishes the event types it put in
//! the catalogues, after the commit, like every catalogue write.

use std::collections::HashSet;

use super::{PgStore, sql};
use crate::model::EventType;
use crate::store::changes::Change;
use crate::store::{StoreError, codec};

/// The `meta` row of the applied config seeds (the redb META key).
const SEEDS_KEY: &str = "applied_seed_event_types";

impl PgStore {
    /// The config seed names applied by an earlier start.
    pub async fn applied_seeds(&self) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT value FROM meta WHERE name = $1", &[&SEEDS_KEY])
            .await
            .map_err(sql)?;
        match row {
            Some(r) => {
                let bytes: Vec<u8> = r.get(0);
                codec::decode(&bytes).map_err(|source| StoreError::Corrupt {
                    table: "meta",
                    source,
                })
            }
            None => Ok(Vec::new()),
        }
    }

    /// Adds any of `types` missing from their tenants' catalogues (config seeds new
    /// since the last start) and records `applied` as the seeds now applied, so a
    /// seeded type a tenant deleted is not added back; one transaction. Returns how
    /// many were added. Publishes `EventTypesAdded` with every one of `types` as
    /// now stored, the ones another node added a moment earlier included, so this
    /// node's registry has them all.
    pub async fn seed_event_types(
        &self,
        types: Vec<EventType>,
        applied: Vec<String>,
    ) -> Result<usize, StoreError> {
        let seeds = codec::encode(&applied).map_err(|source| StoreError::Corrupt {
            table: "meta",
            source,
        })?;
        let _order = self.writes.lock().await;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(sql)?;
        tx.execute(
            "INSERT INTO meta (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            &[&SEEDS_KEY, &seeds],
        )
        .await
        .map_err(sql)?;
        let tenants: Vec<&str> = types.iter().map(|t| t.tenant.as_str()).collect();
        let names: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
        let descriptions: Vec<Option<&str>> =
            types.iter().map(|t| t.description.as_deref()).collect();
        let schemas: Vec<Option<&str>> = types.iter().map(|t| t.schema.as_deref()).collect();
        let created: Vec<i64> = types.iter().map(|t| t.created_at).collect();
        let added: HashSet<(String, String)> = tx
            .query(
                "INSERT INTO event_types (tenant, name, description, schema, created_at) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], \
                                      $5::bigint[]) \
                 ON CONFLICT (tenant, name) DO NOTHING RETURNING tenant, name",
                &[&tenants, &names, &descriptions, &schemas, &created],
            )
            .await
            .map_err(sql)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let stored: Vec<EventType> = tx
            .query(
                "SELECT e.tenant, e.name, e.description, e.schema, e.created_at \
                 FROM event_types e JOIN unnest($1::text[], $2::text[]) AS u(tenant, name) \
                   ON e.tenant = u.tenant AND e.name = u.name \
                 ORDER BY e.tenant, e.name",
                &[&tenants, &names],
            )
            .await
            .map_err(sql)?
            .iter()
            .map(|r| EventType {
                tenant: r.get(0),
                name: r.get(1),
                description: r.get(2),
                schema: r.get(3),
                created_at: r.get(4),
            })
            .collect();
        let changes = [Change::EventTypesAdded(stored)];
        self.announce(&tx, &changes).await?;
        tx.commit().await.map_err(sql)?;
        self.publish(&changes);
        Ok(added.len())
    }
}
