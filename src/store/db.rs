//! The store interface the API, the app and the delivery engine use: one of the two
//! engines, redb (one file, the default) or PostgreSQL (many nodes). Every method is
//! the engine's method of the same name; redb's reads run off the async threads.
//! It owns no state and decides nothing: the rules live in each engine, and both
//! keep the same ones (ARCHITECTURE.md, "The store's interface").

use std::sync::Arc;
use std::time::Instant;

use super::pg::PgStore;
use super::webhooks::Updated;
use super::{
    AttemptWrite, DeliveryFilter, DueEntry, IngestItem, Ingested, RecoverScope, Store, StoreError,
    Subscriber,
};
use crate::model::{
    ApiKey, Attempt, Delivery, Event, EventType, PortalSession, Tenant, UnixMs, Webhook,
};
use crate::notify::email::ThrottleState;

/// The store: one engine behind one interface. Cheap to clone.
#[derive(Clone)]
pub enum Db {
    /// One redb file in the data dir (single node).
    Redb(Store),
    /// One PostgreSQL database shared by any number of nodes.
    Postgres(PgStore),
}

/// A retention pass this node runs ([`Db::begin_retention`]): on PostgreSQL, when
/// it took the "retention" lease it runs under.
#[derive(Debug)]
pub struct RetentionPass {
    /// When the lease was last taken or renewed (PostgreSQL only).
    taken: Option<Instant>,
}

/// Runs a redb read off the async threads.
async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, StoreError> + Send + 'static,
) -> Result<R, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Unavailable(format!("store read task failed: {e}")))?
}

/// Calls the same method on whichever engine this is: redb's synchronous reads off
/// the async threads (`read`), writes and PostgreSQL's methods awaited (`write`).
macro_rules! both {
    (read $db:expr, $s:ident => $e:expr) => {
        match $db {
            Db::Redb(s) => {
                let $s = s.clone();
                blocking(move || $e).await
            }
            Db::Postgres($s) => ($e).await,
        }
    };
}

impl Db {
    /// The redb store, when this is one (the redb-only tools and tests).
    pub fn redb(&self) -> Option<&Store> {
        match self {
            Db::Redb(s) => Some(s),
            Db::Postgres(_) => None,
        }
    }

    /// The PostgreSQL store, when this is one.
    pub fn postgres(&self) -> Option<&PgStore> {
        match self {
            Db::Redb(_) => None,
            Db::Postgres(p) => Some(p),
        }
    }

    /// Sets the subscriber committed changes are published to (the registry).
    pub fn subscribe(&self, subscriber: Arc<dyn Subscriber>) {
        match self {
            Db::Redb(s) => s.subscribe(subscriber),
            Db::Postgres(p) => p.subscribe(subscriber),
        }
    }

    /// Whether the store can write now (redb: the disk; PostgreSQL: reachable).
    pub fn is_healthy(&self) -> bool {
        self.unready_reason().is_none()
    }

    /// Why the store cannot serve, if it cannot: `/readyz`'s reason.
    pub fn unready_reason(&self) -> Option<&'static str> {
        match self {
            Db::Redb(s) => {
                (!s.is_healthy()).then_some("the store cannot write (disk full or read-only?)")
            }
            Db::Postgres(p) => p.unready_reason(),
        }
    }

    /// The data file's size (redb only).
    pub fn data_file_size(&self) -> Option<u64> {
        self.redb().and_then(Store::data_file_size)
    }

    /// Closes the store after its last commit is durable.
    pub async fn close(&self) {
        match self {
            Db::Redb(s) => {
                let s = s.clone();
                let _ = tokio::task::spawn_blocking(move || s.close()).await;
            }
            Db::Postgres(p) => p.close(),
        }
    }

    // Tenants, keys, catalogues.

    /// See `Store::create_tenant`.
    pub async fn create_tenant(
        &self,
        tenant: Tenant,
        catalogue: Vec<EventType>,
    ) -> Result<(), StoreError> {
        match self {
            Db::Redb(s) => s.create_tenant(tenant, catalogue).await,
            Db::Postgres(p) => p.create_tenant(tenant, catalogue).await,
        }
    }

    /// See `Store::delete_tenant`.
    pub async fn delete_tenant(&self, id: String, now: i64) -> Result<Vec<String>, StoreError> {
        match self {
            Db::Redb(s) => s.delete_tenant(id, now).await,
            Db::Postgres(p) => p.delete_tenant(id, now).await,
        }
    }

    /// See `Store::list_tenants`.
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        both!(read self, s => s.list_tenants())
    }

    /// See `Store::create_api_key`.
    pub async fn create_api_key(&self, key: ApiKey) -> Result<(), StoreError> {
        match self {
            Db::Redb(s) => s.create_api_key(key).await,
            Db::Postgres(p) => p.create_api_key(key).await,
        }
    }

    /// See `Store::delete_api_key`.
    pub async fn delete_api_key(&self, id: String) -> Result<(), StoreError> {
        match self {
            Db::Redb(s) => s.delete_api_key(id).await,
            Db::Postgres(p) => p.delete_api_key(id).await,
        }
    }

    /// See `Store::list_api_keys`.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        both!(read self, s => s.list_api_keys())
    }

    /// See `Store::create_event_type`.
    pub async fn create_event_type(&self, et: EventType) -> Result<(), StoreError> {
        match self {
            Db::Redb(s) => s.create_event_type(et).await,
            Db::Postgres(p) => p.create_event_type(et).await,
        }
    }

    /// See `Store::delete_event_type`.
    pub async fn delete_event_type(&self, tenant: String, name: String) -> Result<(), StoreError> {
        match self {
            Db::Redb(s) => s.delete_event_type(tenant, name).await,
            Db::Postgres(p) => p.delete_event_type(tenant, name).await,
        }
    }

    /// See `Store::list_event_types`.
    pub async fn list_event_types(&self) -> Result<Vec<EventType>, StoreError> {
        both!(read self, s => s.list_event_types())
    }

    /// See `Store::applied_seeds`.
    pub async fn applied_seeds(&self) -> Result<Vec<String>, StoreError> {
        both!(read self, s => s.applied_seeds())
    }

    /// See `Store::seed_event_types`.
    pub async fn seed_event_types(
        &self,
        types: Vec<EventType>,
        applied: Vec<String>,
    ) -> Result<usize, StoreError> {
        match self {
            Db::Redb(s) => s.seed_event_types(types, applied).await,
            Db::Postgres(p) => p.seed_event_types(types, applied).await,
        }
    }

    // Webhooks.

    /// See `Store::create_webhook`.
    pub async fn create_webhook(&self, webhook: Webhook) -> Result<Arc<Webhook>, StoreError> {
        match self {
            Db::Redb(s) => s.create_webhook(webhook).await,
            Db::Postgres(p) => p.create_webhook(webhook).await,
        }
    }

    /// See `Store::update_webhook`.
    pub async fn update_webhook<R, E, F>(
        &self,
        id: String,
        f: F,
    ) -> Result<Result<Updated<R>, E>, StoreError>
    where
        R: Send + 'static,
        E: Send + 'static,
        F: FnOnce(&mut Webhook) -> Result<R, E> + Send + 'static,
    {
        match self {
            Db::Redb(s) => s.update_webhook(id, f).await,
            Db::Postgres(p) => p.update_webhook(id, f).await,
        }
    }

    /// See `Store::load_webhooks`.
    pub async fn load_webhooks(&self) -> Result<Vec<Webhook>, StoreError> {
        both!(read self, s => s.load_webhooks())
    }

    // Events and deliveries.

    /// See `Store::ingest`.
    pub async fn ingest(&self, items: Vec<IngestItem>) -> Result<Ingested, StoreError> {
        self.ingest_as(items, None).await
    }

    /// See `Store::ingest_as`.
    pub async fn ingest_as(
        &self,
        items: Vec<IngestItem>,
        key_id: Option<String>,
    ) -> Result<Ingested, StoreError> {
        match self {
            Db::Redb(s) => s.ingest_as(items, key_id).await,
            Db::Postgres(p) => p.ingest_as(items, key_id).await,
        }
    }

    /// See `Store::get_event`.
    pub async fn get_event(
        &self,
        id: String,
    ) -> Result<Option<(Event, Vec<Delivery>)>, StoreError> {
        both!(read self, s => s.get_event(&id))
    }

    /// See `Store::list_events`.
    pub async fn list_events(
        &self,
        tenant: String,
        event_type: Option<String>,
        since: Option<UnixMs>,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<(Vec<Event>, Option<String>), StoreError> {
        both!(read self, s => s.list_events(&tenant, event_type.as_deref(), since, cursor.as_deref(), limit))
    }

    /// See `Store::get_delivery`.
    pub async fn get_delivery(
        &self,
        id: String,
    ) -> Result<Option<(Delivery, Vec<Attempt>)>, StoreError> {
        both!(read self, s => s.get_delivery(&id))
    }

    /// See `Store::delivery_with_event`.
    pub async fn delivery_with_event(
        &self,
        id: String,
    ) -> Result<Option<(Delivery, Event)>, StoreError> {
        both!(read self, s => s.delivery_with_event(&id))
    }

    /// See `Store::list_webhook_deliveries`.
    pub async fn list_webhook_deliveries(
        &self,
        webhook_id: String,
        filter: DeliveryFilter,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<(Vec<Delivery>, Option<String>), StoreError> {
        both!(read self, s => s.list_webhook_deliveries(&webhook_id, &filter, cursor.as_deref(), limit))
    }

    /// See `Store::count_recoverable`.
    pub async fn count_recoverable(
        &self,
        webhook_id: String,
        since: UnixMs,
    ) -> Result<u64, StoreError> {
        both!(read self, s => s.count_recoverable(&webhook_id, since))
    }

    /// See `Store::recover`.
    pub async fn recover(
        &self,
        webhook_id: String,
        scope: RecoverScope,
    ) -> Result<u64, StoreError> {
        match self {
            Db::Redb(s) => s.recover(webhook_id, scope).await,
            Db::Postgres(p) => p.recover(webhook_id, scope).await,
        }
    }

    /// See `Store::record_attempts`.
    pub async fn record_attempts(
        &self,
        writes: Vec<AttemptWrite>,
    ) -> Result<Vec<Option<Delivery>>, StoreError> {
        match self {
            Db::Redb(s) => s.record_attempts(writes).await,
            Db::Postgres(p) => p.record_attempts(writes).await,
        }
    }

    /// See `Store::record_manual`.
    pub async fn record_manual(
        &self,
        attempt: Attempt,
        succeeded: bool,
    ) -> Result<Delivery, StoreError> {
        match self {
            Db::Redb(s) => s.record_manual(attempt, succeeded).await,
            Db::Postgres(p) => p.record_manual(attempt, succeeded).await,
        }
    }

    /// See `Store::record_test`.
    pub async fn record_test(
        &self,
        event: Event,
        delivery: Delivery,
        attempt: Attempt,
    ) -> Result<(), StoreError> {
        match self {
            Db::Redb(s) => s.record_test(event, delivery, attempt).await,
            Db::Postgres(p) => p.record_test(event, delivery, attempt).await,
        }
    }

    /// See `Store::cancel_delivery`.
    pub async fn cancel_delivery(&self, entry: DueEntry, now: UnixMs) -> Result<(), StoreError> {
        match self {
            Db::Redb(s) => s.cancel_delivery(entry, now).await,
            Db::Postgres(p) => p.cancel_delivery(entry, now).await,
        }
    }

    /// See `Store::due_count`.
    pub async fn due_count(&self) -> Result<u64, StoreError> {
        both!(read self, s => s.due_count())
    }

    /// See `Store::next_due`.
    pub async fn next_due(&self) -> Result<Option<u64>, StoreError> {
        both!(read self, s => s.next_due())
    }

    /// The first unfinished delivery of a webhook in event order (a FIFO line's
    /// head), if any.
    pub async fn first_unfinished(&self, webhook_id: String) -> Result<Option<String>, StoreError> {
        match self {
            Db::Redb(s) => {
                let s = s.clone();
                blocking(move || {
                    s.pending_due(&webhook_id, None, i64::MAX, 1)
                        .map(|(entries, _)| entries.into_iter().next().map(|e| e.delivery_id))
                })
                .await
            }
            Db::Postgres(p) => p.first_unfinished(&webhook_id).await,
        }
    }

    // Notifications.

    /// See `Store::notify_state`.
    pub async fn notify_state(
        &self,
        webhook_id: String,
    ) -> Result<Option<ThrottleState>, StoreError> {
        both!(read self, s => s.notify_state(&webhook_id))
    }

    /// See `Store::update_notify_state`.
    pub async fn update_notify_state<R, F>(&self, webhook_id: String, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&ThrottleState) -> (ThrottleState, R) + Send + 'static,
    {
        match self {
            Db::Redb(s) => s.update_notify_state(webhook_id, f).await,
            Db::Postgres(p) => p.update_notify_state(webhook_id, f).await,
        }
    }

    // Portal sessions.

    /// See `Store::create_portal_session`.
    pub async fn create_portal_session(&self, session: PortalSession) -> Result<(), StoreError> {
        match self {
            Db::Redb(s) => s.create_portal_session(session).await,
            Db::Postgres(p) => p.create_portal_session(session).await,
        }
    }

    /// See `Store::portal_session`. On redb a point read, done in place.
    pub async fn portal_session(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<PortalSession>, StoreError> {
        match self {
            Db::Redb(s) => s.portal_session(hash),
            Db::Postgres(p) => p.portal_session(hash).await,
        }
    }

    /// See `Store::portal_session_count`.
    pub async fn portal_session_count(&self, tenant: String) -> Result<u64, StoreError> {
        both!(read self, s => s.portal_session_count(&tenant))
    }

    /// See `Store::revoke_portal_sessions`.
    pub async fn revoke_portal_sessions(&self, tenant: String) -> Result<u64, StoreError> {
        match self {
            Db::Redb(s) => s.revoke_portal_sessions(tenant).await,
            Db::Postgres(p) => p.revoke_portal_sessions(tenant).await,
        }
    }

    // Retention and deleted tenants.

    /// Starts a retention pass if this node is the one to run it: on PostgreSQL it
    /// takes (or renews) the "retention" job lease, one round trip, and answers
    /// `None` when another node holds it (skip this pass); redb is always its own.
    pub async fn begin_retention(&self) -> Result<Option<RetentionPass>, StoreError> {
        match self {
            Db::Redb(_) => Ok(Some(RetentionPass { taken: None })),
            Db::Postgres(p) => Ok(p.try_retention_lease().await?.then(|| RetentionPass {
                taken: Some(Instant::now()),
            })),
        }
    }

    /// One chunk of `pass`: purges up to `limit` finished events created before
    /// `cutoff` (see `Store::purge_before`) and returns how many; call again until
    /// it returns less than `limit`. On PostgreSQL a long pass renews its lease in
    /// a chunk's transaction once half of it has gone by, and `None` (nothing
    /// removed) says another node holds it by then: the pass ends.
    pub async fn purge_chunk(
        &self,
        pass: &mut RetentionPass,
        cutoff: UnixMs,
        limit: usize,
    ) -> Result<Option<usize>, StoreError> {
        match (self, pass.taken.as_mut()) {
            (Db::Postgres(p), Some(taken)) => p.purge_in_pass(cutoff, limit, taken).await,
            // A pass with no lease time (begin_retention never makes one on
            // PostgreSQL): each chunk takes the lease itself.
            (Db::Postgres(p), None) => p.purge_before(cutoff, limit).await.map(Some),
            (Db::Redb(s), _) => s.purge_before(cutoff, limit).await.map(Some),
        }
    }

    /// Gives retention back at shutdown: on PostgreSQL releases the "retention"
    /// lease if this node holds it, so another node takes over at its next pass
    /// instead of after the lease runs out; nothing on redb.
    pub async fn end_retention(&self) -> Result<(), StoreError> {
        match self {
            Db::Redb(_) => Ok(()),
            Db::Postgres(p) => p.release_retention_lease().await.map(drop),
        }
    }

    /// See `Store::tenant_being_purged`.
    pub async fn tenant_being_purged(&self, tenant: String) -> Result<bool, StoreError> {
        both!(read self, s => s.tenant_being_purged(&tenant))
    }

    /// See `Store::tenants_being_purged`.
    pub async fn tenants_being_purged(&self) -> Result<Vec<String>, StoreError> {
        both!(read self, s => s.tenants_being_purged())
    }

    /// See `Store::mark_orphaned_tenants`.
    pub async fn mark_orphaned_tenants(&self, now: i64) -> Result<Vec<String>, StoreError> {
        match self {
            Db::Redb(s) => s.mark_orphaned_tenants(now).await,
            Db::Postgres(p) => p.mark_orphaned_tenants(now).await,
        }
    }

    /// See `Store::spawn_purge`.
    pub fn spawn_purge(&self, tenant: String) -> tokio::sync::oneshot::Receiver<()> {
        match self {
            Db::Redb(s) => s.spawn_purge(tenant),
            Db::Postgres(p) => p.spawn_purge(tenant),
        }
    }

    /// See `Store::stop_purges`.
    pub async fn stop_purges(&self) {
        match self {
            Db::Redb(s) => s.stop_purges().await,
            Db::Postgres(p) => p.stop_purges().await,
        }
    }
}
