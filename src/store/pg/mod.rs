//! The PostgreSQL engine's foundation: the connection pool (TLS through rustls as
//! the URL's `sslmode` and the CA settings ask, `tls.rs`) and the embedded schema
//! migrations (`migrate`). It owns the
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
mod conn;
pub(crate) mod copy;
mod deliveries;
mod events;
mod ingest;
mod jobs;
mod line;
mod listen;
mod migrate;
mod notify;
mod plans;
mod portal;
mod purge;
mod seeds;
mod tls;
mod webhooks;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;

use super::StoreError;
use super::changes::{Change, Feed, Subscriber};
use crate::secrets::Cipher;

pub use batch::{ClaimLimits, Claimed, Claims, Left};
pub use conn::Statements;
pub use jobs::RETENTION_JOB;
pub use migrate::{MIGRATIONS, SCHEMA, migrate};
pub use plans::{GENERIC_PLANNED, GENERIC_PLANS};
pub use purge::PURGE_CHUNK_EVENTS;
pub use tls::{Policy, RootCert, SslMode, UrlTls, load_ca, split_url};

use conn::Conn;
use tls::Connector;

/// Why the PostgreSQL engine could not start or went wrong.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// `postgres_url` is not a PostgreSQL connection string.
    #[error("postgres_url is not a valid PostgreSQL URL: {0}")]
    Url(String),
    /// No connection could be made (down, refused, wrong password, a certificate
    /// refused...).
    #[error("cannot reach PostgreSQL: {0}")]
    Unreachable(String),
    /// The TLS settings cannot be used: they contradict each other, or the CA file
    /// is missing or holds no certificate.
    #[error("PostgreSQL TLS settings: {0}")]
    Tls(String),
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
            deadpool_postgres::PoolError::Backend(e) => PgError::Unreachable(tls::describe(&e)),
            other => PgError::Unreachable(other.to_string()),
        }
    }
}

/// Builds a pool of at most `size` connections to `url`, with TLS as the URL's
/// `sslmode` and `sslrootcert` ask (see [`pool_with`]). Makes no connection yet.
pub fn pool(url: &str, size: usize) -> Result<Pool, PgError> {
    pool_with(url, None, size)
}

/// Builds a pool of at most `size` connections to `url`. TLS follows the URL's
/// `sslmode` and the CA of its `sslrootcert` or `ca_file` (`[store]
/// postgres_ca_file`), as [`Policy::decide`] says: plain text with `disable`,
/// opportunistic and unchecked TLS with `prefer` or none, TLS checked against the CA
/// (or the public roots) with `require`, `verify-ca` and `verify-full`. Makes no
/// connection yet: the first `get` does.
pub fn pool_with(url: &str, ca_file: Option<&Path>, size: usize) -> Result<Pool, PgError> {
    let target = Target::parse(url, ca_file)?;
    pool_for(&target, size)
}

/// How long making a connection may take, handshake and authentication included,
/// unless the URL's `connect_timeout` says otherwise for the TCP connect: a server
/// that accepts and never answers is an error (unreachable), not a wait for ever.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a caller waits for a pooled connection when every one is busy (and one
/// more cannot be made) before it gets an error instead of waiting for ever.
const POOL_WAIT: Duration = Duration::from_secs(30);

fn pool_for(target: &Target, size: usize) -> Result<Pool, PgError> {
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let config = target.config.clone();
    let manager = match &target.connector {
        Connector::Plain => Manager::from_config(config, tokio_postgres::NoTls, manager_config),
        Connector::Tls(tls) => Manager::from_config(config, Connector::rustls(tls), manager_config),
    };
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(|e| PgError::Url(e.to_string()))
}

/// The connection settings of a URL and the connector its TLS settings ask for.
struct Target {
    config: tokio_postgres::Config,
    connector: Connector,
}

impl Target {
    fn parse(url: &str, ca_file: Option<&Path>) -> Result<Target, PgError> {
        let (rest, mut url_tls) = tls::split_url(url).map_err(PgError::Url)?;
        let mut config =
            tokio_postgres::Config::from_str(&rest).map_err(|e| PgError::Url(tls::describe(&e)))?;
        if url_tls.mode.is_none() {
            // A `key=value` string keeps its sslmode in tokio-postgres's config.
            url_tls.mode = match config.get_ssl_mode() {
                tokio_postgres::config::SslMode::Disable => Some(SslMode::Disable),
                tokio_postgres::config::SslMode::Require => Some(SslMode::Require),
                _ => None,
            };
        }
        let policy = Policy::decide(&url_tls, ca_file).map_err(|p| PgError::Tls(p.join("; ")))?;
        config.ssl_mode(policy.ssl_mode());
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let connector = Connector::new(&policy).map_err(PgError::Tls)?;
        Ok(Target { config, connector })
    }
}

/// Connects through `pool` and applies every pending migration (see [`migrate`]).
/// Returns the schema version the database is at afterwards.
pub async fn connect_and_migrate(pool: &Pool) -> Result<i32, PgError> {
    let mut client = pool.get().await?;
    migrate(&mut client).await
}

/// How [`PgStore::connect`] reaches the database, besides its URL.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// The CA file (`postgres_ca_file`), for the URL's TLS as [`pool_with`] says.
    pub ca_file: Option<&'a Path>,
    /// At most this many pooled connections (`postgres_pool`).
    pub pool_size: usize,
    /// How statements are sent (`postgres_statements`).
    pub statements: Statements,
    /// Where the listener connects instead of the pool's URL
    /// (`postgres_listen_url`): `LISTEN` needs a session of its own, which a pooler
    /// in transaction mode does not give.
    pub listen_url: Option<&'a str>,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            ca_file: None,
            pool_size: 16,
            statements: Statements::Cached,
            listen_url: None,
        }
    }
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
    /// How statements are sent (`postgres_statements`).
    statements: Statements,
    /// The connection settings of the listener's own connection (`postgres_url`, or
    /// `postgres_listen_url` when set).
    config: Arc<tokio_postgres::Config>,
    /// How the listener's connection is made (TLS or not).
    connector: Connector,
    /// What [`PgStore::is_healthy`] answers from.
    health: Arc<Health>,
    /// Whether this node's last claim found its first window cut (more due rows
    /// than it read): its next claim then looks beyond the window in the same
    /// statement (`batch.rs`).
    window_cut: Arc<std::sync::atomic::AtomicBool>,
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
    /// schema; TLS as the URL says (see [`PgStore::open_with`]).
    pub async fn open(url: &str, pool_size: usize, cipher: Cipher) -> Result<PgStore, PgError> {
        Self::open_with(url, None, pool_size, cipher).await
    }

    /// Connects to `url` with at most `pool_size` connections, TLS as the URL's
    /// `sslmode` and the CA in its `sslrootcert` or `ca_file` say (see
    /// [`pool_with`]), and migrates the schema. An unreachable database (a refused
    /// certificate included) is [`PgError::Unreachable`], unusable TLS settings
    /// [`PgError::Tls`], a newer schema [`PgError::NewerSchema`].
    pub async fn open_with(
        url: &str,
        ca_file: Option<&Path>,
        pool_size: usize,
        cipher: Cipher,
    ) -> Result<PgStore, PgError> {
        let options = Options {
            ca_file,
            pool_size,
            ..Options::default()
        };
        Self::connect(url, &options, cipher).await
    }

    /// Connects to `url` as `options` say (see [`PgStore::open_with`] for the
    /// errors) and migrates the schema.
    pub async fn connect(
        url: &str,
        options: &Options<'_>,
        cipher: Cipher,
    ) -> Result<PgStore, PgError> {
        let target = Target::parse(url, options.ca_file)?;
        let listener = match options.listen_url {
            Some(listen) => Target::parse(listen, options.ca_file)?,
            None => Target::parse(url, options.ca_file)?,
        };
        let pool = pool_for(&target, options.pool_size)?;
        connect_and_migrate(&pool).await?;
        Ok(PgStore {
            statements: options.statements,
            config: Arc::new(listener.config),
            connector: listener.connector,
            health: Arc::new(Health::default()),
            window_cut: Arc::default(),
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
        self.unready_reason().is_none()
    }

    /// Why this node cannot serve, if it cannot (see [`PgStore::is_healthy`]).
    pub fn unready_reason(&self) -> Option<&'static str> {
        if self.health.pool_down.load(Ordering::Relaxed) {
            Some("PostgreSQL cannot be reached")
        } else if self.health.listener_down.load(Ordering::Relaxed) {
            Some("the PostgreSQL change listener is down: other nodes' changes do not arrive")
        } else {
            None
        }
    }

    /// A pooled connection; an unreachable database is `Unavailable` (and makes the
    /// node unhealthy until a checkout succeeds again).
    async fn client(&self) -> Result<Conn, StoreError> {
        match self.pool.get().await {
            Ok(client) => {
                self.mark_pool(true);
                Ok(Conn::new(client, self.statements))
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
