//! Changes and wake-ups across nodes on a real cluster (`pg_cluster`): two
//! `PgStore`s on one database ("nodes"), each with its own registry fed by its own
//! change feed and listener. A change made on one node is in force on the other
//! within a second; new work wakes the other node; a listener whose connection is
//! killed reconnects and refreshes; health follows reachability (through a loopback
//! TCP proxy the test cuts and restores).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookbox::model::{
    ApiKey, Delivery, DeliveryState, Event, EventType, Scope, Secret, Tenant, Webhook,
};
use hookbox::registry::Registry;
use hookbox::store::pg::{Options, PgStore, Statements};
use hookbox::store::{Change, IngestItem, StoreError, Subscriber};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::pg_bouncer;
use crate::pg_cluster::{self, sql};
use crate::pg_tls;

/// What "in force on every node" must take at most (DESIGN.md section 7).
const ONE_SECOND: Duration = Duration::from_secs(1);

/// A node's registry, with every change it was fed recorded.
#[derive(Default)]
struct Tap {
    registry: Registry,
    log: Mutex<Vec<Change>>,
}

impl Subscriber for Tap {
    fn apply(&self, changes: &[Change]) {
        self.log.lock().unwrap().extend(changes.iter().cloned());
        self.registry.apply(changes);
    }
}

impl Tap {
    /// How many `Change::Webhook`s for `id` this node was fed.
    fn webhook_changes(&self, id: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|c| matches!(c, Change::Webhook(w) if w.id == id))
            .count()
    }

    /// How many full refreshes this node was fed.
    fn reloads(&self) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|c| matches!(c, Change::Reload { .. }))
            .count()
    }
}

/// One node: a store, its registry, its listener.
struct Node {
    store: PgStore,
    tap: Arc<Tap>,
    stop: CancellationToken,
    listener: Option<JoinHandle<()>>,
}

impl Node {
    /// Opens a store on `url`, subscribes a registry and starts the listener; returns
    /// once the listener is connected and has done its first refresh.
    async fn start(url: &str) -> Node {
        Node::with(pg_cluster::open(url).await).await
    }

    /// [`Node::start`] on a store already open.
    async fn with(store: PgStore) -> Node {
        let tap = Arc::new(Tap::default());
        store.subscribe(tap.clone());
        let stop = CancellationToken::new();
        let listener = Some(store.start_listener(stop.clone()));
        let node = Node {
            store,
            tap,
            stop,
            listener,
        };
        within(
            Duration::from_secs(5),
            "the listener's first refresh",
            || node.tap.reloads() > 0 && node.store.is_healthy(),
        )
        .await;
        node
    }

    fn registry(&self) -> &Registry {
        &self.tap.registry
    }

    /// Stops the listener and waits for it to end.
    async fn stop(mut self) {
        self.stop.cancel();
        if let Some(listener) = self.listener.take() {
            tokio::time::timeout(Duration::from_secs(5), listener)
                .await
                .expect("the listener stops on shutdown")
                .expect("the listener task ends cleanly");
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Waits until `cond` holds, failing the test if `limit` passes first; returns how
/// long it took.
async fn within(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if cond() {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub(crate) fn tenant(id: &str) -> Tenant {
    Tenant {
        id: id.into(),
        name: format!("{id} Inc"),
        created_at: 1,
    }
}

fn event_type(tenant: &str, name: &str) -> EventType {
    EventType {
        tenant: tenant.into(),
        name: name.into(),
        description: None,
        schema: None,
        created_at: 2,
    }
}

fn key(id: &str, tenant: &str, hash: u8) -> ApiKey {
    ApiKey {
        id: id.into(),
        tenant: tenant.into(),
        name: "ci".into(),
        scopes: vec![Scope::EventsWrite],
        hash: [hash; 32],
        prefix: "hbk_ab12".into(),
        created_at: 3,
    }
}

/// [`pg_cluster::webhook`] for `types`, with a secret header (sealed in the row,
/// opened on the other node).
fn webhook(id: &str, tenant: &str, types: &[&str]) -> Webhook {
    Webhook {
        event_types: types.iter().map(|t| t.to_string()).collect(),
        headers: [("X-Api-Key".to_owned(), Secret::new("header-secret"))].into(),
        created_at: 10,
        updated_at: 10,
        ..pg_cluster::webhook(id, tenant)
    }
}

/// An event of `acme` with one delivery to `wh_1`.
pub(crate) fn item() -> IngestItem {
    let event_id = hookbox::model::new_id("evt");
    IngestItem {
        deliveries: vec![Delivery {
            id: hookbox::model::new_id("dlv"),
            tenant: "acme".into(),
            event_id: event_id.clone(),
            webhook_id: "wh_1".into(),
            event_type: "invoice.paid".into(),
            state: DeliveryState::Pending,
            attempts: 0,
            schedule_step: 0,
            next_attempt_at: Some(1_000),
            last_status: None,
            last_error: None,
            created_at: 900,
            updated_at: 900,
        }],
        event: Event {
            id: event_id,
            tenant: "acme".into(),
            event_type: "invoice.paid".into(),
            payload: r#"{"n":1}"#.into(),
            channels: vec![],
            idempotency_key: None,
            created_at: 900,
        },
        body_hash: hookbox::secrets::hash_key("{}"),
    }
}

/// A tenant `acme` with `invoice.paid` in its catalogue and webhook `wh_1` for it,
/// created on `a`, and seen by `b`.
async fn acme_with_webhook(a: &Node, b: &Node) {
    a.store
        .create_tenant(tenant("acme"), vec![event_type("acme", "invoice.paid")])
        .await
        .unwrap();
    a.store
        .create_webhook(webhook("wh_1", "acme", &["invoice.paid"]))
        .await
        .unwrap();
    within(ONE_SECOND, "tenant and webhook on the other node", || {
        b.registry().has_event_type("acme", "invoice.paid")
            && b.registry().matching("acme", "invoice.paid", &[]).len() == 1
    })
    .await;
}

/// Moves `wh_1` from `invoice.paid` to `invoice.voided` on `a` and waits (at most
/// one second) until `b` has the new version and no longer matches `invoice.paid`.
async fn patch_on_a_in_force_on_b(a: &Node, b: &Node) {
    a.store
        .update_webhook("wh_1".into(), |w| {
            w.event_types = vec!["invoice.voided".into()];
            Ok::<_, ()>(())
        })
        .await
        .unwrap()
        .unwrap();
    within(ONE_SECOND, "the PATCH in force on B", || {
        b.registry().webhook("wh_1").is_some_and(|w| w.version == 2)
            && b.registry()
                .matching("acme", "invoice.paid", &[])
                .is_empty()
    })
    .await;
}

#[tokio::test]
async fn a_webhook_created_and_patched_on_one_node_is_in_force_on_the_other_within_a_second() {
    let url = pg_cluster::shared().database().await;
    let a = Node::start(&url).await;
    let b = Node::start(&url).await;

    a.store
        .create_tenant(tenant("acme"), vec![event_type("acme", "invoice.paid")])
        .await
        .unwrap();
    within(ONE_SECOND, "tenant with its catalogue on B", || {
        b.registry().tenant("acme").is_some() && b.registry().has_event_type("acme", "invoice.paid")
    })
    .await;

    a.store
        .create_webhook(webhook("wh_1", "acme", &["invoice.paid"]))
        .await
        .unwrap();
    within(ONE_SECOND, "new webhook matching on B", || {
        b.registry().matching("acme", "invoice.paid", &[]).len() == 1
    })
    .await;
    // B re-read the row and unsealed it with the shared master key.
    let seen = b.registry().webhook("wh_1").unwrap();
    assert_eq!(seen.headers["X-Api-Key"].expose(), "header-secret");
    assert_eq!(seen.version, 1);

    a.store
        .update_webhook("wh_1".into(), |w| {
            w.url = "https://moved.example/hook".into();
            w.event_types = vec!["invoice.voided".into()];
            Ok::<_, ()>(())
        })
        .await
        .unwrap()
        .unwrap();
    let took = within(ONE_SECOND, "the PATCH in force on B", || {
        b.registry().webhook("wh_1").is_some_and(|w| w.version == 2)
    })
    .await;
    assert!(took < ONE_SECOND, "took {took:?}");
    assert!(
        b.registry()
            .matching("acme", "invoice.paid", &[])
            .is_empty()
    );
    assert_eq!(
        b.registry().matching("acme", "invoice.voided", &[])[0].url,
        "https://moved.example/hook"
    );

    // A node ignores its own notifications. B's write commits after A's; once A has
    // B's webhook, A's listener has handled everything A announced before it.
    b.store
        .create_webhook(webhook("wh_2", "acme", &["invoice.paid"]))
        .await
        .unwrap();
    within(ONE_SECOND, "B's webhook on A", || {
        a.registry().webhook("wh_2").is_some()
    })
    .await;
    assert_eq!(
        a.tap.webhook_changes("wh_1"),
        2,
        "create and PATCH, once each"
    );
    assert_eq!(
        b.tap.webhook_changes("wh_1"),
        2,
        "create and PATCH, once each"
    );
    assert_eq!(b.tap.webhook_changes("wh_2"), 1);

    a.stop().await;
    b.stop().await;
}

/// The same promise with both nodes behind PgBouncer in transaction mode: their
/// statements go unnamed through the bouncer and their listeners connect to
/// PostgreSQL directly (`postgres_listen_url`).
#[tokio::test]
async fn behind_pgbouncer_a_change_on_one_node_is_in_force_on_the_other_within_a_second() {
    let (url, direct) = pg_bouncer::shared().database().await;
    let bounced = || async {
        let options = Options {
            ca_file: None,
            pool_size: 4,
            statements: Statements::Unnamed,
            listen_url: Some(&direct),
        };
        PgStore::connect(&url, &options, pg_cluster::cipher())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "open through pgbouncer: {e}\n{}",
                    pg_bouncer::shared().log()
                )
            })
    };
    let a = Node::with(bounced().await).await;
    let b = Node::with(bounced().await).await;

    acme_with_webhook(&a, &b).await;
    patch_on_a_in_force_on_b(&a, &b).await;
    b.store.delete_tenant("acme".into(), 50).await.unwrap();
    within(ONE_SECOND, "the tenant deleted on B gone from A", || {
        a.registry().tenant("acme").is_none()
    })
    .await;

    a.stop().await;
    b.stop().await;
}

/// `postgres_listen_url` over TLS: two nodes whose pools and listeners both connect
/// with `sslmode=verify-full` (the listener by a host name, `localhost`, that the
/// server's certificate must hold; the CA from `[store] postgres_ca_file`, which
/// serves both URLs) see each other's changes within a second, and each listener's
/// session is encrypted. A listen URL naming a host the certificate does not hold
/// leaves its node unready for want of a listener, while its pool works: the
/// listener's TLS follows its own URL.
#[tokio::test]
async fn a_listener_on_its_own_tls_url_is_encrypted_and_carries_changes_within_a_second() {
    let tls = pg_tls::tls();
    let (name, url) = tls.database("sslmode=verify-full").await;
    let listen_at = |host: &str| tls.url(&name, host, "hostaddr=127.0.0.1&sslmode=verify-full");
    let listen = listen_at("localhost");
    let open = |listen: String| {
        let url = url.clone();
        async move {
            let options = Options {
                ca_file: Some(&tls.ca_file),
                pool_size: 4,
                statements: Statements::Cached,
                listen_url: Some(&listen),
            };
            PgStore::connect(&url, &options, pg_cluster::cipher())
                .await
                .expect("open on TLS PostgreSQL")
        }
    };
    let a = Node::with(open(listen.clone()).await).await;
    let b = Node::with(open(listen).await).await;

    acme_with_webhook(&a, &b).await;
    patch_on_a_in_force_on_b(&a, &b).await;

    let observer = tls.observer(&name).await;
    for node in [&a, &b] {
        let ssl: Vec<bool> = observer
            .query(
                "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                 WHERE a.datname = $1 AND a.application_name = $2",
                &[&name, &node.store.listener_name()],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(ssl, [true], "the node's listener session, encrypted");
    }

    let wrong = open(listen_at("db.wrong.example")).await;
    wrong.create_tenant(tenant("other"), vec![]).await.unwrap();
    let stop = CancellationToken::new();
    let listener = wrong.start_listener(stop.clone());
    within(Duration::from_secs(5), "the node unready", || {
        !wrong.is_healthy()
    })
    .await;
    assert_eq!(
        wrong.unready_reason(),
        Some("the PostgreSQL change listener is down: other nodes' changes do not arrive"),
    );
    stop.cancel();
    listener.await.expect("the listener task ends cleanly");

    a.stop().await;
    b.stop().await;
}

/// A listener that cannot reach its own URL (`postgres_listen_url`) makes the node
/// unhealthy, so `/readyz` answers 503, although the pool's URL works: the node
/// would otherwise miss the other nodes' changes without saying so.
#[tokio::test]
async fn a_listen_url_that_cannot_be_reached_makes_the_node_unhealthy() {
    let url = pg_cluster::shared().database().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a loopback port")
        .port();
    let dead = format!("postgres://postgres@127.0.0.1:{closed}/postgres?sslmode=disable");
    let options = Options {
        ca_file: None,
        pool_size: 4,
        statements: Statements::Cached,
        listen_url: Some(&dead),
    };
    let store = PgStore::connect(&url, &options, pg_cluster::cipher())
        .await
        .expect("the pool's URL works");
    assert!(store.is_healthy(), "healthy before the listener starts");
    let stop = CancellationToken::new();
    let listener = store.start_listener(stop.clone());
    within(Duration::from_secs(5), "the node unhealthy", || {
        !store.is_healthy()
    })
    .await;
    // The pool still writes; what is missing is the listener.
    store.create_tenant(tenant("acme"), vec![]).await.unwrap();
    assert_eq!(
        store.unready_reason(),
        Some("the PostgreSQL change listener is down: other nodes' changes do not arrive"),
        "unready while the listener is down, and says why"
    );
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), listener)
        .await
        .expect("the listener stops on shutdown")
        .expect("the listener task ends cleanly");
}

#[tokio::test]
async fn a_revoked_key_and_a_deleted_tenant_are_gone_from_the_other_node() {
    let url = pg_cluster::shared().database().await;
    let a = Node::start(&url).await;
    let b = Node::start(&url).await;
    acme_with_webhook(&a, &b).await;
    a.store
        .create_api_key(key("key_1", "acme", 1))
        .await
        .unwrap();
    a.store
        .create_api_key(key("key_2", "acme", 2))
        .await
        .unwrap();
    a.store
        .create_event_type(event_type("acme", "invoice.voided"))
        .await
        .unwrap();
    within(ONE_SECOND, "keys and the new event type on B", || {
        b.registry().key_by_hash(&[1; 32]).is_some()
            && b.registry().key_by_hash(&[2; 32]).is_some()
            && b.registry().has_event_type("acme", "invoice.voided")
    })
    .await;

    a.store.delete_api_key("key_1".into()).await.unwrap();
    a.store
        .delete_event_type("acme".into(), "invoice.voided".into())
        .await
        .unwrap();
    within(
        ONE_SECOND,
        "revoked key and removed type gone from B",
        || {
            b.registry().key_by_hash(&[1; 32]).is_none()
                && !b.registry().has_event_type("acme", "invoice.voided")
        },
    )
    .await;
    assert!(b.registry().key("key_2").is_some());

    a.store.delete_tenant("acme".into(), 50).await.unwrap();
    within(ONE_SECOND, "deleted tenant gone from B", || {
        b.registry().tenant("acme").is_none()
    })
    .await;
    assert!(b.registry().key_by_hash(&[2; 32]).is_none());
    assert!(!b.registry().has_event_type("acme", "invoice.paid"));
    assert!(
        b.registry()
            .matching("acme", "invoice.paid", &[])
            .is_empty()
    );
    assert_eq!(
        b.registry().webhook("wh_1").and_then(|w| w.deleted_at),
        Some(50)
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn ingest_on_one_node_wakes_the_other() {
    let url = pg_cluster::shared().database().await;
    let a = Node::start(&url).await;
    let b = Node::start(&url).await;
    acme_with_webhook(&a, &b).await;

    // Take any wake-up left from the start, then wait for the next one.
    let (wake_a, wake_b) = (a.store.wakeups(), b.store.wakeups());
    let _ = tokio::time::timeout(Duration::ZERO, wake_a.notified()).await;
    let _ = tokio::time::timeout(Duration::ZERO, wake_b.notified()).await;
    let woken = tokio::spawn(async move {
        let start = Instant::now();
        wake_b.notified().await;
        start.elapsed()
    });

    a.store.ingest_as(vec![item()], None).await.unwrap();
    // The ingesting node's own loop is woken at the commit.
    assert!(
        tokio::time::timeout(Duration::ZERO, wake_a.notified())
            .await
            .is_ok(),
        "A's delivery loop was woken by its own ingest"
    );
    let took = tokio::time::timeout(ONE_SECOND, woken)
        .await
        .expect("B woken within a second")
        .unwrap();
    assert!(took < ONE_SECOND);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_killed_listener_reconnects_and_refreshes() {
    let url = pg_cluster::shared().database().await;
    let a = Node::start(&url).await;
    let b = Node::start(&url).await;
    acme_with_webhook(&a, &b).await;
    let db = sql(&url).await;
    let backend = |name: String| {
        let db = &db;
        async move {
            db.query(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
                &[&name],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, i32>(0))
            .collect::<Vec<i32>>()
        }
    };
    let before = backend(b.store.listener_name()).await;
    assert_eq!(before.len(), 1, "B's listener is one connection");

    // A change no notification announces, so only B's refresh can bring it.
    db.execute(
        "UPDATE webhooks SET url = 'https://quiet.example/hook', version = version + 1 \
         WHERE id = 'wh_1'",
        &[],
    )
    .await
    .unwrap();
    let reloads = b.tap.reloads();
    let killed: bool = db
        .query_one("SELECT pg_terminate_backend($1)", &[&before[0]])
        .await
        .unwrap()
        .get(0);
    assert!(killed);

    within(
        Duration::from_secs(3),
        "B refreshed after reconnecting",
        || {
            b.registry()
                .webhook("wh_1")
                .is_some_and(|w| w.url == "https://quiet.example/hook")
        },
    )
    .await;
    assert!(b.tap.reloads() > reloads);
    assert!(b.store.is_healthy());
    let after = backend(b.store.listener_name()).await;
    assert!(after.len() == 1 && after != before, "{before:?} {after:?}");
    // A's listener was not touched, and B still hears A.
    a.store
        .update_webhook("wh_1".into(), |w| {
            w.description = Some("after the reconnect".into());
            Ok::<_, ()>(())
        })
        .await
        .unwrap()
        .unwrap();
    within(ONE_SECOND, "a later change on B", || {
        b.registry()
            .webhook("wh_1")
            .is_some_and(|w| w.description.as_deref() == Some("after the reconnect"))
    })
    .await;
    a.stop().await;
    b.stop().await;
}

/// A loopback TCP proxy to the cluster that the test can cut (every open connection
/// closed, new ones accepted and closed at once) and restore.
struct Proxy {
    port: u16,
    /// Whether connections pass, and the token that closes the ones open now.
    state: Arc<Mutex<(bool, CancellationToken)>>,
    task: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new((true, CancellationToken::new())));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let cut = {
                    let s = shared.lock().unwrap();
                    if !s.0 {
                        continue;
                    }
                    s.1.clone()
                };
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = cut.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                });
            }
        });
        Proxy { port, state, task }
    }

    fn cut(&self) {
        let mut s = self.state.lock().unwrap();
        s.0 = false;
        std::mem::take(&mut s.1).cancel();
    }

    fn restore(&self) {
        self.state.lock().unwrap().0 = true;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

#[tokio::test]
async fn health_follows_reachability_and_a_change_made_while_cut_off_arrives_after() {
    let cluster = pg_cluster::shared();
    let url = cluster.database().await;
    let a = Node::start(&url).await;
    let proxy = Proxy::start(cluster.port).await;
    let via_proxy = url.replace(
        &format!("127.0.0.1:{}", cluster.port),
        &format!("127.0.0.1:{}", proxy.port),
    );
    let b = Node::start(&via_proxy).await;
    acme_with_webhook(&a, &b).await;
    assert!(b.store.is_healthy());

    proxy.cut();
    within(ONE_SECOND, "B unhealthy once cut off", || {
        !b.store.is_healthy()
    })
    .await;
    // Writes on B are refused as unavailable (a 503), not as an internal error.
    let refused = b.store.ingest_as(vec![item()], None).await;
    assert!(
        matches!(refused, Err(StoreError::Unavailable(_))),
        "{refused:?}"
    );
    assert!(!b.store.is_healthy());

    // A change B cannot hear.
    a.store
        .update_webhook("wh_1".into(), |w| {
            w.enabled = false;
            Ok::<_, ()>(())
        })
        .await
        .unwrap()
        .unwrap();

    proxy.restore();
    within(Duration::from_secs(5), "B healthy again", || {
        b.store.is_healthy()
    })
    .await;
    // The refresh after reconnecting brought the change made meanwhile.
    let seen = b.registry().webhook("wh_1").unwrap();
    assert!(!seen.enabled && seen.version == 2);
    assert!(
        b.registry()
            .matching("acme", "invoice.paid", &[])
            .is_empty()
    );
    b.store.ingest_as(vec![item()], None).await.unwrap();
    a.stop().await;
    b.stop().await;
}
