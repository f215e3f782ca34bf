//! The phases a child process runs (throughput, the null-gateway ceiling, latency,
//! pending): each starts its gateway and receiver, drives the load, and returns one
//! JSON object of figures. No phase asserts a timing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Api, CLIENTS, client, micros, send_event};
use crate::hookbox::{self as hb, Node, Pg};
use crate::measure::{Cpu, fsync_probe, rss_kib, table_bytes, threads};
use crate::nullgw::{self, NullGateway};
use crate::receiver::{self, Seen};

/// What a sustained-rate phase runs against.
pub struct Load {
    /// Webhooks (or null-gateway targets) each event goes to.
    pub fanout: usize,
    /// Events sent.
    pub events: u64,
    /// FIFO webhooks.
    pub fifo: bool,
    /// hookbox nodes (more than one needs PostgreSQL).
    pub nodes: usize,
    /// The null gateway instead of hookbox.
    pub ceiling: bool,
}

/// The gateway of a phase, started.
enum Gateway {
    Hookbox(Vec<Node>),
    Null(NullGateway),
}

impl Gateway {
    async fn stop(self) {
        match self {
            Gateway::Hookbox(nodes) => {
                for n in nodes {
                    n.stop().await;
                }
            }
            Gateway::Null(g) => g.stop(),
        }
    }
}

fn dirs(n: usize) -> Vec<tempfile::TempDir> {
    (0..n.max(1))
        .map(|_| tempfile::tempdir().expect("temp dir"))
        .collect()
}

fn store_name(pg: &Option<Pg>) -> &'static str {
    if pg.is_some() { "postgres" } else { "redb" }
}

/// Sustained rate: `CLIENTS` concurrent keep-alive clients (client `c` on node
/// `c % nodes`) post `events` events, each matching `fanout` webhooks; the
/// receiver counts every delivery and duplicate and records every latency.
pub async fn throughput(load: Load) -> Value {
    let Load {
        fanout,
        events,
        fifo,
        nodes,
        ceiling,
    } = load;
    let (rss_base, _) = rss_kib();
    let dirs = dirs(nodes);
    let seen = Seen::new(events, fanout);
    seen.record_from.store(0, Ordering::Relaxed);
    let raddr = receiver::start("127.0.0.1:0".parse().expect("addr"), seen.clone()).await;
    let pg = if ceiling { None } else { hb::postgres().await };
    let (gateway, api) = if ceiling {
        let targets = (0..fanout)
            .map(|w| format!("http://{raddr}/hook/{w}"))
            .collect();
        let null = NullGateway::start(targets).await;
        let api = Api {
            client: client(),
            ingest: vec![format!("http://{}/v1/events", null.addr)],
            key: "null".to_owned(),
        };
        (Gateway::Null(null), api)
    } else {
        let nodes = hb::start_nodes(nodes, pg.as_ref(), &dirs).await;
        let api = hb::setup(&nodes, fanout, raddr, None, fifo).await;
        (Gateway::Hookbox(nodes), api)
    };
    let api = Arc::new(api);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_idle, _) = rss_kib();
    eprintln!("loadgen: gateway on {:?}, receiver on {raddr}", api.ingest);

    let prefix = if ceiling {
        nullgw::THREADS
    } else {
        hb::THREADS
    };
    let postmaster = pg.as_ref().and_then(|p| p.postmaster);
    let cpu_before = Cpu::now(prefix, postmaster);
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let start = micros();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (api, next, failed) = (api.clone(), next.clone(), failed.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= events {
                        break;
                    }
                    if send_event(&api, c, i).await.is_none() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let acked = micros();
    eprintln!(
        "loadgen: {events} events acked in {:.2} s; {} delivered so far",
        (acked - start) as f64 / 1e6,
        seen.distinct.load(Ordering::Acquire)
    );
    let want = events * fanout as u64;
    let complete = seen.wait_distinct(want, Duration::from_secs(600)).await;
    let cpu = Cpu::now(prefix, postmaster).since(cpu_before, events, pg.is_some());
    let last = seen.last_us.load(Ordering::Relaxed).max(acked);
    let (_, hwm) = rss_kib();
    let delivered = seen.distinct.load(Ordering::Acquire);
    let secs = |us: u64| us as f64 / 1e6;
    // The group-commit figures are redb's; PostgreSQL and the null gateway report
    // zeros.
    let (mut commits, mut jobs, mut commit_us, mut job_us, mut file) = (0, 0, 0, 0, None);
    if let Gateway::Hookbox(nodes) = &gateway {
        let store = &nodes[0].app().store;
        file = store.data_file_size();
        if let Some(s) = store.redb() {
            let stats = s.writer_stats();
            commits = stats.commits.load(Ordering::Relaxed);
            jobs = stats.jobs.load(Ordering::Relaxed);
            commit_us = stats.commit_micros.load(Ordering::Relaxed);
            job_us = stats.job_micros.load(Ordering::Relaxed);
        }
    }
    let mut out = json!({
        "phase": if ceiling { "ceiling" } else { "throughput" },
        "store": if ceiling { "none" } else { store_name(&pg) },
        "nodes": if ceiling { 0 } else { nodes },
        "ordering": if fifo { "fifo" } else { "none" },
        "fanout": fanout,
        "events": events,
        "failed_ingests": failed.load(Ordering::Relaxed),
        "ingest_events_per_s": events as f64 / secs(acked - start),
        "delivered": delivered,
        "duplicates": seen.duplicates.load(Ordering::Relaxed),
        "complete": complete,
        "deliveries_per_s": delivered as f64 / secs(last - start),
        "end_to_end_events_per_s": events as f64 / secs(last - start),
        "drain_after_last_ack_s": secs(last - acked),
        "e2e_p50_ms": seen.latency.quantile_ms(0.50),
        "e2e_p99_ms": seen.latency.quantile_ms(0.99),
        "e2e_max_ms": seen.latency.quantile_ms(1.0),
        "data_file_bytes": file,
        "commits": commits,
        "jobs_per_commit": jobs as f64 / commits.max(1) as f64,
        "commit_ms_mean": commit_us as f64 / 1000.0 / commits.max(1) as f64,
        "jobs_ms_mean": job_us as f64 / 1000.0 / commits.max(1) as f64,
        "rss_base_kib": rss_base,
        "rss_idle_kib": rss_idle,
        "rss_peak_kib": hwm,
    });
    merge(&mut out, cpu);
    eprintln!("loadgen: {delivered} delivered; shutting down");
    let redb = matches!(gateway, Gateway::Hookbox(_)) && pg.is_none();
    gateway.stop().await;
    // Closed now: where the bytes of a delivered delivery are (redb only).
    if redb {
        let path = dirs[0].path().join(::hookbox::app::DATA_FILE);
        out["table_bytes_per_delivery"] = table_bytes(&path, delivered).into();
    }
    out
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

/// Fixed open-loop rate with one subscription (event `i` to node `i % nodes`):
/// ingest-to-delivery latency, the fsync of a small file in the data dir beside it,
/// and CPU per event over the measured seconds.
pub async fn latency(rate: u64, secs: u64, nodes: usize) -> Value {
    let dirs = dirs(nodes);
    // Before anything else runs: what one durable write costs on this disk now.
    let ((fsync_p50, fsync_p99), (fdatasync_p50, fdatasync_p99)) = {
        let dir = dirs[0].path().to_owned();
        tokio::task::spawn_blocking(move || {
            (fsync_probe(&dir, 200, false), fsync_probe(&dir, 200, true))
        })
        .await
        .unwrap_or(((f64::NAN, f64::NAN), (f64::NAN, f64::NAN)))
    };
    // The first second warms connections and caches and is not counted.
    let warm = rate;
    let total = rate * (secs + 1);
    let seen = Seen::new(total, 1);
    seen.record_from.store(warm, Ordering::Relaxed);
    let raddr = receiver::start("127.0.0.1:0".parse().expect("addr"), seen.clone()).await;
    let pg = hb::postgres().await;
    let postmaster = pg.as_ref().and_then(|p| p.postmaster);
    let running = hb::start_nodes(nodes, pg.as_ref(), &dirs).await;
    let api = Arc::new(hb::setup(&running, 1, raddr, None, false).await);
    let period = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let start = tokio::time::Instant::now();
    let mut acks = Vec::with_capacity(total as usize);
    let mut cpu_before = None;
    for i in 0..total {
        tokio::time::sleep_until(start + period * i as u32).await;
        if i == warm {
            cpu_before = Some(Cpu::now(hb::THREADS, postmaster));
        }
        let api = api.clone();
        acks.push(tokio::spawn(async move {
            send_event(&api, i as usize, i).await
        }));
    }
    let ack = receiver::Hist::default();
    for (i, a) in acks.into_iter().enumerate() {
        if let Ok(Some(us)) = a.await
            && i as u64 >= warm
        {
            ack.record(us);
        }
    }
    let complete = seen.wait_distinct(total, Duration::from_secs(60)).await;
    let cpu = Cpu::now(hb::THREADS, postmaster).since(
        cpu_before.unwrap_or(Cpu::now(hb::THREADS, postmaster)),
        total - warm,
        pg.is_some(),
    );
    let lat = &seen.latency;
    let (_, hwm) = rss_kib();
    let mut out = json!({
        "phase": "latency",
        "store": store_name(&pg),
        "nodes": nodes,
        "rate": rate,
        "samples": lat.len(),
        "complete": complete,
        "duplicates": seen.duplicates.load(Ordering::Relaxed),
        "p50_ms": lat.quantile_ms(0.50),
        "p99_ms": lat.quantile_ms(0.99),
        "p999_ms": lat.quantile_ms(0.999),
        "max_ms": lat.quantile_ms(1.0),
        "ack_p50_ms": ack.quantile_ms(0.50),
        "ack_p99_ms": ack.quantile_ms(0.99),
        "fsync_p50_ms": fsync_p50,
        "fsync_p99_ms": fsync_p99,
        "fdatasync_p50_ms": fdatasync_p50,
        "fdatasync_p99_ms": fdatasync_p99,
        "p99_minus_fdatasync_p50_ms": lat.quantile_ms(0.99) - fdatasync_p50,
        "rss_peak_kib": hwm,
    });
    merge(&mut out, cpu);
    for n in running {
        n.stop().await;
    }
    out
}

/// A backlog of `count` pending deliveries (the receiver is down), then a restart.
pub async fn pending(count: u64) -> Value {
    let (rss_base, _) = rss_kib();
    let dir = tempfile::tempdir().expect("temp dir");
    // A port that is closed now and where the receiver comes up after the restart.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("probe port");
        l.local_addr().expect("addr").port()
    };
    let raddr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let pg = hb::postgres().await;
    let cfg = hb::config(dir.path(), pg.as_ref());
    let (node, _) = Node::start(cfg.clone()).await;
    let nodes = vec![node];
    // One webhook limited to 1 request/s: the backlog stays pending (due now) instead
    // of churning through failed attempts against the closed port.
    let api = Arc::new(hb::setup(&nodes, 1, raddr, Some(1), false).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_idle, _) = rss_kib();

    let start = micros();
    let sent = crate::drain::ingest_batches(&api, count).await;
    let ingest_s = (micros() - start) as f64 / 1e6;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let store = &nodes[0].app().store;
    let pending = store.due_count().await.unwrap_or(0);
    let (rss_pending, hwm) = rss_kib();
    let threads = threads();
    let file = store.data_file_size().unwrap_or(0);

    let t0 = Instant::now();
    for n in nodes {
        n.stop().await;
    }
    let shutdown_s = t0.elapsed().as_secs_f64();
    // Closed now: where the bytes are, per pending event (redb only).
    let tables = match pg {
        None => table_bytes(&dir.path().join(::hookbox::app::DATA_FILE), pending),
        Some(_) => serde_json::Map::new(),
    };
    let seen = Seen::new(0, 1);
    receiver::start(raddr, seen.clone()).await;
    let t0 = micros();
    let (node, build_s) = Node::start(cfg).await;
    let first = seen.wait_distinct(1, Duration::from_secs(120)).await;
    // When the receiver took it, not when this loop saw it (it looks every 2 ms).
    let first_s = seen.first_us.load(Ordering::Relaxed).saturating_sub(t0) as f64 / 1e6;
    node.stop().await;
    json!({
        "phase": "pending",
        "store": store_name(&pg),
        "events": sent,
        "pending": pending,
        "batch_ingest_events_per_s": sent as f64 / ingest_s,
        "rss_base_kib": rss_base,
        "rss_idle_kib": rss_idle,
        "rss_pending_kib": rss_pending,
        "rss_peak_kib": hwm,
        "threads": threads,
        "data_file_bytes": file,
        "data_file_mib_per_million": file as f64 / 1048576.0 * 1e6 / pending.max(1) as f64,
        "table_bytes_per_pending": tables,
        "shutdown_s": shutdown_s,
        "restart_build_s": build_s,
        "restart_first_delivery_s": if first { first_s } else { f64::NAN },
    })
}
