//! Ordered delivery (`ordering: "fifo"`, issue 12): a FIFO webhook's deliveries
//! reach the receiver one at a time in event order, a retry holding the line; a
//! plain webhook on the same receiver is not held up; manual retry behind the head
//! is refused; recover re-queues in order; PATCH switches a webhook to FIFO; test
//! sends are outside the line. Waits are on conditions with deadlines.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Tenant, TestApp};
use crate::receiver::{Received, Reply, TestReceiver};

/// How long any wait of these tests may take.
const DEADLINE: Duration = Duration::from_secs(30);

/// The event number a request carries (`data.n`).
fn n_of(r: &Received) -> i64 {
    r.json()["data"]["n"].as_i64().unwrap_or(-1)
}

/// The event numbers the receiver got on `path`, in arrival order.
fn sequence(rcv: &TestReceiver, path: &str) -> Vec<i64> {
    rcv.received()
        .iter()
        .filter(|r| r.path == path)
        .map(n_of)
        .collect()
}

/// Answers 500 to the first request for every third event (`data.n` divisible by
/// 3) on each path, 200 to everything else.
fn fail_first_of_every_third(rcv: &TestReceiver) {
    rcv.set_rule(Arc::new(|req: &Received, before: &[Received]| {
        let n = n_of(req);
        let seen = before.iter().any(|b| b.path == req.path && n_of(b) == n);
        Some(if n % 3 == 0 && !seen {
            Reply::status(500)
        } else {
            Reply::status(200)
        })
    }));
}

/// The expected arrivals for events `0..count` under `fail_first_of_every_third`:
/// every third event twice in a row (the failure, then the retry), the others once.
fn expected(count: i64) -> Vec<i64> {
    (0..count)
        .flat_map(|n| if n % 3 == 0 { vec![n, n] } else { vec![n] })
        .collect()
}

/// Waits until `path` got `n` requests.
async fn wait_path(rcv: &TestReceiver, path: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let got = rcv.received().iter().filter(|r| r.path == path).count();
        if got >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path}: expected {n} requests, got {got}"
        );
        // Wake at the next arrival (or re-check every 50 ms).
        let total = rcv.received().len();
        let _ = tokio::time::timeout(Duration::from_millis(50), rcv.wait_for(total + 1, DEADLINE))
            .await;
    }
}

async fn ingest_one(app: &TestApp, t: &Tenant, n: i64) -> Value {
    app.event(t, json!({"type": "shift.created", "data": {"n": n}}))
        .await
}

async fn ingest_batch(app: &TestApp, t: &Tenant, from: i64, to: i64) {
    let events: Vec<Value> = (from..to)
        .map(|n| json!({"type": "shift.created", "data": {"n": n}}))
        .collect();
    let (s, b) = app
        .as_tenant(
            t,
            Method::POST,
            "/v1/events/batch",
            Some(json!({ "events": events })),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
}

#[tokio::test]
async fn fifo_webhook_gets_200_events_in_order_each_after_the_previous_success() {
    // Retries after 100 ms, so the line spends at least 67 x 100 ms waiting on
    // them; several requests at once per webhook are allowed (the plain one uses
    // them).
    let app = TestApp::spawn_with(|c| {
        c.delivery.retry_schedule = vec![Duration::ZERO, Duration::from_millis(100)];
        c.delivery.per_webhook_in_flight = 8;
    })
    .await;
    let rcv = TestReceiver::start().await;
    fail_first_of_every_third(&rcv);
    let t = app.tenant("fifo").await;
    let w = app
        .webhook(
            &t,
            json!({"url": rcv.url("/fifo"), "event_types": ["shift.created"], "ordering": "fifo"}),
        )
        .await;
    assert_eq!(w["ordering"], "fifo", "{w}");
    let plain = app
        .webhook(
            &t,
            json!({"url": rcv.url("/plain"), "event_types": ["shift.created"]}),
        )
        .await;
    assert_eq!(plain["ordering"], "none", "{plain}");
    // 20 events one by one (each after the previous 202), then 180 in 4 batches:
    // event order is the order of the 202s, and batch order within a batch.
    for n in 0..20 {
        ingest_one(&app, &t, n).await;
    }
    for b in 0..4 {
        ingest_batch(&app, &t, 20 + b * 45, 20 + (b + 1) * 45).await;
    }
    let want = expected(200);
    wait_path(&rcv, "/plain", want.len()).await;
    let fifo_when_plain_done = sequence(&rcv, "/fifo").len();
    wait_path(&rcv, "/fifo", want.len()).await;

    // In order, each failed first attempt retried before the next event: each
    // request started only after the previous one's success.
    assert_eq!(sequence(&rcv, "/fifo"), want);
    assert_eq!(rcv.peak_concurrency("/fifo"), 1, "one request at a time");
    // The plain webhook was not held up behind the line's retries: it got all of
    // its requests while the line was far from done.
    assert!(
        fifo_when_plain_done < want.len() / 2,
        "the FIFO line had {fifo_when_plain_done} of {} when the plain webhook finished",
        want.len()
    );
    let mut plain_events = sequence(&rcv, "/plain");
    plain_events.sort_unstable();
    plain_events.dedup();
    assert_eq!(plain_events.len(), 200);
    // Nothing more arrives: every delivery is finished.
    let (s, list) = app
        .as_tenant(
            &t,
            Method::GET,
            &format!(
                "/v1/webhooks/{}/deliveries?status=succeeded&limit=100",
                w["id"].as_str().expect("id")
            ),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["data"].as_array().map(Vec::len), Some(100));
}

#[tokio::test]
async fn manual_retry_behind_the_head_is_409_and_test_sends_skip_the_line() {
    // The head's retry is an hour away: the line waits for it.
    let app = TestApp::spawn_with(|c| {
        c.delivery.retry_schedule = vec![Duration::ZERO, Duration::from_secs(3600)];
    })
    .await;
    let rcv = TestReceiver::start().await;
    // Event 1 fails its first attempt; everything else succeeds.
    rcv.set_rule(Arc::new(|req: &Received, before: &[Received]| {
        let first = !before.iter().any(|b| n_of(b) == n_of(req));
        Some(Reply::status(if n_of(req) == 1 && first {
            503
        } else {
            200
        }))
    }));
    let t = app.tenant("fifo-retry").await;
    let w = app
        .webhook(
            &t,
            json!({"url": rcv.url("/fifo"), "event_types": ["shift.created"], "ordering": "fifo"}),
        )
        .await;
    let wid = w["id"].as_str().expect("id").to_owned();
    let mut dlv = Vec::new();
    for n in 1..=3 {
        let e = ingest_one(&app, &t, n).await;
        let ds = app
            .deliveries_of(&t, e["id"].as_str().expect("event id"))
            .await;
        dlv.push(ds[0]["id"].as_str().expect("delivery id").to_owned());
    }
    // The head fails and waits for its retry, in state failed.
    app.wait_delivery(&t, &dlv[0], DEADLINE, |d| d["status"] == "failed")
        .await;
    assert_eq!(sequence(&rcv, "/fifo"), [1]);

    // Retrying the second by hand would overtake the head: 409 with the reason.
    let (s, e) = app
        .as_tenant(
            &t,
            Method::POST,
            &format!("/v1/deliveries/{}/retry", dlv[1]),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    let msg = e["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(&dlv[0]) && msg.contains("FIFO"),
        "the reason names the head: {msg}"
    );
    assert_eq!(sequence(&rcv, "/fifo"), [1], "nothing was sent");

    // A test send is outside the line: it goes now, while the head waits.
    let (s, a) = app
        .as_tenant(
            &t,
            Method::POST,
            &format!("/v1/webhooks/{wid}/test"),
            Some(json!({"event_type": "shift.created", "message": "hello"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(rcv.received().len(), 2);

    // Retrying the head itself is allowed; its success frees the line at once
    // (not an hour later): 2 and 3 follow in order.
    let (s, r) = app
        .as_tenant(
            &t,
            Method::POST,
            &format!("/v1/deliveries/{}/retry", dlv[0]),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    wait_path(&rcv, "/fifo", 5).await;
    let got: Vec<i64> = sequence(&rcv, "/fifo")
        .into_iter()
        .filter(|n| *n >= 0)
        .collect();
    assert_eq!(got, [1, 1, 2, 3]);
}

#[tokio::test]
async fn recover_requeues_a_fifo_webhooks_deliveries_in_order() {
    // No retries: every failure exhausts its delivery, which frees the line.
    let app = TestApp::spawn_with(|c| {
        c.delivery.retry_schedule = vec![Duration::ZERO];
    })
    .await;
    let rcv = TestReceiver::start_with(Reply::status(500)).await;
    let t = app.tenant("fifo-recover").await;
    let w = app
        .webhook(
            &t,
            json!({"url": rcv.url("/fifo"), "event_types": ["shift.created"], "ordering": "fifo"}),
        )
        .await;
    for n in 0..10 {
        ingest_one(&app, &t, n).await;
    }
    wait_path(&rcv, "/fifo", 10).await;
    assert_eq!(sequence(&rcv, "/fifo"), (0..10).collect::<Vec<_>>());
    let wid = w["id"].as_str().expect("id");
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (_, l) = app
            .as_tenant(
                &t,
                Method::GET,
                &format!("/v1/webhooks/{wid}/deliveries?status=exhausted"),
                None,
            )
            .await;
        if l["data"].as_array().map(Vec::len) == Some(10) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{l}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    rcv.set_rule(Arc::new(|_: &Received, _: &[Received]| {
        Some(Reply::status(200))
    }));
    let (s, r) = app
        .as_tenant(
            &t,
            Method::POST,
            &format!("/v1/webhooks/{wid}/recover"),
            Some(json!({"since": "2000-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{r}");
    assert_eq!(r["requeued"], 10);
    wait_path(&rcv, "/fifo", 20).await;
    assert_eq!(sequence(&rcv, "/fifo")[10..], (0..10).collect::<Vec<_>>());
    assert_eq!(rcv.peak_concurrency("/fifo"), 1);
}

#[tokio::test]
async fn patch_switches_ordering_and_bad_values_are_refused() {
    let app = TestApp::spawn_with(|c| {
        c.delivery.per_webhook_in_flight = 8;
    })
    .await;
    let rcv = TestReceiver::start().await;
    fail_first_of_every_third(&rcv);
    let t = app.tenant("fifo-patch").await;
    // Refused with every reason, on create and on PATCH; nothing is written.
    let (s, e) = app
        .as_tenant(
            &t,
            Method::POST,
            "/v1/webhooks",
            Some(json!({"url": "ftp://x", "event_types": ["shift.created"], "ordering": "lifo"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let reasons = e["error"]["reasons"].to_string();
    assert!(
        reasons.contains("ordering") && reasons.contains("url"),
        "{e}"
    );
    let w = app
        .webhook(
            &t,
            json!({"url": rcv.url("/w"), "event_types": ["shift.created"]}),
        )
        .await;
    let path = format!("/v1/webhooks/{}", w["id"].as_str().expect("id"));
    for bad in [json!("FIFO"), json!(1), json!(null)] {
        let (s, e) = app
            .as_tenant(&t, Method::PATCH, &path, Some(json!({"ordering": bad})))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {e}");
        assert!(
            e["error"]["reasons"].to_string().contains("ordering"),
            "{e}"
        );
    }
    let (_, got) = app.as_tenant(&t, Method::GET, &path, None).await;
    assert_eq!(got["ordering"], "none");

    let (s, p) = app
        .as_tenant(&t, Method::PATCH, &path, Some(json!({"ordering": "fifo"})))
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["ordering"], "fifo");
    let (_, got) = app.as_tenant(&t, Method::GET, &path, None).await;
    assert_eq!(got["ordering"], "fifo");
    ingest_batch(&app, &t, 0, 30).await;
    let want = expected(30);
    wait_path(&rcv, "/w", want.len()).await;
    assert_eq!(sequence(&rcv, "/w"), want);
    assert_eq!(rcv.peak_concurrency("/w"), 1);
}
