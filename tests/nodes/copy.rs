//! `hookbox store copy`, then deliver (issue #16): a real redb server delivers
//! some events and leaves others waiting (their receiver is down), and is stopped;
//! the real binary copies its data dir into a fresh database; a node on that
//! database answers the reads the redb server answered (events, deliveries with
//! their attempts, webhooks, the delivery log) and, once the receiver is up,
//! delivers the waiting deliveries. An idempotency key used on redb still names
//! the same event.

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use hookbox::config::{Config, ENV_OVERRIDES};
use hookbox::model::Secret;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Tenant, TestApp};
use crate::pg_cluster;
use crate::receiver::{Reply, TestReceiver};
use crate::support::{ADMIN, MASTER_KEY, WAIT, node_with};

/// One attempt, then one a second, for long enough that nothing is exhausted
/// while the store is stopped and copied.
fn schedule(c: &mut Config) {
    c.delivery.retry_schedule = std::iter::once(Duration::ZERO)
        .chain(std::iter::repeat_n(Duration::from_secs(1), 20))
        .collect();
}

/// A GET that must answer 200.
async fn read(app: &TestApp, t: &Tenant, path: &str) -> Value {
    let (s, v) = app.as_tenant(t, Method::GET, path, None).await;
    assert_eq!(s, StatusCode::OK, "GET {path}: {v}");
    v
}

/// Everything a user reads about the tenant: its webhooks, each event with its
/// deliveries, each delivery with its attempts, each webhook's delivery log.
async fn reads(app: &TestApp, t: &Tenant, webhooks: &[String]) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut paths = vec!["/v1/webhooks".to_owned(), "/v1/events?limit=100".to_owned()];
    for w in webhooks {
        paths.push(format!("/v1/webhooks/{w}"));
        paths.push(format!("/v1/webhooks/{w}/deliveries?limit=100"));
    }
    for p in paths {
        let v = read(app, t, &p).await;
        out.push((p, v));
    }
    let events = read(app, t, "/v1/events?limit=100").await;
    for e in events["data"].as_array().cloned().unwrap_or_default() {
        let id = e["id"].as_str().expect("event id");
        let p = format!("/v1/events/{id}");
        let event = read(app, t, &p).await;
        for d in event["deliveries"].as_array().cloned().unwrap_or_default() {
            let dp = format!("/v1/deliveries/{}", d["id"].as_str().expect("delivery id"));
            let detail = read(app, t, &dp).await;
            out.push((dp, detail));
        }
        out.push((p, event));
    }
    out
}

/// Whether `after` (read from the copy) is `before` (read from redb), allowing a
/// waiting delivery to have moved on meanwhile (an attempt made between the read
/// and the stop, or by the copy before its receiver was up): more attempts, the
/// earlier ones unchanged.
fn same_or_moved_on(before: &Value, after: &Value) -> bool {
    if before == after {
        return true;
    }
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let waiting = b.get("status") == Some(&json!("failed"))
                && b.get("id")
                    .and_then(Value::as_str)
                    .is_some_and(|id| id.starts_with("dlv_"));
            if waiting {
                return a.get("id") == b.get("id") && moved_on(&b["attempts"], &a["attempts"]);
            }
            b.len() == a.len()
                && b.iter()
                    .all(|(k, v)| a.get(k).is_some_and(|x| same_or_moved_on(v, x)))
        }
        (Value::Array(b), Value::Array(a)) => {
            b.len() == a.len() && b.iter().zip(a).all(|(v, x)| same_or_moved_on(v, x))
        }
        _ => false,
    }
}

/// More attempts than before (a count, or a list whose first ones are unchanged).
fn moved_on(before: &Value, after: &Value) -> bool {
    match (before, after) {
        (Value::Array(b), Value::Array(a)) => a.len() > b.len() && a[..b.len()] == b[..],
        (Value::Number(b), Value::Number(a)) => a.as_u64() > b.as_u64(),
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_redb_store_serves_the_same_reads_and_delivers_what_was_waiting() {
    // The waiting receiver's address, free for now (nothing listens there yet).
    let down = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a probe");
        probe.local_addr().expect("address")
    };
    let live = TestReceiver::start().await;
    let mut redb = TestApp::spawn_redb_with(|c| {
        schedule(c);
        c.master_key = Some(Secret::new(MASTER_KEY));
        c.admin_token = Some(Secret::new(ADMIN));
    })
    .await;
    let t = redb.tenant("acme").await;
    let up = redb
        .webhook(
            &t,
            json!({"url": live.url("/live"), "event_types": ["shift.created"]}),
        )
        .await;
    let waiting = redb
        .webhook(
            &t,
            json!({"url": format!("http://{down}/waiting"), "event_types": ["shift.created"],
                   "headers": {"X-Api-Key": "header-secret-value"}}),
        )
        .await;
    let webhooks: Vec<String> = [&up, &waiting]
        .iter()
        .map(|w| w["id"].as_str().expect("id").to_owned())
        .collect();
    let mut events = Vec::new();
    for i in 0..4 {
        let (s, e) = redb
            .call(
                Method::POST,
                "/v1/events",
                &t.key,
                &[("idempotency-key", &format!("k-{i}"))],
                Some(json!({"type": "shift.created", "data": {"n": i}})),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{e}");
        events.push(e["id"].as_str().expect("id").to_owned());
    }
    // Delivered to the live receiver; one failed attempt each at the waiting one.
    live.wait_for(4, WAIT).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let mut settled = 0;
        for e in &events {
            let ev = read(&redb, &t, &format!("/v1/events/{e}")).await;
            settled += ev["deliveries"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| {
                    d["status"] == "succeeded"
                        || (d["status"] == "failed" && d["attempts"].as_u64() >= Some(1))
                })
                .count();
        }
        if settled == 2 * events.len() {
            break;
        }
        assert!(Instant::now() < deadline, "{settled} deliveries settled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // What the redb server answers, just before it stops.
    let before = reads(&redb, &t, &webhooks).await;
    redb.stop().await;

    let url = pg_cluster::shared().database().await;
    let dir = redb.dir.path().to_string_lossy().into_owned();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookbox"));
    for (var, _) in ENV_OVERRIDES {
        cmd.env_remove(var);
    }
    let out = cmd
        .env_remove("HOOKBOX_CONFIG")
        .env("HOOKBOX_MASTER_KEY", MASTER_KEY)
        .env("RUST_LOG", "warn")
        .args(["store", "copy", "--data-dir", &dir, "--postgres-url", &url])
        .output()
        .expect("run hookbox store copy");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The copy runs with the deployment's retry schedule: with the suite's fast one
    // (four steps of at most 60 ms) a waiting delivery tried before its receiver is
    // up would be exhausted at once, and the test would race the receiver's start.
    let pg = node_with(&url, schedule).await;
    let after = reads(&pg, &t, &webhooks).await;
    assert_eq!(
        before.iter().map(|(p, _)| p).collect::<Vec<_>>(),
        after.iter().map(|(p, _)| p).collect::<Vec<_>>(),
        "the same things to read"
    );
    let mut moved = 0;
    for ((path, b), (_, a)) in before.iter().zip(&after) {
        assert!(
            same_or_moved_on(b, a),
            "GET {path} differs after the copy:\nredb: {b:#}\npostgres: {a:#}"
        );
        moved += usize::from(b != a);
    }

    // The waiting deliveries are delivered once their receiver is up.
    let rx = TestReceiver::start_on(&down.to_string(), Reply::status(200)).await;
    let got = rx.wait_for(events.len(), WAIT).await;
    let ids: HashSet<String> = got
        .iter()
        .filter(|r| r.path == "/waiting")
        .filter_map(|r| r.json()["data"]["n"].as_i64().map(|n| n.to_string()))
        .collect();
    assert_eq!(ids.len(), events.len(), "every waiting delivery arrives");
    assert_eq!(
        got[0].header("x-api-key"),
        Some("header-secret-value"),
        "the webhook's sealed header opens on the copy"
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let log = read(
            &pg,
            &t,
            &format!(
                "/v1/webhooks/{}/deliveries?status=succeeded&limit=100",
                webhooks[1]
            ),
        )
        .await;
        if log["data"].as_array().map(Vec::len) == Some(events.len()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all shown as succeeded: {log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // An idempotency key used on redb still names the same event.
    let (s, again) = pg
        .call(
            Method::POST,
            "/v1/events",
            &t.key,
            &[("idempotency-key", "k-0")],
            Some(json!({"type": "shift.created", "data": {"n": 0}})),
        )
        .await;
    assert!(s.is_success(), "{again}");
    assert_eq!(again["id"], events[0].as_str());
    println!(
        "store copy: {} reads compared ({moved} showed a waiting delivery that had moved on), {} waiting deliveries delivered by the copy\n{stdout}",
        before.len(),
        events.len()
    );
}
