//! The end-to-end load benchmark: the real hookbox (`App::build`) with a fresh temp
//! data dir, a loopback receiver that answers 200, and a load generator, all over real
//! HTTP on loopback. It never asserts timings; it measures and prints one table.
//!
//! ```text
//! cargo run --release --example loadgen -- [--quick] [--json out.json]
//! cargo run --release --example loadgen -- --phase throughput --fanout 1 --events 5000 --ordering fifo
//! ```
//!
//! The FIFO phase (`--ordering fifo`, also part of the full run) sends to one webhook
//! with `ordering: "fifo"`: its deliveries go one at a time, each after the previous
//! one's outcome is committed, so its end-to-end rate is bounded by one request at
//! a time (receiver round trip + attempt + outcome commit + the next start).
//!
//! Each phase runs in a child process (this binary with `--phase ...`), so every RSS
//! figure belongs to one phase only. The child holds hookbox, the receiver and the
//! load generator; `rss_base_kib` (measured before hookbox starts) is the share of the
//! generator and receiver runtime.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hookbox::app::App;
use hookbox::config::{Config, EventTypeSeed};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

const EVENT_TYPE: &str = "load.test";
/// Concurrent keep-alive client connections for the sustained-rate phases.
const CLIENTS: usize = 64;

/// The clock shared by the sender and the receiver (one process).
fn micros() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// `(VmRSS, VmHWM)` of this process in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

// ---------------------------------------------------------------- the receiver

/// What the receiver saw. Latencies are (event index, microseconds from the send
/// time written in the event data to arrival).
#[derive(Default)]
struct Seen {
    count: AtomicU64,
    first_us: AtomicU64,
    last_us: AtomicU64,
    record: AtomicBool,
    latencies: Mutex<Vec<(u64, u64)>>,
}

/// Reads the number after `"key":` in a JSON body we wrote ourselves.
fn number_after(body: &[u8], key: &str) -> Option<u64> {
    let pat = format!("\"{key}\":");
    let at = body.windows(pat.len()).position(|w| w == pat.as_bytes())? + pat.len();
    let digits: Vec<u8> = body[at..]
        .iter()
        .copied()
        .take_while(u8::is_ascii_digit)
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

async fn receive(
    seen: Arc<Seen>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let now = micros();
    if seen.record.load(Ordering::Relaxed)
        && let (Some(t), Some(i)) = (number_after(&body, "t"), number_after(&body, "i"))
    {
        let mut lat = seen.latencies.lock().unwrap_or_else(|e| e.into_inner());
        lat.push((i, now.saturating_sub(t)));
    }
    let _ = seen
        .first_us
        .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    seen.last_us.fetch_max(now, Ordering::Relaxed);
    seen.count.fetch_add(1, Ordering::Release);
    Ok(Response::new(Full::new(Bytes::new())))
}

/// Starts the receiver on `addr` (port 0 for any).
async fn start_receiver(addr: SocketAddr, seen: Arc<Seen>) -> SocketAddr {
    let listener = TcpListener::bind(addr).await.expect("receiver binds");
    let local = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let seen = seen.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| receive(seen.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    local
}

// ---------------------------------------------------------------- hookbox side

fn config(dir: &std::path::Path) -> Config {
    let mut c = Config {
        listen: "127.0.0.1:0".parse().expect("literal address"),
        data_dir: dir.to_owned(),
        ..Config::default()
    };
    c.security.require_https = false;
    c.security.allow_networks = vec!["127.0.0.0/8".parse().expect("literal cidr")];
    c.event_types = vec![EventTypeSeed {
        name: EVENT_TYPE.to_owned(),
        description: None,
    }];
    c
}

/// With `HOOKBOX_LOADGEN_POSTGRES` (the URL of a PostgreSQL server's maintenance
/// database, e.g. `postgres://postgres@127.0.0.1:5432/postgres`), the phase runs on
/// PostgreSQL instead of redb, in a fresh database of its own.
async fn engine(mut c: Config) -> Config {
    let Ok(admin) = std::env::var("HOOKBOX_LOADGEN_POSTGRES") else {
        return c;
    };
    let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .expect("connect to HOOKBOX_LOADGEN_POSTGRES");
    tokio::spawn(connection);
    let name = format!("loadgen_{}_{}", std::process::id(), rand::random::<u32>());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create the phase's database");
    let (base, _) = admin.rsplit_once('/').expect("a URL with a database name");
    c.store.backend = hookbox::config::Backend::Postgres;
    c.store.postgres_url = Some(hookbox::model::Secret::new(format!("{base}/{name}")));
    c
}

struct Api {
    client: HttpClient,
    base: String,
    key: String,
}

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn call(
    client: &HttpClient,
    method: Method,
    url: &str,
    token: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("valid request");
    match client.request(req).await {
        Ok(resp) => {
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            (
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            )
        }
        Err(e) => (StatusCode::BAD_GATEWAY, json!(e.to_string())),
    }
}

/// Creates a tenant with an all-scopes key and `webhooks` webhooks pointing at `url`
/// (FIFO ones when `fifo`).
async fn setup(app: &App, webhooks: usize, url: &str, rate_limit: Option<u32>, fifo: bool) -> Api {
    let client = client();
    let base = format!("http://{}", app.addr);
    let admin = app.admin_token.expose().to_owned();
    let (s, t) = call(
        &client,
        Method::POST,
        &format!("{base}/v1/tenants"),
        &admin,
        json!({"name": "load"}).to_string().into_bytes(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let scopes = [
        "webhooks:read",
        "webhooks:write",
        "events:write",
        "events:read",
    ];
    let (s, k) = call(
        &client,
        Method::POST,
        &format!("{base}/v1/api-keys"),
        &admin,
        json!({"tenant": t["id"], "name": "load", "scopes": scopes})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    let key = k["key"].as_str().expect("key").to_owned();
    for _ in 0..webhooks {
        let mut body = json!({"url": url, "event_types": [EVENT_TYPE]});
        if let Some(r) = rate_limit {
            body["rate_limit_per_second"] = json!(r);
        }
        if fifo {
            body["ordering"] = json!("fifo");
        }
        let (s, w) = call(
            &client,
            Method::POST,
            &format!("{base}/v1/webhooks"),
            &key,
            body.to_string().into_bytes(),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{w}");
    }
    Api { client, base, key }
}

fn event_body(i: u64) -> Vec<u8> {
    format!(
        r#"{{"type":"{EVENT_TYPE}","data":{{"t":{},"i":{i},"note":"hookbox load generator payload"}}}}"#,
        micros()
    )
    .into_bytes()
}

/// Sends one event; returns the microseconds until the 202.
async fn send_event(api: &Api, i: u64) -> Option<u64> {
    let start = micros();
    let (s, v) = call(
        &api.client,
        Method::POST,
        &format!("{}/v1/events", api.base),
        &api.key,
        event_body(i),
    )
    .await;
    if s == StatusCode::ACCEPTED {
        Some(micros() - start)
    } else {
        eprintln!("ingest answered {s}: {v}");
        None
    }
}

/// Waits until the receiver has counted `n` requests or `limit` passes.
async fn wait_count(seen: &Seen, n: u64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while seen.count.load(Ordering::Acquire) < n {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    true
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1000.0
}

// ---------------------------------------------------------------- phases

/// Sustained rate: `CLIENTS` concurrent keep-alive clients post `events` events, each
/// matching `fanout` webhooks (FIFO ones when `fifo`); the receiver counts every
/// delivery.
async fn phase_throughput(fanout: usize, events: u64, fifo: bool) -> Value {
    let (rss_base, _) = rss_kib();
    let dir = tempfile::tempdir().expect("temp dir");
    let seen = Arc::new(Seen::default());
    let raddr = start_receiver("127.0.0.1:0".parse().expect("addr"), seen.clone()).await;
    let app = App::build(engine(config(dir.path())).await)
        .await
        .expect("hookbox starts");
    let api = Arc::new(setup(&app, fanout, &format!("http://{raddr}/hook"), None, fifo).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_idle, _) = rss_kib();
    eprintln!("loadgen: hookbox on {}, receiver on {raddr}", app.addr);

    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let start = micros();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (api, next, failed) = (api.clone(), next.clone(), failed.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= events {
                        break;
                    }
                    if send_event(&api, i).await.is_none() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let acked = micros();
    eprintln!(
        "loadgen: {events} events acked in {:.2} s; {} delivered so far",
        (acked - start) as f64 / 1e6,
        seen.count.load(Ordering::Acquire)
    );
    let want = events * fanout as u64;
    let complete = wait_count(&seen, want, Duration::from_secs(600)).await;
    let last = seen.last_us.load(Ordering::Relaxed).max(acked);
    let (_, hwm) = rss_kib();
    let delivered = seen.count.load(Ordering::Acquire);
    let secs = |us: u64| us as f64 / 1e6;
    // The group-commit figures are redb's; PostgreSQL runs report zeros.
    let (commits, jobs, commit_us, job_us) = app.store.redb().map_or((0, 0, 0, 0), |s| {
        let stats = s.writer_stats();
        (
            stats.commits.load(Ordering::Relaxed),
            stats.jobs.load(Ordering::Relaxed),
            stats.commit_micros.load(Ordering::Relaxed),
            stats.job_micros.load(Ordering::Relaxed),
        )
    });
    let out = json!({
        "phase": "throughput",
        "ordering": if fifo { "fifo" } else { "none" },
        "fanout": fanout,
        "events": events,
        "failed_ingests": failed.load(Ordering::Relaxed),
        "ingest_events_per_s": events as f64 / secs(acked - start),
        "delivered": delivered,
        "complete": complete,
        "deliveries_per_s": delivered as f64 / secs(last - start),
        "end_to_end_events_per_s": events as f64 / secs(last - start),
        "drain_after_last_ack_s": secs(last - acked),
        "data_file_bytes": app.store.data_file_size(),
        "commits": commits,
        "jobs_per_commit": jobs as f64 / commits.max(1) as f64,
        "commit_ms_mean": commit_us as f64 / 1000.0 / commits.max(1) as f64,
        "jobs_ms_mean": job_us as f64 / 1000.0 / commits.max(1) as f64,
        "rss_base_kib": rss_base,
        "rss_idle_kib": rss_idle,
        "rss_peak_kib": hwm,
    });
    eprintln!("loadgen: {delivered} delivered; shutting down");
    app.shutdown().await;
    out
}

/// Fixed open-loop rate with one subscription: ingest-to-delivery latency.
async fn phase_latency(rate: u64, secs: u64) -> Value {
    let dir = tempfile::tempdir().expect("temp dir");
    let seen = Arc::new(Seen::default());
    let raddr = start_receiver("127.0.0.1:0".parse().expect("addr"), seen.clone()).await;
    let app = App::build(engine(config(dir.path())).await)
        .await
        .expect("hookbox starts");
    let api = Arc::new(setup(&app, 1, &format!("http://{raddr}/hook"), None, false).await);
    seen.record.store(true, Ordering::Relaxed);
    // The first second warms connections and caches and is not counted.
    let warm = rate;
    let total = rate * (secs + 1);
    let period = Duration::from_nanos(1_000_000_000 / rate);
    let start = tokio::time::Instant::now();
    let mut acks = Vec::with_capacity(total as usize);
    for i in 0..total {
        tokio::time::sleep_until(start + period * i as u32).await;
        let api = api.clone();
        acks.push(tokio::spawn(async move { send_event(&api, i).await }));
    }
    let mut ack_us: Vec<u64> = Vec::with_capacity(acks.len());
    for (i, a) in acks.into_iter().enumerate() {
        if let Ok(Some(us)) = a.await
            && i as u64 >= warm
        {
            ack_us.push(us);
        }
    }
    let complete = wait_count(&seen, total, Duration::from_secs(60)).await;
    let mut lat: Vec<u64> = seen
        .latencies
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(i, _)| *i >= warm)
        .map(|(_, us)| *us)
        .collect();
    lat.sort_unstable();
    ack_us.sort_unstable();
    let (_, hwm) = rss_kib();
    let out = json!({
        "phase": "latency",
        "rate": rate,
        "samples": lat.len(),
        "complete": complete,
        "p50_ms": percentile(&lat, 0.50),
        "p99_ms": percentile(&lat, 0.99),
        "p999_ms": percentile(&lat, 0.999),
        "max_ms": percentile(&lat, 1.0),
        "ack_p50_ms": percentile(&ack_us, 0.50),
        "ack_p99_ms": percentile(&ack_us, 0.99),
        "rss_peak_kib": hwm,
    });
    app.shutdown().await;
    out
}

/// A backlog of `count` pending deliveries (the receiver is down), then a restart.
async fn phase_pending(count: u64) -> Value {
    let (rss_base, _) = rss_kib();
    let dir = tempfile::tempdir().expect("temp dir");
    // A port that is closed now and where the receiver comes up after the restart.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("probe port");
        l.local_addr().expect("addr").port()
    };
    let raddr: SocketAddr = ([127, 0, 0, 1], port).into();
    let cfg = engine(config(dir.path())).await;
    let app = App::build(cfg.clone()).await.expect("hookbox starts");
    // One webhook limited to 1 request/s: the backlog stays pending (due now) instead
    // of churning through failed attempts against the closed port.
    let api = Arc::new(setup(&app, 1, &format!("http://{raddr}/hook"), Some(1), false).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_idle, _) = rss_kib();

    let batches = count.div_ceil(1000);
    let next = Arc::new(AtomicU64::new(0));
    let start = micros();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (api, next) = (api.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    if b >= batches {
                        break;
                    }
                    let events: Vec<String> = (0..1000)
                        .map(|j| String::from_utf8_lossy(&event_body(b * 1000 + j)).into_owned())
                        .collect();
                    let body = format!(r#"{{"events":[{}]}}"#, events.join(","));
                    let (s, v) = call(
                        &api.client,
                        Method::POST,
                        &format!("{}/v1/events/batch", api.base),
                        &api.key,
                        body.into_bytes(),
                    )
                    .await;
                    if !s.is_success() {
                        eprintln!("batch answered {s}: {v}");
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let ingest_s = (micros() - start) as f64 / 1e6;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pending = app.store.due_count().await.unwrap_or(0);
    let (rss_pending, hwm) = rss_kib();
    let threads = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:").map(|v| v.trim().to_owned()))
        .unwrap_or_default();
    let file = app.store.data_file_size().unwrap_or(0);

    let t0 = Instant::now();
    app.shutdown().await;
    let shutdown_s = t0.elapsed().as_secs_f64();
    let seen = Arc::new(Seen::default());
    start_receiver(raddr, seen.clone()).await;
    let t0 = Instant::now();
    let app = App::build(cfg).await.expect("hookbox restarts");
    let build_s = t0.elapsed().as_secs_f64();
    let first = wait_count(&seen, 1, Duration::from_secs(120)).await;
    let first_s = t0.elapsed().as_secs_f64();
    app.shutdown().await;
    json!({
        "phase": "pending",
        "events": batches * 1000,
        "pending": pending,
        "batch_ingest_events_per_s": (batches * 1000) as f64 / ingest_s,
        "rss_base_kib": rss_base,
        "rss_idle_kib": rss_idle,
        "rss_pending_kib": rss_pending,
        "rss_peak_kib": hwm,
        "threads": threads,
        "data_file_bytes": file,
        "data_file_mib_per_million": file as f64 / 1048576.0 * 1e6 / pending.max(1) as f64,
        "shutdown_s": shutdown_s,
        "restart_build_s": build_s,
        "restart_first_delivery_s": if first { first_s } else { f64::NAN },
    })
}

// ---------------------------------------------------------------- orchestration

fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn run_child(args: &[&str]) -> Value {
    let exe = std::env::current_exe().expect("current exe");
    eprintln!("loadgen: running phase {}", args.join(" "));
    let out = std::process::Command::new(exe)
        .arg("--phase")
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("child runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| json!({"phase": args.join(" "), "error": format!("{:?}", out.status)}));
    eprintln!("loadgen: {v}");
    v
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(f64::NAN)
}

fn print_table(mode: &str, results: &[Value]) {
    let find = |phase: &str, key: &str, val: u64| {
        results
            .iter()
            .find(|r| {
                r["phase"] == phase && r[key].as_u64() == Some(val) && r["ordering"] != "fifo"
            })
            .cloned()
            .unwrap_or(Value::Null)
    };
    let fifo = results
        .iter()
        .find(|r| r["ordering"] == "fifo")
        .cloned()
        .unwrap_or(Value::Null);
    let t1 = find("throughput", "fanout", 1);
    let t10 = find("throughput", "fanout", 10);
    let l50 = find("latency", "rate", 50);
    let l1k = find("latency", "rate", 1000);
    let p = results
        .iter()
        .find(|r| r["phase"] == "pending")
        .cloned()
        .unwrap_or(Value::Null);
    let mib = |kib: f64| kib / 1024.0;
    let rows: Vec<(String, String, &str)> = vec![
        (
            format!("ingest, 1 sub, {} events (events/s 202)", t1["events"]),
            format!("{:.0}", f(&t1, "ingest_events_per_s")),
            "",
        ),
        (
            "end to end, 1 sub (events/s delivered)".into(),
            format!("{:.0}", f(&t1, "end_to_end_events_per_s")),
            "15,000",
        ),
        (
            "drain after last ack, 1 sub (s)".into(),
            format!("{:.2}", f(&t1, "drain_after_last_ack_s")),
            "",
        ),
        (
            format!(
                "end to end, 1 FIFO sub, {} events (events/s delivered)",
                fifo["events"]
            ),
            format!("{:.0}", f(&fifo, "end_to_end_events_per_s")),
            "one request at a time",
        ),
        (
            "drain after last ack, 1 FIFO sub (s)".into(),
            format!("{:.2}", f(&fifo, "drain_after_last_ack_s")),
            "",
        ),
        (
            format!("ingest, 10 subs, {} events (events/s 202)", t10["events"]),
            format!("{:.0}", f(&t10, "ingest_events_per_s")),
            "",
        ),
        (
            "end to end, 10 subs (events/s delivered)".into(),
            format!("{:.0}", f(&t10, "end_to_end_events_per_s")),
            "4,000",
        ),
        (
            "deliveries/s, 10 subs".into(),
            format!("{:.0}", f(&t10, "deliveries_per_s")),
            "40,000",
        ),
        (
            "drain after last ack, 10 subs (s)".into(),
            format!("{:.2}", f(&t10, "drain_after_last_ack_s")),
            "",
        ),
        (
            "latency @50 ev/s p50 / p99 / p99.9 (ms)".into(),
            format!(
                "{:.2} / {:.2} / {:.2}",
                f(&l50, "p50_ms"),
                f(&l50, "p99_ms"),
                f(&l50, "p999_ms")
            ),
            "<=1 / <=3",
        ),
        (
            "latency @1000 ev/s p50 / p99 / p99.9 (ms)".into(),
            format!(
                "{:.2} / {:.2} / {:.2}",
                f(&l1k, "p50_ms"),
                f(&l1k, "p99_ms"),
                f(&l1k, "p999_ms")
            ),
            "p99 <=5",
        ),
        (
            "202 ack @50 ev/s p50 / p99 (ms)".into(),
            format!(
                "{:.2} / {:.2}",
                f(&l50, "ack_p50_ms"),
                f(&l50, "ack_p99_ms")
            ),
            "",
        ),
        (
            "RSS idle, process incl. generator (MiB)".into(),
            format!(
                "{:.1} (generator alone {:.1})",
                mib(f(&t1, "rss_idle_kib")),
                mib(f(&t1, "rss_base_kib"))
            ),
            "<=30",
        ),
        (
            "peak RSS, 1 sub / 10 subs run (MiB)".into(),
            format!(
                "{:.1} / {:.1}",
                mib(f(&t1, "rss_peak_kib")),
                mib(f(&t10, "rss_peak_kib"))
            ),
            "",
        ),
        (
            format!("batch ingest, {} events (events/s)", p["events"]),
            format!("{:.0}", f(&p, "batch_ingest_events_per_s")),
            "100,000",
        ),
        (
            format!("RSS with {} pending (MiB)", p["pending"]),
            format!(
                "{:.1} (peak {:.1})",
                mib(f(&p, "rss_pending_kib")),
                mib(f(&p, "rss_peak_kib"))
            ),
            "<=100 @1M",
        ),
        (
            "data file per million deliveries (MiB)".into(),
            format!("{:.0}", f(&p, "data_file_mib_per_million")),
            "",
        ),
        (
            "restart: App::build / first delivery (s)".into(),
            format!(
                "{:.3} / {:.3}",
                f(&p, "restart_build_s"),
                f(&p, "restart_first_delivery_s")
            ),
            "<1 @1M",
        ),
    ];
    println!("\nhookbox loadgen ({mode})\n");
    println!("| metric | measured | target |\n|---|---|---|");
    for (m, v, t) in rows {
        println!("| {m} | {v} | {t} |");
    }
}

#[tokio::main]
async fn main() {
    micros();
    // `RUST_LOG=hookbox=debug` shows hookbox's own log on stderr.
    if let Ok(filter) = std::env::var("RUST_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(phase) = arg_value(&args, "--phase") {
        let n = |name: &str| {
            arg_value(&args, name)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let out = match phase.as_str() {
            "throughput" => {
                let fifo = arg_value(&args, "--ordering").as_deref() == Some("fifo");
                phase_throughput(n("--fanout") as usize, n("--events"), fifo).await
            }
            "latency" => phase_latency(n("--rate"), n("--secs")).await,
            "pending" => phase_pending(n("--count")).await,
            other => json!({"error": format!("unknown phase {other}")}),
        };
        println!("{out}");
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let (e1, efifo, e10, s50, s1k, pending) = if quick {
        ("20000", "5000", "5000", "10", "5", "100000")
    } else {
        ("200000", "20000", "40000", "40", "20", "1000000")
    };
    let results = vec![
        run_child(&["throughput", "--fanout", "1", "--events", e1]),
        run_child(&[
            "throughput",
            "--fanout",
            "1",
            "--events",
            efifo,
            "--ordering",
            "fifo",
        ]),
        run_child(&["throughput", "--fanout", "10", "--events", e10]),
        run_child(&["latency", "--rate", "50", "--secs", s50]),
        run_child(&["latency", "--rate", "1000", "--secs", s1k]),
        run_child(&["pending", "--count", pending]),
    ];
    let mode = if quick { "quick" } else { "full" };
    print_table(mode, &results);
    if let Some(path) = arg_value(&args, "--json") {
        let doc = json!({"mode": mode, "results": results});
        std::fs::write(&path, serde_json::to_vec_pretty(&doc).expect("json")).expect("write json");
        eprintln!("loadgen: wrote {path}");
    }
}
