//! The single writer thread and its group commit. It owns every redb write
//! transaction; no other thread ever calls `begin_write`.
//!
//! Callers hand in jobs (closures over the open transaction) through an unbounded
//! channel. The thread takes the first job, drains whatever else is queued (up to
//! [`MAX_BATCH`]), runs them all in one transaction and commits once; each caller is
//! answered only after that commit returns, so a durable job's answer means fsynced.
//!
//! Invariant for jobs: a job that returns an error must not have written anything
//! (check first, then write), because its transaction is shared with other callers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use std::path::{Path, PathBuf};

use redb::{Database, DatabaseError, Durability, WriteTransaction};

use super::{DbSlot, StoreError};

/// How often the writer checks whether it can write again after a failed commit.
const RECOVERY_PROBE: Duration = Duration::from_secs(1);

/// Reopens the database file (after a failed commit).
pub(crate) type Opener = Box<dyn Fn() -> Result<Database, DatabaseError> + Send>;

/// The most jobs one transaction carries.
const MAX_BATCH: usize = 4096;

/// How long lazily committed work may stay non-durable before the writer forces an
/// fsync of its own.
const LAZY_FLUSH: Duration = Duration::from_millis(500);

/// What a job leaves to run after the commit: it delivers the job's result.
pub(crate) type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// A unit of work run inside the shared write transaction.
pub(crate) type Job = Box<dyn FnOnce(&WriteTransaction) -> Completion + Send>;

struct Request {
    job: Job,
    durable: bool,
}

/// How many jobs and commits the writer has done; for metrics and benchmarks.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Commits made.
    pub commits: std::sync::atomic::AtomicU64,
    /// Jobs carried by those commits.
    pub jobs: std::sync::atomic::AtomicU64,
    /// Total time from `begin_write` to the end of the commit, in microseconds.
    pub commit_micros: std::sync::atomic::AtomicU64,
    /// The part of it spent running the jobs (the rest is redb's commit and fsync).
    pub job_micros: std::sync::atomic::AtomicU64,
}

/// The handle callers use to submit jobs. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Request>,
}

impl Writer {
    /// Starts the writer thread on `db`. It stops when every handle is dropped,
    /// after finishing what was queued. `healthy` turns false on a failed commit.
    pub(crate) fn start(
        slot: DbSlot,
        opener: Opener,
        dir: PathBuf,
        healthy: Arc<AtomicBool>,
        stats: Arc<WriterStats>,
    ) -> (Writer, thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel::<Request>();
        let handle = thread::Builder::new()
            .name("hookbox-writer".into())
            .spawn(move || {
                let recovery = Recovery {
                    slot,
                    opener,
                    dir,
                    healthy,
                };
                run(&recovery, &rx, &stats)
            })
            // Spawning a thread fails only when the OS is out of resources at start-up.
            .expect("spawn the store writer thread");
        (Writer { tx }, handle)
    }

    /// Queues `job` for the next group transaction without waiting. A job the writer
    /// refuses (it cannot write, or it stopped) is dropped without running.
    pub(crate) fn send(&self, durable: bool, job: Job) {
        let _ = self.tx.send(Request { job, durable });
    }

    /// Runs `f` in the next group transaction and returns its result after the commit.
    /// `durable` jobs are answered only after an fsync; others after a commit that is
    /// visible at once and made durable within [`LAZY_FLUSH`] or by the next durable one.
    pub(crate) async fn submit<R, F>(&self, durable: bool, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<R, StoreError> + Send + 'static,
    {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |txn| {
            let result = f(txn);
            Box::new(move |commit: Result<(), StoreError>| {
                let _ = done_tx.send(commit.and(result));
            })
        });
        self.tx
            .send(Request { job, durable })
            .map_err(|_| StoreError::Closed)?;
        // A job dropped without running was refused by a writer that cannot write.
        done_rx.await.map_err(|_| {
            StoreError::Unavailable("the write was not committed; the store cannot write".into())
        })?
    }
}

/// What the writer needs to get back on its feet after a failed commit.
struct Recovery {
    slot: DbSlot,
    opener: Opener,
    dir: PathBuf,
    healthy: Arc<AtomicBool>,
}

impl Recovery {
    fn current(&self) -> Option<Arc<Database>> {
        self.slot.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Refuses writes until the data dir accepts writes again, then reopens the
    /// database (redb refuses writes after a failed commit until it is reopened).
    /// Returns false when every handle is gone.
    fn wait_and_reopen(&self, rx: &mpsc::Receiver<Request>) -> bool {
        self.healthy.store(false, Ordering::SeqCst);
        loop {
            match rx.recv_timeout(RECOVERY_PROBE) {
                // Dropping the job answers its caller with "unavailable".
                Ok(request) => drop(request),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return false,
            }
            if !can_write(&self.dir) {
                continue;
            }
            match self.reopen() {
                Ok(()) => {
                    tracing::info!("the store can write again");
                    self.healthy.store(true, Ordering::SeqCst);
                    return true;
                }
                Err(e) => tracing::error!(error = %e, "cannot reopen the store yet"),
            }
        }
    }

    fn reopen(&self) -> Result<(), DatabaseError> {
        let mut slot = self.slot.write().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = slot.take() {
            // Readers hold the Arc only for the length of one read; wait them out so
            // the file is closed before it is opened again.
            let deadline = Instant::now() + Duration::from_secs(5);
            while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(1));
            }
            drop(old);
        }
        let db = (self.opener)()?;
        *slot = Some(Arc::new(db));
        Ok(())
    }
}

/// A failed commit as one line for callers: the root cause and what it likely means.
fn describe(e: &StoreError) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    format!("commit failed ({cause}); the disk may be full or read-only")
}

/// Whether a small file can be written and synced in `dir` (free space, not read-only).
fn can_write(dir: &Path) -> bool {
    let probe = dir.join(".hookbox-write-probe");
    let ok = (|| -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&probe)?;
        f.write_all(&[0u8; 64 * 1024])?;
        f.sync_all()
    })()
    .is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

fn run(recovery: &Recovery, rx: &mpsc::Receiver<Request>, stats: &WriterStats) {
    let mut lazy_since: Option<Instant> = None;
    loop {
        let first = match lazy_since {
            // Nothing is waiting for durability: sleep until work arrives.
            None => match rx.recv() {
                Ok(r) => Some(r),
                Err(_) => break,
            },
            Some(since) => {
                let left = LAZY_FLUSH.saturating_sub(since.elapsed());
                match rx.recv_timeout(left) {
                    Ok(r) => Some(r),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
        };
        let mut batch: Vec<Request> = first.into_iter().collect();
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let overdue = lazy_since.is_some_and(|t| t.elapsed() >= LAZY_FLUSH);
        let durable = overdue || batch.iter().any(|r| r.durable);
        let Some(db) = recovery.current() else {
            drop(batch);
            if !recovery.wait_and_reopen(rx) {
                return;
            }
            continue;
        };
        let result = commit_batch(&db, batch, durable, stats, &recovery.healthy);
        drop(db);
        match result {
            Ok(()) if durable => lazy_since = None,
            Ok(()) => {
                lazy_since.get_or_insert_with(Instant::now);
            }
            Err(e) => {
                // Lazily committed work since the last fsync may be lost with the
                // reopen; it is only attempt outcomes, which are redone (at-least-once).
                tracing::error!(error = %e, "store commit failed; refusing writes until it can write again");
                lazy_since = None;
                if !recovery.wait_and_reopen(rx) {
                    return;
                }
            }
        }
    }
    // Make whatever was committed lazily durable before the thread ends.
    if lazy_since.is_some()
        && let Some(db) = recovery.current()
    {
        let _ = commit_batch(&db, Vec::new(), true, stats, &recovery.healthy);
    }
}

fn commit_batch(
    db: &Database,
    batch: Vec<Request>,
    durable: bool,
    stats: &WriterStats,
    healthy: &AtomicBool,
) -> Result<(), StoreError> {
    let started = Instant::now();
    let mut txn = match db.begin_write() {
        Ok(t) => t,
        Err(e) => {
            // The jobs never run; dropping them answers their callers with an error.
            healthy.store(false, Ordering::SeqCst);
            drop(batch);
            return Err(StoreError::from(e));
        }
    };
    let level = if durable {
        Durability::Immediate
    } else {
        Durability::None
    };
    if let Err(e) = txn.set_durability(level) {
        tracing::warn!(error = %e, "cannot lower durability; committing durably");
    }
    let jobs = batch.len() as u64;
    let completions: Vec<Completion> = batch.into_iter().map(|r| (r.job)(&txn)).collect();
    let ran = started.elapsed();
    let result = txn.commit().map_err(StoreError::from);
    let failure = result.as_ref().err().map(describe);
    if failure.is_some() {
        // Unready before anyone hears of the failure, so /readyz never lags a 503.
        healthy.store(false, Ordering::SeqCst);
    }
    // Counted before anyone hears back, so a caller that reads the stats after its
    // write returns sees its own commit.
    stats.commits.fetch_add(1, Ordering::Relaxed);
    stats.jobs.fetch_add(jobs, Ordering::Relaxed);
    stats
        .commit_micros
        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    stats
        .job_micros
        .fetch_add(ran.as_micros() as u64, Ordering::Relaxed);
    for done in completions {
        done(match &failure {
            None => Ok(()),
            Some(msg) => Err(StoreError::Unavailable(msg.clone())),
        });
    }
    result
}
