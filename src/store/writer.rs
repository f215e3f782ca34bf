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

use redb::{Database, Durability, WriteTransaction};

use super::StoreError;

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
    /// Total commit time in microseconds.
    pub commit_micros: std::sync::atomic::AtomicU64,
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
        db: Arc<Database>,
        healthy: Arc<AtomicBool>,
        stats: Arc<WriterStats>,
    ) -> (Writer, thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel::<Request>();
        let handle = thread::Builder::new()
            .name("hookbox-writer".into())
            .spawn(move || run(&db, &rx, &healthy, &stats))
            // Spawning a thread fails only when the OS is out of resources at start-up.
            .expect("spawn the store writer thread");
        (Writer { tx }, handle)
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
        done_rx.await.map_err(|_| StoreError::Closed)?
    }
}

fn run(db: &Database, rx: &mpsc::Receiver<Request>, healthy: &AtomicBool, stats: &WriterStats) {
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
        let result = commit_batch(db, batch, durable, stats);
        match result {
            Ok(()) if durable => lazy_since = None,
            Ok(()) => {
                lazy_since.get_or_insert_with(Instant::now);
            }
            Err(e) => {
                // redb refuses writes after a failed commit until it is reopened:
                // report unready instead of retrying in a loop.
                tracing::error!(error = %e, "store commit failed; the store is now read-only");
                healthy.store(false, Ordering::SeqCst);
            }
        }
    }
    // Make whatever was committed lazily durable before the thread ends.
    if lazy_since.is_some() {
        let _ = commit_batch(db, Vec::new(), true, stats);
    }
}

fn commit_batch(
    db: &Database,
    batch: Vec<Request>,
    durable: bool,
    stats: &WriterStats,
) -> Result<(), StoreError> {
    let started = Instant::now();
    let mut txn = match db.begin_write() {
        Ok(t) => t,
        Err(e) => {
            // The jobs never run; dropping them answers their callers with an error.
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
    let result = txn.commit().map_err(StoreError::from);
    let failure = result.as_ref().err().map(ToString::to_string);
    for done in completions {
        done(match &failure {
            None => Ok(()),
            Some(msg) => Err(StoreError::Unavailable(msg.clone())),
        });
    }
    stats.commits.fetch_add(1, Ordering::Relaxed);
    stats.jobs.fetch_add(jobs, Ordering::Relaxed);
    stats
        .commit_micros
        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    result
}
