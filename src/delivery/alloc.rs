//! Keeps large event buffers returnable to the system. glibc's malloc raises its
//! mmap threshold each time a large mmapped block is freed, after which 1 MB event
//! payloads come from per-thread arenas and, once freed, stay there: RSS then grows
//! with fragmentation, not with live data (measured: 203 MiB against 135 MiB with a
//! fixed threshold, for 1,200 pending 900 KB events; `tests/it/memory.rs`). A fixed
//! threshold keeps every block above it in its own mapping, unmapped when freed.
//! Only this call; it never allocates or frees anything itself.

/// Blocks at least this large are mapped on their own (glibc's default start).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 256 * 1024;

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
