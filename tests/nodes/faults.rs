//! Faults with several nodes: a node (its own process) SIGKILLed mid-flight loses
//! no acknowledged event, its leased deliveries are delivered by the others; a
//! database that goes away for a few seconds costs 503s and no acknowledged event.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::json;

use crate::pg_cluster;
use crate::receiver::{Reply, TestReceiver};
use crate::support::{
    WAIT, delivered, node, process_node, reqwest_like, wait_all_or_explain, wait_known,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_flight_loses_no_acknowledged_event() {
    let url = pg_cluster::shared().database().await;
    let (a, c) = (node(&url).await, node(&url).await);
    let mut b = process_node(&url);
    // Slow answers, so node B holds leased deliveries in flight when it dies.
    let rx = TestReceiver::start_with(Reply::status(200).delay(Duration::from_millis(300))).await;
    let t = a.tenant("acme").await;
    a.webhook(
        &t,
        json!({"url": rx.url("/kill"), "event_types": ["shift.created"]}),
    )
    .await;
    wait_known(&c, &t).await;
    // Everything is ingested at B: its own fast path is where the work starts.
    let client = reqwest_like(&b.base);
    // B learns the key and the webhook from the change feed: ingest once it knows
    // both (an event accepted before it knows the webhook has no delivery).
    let known = Instant::now() + Duration::from_secs(5);
    while !client.knows_webhooks(&t).await {
        assert!(Instant::now() < known, "node B never learned the webhook");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut acked = HashSet::new();
    while acked.len() < 60 {
        match client.event(&t, acked.len()).await {
            Some(id) => {
                acked.insert(id);
            }
            None => assert!(Instant::now() < deadline, "node B never accepted the key"),
        }
    }
    rx.wait_for(5, WAIT).await;
    b.process.kill();
    let killed = Instant::now();
    let seen = wait_all_or_explain(&rx, "/kill", &acked, Some((&a, &t))).await;
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    println!(
        "node B killed with {} of 60 delivered; the rest delivered by A and C within {:?}, {duplicates} duplicates",
        delivered(&rx.received(), "/kill").len().min(60),
        killed.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_costs_503s_and_no_acknowledged_event() {
    // Its own cluster: this test stops the server.
    let cluster = pg_cluster::Cluster::private();
    let url = cluster.database().await;
    let app = node(&url).await;
    let rx = TestReceiver::start().await;
    let t = app.tenant("acme").await;
    app.webhook(
        &t,
        json!({"url": rx.url("/outage"), "event_types": ["shift.created"]}),
    )
    .await;
    let mut acked = HashSet::new();
    let mut refused = 0usize;
    let send = |n: usize| {
        let app = &app;
        let t = &t;
        async move {
            app.as_tenant(
                t,
                Method::POST,
                "/v1/events",
                Some(json!({"type": "shift.created", "data": {"n": n}})),
            )
            .await
        }
    };
    for n in 0..20 {
        let (s, e) = send(n).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{e}");
        acked.insert(e["id"].as_str().expect("id").to_owned());
    }
    cluster.halt();
    // While the database is gone: ingest is 503 with a reason, /readyz is 503.
    let down = Instant::now();
    let mut n = 20;
    let mut saw_unready = false;
    while down.elapsed() < Duration::from_secs(3) {
        let (s, e) = send(n).await;
        n += 1;
        match s {
            StatusCode::ACCEPTED => {
                acked.insert(e["id"].as_str().expect("id").to_owned());
            }
            StatusCode::SERVICE_UNAVAILABLE => refused += 1,
            other => panic!("ingest answered {other} while the database was down: {e}"),
        }
        let (s, ready) = app.admin(Method::GET, "/readyz", None).await;
        if s == StatusCode::SERVICE_UNAVAILABLE {
            // The reason names the database, not the redb disk.
            let why = ready["reason"].as_str().unwrap_or_default();
            assert!(why.contains("PostgreSQL"), "{ready}");
            saw_unready = true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        refused > 0,
        "no ingest was refused while the database was down"
    );
    assert!(
        saw_unready,
        "/readyz never said unready while the database was down"
    );
    cluster.resume();
    // It comes back by itself: ingest is accepted again and /readyz is ready.
    let up = Instant::now();
    loop {
        let (s, e) = send(n).await;
        n += 1;
        if s == StatusCode::ACCEPTED {
            acked.insert(e["id"].as_str().expect("id").to_owned());
            break;
        }
        assert!(
            up.elapsed() < Duration::from_secs(20),
            "ingest never recovered: {s} {e}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready = Instant::now();
    loop {
        let (s, _) = app.admin(Method::GET, "/readyz", None).await;
        if s == StatusCode::OK {
            break;
        }
        assert!(
            ready.elapsed() < Duration::from_secs(20),
            "/readyz stayed unready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // On a miss, say where each missing event's deliveries stand (a rare miss was
    // seen once under a full CI run and is not yet explained).
    let seen = wait_all_or_explain(&rx, "/outage", &acked, Some((&app, &t))).await;
    println!(
        "outage: {refused} ingests refused with 503, {} acknowledged and all delivered",
        seen.len()
    );
}
