//! Delivery outcome classes with the millisecond retry schedule: retry then
//! success, exhaustion, 410, 429 with Retry-After, redirects, timeouts, dropped
//! connections; a slow receiver beside a fast one; the per-webhook rate limit.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::helpers::{Tenant, TestApp};
use crate::receiver::{Reply, TestReceiver};

const WAIT: Duration = Duration::from_secs(10);

/// Registers a webhook for `shift.created` at `url`; returns its id.
pub async fn hook(app: &TestApp, t: &Tenant, url: &str) -> String {
    let w = app
        .webhook(t, json!({"url": url, "event_types": ["shift.created"]}))
        .await;
    w["id"].as_str().expect("webhook id").to_owned()
}

/// Ingests one `shift.created` event and returns the id of its only delivery.
pub async fn one_delivery(app: &TestApp, t: &Tenant) -> String {
    let e = app
        .event(t, json!({"type": "shift.created", "data": {"x": 1}}))
        .await;
    assert_eq!(e["deliveries"], 1, "{e}");
    let dlv = app
        .deliveries_of(t, e["id"].as_str().expect("event id"))
        .await;
    dlv[0]["id"].as_str().expect("delivery id").to_owned()
}

/// The status codes of a delivery's attempts, in order.
pub fn codes(d: &Value) -> Vec<Value> {
    d["attempts"]
        .as_array()
        .map(|a| a.iter().map(|x| x["status_code"].clone()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_500_is_retried_and_then_succeeds() {
    let app = TestApp::spawn().await;
    let rx = TestReceiver::start().await;
    rx.script([Reply::status(500)]);
    let t = app.tenant("acme").await;
    hook(&app, &t, &rx.url("/hook")).await;
    let id = one_delivery(&app, &t).await;
    let d = app
        .wait_delivery(&t, &id, WAIT, |d| d["status"] == "succeeded")
        .await;
    assert_eq!(codes(&d), [json!(500), json!(200)]);
    assert_eq!(d["attempts"][0]["error"], "receiver answered 500");
    assert_eq!(rx.received().len(), 2);
    // The retry carries the same webhook-id.
    let got = rx.received();
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
}

#[tokio::test]
async fn a_delivery_failing_every_time_is_exhausted_after_the_schedule() {
    let app = TestApp::spawn().await;
    let rx = TestReceiver::start_with(Reply::status(500)).await;
    let t = app.tenant("acme").await;
    hook(&app, &t, &rx.url("/hook")).await;
    let id = one_delivery(&app, &t).await;
    let d = app
        .wait_delivery(&t, &id, WAIT, |d| d["status"] == "exhausted")
        .await;
    assert_eq!(codes(&d), vec![json!(500); 4], "{d}");
    assert_eq!(d["next_attempt_at"], Value::Null);
    assert_eq!(rx.received().len(), 4);
}

#[tokio::test]
async fn a_410_disables_the_webhook_and_cancels_its_pending_deliveries() {
    // A long second step keeps the first delivery pending while the 410 arrives.
    let app = TestApp::spawn_with(|c| {
        c.delivery.retry_schedule = vec![Duration::ZERO, Duration::from_secs(3600)];
    })
    .await;
    let rx = TestReceiver::start().await;
    rx.script([Reply::status(500), Reply::status(410)]);
    let t = app.tenant("acme").await;
    let wh = hook(&app, &t, &rx.url("/hook")).await;
    let first = one_delivery(&app, &t).await;
    app.wait_delivery(&t, &first, WAIT, |d| d["status"] == "failed")
        .await;
    let gone = one_delivery(&app, &t).await;
    let d = app
        .wait_delivery(&t, &gone, WAIT, |d| {
            d["attempts"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    assert_eq!(codes(&d), [json!(410)]);
    let first = app
        .wait_delivery(&t, &first, WAIT, |d| d["status"] == "cancelled")
        .await;
    assert_eq!(first["next_attempt_at"], Value::Null);
    let (_, w) = app
        .as_tenant(&t, Method::GET, &format!("/v1/webhooks/{wh}"), None)
        .await;
    assert_eq!(w["enabled"], false, "{w}");
    assert!(
        w["disabled_reason"]
            .as_str()
            .is_some_and(|r| r.contains("410")),
        "{w}"
    );
    // Nothing more is sent to a disabled webhook.
    let e = app
        .event(&t, json!({"type": "shift.created", "data": {}}))
        .await;
    assert_eq!(e["deliveries"], 0);
    assert_eq!(rx.received().len(), 2);
}

#[tokio::test]
async fn retry_after_on_a_429_delays_the_next_attempt() {
    let app = TestApp::spawn().await;
    let rx = TestReceiver::start().await;
    rx.script([Reply::status(429).header("retry-after", "1")]);
    let t = app.tenant("acme").await;
    hook(&app, &t, &rx.url("/hook")).await;
    let id = one_delivery(&app, &t).await;
    let got = rx.wait_for(2, WAIT).await;
    let gap = got[1].at - got[0].at;
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
    let d = app
        .wait_delivery(&t, &id, WAIT, |d| d["status"] == "succeeded")
        .await;
    assert_eq!(codes(&d), [json!(429), json!(200)]);
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_counts_as_a_failure() {
    let app = TestApp::spawn().await;
    let rx = TestReceiver::start().await;
    rx.script([Reply::status(302).header("location", &rx.url("/elsewhere"))]);
    let t = app.tenant("acme").await;
    hook(&app, &t, &rx.url("/hook")).await;
    let id = one_delivery(&app, &t).await;
    let d = app
        .wait_delivery(&t, &id, WAIT, |d| d["status"] == "succeeded")
        .await;
    assert_eq!(codes(&d), [json!(302), json!(200)]);
    assert!(
        d["attempts"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("redirect")),
        "{d}"
    );
    let paths: Vec<String> = rx.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        ["/hook", "/hook"],
        "the redirect target got a request"
    );
}

#[tokio::test]
async fn a_hanging_receiver_times_out_and_is_retried() {
    let app = TestApp::spawn_with(|c| {
        c.delivery.connect_timeout = Duration::from_millis(300);
        c.delivery.request_timeout = Duration::from_millis(300);
    })
    .await;
    let rx = TestReceiver::start().await;
    rx.script([Reply::status(200).delay(Duration::from_secs(3))]);
    let t = app.tenant("acme").await;
    hook(&app, &t, &rx.url("/hook")).await;
    let id = one_delivery(&app, &t).await;
    let d = app
        .wait_delivery(&t, &id, WAIT, |d| d["status"] == "succeeded")
        .await;
    assert_eq!(codes(&d), [Value::Null, json!(200)], "{d}");
    let err = d["attempts"][0]["error"].as_str().unwrap_or("");
    assert!(err.contains("timed out"), "{err}");
    let latency = d["attempts"][0]["latency_ms"].as_u64().unwrap_or(0);
    assert!((250..2000).contains(&latency), "latency {latency} ms");
}

/// A raw HTTP server that closes the first connection without answering and
/// answers 200 on every later one. Returns its address and the connection count.
async fn drops_first_connection() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if n == 0 {
                    drop(sock);
                    return;
                }
                // Read the head and the body, then answer and close.
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(k) = sock.read(&mut chunk).await else {
                        return;
                    };
                    if k == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..k]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break;
                    }
                }
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (addr, count)
}

#[tokio::test]
async fn a_dropped_connection_is_retried() {
    let app = TestApp::spawn().await;
    let (addr, conns) = drops_first_connection().await;
    let t = app.tenant("acme").await;
    hook(&app, &t, &format!("http://{addr}/hook")).await;
    let id = one_delivery(&app, &t).await;
    let d = app
        .wait_delivery(&t, &id, WAIT, |d| d["status"] == "succeeded")
        .await;
    assert_eq!(codes(&d), [Value::Null, json!(200)], "{d}");
    assert!(
        d["attempts"][0]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty())
    );
    assert_eq!(conns.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_slow_receiver_does_not_delay_a_fast_one() {
    let app = TestApp::spawn_with(|c| c.delivery.per_webhook_in_flight = 1).await;
    let slow = TestReceiver::start_with(Reply::status(200).delay(Duration::from_secs(2))).await;
    let fast = TestReceiver::start().await;
    let t = app.tenant("acme").await;
    hook(&app, &t, &slow.url("/slow")).await;
    hook(&app, &t, &fast.url("/fast")).await;
    let start = std::time::Instant::now();
    for i in 0..4 {
        let e = app
            .event(&t, json!({"type": "shift.created", "data": {"i": i}}))
            .await;
        assert_eq!(e["deliveries"], 2);
    }
    // The slow webhook needs 8 s for its four; the fast one must not wait for it.
    fast.wait_for(4, Duration::from_millis(1500)).await;
    assert!(start.elapsed() < Duration::from_millis(1500));
    assert!(slow.received().len() <= 1, "per-webhook bound not applied");
}

#[tokio::test]
async fn the_rate_limit_spreads_requests_over_time() {
    let app = TestApp::spawn().await;
    let rx = TestReceiver::start().await;
    let t = app.tenant("acme").await;
    app.webhook(
        &t,
        json!({"url": rx.url("/hook"), "event_types": ["shift.created"], "rate_limit_per_second": 5}),
    )
    .await;
    for i in 0..15 {
        app.event(&t, json!({"type": "shift.created", "data": {"i": i}}))
            .await;
    }
    let got = rx.wait_for(15, WAIT).await;
    let span = got[14].at - got[0].at;
    // A burst of 5, then 5 a second: the last 10 need about 2 s.
    assert!(
        span >= Duration::from_millis(1800),
        "15 requests in {span:?}"
    );
    // No one-second window holds more than burst + rate requests.
    for (i, r) in got.iter().enumerate() {
        let within = got[i..]
            .iter()
            .filter(|x| x.at - r.at < Duration::from_secs(1))
            .count();
        assert!(within <= 10, "{within} requests within 1 s");
    }
}

#[tokio::test]
async fn the_global_in_flight_bound_holds_across_webhooks() {
    // One tenant here, so its own bound (a quarter of the global one by default)
    // is raised to the global one: this test is about the global bound.
    let app = TestApp::spawn_with(|c| {
        c.delivery.max_in_flight = 2;
        c.delivery.per_tenant_in_flight = Some(2);
    })
    .await;
    let t = app.tenant("bound").await;
    let slow = Duration::from_millis(600);
    let mut receivers = Vec::new();
    for _ in 0..3 {
        let rx = TestReceiver::start_with(Reply::status(200).delay(slow)).await;
        app.webhook(
            &t,
            json!({"url": rx.url("/"), "event_types": ["shift.created"]}),
        )
        .await;
        receivers.push(rx);
    }
    app.event(&t, json!({"type": "shift.created", "data": {}}))
        .await;
    let mut arrivals = Vec::new();
    for rx in &receivers {
        arrivals.push(rx.wait_for(1, Duration::from_secs(10)).await[0].at);
    }
    arrivals.sort();
    // Two start together; the third waits until one of them has finished.
    assert!(
        arrivals[2] - arrivals[0] >= slow - Duration::from_millis(50),
        "a third request started while two were in flight: {:?}",
        arrivals[2] - arrivals[0]
    );
    assert!(
        arrivals[1] - arrivals[0] < slow,
        "the first two did not run together"
    );
}
