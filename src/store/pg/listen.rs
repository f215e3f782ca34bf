//! The change listener: one dedicated connection per node that `LISTEN`s for what
//! other nodes announce (`announce.rs`). On new work it wakes this node's delivery
//! loop; on another node's change it re-reads the named rows and publishes them on
//! this node's change feed (the registry), under the same write lock as this node's
//! own writes, so the registry follows the database's commit order. It ignores its
//! own node's notifications (already published locally). When the connection drops
//! it reconnects with backoff and then refreshes everything, since notifications
//! sent meanwhile are lost; it also refreshes every 30 s as a backstop. It owns the
//! listener half of [`PgStore::is_healthy`]. It never writes to the database and
//! never holds a transaction open across anything but SQL.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Connection, Notification};
use tokio_util::sync::CancellationToken;

use super::PgStore;
use super::announce::{self, CHANGES, WORK};
use super::tls::{self, Connector};
use crate::store::StoreError;
use std::sync::atomic::Ordering;

/// The first wait before reconnecting; doubled after each failure.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest wait between two reconnection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How often the whole state is re-read anyway, so that a lost notification costs
/// at most this long.
const BACKSTOP: Duration = Duration::from_secs(30);
/// How soon a failed re-read is made good by a full refresh, and how often the
/// pool is probed (by that refresh) while its last checkout failed.
const RETRY: Duration = Duration::from_secs(1);
/// Notifications handled together at most; more named changes than this waiting at
/// once are cheaper as one full refresh.
const MAX_BATCH: usize = 256;
/// How long the listener's connection may take to connect or to answer a ping.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One connected session: the client (kept to ping, and because dropping it closes
/// the connection) and the notifications its connection receives.
struct Session {
    client: tokio_postgres::Client,
    notes: mpsc::UnboundedReceiver<Notification>,
}

/// Why a session ended.
enum Ended {
    Shutdown,
    Lost(String),
}

impl PgStore {
    /// Starts this node's listener; it runs until `shutdown` is cancelled. Call it
    /// once, after [`PgStore::subscribe`]: on connecting it re-reads everything and
    /// publishes it, then every other node's change as it is announced.
    pub fn start_listener(&self, shutdown: CancellationToken) -> JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move { store.listen(shutdown).await })
    }

    /// The `application_name` of this node's listener connection (as shown in
    /// `pg_stat_activity`): `hookbox-listen-` and the node id.
    pub fn listener_name(&self) -> String {
        format!("hookbox-listen-{}", self.node_id())
    }

    /// Connects, serves, and reconnects with backoff until shutdown.
    async fn listen(self, shutdown: CancellationToken) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let ended = tokio::select! {
                _ = shutdown.cancelled() => Ended::Shutdown,
                session = self.connect_listener() => match session {
                    Ok(session) => self.serve(session, &shutdown, &mut backoff).await,
                    Err(e) => Ended::Lost(e.to_string()),
                },
            };
            let why = match ended {
                Ended::Shutdown => return,
                Ended::Lost(why) => why,
            };
            self.health.listener_down.store(true, Ordering::Relaxed);
            tracing::warn!(
                error = %why,
                retry_in_ms = backoff.as_millis() as u64,
                "PostgreSQL change listener down"
            );
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// A new listener connection (TLS as the pool's), listening on both channels.
    async fn connect_listener(&self) -> Result<Session, StoreError> {
        let mut config = (*self.config).clone();
        config
            .application_name(self.listener_name())
            .connect_timeout(CONNECT_TIMEOUT)
            // An idle connection to a vanished server is noticed within ~25 s, not
            // the system's default two hours.
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3);
        let unreachable = |e: tokio_postgres::Error| {
            StoreError::Unavailable(format!("cannot reach PostgreSQL: {}", tls::describe(&e)))
        };
        let (client, notes) = match &self.connector {
            Connector::Plain => {
                let (client, conn) = config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(unreachable)?;
                (client, drive(conn))
            }
            Connector::Tls(tls) => {
                let tls = Connector::rustls(tls);
                let (client, conn) = config.connect(tls).await.map_err(unreachable)?;
                (client, drive(conn))
            }
        };
        client
            .batch_execute(&format!("LISTEN {CHANGES}; LISTEN {WORK}"))
            .await
            .map_err(super::sql)?;
        Ok(Session { client, notes })
    }

    /// Serves one connected session until it is lost or shutdown.
    async fn serve(
        &self,
        mut session: Session,
        shutdown: &CancellationToken,
        backoff: &mut Duration,
    ) -> Ended {
        // Listening from here on, so anything committed from now is heard; what was
        // committed before (while down, or before the start) comes with this refresh.
        if let Err(e) = self.refresh().await {
            return Ended::Lost(format!("refresh after connecting: {e}"));
        }
        self.health.listener_down.store(false, Ordering::Relaxed);
        *backoff = BACKOFF_MIN;
        // Work may have arrived while nobody was listening.
        self.wake();
        tracing::info!("PostgreSQL change listener connected");
        let start = tokio::time::Instant::now() + BACKSTOP;
        let mut backstop = tokio::time::interval_at(start, BACKSTOP);
        backstop.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut retry = tokio::time::interval_at(start - BACKSTOP + RETRY, RETRY);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A re-read failed, so this node may have missed a change: refresh soon.
        let mut stale = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ended::Shutdown,
                note = session.notes.recv() => {
                    let Some(note) = note else {
                        return Ended::Lost("the listener connection closed".to_owned());
                    };
                    let mut batch = vec![note];
                    while batch.len() < MAX_BATCH {
                        match session.notes.try_recv() {
                            Ok(note) => batch.push(note),
                            Err(_) => break,
                        }
                    }
                    if let Err(e) = self.hear(&batch).await {
                        tracing::warn!(error = %e, "re-reading other nodes' changes failed");
                        stale = true;
                    }
                }
                _ = backstop.tick() => {
                    let ping = tokio::time::timeout(
                        CONNECT_TIMEOUT,
                        session.client.batch_execute("SELECT 1"),
                    );
                    match ping.await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return Ended::Lost(e.to_string()),
                        Err(_) => return Ended::Lost("the listener connection hangs".to_owned()),
                    }
                    stale = self.refresh_logged().await;
                }
                _ = retry.tick() => {
                    // Also while the pool's last checkout failed: the refresh's
                    // checkout is the probe that makes the node healthy again as soon
                    // as the database is back, even with no other traffic.
                    if stale || self.health.pool_down.load(Ordering::Relaxed) {
                        stale = self.refresh_logged().await;
                    }
                }
            }
        }
    }

    /// Handles notifications received together: wakes the delivery loop once for
    /// any new work, and publishes other nodes' changes as now stored.
    async fn hear(&self, batch: &[Notification]) -> Result<(), StoreError> {
        let mut named = Vec::new();
        let mut reload = false;
        let mut work = false;
        for note in batch {
            if note.channel() == WORK {
                work |= note.payload() != self.node_id();
            } else if note.channel() == CHANGES {
                match announce::parse(note.payload()) {
                    Some(note) if note.node == self.node_id() => {}
                    Some(note) => named.extend(note.changes),
                    None => {
                        tracing::warn!("an unreadable change notification; reloading");
                        reload = true;
                    }
                }
            }
        }
        if work {
            self.wake();
        }
        if reload || named.len() > MAX_BATCH {
            return self.refresh().await;
        }
        if named.is_empty() {
            return Ok(());
        }
        // Under the write lock: no local write commits and publishes between this
        // read and its publication, so an older read never overwrites a newer one.
        let _order = self.writes.lock().await;
        let client = self.client().await?;
        match self.reread(&client, &named).await? {
            Some(changes) => {
                self.publish(&changes);
                Ok(())
            }
            None => {
                drop(client);
                self.publish(&[self.snapshot().await?]);
                Ok(())
            }
        }
    }

    /// Re-reads everything and replaces the registry's content with it.
    async fn refresh(&self) -> Result<(), StoreError> {
        let _order = self.writes.lock().await;
        let reload = self.snapshot().await?;
        self.publish(&[reload]);
        Ok(())
    }

    /// [`PgStore::refresh`], logging a failure; returns whether it failed.
    async fn refresh_logged(&self) -> bool {
        match self.refresh().await {
            Ok(()) => false,
            Err(e) => {
                tracing::warn!(error = %e, "refreshing from PostgreSQL failed");
                true
            }
        }
    }

    /// Wakes the delivery loop, whether it waits with `notified()` or polls.
    fn wake(&self) {
        self.wakeups.notify_one();
        self.wakeups.notify_waiters();
    }
}

/// Drives `conn` on a task of its own, passing on its notifications. The receiver
/// ends when the connection does (lost, or closed because its client was dropped).
fn drive<S, T>(mut conn: Connection<S, T>) -> mpsc::UnboundedReceiver<Notification>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(note))) => {
                    if tx.send(note).is_err() {
                        return;
                    }
                }
                // Notices and other messages carry nothing for us.
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "the listener connection ended");
                    return;
                }
                None => return,
            }
        }
    });
    rx
}
