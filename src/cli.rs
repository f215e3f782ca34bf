//! The operator's client commands (`hookbox tenant|key|webhook|event|delivery ...`):
//! each becomes HTTP calls to a running hookbox with the admin token, printed as a
//! table or as raw JSON. `args` holds the clap definitions, `client` the HTTP client,
//! `output` the tables. It must never open the data file (redb allows one process,
//! and the server holds it), never go through the delivery client (whose SSRF guard
//! refuses loopback), and never print a secret other than the API key `key create`
//! and the portal link `portal open` exist to show once.
//!
//! Exit status: 0 ok, 1 the server refused or failed (every reason is printed), 2 bad
//! usage, 3 the server cannot be reached, 64 an invalid config file.
//!
//! The exception is `store` (`store.rs`): offline maintenance of a STOPPED data dir
//! (`store copy`, `store compact`) through the store's own functions, with its own
//! exit codes; it refuses a data file a running hookbox holds.

mod args;
mod client;
mod output;
mod portal;
pub mod store;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{Method, StatusCode};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

pub use args::{ClientCommand, Conn, Delivery, Event, Key, Tenant, Webhook};
pub use client::{Answer, ApiClient};

use crate::config::{Config, ConfigError};
use crate::model::Secret;
use args::{DeliveryCmd, EventCmd, KeyCmd, TenantCmd, WebhookCmd};
use client::seg;
use output::{cell, fields, list_table, printable, table};

/// The server the client talks to when neither `--server` nor `HOOKBOX_SERVER` is set.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";
/// Exit status when the server answered with an error (or no answer in time).
pub const EXIT_API: u8 = 1;
/// Exit status for bad usage (clap uses the same).
pub const EXIT_USAGE: u8 = 2;
/// Exit status when no connection to the server could be made.
pub const EXIT_CONNECT: u8 = 3;
/// Exit status for an unusable config file (as for `serve`).
pub const EXIT_BAD_CONFIG: u8 = 64;
/// The longest one call may take; `delivery retry` includes a whole attempt.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Why a client command failed; each kind has its exit status.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments that clap could not catch (unreadable file, JSON that does not parse).
    #[error("{0}")]
    Usage(String),
    /// The config file (read only to find the admin token) is unusable.
    #[error(transparent)]
    Config(ConfigError),
    /// No admin token was given and none could be read.
    #[error(
        "no admin token: pass --admin-token or set HOOKBOX_ADMIN_TOKEN (cannot read {})",
        path.display()
    )]
    NoToken {
        /// The token file tried.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// The CA file could not be used.
    #[error("cannot use the CA file {}: {reason}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// No connection could be made: nothing was sent.
    #[error("cannot connect to {server} (is hookbox running there?)")]
    Connect {
        /// The server URL.
        server: String,
        /// The client's error.
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    /// The connection failed after the request was sent.
    #[error("the request to {server} failed; it may or may not have been applied")]
    Transport {
        /// The server URL.
        server: String,
        /// The client's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The server did not answer in time; the request may still complete.
    #[error("no answer from {server} within {} s; the request may still complete", TIMEOUT.as_secs())]
    Timeout {
        /// The server URL.
        server: String,
    },
    /// The server answered with an error.
    #[error("{status}: {message}")]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// The error code (`bad_request`, `not_found`, ...).
        code: String,
        /// The error message.
        message: String,
        /// Every reason the server listed.
        reasons: Vec<String>,
    },
}

impl CliError {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::NoToken { .. } | CliError::CaFile { .. } => EXIT_USAGE,
            CliError::Config(_) => EXIT_BAD_CONFIG,
            CliError::Connect { .. } => EXIT_CONNECT,
            CliError::Transport { .. } | CliError::Timeout { .. } | CliError::Api { .. } => {
                EXIT_API
            }
        }
    }

    /// The text for stderr: the message, every reason, then the cause chain.
    pub fn report(&self) -> String {
        let mut out = format!("hookbox: {self}\n");
        match self {
            CliError::Api { reasons, .. } | CliError::Config(ConfigError::Invalid(reasons)) => {
                for reason in reasons {
                    let _ = writeln!(out, "  - {}", printable(reason));
                }
            }
            _ => {
                let mut source = std::error::Error::source(self);
                while let Some(cause) = source {
                    let _ = writeln!(out, "  caused by: {cause}");
                    source = cause.source();
                }
            }
        }
        out
    }
}

/// Runs one client command and returns the exit status. `config` and `env` are only
/// used to find the admin token when none is given.
pub async fn run(config: Option<&Path>, env: &[(String, String)], cmd: ClientCommand) -> u8 {
    match execute(config, env, cmd).await {
        Ok(out) => {
            print!("{out}");
            0
        }
        Err(e) => {
            eprint!("{}", e.report());
            e.exit_code()
        }
    }
}

/// Runs one client command and returns what to print on stdout.
pub async fn execute(
    config: Option<&Path>,
    env: &[(String, String)],
    cmd: ClientCommand,
) -> Result<String, CliError> {
    let conn = match &cmd {
        ClientCommand::Tenant(c) => &c.conn,
        ClientCommand::Key(c) => &c.conn,
        ClientCommand::Webhook(c) => &c.conn,
        ClientCommand::Event(c) => &c.conn,
        ClientCommand::Delivery(c) => &c.conn,
        ClientCommand::Portal(c) => &c.conn,
    };
    let token = admin_token(conn, config, env)?;
    let api = ApiClient::new(&conn.server, token, conn.ca_file.as_deref())?;
    let json = conn.json;
    match cmd {
        ClientCommand::Tenant(c) => tenant(&api, c.cmd, json).await,
        ClientCommand::Key(c) => key(&api, c.cmd, json).await,
        ClientCommand::Webhook(c) => webhook(&api, c.cmd, json).await,
        ClientCommand::Event(c) => event(&api, c.cmd, json).await,
        ClientCommand::Delivery(c) => delivery(&api, c.cmd, json).await,
        ClientCommand::Portal(c) => portal::run(&api, c.cmd, json).await,
    }
}

/// `--admin-token` / `HOOKBOX_ADMIN_TOKEN`, else the config's `admin_token`, else
/// `<data_dir>/admin-token`. Never creates the file: that is the server's job.
fn admin_token(
    conn: &Conn,
    config: Option<&Path>,
    env: &[(String, String)],
) -> Result<Secret, CliError> {
    if let Some(token) = conn.admin_token.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Secret::new(token));
    }
    let config = Config::load(config, env).map_err(CliError::Config)?;
    if let Some(token) = config.admin_token {
        return Ok(token);
    }
    // The name the server writes the generated token under (see secrets.rs).
    let path = config.data_dir.join("admin-token");
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => Ok(Secret::new(text.trim())),
        Ok(_) => Err(CliError::NoToken {
            path,
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "the file is empty"),
        }),
        Err(source) => Err(CliError::NoToken { path, source }),
    }
}

async fn tenant(api: &ApiClient, cmd: TenantCmd, json: bool) -> Result<String, CliError> {
    match cmd {
        TenantCmd::Create { name, id } => {
            let mut body = serde_json::json!({ "name": name });
            if let Some(id) = id {
                body["id"] = Value::from(id);
            }
            let a = api
                .call(
                    Method::POST,
                    "/v1/tenants",
                    None,
                    Some(body.to_string().into()),
                )
                .await?;
            if json {
                return Ok(a.raw());
            }
            let v = a.json();
            Ok(format!(
                "created tenant {} ({})\n",
                cell(&v["id"]),
                cell(&v["name"])
            ))
        }
        TenantCmd::List => {
            let a = api.call(Method::GET, "/v1/tenants", None, None).await?;
            if json {
                return Ok(a.raw());
            }
            Ok(list_table(
                &a.json(),
                &[("ID", "id"), ("NAME", "name"), ("CREATED", "created_at")],
            ))
        }
        TenantCmd::Delete { id } => {
            let path = format!("/v1/tenants/{}", seg(&id));
            delete(
                api,
                &path,
                json,
                &format!("deleted tenant {}", printable(&id)),
            )
            .await
        }
    }
}

/// `DELETE path`; prints the server's answer with `--json`, else `done`.
async fn delete(api: &ApiClient, path: &str, json: bool, done: &str) -> Result<String, CliError> {
    let a = api.call(Method::DELETE, path, None, None).await?;
    Ok(if json { a.raw() } else { format!("{done}\n") })
}

async fn key(api: &ApiClient, cmd: KeyCmd, json: bool) -> Result<String, CliError> {
    match cmd {
        KeyCmd::Create {
            tenant,
            name,
            scopes,
        } => {
            let body = serde_json::json!({"tenant": tenant, "name": name, "scopes": scopes});
            let a = api
                .call(
                    Method::POST,
                    "/v1/api-keys",
                    None,
                    Some(body.to_string().into()),
                )
                .await?;
            if json {
                return Ok(a.raw());
            }
            let v = a.json();
            Ok(format!(
                "created API key {} for tenant {} (scopes: {})\n\n    {}\n\n\
                 Store the key now: it is shown only once.\n",
                cell(&v["id"]),
                cell(&v["tenant"]),
                cell(&v["scopes"]),
                cell(&v["key"]),
            ))
        }
        KeyCmd::List { tenant } => {
            let path = match tenant {
                Some(t) => format!("/v1/api-keys?tenant={}", seg(&t)),
                None => "/v1/api-keys".to_owned(),
            };
            let a = api.call(Method::GET, &path, None, None).await?;
            if json {
                return Ok(a.raw());
            }
            Ok(list_table(
                &a.json(),
                &[
                    ("ID", "id"),
                    ("TENANT", "tenant"),
                    ("NAME", "name"),
                    ("PREFIX", "prefix"),
                    ("SCOPES", "scopes"),
                    ("CREATED", "created_at"),
                ],
            ))
        }
        KeyCmd::Revoke { id } => {
            let path = format!("/v1/api-keys/{}", seg(&id));
            delete(
                api,
                &path,
                json,
                &format!("revoked API key {}", printable(&id)),
            )
            .await
        }
    }
}

async fn webhook(api: &ApiClient, cmd: WebhookCmd, json: bool) -> Result<String, CliError> {
    match cmd {
        WebhookCmd::List { tenant, page } => {
            let path = format!("/v1/webhooks{}", page.query(Vec::new()));
            let a = api
                .call(Method::GET, &path, Some(&tenant.tenant), None)
                .await?;
            if json {
                return Ok(a.raw());
            }
            Ok(list_table(
                &a.json(),
                &[
                    ("ID", "id"),
                    ("URL", "url"),
                    ("EVENT TYPES", "event_types"),
                    ("ENABLED", "enabled"),
                    ("CREATED", "created_at"),
                ],
            ))
        }
        WebhookCmd::Get { tenant, id } => {
            let path = format!("/v1/webhooks/{}", seg(&id));
            let a = api
                .call(Method::GET, &path, Some(&tenant.tenant), None)
                .await?;
            Ok(if json { a.raw() } else { fields(&a.json()) })
        }
        WebhookCmd::Recover { tenant, id, since } => {
            // Progress on stderr, so stdout stays the result alone.
            eprintln!(
                "re-queuing failed and exhausted deliveries of {} since {} ...",
                printable(&id),
                printable(&since)
            );
            let path = format!("/v1/webhooks/{}/recover", seg(&id));
            let body = serde_json::json!({ "since": since });
            let a = api
                .call(
                    Method::POST,
                    &path,
                    Some(&tenant.tenant),
                    Some(body.to_string().into()),
                )
                .await?;
            if json {
                return Ok(a.raw());
            }
            Ok(format!(
                "re-queued {} deliveries\n",
                cell(&a.json()["requeued"])
            ))
        }
    }
}

/// The body of `POST /v1/events`; `data` is passed through byte-for-byte.
#[derive(Serialize)]
struct EventBody<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    data: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    idempotency_key: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    channels: &'a [String],
}

async fn event(api: &ApiClient, cmd: EventCmd, json: bool) -> Result<String, CliError> {
    let EventCmd::Send {
        tenant,
        event_type,
        data,
        data_file,
        idempotency_key,
        channels,
    } = cmd;
    let text = match (data, data_file) {
        (Some(d), _) => d,
        (None, Some(path)) => read_data_file(&path)?,
        (None, None) => "{}".to_owned(),
    };
    let data = RawValue::from_string(text.trim().to_owned())
        .map_err(|e| CliError::Usage(format!("the event data is not valid JSON: {e}")))?;
    let body = serde_json::to_vec(&EventBody {
        event_type: &event_type,
        data: &data,
        idempotency_key: idempotency_key.as_deref(),
        channels: &channels,
    })
    .map_err(|e| CliError::Usage(format!("cannot encode the event: {e}")))?;
    let a = api
        .call(Method::POST, "/v1/events", Some(&tenant.tenant), Some(body))
        .await?;
    if json {
        return Ok(a.raw());
    }
    let v = a.json();
    let replay = if a.status == StatusCode::OK {
        " (already sent with this idempotency key)"
    } else {
        ""
    };
    Ok(format!(
        "event {} accepted for {} webhook(s){replay}\n",
        cell(&v["id"]),
        cell(&v["deliveries"])
    ))
}

fn read_data_file(path: &Path) -> Result<String, CliError> {
    let read = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    };
    read.map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))
}

async fn delivery(api: &ApiClient, cmd: DeliveryCmd, json: bool) -> Result<String, CliError> {
    match cmd {
        DeliveryCmd::List {
            tenant,
            webhook,
            status,
            page,
        } => {
            let extra = status.map(|s| ("status", s)).into_iter().collect();
            let path = format!(
                "/v1/webhooks/{}/deliveries{}",
                seg(&webhook),
                page.query(extra)
            );
            let a = api
                .call(Method::GET, &path, Some(&tenant.tenant), None)
                .await?;
            if json {
                return Ok(a.raw());
            }
            Ok(list_table(&a.json(), DELIVERY_COLUMNS))
        }
        DeliveryCmd::Get { tenant, id } => {
            let path = format!("/v1/deliveries/{}", seg(&id));
            let a = api
                .call(Method::GET, &path, Some(&tenant.tenant), None)
                .await?;
            if json {
                return Ok(a.raw());
            }
            let mut v = a.json();
            let attempts = v
                .as_object_mut()
                .and_then(|o| o.remove("attempts"))
                .and_then(|a| match a {
                    Value::Array(items) => Some(items),
                    _ => None,
                })
                .unwrap_or_default();
            let mut out = fields(&v);
            out.push('\n');
            out.push_str(&table(&attempt_columns(), &attempts));
            Ok(out)
        }
        DeliveryCmd::Retry { tenant, id } => {
            let path = format!("/v1/deliveries/{}/retry", seg(&id));
            let a = api
                .call(Method::POST, &path, Some(&tenant.tenant), None)
                .await?;
            if json {
                return Ok(a.raw());
            }
            let v = a.json();
            let at = &v["attempt"];
            let result = if at["status_code"].is_null() {
                cell(&at["error"])
            } else {
                format!("HTTP {}", cell(&at["status_code"]))
            };
            Ok(format!(
                "delivery {} attempt {}: {result} in {} ms; now {}\n",
                printable(&id),
                cell(&at["number"]),
                cell(&at["latency_ms"]),
                cell(&v["status"]),
            ))
        }
    }
}

const DELIVERY_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("EVENT", "event_id"),
    ("TYPE", "event_type"),
    ("STATUS", "status"),
    ("ATTEMPTS", "attempts"),
    ("LAST", "last_status_code"),
    ("NEXT ATTEMPT", "next_attempt_at"),
    ("CREATED", "created_at"),
];

fn attempt_columns() -> Vec<(&'static str, &'static str)> {
    vec![
        ("#", "number"),
        ("AT", "at"),
        ("TRIGGER", "trigger"),
        ("STATUS", "status_code"),
        ("ERROR", "error"),
        ("LATENCY MS", "latency_ms"),
    ]
}
