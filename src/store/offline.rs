//! Offline access to a stopped data file, for the maintenance commands (`hookbox
//! store copy`, `hookbox store compact`): opening it without the writer thread,
//! refusing a file another process (a running hookbox) holds or a newer format, and
//! compaction. It never opens a file that is in use and never changes a record.

use std::path::{Path, PathBuf};

use redb::{Database, ReadOnlyDatabase, ReadableDatabase};

use super::{FORMAT, FORMAT_KEY, StoreError, read_format, tables};

/// Why a data file could not be opened or compacted offline.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// There is no data file at the path.
    #[error("no hookbox data file at {0}")]
    Missing(PathBuf),
    /// Another process (a running hookbox) holds the file's lock.
    #[error(
        "{0} is in use by another process (a running hookbox?); stop it first: \
         this command needs the data file to itself"
    )]
    InUse(PathBuf),
    /// The file was written by a newer hookbox; it is refused, never misread.
    #[error(
        "the data file has store format {found}, newer than this build of hookbox supports \
         (format {supported}); use the hookbox release that wrote it, or a newer one"
    )]
    NewerFormat { found: u32, supported: u32 },
    /// redb could not open the file.
    #[error("cannot open {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: redb::DatabaseError,
    },
    /// Reading the file failed.
    #[error("cannot read the data file")]
    Read(#[source] StoreError),
    /// Compaction failed (the file is left as it was, or as compact as it got).
    #[error("compaction failed")]
    Compact(#[source] redb::CompactionError),
}

/// What compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    /// The file's size in bytes before.
    pub before: u64,
    /// The file's size in bytes after.
    pub after: u64,
}

/// Opens a stopped data file read-only. A file left by an unclean shutdown is first
/// repaired (by opening it for writing once, as the next `serve` would) and then
/// opened read-only; a file in use is [`OfflineError::InUse`], a newer format
/// [`OfflineError::NewerFormat`].
pub(crate) fn open_read_only(path: &Path) -> Result<ReadOnlyDatabase, OfflineError> {
    exists(path)?;
    let db = match read_only(path) {
        Ok(db) => db,
        Err(redb::DatabaseError::RepairAborted) => {
            tracing::info!(path = %path.display(), "repairing the data file after an unclean shutdown");
            drop(open_writable(path)?);
            read_only(path).map_err(|e| open_error(path, e))?
        }
        Err(e) => return Err(open_error(path, e)),
    };
    check_format(&db)?;
    Ok(db)
}

/// Compacts a stopped data file (redb's `compact`, repeated until it frees nothing
/// more) and returns its size before and after. Refuses a file in use or of a newer
/// format before changing anything.
pub fn compact(path: &Path) -> Result<Compacted, OfflineError> {
    let before = size(path)?;
    let mut db = open_writable(path)?;
    check_format(&db)?;
    // Each pass moves pages towards the start of the file; a handful is plenty, and
    // the bound keeps a pathological file from looping forever.
    for _ in 0..16 {
        if !db.compact().map_err(OfflineError::Compact)? {
            break;
        }
    }
    drop(db);
    let after = size(path)?;
    Ok(Compacted { before, after })
}

/// The page cache of an offline open: a copy reads each page about once, so a
/// small cache keeps memory flat however large the file (redb's default is 1 GiB).
const CACHE_BYTES: usize = 16 << 20;

fn read_only(path: &Path) -> Result<ReadOnlyDatabase, redb::DatabaseError> {
    Database::builder()
        .set_cache_size(CACHE_BYTES)
        .open_read_only(path)
}

fn exists(path: &Path) -> Result<(), OfflineError> {
    if path.is_file() {
        Ok(())
    } else {
        Err(OfflineError::Missing(path.to_owned()))
    }
}

fn size(path: &Path) -> Result<u64, OfflineError> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|_| OfflineError::Missing(path.to_owned()))
}

/// Opens the file for writing (which repairs it after an unclean shutdown); never
/// creates one.
fn open_writable(path: &Path) -> Result<Database, OfflineError> {
    exists(path)?;
    Database::builder()
        .set_cache_size(CACHE_BYTES)
        .open(path)
        .map_err(|e| open_error(path, e))
}

fn open_error(path: &Path, e: redb::DatabaseError) -> OfflineError {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => OfflineError::InUse(path.to_owned()),
        source => OfflineError::Open {
            path: path.to_owned(),
            source,
        },
    }
}

/// Refuses a file whose store format is newer than this build's. A file without the
/// record (0.1.0) or without the table at all is format 1.
fn check_format(db: &impl ReadableDatabase) -> Result<(), OfflineError> {
    let read = |e: StoreError| OfflineError::Read(e);
    let txn = db.begin_read().map_err(|e| read(e.into()))?;
    let meta = match txn.open_table(tables::META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(read(e.into())),
    };
    let found = match meta.get(FORMAT_KEY).map_err(|e| read(e.into()))? {
        Some(v) => read_format(v.value()).map_err(read)?,
        None => 1,
    };
    if found > FORMAT {
        return Err(OfflineError::NewerFormat {
            found,
            supported: FORMAT,
        });
    }
    Ok(())
}
