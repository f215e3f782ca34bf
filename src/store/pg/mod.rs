//! The PostgreSQL engine's foundation: the connection pool (TLS through rustls when
//! the URL asks for it) and the embedded schema migrations (`migrate`). It owns the
//! SQL schema (`migrations/*.sql`, written down in ARCHITECTURE.md beside the redb
//! format). It never holds a transaction open across anything but SQL, and it never
//! imports the API or the delivery engine.
//!
//! Status: `PgStore` serves the tenant, key, catalogue and webhook part of the store
//! interface (`admin.rs`, `webhooks.rs`) and ingest (`ingest.rs`), with the same
//! rules and change feed as the redb store, the delivery claims of scale-out
//! (`claims.rs`: batch claims under a lease, renewal, completion fenced by the lease
//! id), and the rest of the interface under the redb methods' names and answers:
//! event and delivery reads (`events.rs`), manual and test records, recover and
//! retention (`deliveries.rs`), the notification throttle (`notify.rs`), config
//! seeds (`seeds.rs`), portal sessions (`portal.rs`), deleted tenants' purge
//! (`purge.rs`) and job leases for background work on one node at a time
//! (`jobs.rs`). Across nodes, every write also announces what it changed with
//! `NOTIFY` in its own transaction (`announce.rs`), and each node's listener
//! (`listen.rs`) re-reads what other nodes changed into its own change feed, wakes
//! its delivery loop on new work, and says whether the node is healthy.

mod admin;
mod announce;
mod batch;
mod claims;
mod codes;
pub(crate) mod copy;
mod deliveries;
mod events;
mod ingest;
mod jobs;
mod line;
mod listen;
mod migrate;
mod notify;
mod portal;
mod purge;
mod seeds;
mod webhooks;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;

use super::StoreError;
use super::changes::{Change, Feed, Subscriber};
use crate::secrets::Cipher;

pub use batch::{ClaimLimits, Claimed, Claims, Left};
pub use jobs::RETENTION_JOB;
pub use migrate::{MIGRATIONS, SCHEMA, migrate};
pub use purge::PURGE_CHUNK_EVENTS;

/// Why the PostgreSQL engine could not start or went wrong.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// `postgres_url` is not a PostgreSQL connection string.
    #[error("postgres_url is not a valid PostgreSQL URL: {0}")]
    Url(String),
    /// No connection could be made (down, refused, wrong password, TLS failure...).
    #[error("cannot reach PostgreSQL: {0}")]
    Unreachable(String),
    /// A statement failed in the database (it answered with an error).
    #[error("PostgreSQL: {0}")]
    Sql(#[from] tokio_postgres::Error),
    /// A statement failed in this process, with the database reachable: a value that
    /// does not encode as its parameter, a column that does not decode, an
    /// unexpected answer. A bug or a schema this build does not expect, never a
    /// reason to retry.
    #[error("PostgreSQL client: {0}")]
    Client(#[source] tokio_postgres::Error),
    /// A transaction shared by several concurrent ingest calls failed with this
    /// error (not a connection error: that is `Unavailable` for each of them).
    #[error("the combined ingest transaction failed")]
    Combined(#[source] Arc<StoreError>),
    /// The database was migrated by a newer hookbox; it is refused, never misread.
    #[error(
        "the database has hookbox schema {found}, newer than this build of hookbox \
         supports (schema {supported}); run the hookbox release that migrated it, or a \
         newer one"
    )]
    NewerSchema { found: i32, supported: i32 },
}

impl From<deadpool_postgres::PoolError> for PgError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => PgError::Unreachable(e.to_string()),
            other => PgError::Unreachable(other.to_string()),
        }
    }
}

/// Builds a pool of at most `size` connections to `url`. With `sslmode=require` (or
/// `prefer`) in the URL the connections use TLS through rustls, verified against the
/// webpki roots; `sslmode=disable` (or none given) connects in plain text. Makes no
/// connection yet: the first `get` does.
pub fn pool(url: &str, size: usize) -> Result<Pool, PgError> {
    let config = config(url)?;
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match Connector::for_config(&config) {
        Connector::Plain => Manager::from_config(config, tokio_postgres::NoTls, manager_config),
        Connector::Tls(tls) => Manager::from_config(config, tls, manager_config),
    };
    Pool::builder(manager)
        .max_size(size.max(1))
        .build()
        .map_err(|e| PgError::Url(e.to_string()))
}

/// The connection settings in `url`.
fn config(url: &str) -> Result<tokio_postgres::Config, PgError> {
    tokio_postgres::Config::from_str(url).map_err(|e| PgError::Url(e.to_string()))
}

/// How this node's connections reach the database: in plain text, or through TLS
/// with rustls. One decision, taken from the URL's `sslmode`, for the pool and for
/// the change listener alike.
enum Connector {
    /// `sslmode=disable`, or none given.
    Plain,
    /// Any other `sslmode`: TLS, verified against the webpki roots.
    Tls(tokio_postgres_rustls::MakeRustlsConnect),
}

impl Connector {
    fn for_config(config: &tokio_postgres::Config) -> Connector {
        match config.get_ssl_mode() {
            SslMode::Disable => Connector::Plain,
            _ => Connector::Tls(tls()),
        }
    }
}

/// The rustls connector for TLS connections to the database.
fn tls() -> tokio_postgres_rustls::MakeRustlsConnect {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map(|b| b.with_root_certificates(roots).with_no_client_auth());
    // The ring provider supports the default protocol versions; should that ever
    // fail, a config without roots refuses every server rather than trusting one.
    let config = config.unwrap_or_else(|_| {
        rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    });
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

/// Connects through `pool` and applies every pending migration (see [`migrate`]).
/// Returns the schema version the database is at afterwards.
pub async fn connect_and_migrate(pool: &Pool) -> Result<i32, PgError> {
    let mut client = pool.get().await?;
    migrate(&mut client).await
}

/// The store on PostgreSQL: a connection pool, the master key that seals webhook
/// secrets, and the change feed its writes publish on after they commit.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    cipher: Cipher,
    feed: Arc<Feed>,
    /// Held from a write's first statement until its changes are published, so this
    /// node publishes in commit order (as the redb writer thread does).
    writes: Arc<tokio::sync::Mutex<()>>,
    /// Ingest calls waiting to share the next transaction.
    ingest: Arc<std::sync::Mutex<ingest::Combiner>>,
    /// This node's lease id (a UUID drawn at open): every delivery this node claims
    /// is leased under it, renewed together and fenced by it.
    node: Arc<str>,
    /// Woken when there may be new work (a local ingest, or a notification from
    /// another node); the delivery loop waits on it with a polling backstop.
    wakeups: Arc<tokio::sync::Notify>,
    /// The running purges of deleted tenants and the flag that stops them.
    purges: Arc<purge::PurgeTasks>,
    /// The connection settings, for the listener's own connection.
    config: Arc<tokio_postgres::Config>,
    /// What [`PgStore::is_healthy`] answers from.
    health: Arc<Health>,
}

/// Whether this node can reach the database and hear the others, as last seen.
#[derive(Default)]
struct Health {
    /// The listener's connection is down (set when it drops or cannot be made,
    /// cleared once it is back and the refresh after it is done).
    listener_down: AtomicBool,
    /// The last pool checkout (or a statement of a combined ingest) failed because
    /// the database could not be reached; cleared by the next successful checkout.
    pool_down: AtomicBool,
}

impl PgStore {
    /// Connects to `url` with at most `pool_size` connections and migrates the
    /// schema. An unreachable database is [`PgError::Unreachable`], a newer schema
    /// [`PgError::NewerSchema`].
    pub async fn open(url: &str, pool_size: usize, cipher: Cipher) -> Result<PgStore, PgError> {
        let config = config(url)?;
        let pool = pool(url, pool_size)?;
        connect_and_migrate(&pool).await?;
        Ok(PgStore {
            config: Arc::new(config),
            health: Arc::new(Health::default()),
            pool,
            cipher,
            feed: Arc::new(Feed::default()),
            writes: Arc::new(tokio::sync::Mutex::new(())),
            ingest: ingest::combiner(),
            node: Arc::from(claims::new_lease_id()),
            wakeups: Arc::new(tokio::sync::Notify::new()),
            purges: Arc::default(),
        })
    }

    /// This node's lease id: the `lease_id` of every delivery it has claimed.
    pub fn node_id(&self) -> &str {
        &self.node
    }

    /// Closes the pool: connections are dropped as they come back.
    pub fn close(&self) {
        self.pool.close();
    }

    /// The handle the delivery loop waits on for new work.
    pub fn wakeups(&self) -> Arc<tokio::sync::Notify> {
        self.wakeups.clone()
    }

    /// Sets the subscriber that committed changes are published to (the registry).
    pub fn subscribe(&self, subscriber: Arc<dyn Subscriber>) {
        self.feed.subscribe(subscriber);
    }

    /// Whether this node can serve: the database was reachable at the last pool
    /// checkout, and (once [`PgStore::start_listener`] runs) the listener is
    /// connected, so changes made on other nodes reach this one. False while the
    /// database is unreachable; true again after a successful reconnect.
    pub fn is_healthy(&self) -> bool {
        !self.health.listener_down.load(Ordering::Relaxed)
            && !self.health.pool_down.load(Ordering::Relaxed)
    }

    /// A pooled connection; an unreachable database is `Unavailable` (and makes the
    /// node unhealthy until a checkout succeeds again).
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        match self.pool.get().await {
            Ok(client) => {
                self.mark_pool(true);
                Ok(client)
            }
            Err(e) => {
                self.mark_pool(false);
                Err(StoreError::Unavailable(PgError::from(e).to_string()))
            }
        }
    }

    /// Records whether the database was reachable through the pool.
    fn mark_pool(&self, reachable: bool) {
        // A load first, so the hot path does not write a shared cache line.
        if self.health.pool_down.load(Ordering::Relaxed) == reachable {
            self.health.pool_down.store(!reachable, Ordering::Relaxed);
        }
    }

    /// Publishes one commit's changes, after the commit.
    fn publish(&self, changes: &[Change]) {
        self.feed.publish(changes);
    }
}

/// Maps a failed statement's error: a lost or broken connection is `Unavailable`
/// (retry later), an error the database answered is [`PgError::Sql`], and anything
/// else failed in this process ([`PgError::Client`]: a conversion error, say), which
/// is an internal error, not a reason to retry.
pub fn store_error(e: tokio_postgres::Error) -> StoreError {
    if is_connection_error(&e) {
        StoreError::Unavailable(format!("cannot reach PostgreSQL: {e}"))
    } else if e.as_db_error().is_some() {
        StoreError::Postgres(PgError::Sql(e))
    } else {
        StoreError::Postgres(PgError::Client(e))
    }
}

/// [`store_error`], by its short name for `map_err`.
fn sql(e: tokio_postgres::Error) -> StoreError {
    store_error(e)
}

/// Whether `e` says the connection is gone: closed, or an I/O error on its socket.
/// tokio-postgres does not expose its error kinds; an I/O cause tells the socket's
/// errors apart from the client's own, whose causes are conversion errors (or, for
/// a malformed message, an I/O error of kind `InvalidData`/`InvalidInput`).
fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    use std::error::Error as _;
    if e.is_closed() {
        return true;
    }
    e.source()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some_and(|io| {
            !matches!(
                io.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput
            )
        })
}

/// Whether a statement failed on a unique or primary key.
fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}
