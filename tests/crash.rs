//! Crash safety of the real binary (issues #3 and #6): hookbox runs as a child
//! process on a fixed loopback port and one data dir, takes ingest from concurrent
//! clients, and is killed with SIGKILL at random moments several times in a row,
//! sometimes again while it is still reopening the store. After each restart it must
//! answer /readyz within [`RESTART_BOUND`] with no manual repair, and in the end every
//! event that got a 202 must have reached the receiver at least once (duplicates are
//! allowed, counted and reported). In that scenario a retention purge runs every
//! 100 ms, so kills also land in the middle of purges. A second scenario kills it
//! while secrets are being rotated and failed deliveries recovered.
//!
//! Under `cargo test --release` this runs the release binary. The kill times come from
//! a seeded RNG: the seed is printed, and `HOOKBOX_CRASH_SEED=<n>` replays a run.
//! The summary lines are written to `<target>/crash-report.txt`.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[path = "common/api.rs"]
mod api;
#[allow(dead_code)]
#[path = "common/process.rs"]
mod process;

use api::Api;
use process::Process;

const ADMIN: &str = "crash-test-admin-token";
const EVENT_TYPE: &str = "shift.created";
/// A restarted hookbox must be ready (store reopened, repaired if need be) within this.
const RESTART_BOUND: Duration = Duration::from_secs(10);
/// Every acknowledged event must have been delivered within this after ingest stops.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(60);
/// Back-off of a client whose call failed (hookbox is down): not synchronisation,
/// only to avoid spinning on "connection refused" while it restarts.
const BACKOFF: Duration = Duration::from_millis(10);

/// How often the rotation scenario recovers the failing webhook.
const RECOVER_EVERY: Duration = Duration::from_millis(100);

/// The scenarios each drive a hookbox under full load; run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn run(test: impl Future<Output = ()>) {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(test);
}

/// The RNG for kill times: from `HOOKBOX_CRASH_SEED`, or random and printed.
fn seeded_rng(name: &str) -> (u64, StdRng) {
    let seed = std::env::var("HOOKBOX_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    println!("{name}: seed {seed} (replay with HOOKBOX_CRASH_SEED={seed})");
    (seed, StdRng::seed_from_u64(seed))
}

/// `<target>/crash-report.txt`, next to the profile dir holding the binary.
fn report_path() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_hookbox"));
    let target = bin
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    target.join("crash-report.txt")
}

/// Prints a summary line and appends it to the report (the report starts over when
/// the first scenario of a run writes to it).
fn report(line: &str) {
    println!("{line}");
    static FRESH: AtomicBool = AtomicBool::new(true);
    let path = report_path();
    let mut text = if FRESH.swap(false, Ordering::SeqCst) {
        String::new()
    } else {
        std::fs::read_to_string(&path).unwrap_or_default()
    };
    text.push_str(line);
    text.push('\n');
    if let Err(e) = std::fs::write(&path, text) {
        eprintln!("cannot write {}: {e}", path.display());
    }
}

// ---------------------------------------------------------------------------------
// The hookbox child process.

/// A hookbox process on a fixed port and data dir (the shared [`Process`], killed
/// when dropped, so a failing test never leaves it running).
struct Hookbox {
    process: Process,
    base: String,
}

impl Hookbox {
    /// Writes the config file for a hookbox in `dir`, on a port that was free just now.
    fn new(dir: &Path) -> Hookbox {
        Self::with_extra(dir, "")
    }

    /// Like [`Hookbox::new`], with a retention purge running every 100 ms over
    /// events older than 1 s, so that kills also land in the middle of purges.
    fn purging(dir: &Path) -> Hookbox {
        Self::with_extra(
            dir,
            "\n[retention]\nevents = \"1s\"\npurge_interval = \"100ms\"\n",
        )
    }

    fn with_extra(dir: &Path, extra: &str) -> Hookbox {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a probe");
            probe.local_addr().expect("probe address").port()
        };
        let data = dir.join("data");
        let quoted = |p: &Path| toml::Value::String(p.display().to_string()).to_string();
        let config = format!(
            r#"listen = "127.0.0.1:{port}"
data_dir = {data}
admin_token = "{ADMIN}"

[log]
level = "info"

[security]
require_https = false
allow_networks = ["127.0.0.0/8"]

[delivery]
retry_schedule = ["0s", "100ms", "200ms", "500ms", "1s", "1s", "1s", "1s", "1s", "1s"]
jitter = 0.0
connect_timeout = "1s"
request_timeout = "2s"

[[event_types]]
name = "{EVENT_TYPE}"
{extra}"#,
            data = quoted(&data),
        );
        let path = dir.join("hookbox.toml");
        std::fs::write(&path, config).expect("write the config file");
        Hookbox {
            process: Process::new(path, dir.join("hookbox.log")),
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Starts the binary; its log is appended to `hookbox.log` in the temp dir.
    fn start(&mut self) {
        self.process.start();
    }

    /// SIGKILL, then reap.
    fn kill(&mut self) {
        self.process.kill();
    }

    /// The end of the process log, for failure messages.
    fn log_tail(&self) -> String {
        self.process.log_tail(30)
    }

    /// Waits until `/readyz` answers 200 (the store is open and writable); panics
    /// after [`RESTART_BOUND`] or if the process exits. Returns how long it took.
    async fn wait_ready(&mut self, api: &Api) -> Duration {
        let started = Instant::now();
        loop {
            if let Ok((StatusCode::OK, _)) = api.call(Method::GET, "/readyz", "", None).await {
                return started.elapsed();
            }
            let exited = self.process.exited();
            assert!(
                exited.is_none(),
                "hookbox exited on start {} ({exited:?}):\n{}",
                self.process.lives(),
                self.log_tail()
            );
            assert!(
                started.elapsed() < RESTART_BOUND,
                "hookbox was not ready within {RESTART_BOUND:?} after start {}:\n{}",
                self.process.lives(),
                self.log_tail()
            );
            tokio::time::sleep(BACKOFF).await;
        }
    }

    /// Kills hookbox now and restarts it; with probability `early`, kills the new
    /// process again a few milliseconds into its start (while it reopens and repairs
    /// the store) and starts it once more. Returns the kills and the time to ready.
    async fn kill_and_restart(
        &mut self,
        api: &Api,
        rng: &mut StdRng,
        early: f64,
    ) -> (u32, Duration) {
        self.kill();
        let mut kills = 1;
        self.start();
        if rng.random_bool(early) {
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..40))).await;
            self.kill();
            kills += 1;
            self.start();
        }
        (kills, self.wait_ready(api).await)
    }
}

// ---------------------------------------------------------------------------------
// The HTTP client (tests/common/api.rs) and the webhook this test registers.

/// Registers a webhook for [`EVENT_TYPE`]; returns its id.
async fn webhook(api: &Api, key: &str, body: Value) -> String {
    let w = api
        .expect(StatusCode::CREATED, Method::POST, "/v1/webhooks", key, body)
        .await;
    w["id"].as_str().expect("webhook id").to_owned()
}

// ---------------------------------------------------------------------------------
// The receiver.

#[derive(Default)]
struct Seen {
    /// path -> webhook-id -> how many times it was answered 2xx.
    delivered: HashMap<String, HashMap<String, u32>>,
    /// path -> answer status when not 200.
    status: HashMap<String, u16>,
    /// The last request per (path, webhook-id), for signature checks.
    last: HashMap<(String, String), (HeaderMap, Bytes)>,
    requests: u64,
}

/// A loopback receiver recording every `webhook-id` it answers with 2xx.
struct Receiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    changed: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("receiver address");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (tx, changed) = watch::channel(0u64);
        let tx = Arc::new(tx);
        let s = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (s, tx) = (s.clone(), tx.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (s, tx) = (s.clone(), tx.clone());
                        async move { Ok::<_, Infallible>(answer(req, &s, &tx).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Receiver {
            addr,
            seen,
            changed,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Answers requests to `path` with `status` from now on.
    fn set_status(&self, path: &str, status: u16) {
        self.lock().status.insert(path.to_owned(), status);
    }

    /// webhook-id -> deliveries answered 2xx on `path`.
    fn delivered(&self, path: &str) -> HashMap<String, u32> {
        self.lock().delivered.get(path).cloned().unwrap_or_default()
    }

    fn last(&self, path: &str, id: &str) -> Option<(HeaderMap, Bytes)> {
        self.lock()
            .last
            .get(&(path.to_owned(), id.to_owned()))
            .cloned()
    }

    /// Waits until every id in `ids` has been delivered on `path`, or `deadline`
    /// passes; returns the ids still missing (empty on success).
    async fn wait_all(&self, path: &str, ids: &[String], deadline: Duration) -> Vec<String> {
        let end = tokio::time::Instant::now() + deadline;
        let mut changed = self.changed.clone();
        loop {
            changed.borrow_and_update();
            let missing: Vec<String> = {
                let seen = self.lock();
                let got = seen.delivered.get(path);
                ids.iter()
                    .filter(|id| !got.is_some_and(|g| g.contains_key(*id)))
                    .cloned()
                    .collect()
            };
            if missing.is_empty() || tokio::time::Instant::now() >= end {
                return missing;
            }
            let _ = tokio::time::timeout_at(end, changed.changed()).await;
        }
    }
}

async fn answer(
    req: Request<Incoming>,
    seen: &Mutex<Seen>,
    tx: &watch::Sender<u64>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let id = parts
        .headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let status = {
        let mut s = seen.lock().unwrap_or_else(PoisonError::into_inner);
        s.requests += 1;
        let status = s.status.get(&path).copied().unwrap_or(200);
        if (200..300).contains(&status) {
            *s.delivered
                .entry(path.clone())
                .or_default()
                .entry(id.clone())
                .or_default() += 1;
            s.last.insert((path, id), (parts.headers, body));
        }
        status
    };
    tx.send_modify(|n| *n += 1);
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    resp
}

// ---------------------------------------------------------------------------------
// Ingest clients.

/// What the ingest clients saw.
#[derive(Default)]
struct Ledger {
    /// Event ids answered 202.
    acked: Mutex<Vec<String>>,
    acks: AtomicU64,
    /// Answers other than 202 (hookbox up but refusing), with a sample.
    refused: AtomicU64,
    refused_sample: Mutex<Option<String>>,
    /// Calls that failed to get an answer (hookbox down or killed mid-call).
    unanswered: AtomicU64,
}

impl Ledger {
    fn acks(&self) -> u64 {
        self.acks.load(Ordering::SeqCst)
    }

    fn acked(&self) -> Vec<String> {
        self.acked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits (up to [`RESTART_BOUND`]) until more than `n` events were acknowledged,
    /// so the next kill lands while ingest is flowing.
    async fn wait_beyond(&self, n: u64) {
        let end = Instant::now() + RESTART_BOUND;
        while self.acks() <= n {
            assert!(
                Instant::now() < end,
                "no event acknowledged within {RESTART_BOUND:?} of a restart"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Posts events (each with a unique `data.client`/`data.seq`) until `stop`.
fn spawn_ingest(
    api: &Api,
    key: &str,
    client: usize,
    ledger: &Arc<Ledger>,
    stop: &Arc<AtomicBool>,
) -> JoinHandle<()> {
    let (api, key, ledger, stop) = (api.clone(), key.to_owned(), ledger.clone(), stop.clone());
    tokio::spawn(async move {
        let mut seq = 0u64;
        while !stop.load(Ordering::SeqCst) {
            seq += 1;
            let body = json!({"type": EVENT_TYPE, "data": {"client": client, "seq": seq}});
            match api
                .call(Method::POST, "/v1/events", &key, Some(&body))
                .await
            {
                Ok((StatusCode::ACCEPTED, v)) => {
                    let id = v["id"]
                        .as_str()
                        .expect("a 202 carries the event id")
                        .to_owned();
                    ledger
                        .acked
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(id);
                    ledger.acks.fetch_add(1, Ordering::SeqCst);
                }
                Ok((status, v)) => {
                    ledger.refused.fetch_add(1, Ordering::SeqCst);
                    ledger
                        .refused_sample
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get_or_insert_with(|| format!("{status} {v}"));
                    tokio::time::sleep(BACKOFF).await;
                }
                Err(_) => {
                    ledger.unanswered.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(BACKOFF).await;
                }
            }
        }
    })
}

/// What hookbox itself says about events the receiver never got (for the failure
/// message): whether the event exists and its deliveries' states.
async fn diagnose(api: &Api, key: &str, missing: &[String]) -> String {
    let mut out = String::new();
    for id in missing.iter().take(5) {
        let state = match api
            .call(Method::GET, &format!("/v1/events/{id}"), key, None)
            .await
        {
            Ok((s, v)) => format!("{s} deliveries={}", v["deliveries"]),
            Err(e) => e,
        };
        out.push_str(&format!("\n  {id}: {state}"));
    }
    out
}

/// Ids delivered more than once on `path`, and distinct ids delivered.
fn duplicates(rx: &Receiver, path: &str) -> (usize, usize) {
    let got = rx.delivered(path);
    (got.values().filter(|n| **n > 1).count(), got.len())
}

// ---------------------------------------------------------------------------------
// Scenarios.

#[test]
fn acknowledged_events_survive_repeated_sigkill() {
    run(async {
        let (seed, mut rng) = seeded_rng("crash");
        let dir = tempfile::tempdir().expect("temp dir");
        let rx = Receiver::start().await;
        // Purges run throughout, so some kills interrupt a retention purge.
        let mut hb = Hookbox::purging(dir.path());
        let api = Api::new(&hb.base);
        hb.start();
        hb.wait_ready(&api).await;
        let key = api.tenant_key(ADMIN, "crash").await;
        webhook(
            &api,
            &key,
            json!({"url": rx.url("/hook"), "event_types": [EVENT_TYPE]}),
        )
        .await;

        let ledger = Arc::new(Ledger::default());
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..16)
            .map(|c| spawn_ingest(&api, &key, c, &ledger, &stop))
            .collect();

        let rounds = rng.random_range(3..=5);
        let mut kills = 0;
        let mut slowest = Duration::ZERO;
        for _ in 0..rounds {
            ledger.wait_beyond(ledger.acks()).await;
            tokio::time::sleep(Duration::from_millis(rng.random_range(100..=600))).await;
            let (k, ready) = hb.kill_and_restart(&api, &mut rng, 0.3).await;
            kills += k;
            slowest = slowest.max(ready);
        }
        // The last life takes ingest too, then the clients stop.
        ledger.wait_beyond(ledger.acks()).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::SeqCst);
        for c in clients {
            c.await.expect("ingest client");
        }

        let acked = ledger.acked();
        let distinct: HashSet<&String> = acked.iter().collect();
        assert_eq!(
            distinct.len(),
            acked.len(),
            "two 202s carried the same event id"
        );
        let missing = rx.wait_all("/hook", &acked, DELIVERY_DEADLINE).await;
        let (dup, delivered) = duplicates(&rx, "/hook");
        let line = format!(
            "crash: acknowledged={} delivered={delivered} lost={} duplicated={dup} kills={kills} \
             unanswered={} refused={} slowest_restart_ms={} seed={seed}",
            acked.len(),
            missing.len(),
            ledger.unanswered.load(Ordering::SeqCst),
            ledger.refused.load(Ordering::SeqCst),
            slowest.as_millis(),
        );
        report(&line);
        assert!(
            missing.is_empty(),
            "{} acknowledged events never delivered; first: {}\n{line}\nlog:\n{}",
            missing.len(),
            diagnose(&api, &key, &missing).await,
            hb.log_tail()
        );
        assert!(!acked.is_empty() && kills >= 3, "{line}");
        let refused = ledger
            .refused_sample
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        assert_eq!(refused, None, "hookbox refused ingest while up: {line}");
    });
}

/// A fresh `whsec_` secret.
fn new_secret(rng: &mut StdRng) -> String {
    let bytes: [u8; 32] = rng.random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The rotation log: every secret sent, in order (index 0 is the one the webhook was
/// created with), and the index of the last one answered 200.
#[derive(Default)]
struct Rotations {
    sent: Vec<String>,
    acked: usize,
}

/// After a restart, `GET /secrets` shows 1 or 2 valid secrets: the current one is the
/// last acknowledged rotation or a later one that was sent, and the second one, if
/// any, was sent before it.
async fn check_secrets(
    api: &Api,
    key: &str,
    webhook: &str,
    rotations: &Mutex<Rotations>,
) -> Vec<String> {
    let floor = rotations
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .acked;
    let v = api
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("/v1/webhooks/{webhook}/secrets"),
            key,
            Value::Null,
        )
        .await;
    let secrets: Vec<String> = v["secrets"]
        .as_array()
        .expect("secrets array")
        .iter()
        .map(|s| s.as_str().expect("secret string").to_owned())
        .collect();
    assert!((1..=2).contains(&secrets.len()), "{v}");
    for s in &secrets {
        assert!(
            standardwebhooks::Webhook::new(s).is_ok(),
            "invalid secret {s}"
        );
    }
    let r = rotations.lock().unwrap_or_else(PoisonError::into_inner);
    let pos = |s: &String| r.sent.iter().position(|x| x == s);
    let current = pos(&secrets[0]).unwrap_or_else(|| panic!("current secret was never sent: {v}"));
    assert!(
        current >= floor,
        "an acknowledged rotation was lost: current is #{current}, last acknowledged #{floor}"
    );
    if let Some(old) = secrets.get(1) {
        let old = pos(old).unwrap_or_else(|| panic!("previous secret was never sent: {v}"));
        assert!(
            old < current,
            "previous secret #{old} is not older than current #{current}"
        );
    }
    secrets
}

#[test]
fn sigkill_during_rotation_and_recover_loses_nothing() {
    run(async {
        let (seed, mut rng) = seeded_rng("crash-rotate");
        let dir = tempfile::tempdir().expect("temp dir");
        let rx = Receiver::start().await;
        rx.set_status("/fail", 500);
        let mut hb = Hookbox::new(dir.path());
        let api = Api::new(&hb.base);
        hb.start();
        hb.wait_ready(&api).await;
        let key = api.tenant_key(ADMIN, "crash").await;
        let first = new_secret(&mut rng);
        let rotating = webhook(
            &api,
            &key,
            json!({"url": rx.url("/rot"), "event_types": [EVENT_TYPE], "secrets": [first]}),
        )
        .await;
        let failing = webhook(
            &api,
            &key,
            json!({"url": rx.url("/fail"), "event_types": [EVENT_TYPE]}),
        )
        .await;
        let rotations = Arc::new(Mutex::new(Rotations {
            sent: vec![first],
            acked: 0,
        }));

        let ledger = Arc::new(Ledger::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks: Vec<_> = (0..4)
            .map(|c| spawn_ingest(&api, &key, c, &ledger, &stop))
            .collect();
        let requeued = Arc::new(AtomicU64::new(0));
        // Rotate as fast as hookbox answers.
        tasks.push({
            let (api, key, stop, rotations) =
                (api.clone(), key.clone(), stop.clone(), rotations.clone());
            let mut rng = StdRng::seed_from_u64(seed ^ 1);
            let path = format!("/v1/webhooks/{rotating}/secrets/rotate");
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let s = new_secret(&mut rng);
                    let n = {
                        let mut r = rotations.lock().unwrap_or_else(PoisonError::into_inner);
                        r.sent.push(s.clone());
                        r.sent.len() - 1
                    };
                    let body = json!({"secret": s, "grace_seconds": 3600});
                    match api.call(Method::POST, &path, &key, Some(&body)).await {
                        Ok((StatusCode::OK, v)) => {
                            assert_eq!(v["secrets"][0], s, "rotation answer");
                            rotations
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .acked = n;
                        }
                        Ok((status, v)) => panic!("rotate answered {status}: {v}"),
                        Err(_) => tokio::time::sleep(BACKOFF).await,
                    }
                }
            })
        });
        // Recover the failing webhook's deliveries over and over.
        tasks.push({
            let (api, key, stop, requeued) =
                (api.clone(), key.clone(), stop.clone(), requeued.clone());
            let path = format!("/v1/webhooks/{failing}/recover");
            tokio::spawn(async move {
                let body = json!({"since": "2000-01-01T00:00:00Z"});
                while !stop.load(Ordering::SeqCst) {
                    match api.call(Method::POST, &path, &key, Some(&body)).await {
                        Ok((StatusCode::ACCEPTED, v)) => {
                            requeued
                                .fetch_add(v["requeued"].as_u64().unwrap_or(0), Ordering::SeqCst);
                        }
                        Ok((status, v)) => panic!("recover answered {status}: {v}"),
                        Err(_) => {}
                    }
                    // Recover scans every delivery of the webhook inside the write
                    // transaction: pace it so ingest keeps flowing.
                    tokio::time::sleep(RECOVER_EVERY).await;
                }
            })
        });

        let rounds = rng.random_range(3..=4);
        let mut kills = 0;
        for _ in 0..rounds {
            ledger.wait_beyond(ledger.acks()).await;
            tokio::time::sleep(Duration::from_millis(rng.random_range(100..=600))).await;
            kills += hb.kill_and_restart(&api, &mut rng, 0.2).await.0;
            check_secrets(&api, &key, &rotating, &rotations).await;
        }
        ledger.wait_beyond(ledger.acks()).await;
        stop.store(true, Ordering::SeqCst);
        for t in tasks {
            t.await.expect("client task");
        }
        let secrets = check_secrets(&api, &key, &rotating, &rotations).await;

        // The rotated webhook still delivers, signed with its current secret.
        let marker = api
            .expect(
                StatusCode::ACCEPTED,
                Method::POST,
                "/v1/events",
                &key,
                json!({"type": EVENT_TYPE, "data": {"marker": true}}),
            )
            .await["id"]
            .as_str()
            .expect("event id")
            .to_owned();
        let missing = rx
            .wait_all("/rot", std::slice::from_ref(&marker), DELIVERY_DEADLINE)
            .await;
        assert!(missing.is_empty(), "the rotated webhook no longer delivers");
        let (headers, body) = rx.last("/rot", &marker).expect("marker request recorded");
        let wh = standardwebhooks::Webhook::new(&secrets[0]).expect("current secret");
        wh.verify(&body, &headers)
            .expect("signed with the current secret");

        // The failing receiver recovers: every acknowledged event reaches it too.
        rx.set_status("/fail", 200);
        api.expect(
            StatusCode::ACCEPTED,
            Method::POST,
            &format!("/v1/webhooks/{failing}/recover"),
            &key,
            json!({"since": "2000-01-01T00:00:00Z"}),
        )
        .await;
        let acked = ledger.acked();
        let lost_rot = rx.wait_all("/rot", &acked, DELIVERY_DEADLINE).await;
        let lost_fail = rx.wait_all("/fail", &acked, DELIVERY_DEADLINE).await;
        let (dup, delivered) = duplicates(&rx, "/rot");
        let (sent, acked_rotation) = {
            let r = rotations.lock().unwrap_or_else(PoisonError::into_inner);
            (r.sent.len() - 1, r.acked)
        };
        let line = format!(
            "crash-rotate: acknowledged={} delivered={delivered} lost={} lost_after_recover={} \
             duplicated={dup} kills={kills} rotations_sent={} rotations_acked={} requeued={} seed={seed}",
            acked.len(),
            lost_rot.len(),
            lost_fail.len(),
            sent,
            acked_rotation,
            requeued.load(Ordering::SeqCst),
        );
        report(&line);
        assert!(
            lost_rot.is_empty() && lost_fail.is_empty(),
            "acknowledged events never delivered: {}{}\n{line}\nlog:\n{}",
            diagnose(&api, &key, &lost_rot).await,
            diagnose(&api, &key, &lost_fail).await,
            hb.log_tail()
        );
        assert!(kills >= 3, "{line}");
    });
}
