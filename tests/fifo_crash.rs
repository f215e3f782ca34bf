//! FIFO order across SIGKILL (issue 12): the real binary delivers to a FIFO webhook
//! whose receiver fails the first attempt of every third event, and is killed with
//! SIGKILL at random moments while events are being ingested and delivered, then
//! restarted on the same data dir. Duplicates are allowed; reordering is not: no
//! request for event `m` may reach the receiver before every event `k < m` has been
//! answered 2xx at least once. Kill times come from a seeded RNG (printed;
//! `HOOKBOX_CRASH_SEED=<n>` replays). This file must never leave a child running.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::watch;

#[path = "common/api.rs"]
mod api;
#[allow(dead_code)]
#[path = "common/process.rs"]
mod process;

use api::Api;
use process::Process;

const ADMIN: &str = "fifo-crash-admin-token";
/// Events ingested, one after another's 202.
const EVENTS: i64 = 300;
/// SIGKILLs during the run.
const KILLS: usize = 3;
/// Bounds on every wait.
const READY_BOUND: Duration = Duration::from_secs(10);
const DELIVERY_DEADLINE: Duration = Duration::from_secs(90);
/// Back-off of a call that failed because hookbox is down (not synchronisation).
const BACKOFF: Duration = Duration::from_millis(10);

/// The hookbox child (the shared [`Process`]); killed when dropped.
struct Hookbox {
    process: Process,
}

impl Hookbox {
    fn new(dir: &Path, port: u16) -> Hookbox {
        let data = toml::Value::String(dir.join("data").display().to_string()).to_string();
        let config = format!(
            r#"listen = "127.0.0.1:{port}"
data_dir = {data}
admin_token = "{ADMIN}"

[security]
require_https = false
allow_networks = ["127.0.0.0/8"]

[delivery]
retry_schedule = ["0s", "50ms", "100ms", "200ms", "500ms", "1s", "1s", "1s", "1s", "1s"]
jitter = 0.0
connect_timeout = "1s"
request_timeout = "2s"

[[event_types]]
name = "shift.created"
"#
        );
        let path = dir.join("hookbox.toml");
        std::fs::write(&path, config).expect("write the config file");
        Hookbox {
            process: Process::new(path, dir.join("hookbox.log")),
        }
    }

    fn start(&mut self) {
        self.process.start();
    }

    fn kill(&mut self) {
        self.process.kill();
    }

    fn log_tail(&self) -> String {
        self.process.log_tail(30)
    }

    async fn wait_ready(&mut self, api: &Api) {
        let started = Instant::now();
        while !matches!(
            api.call(Method::GET, "/readyz", "", None).await,
            Ok((StatusCode::OK, _))
        ) {
            let exited = self.process.exited();
            assert!(
                exited.is_none(),
                "hookbox exited: {exited:?}\n{}",
                self.log_tail()
            );
            assert!(
                started.elapsed() < READY_BOUND,
                "not ready:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(BACKOFF).await;
        }
    }
}

/// What the receiver saw: every request as (event number, answered 2xx), in order.
#[derive(Default)]
struct Seen {
    log: Vec<(i64, bool)>,
}

/// Answers 500 to the first request for every third event, 200 otherwise.
async fn answer(
    req: Request<Incoming>,
    seen: &Mutex<Seen>,
    tx: &watch::Sender<usize>,
) -> Response<Full<Bytes>> {
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let n = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["data"]["n"].as_i64())
        .unwrap_or(-1);
    let ok = {
        let mut s = seen.lock().unwrap_or_else(PoisonError::into_inner);
        let first = !s.log.iter().any(|(m, _)| *m == n);
        let ok = !(n % 3 == 0 && first);
        s.log.push((n, ok));
        ok
    };
    tx.send_modify(|c| *c += 1);
    // A little work per request, so kills land in the middle of the line.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = if ok {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    resp
}

/// Checks the receiver's log: no request for an event before every older event
/// was delivered. Returns (requests, duplicate successes).
fn check_order(log: &[(i64, bool)]) -> (usize, usize) {
    let mut delivered: HashMap<i64, u32> = HashMap::new();
    // The lowest event not delivered yet: every request must be for it or older.
    let mut next = 0;
    for (i, (n, ok)) in log.iter().enumerate() {
        assert!(
            *n <= next,
            "request {i} is for event {n} while event {next} was not delivered yet: reordered\n{:?}",
            &log[i.saturating_sub(10)..(i + 5).min(log.len())]
        );
        if *ok {
            *delivered.entry(*n).or_default() += 1;
            while delivered.contains_key(&next) {
                next += 1;
            }
        }
    }
    assert_eq!(next, EVENTS, "every event was delivered");
    let dups = delivered.values().map(|c| (*c - 1) as usize).sum();
    (log.len(), dups)
}

#[test]
fn fifo_order_holds_across_sigkill_and_restart() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(scenario());
}

async fn scenario() {
    let seed = std::env::var("HOOKBOX_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    println!("fifo crash: seed {seed} (replay with HOOKBOX_CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let rcv_addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (tx, mut changed) = watch::channel(0usize);
    let tx = Arc::new(tx);
    let s = seen.clone();
    let receiver = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (s, tx) = (s.clone(), tx.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let (s, tx) = (s.clone(), tx.clone());
                    async move { Ok::<_, Infallible>(answer(req, &s, &tx).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });

    let dir = tempfile::tempdir().expect("temp dir");
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe");
        probe.local_addr().expect("probe addr").port()
    };
    let mut hb = Hookbox::new(dir.path(), port);
    let api = Api::new(&format!("http://127.0.0.1:{port}"));
    hb.start();
    hb.wait_ready(&api).await;
    let key = api.tenant_key(ADMIN, "fifo").await;
    api.expect(
        StatusCode::CREATED,
        Method::POST,
        "/v1/webhooks",
        &key,
        json!({"url": format!("http://{rcv_addr}/fifo"), "event_types": ["shift.created"], "ordering": "fifo"}),
    )
    .await;

    // One client ingests event n only after event n-1's 202 (an idempotency key
    // makes a call whose answer was lost by a kill safe to repeat), while kills
    // land at random moments.
    let ingest = {
        let (api, key) = (api.clone(), key.clone());
        tokio::spawn(async move {
            for n in 0..EVENTS {
                let body = json!({"type": "shift.created", "data": {"n": n}, "idempotency_key": format!("n-{n}")});
                loop {
                    match api
                        .call(Method::POST, "/v1/events", &key, Some(&body))
                        .await
                    {
                        Ok((s, _)) if s == StatusCode::ACCEPTED || s == StatusCode::OK => break,
                        _ => tokio::time::sleep(BACKOFF).await,
                    }
                }
            }
        })
    };
    for _ in 0..KILLS {
        let at = rng.random_range(100..700);
        tokio::time::sleep(Duration::from_millis(at)).await;
        hb.kill();
        hb.start();
        hb.wait_ready(&api).await;
    }
    tokio::time::timeout(DELIVERY_DEADLINE, ingest)
        .await
        .expect("ingest finishes")
        .expect("ingest task");

    // Wait until every event was delivered (or the deadline), then check order.
    let end = tokio::time::Instant::now() + DELIVERY_DEADLINE;
    loop {
        changed.borrow_and_update();
        let done = {
            let s = seen.lock().unwrap_or_else(PoisonError::into_inner);
            let mut ok: Vec<i64> = s
                .log
                .iter()
                .filter(|(_, ok)| *ok)
                .map(|(n, _)| *n)
                .collect();
            ok.sort_unstable();
            ok.dedup();
            ok.len() as i64 == EVENTS
        };
        if done || tokio::time::Instant::now() >= end {
            break;
        }
        let _ = tokio::time::timeout_at(end, changed.changed()).await;
    }
    let log = seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .log
        .clone();
    let (requests, dups) = check_order(&log);
    println!(
        "fifo crash: {EVENTS} events, {KILLS} kills, {requests} requests, {dups} duplicate deliveries, order held"
    );
    hb.kill();
    receiver.abort();
}
