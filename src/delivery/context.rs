//! What the engine's tasks share: the store, the registry, the client, the limits
//! and the senders of the task queues. It holds no state of its own and decides
//! nothing; the scheduler, the recorder and the follow-up task each own theirs.

use std::time::Duration;

use tokio::sync::mpsc;

use super::client::HttpClient;
use super::dispatch::Limits;
use super::metrics::Metrics;
use super::msg::{FollowUp, Msg, Outcome};
use super::oauth::TokenCache;
use super::schedule::RetryPolicy;
use crate::notify::Notifier;
use crate::registry::Registry;
use crate::store::Db;

/// Follow-ups that may wait for the follow-up task before the recorder waits.
pub(super) const FOLLOWUP_QUEUE: usize = 1024;

/// Engine limits and policy.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Requests in flight at once, over all webhooks.
    pub max_in_flight: usize,
    /// Requests in flight at once to one webhook.
    pub per_webhook_in_flight: usize,
    /// Requests in flight at once for one tenant (all its webhooks).
    pub per_tenant_in_flight: usize,
    /// Event bytes that work waiting for a slot may hold in memory.
    pub max_queued_bytes: usize,
    /// The retry schedule.
    pub policy: RetryPolicy,
    /// A webhook failing continuously this long is disabled.
    pub disable_after: Duration,
    /// How long a node owns a claimed delivery on PostgreSQL unless it renews
    /// (`[store] lease`); unused on redb.
    pub lease: Duration,
}

impl EngineConfig {
    /// The dispatcher's bounds.
    pub(super) fn limits(&self) -> Limits {
        Limits::new(
            self.max_in_flight,
            self.per_tenant_in_flight,
            self.per_webhook_in_flight,
            self.max_queued_bytes,
        )
    }
}

/// The shared handles of the engine's tasks.
pub(super) struct Ctx {
    pub store: Db,
    pub registry: Registry,
    pub client: HttpClient,
    pub tokens: TokenCache,
    pub cfg: EngineConfig,
    pub metrics: Metrics,
    pub notifier: Notifier,
    pub to_scheduler: mpsc::UnboundedSender<Msg>,
    pub to_recorder: mpsc::UnboundedSender<Outcome>,
    pub to_followups: mpsc::Sender<FollowUp>,
}
