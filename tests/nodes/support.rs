//! What the nodes tests share: the settings every node of a test has, in-process
//! nodes on one database, waits on what a receiver got, ingest at a node, and the
//! smallest client for a node run as its own process. Asserts only on waits that
//! ran out.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use hookbox::config::{Backend, Config, SmtpConfig, SmtpTls};
use hookbox::model::Secret;
use hookbox::store::pg::PgStore;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Tenant, TestApp};
use crate::process::Process;
use crate::receiver::{Received, TestReceiver};
use crate::smtp::SmtpSink;

/// base64 of 32 bytes of 9: every node of one test shares it (secrets are sealed).
pub const MASTER_KEY: &str = "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=";
pub const ADMIN: &str = "nodes-test-admin-token";
/// How long a claimed delivery stays a node's: 3 x the tests' request timeout.
pub const LEASE: Duration = Duration::from_secs(6);
pub const WAIT: Duration = Duration::from_secs(60);

/// The settings every node of a test shares.
pub fn on_postgres(c: &mut Config, url: &str) {
    c.store.backend = Backend::Postgres;
    c.store.postgres_url = Some(Secret::new(url.to_owned()));
    c.store.postgres_pool = 6;
    c.store.lease = LEASE;
    c.master_key = Some(Secret::new(MASTER_KEY.to_owned()));
    c.admin_token = Some(Secret::new(ADMIN.to_owned()));
}

/// One in-process node on the database at `url`.
pub async fn node(url: &str) -> TestApp {
    node_with(url, |_| {}).await
}

pub async fn node_with(url: &str, f: impl FnOnce(&mut Config)) -> TestApp {
    TestApp::spawn_with(|c| {
        on_postgres(c, url);
        f(c);
    })
    .await
}

/// Waits until `node` knows the tenant's key and at least one of its webhooks (the
/// changes reached it): an event it accepts before it knows a webhook has no
/// delivery for it, rightly.
pub async fn wait_known(node: &TestApp, t: &Tenant) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (s, list) = node.as_tenant(t, Method::GET, "/v1/webhooks", None).await;
        if s == StatusCode::OK && list["data"].as_array().is_some_and(|l| !l.is_empty()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the key or webhook never reached the node"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Event ids of the deliveries `rx` got on `path`, with how often each came.
pub fn delivered(got: &[Received], path: &str) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for r in got.iter().filter(|r| r.path == path) {
        let id = r.header("webhook-id").unwrap_or_default().to_owned();
        *seen.entry(id).or_insert(0) += 1;
    }
    seen
}

/// Waits until every id in `want` reached `path`; returns what arrived.
pub async fn wait_all(
    rx: &TestReceiver,
    path: &str,
    want: &HashSet<String>,
) -> HashMap<String, usize> {
    wait_all_or_explain(rx, path, want, None).await
}

/// [`wait_all`]; when the wait runs out and `explain` is given, the failure shows
/// the missing events' deliveries with their attempts, as that node reads them.
pub async fn wait_all_or_explain(
    rx: &TestReceiver,
    path: &str,
    want: &HashSet<String>,
    explain: Option<(&TestApp, &Tenant)>,
) -> HashMap<String, usize> {
    let deadline = Instant::now() + WAIT;
    loop {
        let seen = delivered(&rx.received(), path);
        let missing: Vec<&String> = want.iter().filter(|id| !seen.contains_key(*id)).collect();
        if missing.is_empty() {
            return seen;
        }
        if Instant::now() >= deadline {
            let mut why = String::new();
            if let Some((node, t)) = explain {
                for id in missing.iter().take(5) {
                    let (s, e) = node
                        .as_tenant(t, Method::GET, &format!("/v1/events/{id}"), None)
                        .await;
                    why.push_str(&format!("\nGET /v1/events/{id}: {s} {e}"));
                    for d in e["deliveries"].as_array().into_iter().flatten() {
                        let did = d["id"].as_str().unwrap_or_default();
                        let (_, detail) = node
                            .as_tenant(t, Method::GET, &format!("/v1/deliveries/{did}"), None)
                            .await;
                        why.push_str(&format!("\n{id}: {detail}"));
                    }
                }
            }
            panic!(
                "{} of {} acknowledged events never arrived{why}",
                missing.len(),
                want.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Ingests `n` events at `node`, returning the ids acknowledged with 202.
pub async fn ingest(node: &TestApp, t: &Tenant, n: usize, tag: &str) -> Vec<String> {
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

/// The smallest client for the process node: one event per call.
pub struct Client {
    base: String,
    http: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
}

pub fn reqwest_like(base: &str) -> Client {
    Client {
        base: base.to_owned(),
        http: hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http(),
    }
}

impl Client {
    /// Whether the node knows the tenant's key and at least one of its webhooks.
    pub async fn knows_webhooks(&self, t: &Tenant) -> bool {
        use http_body_util::BodyExt;
        let req = http::Request::get(format!("{}/v1/webhooks", self.base))
            .header("authorization", format!("Bearer {}", t.key))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request");
        let Ok(resp) = self.http.request(req).await else {
            return false;
        };
        if resp.status() != StatusCode::OK {
            return false;
        }
        let Ok(body) = resp.into_body().collect().await else {
            return false;
        };
        let v: Value = serde_json::from_slice(&body.to_bytes()).unwrap_or(Value::Null);
        v["data"].as_array().is_some_and(|l| !l.is_empty())
    }

    /// Sends event `n`; its id when the node answered 202, `None` otherwise.
    pub async fn event(&self, t: &Tenant, n: usize) -> Option<String> {
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

/// A node as its own process (the release binary), so it can be SIGKILLed.
pub struct ProcessNode {
    /// The process (killed when dropped).
    pub process: Process,
    /// `http://127.0.0.1:port`.
    pub base: String,
    _dir: tempfile::TempDir,
}

/// Starts a node as its own process on the database at `url`, with the settings
/// every node of a test shares; returns once it listens.
pub fn process_node(url: &str) -> ProcessNode {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("hookbox.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\n\
             [log]\nlevel = \"warn\"\n\
             [security]\nrequire_https = false\nallow_networks = [\"127.0.0.0/8\"]\n\
             [delivery]\nconnect_timeout = \"1s\"\nrequest_timeout = \"2s\"\nretry_schedule = [\"0s\", \"50ms\", \"100ms\"]\n\
             [store]\nbackend = \"postgres\"\npostgres_url = \"{url}\"\npostgres_pool = 6\n\
             lease = \"{}s\"\n",
            LEASE.as_secs()
        ),
    )
    .expect("write config");
    let data_dir = dir.path().to_string_lossy().into_owned();
    let mut process = Process::new(config, dir.path().join("hookbox.log"))
        .env("HOOKBOX_DATA_DIR", &data_dir)
        .env("HOOKBOX_MASTER_KEY", MASTER_KEY)
        .env("HOOKBOX_ADMIN_TOKEN", ADMIN);
    process.start();
    let base = process.wait_listening(Duration::from_secs(20));
    ProcessNode {
        process,
        base,
        _dir: dir,
    }
}

/// Waits until `node`'s registry shows webhook `id` (the change reached it).
pub async fn wait_webhook(node: &TestApp, t: &Tenant, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (s, _) = node
            .as_tenant(t, Method::GET, &format!("/v1/webhooks/{id}"), None)
            .await;
        if s == StatusCode::OK {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "webhook {id} never reached the node"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Failure emails go to the loopback SMTP sink `sink`.
pub fn with_smtp(c: &mut Config, sink: &SmtpSink) {
    c.smtp = Some(SmtpConfig {
        host: "127.0.0.1".into(),
        port: sink.port(),
        tls: SmtpTls::None,
        username: None,
        password: None,
        from: "hookbox@example.com".into(),
    });
}

/// The database at `url` opened directly (as one more node would), to read what
/// the API does not show (a webhook's version, the email throttle).
pub async fn open_store(url: &str) -> PgStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let cipher = hookbox::secrets::load_master_key(Some(&Secret::new(MASTER_KEY)), dir.path())
        .expect("the test master key");
    PgStore::open(url, 2, cipher)
        .await
        .expect("open the database")
}

/// The deliveries of webhook `id` in `status` (at most 100), as `node` lists them.
pub async fn deliveries_in(node: &TestApp, t: &Tenant, id: &str, status: &str) -> Vec<Value> {
    let (s, list) = node
        .as_tenant(
            t,
            Method::GET,
            &format!("/v1/webhooks/{id}/deliveries?status={status}&limit=100"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    list["data"].as_array().cloned().unwrap_or_default()
}

/// The events of type `ty` (at most 100), newest first, as `node` lists them.
pub async fn events_of_type(node: &TestApp, t: &Tenant, ty: &str) -> Vec<Value> {
    let (s, list) = node
        .as_tenant(
            t,
            Method::GET,
            &format!("/v1/events?type={ty}&limit=100"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    list["data"].as_array().cloned().unwrap_or_default()
}

/// The value of the unlabelled metric `name` in `node`'s `/metrics` (0 when absent).
pub async fn metric(node: &TestApp, name: &str) -> u64 {
    use http_body_util::BodyExt;
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = http::Request::get(format!("{}/metrics", node.base))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(10), http.request(req))
        .await
        .expect("/metrics answers within 10 s")
        .expect("/metrics answers");
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&body);
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}
