//! `TestApp`: the real hookbox (`App::build`) on port 0 with a temporary data dir,
//! and a small HTTP client to talk to it as a user would. Every answer the client
//! gets is checked against the live `/openapi.json` (`contract.rs`).

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use hookbox::app::App;
use hookbox::config::{Backend, Config, EventTypeSeed};
use hookbox::model::Secret;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::contract::Contract;

/// The event types every test tenant starts with.
pub const SEED_TYPES: &[&str] = &[
    "PROVIDER_CRED_APPROVED",
    "PROVIDER_CRED_DENIED",
    "PATIENT_CREATED",
    "shift.created",
    "shift.report.created",
    "validation_request.approved",
    "hookbox.webhook.disabled",
    "hookbox.delivery.exhausted",
];

/// A millisecond retry schedule so retry tests finish quickly.
pub fn fast_schedule() -> Vec<Duration> {
    [0u64, 20, 40, 60]
        .iter()
        .map(|ms| Duration::from_millis(*ms))
        .collect()
}

/// The configuration tests start from: loopback allowed, http allowed, fast retries.
pub fn test_config(dir: PathBuf) -> Config {
    let mut c = Config {
        listen: "127.0.0.1:0".parse().expect("literal address"),
        data_dir: dir,
        ..Config::default()
    };
    c.security.require_https = false;
    c.security.allow_networks = vec![
        "127.0.0.0/8".parse().expect("literal cidr"),
        "::1/128".parse().expect("literal cidr"),
    ];
    c.delivery.retry_schedule = fast_schedule();
    c.delivery.jitter = 0.0;
    c.delivery.connect_timeout = Duration::from_secs(1);
    c.delivery.request_timeout = Duration::from_secs(2);
    c.event_types = SEED_TYPES
        .iter()
        .filter(|t| !t.starts_with("hookbox."))
        .map(|t| EventTypeSeed {
            name: (*t).to_owned(),
            description: None,
        })
        .collect();
    c
}

/// Which engine the suite runs on: `HOOKBOX_TEST_BACKEND=postgres` runs every
/// `TestApp` on its own database of the throwaway cluster (`pg_cluster`), and
/// `pgbouncer` on one reached through PgBouncer in transaction mode (`pg_bouncer`,
/// with unnamed statements and the listener connected to the cluster directly), so
/// the one API and delivery suite covers both engines. A test about one engine's own
/// mechanics pins it in its `spawn_with` closure (`c.store.backend = Backend::Redb`).
pub fn postgres_under_test() -> bool {
    matches!(
        backend_under_test().as_deref(),
        Some("postgres" | "pgbouncer")
    )
}

fn backend_under_test() -> Option<String> {
    std::env::var("HOOKBOX_TEST_BACKEND")
        .ok()
        .map(|b| b.trim().to_ascii_lowercase())
}

/// Points `config` at the engine under test.
async fn engine_under_test(config: &mut Config) {
    let url = match backend_under_test().as_deref() {
        Some("postgres") => crate::pg_cluster::shared().database().await,
        Some("pgbouncer") => {
            let (through, direct) = crate::pg_bouncer::shared().database().await;
            config.store.postgres_statements = hookbox::store::pg::Statements::Unnamed;
            config.store.postgres_listen_url = Some(Secret::new(direct));
            through
        }
        _ => return,
    };
    config.store.backend = Backend::Postgres;
    config.store.postgres_url = Some(Secret::new(url));
    config.store.postgres_pool = 8;
    // At least 3 x the tests' request timeout (2 s).
    config.store.lease = Duration::from_secs(6);
}

/// A running hookbox for one test.
pub struct TestApp {
    pub app: Option<App>,
    pub base: String,
    pub admin: String,
    pub config: Config,
    pub dir: tempfile::TempDir,
    client: Client<HttpConnector, Full<Bytes>>,
    contract: tokio::sync::OnceCell<Contract>,
}

/// A tenant and an API key with every scope.
pub struct Tenant {
    pub id: String,
    pub key: String,
}

impl TestApp {
    /// Starts hookbox with the test configuration.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// Starts hookbox with the test configuration changed by `f`.
    pub async fn spawn_with(f: impl FnOnce(&mut Config)) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(dir.path().to_owned());
        engine_under_test(&mut config).await;
        f(&mut config);
        Self::start(config, dir).await
    }

    /// Starts hookbox on redb whatever engine the suite runs on: for tests of the
    /// redb file itself (its bytes, disk faults, upgrades of old files).
    pub async fn spawn_redb_with(f: impl FnOnce(&mut Config)) -> TestApp {
        Self::spawn_with(|c| {
            c.store.backend = Backend::Redb;
            f(c);
        })
        .await
    }

    async fn start(config: Config, dir: tempfile::TempDir) -> TestApp {
        let app = App::build(config.clone()).await.expect("hookbox starts");
        let base = format!("http://{}", app.addr);
        let admin = app.admin_token.expose().to_owned();
        TestApp {
            app: Some(app),
            base,
            admin,
            config,
            dir,
            client: Client::builder(TokioExecutor::new()).build_http(),
            contract: tokio::sync::OnceCell::new(),
        }
    }

    /// Stops hookbox gracefully and starts it again on the same data dir (and port 0).
    pub async fn restart(mut self) -> TestApp {
        if let Some(app) = self.app.take() {
            app.shutdown().await;
        }
        let TestApp { config, dir, .. } = self;
        Self::start(config, dir).await
    }

    /// Stops hookbox gracefully.
    pub async fn stop(&mut self) {
        if let Some(app) = self.app.take() {
            app.shutdown().await;
        }
    }

    /// The redb data file.
    pub fn data_file(&self) -> PathBuf {
        self.dir.path().join(hookbox::app::DATA_FILE)
    }

    /// Sends a request with raw body bytes and headers; returns status and JSON (or
    /// `Value::Null` for an empty or non-JSON body). The answer is checked against
    /// the live `/openapi.json`: a test fails when the server answers outside it.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let (status, value, len) = self.send(method.clone(), path, headers, body).await;
        let contract = self
            .contract
            .get_or_init(|| async {
                let (s, doc, _) = self
                    .send(Method::GET, "/openapi.json", &[], Vec::new())
                    .await;
                assert_eq!(s, StatusCode::OK, "{doc}");
                Contract::new(doc)
            })
            .await;
        if let Err(e) = contract.check(&method, path, status, &value, len) {
            panic!("the answer breaks the API document: {e}");
        }
        (status, value)
    }

    /// [`TestApp::raw`] without the document check; also returns the body length.
    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (StatusCode, Value, usize) {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .expect("valid request");
        let resp = tokio::time::timeout(Duration::from_secs(20), self.client.request(req))
            .await
            .expect("answer within 20 s")
            .expect("request succeeds");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value, bytes.len())
    }

    /// A JSON request with a bearer token and optional extra headers.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let auth = format!("Bearer {token}");
        let mut h: Vec<(&str, &str)> = vec![("authorization", auth.as_str())];
        h.extend_from_slice(headers);
        let bytes = match body {
            Some(b) => {
                h.push(("content-type", "application/json"));
                serde_json::to_vec(&b).expect("json")
            }
            None => Vec::new(),
        };
        self.raw(method, path, &h, bytes).await
    }

    /// An admin call.
    pub async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call(method, path, &self.admin.clone(), &[], body)
            .await
    }

    /// A call with a tenant's key.
    pub async fn as_tenant(
        &self,
        t: &Tenant,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call(method, path, &t.key, &[], body).await
    }

    /// Creates a tenant and a key with the given scopes.
    pub async fn tenant_with_scopes(&self, name: &str, scopes: &[&str]) -> Tenant {
        let (s, t) = self
            .admin(Method::POST, "/v1/tenants", Some(json!({"name": name})))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{t}");
        let id = t["id"].as_str().expect("tenant id").to_owned();
        let (s, k) = self
            .admin(
                Method::POST,
                "/v1/api-keys",
                Some(json!({"tenant": id, "name": "test", "scopes": scopes})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{k}");
        Tenant {
            id,
            key: k["key"].as_str().expect("key").to_owned(),
        }
    }

    /// Creates a tenant and a key with every scope.
    pub async fn tenant(&self, name: &str) -> Tenant {
        self.tenant_with_scopes(
            name,
            &[
                "webhooks:read",
                "webhooks:write",
                "events:write",
                "events:read",
            ],
        )
        .await
    }

    /// Registers a webhook and returns its JSON (with secrets revealed).
    pub async fn webhook(&self, t: &Tenant, body: Value) -> Value {
        let (s, w) = self
            .as_tenant(t, Method::POST, "/v1/webhooks", Some(body))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{w}");
        w
    }

    /// Ingests one event; asserts 202 and returns the answer.
    pub async fn event(&self, t: &Tenant, body: Value) -> Value {
        let (s, e) = self
            .as_tenant(t, Method::POST, "/v1/events", Some(body))
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{e}");
        e
    }

    /// Polls a delivery until `pred` holds, waiting on hookbox's own state rather
    /// than a fixed sleep; fails after `timeout`.
    pub async fn wait_delivery(
        &self,
        t: &Tenant,
        delivery_id: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (_, d) = self
                .as_tenant(
                    t,
                    Method::GET,
                    &format!("/v1/deliveries/{delivery_id}"),
                    None,
                )
                .await;
            if pred(&d) {
                return d;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "delivery {delivery_id} did not reach the expected state: {d}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The delivery ids of an event.
    pub async fn deliveries_of(&self, t: &Tenant, event_id: &str) -> Vec<Value> {
        let (s, e) = self
            .as_tenant(t, Method::GET, &format!("/v1/events/{event_id}"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{e}");
        e["deliveries"].as_array().cloned().unwrap_or_default()
    }
}
