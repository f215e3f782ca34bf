//! The store: the only code that imports redb. It owns the data file, the table
//! layout, the versioned records (`records/`), the codec, the single writer thread
//! and the change feed (`changes.rs`); it never does HTTP and never decides policy
//! (what to deliver, when to retry): callers pass decisions in.

mod admin;
mod changes;
pub mod codec;
pub mod copy;
mod db;
mod deliveries;
mod events;
#[cfg(test)]
mod layout_tests;
mod notify;
pub mod offline;
pub mod pg;
mod portal;
mod purge;
pub mod records;
mod refill;
mod tables;
mod webhooks;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable};

use crate::secrets::Cipher;
use records::{EventDeliveries, Keyed, Record};

pub use changes::{Change, Subscriber};
pub use db::{Db, RetentionPass};
pub use deliveries::{AttemptWrite, DeliveryFilter, DueEntry, Next, RecoverScope};
pub use events::{IngestItem, IngestOutcome, Ingested};
pub use writer::WriterStats;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database")]
    Open(#[source] redb::DatabaseError),
    #[error("database error")]
    Database(#[from] redb::Error),
    #[error("corrupt record in {table}")]
    Corrupt {
        table: &'static str,
        #[source]
        source: codec::CodecError,
    },
    #[error("cannot seal or open a secret record")]
    Seal(#[source] crate::secrets::SealError),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("the api key {0} no longer exists")]
    Revoked(String),
    #[error("the store cannot write: {0}")]
    Unavailable(String),
    #[error("the store is closed")]
    Closed,
    /// A PostgreSQL statement failed (the database is reachable; connection
    /// failures are `Unavailable`).
    #[error("PostgreSQL error")]
    Postgres(#[source] pg::PgError),
    /// The file was written by a newer hookbox; it is refused, never misread.
    #[error(
        "the data file has store format {found}, newer than this build of hookbox supports \
         (format {supported}); run the hookbox release that wrote it, or a newer one"
    )]
    NewerFormat { found: u32, supported: u32 },
}

/// The store-wide format this build writes (the META record `format`). Format 1 is
/// the 0.1.0 file (which had no such record); format 2 adds webhook records of
/// version 2 and 3; format 3 adds event, delivery and attempt records of version 2
/// (`records/event.rs`), whose events list their deliveries instead of
/// `event_deliveries`. A build refuses a file whose format is newer than this.
pub const FORMAT: u32 = 3;

/// The META key of the store format: a little-endian u32, outside the record codec
/// so that every build can read it whatever the codec becomes.
const FORMAT_KEY: &str = "format";

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Database(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// The data file and its writer. Cheap to clone; every clone shares one database.
///
/// # The interface the API and the delivery engine use
///
/// Engine-neutral: a PostgreSQL engine implements the same set (no trait yet, one
/// engine). Writes are atomic; "publishes" means the committed [`Change`]s go to the
/// [`Subscriber`] after the commit, in commit order, before the caller is answered.
/// - Lifecycle: [`Store::open`] (refuses a newer [`FORMAT`]), [`Store::subscribe`],
///   [`Store::close`], [`Store::is_healthy`], [`Store::writer_stats`],
///   [`Store::data_file_size`].
/// - Tenants, keys, catalogues (publish): `create_tenant`, `delete_tenant` (the
///   cascade is here alone), `create_api_key`, `delete_api_key`,
///   `create_event_type`, `delete_event_type`, `seed_event_types`; reads
///   `list_tenants`, `list_api_keys`, `list_event_types`, `applied_seeds`.
/// - Webhooks (publish): `create_webhook`, `update_webhook` (every change is a
///   read-modify-write of the stored record; bumps `version`); reads
///   `load_webhooks`, `get_webhook`.
/// - Ingest: `ingest` (durable, group committed, idempotency per call); reads
///   `get_event`, `list_events`.
/// - Delivery engine: `due_entries`, `next_due`, `next_due_after`, `due_count`,
///   `pending_due`, `delivery_with_event`, `record_attempts` (lazily durable; the
///   due entry is the lease), `cancel_delivery`, `record_manual`, `record_test`,
///   `recover`, `count_recoverable`; reads `get_delivery`, `list_webhook_deliveries`.
/// - Notifications: `notify_state`, `update_notify_state` (read-modify-write in the writer). Retention: `purge_before`.
/// - Portal sessions: `create_portal_session`, `portal_session` (by token hash),
///   `revoke_portal_sessions`; a tenant's purge removes them.
/// - Deleted tenants' data: `spawn_purge`, `purge_tenant`, `purge_tenant_chunk`,
///   `mark_orphaned_tenants`, `tenants_being_purged`, `tenant_being_purged`,
///   `stop_purges`.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// The open database, shared by readers and the writer. `None` only while the
/// writer reopens it after a failed commit.
pub(crate) type DbSlot = Arc<std::sync::RwLock<Option<Arc<Database>>>>;

struct Inner {
    db: DbSlot,
    writer: std::sync::Mutex<Option<writer::Writer>>,
    writer_thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    cipher: Cipher,
    path: std::path::PathBuf,
    healthy: Arc<AtomicBool>,
    stats: Arc<WriterStats>,
    ingest_queue: Arc<std::sync::Mutex<events::IngestQueue>>,
    feed: Arc<changes::Feed>,
    purges: purge::PurgeTasks,
}

/// Calls `$m!(TABLE)` for every table of the layout.
macro_rules! each_table {
    ($m:ident) => {{
        use tables::*;
        $m!(TENANTS);
        $m!(API_KEYS);
        $m!(EVENT_TYPES);
        $m!(WEBHOOKS);
        $m!(TENANT_WEBHOOKS);
        $m!(EVENTS);
        $m!(TENANT_EVENTS);
        $m!(IDEMPOTENCY);
        $m!(DELIVERIES);
        $m!(WEBHOOK_DELIVERIES);
        $m!(EVENT_DELIVERIES);
        $m!(DUE);
        $m!(PENDING);
        $m!(ATTEMPTS);
        $m!(NOTIFY);
        $m!(META);
        $m!(TENANT_PURGES);
        $m!(PORTAL_SESSIONS);
    }};
}

/// Whether the file is of this build's format and has every table, read without
/// writing; refuses a newer format.
fn layout_current(db: &Database) -> Result<bool, StoreError> {
    let txn = db.begin_read()?;
    let found = match txn.open_table(tables::META) {
        Ok(meta) => stored_format(&meta)?,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    if found != Some(FORMAT) {
        return Ok(false);
    }
    macro_rules! present {
        ($t:expr) => {
            match txn.open_table($t) {
                Ok(_) => {}
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        };
    }
    each_table!(present);
    Ok(true)
}

/// The format a file records (`None` before format 2), refusing a newer one.
fn stored_format(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Option<u32>, StoreError> {
    let found = match meta.get(FORMAT_KEY)? {
        Some(v) => Some(read_format(v.value())?),
        None => None,
    };
    match found {
        Some(found) if found > FORMAT => Err(StoreError::NewerFormat {
            found,
            supported: FORMAT,
        }),
        _ => Ok(found),
    }
}

/// Stamps the format and creates the missing tables, in one durable commit;
/// refuses a newer format before anything is written.
fn create_layout(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(tables::META)?;
        let found = match stored_format(&meta) {
            Ok(found) => found,
            Err(e) => {
                drop(meta);
                let _ = txn.abort();
                return Err(e);
            }
        };
        if found != Some(FORMAT) {
            meta.insert(FORMAT_KEY, FORMAT.to_le_bytes().as_slice())?;
        }
    }
    macro_rules! create {
        ($t:expr) => {
            txn.open_table($t)?;
        };
    }
    each_table!(create);
    txn.commit()?;
    Ok(())
}

impl Store {
    /// Opens (or creates) the data file at `path`, creating every table, and starts
    /// the writer thread. `cipher` seals webhook records (they hold secrets).
    pub fn open(path: &Path, cipher: Cipher, cache_bytes: usize) -> Result<Store, StoreError> {
        let opener = {
            let path = path.to_owned();
            move || {
                Database::builder()
                    .set_cache_size(cache_bytes)
                    .create(&path)
            }
        };
        let db = opener().map_err(StoreError::Open)?;
        // A file of this format with every table needs no write: opening it then
        // costs no commit (a durable one, about half a millisecond of each start).
        if !layout_current(&db)? {
            create_layout(&db)?;
        }
        let db: DbSlot = Arc::new(std::sync::RwLock::new(Some(Arc::new(db))));
        let healthy = Arc::new(AtomicBool::new(true));
        let stats = Arc::new(WriterStats::default());
        let (writer, thread) = writer::Writer::start(
            db.clone(),
            Box::new(opener),
            path.parent().unwrap_or(Path::new(".")).to_owned(),
            healthy.clone(),
            stats.clone(),
        );
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                writer: std::sync::Mutex::new(Some(writer)),
                writer_thread: std::sync::Mutex::new(Some(thread)),
                cipher,
                path: path.to_owned(),
                healthy,
                stats,
                ingest_queue: Arc::default(),
                feed: Arc::default(),
                purges: purge::PurgeTasks::default(),
            }),
        })
    }

    /// Whether the store can still write (false after a failed commit).
    pub fn is_healthy(&self) -> bool {
        self.inner.healthy.load(Ordering::SeqCst)
    }

    /// Commit counters of the writer thread.
    pub fn writer_stats(&self) -> &WriterStats {
        &self.inner.stats
    }

    /// Stops the writer after it has finished (and fsynced) everything queued.
    /// Later writes fail with [`StoreError::Closed`]; reads keep working.
    pub fn close(&self) {
        let writer = self.inner.writer.lock().ok().and_then(|mut w| w.take());
        drop(writer);
        let thread = self
            .inner
            .writer_thread
            .lock()
            .ok()
            .and_then(|mut t| t.take());
        if let Some(t) = thread {
            let _ = t.join();
        }
    }

    /// Applies every later commit's changes to `subscriber` (the registry), on the
    /// writer thread, after the commit and before the committing caller is answered.
    pub fn subscribe(&self, subscriber: Arc<dyn Subscriber>) {
        self.inner.feed.subscribe(subscriber);
    }

    /// Runs a durable job whose result carries the changes it made; after the
    /// commit they are published (in commit order), then the caller is answered.
    async fn write_changes<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&redb::WriteTransaction) -> Result<(R, Vec<Change>), StoreError> + Send + 'static,
    {
        let writer = self.writer()?;
        let feed = self.inner.feed.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: writer::Job = Box::new(move |txn| {
            let result = f(txn);
            Box::new(move |commit: Result<(), StoreError>| {
                let answer = commit.and(result).map(|(r, changes)| {
                    feed.publish(&changes);
                    r
                });
                let _ = tx.send(answer);
            })
        });
        writer.send(true, job);
        // A job dropped without running was refused by a writer that cannot write.
        rx.await.map_err(|_| {
            StoreError::Unavailable("the write was not committed; the store cannot write".into())
        })?
    }

    async fn write<R, F>(&self, durable: bool, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&redb::WriteTransaction) -> Result<R, StoreError> + Send + 'static,
    {
        self.writer()?.submit(durable, f).await
    }

    /// The writer's handle, unless the store is closed or cannot write.
    fn writer(&self) -> Result<writer::Writer, StoreError> {
        if !self.is_healthy() {
            return Err(StoreError::Unavailable(
                "a commit failed (disk full or read-only?); retrying until it can write again"
                    .into(),
            ));
        }
        self.inner
            .writer
            .lock()
            .ok()
            .and_then(|w| w.clone())
            .ok_or(StoreError::Closed)
    }

    fn read(&self) -> Result<ReadTransaction, StoreError> {
        let db = self
            .inner
            .db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| StoreError::Unavailable("the store is being reopened".into()))?;
        Ok(db.begin_read()?)
    }

    /// The size of the data file in bytes, if it can be read.
    pub fn data_file_size(&self) -> Option<u64> {
        std::fs::metadata(&self.inner.path).ok().map(|m| m.len())
    }
}

/// Reads the META format record.
fn read_format(bytes: &[u8]) -> Result<u32, StoreError> {
    let raw: [u8; 4] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        table: "meta",
        source: codec::CodecError::Trailing(bytes.len().saturating_sub(4)),
    })?;
    Ok(u32::from_le_bytes(raw))
}

/// Decodes a record of any version this build knows, naming its table in the error.
fn decode<T: Record>(table: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    T::from_bytes(bytes).map_err(|source| StoreError::Corrupt { table, source })
}

/// Encodes a record in its newest layout. Encoding cannot fail short of a bincode
/// bug, which is reported as a corrupt record rather than a panic.
fn encode<T: Record>(table: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    value
        .to_bytes()
        .map_err(|source| StoreError::Corrupt { table, source })
}

/// Decodes a [`Keyed`] record stored under `key`.
fn decode_at<T: Keyed>(
    table: &'static str,
    key: T::Key<'_>,
    bytes: &[u8],
) -> Result<T, StoreError> {
    T::from_bytes(key, bytes).map_err(|source| StoreError::Corrupt { table, source })
}

/// Encodes a [`Keyed`] record in its newest layout.
fn encode_keyed<T: Keyed>(table: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    value
        .to_bytes()
        .map_err(|source| StoreError::Corrupt { table, source })
}

/// Decodes the event stored under `id`, with where its deliveries are listed.
fn decode_event(
    id: &str,
    bytes: &[u8],
) -> Result<(crate::model::Event, EventDeliveries), StoreError> {
    records::decode_event(id, bytes).map_err(|source| StoreError::Corrupt {
        table: "events",
        source,
    })
}

/// Encodes an event with the ids of all its deliveries.
fn encode_event<'a>(
    event: &'a crate::model::Event,
    deliveries: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<u8>, StoreError> {
    records::encode_event(event, deliveries).map_err(|source| StoreError::Corrupt {
        table: "events",
        source,
    })
}

/// The ids of event `id`'s deliveries: `listed` in its record, or, for an event
/// stored before format 3, in the `event_deliveries` index.
fn delivery_ids(
    index: &impl ReadableTable<(&'static str, &'static str), ()>,
    id: &str,
    listed: EventDeliveries,
) -> Result<Vec<String>, StoreError> {
    if let Some(ids) = listed.listed() {
        return Ok(ids);
    }
    let mut out = Vec::new();
    for row in index.range((id, "")..)? {
        let (k, _) = row?;
        let (evt, dlv) = k.value();
        if evt != id {
            break;
        }
        out.push(dlv.to_owned());
    }
    Ok(out)
}

/// Decodes one of the store's own single-layout records (META values, idempotency).
fn decode_plain<T: serde::de::DeserializeOwned>(
    table: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    codec::decode(bytes).map_err(|source| StoreError::Corrupt { table, source })
}

/// Encodes one of the store's own single-layout records.
fn encode_plain<T: serde::Serialize>(
    table: &'static str,
    value: &T,
) -> Result<Vec<u8>, StoreError> {
    codec::encode(value).map_err(|source| StoreError::Corrupt { table, source })
}
