//! Many hookbox nodes on one PostgreSQL (DESIGN.md section 7, issue #16), each a
//! real server on port 0 against a real cluster (`pg_cluster`), delivering over
//! loopback to a real receiver: events ingested at any node are delivered; a change
//! made on one node is in force on another within a second; a rate limit holds
//! across nodes; a node killed with SIGKILL mid-flight loses no acknowledged event;
//! and a database that goes away for a few seconds costs 503s, never an event.

#[allow(dead_code)]
#[path = "it/contract.rs"]
mod contract;
#[allow(dead_code, clippy::field_reassign_with_default)]
#[path = "it/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "it/pg_cluster.rs"]
mod pg_cluster;
#[allow(dead_code)]
#[path = "it/receiver.rs"]
mod receiver;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hookbox::config::{Backend, Config};
use hookbox::model::Secret;
use http::{Method, StatusCode};
use serde_json::json;

use helpers::{Tenant, TestApp};
use receiver::{Received, Reply, TestReceiver};

/// base64 of 32 bytes of 9: every node of one test shares it (secrets are sealed).
const MASTER_KEY: &str = "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=";
const ADMIN: &str = "nodes-test-admin-token";
/// How long a claimed delivery stays a node's: 3 x the tests' request timeout.
const LEASE: Duration = Duration::from_secs(6);
const WAIT: Duration = Duration::from_secs(60);

/// The settings every node of a test shares.
fn on_postgres(c: &mut Config, url: &str) {
    c.store.backend = Backend::Postgres;
    c.store.postgres_url = Some(Secret::new(url.to_owned()));
    c.store.postgres_pool = 6;
    c.store.lease = LEASE;
    c.master_key = Some(Secret::new(MASTER_KEY.to_owned()));
    c.admin_token = Some(Secret::new(ADMIN.to_owned()));
}

/// One in-process node on the database at `url`.
async fn node(url: &str) -> TestApp {
    node_with(url, |_| {}).await
}

async fn node_with(url: &str, f: impl FnOnce(&mut Config)) -> TestApp {
    TestApp::spawn_with(|c| {
        on_postgres(c, url);
        f(c);
    })
    .await
}

/// Waits until `node` knows the tenant's key (the change reached it).
async fn wait_known(node: &TestApp, t: &Tenant) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (s, _) = node.as_tenant(t, Method::GET, "/v1/webhooks", None).await;
        if s == StatusCode::OK {
            return;
        }
        assert!(Instant::now() < deadline, "the key never reached the node");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Event ids of the deliveries `rx` got on `path`, with how often each came.
fn delivered(got: &[Received], path: &str) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for r in got.iter().filter(|r| r.path == path) {
        let id = r.header("webhook-id").unwrap_or_default().to_owned();
        *seen.entry(id).or_insert(0) += 1;
    }
    seen
}

/// Waits until every id in `want` reached `path`; returns what arrived.
async fn wait_all(rx: &TestReceiver, path: &str, want: &HashSet<String>) -> HashMap<String, usize> {
    let deadline = Instant::now() + WAIT;
    loop {
        let seen = delivered(&rx.received(), path);
        let missing = want.iter().filter(|id| !seen.contains_key(*id)).count();
        if missing == 0 {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} acknowledged events never arrived",
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Ingests `n` events at `node`, returning the ids acknowledged with 202.
async fn ingest(node: &TestApp, t: &Tenant, n: usize, tag: &str) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let (s, e) = node
            .as_tenant(
                t,
                Method::POST,
                "/v1/events",
                Some(json!({"type": "shift.created", "data": {"tag": tag, "n": i}})),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{e}");
        ids.push(e["id"].as_str().expect("event id").to_owned());
    }
    ids
}

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
    // window of T seconds; three nodes each admitting RATE/s would break it.
    for (i, start) in at.iter().enumerate() {
        let within = at[i..]
            .iter()
            .take_while(|t| t.duration_since(*start) < Duration::from_secs(1))
            .count();
        assert!(
            within <= 2 * RATE,
            "{within} deliveries within one second from delivery {i}"
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

/// A node as its own process (the release binary), so it can be SIGKILLed.
struct Process {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    fn start(url: &str) -> Process {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("hookbox.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\n\
                 [security]\nrequire_https = false\nallow_networks = [\"127.0.0.0/8\"]\n\
                 [delivery]\nconnect_timeout = \"1s\"\nrequest_timeout = \"2s\"\nretry_schedule = [\"0s\", \"50ms\", \"100ms\"]\n\
                 [store]\nbackend = \"postgres\"\npostgres_url = \"{url}\"\npostgres_pool = 6\n\
                 lease = \"{}s\"\n",
                LEASE.as_secs()
            ),
        )
        .expect("write config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_hookbox"))
            .arg("--config")
            .arg(&config)
            .env("HOOKBOX_DATA_DIR", dir.path())
            .env("HOOKBOX_MASTER_KEY", MASTER_KEY)
            .env("HOOKBOX_ADMIN_TOKEN", ADMIN)
            .env("HOOKBOX_LOG_LEVEL", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start hookbox");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("hookbox exited before listening")
                .expect("read stdout");
            if let Some(addr) = line.strip_prefix("hookbox: listening on ") {
                break addr.trim().to_owned();
            }
        };
        Process {
            child,
            base,
            _dir: dir,
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_flight_loses_no_acknowledged_event() {
    let url = pg_cluster::shared().database().await;
    let (a, c) = (node(&url).await, node(&url).await);
    let mut b = Process::start(&url);
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
    b.kill();
    let killed = Instant::now();
    let seen = wait_all(&rx, "/kill", &acked).await;
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    println!(
        "node B killed with {} of 60 delivered; the rest delivered by A and C within {:?}, {duplicates} duplicates",
        delivered(&rx.received(), "/kill").len().min(60),
        killed.elapsed()
    );
}

/// The smallest client for the process node: one event per call.
struct Client {
    base: String,
    http: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
}

fn reqwest_like(base: &str) -> Client {
    Client {
        base: base.to_owned(),
        http: hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http(),
    }
}

impl Client {
    /// Sends event `n`; its id when the node answered 202, `None` otherwise.
    async fn event(&self, t: &Tenant, n: usize) -> Option<String> {
        use http_body_util::BodyExt;
        let body = json!({"type": "shift.created", "data": {"n": n}}).to_string();
        let req = http::Request::post(format!("{}/v1/events", self.base))
            .header("authorization", format!("Bearer {}", t.key))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .expect("request");
        let resp = self.http.request(req).await.ok()?;
        if resp.status() != StatusCode::ACCEPTED {
            return None;
        }
        let bytes = resp.into_body().collect().await.ok()?.to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        v["id"].as_str().map(str::to_owned)
    }
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
        let (s, _) = app.admin(Method::GET, "/readyz", None).await;
        saw_unready |= s == StatusCode::SERVICE_UNAVAILABLE;
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
    let seen = wait_all(&rx, "/outage", &acked).await;
    println!(
        "outage: {refused} ingests refused with 503, {} acknowledged and all delivered",
        seen.len()
    );
}
