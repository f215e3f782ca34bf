//! What the benchmark reads from the operating system: RSS, CPU time of this
//! process's named threads and of a PostgreSQL cluster's processes (from /proc),
//! and the fsync time of a small file. It never changes what it measures.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// `(VmRSS, VmHWM)` of this process in KiB.
pub fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// This process's thread count.
pub fn threads() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:").map(|v| v.trim().to_owned()))
        .unwrap_or_default()
}

/// `(comm, utime + stime in clock ticks, parent pid)` from a `/proc/.../stat` text.
fn parse_stat(text: &str) -> Option<(&str, u64, i64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = &text[open + 1..close];
    // Fields after the comm: state (3), ppid (4), ..., utime (14), stime (15).
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let ppid = rest.get(1)?.parse().ok()?;
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime + stime, ppid))
}

fn ticks_to_ms(ticks: u64) -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    ticks as f64 * 1000.0 / hz
}

/// CPU time (user + system, ms) of this process's live threads whose name starts
/// with `prefix`. Threads that exited are not counted, so the runtimes measured
/// keep their blocking threads alive for the whole phase.
pub fn threads_cpu_ms(prefix: &str) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    let ticks = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|t| {
            parse_stat(&t).and_then(|(comm, ticks, _)| comm.starts_with(prefix).then_some(ticks))
        })
        .sum();
    ticks_to_ms(ticks)
}

/// CPU time (user + system, ms) of the PostgreSQL cluster whose postmaster is
/// `postmaster`: the postmaster and every child of it whose name starts with
/// "postgres" (backends, checkpointer, WAL writer, autovacuum...). A backend that
/// exits during the phase takes its time with it; hookbox's pool keeps its
/// connections for the whole phase.
pub fn postgres_cpu_ms(postmaster: i64) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return f64::NAN;
    };
    let ticks = dir
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| {
            let pid: i64 = e.file_name().to_string_lossy().parse().ok()?;
            let text = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let (comm, ticks, ppid) = parse_stat(&text)?;
            ((pid == postmaster || ppid == postmaster) && comm.starts_with("postgres"))
                .then_some(ticks)
        })
        .sum();
    ticks_to_ms(ticks)
}

/// The parent pid of `pid` (the postmaster of a backend).
pub fn parent_of(pid: i64) -> Option<i64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text).map(|(_, _, ppid)| ppid)
}

/// CPU used so far by the gateway's threads and the PostgreSQL cluster (if any).
#[derive(Clone, Copy)]
pub struct Cpu {
    gateway_ms: f64,
    postgres_ms: f64,
}

impl Cpu {
    /// Reads both now. `postmaster` is None on redb and for the null gateway.
    pub fn now(thread_prefix: &str, postmaster: Option<i64>) -> Cpu {
        Cpu {
            gateway_ms: threads_cpu_ms(thread_prefix),
            postgres_ms: postmaster.map_or(0.0, postgres_cpu_ms),
        }
    }

    /// The JSON figures for the CPU used since `before`, per event over `events`:
    /// the gateway's (hookbox or the null gateway), PostgreSQL's and both.
    pub fn since(self, before: Cpu, events: u64, on_postgres: bool) -> serde_json::Value {
        let gw = self.gateway_ms - before.gateway_ms;
        let pg = self.postgres_ms - before.postgres_ms;
        let per = |ms: f64| ms / events.max(1) as f64;
        let pg_or_null = |v: f64| if on_postgres { v } else { f64::NAN };
        serde_json::json!({
            "cpu_gateway_ms": gw,
            "cpu_postgres_ms": pg_or_null(pg),
            "cpu_gateway_ms_per_event": per(gw),
            "cpu_postgres_ms_per_event": pg_or_null(per(pg)),
            "cpu_both_ms_per_event": per(gw) + if on_postgres { per(pg) } else { 0.0 },
        })
    }
}

/// Median and p99 (ms) of `n` overwrites of 100 bytes of a small file in `dir`,
/// each followed by an fsync (`data_only`: an fdatasync, what redb's commit and
/// PostgreSQL's WAL flush call): what one durable commit cannot beat on this disk.
pub fn fsync_probe(dir: &Path, n: usize, data_only: bool) -> (f64, f64) {
    let path = dir.join("fsync-probe");
    let Ok(mut file) = std::fs::File::create(&path) else {
        return (f64::NAN, f64::NAN);
    };
    let mut us: Vec<u64> = Vec::with_capacity(n);
    let block = [0x5au8; 100];
    for _ in 0..n {
        let t0 = Instant::now();
        let ok = std::io::Seek::rewind(&mut file).is_ok()
            && file.write_all(&block).is_ok()
            && if data_only {
                file.sync_data().is_ok()
            } else {
                file.sync_all().is_ok()
            };
        if ok {
            us.push(t0.elapsed().as_micros() as u64);
        }
    }
    let _ = std::fs::remove_file(&path);
    us.sort_unstable();
    let q = |p: f64| {
        if us.is_empty() {
            return f64::NAN;
        }
        let rank = ((p * us.len() as f64).ceil() as usize).clamp(1, us.len());
        us[rank - 1] as f64 / 1000.0
    };
    (q(0.5), q(0.99))
}

/// The pages of each table of a closed redb data file (leaf and branch pages, 4 KiB
/// each), per `unit` (bytes per pending event, say), largest first. Read-only; the
/// file's freed pages are in none of them. Empty when the file cannot be read.
pub fn table_bytes(path: &Path, unit: u64) -> serde_json::Map<String, serde_json::Value> {
    fn read(path: &Path) -> Result<Vec<(String, u64)>, Box<dyn std::error::Error>> {
        use redb::{ReadableDatabase, ReadableTableMetadata, TableHandle};
        let db = redb::ReadOnlyDatabase::open(path)?;
        let tx = db.begin_read()?;
        let mut rows = Vec::new();
        for handle in tx.list_tables()? {
            let name = handle.name().to_owned();
            let stats = tx.open_untyped_table(handle)?.stats()?;
            rows.push((name, (stats.leaf_pages() + stats.branch_pages()) * 4096));
        }
        Ok(rows)
    }
    let mut rows = match read(path) {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("loadgen: cannot read the tables of {}: {e}", path.display());
            return serde_json::Map::new();
        }
    };
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    rows.into_iter()
        .filter(|(_, bytes)| *bytes > 4096)
        .map(|(name, bytes)| {
            let per = (bytes as f64 / unit.max(1) as f64 * 10.0).round() / 10.0;
            (name, per.into())
        })
        .collect()
}
