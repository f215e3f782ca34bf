//! Memory held by waiting work is bounded in bytes (issue 17): the real binary in a
//! child process, slow receivers, and 1,200 events of 900 KB pending. Its RSS (read
//! from /proc while it works) stays under 150 MiB, and every event is delivered.

use std::collections::HashSet;
use std::convert::Infallible;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::watch;

const ADMIN: &str = "memory-test-admin-token-0123456789";
const EVENTS: usize = 1_200;
const EVENT_BYTES: usize = 900 * 1024;
const RSS_BOUND_KIB: u64 = 150 * 1024;
/// How long a receiver takes to answer each request.
const SLOW: Duration = Duration::from_millis(500);
const DEADLINE: Duration = Duration::from_secs(90);

/// The hookbox binary; killed when dropped.
struct Child_(Child);

impl Drop for Child_ {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// VmRSS of a process, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A receiver that reads each body, remembers its `webhook-id`, and answers 200
/// after [`SLOW`]. It keeps no bodies.
async fn slow_receiver(seen: Arc<Mutex<HashSet<String>>>, tx: Arc<watch::Sender<usize>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let addr = listener.local_addr().expect("receiver address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let seen = seen.clone();
                    let tx = tx.clone();
                    async move {
                        let id = req
                            .headers()
                            .get("webhook-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        let _ = req.into_body().collect().await;
                        tokio::time::sleep(SLOW).await;
                        let n = {
                            let mut s = seen.lock().expect("seen lock");
                            s.insert(id);
                            s.len()
                        };
                        tx.send_replace(n);
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}/hook")
}

#[path = "../common/api.rs"]
mod api;

use api::Api;

/// The value of an unlabelled metric in `/metrics`.
async fn metric(api: &Api, name: &str) -> Option<f64> {
    let uri = format!("{}/metrics", api.base);
    let resp = api.client.get(uri.parse().ok()?).await.ok()?;
    let text = resp.into_body().collect().await.ok()?.to_bytes();
    let text = String::from_utf8_lossy(&text).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Waits until `/readyz` answers 200.
async fn wait_ready(api: &Api) {
    let started = Instant::now();
    loop {
        if let Ok((StatusCode::OK, _)) = api.call(Method::GET, "/readyz", "", None).await {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "hookbox did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn start_hookbox(dir: &Path) -> (Child_, String) {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a probe");
        probe.local_addr().expect("probe address").port()
    };
    let data = toml::Value::String(dir.join("data").display().to_string()).to_string();
    // Defaults for the byte budget (64 MiB) and the page cache; 16 requests in
    // flight (so in-flight bodies stay a known, small share).
    let config = format!(
        r#"listen = "127.0.0.1:{port}"
data_dir = {data}
admin_token = "{ADMIN}"
max_body_bytes = 2097152

[log]
level = "warn"

[security]
require_https = false
allow_networks = ["127.0.0.0/8"]

[delivery]
retry_schedule = ["0s", "100ms", "200ms"]
jitter = 0.0
max_in_flight = 16
per_tenant_in_flight = 16
per_webhook_in_flight = 8

[[event_types]]
name = "shift.created"

[[event_types]]
name = "PATIENT_CREATED"
"#
    );
    let path = dir.join("hookbox.toml");
    std::fs::write(&path, config).expect("write the config file");
    let log = std::fs::File::create(dir.join("hookbox.log")).expect("log file");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookbox"));
    for (var, _) in hookbox::config::ENV_OVERRIDES {
        cmd.env_remove(var);
    }
    let child = cmd
        .env_remove("HOOKBOX_CONFIG")
        .env_remove("RUST_LOG")
        .arg("--config")
        .arg(&path)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn hookbox");
    (Child_(child), format!("http://127.0.0.1:{port}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_receivers_with_1200_pending_900kb_events_keep_rss_bounded() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (child, base) = start_hookbox(dir.path());
    let pid = child.0.id();
    let api = Arc::new(Api::new(&base));
    let started = Instant::now();
    wait_ready(&api).await;
    let idle = rss_kib(pid).expect("read VmRSS");
    let key = api.tenant_key(ADMIN, "mem").await;
    // Two slow receivers, one per event type: each event is one delivery.
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let (tx, mut count) = watch::channel(0usize);
    let tx = Arc::new(tx);
    for ty in ["shift.created", "PATIENT_CREATED"] {
        let url = slow_receiver(seen.clone(), tx.clone()).await;
        api.expect(
            StatusCode::CREATED,
            Method::POST,
            "/v1/webhooks",
            &key,
            json!({"url": url, "event_types": [ty]}),
        )
        .await;
    }

    // Sample RSS every 20 ms until the end.
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(idle));
    let sampling = {
        let peak = peak.clone();
        tokio::spawn(async move {
            while let Some(kib) = rss_kib(pid) {
                peak.fetch_max(kib, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // 1,200 events of 900 KB, four at a time, much faster than the receivers take
    // them (16 x 10 per second).
    let filler = "x".repeat(EVENT_BYTES);
    let sem = Arc::new(tokio::sync::Semaphore::new(4));
    let mut posts = Vec::new();
    for i in 0..EVENTS {
        let ty = if i % 2 == 0 {
            "shift.created"
        } else {
            "PATIENT_CREATED"
        };
        let body =
            format!(r#"{{"type":"{ty}","data":{{"i":{i},"blob":"{filler}"}}}}"#).into_bytes();
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        let api = api.clone();
        let key = key.clone();
        posts.push(tokio::spawn(async move {
            let (s, v) = api
                .call_raw(Method::POST, "/v1/events", &key, Some(body))
                .await
                .unwrap_or_else(|e| panic!("ingest {i}: {e}"));
            drop(permit);
            assert_eq!(s, StatusCode::ACCEPTED, "ingest {i}: {v}");
        }));
    }
    for p in posts {
        p.await.expect("ingest task");
    }
    let ingested = started.elapsed();
    let pending_peak = peak.load(std::sync::atomic::Ordering::Relaxed);

    let all = tokio::time::timeout(DEADLINE, count.wait_for(|n| *n >= EVENTS)).await;
    let delivered = seen.lock().expect("seen lock").len();
    sampling.abort();
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "memory: idle {idle} KiB, peak {peak} KiB (while ingesting {pending_peak} KiB), ingest took {ingested:?}, all delivered after {:?}",
        started.elapsed()
    );
    assert!(
        all.is_ok(),
        "{delivered} of {EVENTS} delivered within {DEADLINE:?}"
    );
    assert_eq!(delivered, EVENTS);
    assert!(
        peak < RSS_BOUND_KIB,
        "peak RSS {peak} KiB is over {RSS_BOUND_KIB} KiB"
    );
    drop(child);
}

/// After a burst of ingest, freed heap memory goes back to the system once the
/// server is quiet (`delivery/alloc.rs`): 24 MiB of batch bodies below glibc's
/// mmap threshold, then `hookbox_memory_given_back_total` counts a give-back and
/// the process is no larger than during the burst.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_freed_by_a_burst_of_ingest_goes_back_to_the_system_when_quiet() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (child, base) = start_hookbox(dir.path());
    let pid = child.0.id();
    let api = Api::new(&base);
    wait_ready(&api).await;
    let key = api.tenant_key(ADMIN, "mem").await;
    assert_eq!(
        metric(&api, "hookbox_memory_given_back_total").await,
        Some(0.0),
        "nothing is given back before a burst"
    );

    // 120 batches of 1,000 events, about 200 KB each.
    let data = "y".repeat(150);
    let mut peak = 0;
    for b in 0..120 {
        let events: Vec<Value> = (0..1000)
            .map(|i| json!({"type": "shift.created", "data": {"b": b, "i": i, "pad": data}}))
            .collect();
        let body = json!({"events": events}).to_string().into_bytes();
        assert!(body.len() < 256 * 1024, "a batch is {} bytes", body.len());
        let (s, v) = api
            .call_raw(Method::POST, "/v1/events/batch", &key, Some(body))
            .await
            .unwrap_or_else(|e| panic!("batch {b}: {e}"));
        assert_eq!(s, StatusCode::ACCEPTED, "batch {b}: {v}");
        peak = peak.max(rss_kib(pid).expect("read VmRSS"));
    }

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = metric(&api, "hookbox_memory_given_back_total").await;
        if n.is_some_and(|n| n >= 1.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no give-back within 20 s of the burst (counter {n:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = rss_kib(pid).expect("read VmRSS");
    eprintln!("memory: {peak} KiB at the burst's peak, {after} KiB after the give-back");
    assert!(
        after <= peak,
        "RSS {after} KiB after the give-back, {peak} KiB during the burst"
    );
    drop(child);
}
