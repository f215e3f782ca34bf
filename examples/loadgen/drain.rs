//! The backlog drain phase: one node, one webhook held at 1 request/s while
//! `count` events are ingested in batches (so the backlog waits, due now), then the
//! limit is lifted and the phase times how fast the backlog reaches the receiver.
//! It measures and reports; it never asserts a timing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::Method;
use serde_json::{Value, json};

use crate::common::{Api, call, event_body, micros};
use crate::hookbox::{self as hb, Node};
use crate::measure::Cpu;
use crate::receiver::{self, Seen};

/// Ingests `count` events (rounded up to whole batches of 1,000) over 4 concurrent
/// clients through the batch endpoint of node 0; returns how many were sent.
pub async fn ingest_batches(api: &Arc<Api>, count: u64) -> u64 {
    let batches = count.div_ceil(1000);
    let next = Arc::new(AtomicU64::new(0));
    let url = api.ingest[0].replace("/v1/events", "/v1/events/batch");
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (api, next, url) = (api.clone(), next.clone(), url.clone());
            tokio::spawn(async move {
                loop {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    if b >= batches {
                        break;
                    }
                    let events: Vec<String> = (0..1000)
                        .map(|j| String::from_utf8_lossy(&event_body(b * 1000 + j)).into_owned())
                        .collect();
                    let body = format!(r#"{{"events":[{}]}}"#, events.join(","));
                    let (s, v) =
                        call(&api.client, Method::POST, &url, &api.key, body.into_bytes()).await;
                    if !s.is_success() {
                        eprintln!("batch answered {s}: {v}");
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    batches * 1000
}

/// The drain of a `count`-event backlog with one subscription (see the module doc).
pub async fn drain(count: u64) -> Value {
    let dir = tempfile::tempdir().expect("temp dir");
    let events = count.div_ceil(1000) * 1000;
    let seen = Seen::new(events, 1);
    let raddr = receiver::start("127.0.0.1:0".parse().expect("addr"), seen.clone()).await;
    let pg = hb::postgres().await;
    let (node, _) = Node::start(hb::config(dir.path(), pg.as_ref())).await;
    let nodes = vec![node];
    let api = Arc::new(hb::setup(&nodes, 1, raddr, Some(1), false).await);
    let start = micros();
    let sent = ingest_batches(&api, count).await;
    let ingest_s = (micros() - start) as f64 / 1e6;
    let base = api.ingest[0].replace("/v1/events", "/v1/webhooks");
    let (_, list) = call(
        &api.client,
        Method::GET,
        &format!("{base}?limit=1"),
        &api.key,
        Vec::new(),
    )
    .await;
    let id = list["data"][0]["id"]
        .as_str()
        .expect("webhook id")
        .to_owned();
    let postmaster = pg.as_ref().and_then(|p| p.postmaster);
    let before = seen.distinct.load(Ordering::Acquire);
    let cpu_before = Cpu::now(hb::THREADS, postmaster);
    let t0 = Instant::now();
    let (s, v) = call(
        &api.client,
        Method::PATCH,
        &format!("{base}/{id}"),
        &api.key,
        json!({"rate_limit_per_second": null})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert!(s.is_success(), "PATCH answered {s}: {v}");
    let complete = seen.wait_distinct(sent, Duration::from_secs(900)).await;
    let secs = t0.elapsed().as_secs_f64();
    let drained = seen.distinct.load(Ordering::Acquire) - before;
    let cpu = Cpu::now(hb::THREADS, postmaster).since(cpu_before, drained, pg.is_some());
    for n in nodes {
        n.stop().await;
    }
    let mut out = json!({
        "phase": "drain",
        "store": if pg.is_some() { "postgres" } else { "redb" },
        "events": sent,
        "complete": complete,
        "backlog": sent - before,
        "batch_ingest_events_per_s": sent as f64 / ingest_s,
        "drain_s": secs,
        "drain_deliveries_per_s": drained as f64 / secs,
        "duplicates": seen.duplicates.load(Ordering::Relaxed),
    });
    if let (Some(o), Some(c)) = (out.as_object_mut(), cpu.as_object()) {
        o.extend(c.clone());
    }
    out
}
