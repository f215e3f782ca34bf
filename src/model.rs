//! Domain types of hookbox: tenants, keys, event types, webhooks, events, deliveries
//! and attempts. Pure data and rules: no I/O, no wire format and no disk format live
//! here (the API has `api::dto`; the store has its own versioned records in
//! `store::records`, so these types may change freely).

use std::collections::BTreeMap;
use std::fmt;

/// Milliseconds since the Unix epoch, UTC. Every stored time uses this.
pub type UnixMs = i64;

/// The current wall-clock time in Unix milliseconds.
pub fn now_ms() -> UnixMs {
    jiff::Timestamp::now().as_millisecond()
}

/// Formats Unix milliseconds as RFC 3339 UTC (`2026-11-22T05:34:57.123Z`).
pub fn rfc3339(ms: UnixMs) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => format!("{ts:.3}"),
        Err(_) => "1970-01-01T00:00:00.000Z".to_owned(),
    }
}

/// Parses an RFC 3339 timestamp into Unix milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<UnixMs> {
    s.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

/// Generates a new sortable id: `prefix` + `_` + a ULID. Ids are strictly increasing
/// within this process, even within one millisecond, so lists ordered by id are in
/// creation order and new keys append at the end of redb's B-trees.
pub fn new_id(prefix: &str) -> String {
    static GENERATOR: std::sync::Mutex<ulid::Generator> =
        std::sync::Mutex::new(ulid::Generator::new());
    let next = GENERATOR
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .generate()
        // Only when 2^80 ids were made in one millisecond: a random one still sorts
        // by time.
        .unwrap_or_else(|_| ulid::Ulid::new());
    format!("{prefix}_{next}")
}

/// A secret string (signing secret, OAuth client secret, header value) whose Debug
/// and Display never print the value. `Deserialize` is for the config file (admin
/// token, master key, SMTP password); records on disk have their own types.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The plain value; call only where the secret is used or revealed on purpose.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// What an API key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    WebhooksRead,
    WebhooksWrite,
    EventsWrite,
    EventsRead,
}

impl Scope {
    /// Every scope, in documentation order.
    pub const ALL: [Scope; 4] = [
        Scope::WebhooksRead,
        Scope::WebhooksWrite,
        Scope::EventsWrite,
        Scope::EventsRead,
    ];

    /// The wire name, e.g. `webhooks:read`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::WebhooksRead => "webhooks:read",
            Scope::WebhooksWrite => "webhooks:write",
            Scope::EventsWrite => "events:write",
            Scope::EventsRead => "events:read",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|sc| sc.as_str() == s)
    }
}

/// An organisation whose webhooks are isolated from every other tenant's.
#[derive(Clone, Debug, PartialEq)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub created_at: UnixMs,
}

/// An API key record. The key itself is never stored: only its SHA-256 hash.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiKey {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    /// SHA-256 of the full key string.
    pub hash: [u8; 32],
    /// The first characters of the key (`hbk_ab12`), to recognise it in lists.
    pub prefix: String,
    pub created_at: UnixMs,
}

/// A portal session: a short-lived bearer token (`hbp_...`) a tenant hands its own
/// customer for the portal page. Only its SHA-256 hash is stored.
#[derive(Clone, Debug, PartialEq)]
pub struct PortalSession {
    /// SHA-256 of the full token string.
    pub hash: [u8; 32],
    pub tenant: String,
    /// Read-only sessions hold `webhooks:read` only.
    pub read_only: bool,
    pub created_at: UnixMs,
    /// After this instant the token is refused (at most 24 h after creation).
    pub expires_at: UnixMs,
}

impl PortalSession {
    /// The scopes the session holds: `webhooks:read`, plus `webhooks:write` unless
    /// it is read-only.
    pub fn scopes(&self) -> &'static [Scope] {
        if self.read_only {
            &[Scope::WebhooksRead]
        } else {
            &[Scope::WebhooksRead, Scope::WebhooksWrite]
        }
    }
}

/// An entry of a tenant's event-type catalogue.
#[derive(Clone, Debug, PartialEq)]
pub struct EventType {
    pub tenant: String,
    pub name: String,
    pub description: Option<String>,
    /// Optional JSON Schema, kept as the JSON text it was given in.
    pub schema: Option<String>,
    pub created_at: UnixMs,
}

/// OAuth2 client-credentials settings used to authenticate to a receiver.
#[derive(Clone, Debug, PartialEq)]
pub struct OAuthConfig {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub scope: Option<String>,
    /// Extra headers sent with the token request.
    pub headers: BTreeMap<String, Secret>,
}

/// One signing secret of a webhook. The first in a webhook's list is current.
#[derive(Clone, Debug, PartialEq)]
pub struct SigningSecret {
    /// `whsec_` + base64 of the key bytes.
    pub secret: Secret,
    /// When an old secret stops signing (set on rotation); `None` for the current one.
    pub expires_at: Option<UnixMs>,
}

/// A webhook subscription.
#[derive(Clone, Debug, PartialEq)]
pub struct Webhook {
    pub id: String,
    pub tenant: String,
    pub url: String,
    /// Normalised filters: exact names, `*` for every type, or `prefix.*`.
    pub event_types: Vec<String>,
    /// When non-empty, an event must carry one of these channels to match.
    pub channels: Vec<String>,
    pub description: Option<String>,
    /// Custom headers sent with every request; values are secret (API keys...).
    pub headers: BTreeMap<String, Secret>,
    pub oauth: Option<OAuthConfig>,
    /// 1..=2 secrets, current first.
    pub secrets: Vec<SigningSecret>,
    pub notification_email: Option<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<UnixMs>,
    pub metadata: BTreeMap<String, String>,
    pub rate_limit_per_second: Option<u32>,
    pub created_at: UnixMs,
    pub updated_at: UnixMs,
    /// Set by the soft delete; a deleted webhook is invisible and never delivered to.
    pub deleted_at: Option<UnixMs>,
    /// Start of the current run of failed deliveries (auto-disable), if failing.
    pub failing_since: Option<UnixMs>,
    /// Bumped by the store on every write that changes the record; the API shows it
    /// as the `ETag`. A record written by 0.1.0 reads as version 1.
    pub version: u64,
    /// Whether deliveries go out one at a time in event order (DESIGN.md section 9).
    pub ordering: Ordering,
    /// The payload filter (DESIGN.md section 9), compiled once when validated or
    /// decoded (the record stores its canonical JSON text); `None` lets every event
    /// that matches the types and channels through.
    pub filter: Option<crate::filter::Filter>,
}

/// How a webhook's deliveries are ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Ordering {
    /// Attempted concurrently, as capacity allows (the default).
    #[default]
    None,
    /// One at a time in event order; a retry keeps the head of the line.
    Fifo,
}

impl Ordering {
    /// The wire and config spelling: `"none"` or `"fifo"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Ordering::None => "none",
            Ordering::Fifo => "fifo",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<Ordering> {
        match s {
            "none" => Some(Ordering::None),
            "fifo" => Some(Ordering::Fifo),
            _ => None,
        }
    }
}

impl Webhook {
    /// Whether this webhook wants events of `event_type` carrying `channels`.
    /// Disabled or deleted webhooks match nothing.
    pub fn matches(&self, event_type: &str, channels: &[String]) -> bool {
        if !self.enabled || self.deleted_at.is_some() {
            return false;
        }
        if !self
            .event_types
            .iter()
            .any(|f| type_filter_matches(f, event_type))
        {
            return false;
        }
        self.channels.is_empty() || channels.iter().any(|c| self.channels.contains(c))
    }

    /// The secrets that sign a request at `now`: the current one and any old one
    /// still inside its grace period.
    pub fn active_secrets(&self, now: UnixMs) -> impl Iterator<Item = &Secret> {
        self.secrets
            .iter()
            .filter(move |s| s.expires_at.is_none_or(|t| t > now))
            .map(|s| &s.secret)
    }
}

/// Whether one event-type filter (`*`, `prefix.*` or an exact name) accepts `name`.
pub fn type_filter_matches(filter: &str, name: &str) -> bool {
    if filter == "*" {
        return true;
    }
    match filter.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => filter == name,
    }
}

/// One message from the application.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub id: String,
    pub tenant: String,
    pub event_type: String,
    /// The `data` JSON exactly as received.
    pub payload: String,
    pub channels: Vec<String>,
    pub idempotency_key: Option<String>,
    pub created_at: UnixMs,
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Waiting for its first attempt.
    Pending,
    /// A receiver answered 2xx.
    Succeeded,
    /// The last attempt failed; another is scheduled.
    Failed,
    /// Every attempt of the schedule failed.
    Exhausted,
    /// The webhook was deleted or disabled before the delivery finished.
    Cancelled,
}

impl DeliveryState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Succeeded => "succeeded",
            DeliveryState::Failed => "failed",
            DeliveryState::Exhausted => "exhausted",
            DeliveryState::Cancelled => "cancelled",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            DeliveryState::Pending,
            DeliveryState::Succeeded,
            DeliveryState::Failed,
            DeliveryState::Exhausted,
            DeliveryState::Cancelled,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    /// Whether no further attempt will be made by the scheduler.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeliveryState::Succeeded | DeliveryState::Exhausted | DeliveryState::Cancelled
        )
    }
}

/// One (event, webhook) pair.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub id: String,
    pub tenant: String,
    pub event_id: String,
    pub webhook_id: String,
    pub event_type: String,
    pub state: DeliveryState,
    /// Attempts made so far (scheduled and manual; test events have no delivery).
    pub attempts: u32,
    /// Scheduled attempts made since the delivery was created or last recovered: the
    /// position in the retry schedule.
    pub schedule_step: u32,
    /// When the next scheduled attempt is due, while not final.
    pub next_attempt_at: Option<UnixMs>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: UnixMs,
    pub updated_at: UnixMs,
}

/// What started an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Scheduled,
    Manual,
    Test,
}

impl Trigger {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Scheduled => "scheduled",
            Trigger::Manual => "manual",
            Trigger::Test => "test",
        }
    }
}

/// One HTTP try of a delivery.
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    pub delivery_id: String,
    /// 1-based attempt number within the delivery.
    pub number: u32,
    pub at: UnixMs,
    pub trigger: Trigger,
    pub status: Option<u16>,
    /// Network error, timeout or refusal reason, when there was no usable answer.
    pub error: Option<String>,
    pub latency_ms: u64,
    /// The first 4 KiB of the response body (lossy UTF-8).
    pub response_body: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_made_in_a_burst_are_strictly_increasing() {
        // Thousands of ids fall in the same millisecond; a plain random ULID would
        // order them randomly within it.
        let ids: Vec<String> = (0..5000).map(|_| new_id("evt")).collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} then {}", pair[0], pair[1]);
        }
        assert!(
            ids.iter()
                .all(|id| id.starts_with("evt_") && id.len() == 30)
        );
    }

    #[test]
    fn type_filters() {
        let cases = [
            ("*", "a.b", true),
            ("shift.*", "shift.created", true),
            ("shift.*", "shift.report.created", true),
            ("shift.*", "shiftx", false),
            ("PROVIDER_CRED_APPROVED", "PROVIDER_CRED_APPROVED", true),
            ("PROVIDER_CRED_APPROVED", "PROVIDER_CRED_DENIED", false),
        ];
        for (filter, name, want) in cases {
            assert_eq!(
                type_filter_matches(filter, name),
                want,
                "{filter} vs {name}"
            );
        }
    }

    #[test]
    fn secret_debug_is_masked() {
        let s = Secret::new("whsec_abc");
        assert_eq!(format!("{s:?}"), "****");
    }

    #[test]
    fn rfc3339_round_trip() {
        let ms = 1_763_790_000_123;
        assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms));
    }
}
