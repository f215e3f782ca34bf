//! The change feed: what a commit changed in the small, hot state (tenants, keys,
//! catalogues, webhooks), as data. The writer publishes each committed job's changes
//! after the commit, in commit order, before the job's caller is answered, so a
//! caller that got its answer can read its write back from any view fed by this.
//! It owns the `Change` type and its delivery to the one in-process view; it never
//! decides anything and never does I/O.
//!
//! The same `Change` values are what a multi-node engine (PostgreSQL) will send
//! between nodes, so they carry whole records, never "re-read this id".

use std::sync::{Arc, RwLock};

use crate::model::{ApiKey, EventType, Tenant, Webhook};

/// One committed change.
#[derive(Debug, Clone)]
pub enum Change {
    /// A tenant was created with its seeded catalogue.
    TenantCreated {
        tenant: Tenant,
        catalogue: Vec<EventType>,
    },
    /// A tenant was deleted. Lists everything the store's cascade changed: the keys
    /// and catalogue entries removed, and each of its webhooks as now stored.
    TenantDeleted {
        id: String,
        keys: Vec<String>,
        event_types: Vec<String>,
        webhooks: Vec<Arc<Webhook>>,
    },
    /// An API key was created.
    KeyCreated(ApiKey),
    /// An API key was revoked.
    KeyDeleted { id: String },
    /// Event types joined catalogues (created through the API or seeded at start).
    EventTypesAdded(Vec<EventType>),
    /// An event type left a tenant's catalogue.
    EventTypeDeleted { tenant: String, name: String },
    /// A webhook as now stored (created, changed, disabled or soft-deleted).
    Webhook(Arc<Webhook>),
}

/// What applies committed changes: the in-memory registry. Called on the writer
/// thread, so it must be quick and must not write to the store.
pub trait Subscriber: Send + Sync {
    /// Applies one commit's changes, in order.
    fn apply(&self, changes: &[Change]);
}

/// Where the writer publishes. Holds at most one subscriber (the registry); other
/// consumers (metrics, other nodes) would be added here as typed channels.
#[derive(Default)]
pub(crate) struct Feed {
    subscriber: RwLock<Option<Arc<dyn Subscriber>>>,
}

impl Feed {
    /// Sets the subscriber; later commits are applied to it.
    pub(crate) fn subscribe(&self, s: Arc<dyn Subscriber>) {
        *self.subscriber.write().unwrap_or_else(|e| e.into_inner()) = Some(s);
    }

    /// Publishes one committed job's changes.
    pub(crate) fn publish(&self, changes: &[Change]) {
        if changes.is_empty() {
            return;
        }
        let s = self
            .subscriber
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(s) = s {
            s.apply(changes);
        }
    }
}
