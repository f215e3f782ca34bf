//! The redb table definitions: the on-disk layout. Keys are chosen so that new
//! records append (ids are time-ordered ULIDs) and every query is a range scan.

use redb::TableDefinition;

/// `tenant id -> Tenant`.
pub(crate) const TENANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenants");
/// `key id -> ApiKey`.
pub(crate) const API_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys");
/// `(tenant, name) -> EventType`.
pub(crate) const EVENT_TYPES: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("event_types");
/// `webhook id -> sealed Webhook` (the whole record is encrypted with the master key).
pub(crate) const WEBHOOKS: TableDefinition<&str, &[u8]> = TableDefinition::new("webhooks");
/// `(tenant, webhook id)`: a tenant's webhooks in creation order, for pagination.
pub(crate) const TENANT_WEBHOOKS: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("tenant_webhooks");
/// `event id -> Event` (format 3: the record also lists the event's delivery ids).
pub(crate) const EVENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("events");
/// `(tenant, event id)`: a tenant's events in time order.
pub(crate) const TENANT_EVENTS: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("tenant_events");
/// `(tenant, idempotency key) -> IdempotencyRecord`.
pub(crate) const IDEMPOTENCY: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("idempotency");
/// `delivery id -> Delivery`.
pub(crate) const DELIVERIES: TableDefinition<&str, &[u8]> = TableDefinition::new("deliveries");
/// `(webhook id, delivery id)`: a webhook's delivery log in time order.
pub(crate) const WEBHOOK_DELIVERIES: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("webhook_deliveries");
/// `(event id, delivery id)`: the deliveries of an event stored before format 3
/// (a version-1 event record). Read and purged, no longer written.
pub(crate) const EVENT_DELIVERIES: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("event_deliveries");
/// `(due unix ms, delivery id) -> webhook id`: every unfinished delivery, by due time.
/// The scheduler reads only this index to find work.
pub(crate) const DUE: TableDefinition<(u64, &str), &str> = TableDefinition::new("due");
/// `(webhook id, delivery id) -> due unix ms`: a webhook's unfinished deliveries, so
/// that disabling or deleting it cancels them without scanning the due index.
pub(crate) const PENDING: TableDefinition<(&str, &str), u64> = TableDefinition::new("pending");
/// `(delivery id, attempt number) -> Attempt`.
pub(crate) const ATTEMPTS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("attempts");
/// `webhook id -> notification state` (failure streak, email throttle).
pub(crate) const NOTIFY: TableDefinition<&str, &[u8]> = TableDefinition::new("notify");
/// `tenant id -> deleted at (unix ms)`: deleted tenants whose data is still being
/// purged (`purge.rs`); such an id cannot be created again until its row is gone.
pub(crate) const TENANT_PURGES: TableDefinition<&str, u64> = TableDefinition::new("tenant_purges");
/// `hex SHA-256 of a portal token -> PortalSession` (`records/portal.rs`). Small:
/// a tenant's expired sessions are dropped whenever it creates one, and revoking
/// or purging a tenant scans the table.
pub(crate) const PORTAL_SESSIONS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("portal_sessions");
/// `name -> value`: small store-wide records (the config seeds already applied).
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
