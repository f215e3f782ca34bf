//! Turns config text and env overrides into a validated [`Config`], collecting
//! every problem. It owns the raw file shape and the checks; it must never read the
//! process environment or any file.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use ipnet::IpNet;
use serde::Deserialize;

use super::{
    ApiProfile, Config, ConfigError, DeliveryConfig, ENV_OVERRIDES, EventTypeSeed, LogConfig,
    LogFormat, NotifyConfig, RetentionConfig, SecurityConfig, SmtpConfig, SmtpTls, TlsConfig,
    parse_duration,
};
use crate::model::Secret;

/// Smallest accepted `max_body_bytes`: below this even a small event is refused.
const MIN_BODY_BYTES: i64 = 1024;
/// Largest accepted `max_body_bytes`: bodies are held in memory and in one record.
const MAX_BODY_BYTES: i64 = 64 * 1024 * 1024;
/// The accepted range of `cache_mib`.
const CACHE_MIB: (i64, i64) = (4, 65536);

/// Parses `text`, applies the overrides in `env`, and validates the result.
pub(super) fn from_toml(text: &str, env: &[(String, String)]) -> Result<Config, ConfigError> {
    let mut raw: RawConfig = toml::from_str(text).map_err(ConfigError::Parse)?;
    let mut problems = Problems::default();
    apply_env(&mut raw, env, &mut problems);
    let config = build(raw, &mut problems);
    if problems.list.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid(problems.list))
    }
}

/// Decodes a base64 master key that must hold exactly 32 bytes.
pub(super) fn decode_master_key(text: &str) -> Result<[u8; 32], String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| "is not valid standard base64".to_owned())?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| format!("must decode to 32 bytes, got {}", bytes.len()))
}

/// The file as written: everything optional, so defaults and env can fill the gaps
/// and validation can report every problem rather than serde's first.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    admin_token: Option<Secret>,
    master_key: Option<Secret>,
    max_body_bytes: Option<i64>,
    cache_mib: Option<i64>,
    log: RawLog,
    tls: Option<RawTls>,
    security: RawSecurity,
    delivery: RawDelivery,
    retention: RawRetention,
    smtp: Option<RawSmtp>,
    notify: RawNotify,
    event_types: Vec<EventTypeSeed>,
    api: RawApi,
    public_url: Option<String>,
    portal: super::portal::RawPortal,
    store: super::store::RawStore,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawApi {
    profiles: Option<Vec<String>>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawLog {
    format: Option<String>,
    level: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawTls {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawSecurity {
    require_https: Option<bool>,
    allow_networks: Option<Vec<String>>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawDelivery {
    retry_schedule: Option<Vec<String>>,
    jitter: Option<f64>,
    connect_timeout: Option<String>,
    request_timeout: Option<String>,
    disable_after: Option<String>,
    max_in_flight: Option<i64>,
    per_webhook_in_flight: Option<i64>,
    per_tenant_in_flight: Option<i64>,
    max_queued_bytes: Option<i64>,
    retry_after_max: Option<String>,
    ca_file: Option<PathBuf>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawRetention {
    events: Option<String>,
    purge_interval: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawSmtp {
    host: Option<String>,
    port: Option<i64>,
    tls: Option<String>,
    username: Option<String>,
    password: Option<Secret>,
    from: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawNotify {
    email_interval: Option<String>,
}

/// Every problem found so far, and which keys the environment set (so a message
/// about a bad value says where the value came from).
#[derive(Default)]
struct Problems {
    list: Vec<String>,
    from_env: Vec<(&'static str, &'static str)>,
}

impl Problems {
    fn add(&mut self, key: &str, message: impl std::fmt::Display) {
        let source = self
            .from_env
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, var)| format!(" (set by {var})"))
            .unwrap_or_default();
        self.list.push(format!("{key}: {message}{source}"));
    }

    /// A duration value, or `default` (after recording the problem) when invalid.
    fn duration(&mut self, key: &str, raw: Option<String>, default: Duration) -> Duration {
        match raw.as_deref().map(parse_duration) {
            None => default,
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                self.add(key, e);
                default
            }
        }
    }

    /// A positive duration value.
    fn positive(&mut self, key: &str, raw: Option<String>, default: Duration) -> Duration {
        let d = self.duration(key, raw, default);
        if d.is_zero() {
            self.add(key, "must be greater than zero");
        }
        d
    }

    /// An integer in `min..=max`, or `default` when absent or out of range.
    fn int_in(&mut self, key: &str, raw: Option<i64>, min: i64, max: i64, default: usize) -> usize {
        match raw {
            None => default,
            Some(n) if (min..=max).contains(&n) => usize::try_from(n).unwrap_or(default),
            Some(n) => {
                self.add(key, format_args!("{n} is out of range {min}..={max}"));
                default
            }
        }
    }
}

/// Applies the `HOOKBOX_*` overrides of [`ENV_OVERRIDES`]; later entries win.
fn apply_env(raw: &mut RawConfig, env: &[(String, String)], problems: &mut Problems) {
    for (name, value) in env {
        let Some(&(var, key)) = ENV_OVERRIDES.iter().find(|(var, _)| var == name) else {
            continue;
        };
        if value.trim().is_empty() {
            continue;
        }
        problems.from_env.push((key, var));
        match var {
            "HOOKBOX_LISTEN" => raw.listen = Some(value.clone()),
            "HOOKBOX_DATA_DIR" => raw.data_dir = Some(PathBuf::from(value)),
            "HOOKBOX_ADMIN_TOKEN" => raw.admin_token = Some(Secret::new(value.clone())),
            "HOOKBOX_MASTER_KEY" => raw.master_key = Some(Secret::new(value.clone())),
            "HOOKBOX_MAX_BODY_BYTES" => match value.trim().parse() {
                Ok(n) => raw.max_body_bytes = Some(n),
                Err(_) => problems.add(key, format_args!("{value:?} is not an integer")),
            },
            "HOOKBOX_CACHE_MIB" => match value.trim().parse() {
                Ok(n) => raw.cache_mib = Some(n),
                Err(_) => problems.add(key, format_args!("{value:?} is not an integer")),
            },
            "HOOKBOX_PER_TENANT_IN_FLIGHT" => match value.trim().parse() {
                Ok(n) => raw.delivery.per_tenant_in_flight = Some(n),
                Err(_) => problems.add(key, format_args!("{value:?} is not an integer")),
            },
            "HOOKBOX_MAX_QUEUED_BYTES" => match value.trim().parse() {
                Ok(n) => raw.delivery.max_queued_bytes = Some(n),
                Err(_) => problems.add(key, format_args!("{value:?} is not an integer")),
            },
            "HOOKBOX_LOG_FORMAT" => raw.log.format = Some(value.clone()),
            "HOOKBOX_LOG_LEVEL" => raw.log.level = Some(value.clone()),
            "HOOKBOX_REQUIRE_HTTPS" => match parse_bool(value) {
                Some(b) => raw.security.require_https = Some(b),
                None => problems.add(key, format_args!("{value:?} is not true or false")),
            },
            "HOOKBOX_ALLOW_NETWORKS" => {
                let list = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                raw.security.allow_networks = Some(list);
            }
            "HOOKBOX_API_PROFILES" => {
                let list = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                raw.api.profiles = Some(list);
            }
            "HOOKBOX_PUBLIC_URL" => raw.public_url = Some(value.clone()),
            "HOOKBOX_STORE_BACKEND" => raw.store.backend = Some(value.clone()),
            "HOOKBOX_POSTGRES_URL" => raw.store.postgres_url = Some(Secret::new(value.clone())),
            "HOOKBOX_POSTGRES_POOL" => match value.trim().parse() {
                Ok(n) => raw.store.postgres_pool = Some(n),
                Err(_) => problems.add(key, format_args!("{value:?} is not an integer")),
            },
            "HOOKBOX_STORE_LEASE" => raw.store.lease = Some(value.clone()),
            "HOOKBOX_POSTGRES_CA_FILE" => raw.store.postgres_ca_file = Some(value.into()),
            "HOOKBOX_POSTGRES_STATEMENTS" => raw.store.postgres_statements = Some(value.clone()),
            "HOOKBOX_POSTGRES_LISTEN_URL" => {
                raw.store.postgres_listen_url = Some(Secret::new(value.clone()));
            }
            "HOOKBOX_SMTP_PASSWORD" => match raw.smtp.as_mut() {
                Some(smtp) => smtp.password = Some(Secret::new(value.clone())),
                None => problems.add(key, "is set but the config file has no [smtp] section"),
            },
            // Every name in ENV_OVERRIDES is handled above.
            _ => {}
        }
    }
}

/// Environment booleans as operators write them.
fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Validates `raw` into a `Config`, recording every problem. Where a value is
/// invalid the default stands in, so later checks still run on sensible values.
fn build(raw: RawConfig, p: &mut Problems) -> Config {
    let d = Config::default();

    let listen = match raw.listen {
        None => d.listen,
        Some(s) => s.trim().parse().unwrap_or_else(|e| {
            p.add(
                "listen",
                format_args!("{s:?} is not an ip:port address ({e})"),
            );
            d.listen
        }),
    };
    let data_dir = raw.data_dir.unwrap_or(d.data_dir);
    if data_dir.as_os_str().is_empty() {
        p.add("data_dir", "must not be empty");
    }
    if raw
        .admin_token
        .as_ref()
        .is_some_and(|t| t.expose().trim().is_empty())
    {
        p.add(
            "admin_token",
            "must not be empty (omit it to have one generated)",
        );
    }
    if let Some(Err(e)) = raw
        .master_key
        .as_ref()
        .map(|k| decode_master_key(k.expose()))
    {
        p.add(
            "master_key",
            format_args!("{e} (generate one with `openssl rand -base64 32`)"),
        );
    }
    let max_body_bytes = p.int_in(
        "max_body_bytes",
        raw.max_body_bytes,
        MIN_BODY_BYTES,
        MAX_BODY_BYTES,
        d.max_body_bytes,
    );
    let cache_mib = p.int_in(
        "cache_mib",
        raw.cache_mib,
        CACHE_MIB.0,
        CACHE_MIB.1,
        d.cache_mib,
    );

    let delivery = build_delivery(raw.delivery, d.delivery, p);
    let store = {
        let problems = std::cell::RefCell::new(&mut *p);
        super::store::build(
            raw.store,
            delivery.request_timeout,
            &mut |key, message| problems.borrow_mut().add(key, message),
            &mut |key, value, default| problems.borrow_mut().duration(key, value, default),
        )
    };
    let tls = build_tls(raw.tls, p);
    let mut add = |key: &str, message: String| p.add(key, message);
    let public_url = super::portal::public_url(raw.public_url, &mut add);
    let portal = super::portal::build(raw.portal, &mut add);
    Config {
        public_url,
        portal,
        listen,
        data_dir,
        admin_token: raw.admin_token,
        master_key: raw.master_key,
        max_body_bytes,
        cache_mib,
        log: build_log(raw.log, d.log, p),
        tls,
        security: build_security(raw.security, d.security, p),
        delivery,
        store,
        retention: RetentionConfig {
            events: p.positive("retention.events", raw.retention.events, d.retention.events),
            purge_interval: p.positive(
                "retention.purge_interval",
                raw.retention.purge_interval,
                d.retention.purge_interval,
            ),
        },
        smtp: raw.smtp.map(|smtp| build_smtp(smtp, p)),
        notify: NotifyConfig {
            email_interval: p.duration(
                "notify.email_interval",
                raw.notify.email_interval,
                d.notify.email_interval,
            ),
        },
        event_types: check_event_types(raw.event_types, p),
        api_profiles: check_profiles(raw.api.profiles.unwrap_or_default(), p),
    }
}

fn build_log(raw: RawLog, d: LogConfig, p: &mut Problems) -> LogConfig {
    let format = match raw.format.as_deref().map(str::trim) {
        None => d.format,
        Some(f) if f.eq_ignore_ascii_case("text") => LogFormat::Text,
        Some(f) if f.eq_ignore_ascii_case("json") => LogFormat::Json,
        Some(f) => {
            p.add(
                "log.format",
                format_args!("{f:?} is not \"text\" or \"json\""),
            );
            d.format
        }
    };
    let level = raw.level.map(|l| l.trim().to_owned()).unwrap_or(d.level);
    // Checked here so a typo fails at start-up instead of silently logging nothing.
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&level) {
        p.add(
            "log.level",
            format_args!("{level:?} is not a tracing filter ({e})"),
        );
    }
    LogConfig { format, level }
}

fn build_tls(raw: Option<RawTls>, p: &mut Problems) -> Option<TlsConfig> {
    let nonempty = |path: Option<PathBuf>| path.filter(|f| !f.as_os_str().is_empty());
    let raw = raw?;
    match (nonempty(raw.cert), nonempty(raw.key)) {
        (Some(cert), Some(key)) => Some(TlsConfig { cert, key }),
        (None, None) => None,
        (Some(_), None) => {
            p.add("tls.key", "is required when tls.cert is set");
            None
        }
        (None, Some(_)) => {
            p.add("tls.cert", "is required when tls.key is set");
            None
        }
    }
}

/// `api.profiles`: every unknown name is reported with the known ones; a name
/// listed twice is reported too.
fn check_profiles(names: Vec<String>, p: &mut Problems) -> Vec<ApiProfile> {
    let known: Vec<&str> = ApiProfile::ALL.iter().map(|p| p.name()).collect();
    let mut out = Vec::new();
    for name in names {
        match ApiProfile::from_name(name.trim()) {
            Some(profile) if out.contains(&profile) => {
                p.add("api.profiles", format_args!("{name:?} is listed twice"));
            }
            Some(profile) => out.push(profile),
            None => p.add(
                "api.profiles",
                format_args!("unknown profile {name:?} (known: {})", known.join(", ")),
            ),
        }
    }
    out
}

fn build_security(raw: RawSecurity, d: SecurityConfig, p: &mut Problems) -> SecurityConfig {
    let mut allow_networks = Vec::new();
    for cidr in raw.allow_networks.unwrap_or_default() {
        match cidr.trim().parse::<IpNet>() {
            Ok(net) => allow_networks.push(net.trunc()),
            Err(_) => p.add(
                "security.allow_networks",
                format_args!("{cidr:?} is not a CIDR such as \"127.0.0.0/8\" or \"::1/128\""),
            ),
        }
    }
    SecurityConfig {
        require_https: raw.require_https.unwrap_or(d.require_https),
        allow_networks,
    }
}

fn build_delivery(raw: RawDelivery, d: DeliveryConfig, p: &mut Problems) -> DeliveryConfig {
    let retry_schedule = match raw.retry_schedule {
        None => d.retry_schedule,
        Some(entries) if entries.is_empty() => {
            p.add("delivery.retry_schedule", "needs at least one entry");
            d.retry_schedule
        }
        Some(entries) => {
            let mut schedule = Vec::with_capacity(entries.len());
            for (i, entry) in entries.iter().enumerate() {
                match parse_duration(entry) {
                    Ok(delay) => schedule.push(delay),
                    Err(e) => p.add(&format!("delivery.retry_schedule[{i}]"), e),
                }
            }
            schedule
        }
    };

    let jitter = raw.jitter.unwrap_or(d.jitter);
    // The negated range check also refuses NaN.
    if !(0.0..=1.0).contains(&jitter) {
        p.add(
            "delivery.jitter",
            format_args!("{jitter} is not between 0 and 1"),
        );
    }

    let connect_timeout = p.positive(
        "delivery.connect_timeout",
        raw.connect_timeout,
        d.connect_timeout,
    );
    let request_timeout = p.positive(
        "delivery.request_timeout",
        raw.request_timeout,
        d.request_timeout,
    );
    // Compared only when both are valid, so one mistake is reported once.
    if !connect_timeout.is_zero() && !request_timeout.is_zero() && connect_timeout > request_timeout
    {
        p.add(
            "delivery.connect_timeout",
            format_args!(
                "{connect_timeout:?} exceeds delivery.request_timeout ({request_timeout:?}), which includes the connect"
            ),
        );
    }

    let max_in_flight = p.int_in(
        "delivery.max_in_flight",
        raw.max_in_flight,
        1,
        1_000_000,
        d.max_in_flight,
    );
    let per_tenant_in_flight = match raw.per_tenant_in_flight {
        None => None,
        Some(n) if n >= 1 && usize::try_from(n).is_ok_and(|n| n <= max_in_flight) => {
            usize::try_from(n).ok()
        }
        Some(n) => {
            p.add(
                "delivery.per_tenant_in_flight",
                format_args!("{n} is out of range 1..=delivery.max_in_flight ({max_in_flight})"),
            );
            None
        }
    };
    DeliveryConfig {
        retry_schedule,
        jitter,
        connect_timeout,
        request_timeout,
        disable_after: p.positive("delivery.disable_after", raw.disable_after, d.disable_after),
        max_in_flight,
        per_webhook_in_flight: p.int_in(
            "delivery.per_webhook_in_flight",
            raw.per_webhook_in_flight,
            1,
            1_000_000,
            d.per_webhook_in_flight,
        ),
        per_tenant_in_flight,
        max_queued_bytes: p.int_in(
            "delivery.max_queued_bytes",
            raw.max_queued_bytes,
            1024 * 1024,
            1 << 40,
            d.max_queued_bytes,
        ),
        retry_after_max: p.duration(
            "delivery.retry_after_max",
            raw.retry_after_max,
            d.retry_after_max,
        ),
        ca_file: raw.ca_file.filter(|f| !f.as_os_str().is_empty()),
    }
}

fn build_smtp(raw: RawSmtp, p: &mut Problems) -> SmtpConfig {
    let host = raw.host.unwrap_or_default().trim().to_owned();
    if host.is_empty() {
        p.add("smtp.host", "is required when [smtp] is present");
    }
    let tls = match raw.tls.as_deref().map(str::trim) {
        None => SmtpTls::default(),
        Some(t) if t.eq_ignore_ascii_case("starttls") => SmtpTls::Starttls,
        Some(t) if t.eq_ignore_ascii_case("tls") => SmtpTls::Tls,
        Some(t) if t.eq_ignore_ascii_case("none") => SmtpTls::None,
        Some(t) => {
            p.add(
                "smtp.tls",
                format_args!("{t:?} is not \"starttls\", \"tls\" or \"none\""),
            );
            SmtpTls::default()
        }
    };
    let port = match raw.port {
        None => tls.default_port(),
        Some(n) => match u16::try_from(n) {
            Ok(port) if port != 0 => port,
            _ => {
                p.add("smtp.port", format_args!("{n} is not a port (1..=65535)"));
                tls.default_port()
            }
        },
    };
    let username = raw.username.filter(|u| !u.trim().is_empty());
    if username.is_some() != raw.password.is_some() {
        p.add("smtp.username", "and smtp.password must be set together");
    }
    let from = raw.from.unwrap_or_default().trim().to_owned();
    if from.is_empty() {
        p.add("smtp.from", "is required when [smtp] is present");
    } else if let Err(e) = from.parse::<lettre::message::Mailbox>() {
        p.add("smtp.from", format_args!("{from:?} is not a mailbox ({e})"));
    }
    SmtpConfig {
        host,
        port,
        tls,
        username,
        password: raw.password,
        from,
    }
}

/// Seed names must be usable as catalogue names and as exact-match filters.
fn check_event_types(seeds: Vec<EventTypeSeed>, p: &mut Problems) -> Vec<EventTypeSeed> {
    let mut seen = HashSet::new();
    for (i, seed) in seeds.iter().enumerate() {
        let key = format!("event_types[{i}].name");
        let name = seed.name.as_str();
        if name.is_empty() {
            p.add(&key, "must not be empty");
        } else if name.len() > 256 {
            p.add(&key, "is longer than 256 bytes");
        } else if name.contains('*') || name.chars().any(char::is_whitespace) {
            p.add(
                &key,
                format_args!("{name:?} must not contain '*' or whitespace"),
            );
        } else if !seen.insert(name) {
            p.add(&key, format_args!("{name:?} is listed twice"));
        }
    }
    seeds
}
