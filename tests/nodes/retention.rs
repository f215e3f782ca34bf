//! Retention with three nodes on one database: each pass is run by one node at a
//! time (the holder of the "retention" job lease), so the passes of all nodes
//! together stay within one per interval, never one per node; expired events go;
//! and when the node running retention stops, another one takes it over. Observed
//! through each node's `/metrics` (`hookbox_retention_passes_total`,
//! `hookbox_retention_running`).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{Tenant, TestApp};
use crate::pg_cluster;
use crate::receiver::TestReceiver;
use crate::support::{
    WAIT, events_of_type, ingest, metric, node_with, wait_all, wait_known, wait_webhook,
};

const KEEP: Duration = Duration::from_secs(1);
const INTERVAL: Duration = Duration::from_millis(200);
const PASSES: &str = "hookbox_retention_passes_total";
const RUNNING: &str = "hookbox_retention_running";

/// Each node's passes so far, and how many nodes are in a pass right now.
async fn sample(nodes: &[&TestApp]) -> (Vec<u64>, u64) {
    let mut passes = Vec::new();
    let mut running = 0;
    for n in nodes {
        running += metric(n, RUNNING).await;
        passes.push(metric(n, PASSES).await);
    }
    (passes, running)
}

async fn shift_events(node: &TestApp, t: &Tenant) -> usize {
    events_of_type(node, t, "shift.created").await.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_runs_on_one_node_at_a_time_and_passes_over_when_it_stops() {
    let url = pg_cluster::shared().database().await;
    let setup = |c: &mut hookbox::config::Config| {
        c.retention.events = KEEP;
        c.retention.purge_interval = INTERVAL;
    };
    let started = Instant::now();
    let (mut a, mut b, mut c) = (
        node_with(&url, setup).await,
        node_with(&url, setup).await,
        node_with(&url, setup).await,
    );
    let rx = TestReceiver::start().await;
    let t = a.tenant("acme").await;
    let wh = a
        .webhook(
            &t,
            json!({"url": rx.url("/kept"), "event_types": ["shift.created"]}),
        )
        .await;
    let id = wh["id"].as_str().expect("id");
    for n in [&b, &c] {
        wait_known(n, &t).await;
        wait_webhook(n, &t, id).await;
    }
    let (x, y, z) = tokio::join!(
        ingest(&a, &t, 5, "a"),
        ingest(&b, &t, 5, "b"),
        ingest(&c, &t, 5, "c")
    );
    let want: HashSet<String> = x.into_iter().chain(y).chain(z).collect();
    wait_all(&rx, "/kept", &want).await;

    // Until the expired events are gone: never two nodes in a pass at once.
    let deadline = Instant::now() + WAIT;
    let mut samples = 0usize;
    loop {
        let (_, running) = sample(&[&a, &b, &c]).await;
        samples += 1;
        assert!(running <= 1, "{running} nodes in a retention pass at once");
        if shift_events(&a, &t).await == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "expired events were never purged"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (passes, _) = sample(&[&a, &b, &c]).await;
    let elapsed = started.elapsed();
    let bound = (elapsed.as_secs_f64() / INTERVAL.as_secs_f64()) as u64 + 1;
    let total: u64 = passes.iter().sum();
    println!(
        "retention on three nodes: passes per node {passes:?} in {elapsed:?} \
         (bound {bound}), {samples} samples of the running gauges"
    );
    assert!(total >= 1, "no retention pass ran");
    assert!(
        total <= bound,
        "{total} passes in {elapsed:?} at one per {INTERVAL:?}: more than one node ran them"
    );
    assert_eq!(
        passes.iter().filter(|p| **p > 0).count(),
        1,
        "one node holds retention while it runs: {passes:?}"
    );

    // The node running retention stops (giving the lease back): another takes over.
    let holder = passes.iter().position(|p| *p > 0).expect("a holder");
    let mut nodes = [Some(&mut a), Some(&mut b), Some(&mut c)];
    let stopping = nodes[holder].take().expect("the holder");
    stopping.stop().await;
    let rest: Vec<&mut TestApp> = nodes.into_iter().flatten().collect();
    let before: Vec<u64> = {
        let mut v = Vec::new();
        for n in &rest {
            v.push(metric(n, PASSES).await);
        }
        v
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut now = Vec::new();
        for n in &rest {
            now.push(metric(n, PASSES).await);
        }
        let moved: Vec<u64> = now.iter().zip(&before).map(|(n, b)| n - b).collect();
        if moved.iter().any(|m| *m >= 2) {
            assert_eq!(
                moved.iter().filter(|m| **m > 0).count(),
                1,
                "one node took retention over: {moved:?}"
            );
            println!("after the holder stopped: new passes per node {moved:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no node took retention over: {moved:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
