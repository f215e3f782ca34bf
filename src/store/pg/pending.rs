//! TEMPORARY (session 5, removed at merge): the store-interface methods other
//! branches are building on PostgreSQL, answering "not built yet" so the facade
//! compiles meanwhile. Each real method replaces its stub here.

use super::PgStore;
use crate::model::{Attempt, Delivery, Event, EventType, PortalSession, UnixMs};
use crate::notify::email::ThrottleState;
use crate::store::{AttemptWrite, DeliveryFilter, DueEntry, RecoverScope, StoreError};

fn not_yet<T>(what: &str) -> Result<T, StoreError> {
    Err(StoreError::Unavailable(format!(
        "{what} is not built on PostgreSQL yet"
    )))
}

#[allow(missing_docs, unused_variables, clippy::unused_async)]
impl PgStore {
    pub async fn applied_seeds(&self) -> Result<Vec<String>, StoreError> {
        not_yet("applied_seeds")
    }
    pub async fn seed_event_types(
        &self,
        types: Vec<EventType>,
        applied: Vec<String>,
    ) -> Result<usize, StoreError> {
        not_yet("seed_event_types")
    }
    pub async fn list_events(
        &self,
        tenant: &str,
        event_type: Option<&str>,
        since: Option<UnixMs>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Event>, Option<String>), StoreError> {
        not_yet("list_events")
    }
    pub async fn get_delivery(
        &self,
        id: &str,
    ) -> Result<Option<(Delivery, Vec<Attempt>)>, StoreError> {
        not_yet("get_delivery")
    }
    pub async fn delivery_with_event(
        &self,
        id: &str,
    ) -> Result<Option<(Delivery, Event)>, StoreError> {
        not_yet("delivery_with_event")
    }
    pub async fn list_webhook_deliveries(
        &self,
        webhook_id: &str,
        filter: &DeliveryFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Delivery>, Option<String>), StoreError> {
        not_yet("list_webhook_deliveries")
    }
    pub async fn count_recoverable(
        &self,
        webhook_id: &str,
        since: UnixMs,
    ) -> Result<u64, StoreError> {
        not_yet("count_recoverable")
    }
    pub async fn recover(
        &self,
        webhook_id: String,
        scope: RecoverScope,
    ) -> Result<u64, StoreError> {
        not_yet("recover")
    }
    pub async fn record_attempts(
        &self,
        writes: Vec<AttemptWrite>,
    ) -> Result<Vec<Option<Delivery>>, StoreError> {
        not_yet("record_attempts")
    }
    pub async fn record_manual(
        &self,
        attempt: Attempt,
        succeeded: bool,
    ) -> Result<Delivery, StoreError> {
        not_yet("record_manual")
    }
    pub async fn record_test(
        &self,
        event: Event,
        delivery: Delivery,
        attempt: Attempt,
    ) -> Result<(), StoreError> {
        not_yet("record_test")
    }
    pub async fn cancel_delivery(&self, entry: DueEntry, now: UnixMs) -> Result<(), StoreError> {
        not_yet("cancel_delivery")
    }
    pub async fn due_count(&self) -> Result<u64, StoreError> {
        not_yet("due_count")
    }
    pub async fn next_due(&self) -> Result<Option<u64>, StoreError> {
        not_yet("next_due")
    }
    pub async fn notify_state(
        &self,
        webhook_id: &str,
    ) -> Result<Option<ThrottleState>, StoreError> {
        not_yet("notify_state")
    }
    pub async fn update_notify_state<R, F>(&self, webhook_id: String, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&ThrottleState) -> (ThrottleState, R) + Send + 'static,
    {
        not_yet("update_notify_state")
    }
    pub async fn create_portal_session(&self, session: PortalSession) -> Result<(), StoreError> {
        not_yet("create_portal_session")
    }
    pub async fn portal_session(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<PortalSession>, StoreError> {
        not_yet("portal_session")
    }
    pub async fn portal_session_count(&self, tenant: &str) -> Result<u64, StoreError> {
        not_yet("portal_session_count")
    }
    pub async fn revoke_portal_sessions(&self, tenant: String) -> Result<u64, StoreError> {
        not_yet("revoke_portal_sessions")
    }
    pub async fn purge_before(&self, cutoff: UnixMs, limit: usize) -> Result<usize, StoreError> {
        not_yet("purge_before")
    }
    pub async fn tenant_being_purged(&self, tenant: &str) -> Result<bool, StoreError> {
        not_yet("tenant_being_purged")
    }
    pub async fn tenants_being_purged(&self) -> Result<Vec<String>, StoreError> {
        not_yet("tenants_being_purged")
    }
    pub async fn mark_orphaned_tenants(&self, now: i64) -> Result<Vec<String>, StoreError> {
        not_yet("mark_orphaned_tenants")
    }
    pub fn spawn_purge(&self, tenant: String) -> tokio::sync::oneshot::Receiver<()> {
        let (done, ended) = tokio::sync::oneshot::channel();
        let _ = done.send(());
        ended
    }
    pub async fn stop_purges(&self) {}
    pub fn is_healthy(&self) -> bool {
        true
    }
    pub fn start_listener(
        &self,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move { shutdown.cancelled().await })
    }
}
