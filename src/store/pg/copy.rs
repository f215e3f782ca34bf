//! `hookbox store copy`, the PostgreSQL side: migrates the target, locks its tables
//! against writers, refuses a database that holds any data, and inserts the batches
//! the redb reader streams (`store/copy.rs`) with one multi-row `unnest` statement per
//! batch, all in ONE transaction: a copy that fails half-way leaves nothing behind,
//! so a half-done copy can never look done. Webhooks are sealed by the same code as
//! `PgStore::create_webhook` (`webhooks::insert`). It never deletes or updates a row
//! that existed before the copy, and never formats a value into SQL.

use super::conn::{Statements, Tx};
use tokio::sync::mpsc;
use tokio_postgres::types::ToSql;

use super::{PgError, sql};
use crate::model::{ApiKey, Attempt, Delivery, Event, EventType, PortalSession, Tenant, Webhook};
use crate::notify::email::ThrottleState;
use crate::secrets::Cipher;
use crate::store::StoreError;
use crate::store::copy::{Batch, Copied, CopyError, IdempotencyRow, TABLES, Tally};

/// The tables a copy fills; any row in one of them makes the target "not empty".
/// (`meta` is not among them: a node that started on the empty database may have
/// recorded its applied seeds there; the copy overwrites them with the file's.)
const FILLED: [&str; 10] = [
    "tenants",
    "tenant_purges",
    "api_keys",
    "event_types",
    "webhooks",
    "events",
    "deliveries",
    "attempts",
    "idempotency",
    "notify",
];

/// Connects to `url`, migrates, and inserts everything `rx` brings in one
/// transaction, committing only after `Batch::End` and only when every table's rows
/// written equal the rows read.
pub(crate) async fn write_all(
    url: &str,
    ca_file: Option<&std::path::Path>,
    cipher: &Cipher,
    mut rx: mpsc::Receiver<Batch>,
) -> Result<Copied, CopyError> {
    let pool = super::pool_with(url, ca_file, 1).map_err(CopyError::Target)?;
    let mut client = pool
        .get()
        .await
        .map_err(|e| CopyError::Target(PgError::from(e)))?;
    super::migrate(&mut client)
        .await
        .map_err(CopyError::Target)?;
    let portal = has_table(&client, "portal_sessions").await?;
    let tx = Tx::new(
        client.transaction().await.map_err(write)?,
        Statements::Cached,
    );
    lock_and_check_empty(&tx, portal).await?;
    let mut w = Writer {
        tx: &tx,
        cipher,
        rows: Tally(TABLES.iter().map(|t| (*t, 0)).collect()),
        statements: 0,
        skipped: Vec::new(),
        portal,
    };
    // The one transaction stays open while the reader reads the next batch from
    // the local file: an offline tool on a locked, empty target, not a request path.
    let read = loop {
        match rx.recv().await {
            Some(Batch::End(read)) => break read,
            Some(batch) => w.write(batch).await?,
            // The reader stopped early; its error is reported by the caller.
            None => return Err(CopyError::Write(StoreError::Closed)),
        }
    };
    for (table, n) in &read.0 {
        let written = w.rows.get(table) + w.skipped_rows(table);
        if written != *n {
            return Err(CopyError::Mismatch {
                table,
                read: *n,
                written,
            });
        }
    }
    let Writer {
        rows,
        statements,
        skipped,
        ..
    } = w;
    tx.commit().await.map_err(write)?;
    Ok(Copied {
        rows,
        skipped,
        statements,
    })
}

fn write(e: tokio_postgres::Error) -> CopyError {
    CopyError::Write(sql(e))
}

/// Whether the target's schema has `table` (a table a later migration adds).
async fn has_table(client: &tokio_postgres::Client, table: &str) -> Result<bool, CopyError> {
    let row = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .map_err(write)?;
    Ok(row.get(0))
}

/// Locks every filled table against writers (readers may go on) until the commit,
/// then refuses the target if any holds a row.
async fn lock_and_check_empty(tx: &Tx<'_>, portal: bool) -> Result<(), CopyError> {
    let mut tables: Vec<&'static str> = FILLED.to_vec();
    if portal {
        tables.push("portal_sessions");
    }
    // Table names are this file's constants, never input.
    tx.batch_execute(&format!(
        "LOCK TABLE {} IN EXCLUSIVE MODE",
        tables.join(", ")
    ))
    .await
    .map_err(write)?;
    let probe = tables
        .iter()
        .map(|t| format!("EXISTS (SELECT 1 FROM {t})"))
        .collect::<Vec<_>>()
        .join(", ");
    let row = tx
        .query_one(&format!("SELECT {probe}"), &[])
        .await
        .map_err(write)?;
    let full: Vec<&'static str> = tables
        .iter()
        .enumerate()
        .filter(|(i, _)| row.get::<_, bool>(*i))
        .map(|(_, t)| *t)
        .collect();
    if full.is_empty() {
        Ok(())
    } else {
        Err(CopyError::NotEmpty(full))
    }
}

/// The open transaction and what it has written so far.
struct Writer<'a> {
    tx: &'a Tx<'a>,
    cipher: &'a Cipher,
    rows: Tally,
    statements: u64,
    skipped: Vec<(&'static str, u64, &'static str)>,
    /// Whether the target has the `portal_sessions` table.
    portal: bool,
}

impl Writer<'_> {
    fn skipped_rows(&self, table: &str) -> u64 {
        self.skipped
            .iter()
            .filter(|(t, _, _)| *t == table)
            .map(|(_, n, _)| n)
            .sum()
    }

    async fn write(&mut self, batch: Batch) -> Result<(), CopyError> {
        match batch {
            Batch::Tenants(v) => self.tenants(&v).await,
            Batch::TenantPurges(v) => self.tenant_purges(&v).await,
            Batch::ApiKeys(v) => self.api_keys(&v).await,
            Batch::EventTypes(v) => self.event_types(&v).await,
            Batch::Webhooks(v) => self.webhooks(&v).await,
            Batch::Events(v) => self.events(&v).await,
            Batch::Deliveries(v) => self.deliveries(&v).await,
            Batch::Attempts(v) => self.attempts(&v).await,
            Batch::Idempotency(v) => self.idempotency(&v).await,
            Batch::Notify(v) => self.notify(&v).await,
            Batch::PortalSessions(v) if self.portal => self.portal_sessions(&v).await,
            Batch::PortalSessions(v) => {
                self.skip(
                    "portal_sessions",
                    v.len() as u64,
                    "this schema has no portal_sessions table; customers open new portal links",
                );
                Ok(())
            }
            Batch::Meta(v) => self.meta(&v).await,
            Batch::End(_) => Ok(()),
        }
    }

    fn skip(&mut self, table: &'static str, n: u64, why: &'static str) {
        match self.skipped.iter_mut().find(|(t, _, _)| *t == table) {
            Some((_, c, _)) => *c += n,
            None => self.skipped.push((table, n, why)),
        }
    }

    /// Runs one insert statement and counts its rows under `table`.
    async fn exec(
        &mut self,
        table: &'static str,
        statement: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<(), CopyError> {
        let n = self.tx.execute(statement, params).await.map_err(write)?;
        self.statements += 1;
        self.rows.add(table, n);
        Ok(())
    }

    async fn tenants(&mut self, v: &[Tenant]) -> Result<(), CopyError> {
        let ids: Vec<&str> = v.iter().map(|t| t.id.as_str()).collect();
        let names: Vec<&str> = v.iter().map(|t| t.name.as_str()).collect();
        let created: Vec<i64> = v.iter().map(|t| t.created_at).collect();
        self.exec(
            "tenants",
            "INSERT INTO tenants (id, name, created_at) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])",
            &[&ids, &names, &created],
        )
        .await
    }

    async fn tenant_purges(&mut self, v: &[(String, i64)]) -> Result<(), CopyError> {
        let ids: Vec<&str> = v.iter().map(|(id, _)| id.as_str()).collect();
        let at: Vec<i64> = v.iter().map(|(_, at)| *at).collect();
        self.exec(
            "tenant_purges",
            "INSERT INTO tenant_purges (id, deleted_at) \
             SELECT * FROM unnest($1::text[], $2::bigint[])",
            &[&ids, &at],
        )
        .await
    }

    async fn api_keys(&mut self, v: &[ApiKey]) -> Result<(), CopyError> {
        let ids: Vec<&str> = v.iter().map(|k| k.id.as_str()).collect();
        let tenants: Vec<&str> = v.iter().map(|k| k.tenant.as_str()).collect();
        let names: Vec<&str> = v.iter().map(|k| k.name.as_str()).collect();
        // Arrays of arrays must be rectangular in PostgreSQL: each key's scopes go as
        // one JSON array, unpacked per row (as ingest does for channels).
        let scopes: Vec<serde_json::Value> = v
            .iter()
            .map(|k| k.scopes.iter().map(|s| s.as_str()).collect())
            .collect();
        let hashes: Vec<&[u8]> = v.iter().map(|k| k.hash.as_slice()).collect();
        let prefixes: Vec<&str> = v.iter().map(|k| k.prefix.as_str()).collect();
        let created: Vec<i64> = v.iter().map(|k| k.created_at).collect();
        self.exec(
            "api_keys",
            "INSERT INTO api_keys (id, tenant, name, scopes, hash, prefix, created_at) \
             SELECT id, tenant, name, ARRAY(SELECT jsonb_array_elements_text(scopes)), \
                    hash, prefix, created_at \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::bytea[], \
                         $6::text[], $7::bigint[]) \
                  AS u(id, tenant, name, scopes, hash, prefix, created_at)",
            &[
                &ids, &tenants, &names, &scopes, &hashes, &prefixes, &created,
            ],
        )
        .await
    }

    async fn event_types(&mut self, v: &[EventType]) -> Result<(), CopyError> {
        let tenants: Vec<&str> = v.iter().map(|e| e.tenant.as_str()).collect();
        let names: Vec<&str> = v.iter().map(|e| e.name.as_str()).collect();
        let descriptions: Vec<Option<&str>> = v.iter().map(|e| e.description.as_deref()).collect();
        let schemas: Vec<Option<&str>> = v.iter().map(|e| e.schema.as_deref()).collect();
        let created: Vec<i64> = v.iter().map(|e| e.created_at).collect();
        self.exec(
            "event_types",
            "INSERT INTO event_types (tenant, name, description, schema, created_at) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], \
                                  $5::bigint[])",
            &[&tenants, &names, &descriptions, &schemas, &created],
        )
        .await
    }

    /// Webhooks one statement each, through `PgStore`'s own sealing insert (there
    /// are few of them; events and deliveries are the bulk).
    async fn webhooks(&mut self, v: &[Webhook]) -> Result<(), CopyError> {
        for w in v {
            super::webhooks::insert(self.tx, self.cipher, w)
                .await
                .map_err(|e| match e {
                    super::webhooks::Insert::Taken => {
                        CopyError::Write(StoreError::Conflict(format!("webhook {}", w.id)))
                    }
                    super::webhooks::Insert::Store(e) => CopyError::Write(e),
                })?;
            self.statements += 1;
            self.rows.add("webhooks", 1);
        }
        Ok(())
    }

    async fn events(&mut self, v: &[Event]) -> Result<(), CopyError> {
        let ids: Vec<&str> = v.iter().map(|e| e.id.as_str()).collect();
        let tenants: Vec<&str> = v.iter().map(|e| e.tenant.as_str()).collect();
        let types: Vec<&str> = v.iter().map(|e| e.event_type.as_str()).collect();
        let payloads: Vec<&str> = v.iter().map(|e| e.payload.as_str()).collect();
        let channels: Vec<serde_json::Value> = v
            .iter()
            .map(|e| serde_json::Value::from(e.channels.clone()))
            .collect();
        let keys: Vec<Option<&str>> = v.iter().map(|e| e.idempotency_key.as_deref()).collect();
        let created: Vec<i64> = v.iter().map(|e| e.created_at).collect();
        self.exec(
            "events",
            super::ingest::INSERT_EVENTS,
            &[
                &ids, &tenants, &types, &payloads, &channels, &keys, &created,
            ],
        )
        .await
    }

    async fn deliveries(&mut self, v: &[Delivery]) -> Result<(), CopyError> {
        let ids: Vec<&str> = v.iter().map(|d| d.id.as_str()).collect();
        let tenants: Vec<&str> = v.iter().map(|d| d.tenant.as_str()).collect();
        let events: Vec<&str> = v.iter().map(|d| d.event_id.as_str()).collect();
        let webhooks: Vec<&str> = v.iter().map(|d| d.webhook_id.as_str()).collect();
        let types: Vec<&str> = v.iter().map(|d| d.event_type.as_str()).collect();
        let states: Vec<i16> = v
            .iter()
            .map(|d| super::codes::state_code(d.state))
            .collect();
        let attempts: Vec<i32> = v.iter().map(|d| clamp_i32(d.attempts)).collect();
        let steps: Vec<i32> = v.iter().map(|d| clamp_i32(d.schedule_step)).collect();
        let due: Vec<Option<i64>> = v.iter().map(|d| d.next_attempt_at).collect();
        let status: Vec<Option<i16>> = v.iter().map(|d| d.last_status.map(clamp_i16)).collect();
        let errors: Vec<Option<&str>> = v.iter().map(|d| d.last_error.as_deref()).collect();
        let created: Vec<i64> = v.iter().map(|d| d.created_at).collect();
        let updated: Vec<i64> = v.iter().map(|d| d.updated_at).collect();
        self.exec(
            "deliveries",
            "INSERT INTO deliveries (id, tenant, event_id, webhook_id, event_type, state, \
             attempts, schedule_step, next_attempt_at, last_status, last_error, created_at, \
             updated_at, line_seq) \
             SELECT *, NULL::bigint FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], \
                                  $5::text[], $6::smallint[], $7::integer[], $8::integer[], \
                                  $9::bigint[], $10::smallint[], $11::text[], $12::bigint[], \
                                  $13::bigint[])",
            &[
                &ids, &tenants, &events, &webhooks, &types, &states, &attempts, &steps, &due,
                &status, &errors, &created, &updated,
            ],
        )
        .await
    }

    async fn attempts(&mut self, v: &[Attempt]) -> Result<(), CopyError> {
        let ids: Vec<&str> = v.iter().map(|a| a.delivery_id.as_str()).collect();
        let numbers: Vec<i32> = v.iter().map(|a| clamp_i32(a.number)).collect();
        let at: Vec<i64> = v.iter().map(|a| a.at).collect();
        let triggers: Vec<i16> = v
            .iter()
            .map(|a| super::codes::trigger_code(a.trigger))
            .collect();
        let status: Vec<Option<i16>> = v.iter().map(|a| a.status.map(clamp_i16)).collect();
        let errors: Vec<Option<&str>> = v.iter().map(|a| a.error.as_deref()).collect();
        let latency: Vec<i64> = v
            .iter()
            .map(|a| i64::try_from(a.latency_ms).unwrap_or(i64::MAX))
            .collect();
        let bodies: Vec<&str> = v.iter().map(|a| a.response_body.as_str()).collect();
        self.exec(
            "attempts",
            "INSERT INTO attempts (delivery_id, number, at, trigger, status, error, \
             latency_ms, response_body) \
             SELECT * FROM unnest($1::text[], $2::integer[], $3::bigint[], $4::smallint[], \
                                  $5::smallint[], $6::text[], $7::bigint[], $8::text[])",
            &[
                &ids, &numbers, &at, &triggers, &status, &errors, &latency, &bodies,
            ],
        )
        .await
    }

    async fn idempotency(&mut self, v: &[IdempotencyRow]) -> Result<(), CopyError> {
        let tenants: Vec<&str> = v.iter().map(|r| r.tenant.as_str()).collect();
        let keys: Vec<&str> = v.iter().map(|r| r.key.as_str()).collect();
        let hashes: Vec<&[u8]> = v.iter().map(|r| r.body_hash.as_slice()).collect();
        let events: Vec<&str> = v.iter().map(|r| r.event_id.as_str()).collect();
        let counts: Vec<i32> = v.iter().map(|r| clamp_i32(r.deliveries)).collect();
        let created: Vec<i64> = v.iter().map(|r| r.created_at).collect();
        self.exec(
            "idempotency",
            "INSERT INTO idempotency (tenant, key, body_hash, event_id, deliveries, \
             created_at) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[], \
                                  $5::integer[], $6::bigint[])",
            &[&tenants, &keys, &hashes, &events, &counts, &created],
        )
        .await
    }

    async fn notify(&mut self, v: &[(String, ThrottleState)]) -> Result<(), CopyError> {
        let ids: Vec<&str> = v.iter().map(|(id, _)| id.as_str()).collect();
        let sent: Vec<Option<i64>> = v.iter().map(|(_, t)| t.last_sent).collect();
        let suppressed: Vec<i32> = v.iter().map(|(_, t)| clamp_i32(t.suppressed)).collect();
        self.exec(
            "notify",
            "INSERT INTO notify (webhook_id, last_sent, suppressed) \
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::integer[])",
            &[&ids, &sent, &suppressed],
        )
        .await
    }

    /// Portal sessions (schema 2 on): the token hash is the key, as on redb.
    async fn portal_sessions(&mut self, v: &[PortalSession]) -> Result<(), CopyError> {
        let hashes: Vec<&[u8]> = v.iter().map(|s| s.hash.as_slice()).collect();
        let tenants: Vec<&str> = v.iter().map(|s| s.tenant.as_str()).collect();
        let read_only: Vec<bool> = v.iter().map(|s| s.read_only).collect();
        let created: Vec<i64> = v.iter().map(|s| s.created_at).collect();
        let expires: Vec<i64> = v.iter().map(|s| s.expires_at).collect();
        self.exec(
            "portal_sessions",
            "INSERT INTO portal_sessions (hash, tenant, read_only, created_at, expires_at) \
             SELECT * FROM unnest($1::bytea[], $2::text[], $3::boolean[], $4::bigint[], \
                                  $5::bigint[])",
            &[&hashes, &tenants, &read_only, &created, &expires],
        )
        .await
    }

    /// Store-wide values: the file's win over any a node wrote on the empty target.
    async fn meta(&mut self, v: &[(String, Vec<u8>)]) -> Result<(), CopyError> {
        let names: Vec<&str> = v.iter().map(|(n, _)| n.as_str()).collect();
        let values: Vec<&[u8]> = v.iter().map(|(_, b)| b.as_slice()).collect();
        self.exec(
            "meta",
            "INSERT INTO meta (name, value) \
             SELECT * FROM unnest($1::text[], $2::bytea[]) \
             ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            &[&names, &values],
        )
        .await
    }
}

fn clamp_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn clamp_i16(n: u16) -> i16 {
    i16::try_from(n).unwrap_or(i16::MAX)
}
