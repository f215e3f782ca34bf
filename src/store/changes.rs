//! The change feed: what a commit changed in the small, hot state (tenants, keys,
//! catalogues, webhooks), as data. The writer publishes each committed job's changes
//! after the commit, in commit order, before the job's caller is answered, so a
//! caller that got its answer can read its write back from any view fed by this.
//! It owns the `Change` type and its delivery to the one in-process view; it never
//! decides anything and never does I/O.
//!
//! Changes carry whole records, never "re-read this id", so applying one needs no
//! I/O. Between PostgreSQL nodes a notification names what changed (it must stay
//! small and never carry a secret); the receiving node re-reads those records and
//! publishes the resulting `Change`s to its own feed (`store/pg/listen.rs`).

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
    /// Everything as now stored: the view's content is replaced by exactly this.
    /// Published by a PostgreSQL node's full refresh (after its change listener
    /// reconnects, and as a backstop), when it may have missed other nodes' changes.
    Reload {
        tenants: Vec<Tenant>,
        keys: Vec<ApiKey>,
        event_types: Vec<EventType>,
        /// Deleted ones included.
        webhooks: Vec<Arc<Webhook>>,
    },
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
