//! `hookbox store copy`, the redb side: reads every record of a stopped data file in
//! key order, in batches, and streams them to the PostgreSQL side (`pg/copy.rs`),
//! which inserts them into an empty database in one transaction. It owns what is
//! copied and how a redb record becomes a row (the due time of an unfinished
//! delivery comes from the `pending` index); it never writes to the data file and
//! never holds more than a few batches in memory.

use std::path::Path;

use redb::{ReadOnlyDatabase, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::mpsc;

use super::events::IdempotencyRecord;
use super::offline::{self, OfflineError};
use super::pg::PgError;
use super::tables::*;
use super::{FORMAT_KEY, StoreError, decode, decode_at, decode_event, decode_plain};
use crate::model::{ApiKey, Attempt, Delivery, Event, EventType, PortalSession, Tenant, Webhook};
use crate::notify::email::ThrottleState;
use crate::secrets::Cipher;

/// Rows per batch (one multi-row statement each) unless told otherwise.
pub const DEFAULT_BATCH_ROWS: usize = 2_000;

/// Batches read ahead of the inserts: the reader waits when this many are queued,
/// so memory stays at a few batches whatever the size of the file.
const READ_AHEAD: usize = 2;

/// Why a copy failed. Nothing is committed to the target when it fails.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The data file could not be opened (missing, in use, newer format...).
    #[error(transparent)]
    Source(#[from] OfflineError),
    /// A record could not be read (corrupt, or a webhook the master key cannot open).
    #[error("cannot read the data file")]
    Read(#[source] StoreError),
    /// The target database could not be reached, migrated or used.
    #[error("cannot use the target database")]
    Target(#[source] PgError),
    /// The target already holds data; `store copy` only fills an empty database.
    #[error(
        "the target database is not empty (rows in: {}); `hookbox store copy` only fills an \
         empty database, and nothing was written",
        .0.join(", ")
    )]
    NotEmpty(Vec<&'static str>),
    /// An insert failed; the transaction was rolled back.
    #[error("writing to PostgreSQL failed; the copy was rolled back and nothing was written")]
    Write(#[source] StoreError),
    /// The rows written do not match the rows read (a bug); rolled back.
    #[error("{table}: read {read} rows but wrote {written}; the copy was rolled back")]
    Mismatch {
        table: &'static str,
        read: u64,
        written: u64,
    },
}

/// Rows per table, in copy order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally(pub Vec<(&'static str, u64)>);

impl Tally {
    /// Adds `n` rows of `table`.
    pub fn add(&mut self, table: &'static str, n: u64) {
        match self.0.iter_mut().find(|(t, _)| *t == table) {
            Some((_, c)) => *c += n,
            None => self.0.push((table, n)),
        }
    }

    /// The rows of `table` (0 when none).
    pub fn get(&self, table: &str) -> u64 {
        self.0
            .iter()
            .find(|(t, _)| *t == table)
            .map_or(0, |(_, n)| *n)
    }
}

/// What a finished copy wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// Rows inserted per target table (every table, zeros included).
    pub rows: Tally,
    /// Rows read but not copied, per table, with the reason.
    pub skipped: Vec<(&'static str, u64, &'static str)>,
    /// SQL statements the inserts took (a handful per batch, not one per row).
    pub statements: u64,
}

/// How to copy.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Rows per batch (per multi-row insert).
    pub batch_rows: usize,
    /// The CA file to trust for TLS to the target (`[store] postgres_ca_file`), as
    /// for the server; `sslrootcert` in the URL works as well.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            batch_rows: DEFAULT_BATCH_ROWS,
            ca_file: None,
        }
    }
}

/// An idempotency record with its key.
#[derive(Debug, Clone)]
pub(crate) struct IdempotencyRow {
    pub tenant: String,
    pub key: String,
    pub body_hash: [u8; 32],
    pub event_id: String,
    pub deliveries: u32,
    pub created_at: i64,
}

/// One batch of rows of one table, as the reader hands them to the writer.
pub(crate) enum Batch {
    Tenants(Vec<Tenant>),
    TenantPurges(Vec<(String, i64)>),
    ApiKeys(Vec<ApiKey>),
    EventTypes(Vec<EventType>),
    Webhooks(Vec<Webhook>),
    Events(Vec<Event>),
    /// Deliveries with `next_attempt_at` set from the `pending` index (`None` when
    /// the delivery is not scheduled).
    Deliveries(Vec<Delivery>),
    Attempts(Vec<Attempt>),
    Idempotency(Vec<IdempotencyRow>),
    Notify(Vec<(String, ThrottleState)>),
    PortalSessions(Vec<PortalSession>),
    /// Store-wide values (the applied config seeds), except the redb format record.
    Meta(Vec<(String, Vec<u8>)>),
    /// Everything was read: the rows per table, to check against what was written.
    End(Tally),
}

/// The tables in copy order, named as in the SQL schema.
pub(crate) const TABLES: [&str; 12] = [
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
    "portal_sessions",
    "meta",
];

/// Copies the stopped data file at `data_file` into the empty PostgreSQL database at
/// `url`, in one transaction, sealing webhook secrets with `cipher` (the master key
/// the file was written with, which every node on the database must share). The
/// target is migrated first and locked against writers while the copy runs; a target
/// holding any data is refused before anything is written.
pub async fn copy_to_postgres(
    data_file: &Path,
    cipher: Cipher,
    url: &str,
    options: CopyOptions,
) -> Result<Copied, CopyError> {
    let db = {
        let path = data_file.to_owned();
        tokio::task::spawn_blocking(move || offline::open_read_only(&path))
            .await
            .map_err(|e| CopyError::Read(StoreError::Unavailable(e.to_string())))??
    };
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    let batch = options.batch_rows.max(1);
    let reader = {
        let cipher = cipher.clone();
        tokio::task::spawn_blocking(move || read_all(&db, &cipher, batch, &tx))
    };
    let written = super::pg::copy::write_all(url, options.ca_file.as_deref(), &cipher, rx).await;
    let read = reader
        .await
        .map_err(|e| CopyError::Read(StoreError::Unavailable(e.to_string())));
    match (written, read) {
        (Ok(copied), _) => Ok(copied),
        // The writer stopped because the reader failed: the reader's error is the cause.
        (Err(_), Ok(Err(e))) if !matches!(e, StoreError::Closed) => Err(CopyError::Read(e)),
        (Err(e), _) => Err(e),
    }
}

/// Where read rows go: batches of at most `rows` to the writer.
struct Out<'a> {
    tx: &'a mpsc::Sender<Batch>,
    rows: usize,
    tally: Tally,
}

impl Out<'_> {
    /// Hands a batch to the writer; `Closed` when the writer has stopped (it failed
    /// and reports why), which ends the read.
    fn send(&mut self, table: &'static str, batch: Batch, n: usize) -> Result<(), StoreError> {
        self.tally.add(table, n as u64);
        self.tx.blocking_send(batch).map_err(|_| StoreError::Closed)
    }
}

/// Reads every table in copy order and sends it in batches, then `Batch::End`.
fn read_all(
    db: &ReadOnlyDatabase,
    cipher: &Cipher,
    rows: usize,
    tx: &mpsc::Sender<Batch>,
) -> Result<(), StoreError> {
    let txn = db.begin_read()?;
    let mut out = Out {
        tx,
        rows,
        tally: Tally::default(),
    };
    each(
        &txn,
        TENANTS,
        &mut out,
        "tenants",
        Batch::Tenants,
        |_, v| decode("tenants", v),
    )?;
    each(
        &txn,
        TENANT_PURGES,
        &mut out,
        "tenant_purges",
        Batch::TenantPurges,
        |id, at| Ok((id.to_owned(), i64::try_from(at).unwrap_or(i64::MAX))),
    )?;
    each(
        &txn,
        API_KEYS,
        &mut out,
        "api_keys",
        Batch::ApiKeys,
        |_, v| decode("api_keys", v),
    )?;
    each(
        &txn,
        EVENT_TYPES,
        &mut out,
        "event_types",
        Batch::EventTypes,
        |_, v| decode("event_types", v),
    )?;
    each(
        &txn,
        WEBHOOKS,
        &mut out,
        "webhooks",
        Batch::Webhooks,
        |_, v| super::webhooks::unseal(cipher, v),
    )?;
    each(&txn, EVENTS, &mut out, "events", Batch::Events, |id, v| {
        Ok(decode_event(id, v)?.0)
    })?;
    read_deliveries(&txn, &mut out)?;
    each(
        &txn,
        ATTEMPTS,
        &mut out,
        "attempts",
        Batch::Attempts,
        |key, v| decode_at("attempts", key, v),
    )?;
    each(
        &txn,
        IDEMPOTENCY,
        &mut out,
        "idempotency",
        Batch::Idempotency,
        |(tenant, key), v| {
            let r: IdempotencyRecord = decode_plain("idempotency", v)?;
            Ok(IdempotencyRow {
                tenant: tenant.to_owned(),
                key: key.to_owned(),
                body_hash: r.body_hash,
                event_id: r.event_id,
                deliveries: r.deliveries,
                created_at: r.created_at,
            })
        },
    )?;
    each(&txn, NOTIFY, &mut out, "notify", Batch::Notify, |id, v| {
        Ok((id.to_owned(), decode("notify", v)?))
    })?;
    each(
        &txn,
        PORTAL_SESSIONS,
        &mut out,
        "portal_sessions",
        Batch::PortalSessions,
        |_, v| decode("portal_sessions", v),
    )?;
    read_meta(&txn, &mut out)?;
    let tally = std::mem::take(&mut out.tally);
    tx.blocking_send(Batch::End(tally))
        .map_err(|_| StoreError::Closed)
}

/// Opens a table for reading; `None` when the file never had it (a 0.1.0 file has
/// no `tenant_purges`, `portal_sessions` or `meta`).
fn open<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, StoreError> {
    match txn.open_table(def) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Streams one table: `row` turns each key and value into a row, and every `rows`
/// rows go to the writer as one batch made by `wrap`.
fn each<K, V, T>(
    txn: &ReadTransaction,
    def: TableDefinition<K, V>,
    out: &mut Out,
    table: &'static str,
    wrap: fn(Vec<T>) -> Batch,
    mut row: impl FnMut(K::SelfType<'_>, V::SelfType<'_>) -> Result<T, StoreError>,
) -> Result<(), StoreError>
where
    K: redb::Key + 'static,
    V: redb::Value + 'static,
{
    let Some(t) = open(txn, def)? else {
        return Ok(());
    };
    let mut buf = Vec::with_capacity(out.rows.min(4096));
    for entry in t.iter()? {
        let (k, v) = entry?;
        buf.push(row(k.value(), v.value())?);
        if buf.len() == out.rows {
            let n = buf.len();
            out.send(table, wrap(std::mem::take(&mut buf)), n)?;
        }
    }
    if !buf.is_empty() {
        let n = buf.len();
        out.send(table, wrap(buf), n)?;
    }
    Ok(())
}

/// Deliveries, each scheduled as the `pending` index says: an unfinished delivery is
/// due at its index entry (the truth the redb scheduler reads), a delivery without
/// one is not scheduled.
fn read_deliveries(txn: &ReadTransaction, out: &mut Out) -> Result<(), StoreError> {
    let pending = open(txn, PENDING)?;
    each(
        txn,
        DELIVERIES,
        out,
        "deliveries",
        Batch::Deliveries,
        |id, v| {
            let mut d: Delivery = decode_at("deliveries", id, v)?;
            let due = match &pending {
                Some(p) => p
                    .get((d.webhook_id.as_str(), d.id.as_str()))?
                    .map(|at| i64::try_from(at.value()).unwrap_or(i64::MAX)),
                None => None,
            };
            d.next_attempt_at = due;
            Ok(d)
        },
    )
}

/// The META values other than the redb format record (which has no meaning on
/// PostgreSQL, whose schema version lives in `hookbox_schema`).
fn read_meta(txn: &ReadTransaction, out: &mut Out) -> Result<(), StoreError> {
    let Some(t) = open(txn, META)? else {
        return Ok(());
    };
    let mut rows = Vec::new();
    for entry in t.iter()? {
        let (k, v) = entry?;
        if k.value() != FORMAT_KEY {
            rows.push((k.value().to_owned(), v.value().to_vec()));
        }
    }
    if !rows.is_empty() {
        let n = rows.len();
        out.send("meta", Batch::Meta(rows), n)?;
    }
    Ok(())
}
