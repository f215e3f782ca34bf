//! The PostgreSQL engine's foundation: the connection pool (TLS through rustls when
//! the URL asks for it) and the embedded schema migrations (`migrate`). It owns the
//! SQL schema (`migrations/*.sql`, written down in ARCHITECTURE.md beside the redb
//! format). It never holds a transaction open across anything but SQL, and it never
//! imports the API or the delivery engine.
//!
//! Status: `PgStore` serves the tenant, key, catalogue and webhook part of the store
//! interface (`admin.rs`, `webhooks.rs`) and ingest (`ingest.rs`), with the same
//! rules and change feed as the redb store, and the delivery claims of scale-out
//! (`claims.rs`: batch claims under a lease, renewal, completion fenced by the lease
//! id). The delivery engine does not run on it yet, and nothing outside the tests
//! opens a `PgStore`.

mod admin;
mod claims;
mod codes;
pub(crate) mod copy;
mod ingest;
mod line;
mod migrate;
mod pending;
mod webhooks;

use std::str::FromStr;
use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;

use super::StoreError;
use super::changes::{Change, Feed, Subscriber};
use crate::secrets::Cipher;

pub use claims::{Claim, Completion};
pub use migrate::{MIGRATIONS, SCHEMA, migrate};

/// Why the PostgreSQL engine could not start or went wrong.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// `postgres_url` is not a PostgreSQL connection string.
    #[error("postgres_url is not a valid PostgreSQL URL: {0}")]
    Url(String),
    /// No connection could be made (down, refused, wrong password, TLS failure...).
    #[error("cannot reach PostgreSQL: {0}")]
    Unreachable(String),
    /// A statement failed.
    #[error("PostgreSQL: {0}")]
    Sql(#[from] tokio_postgres::Error),
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
    let config = tokio_postgres::Config::from_str(url).map_err(|e| PgError::Url(e.to_string()))?;
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match config.get_ssl_mode() {
        SslMode::Disable => Manager::from_config(config, tokio_postgres::NoTls, manager_config),
        _ => Manager::from_config(config, tls(), manager_config),
    };
    Pool::builder(manager)
        .max_size(size.max(1))
        .build()
        .map_err(|e| PgError::Url(e.to_string()))
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
}

impl PgStore {
    /// Connects to `url` with at most `pool_size` connections and migrates the
    /// schema. An unreachable database is [`PgError::Unreachable`], a newer schema
    /// [`PgError::NewerSchema`].
    pub async fn open(url: &str, pool_size: usize, cipher: Cipher) -> Result<PgStore, PgError> {
        let pool = pool(url, pool_size)?;
        connect_and_migrate(&pool).await?;
        Ok(PgStore {
            pool,
            cipher,
            feed: Arc::new(Feed::default()),
            writes: Arc::new(tokio::sync::Mutex::new(())),
            ingest: ingest::combiner(),
            node: Arc::from(claims::new_lease_id()),
            wakeups: Arc::new(tokio::sync::Notify::new()),
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

    /// A pooled connection; an unreachable database is `Unavailable`.
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(PgError::from(e).to_string()))
    }

    /// Publishes one commit's changes, after the commit.
    fn publish(&self, changes: &[Change]) {
        self.feed.publish(changes);
    }
}

/// Maps a statement's error: a lost connection is `Unavailable`, anything else a
/// PostgreSQL error.
fn sql(e: tokio_postgres::Error) -> StoreError {
    if e.is_closed() || e.as_db_error().is_none() && e.code().is_none() {
        StoreError::Unavailable(format!("cannot reach PostgreSQL: {e}"))
    } else {
        StoreError::Postgres(PgError::Sql(e))
    }
}

/// Whether a statement failed on a unique or primary key.
fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}
