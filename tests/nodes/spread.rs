//! Work spread over three nodes: events ingested at each are each delivered, a
//! PATCH on one node is in force on another within a second, and a rate limit
//! holds across the three.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::json;

use crate::pg_cluster;
use crate::receiver::TestReceiver;
use crate::support::{delivered, ingest, node, wait_all, wait_known};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_ingested_at_three_nodes_are_each_delivered() {
    let url = pg_cluster::shared().database().await;
    let (a, b, c) = (node(&url).await, node(&url).await, node(&url).await);
    let rx = TestReceiver::start().await;
    let t = a.tenant("acme").await;
    a.webhook(
        &t,
        json!({"url": rx.url("/three"), "event_types": ["shift.created"]}),
    )
    .await;
    wait_known(&b, &t).await;
    wait_known(&c, &t).await;
    let (x, y, z) = tokio::join!(
        ingest(&a, &t, 40, "a"),
        ingest(&b, &t, 40, "b"),
        ingest(&c, &t, 40, "c")
    );
    let want: HashSet<String> = x.into_iter().chain(y).chain(z).collect();
    assert_eq!(want.len(), 120);
    let seen = wait_all(&rx, "/three", &want).await;
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    println!("three nodes: 120 events delivered, {duplicates} duplicate deliveries");
    assert_eq!(seen.len(), 120, "only the acknowledged events arrive");
    // Each delivery is shown as succeeded on every node (one database).
    let any = want.iter().next().expect("an id");
    for n in [&a, &b, &c] {
        let (s, e) = n
            .as_tenant(&t, Method::GET, &format!("/v1/events/{any}"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{e}");
        assert_eq!(e["deliveries"].as_array().map(Vec::len), Some(1), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_on_one_node_is_in_force_on_another_within_a_second() {
    let url = pg_cluster::shared().database().await;
    let (a, c) = (node(&url).await, node(&url).await);
    let rx = TestReceiver::start().await;
    let t = a.tenant("acme").await;
    let wh = a
        .webhook(
            &t,
            json!({"url": rx.url("/old"), "event_types": ["shift.created"]}),
        )
        .await;
    let id = wh["id"].as_str().expect("id").to_owned();
    wait_known(&c, &t).await;
    let (s, body) = a
        .as_tenant(
            &t,
            Method::PATCH,
            &format!("/v1/webhooks/{id}"),
            Some(json!({"url": rx.url("/new")})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let patched = Instant::now();
    loop {
        let (s, w) = c
            .as_tenant(&t, Method::GET, &format!("/v1/webhooks/{id}"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{w}");
        if w["url"] == rx.url("/new").as_str() {
            break;
        }
        assert!(
            patched.elapsed() < Duration::from_secs(1),
            "node C still shows {} a second after the PATCH on node A",
            w["url"]
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "PATCH in force on the other node after {:?}",
        patched.elapsed()
    );
    // And C delivers to the new URL.
    let ids: HashSet<String> = ingest(&c, &t, 1, "after-patch").await.into_iter().collect();
    wait_all(&rx, "/new", &ids).await;
    assert!(delivered(&rx.received(), "/old").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_across_three_nodes() {
    const RATE: usize = 20;
    const EVENTS: usize = 90;
    let url = pg_cluster::shared().database().await;
    let (a, b, c) = (node(&url).await, node(&url).await, node(&url).await);
    let rx = TestReceiver::start().await;
    let t = a.tenant("acme").await;
    a.webhook(
        &t,
        json!({"url": rx.url("/limited"), "event_types": ["shift.created"],
               "rate_limit_per_second": RATE}),
    )
    .await;
    wait_known(&b, &t).await;
    wait_known(&c, &t).await;
    let (x, y, z) = tokio::join!(
        ingest(&a, &t, EVENTS / 3, "a"),
        ingest(&b, &t, EVENTS / 3, "b"),
        ingest(&c, &t, EVENTS / 3, "c")
    );
    let want: HashSet<String> = x.into_iter().chain(y).chain(z).collect();
    wait_all(&rx, "/limited", &want).await;
    let mut at: Vec<Instant> = rx
        .received()
        .into_iter()
        .filter(|r| r.path == "/limited")
        .map(|r| r.at)
        .collect();
    at.sort();
    // A token bucket of one second's burst admits at most RATE + RATE x T in any
    // window of T seconds; three nodes each admitting RATE/s would break it. The
    // receiver sees arrivals, not admissions: each arrives some milliseconds after
    // its claim took the token, and not always the same number. So the arrivals of
    // any 900 ms were admitted within one second (if no two arrivals' delays differ
    // by 100 ms or more), and there are at most 2 x RATE of them.
    for (i, start) in at.iter().enumerate() {
        let within = at[i..]
            .iter()
            .take_while(|t| t.duration_since(*start) < Duration::from_millis(900))
            .count();
        assert!(
            within <= 2 * RATE,
            "{within} deliveries within 900 ms from delivery {i}"
        );
    }
    let span = at[at.len() - 1].duration_since(at[0]);
    let floor = Duration::from_secs_f64((at.len() - RATE) as f64 / RATE as f64 * 0.95);
    println!(
        "rate limit {RATE}/s over three nodes: {} deliveries in {span:?}",
        at.len()
    );
    assert!(
        span >= floor,
        "{} deliveries took {span:?}: over-admitted (at {RATE}/s they need {floor:?})",
        at.len()
    );
}
