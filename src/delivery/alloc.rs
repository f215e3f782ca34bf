//! Keeps freed heap memory returnable to the system (glibc's malloc; elsewhere
//! these are no-ops). Only tuning calls and counters: it never allocates or frees
//! anything itself.
//!
//! - **Large buffers.** glibc raises its mmap threshold each time a large mmapped
//!   block is freed, after which 1 MB event payloads come from per-thread arenas
//!   and, once freed, stay there: RSS then grows with fragmentation, not with live
//!   data (measured: 203 MiB against 135 MiB with a fixed threshold, for 1,200
//!   pending 900 KB events; `tests/it/memory.rs`). A fixed threshold keeps every
//!   block above it in its own mapping, unmapped when freed.
//! - **After a burst.** Request and attempt bodies below that threshold come from
//!   the arenas, and what a burst frees stays in them (free chunks inside a heap are
//!   never given back by `free`): after ingesting a million events in batches, 35
//!   of 86 MiB of RSS was such memory. So the bytes those short-lived buffers carry
//!   are counted ([`churned`]), and once a burst of at least [`TRIM_AFTER`] is
//!   followed by a quiet [`TICK`], [`give_back_when_quiet`] asks malloc to return
//!   its free pages (`malloc_trim`, about 10 ms for all arenas on a blocking
//!   thread). Never under load: a busy tick waits, so no request waits on the
//!   arenas' locks while traffic flows.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Blocks at least this large are mapped on their own (glibc's default start).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 256 * 1024;

/// Churn since the last give-back that makes the next quiet tick give back.
const TRIM_AFTER: u64 = 16 << 20;
/// A tick with less churn than this is quiet.
const QUIET: u64 = 256 << 10;
/// How often the churn is looked at.
const TICK: Duration = Duration::from_millis(500);

/// Bytes carried by short-lived buffers since the process started.
static CHURN: AtomicU64 = AtomicU64::new(0);
/// Times free memory was given back.
static GIVEN_BACK: AtomicU64 = AtomicU64::new(0);

/// Fixes glibc's mmap threshold (once per process; elsewhere a no-op).
pub(super) fn keep_large_buffers_returnable() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: `mallopt` only changes malloc's tuning parameters; it is safe
            // to call at any time from any thread.
            let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
            if ok != 1 {
                tracing::debug!("mallopt(M_MMAP_THRESHOLD) was refused");
            }
        });
    }
}

/// Counts `bytes` that went through a short-lived buffer (a request body read, an
/// attempt's body built).
pub(crate) fn churned(bytes: usize) {
    CHURN.fetch_add(bytes as u64, Relaxed);
}

/// How many times free memory was given back to the system (`/metrics`).
pub(crate) fn given_back() -> u64 {
    GIVEN_BACK.load(Relaxed)
}

/// Whether to give memory back now: `since_last` bytes churned since the last
/// give-back, `this_tick` of them in the tick that just ended.
fn due(since_last: u64, this_tick: u64) -> bool {
    since_last >= TRIM_AFTER && this_tick < QUIET
}

/// Gives free heap memory back after each burst, until `stop` fires. One per
/// process (the allocator is): a second engine's call returns at once.
pub(super) async fn give_back_when_quiet(stop: CancellationToken) {
    static RUNNING: AtomicBool = AtomicBool::new(false);
    /// Frees the place when the task ends, also when its runtime drops it unpolled.
    struct Place;
    impl Drop for Place {
        fn drop(&mut self) {
            RUNNING.store(false, Relaxed);
        }
    }
    if RUNNING.swap(true, Relaxed) {
        return;
    }
    let _place = Place;
    watch_churn(stop).await;
}

async fn watch_churn(stop: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = CHURN.load(Relaxed);
    let mut last = seen;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = CHURN.load(Relaxed);
        if due(now - last, now - seen) {
            if tokio::task::spawn_blocking(give_back)
                .await
                .unwrap_or(false)
            {
                GIVEN_BACK.fetch_add(1, Relaxed);
            }
            last = now;
        }
        seen = now;
    }
}

/// Returns the arenas' free pages to the system; whether it was asked.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn give_back() -> bool {
    // SAFETY: `malloc_trim` only releases memory malloc holds free; it is safe to
    // call at any time from any thread.
    unsafe { libc::malloc_trim(0) };
    true
}

/// Elsewhere the allocator keeps what it holds.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn give_back() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_back_after_a_burst_once_a_tick_is_quiet() {
        // Not enough churned yet, however quiet.
        assert!(!due(TRIM_AFTER - 1, 0));
        // Enough, but the burst goes on.
        assert!(!due(TRIM_AFTER, QUIET));
        assert!(!due(10 * TRIM_AFTER, TRIM_AFTER));
        // Enough, and the last tick was quiet.
        assert!(due(TRIM_AFTER, QUIET - 1));
        assert!(due(10 * TRIM_AFTER, 0));
    }
}
