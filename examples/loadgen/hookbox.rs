//! hookbox as the benchmark runs it: one or more `App`s, each on its own tokio
//! runtime whose worker and blocking threads are named `hookbox-rt` (the redb writer
//! is `hookbox-writer`), so their CPU can be read apart from the generator's and the
//! receiver's; on PostgreSQL a fresh database per phase, shared by every node. It
//! sets up a tenant, key and webhooks over the real API; it never reads hookbox's
//! internals beyond the store's public figures.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hookbox::app::App;
use hookbox::config::{Backend, Config, EventTypeSeed};
use hookbox::model::Secret;
use http::{Method, StatusCode};
use serde_json::json;
use tokio::runtime::Runtime;

use crate::common::{Api, EVENT_TYPE, call, client};
use crate::measure::parent_of;

/// The CPU-accounting prefix of hookbox's threads (`hookbox-rt`, `hookbox-writer`).
pub const THREADS: &str = "hookbox";
/// Shared by every node of a phase (secrets are sealed with it): base64 of 32 x 9.
const MASTER_KEY: &str = "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=";
const ADMIN: &str = "loadgen-admin-token";

/// The PostgreSQL database a phase runs on.
#[derive(Clone)]
pub struct Pg {
    /// The phase's fresh database.
    pub url: String,
    /// The cluster's postmaster (for its CPU figures), when it could be found.
    pub postmaster: Option<i64>,
}

/// With `HOOKBOX_LOADGEN_POSTGRES` (the URL of a PostgreSQL server's maintenance
/// database, e.g. `postgres://postgres@127.0.0.1:5432/postgres`), a fresh database
/// for this phase; None runs on redb. The databases of earlier phases that nobody
/// uses any more are dropped first: a phase writes hundreds of megabytes, and
/// runs that each left theirs behind filled the disk and slowed the cluster.
pub async fn postgres() -> Option<Pg> {
    let admin = std::env::var("HOOKBOX_LOADGEN_POSTGRES").ok()?;
    let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .expect("connect to HOOKBOX_LOADGEN_POSTGRES");
    tokio::spawn(connection);
    let old = client
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'loadgen\\_%'",
            &[],
        )
        .await
        .expect("list the databases of earlier phases");
    for row in old {
        let name: String = row.get(0);
        // One still in use (a phase running elsewhere) refuses, and stays.
        let _ = client
            .batch_execute(&format!("DROP DATABASE \"{name}\""))
            .await;
    }
    let name = format!("loadgen_{}_{}", std::process::id(), rand::random::<u32>());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create the phase's database");
    // Our backend's parent is the postmaster of the cluster every node will use.
    let backend: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pg_backend_pid")
        .get(0);
    let (base, _) = admin.rsplit_once('/').expect("a URL with a database name");
    Some(Pg {
        url: format!("{base}/{name}"),
        postmaster: parent_of(i64::from(backend)),
    })
}

/// hookbox's config for one node: data in `dir`, loopback receivers allowed, the
/// benchmark's event type, and the shared database when on PostgreSQL.
pub fn config(dir: &std::path::Path, pg: Option<&Pg>) -> Config {
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
    if let Some(pg) = pg {
        c.store.backend = Backend::Postgres;
        c.store.postgres_url = Some(Secret::new(pg.url.clone()));
        // `HOOKBOX_LOADGEN_STATEMENTS=unnamed` measures the mode for poolers.
        if let Some(mode) = std::env::var("HOOKBOX_LOADGEN_STATEMENTS")
            .ok()
            .and_then(|m| hookbox::store::pg::Statements::parse(&m))
        {
            c.store.postgres_statements = mode;
        }
        c.master_key = Some(Secret::new(MASTER_KEY.to_owned()));
        c.admin_token = Some(Secret::new(ADMIN.to_owned()));
    }
    c
}

/// The runtime one node runs on.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name("hookbox-rt")
        // Blocking threads that exit take their CPU time with them: keep them.
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()
        .expect("hookbox runtime")
}

/// One hookbox node on its own runtime.
pub struct Node {
    rt: Option<Runtime>,
    app: Option<App>,
}

impl Node {
    /// Builds the app on a new runtime; returns it with the seconds `App::build`
    /// took.
    pub async fn start(config: Config) -> (Node, f64) {
        let rt = runtime();
        let t0 = Instant::now();
        let app = rt
            .spawn(App::build(config))
            .await
            .expect("App::build task")
            .expect("hookbox starts");
        let took = t0.elapsed().as_secs_f64();
        (
            Node {
                rt: Some(rt),
                app: Some(app),
            },
            took,
        )
    }

    /// The running app.
    pub fn app(&self) -> &App {
        self.app.as_ref().expect("a running node")
    }

    /// `App::shutdown` on the node's runtime, then the runtime goes.
    pub async fn stop(mut self) {
        if let (Some(app), Some(rt)) = (self.app.take(), self.rt.as_ref()) {
            let _ = rt.spawn(app.shutdown()).await;
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Starts `n` nodes (one after the other: the first migrates the database).
pub async fn start_nodes(n: usize, pg: Option<&Pg>, dirs: &[tempfile::TempDir]) -> Vec<Node> {
    let mut nodes = Vec::with_capacity(n);
    for dir in dirs.iter().take(n) {
        nodes.push(Node::start(config(dir.path(), pg)).await.0);
    }
    nodes
}

/// Creates, through the first node, a tenant with an all-scopes key and `webhooks`
/// webhooks, the `w`-th pointing at `http://receiver/hook/{w}` (FIFO ones when
/// `fifo`); waits until every other node knows them. Returns the generator's view.
pub async fn setup(
    nodes: &[Node],
    webhooks: usize,
    receiver: SocketAddr,
    rate_limit: Option<u32>,
    fifo: bool,
) -> Api {
    let client = client();
    let bases: Vec<String> = nodes
        .iter()
        .map(|n| format!("http://{}", n.app().addr))
        .collect();
    let base = &bases[0];
    let admin = nodes[0].app().admin_token.expose().to_owned();
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
    for w in 0..webhooks {
        let url = format!("http://{receiver}/hook/{w}");
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
    // The other nodes learn the key and the webhooks from the change feed.
    for other in &bases[1..] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (s, v) = call(
                &client,
                Method::GET,
                &format!("{other}/v1/webhooks?limit=100"),
                &key,
                Vec::new(),
            )
            .await;
            let known = v["data"].as_array().map_or(0, Vec::len);
            if s == StatusCode::OK && known == webhooks {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {other} did not learn the setup within 30 s ({s}, {known} webhooks)"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Api {
        client,
        ingest: bases.iter().map(|b| format!("{b}/v1/events")).collect(),
        key,
    }
}
