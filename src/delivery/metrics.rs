//! Counters and histograms for `/metrics`, rendered as Prometheus text. Lock-free
//! atomics on the hot paths; labels never carry secrets or URLs.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::worker::{Tried, Verdict};
use crate::store::{Db, Next};

/// Upper bounds (seconds) of the attempt latency histogram.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 15.0,
];

/// Every metric hookbox exports.
#[derive(Default)]
pub struct Metrics {
    /// Events accepted, by type (bounded by the catalogues).
    events_by_type: Mutex<BTreeMap<String, u64>>,
    deliveries_succeeded: AtomicU64,
    deliveries_retrying: AtomicU64,
    deliveries_exhausted: AtomicU64,
    attempts_ok: AtomicU64,
    attempts_failed: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    in_flight: AtomicU64,
    queued: AtomicU64,
    queued_bytes: AtomicU64,
    followup_waits: AtomicU64,
    retention_passes: AtomicU64,
    retention_purged: AtomicU64,
    retention_running: AtomicU64,
}

impl Metrics {
    /// Counts accepted events of one type.
    pub fn observe_ingest(&self, event_type: &str, n: u64) {
        let mut m = self
            .events_by_type
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Look up before inserting: the common case (a known type) allocates nothing.
        match m.get_mut(event_type) {
            Some(count) => *count += n,
            None => {
                m.insert(event_type.to_owned(), n);
            }
        }
    }

    /// Counts one attempt and its latency.
    pub fn observe_attempt(&self, tried: &Tried) {
        if tried.verdict == Verdict::Delivered {
            self.attempts_ok.fetch_add(1, Relaxed);
        } else {
            self.attempts_failed.fetch_add(1, Relaxed);
        }
        let secs = tried.attempt.latency_ms as f64 / 1000.0;
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.latency_buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_sum_us
            .fetch_add(tried.attempt.latency_ms * 1000, Relaxed);
    }

    /// Counts a delivery outcome.
    pub fn observe_outcome(&self, next: Next) {
        let c = match next {
            Next::Succeeded => &self.deliveries_succeeded,
            Next::RetryAt(_) => &self.deliveries_retrying,
            Next::Exhausted => &self.deliveries_exhausted,
        };
        c.fetch_add(1, Relaxed);
    }

    /// Sets the scheduler's in-flight and queued gauges.
    pub fn set_in_flight(&self, in_flight: usize, queued: usize) {
        self.in_flight.store(in_flight as u64, Relaxed);
        self.queued.store(queued as u64, Relaxed);
    }

    /// Sets the gauge of event bytes held by waiting work.
    pub fn set_queued_bytes(&self, bytes: usize) {
        self.queued_bytes.store(bytes as u64, Relaxed);
    }

    /// Counts a time the recorder waited because the follow-up queue was full.
    pub fn observe_followup_wait(&self) {
        self.followup_waits.fetch_add(1, Relaxed);
    }

    /// Marks a retention pass of this node as started (`true`) or ended.
    pub fn set_retention_running(&self, running: bool) {
        self.retention_running.store(u64::from(running), Relaxed);
    }

    /// Counts a retention pass this node ran, and the events it removed.
    pub fn observe_retention_pass(&self, purged: usize) {
        self.retention_passes.fetch_add(1, Relaxed);
        self.retention_purged.fetch_add(purged as u64, Relaxed);
    }

    /// The Prometheus text exposition.
    pub async fn render(&self, store: &Db, token_fetches: u64) -> String {
        let mut out = String::with_capacity(4096);
        let _ = writeln!(
            out,
            "# HELP hookbox_events_ingested_total Events accepted, by type."
        );
        let _ = writeln!(out, "# TYPE hookbox_events_ingested_total counter");
        for (ty, n) in self
            .events_by_type
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let ty = escape_label(ty);
            let _ = writeln!(out, "hookbox_events_ingested_total{{type=\"{ty}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP hookbox_deliveries_total Delivery outcomes after scheduled attempts."
        );
        let _ = writeln!(out, "# TYPE hookbox_deliveries_total counter");
        for (label, c) in [
            ("succeeded", &self.deliveries_succeeded),
            ("retrying", &self.deliveries_retrying),
            ("exhausted", &self.deliveries_exhausted),
        ] {
            let _ = writeln!(
                out,
                "hookbox_deliveries_total{{outcome=\"{label}\"}} {}",
                c.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP hookbox_attempts_total HTTP attempts, by result."
        );
        let _ = writeln!(out, "# TYPE hookbox_attempts_total counter");
        let _ = writeln!(
            out,
            "hookbox_attempts_total{{result=\"ok\"}} {}",
            self.attempts_ok.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "hookbox_attempts_total{{result=\"failed\"}} {}",
            self.attempts_failed.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP hookbox_attempt_duration_seconds Attempt latency."
        );
        let _ = writeln!(out, "# TYPE hookbox_attempt_duration_seconds histogram");
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "hookbox_attempt_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                self.latency_buckets[i].load(Relaxed)
            );
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(
            out,
            "hookbox_attempt_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "hookbox_attempt_duration_seconds_sum {}",
            self.latency_sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "hookbox_attempt_duration_seconds_count {count}");
        let singles = [
            (
                "hookbox_in_flight_requests",
                "Requests to receivers in flight.",
                "gauge",
                self.in_flight.load(Relaxed),
            ),
            (
                "hookbox_queued_deliveries",
                "Deliveries claimed in memory, waiting for a slot.",
                "gauge",
                self.queued.load(Relaxed),
            ),
            (
                "hookbox_queued_bytes",
                "Event bytes held in memory by deliveries waiting for a slot.",
                "gauge",
                self.queued_bytes.load(Relaxed),
            ),
            (
                "hookbox_followup_queue_full_total",
                "Times the recorder waited for room in the follow-up queue.",
                "counter",
                self.followup_waits.load(Relaxed),
            ),
            (
                "hookbox_retention_passes_total",
                "Retention passes this node ran (on PostgreSQL, only under the retention lease).",
                "counter",
                self.retention_passes.load(Relaxed),
            ),
            (
                "hookbox_retention_purged_events_total",
                "Events removed by this node's retention passes.",
                "counter",
                self.retention_purged.load(Relaxed),
            ),
            (
                "hookbox_retention_running",
                "1 while this node runs a retention pass.",
                "gauge",
                self.retention_running.load(Relaxed),
            ),
            (
                "hookbox_oauth_token_requests_total",
                "OAuth token requests made.",
                "counter",
                token_fetches,
            ),
            (
                "hookbox_memory_given_back_total",
                "Times free heap memory was returned to the system after a burst.",
                "counter",
                super::alloc::given_back(),
            ),
        ];
        for (name, help, kind, v) in singles {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
        let due = store.due_count().await.unwrap_or(0);
        let _ = writeln!(
            out,
            "# HELP hookbox_due_backlog Unfinished deliveries in the due index.\n# TYPE hookbox_due_backlog gauge\nhookbox_due_backlog {due}"
        );
        let oldest = store.next_due().await.ok().flatten().map_or(0.0, |d| {
            ((crate::model::now_ms() - d as i64).max(0)) as f64 / 1000.0
        });
        let _ = writeln!(
            out,
            "# HELP hookbox_oldest_due_age_seconds Age of the oldest due delivery.\n# TYPE hookbox_oldest_due_age_seconds gauge\nhookbox_oldest_due_age_seconds {oldest}"
        );
        if let Some(redb) = store.redb() {
            Self::render_writer(&mut out, redb);
        }
        if let Some(size) = store.data_file_size() {
            let _ = writeln!(
                out,
                "# HELP hookbox_store_file_bytes Size of the data file.\n# TYPE hookbox_store_file_bytes gauge\nhookbox_store_file_bytes {size}"
            );
        }
        out
    }

    /// The redb writer's group-commit figures.
    fn render_writer(out: &mut String, store: &crate::store::Store) {
        let stats = store.writer_stats();
        let commits = stats.commits.load(Relaxed);
        let jobs = stats.jobs.load(Relaxed);
        let micros = stats.commit_micros.load(Relaxed);
        let _ = writeln!(
            out,
            "# HELP hookbox_store_commits_total Store commits.\n# TYPE hookbox_store_commits_total counter\nhookbox_store_commits_total {commits}"
        );
        // Summaries without quantiles: rate(_sum) / rate(_count) is the mean batch
        // size and the mean commit latency over any window.
        let _ = writeln!(
            out,
            "# HELP hookbox_store_commit_batch_size Writes carried by one group commit.\n# TYPE hookbox_store_commit_batch_size summary\nhookbox_store_commit_batch_size_sum {jobs}\nhookbox_store_commit_batch_size_count {commits}"
        );
        let _ = writeln!(
            out,
            "# HELP hookbox_store_commit_duration_seconds Time one group commit takes, fsync included.\n# TYPE hookbox_store_commit_duration_seconds summary\nhookbox_store_commit_duration_seconds_sum {}\nhookbox_store_commit_duration_seconds_count {commits}",
            micros as f64 / 1e6
        );
    }
}

/// Escapes a label value for the text exposition format (backslash, quote, newline).
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a.b"), "a.b");
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("a\nb"), "a\\nb");
    }

    #[test]
    fn ingest_counts_add_up_per_type() {
        let m = Metrics::default();
        m.observe_ingest("a", 1);
        m.observe_ingest("a", 2);
        m.observe_ingest("b", 1);
        let counts = m.events_by_type.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(counts.get("a"), Some(&3));
        assert_eq!(counts.get("b"), Some(&1));
    }
}
