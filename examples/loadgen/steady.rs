//! The steady phase: one hookbox node on redb with a short `[retention] events` and
//! `purge_interval`, one webhook, and a generator posting at a constant rate for a
//! fixed time; every `--every` seconds (60 by default) it prints one JSON line to
//! stderr with the data file's size, the due count, delivered events and RSS, so a
//! long run shows whether the file levels off. It never asserts a size or a timing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{CLIENTS, micros, send_event};
use crate::hookbox::{self as hb, Node};
use crate::measure::rss_kib;
use crate::receiver::{self, Seen};

/// What the steady phase runs.
pub struct Steady {
    /// Events per second posted.
    pub rate: u64,
    /// Seconds the load lasts.
    pub secs: u64,
    /// `[retention] events`, in seconds; the purge runs every `retention / 2`
    /// seconds (at least 1).
    pub retention: u64,
    /// Seconds between two size lines.
    pub every: u64,
}

fn sample(node: &Node, seen: &Seen, start: u64, sent: u64, failed: usize) -> Value {
    let store = &node.app().store;
    let (rss, hwm) = rss_kib();
    json!({
        "t_s": (micros() - start) / 1_000_000,
        "sent": sent,
        "failed": failed,
        "delivered": seen.distinct.load(Ordering::Acquire),
        "due": store.redb().and_then(|s| s.due_count().ok()),
        "data_file_bytes": store.data_file_size(),
        "data_file_mib": store.data_file_size().map(|b| b as f64 / 1_048_576.0),
        "rss_kib": rss,
        "rss_hwm_kib": hwm,
    })
}

/// Posts `rate` events a second for `secs` seconds to one webhook on a redb node
/// with retention `retention` seconds; prints a size line every `every` seconds
/// and returns the first and last lines and the whole series.
pub async fn steady(s: Steady) -> Value {
    let Steady {
        rate,
        secs,
        retention,
        every,
    } = s;
    let (rate, secs, retention, every) = (rate.max(1), secs.max(1), retention.max(1), every.max(1));
    let total = rate * secs;
    let dir = tempfile::tempdir().expect("temp dir");
    let seen = Seen::new(total, 1);
    seen.record_from.store(0, Ordering::Relaxed);
    let raddr = receiver::start("127.0.0.1:0".parse().expect("addr"), seen.clone()).await;
    let mut config = hb::config(dir.path(), None);
    config.retention.events = Duration::from_secs(retention);
    config.retention.purge_interval = Duration::from_secs((retention / 2).max(1));
    let node = Node::start(config).await.0;
    let nodes = vec![node];
    let api = Arc::new(hb::setup(&nodes, 1, raddr, None, false).await);
    let node = nodes.into_iter().next().expect("one node");

    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let start = micros();
    // A ticker hands out one event index per 1/rate s; CLIENTS senders take them.
    let (tx, rx) = async_channel_like();
    let ticker = {
        let next = next.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for _ in 0..total {
                tick.tick().await;
                let i = next.fetch_add(1, Ordering::Relaxed);
                if tx.send(i).await.is_err() {
                    break;
                }
            }
        })
    };
    let senders: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (api, rx, failed) = (api.clone(), rx.clone(), failed.clone());
            tokio::spawn(async move {
                loop {
                    let i = match rx.lock().await.recv().await {
                        Some(i) => i,
                        None => break,
                    };
                    if send_event(&api, c, i).await.is_none() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let mut series = Vec::new();
    let first = sample(&node, &seen, start, 0, 0);
    eprintln!("loadgen steady: {first}");
    series.push(first);
    let mut tick = tokio::time::interval(Duration::from_secs(every));
    tick.tick().await;
    while !ticker.is_finished() {
        tick.tick().await;
        let line = sample(
            &node,
            &seen,
            start,
            next.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
        );
        eprintln!("loadgen steady: {line}");
        series.push(line);
    }
    for t in senders {
        let _ = t.await;
    }
    let last = sample(
        &node,
        &seen,
        start,
        next.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    eprintln!("loadgen steady: {last}");
    series.push(last.clone());
    node.stop().await;
    json!({
        "phase": "steady",
        "store": "redb",
        "rate": rate,
        "secs": secs,
        "retention_s": retention,
        "last": last,
        "series": series,
    })
}

/// An mpsc channel whose receiver several senders share.
fn async_channel_like() -> (
    tokio::sync::mpsc::Sender<u64>,
    Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<u64>>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(CLIENTS * 4);
    (tx, Arc::new(tokio::sync::Mutex::new(rx)))
}
