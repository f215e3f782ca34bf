//! Builds the application from a validated config: data dir, master key, admin
//! token, store, registry, delivery engine, retention purge and API server. Owns the
//! one cancellation token and the shutdown order (stop accepting, finish in-flight
//! attempts, close the store).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{ApiState, server};
use crate::config::{Backend, Config, SmtpTls};
use crate::delivery::client::{ClientConfig, HttpClient};
use crate::delivery::schedule::RetryPolicy;
use crate::delivery::ssrf::Guard;
use crate::delivery::{Engine, EngineConfig};
use crate::model::{EventType, Secret, now_ms};
use crate::notify::Notifier;
use crate::notify::email::{Mailer, MailerConfig, SmtpTlsMode};
use crate::registry::Registry;
use crate::secrets;
use crate::store::pg::PgStore;
use crate::store::{Db, Store};

/// How long in-flight API requests and attempts get to finish on shutdown.
const GRACE: Duration = Duration::from_secs(10);
/// The data file's name inside `data_dir`.
pub const DATA_FILE: &str = "hookbox.redb";

/// A running hookbox.
pub struct App {
    /// The address the API listens on (the real port when configured with 0).
    pub addr: SocketAddr,
    /// The admin token (from config, the token file, or generated now).
    pub admin_token: Secret,
    /// Whether the admin token was generated at this start (print it once).
    pub admin_token_generated: bool,
    /// The store (tests and benchmarks read it directly).
    pub store: Db,
    /// The delivery engine.
    pub engine: Engine,
    shutdown: CancellationToken,
    server: JoinHandle<()>,
    engine_task: JoinHandle<()>,
    retention: JoinHandle<()>,
    /// The PostgreSQL change and wake-up listener (none on redb).
    listener_task: Option<JoinHandle<()>>,
}

impl App {
    /// Opens everything and starts serving.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
        let cipher =
            secrets::load_or_create_master_key(config.master_key.as_ref(), &config.data_dir)
                .context("cannot load the master key")?;
        let (admin_token, admin_token_generated) =
            secrets::load_or_create_admin_token(config.admin_token.as_ref(), &config.data_dir)
                .context("cannot load the admin token")?;
        let (store, place) = open_store(&config, cipher).await?;

        let seeds: Vec<(String, Option<String>)> = config
            .event_types
            .iter()
            .map(|s| (s.name.clone(), s.description.clone()))
            .collect();
        let registry = load_registry(&store, &seeds).await?;

        let guard = Guard::new(config.security.allow_networks.clone());
        let client = HttpClient::new(ClientConfig {
            connect_timeout: config.delivery.connect_timeout,
            request_timeout: config.delivery.request_timeout,
            allow_networks: config.security.allow_networks.clone(),
            extra_ca_file: config.delivery.ca_file.clone(),
            // Keep as many idle connections as can be in use at once, or a busy
            // receiver sees a fresh connection for every attempt above the pool size.
            max_idle_per_host: config.delivery.max_in_flight,
            ..ClientConfig::default()
        })
        .context("cannot build the delivery client")?;
        let policy = RetryPolicy::from_config(&config.delivery).context("invalid retry policy")?;
        let mailer = match &config.smtp {
            Some(smtp) => Some(
                Mailer::new(MailerConfig {
                    host: smtp.host.clone(),
                    port: smtp.port,
                    tls: match smtp.tls {
                        SmtpTls::Starttls => SmtpTlsMode::Starttls,
                        SmtpTls::Tls => SmtpTlsMode::Tls,
                        SmtpTls::None => SmtpTlsMode::None,
                    },
                    username: smtp.username.clone(),
                    password: smtp.password.clone(),
                    from: smtp.from.clone(),
                    timeout: Duration::from_secs(30),
                })
                .context("invalid [smtp] settings")?,
            ),
            None => None,
        };
        let notifier = Notifier::new(store.clone(), mailer, config.notify.email_interval);
        let engine = Engine::new(
            store.clone(),
            registry.clone(),
            client,
            EngineConfig {
                max_in_flight: config.delivery.max_in_flight,
                per_webhook_in_flight: config.delivery.per_webhook_in_flight,
                per_tenant_in_flight: config.delivery.per_tenant_bound(),
                max_queued_bytes: config.delivery.max_queued_bytes,
                policy,
                disable_after: config.delivery.disable_after,
                lease: config.store.lease,
            },
            notifier,
        );

        let tls = match &config.tls {
            Some(t) => Some(
                server::tls_acceptor(&t.cert, &t.key)
                    .context("cannot load the API TLS certificate")?,
            ),
            None => None,
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr().context("no local address")?;

        // Tenants deleted before their data was purged (a purge cut short, or a
        // data file from a version that did not purge): purge them now.
        store
            .mark_orphaned_tenants(now_ms())
            .await
            .context("cannot look for deleted tenants' data")?;
        for tenant in store
            .tenants_being_purged()
            .await
            .context("cannot list deleted tenants")?
        {
            store.spawn_purge(tenant);
        }
        let shutdown = CancellationToken::new();
        let listener_task = store
            .postgres()
            .map(|pg| pg.start_listener(shutdown.clone()));
        let engine_task = engine.start(shutdown.clone(), GRACE);
        let retention = tokio::spawn(retention_loop(
            store.clone(),
            engine.clone(),
            config.retention.events,
            config.retention.purge_interval,
            shutdown.clone(),
        ));
        let state = Arc::new(ApiState {
            store: store.clone(),
            registry,
            admin_token: admin_token.clone(),
            max_body_bytes: config.max_body_bytes,
            require_https: config.security.require_https,
            guard,
            seed_event_types: seeds,
            engine: engine.clone(),
            profiles: config.api_profiles.clone(),
            portal: crate::portal::PortalSite::new(&config, addr),
        });
        let server = tokio::spawn(server::serve(listener, tls, state, shutdown.clone(), GRACE));
        tracing::info!(%addr, store = %place, "hookbox is serving");
        Ok(App {
            addr,
            admin_token,
            admin_token_generated,
            store,
            engine,
            shutdown,
            server,
            engine_task,
            retention,
            listener_task,
        })
    }

    /// The token that stops everything when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting, lets in-flight work finish (bounded), and closes the store
    /// after its last commit is durable.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
        let _ = self.engine_task.await;
        let _ = self.retention.await;
        if let Some(listener) = self.listener_task {
            let _ = listener.await;
        }
        self.store.stop_purges().await;
        self.store.close().await;
        tracing::info!("hookbox stopped");
    }
}

/// Opens the configured store: the redb file in `data_dir`, or the PostgreSQL
/// database (migrated at open). Returns it with a description of where it is, for
/// the log (never the database password).
async fn open_store(config: &Config, cipher: secrets::Cipher) -> anyhow::Result<(Db, String)> {
    match config.store.backend {
        Backend::Redb => {
            let path = config.data_dir.join(DATA_FILE);
            let cache = config.cache_mib << 20;
            let open = {
                let path = path.clone();
                tokio::task::spawn_blocking(move || Store::open(&path, cipher, cache))
            };
            let store = open
                .await
                .context("store open task failed")?
                .with_context(|| format!("cannot open {}", path.display()))?;
            Ok((Db::Redb(store), path.display().to_string()))
        }
        Backend::Postgres => {
            let url = config
                .store
                .postgres_url
                .as_ref()
                .context("store.postgres_url is not set")?;
            let options = crate::store::pg::Options {
                ca_file: config.store.postgres_ca_file.as_deref(),
                pool_size: config.store.postgres_pool,
                statements: config.store.postgres_statements,
                listen_url: config
                    .store
                    .postgres_listen_url
                    .as_ref()
                    .map(|u| u.expose()),
            };
            let store = PgStore::connect(url.expose(), &options, cipher)
                .await
                .context("cannot open the PostgreSQL store")?;
            Ok((Db::Postgres(store), "postgresql".to_owned()))
        }
    }
}

async fn load_registry(store: &Db, seeds: &[(String, Option<String>)]) -> anyhow::Result<Registry> {
    let load = async {
        Ok::<_, crate::store::StoreError>((
            store.list_tenants().await?,
            store.list_api_keys().await?,
            store.list_event_types().await?,
            store.load_webhooks().await?,
        ))
    };
    let (tenants, keys, types, webhooks) = load
        .await
        .context("cannot load the registry from the store")?;
    // Seeds added to the config since the last start join every tenant now; seeds
    // applied before are not re-added (a tenant may have deleted them on purpose).
    let applied = store
        .applied_seeds()
        .await
        .context("cannot read the applied seeds")?;
    let now = now_ms();
    let fresh: Vec<&(String, Option<String>)> = seeds
        .iter()
        .filter(|(name, _)| !applied.contains(name))
        .collect();
    let missing: Vec<EventType> = tenants
        .iter()
        .flat_map(|t| {
            fresh.iter().map(move |(name, description)| EventType {
                tenant: t.id.clone(),
                name: name.clone(),
                description: description.clone(),
                schema: None,
                created_at: now,
            })
        })
        .filter(|et| {
            !types
                .iter()
                .any(|x| x.tenant == et.tenant && x.name == et.name)
        })
        .collect();
    // From here on the registry changes only through the store's change feed,
    // applied after each commit and before its caller is answered.
    let registry = Registry::load(tenants, keys, types, webhooks);
    store.subscribe(Arc::new(registry.clone()));
    let names: Vec<String> = seeds.iter().map(|(n, _)| n.clone()).collect();
    if !fresh.is_empty() || names != applied {
        store.seed_event_types(missing, names).await?;
    }
    Ok(registry)
}

/// Purges events (with their deliveries and attempts) older than `keep`, every
/// `interval`, in small transactions so ingest is never blocked for long. A pass
/// runs only when the store says this node is the one to run it
/// (`Db::begin_retention`: on PostgreSQL the holder of the retention job lease,
/// one lease take per pass), and retention is given back at shutdown. Each pass
/// is counted in the engine's metrics (`hookbox_retention_passes_total`).
async fn retention_loop(
    store: Db,
    engine: Engine,
    keep: Duration,
    interval: Duration,
    shutdown: CancellationToken,
) {
    const CHUNK: usize = 500;
    let metrics = engine.metrics();
    'passes: loop {
        tokio::select! {
            () = shutdown.cancelled() => break 'passes,
            () = tokio::time::sleep(interval) => {}
        }
        let mut pass = match store.begin_retention().await {
            Ok(Some(pass)) => pass,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "cannot take the retention lease");
                continue;
            }
        };
        metrics.set_retention_running(true);
        let cutoff = now_ms() - keep.as_millis() as i64;
        let mut purged = 0usize;
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            match store.purge_chunk(&mut pass, cutoff, CHUNK).await {
                Ok(Some(n)) => {
                    purged += n;
                    if n < CHUNK {
                        break;
                    }
                }
                Ok(None) => {
                    tracing::warn!("the retention lease went to another node mid-pass");
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, "retention purge failed");
                    break;
                }
            }
        }
        metrics.set_retention_running(false);
        metrics.observe_retention_pass(purged);
        if purged > 0 {
            tracing::info!(purged, "retention purge removed old events");
        }
    }
    // Bounded: a database that is gone at shutdown must not hold the stop up.
    let released = tokio::time::timeout(Duration::from_secs(2), store.end_retention()).await;
    if let Ok(Err(e)) = released {
        tracing::warn!(error = %e, "cannot give the retention lease back");
    }
}

/// Runs hookbox until SIGTERM or SIGINT, then shuts down gracefully.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let app = App::build(config).await?;
    if app.admin_token_generated {
        // Printed once, on the start that generated it; it is also in the 0600 file.
        println!(
            "hookbox: generated admin token (also saved in <data_dir>/admin-token): {}",
            app.admin_token.expose()
        );
    }
    println!("hookbox: listening on http://{}", app.addr);
    wait_for_signal().await;
    tracing::info!("shutting down");
    app.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
