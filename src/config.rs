//! Configuration: the TOML file plus `HOOKBOX_*` environment overrides, turned into a
//! validated [`Config`]. It owns every default and every check of a setting; it must
//! never read the process environment itself (the caller passes it in), touch any
//! file but the config file, or print a secret.
//!
//! Loading (in `config/validate.rs`) goes file text -> a raw shape (everything
//! optional, durations as strings) -> env overrides -> one validation pass that
//! collects every problem, so an operator fixes a broken file in one round instead
//! of one error at a time.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::model::Secret;
use crate::store::pg::Statements;

mod portal;
mod store;
#[cfg(test)]
mod tests;
mod validate;

pub use portal::{default_public_url, origin as url_origin};

/// The environment variables that override config keys, with the key each sets.
/// Empty values are ignored, so `HOOKBOX_X=` in a unit file does not clear a setting.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("HOOKBOX_LISTEN", "listen"),
    ("HOOKBOX_DATA_DIR", "data_dir"),
    ("HOOKBOX_ADMIN_TOKEN", "admin_token"),
    ("HOOKBOX_MASTER_KEY", "master_key"),
    ("HOOKBOX_MAX_BODY_BYTES", "max_body_bytes"),
    ("HOOKBOX_CACHE_MIB", "cache_mib"),
    (
        "HOOKBOX_PER_TENANT_IN_FLIGHT",
        "delivery.per_tenant_in_flight",
    ),
    ("HOOKBOX_MAX_QUEUED_BYTES", "delivery.max_queued_bytes"),
    ("HOOKBOX_LOG_FORMAT", "log.format"),
    ("HOOKBOX_LOG_LEVEL", "log.level"),
    ("HOOKBOX_REQUIRE_HTTPS", "security.require_https"),
    ("HOOKBOX_ALLOW_NETWORKS", "security.allow_networks"),
    ("HOOKBOX_SMTP_PASSWORD", "smtp.password"),
    ("HOOKBOX_API_PROFILES", "api.profiles"),
    ("HOOKBOX_PUBLIC_URL", "public_url"),
    ("HOOKBOX_STORE_BACKEND", "store.backend"),
    ("HOOKBOX_POSTGRES_URL", "store.postgres_url"),
    ("HOOKBOX_POSTGRES_POOL", "store.postgres_pool"),
    ("HOOKBOX_POSTGRES_CA_FILE", "store.postgres_ca_file"),
    ("HOOKBOX_POSTGRES_STATEMENTS", "store.postgres_statements"),
    ("HOOKBOX_POSTGRES_LISTEN_URL", "store.postgres_listen_url"),
    ("HOOKBOX_STORE_LEASE", "store.lease"),
];

/// The validated configuration of one hookbox process.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Address of the HTTP API (`listen`, env `HOOKBOX_LISTEN`).
    pub listen: SocketAddr,
    /// Directory of the redb file, the master key and the admin token (`data_dir`).
    pub data_dir: PathBuf,
    /// The admin token; when absent the app generates one into `<data_dir>/admin-token`.
    pub admin_token: Option<Secret>,
    /// Base64 of the 32-byte key sealing secrets at rest; when absent the app uses
    /// `<data_dir>/master.key`. Validated to decode to exactly 32 bytes.
    pub master_key: Option<Secret>,
    /// Largest accepted request body, 1 KiB..=64 MiB.
    pub max_body_bytes: usize,
    /// The store's page cache in MiB, 4..=65536 (`cache_mib`). Most of the memory
    /// hookbox holds beyond a few MiB; raise it for very large backlogs.
    pub cache_mib: usize,
    /// Logging.
    pub log: LogConfig,
    /// TLS for the API; plain HTTP when absent.
    pub tls: Option<TlsConfig>,
    /// Receiver URL policy and the SSRF guard's exceptions.
    pub security: SecurityConfig,
    /// Outbound delivery: retries, timeouts, concurrency.
    pub delivery: DeliveryConfig,
    /// How long history is kept.
    pub retention: RetentionConfig,
    /// SMTP for failure emails; no emails are sent when absent.
    pub smtp: Option<SmtpConfig>,
    /// Notification throttling.
    pub notify: NotifyConfig,
    /// The event-type catalogue seeded into every tenant (`[[event_types]]`).
    pub event_types: Vec<EventTypeSeed>,
    /// Seed API profiles served beside `/v1` (`[api] profiles`, env
    /// `HOOKBOX_API_PROFILES` as a comma list); none by default.
    pub api_profiles: Vec<ApiProfile>,
    /// The address users reach hookbox at (`public_url`, env `HOOKBOX_PUBLIC_URL`),
    /// without a trailing `/`; portal links start with it. `None` means
    /// `http://<listen>` (`https://` with `[tls]`), with the port actually bound.
    pub public_url: Option<String>,
    /// The portal page's branding and framing (`[portal]`).
    pub portal: PortalConfig,
    /// Which engine holds the data (`[store]`).
    pub store: StoreConfig,
}

/// Which engine holds the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// One redb file in `data_dir` (one node; the default).
    #[default]
    Redb,
    /// One PostgreSQL database shared by any number of nodes (DESIGN.md section 7).
    Postgres,
}

/// `[store]`: the engine and, for PostgreSQL, how to reach it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    /// `backend` (env `HOOKBOX_STORE_BACKEND`): `redb` or `postgres`.
    pub backend: Backend,
    /// `postgres_url` (env `HOOKBOX_POSTGRES_URL`); required with `postgres`. A
    /// secret: it may carry the password.
    pub postgres_url: Option<Secret>,
    /// `postgres_pool` (env `HOOKBOX_POSTGRES_POOL`): connections per node, 1..=1024.
    pub postgres_pool: usize,
    /// `postgres_ca_file` (env `HOOKBOX_POSTGRES_CA_FILE`): the PEM file of the CAs
    /// that sign the database's certificate, trusted instead of the public roots
    /// (as `sslrootcert` in the URL); checked at start to hold a certificate.
    pub postgres_ca_file: Option<PathBuf>,
    /// `postgres_statements` (env `HOOKBOX_POSTGRES_STATEMENTS`): `cached` (the
    /// default: the hot paths' statements prepared once per connection) or
    /// `unnamed` (every statement sent unnamed with its parameter types, nothing
    /// left on the server connection: for PgBouncer in transaction mode before 1.21
    /// or without `max_prepared_statements`).
    pub postgres_statements: Statements,
    /// `postgres_listen_url` (env `HOOKBOX_POSTGRES_LISTEN_URL`): where the change
    /// listener connects instead of `postgres_url`. `LISTEN` needs a session of its
    /// own: behind a pooler in transaction mode, point this at PostgreSQL itself
    /// (or a session-mode pool). A secret, as `postgres_url`.
    pub postgres_listen_url: Option<Secret>,
    /// `lease` (env `HOOKBOX_STORE_LEASE`): how long a node owns a claimed delivery
    /// unless it renews; at least 3 x `delivery.request_timeout`.
    pub lease: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: Backend::Redb,
            postgres_url: None,
            postgres_pool: 16,
            postgres_ca_file: None,
            postgres_statements: Statements::Cached,
            postgres_listen_url: None,
            lease: Duration::from_secs(60),
        }
    }
}

/// A seed API profile (DESIGN.md section 10): one seed document's webhook API,
/// served over the same core as `/v1`. The routes live in `api/profiles/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApiProfile {
    /// Seeds 000 and 001: `/v2/webhooks`.
    V2Webhooks,
    /// Seed 002: `POST /v1/webhook/create`.
    WebhookCreate,
    /// Seed 003: `/v1/webhook-subscriptions`.
    WebhookSubscriptions,
    /// Seed 004: `/api/v2/public/webhooks/facility`.
    FacilityWebhooks,
}

impl ApiProfile {
    /// Every profile, in the order of DESIGN.md section 10.
    pub const ALL: [ApiProfile; 4] = [
        ApiProfile::V2Webhooks,
        ApiProfile::WebhookCreate,
        ApiProfile::WebhookSubscriptions,
        ApiProfile::FacilityWebhooks,
    ];

    /// The name used in the config file, the OpenAPI tags and the README.
    pub fn name(self) -> &'static str {
        match self {
            ApiProfile::V2Webhooks => "v2-webhooks",
            ApiProfile::WebhookCreate => "webhook-create",
            ApiProfile::WebhookSubscriptions => "webhook-subscriptions",
            ApiProfile::FacilityWebhooks => "facility-webhooks",
        }
    }

    /// The profile called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<ApiProfile> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// The portal page's branding and who may frame it (`[portal]`).
#[derive(Debug, Clone, PartialEq)]
pub struct PortalConfig {
    /// The title shown on the page (default `Webhooks`).
    pub name: String,
    /// The accent colour, `#rgb` or `#rrggbb` (default `#2563eb`).
    pub accent: String,
    /// An `https://` logo URL, or empty for none.
    pub logo_url: String,
    /// Origins (`https://app.example.com`) allowed to frame the page; empty means
    /// `frame-ancestors 'none'`.
    pub frame_ancestors: Vec<String>,
}

impl Default for PortalConfig {
    fn default() -> Self {
        Self {
            name: "Webhooks".to_owned(),
            accent: "#2563eb".to_owned(),
            logo_url: String::new(),
            frame_ancestors: Vec::new(),
        }
    }
}

/// Log output settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Text for terminals, JSON for log collectors.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `info,hookbox=debug`; `RUST_LOG` wins.
    pub level: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Certificate and key (PEM files) for serving the API over TLS.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Receiver URL policy.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityConfig {
    /// Refuse `http://` webhook URLs.
    pub require_https: bool,
    /// Networks exempt from the SSRF guard (normalised to their network address).
    pub allow_networks: Vec<IpNet>,
}

/// Outbound delivery settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryConfig {
    /// Delay before each attempt: entry 0 is the first attempt after ingest, entry
    /// `n` the wait after attempt `n` fails. Never empty.
    pub retry_schedule: Vec<Duration>,
    /// Each delay is scaled by a random factor in `[1 - jitter, 1 + jitter]`; in 0..=1.
    pub jitter: f64,
    /// TCP (and TLS) connect timeout; positive and at most `request_timeout`.
    pub connect_timeout: Duration,
    /// Whole-request timeout, connect included; positive.
    pub request_timeout: Duration,
    /// A webhook failing continuously for this long is disabled; positive.
    pub disable_after: Duration,
    /// Bound on outbound requests in flight across all webhooks; at least 1.
    pub max_in_flight: usize,
    /// Bound on outbound requests in flight to one webhook; at least 1.
    pub per_webhook_in_flight: usize,
    /// Bound on outbound requests in flight for one tenant (all its webhooks), so one
    /// tenant cannot hold every slot while others wait; at least 1 and at most
    /// `max_in_flight`. `None` means a quarter of `max_in_flight` (at least 1): see
    /// [`DeliveryConfig::per_tenant_bound`].
    pub per_tenant_in_flight: Option<usize>,
    /// Bytes of event payload that work waiting in memory may hold; past it, waiting
    /// work is kept as ids and its event is read back when its attempt starts. At
    /// least 1 MiB.
    pub max_queued_bytes: usize,
    /// Cap on an honoured `Retry-After`, so a receiver cannot park deliveries for days.
    pub retry_after_max: Duration,
    /// Extra PEM CA bundle trusted for receivers (private CAs), besides webpki roots.
    pub ca_file: Option<PathBuf>,
}

/// History retention.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionConfig {
    /// Events and their attempts older than this are purged; positive.
    pub events: Duration,
    /// How often the purge runs; positive.
    pub purge_interval: Duration,
}

/// SMTP relay for failure emails.
#[derive(Debug, Clone, PartialEq)]
pub struct SmtpConfig {
    /// Relay host name.
    pub host: String,
    /// Relay port; defaults by `tls`: 587 (starttls), 465 (tls), 25 (none).
    pub port: u16,
    /// Transport security.
    pub tls: SmtpTls,
    /// Login user; set together with `password`.
    pub username: Option<String>,
    /// Login password (env `HOOKBOX_SMTP_PASSWORD`).
    pub password: Option<Secret>,
    /// The sender mailbox, e.g. `hookbox <hookbox@example.com>`.
    pub from: String,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required, not opportunistic).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// No encryption: only for a relay on localhost or a trusted network.
    None,
}

impl SmtpTls {
    /// The conventional port of this mode.
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        }
    }
}

/// Notification settings.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyConfig {
    /// At most one failure email per webhook per this interval.
    pub email_interval: Duration,
}

/// One entry of the event-type catalogue seeded into every tenant.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventTypeSeed {
    /// The type name, e.g. `PROVIDER_CRED_APPROVED` or `shift.report.created`.
    pub name: String,
    /// What the event means, shown in the catalogue.
    pub description: Option<String>,
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}", path.display())]
    Read {
        /// The file named on the command line or in `HOOKBOX_CONFIG`.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML, has a value of the wrong type, or has an unknown key.
    #[error("config file is not valid")]
    Parse(#[source] toml::de::Error),
    /// Values are out of range or inconsistent; one message per problem, each
    /// naming its key.
    #[error("invalid configuration: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

/// A duration string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing was given.
    #[error("empty duration (expected a whole number and a unit, e.g. \"5s\")")]
    Empty,
    /// The number is missing, negative or fractional.
    #[error("{0:?} must be a whole number followed by a unit (ms, s, m, h, d), e.g. \"250ms\"")]
    InvalidNumber(String),
    /// The number has no unit; a bare number is ambiguous.
    #[error("{0:?} has no unit (use ms, s, m, h or d, e.g. \"5s\")")]
    MissingUnit(String),
    /// The unit is not one of ms, s, m, h, d.
    #[error("{input:?} has an unknown unit {unit:?} (use ms, s, m, h or d)")]
    UnknownUnit {
        /// The whole input.
        input: String,
        /// The part after the number.
        unit: String,
    },
    /// The value does not fit in a duration.
    #[error("{0:?} is too large")]
    Overflow(String),
}

/// Parses a duration written as a whole number and a unit: `ms`, `s`, `m`, `h` or
/// `d` (`"250ms"`, `"5m"`, `"5d"`). Surrounding whitespace is ignored.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let text = s.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    if number.is_empty() || unit.starts_with(['.', ',']) {
        return Err(DurationError::InvalidNumber(text.to_owned()));
    }
    let millis_per_unit: u64 = match unit {
        "" => return Err(DurationError::MissingUnit(text.to_owned())),
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(DurationError::UnknownUnit {
                input: text.to_owned(),
                unit: unit.to_owned(),
            });
        }
    };
    // `number` is all ASCII digits, so parsing fails only on overflow.
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(millis_per_unit))
        .map(Duration::from_millis)
        .ok_or_else(|| DurationError::Overflow(text.to_owned()))
}

impl Default for Config {
    /// The embedded defaults: `hookbox serve` works with no file at all.
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
            data_dir: PathBuf::from("./hookbox-data"),
            admin_token: None,
            master_key: None,
            max_body_bytes: 1024 * 1024,
            // Small enough for the RSS goal (under 100 MB with 1M pending), large
            // enough for the hot indexes (BENCHMARKS.md).
            cache_mib: 16,
            log: LogConfig::default(),
            tls: None,
            security: SecurityConfig::default(),
            delivery: DeliveryConfig::default(),
            retention: RetentionConfig::default(),
            smtp: None,
            notify: NotifyConfig::default(),
            event_types: Vec::new(),
            api_profiles: Vec::new(),
            public_url: None,
            portal: PortalConfig::default(),
            store: StoreConfig::default(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            require_https: true,
            allow_networks: Vec::new(),
        }
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        const MIN: u64 = 60;
        const HOUR: u64 = 3600;
        Self {
            retry_schedule: [
                0,
                5,
                5 * MIN,
                30 * MIN,
                2 * HOUR,
                5 * HOUR,
                10 * HOUR,
                14 * HOUR,
                20 * HOUR,
                24 * HOUR,
            ]
            .map(Duration::from_secs)
            .to_vec(),
            jitter: 0.2,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            disable_after: Duration::from_secs(5 * 24 * HOUR),
            max_in_flight: 256,
            per_webhook_in_flight: 16,
            per_tenant_in_flight: None,
            max_queued_bytes: 64 * 1024 * 1024,
            retry_after_max: Duration::from_secs(HOUR),
            ca_file: None,
        }
    }
}

impl DeliveryConfig {
    /// The per-tenant in-flight bound in force: the configured value, or a quarter
    /// of `max_in_flight` (at least 1).
    pub fn per_tenant_bound(&self) -> usize {
        self.per_tenant_in_flight
            .unwrap_or(self.max_in_flight / 4)
            .clamp(1, self.max_in_flight.max(1))
    }
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            events: Duration::from_secs(30 * 24 * 3600),
            purge_interval: Duration::from_secs(3600),
        }
    }
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            email_interval: Duration::from_secs(3600),
        }
    }
}

impl Config {
    /// Loads the configuration: the file at `path` if given (the defaults otherwise),
    /// then the `HOOKBOX_*` overrides found in `env` (see [`ENV_OVERRIDES`]; `main`
    /// passes `std::env::vars()`), then validation of the result.
    pub fn load(path: Option<&Path>, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let text = match path {
            Some(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?,
            None => String::new(),
        };
        Self::from_toml(&text, env)
    }

    /// [`Config::load`] on config text already in memory.
    pub fn from_toml(text: &str, env: &[(String, String)]) -> Result<Config, ConfigError> {
        validate::from_toml(text, env)
    }

    /// The decoded master key, when one is configured. Validation guarantees that a
    /// configured key decodes to 32 bytes, so `None` means "use the key file".
    pub fn master_key_bytes(&self) -> Option<[u8; 32]> {
        self.master_key
            .as_ref()
            .and_then(|key| validate::decode_master_key(key.expose()).ok())
    }
}
