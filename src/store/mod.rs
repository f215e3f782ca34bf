//! The store: the only code that imports redb. It owns the data file, the table
//! layout, the record codec and the single writer thread; it never does HTTP and
//! never decides policy (what to deliver, when to retry): callers pass decisions in.

mod admin;
pub mod codec;
mod deliveries;
mod events;
mod notify;
mod purge;
mod tables;
mod webhooks;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{Database, ReadTransaction, ReadableDatabase};

use crate::secrets::Cipher;

pub use deliveries::{AttemptWrite, DueEntry, Next, RecoverScope};
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
    #[error("the store cannot write: {0}")]
    Unavailable(String),
    #[error("the store is closed")]
    Closed,
}

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
    purges: purge::PurgeTasks,
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
        let txn = db.begin_write()?;
        {
            use tables::*;
            txn.open_table(TENANTS)?;
            txn.open_table(API_KEYS)?;
            txn.open_table(EVENT_TYPES)?;
            txn.open_table(WEBHOOKS)?;
            txn.open_table(TENANT_WEBHOOKS)?;
            txn.open_table(EVENTS)?;
            txn.open_table(TENANT_EVENTS)?;
            txn.open_table(IDEMPOTENCY)?;
            txn.open_table(DELIVERIES)?;
            txn.open_table(WEBHOOK_DELIVERIES)?;
            txn.open_table(EVENT_DELIVERIES)?;
            txn.open_table(DUE)?;
            txn.open_table(PENDING)?;
            txn.open_table(ATTEMPTS)?;
            txn.open_table(NOTIFY)?;
            txn.open_table(META)?;
            txn.open_table(TENANT_PURGES)?;
        }
        txn.commit()?;
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

/// Decodes a record, naming its table in the error.
fn decode<T: serde::de::DeserializeOwned>(
    table: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    codec::decode(bytes).map_err(|source| StoreError::Corrupt { table, source })
}

/// Encodes a record. Encoding our own types cannot fail short of a bincode bug, which
/// is reported as a corrupt record rather than a panic.
fn encode<T: serde::Serialize>(table: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    codec::encode(value).map_err(|source| StoreError::Corrupt { table, source })
}
