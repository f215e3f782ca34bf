//! FIFO order across nodes (`ordering: "fifo"`, DESIGN.md section 9): events
//! ingested one after another's 202 at three nodes in turn, the receiver failing
//! the first attempt of every third event; the receiver sees them in ingest order,
//! each failed attempt retried before the next event, never two at once, whichever
//! node claims each delivery (each node's `hookbox_attempts_total` shows how the
//! attempts were shared).

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;
use crate::pg_cluster;
use crate::receiver::{Received, Reply, TestReceiver};
use crate::support::{WAIT, metric, node_with, wait_known, wait_webhook};

const EVENTS: i64 = 45;

/// The event number a request carries (`data.n`).
fn n_of(r: &Received) -> i64 {
    r.json()["data"]["n"].as_i64().unwrap_or(-1)
}

/// The event numbers `path` got, in arrival order.
fn sequence(rx: &TestReceiver, path: &str) -> Vec<i64> {
    rx.received()
        .iter()
        .filter(|r| r.path == path)
        .map(n_of)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_order_holds_for_events_ingested_at_three_nodes() {
    let url = pg_cluster::shared().database().await;
    // Several requests at once per webhook are allowed: only FIFO holds the line.
    let setup = |c: &mut hookbox::config::Config| {
        c.delivery.retry_schedule = vec![Duration::ZERO, Duration::from_millis(50)];
        c.delivery.per_webhook_in_flight = 8;
    };
    let (a, b, c) = (
        node_with(&url, setup).await,
        node_with(&url, setup).await,
        node_with(&url, setup).await,
    );
    let rx = TestReceiver::start().await;
    // 500 to the first request for every third event, 200 otherwise (per path).
    rx.set_rule(Arc::new(|req: &Received, before: &[Received]| {
        let n = n_of(req);
        let seen = before.iter().any(|b| b.path == req.path && n_of(b) == n);
        Some(Reply::status(if n % 3 == 0 && !seen { 500 } else { 200 }))
    }));
    let t = a.tenant("acme").await;
    let fifo = a
        .webhook(
            &t,
            json!({"url": rx.url("/fifo"), "event_types": ["shift.created"], "ordering": "fifo"}),
        )
        .await;
    assert_eq!(fifo["ordering"], "fifo", "{fifo}");
    let nodes: [&TestApp; 3] = [&a, &b, &c];
    for n in &nodes[1..] {
        wait_known(n, &t).await;
        wait_webhook(n, &t, fifo["id"].as_str().expect("id")).await;
    }
    // Event n at node n % 3, each after the previous one's 202: ingest order.
    for n in 0..EVENTS {
        let (s, e) = nodes[(n % 3) as usize]
            .as_tenant(
                &t,
                http::Method::POST,
                "/v1/events",
                Some(json!({"type": "shift.created", "data": {"n": n}})),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{e}");
    }
    let want: Vec<i64> = (0..EVENTS)
        .flat_map(|n| if n % 3 == 0 { vec![n, n] } else { vec![n] })
        .collect();
    let deadline = Instant::now() + WAIT;
    loop {
        let got = sequence(&rx, "/fifo");
        if got.len() >= want.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the FIFO webhook got {} of {} requests: {got:?}",
            got.len(),
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        sequence(&rx, "/fifo"),
        want,
        "ingest order, each failed attempt retried before the next event"
    );
    assert_eq!(rx.peak_concurrency("/fifo"), 1, "one request at a time");
    // Who made the attempts: every node's count, together exactly the requests.
    let mut per_node = Vec::new();
    for n in nodes {
        per_node.push(
            metric(n, "hookbox_attempts_total{result=\"ok\"}").await
                + metric(n, "hookbox_attempts_total{result=\"failed\"}").await,
        );
    }
    println!(
        "FIFO over three nodes: {} requests in order, attempts per node {per_node:?}",
        want.len()
    );
    assert_eq!(per_node.iter().sum::<u64>(), want.len() as u64);
    assert!(
        per_node.iter().filter(|n| **n > 0).count() >= 2,
        "the line was served by one node only: {per_node:?}"
    );
}
