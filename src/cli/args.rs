//! The client commands' arguments and help text (clap derive). Definitions only: no
//! I/O and no HTTP here.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::DEFAULT_SERVER;
use super::client::seg;

/// How to reach the server; shared by every client command.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// Base URL of the running hookbox.
    #[arg(long, global = true, env = "HOOKBOX_SERVER", default_value = DEFAULT_SERVER, value_name = "URL")]
    pub server: String,
    /// Admin token; when absent, `admin_token` from the config, else the file
    /// `<data_dir>/admin-token` the server wrote.
    #[arg(
        long,
        global = true,
        env = "HOOKBOX_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Option<String>,
    /// PEM file of CA certificates to trust for an https server (besides the webpki roots).
    #[arg(long, global = true, env = "HOOKBOX_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Print the server's JSON answer instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The client command groups, flattened into the binary's subcommands.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Create, list and delete tenants.
    Tenant(Tenant),
    /// Create, list and revoke API keys.
    Key(Key),
    /// Inspect webhooks and re-queue their failed deliveries.
    Webhook(Webhook),
    /// Send events.
    Event(Event),
    /// Inspect and retry deliveries.
    Delivery(Delivery),
    /// Open portal links for a tenant's customers.
    Portal(super::portal::Portal),
}

/// `hookbox tenant ...`
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  hookbox tenant create --name 'Acme Health' --id acme
  hookbox tenant list --json
  hookbox tenant delete acme

Talks to a running hookbox; see `hookbox --help` for the token and exit status.")]
pub struct Tenant {
    #[command(flatten)]
    pub(super) conn: Conn,
    #[command(subcommand)]
    pub(super) cmd: TenantCmd,
}

#[derive(Subcommand, Debug)]
pub(super) enum TenantCmd {
    /// Create a tenant (with the server's event-type catalogue).
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Id to use instead of a generated one.
        #[arg(long)]
        id: Option<String>,
    },
    /// List tenants.
    List,
    /// Delete a tenant and stop its deliveries.
    Delete {
        /// The tenant id.
        id: String,
    },
}

/// `hookbox key ...`
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  hookbox key create --tenant acme --name backend --scope events:write --scope webhooks:read
  hookbox key create --tenant acme --name admin-ui --scope webhooks:read,webhooks:write
  hookbox key list --tenant acme
  hookbox key revoke key_01J...

Scopes: webhooks:read, webhooks:write, events:write, events:read.
The key is printed once by `key create`; only its hash is stored.\n\nTalks to a running hookbox; see `hookbox --help` for the token and exit status.")]
pub struct Key {
    #[command(flatten)]
    pub(super) conn: Conn,
    #[command(subcommand)]
    pub(super) cmd: KeyCmd,
}

#[derive(Subcommand, Debug)]
pub(super) enum KeyCmd {
    /// Create an API key for a tenant; prints the key once.
    Create {
        /// The tenant the key acts for.
        #[arg(long, env = "HOOKBOX_TENANT")]
        tenant: String,
        /// A name to recognise the key by.
        #[arg(long)]
        name: String,
        /// A scope (repeat, or separate with commas).
        #[arg(
            long = "scope",
            required = true,
            value_delimiter = ',',
            value_name = "SCOPE"
        )]
        scopes: Vec<String>,
    },
    /// List API keys (never the keys themselves).
    List {
        /// Only this tenant's keys.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke an API key at once.
    Revoke {
        /// The key id (key_...), not the key.
        id: String,
    },
}

/// `hookbox webhook ...`
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  hookbox webhook list --tenant acme
  hookbox webhook get --tenant acme wh_01J...
  hookbox webhook recover --tenant acme wh_01J... --since 2026-01-31T00:00:00Z

Secrets and header values are shown masked; the API's /secrets route reveals them.\n\nTalks to a running hookbox; see `hookbox --help` for the token and exit status.")]
pub struct Webhook {
    #[command(flatten)]
    pub(super) conn: Conn,
    #[command(subcommand)]
    pub(super) cmd: WebhookCmd,
}

#[derive(Subcommand, Debug)]
pub(super) enum WebhookCmd {
    /// List a tenant's webhooks.
    List {
        #[command(flatten)]
        tenant: TenantArg,
        #[command(flatten)]
        page: Page,
    },
    /// Show one webhook (secrets masked).
    Get {
        #[command(flatten)]
        tenant: TenantArg,
        /// The webhook id.
        id: String,
    },
    /// Re-queue every failed or exhausted delivery since a time; prints how many.
    Recover {
        #[command(flatten)]
        tenant: TenantArg,
        /// The webhook id.
        id: String,
        /// RFC 3339 time, e.g. 2026-01-31T00:00:00Z.
        #[arg(long)]
        since: String,
    },
}

/// `hookbox event ...`
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  hookbox event send --tenant acme --type PATIENT_CREATED --data '{\"id\":\"p_1\"}'
  hookbox event send --tenant acme --type shift.created --data-file shift.json --idempotency-key shift-42
  generate-payload | hookbox event send --tenant acme --type shift.created --data-file -\n\nTalks to a running hookbox; see `hookbox --help` for the token and exit status.")]
pub struct Event {
    #[command(flatten)]
    pub(super) conn: Conn,
    #[command(subcommand)]
    pub(super) cmd: EventCmd,
}

#[derive(Subcommand, Debug)]
pub(super) enum EventCmd {
    /// Ingest one event; prints its id and how many webhooks it goes to.
    Send {
        #[command(flatten)]
        tenant: TenantArg,
        /// The event type (must be in the tenant's catalogue).
        #[arg(long = "type", value_name = "TYPE")]
        event_type: String,
        /// The payload as JSON, delivered byte-for-byte [default: {}].
        #[arg(long, value_name = "JSON", conflicts_with = "data_file")]
        data: Option<String>,
        /// Read the payload from a file (`-` for stdin).
        #[arg(long, value_name = "FILE")]
        data_file: Option<PathBuf>,
        /// Re-sending with the same key returns the first answer instead of a new event.
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
        /// A channel the event belongs to (repeat for several).
        #[arg(long = "channel", value_name = "CHANNEL")]
        channels: Vec<String>,
    },
}

/// `hookbox delivery ...`
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  hookbox delivery list --tenant acme --webhook wh_01J... --status failed
  hookbox delivery get --tenant acme dlv_01J...
  hookbox delivery retry --tenant acme dlv_01J...

Statuses: pending, succeeded, failed, exhausted, cancelled.\n\nTalks to a running hookbox; see `hookbox --help` for the token and exit status.")]
pub struct Delivery {
    #[command(flatten)]
    pub(super) conn: Conn,
    #[command(subcommand)]
    pub(super) cmd: DeliveryCmd,
}

#[derive(Subcommand, Debug)]
pub(super) enum DeliveryCmd {
    /// List a webhook's deliveries, newest first.
    List {
        #[command(flatten)]
        tenant: TenantArg,
        /// The webhook id.
        #[arg(long)]
        webhook: String,
        /// Only deliveries in this status.
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        page: Page,
    },
    /// Show one delivery with all its attempts.
    Get {
        #[command(flatten)]
        tenant: TenantArg,
        /// The delivery id.
        id: String,
    },
    /// Attempt a delivery now and print the result.
    Retry {
        #[command(flatten)]
        tenant: TenantArg,
        /// The delivery id.
        id: String,
    },
}

/// The tenant a scoped command acts for (sent as `X-Tenant-Id`).
#[derive(Args, Debug)]
pub(crate) struct TenantArg {
    /// The tenant to act for.
    #[arg(long, env = "HOOKBOX_TENANT")]
    pub(crate) tenant: String,
}

/// One page of a list.
#[derive(Args, Debug)]
pub(super) struct Page {
    /// Items per page.
    #[arg(long)]
    pub(super) limit: Option<u32>,
    /// Continue from a previous page's cursor.
    #[arg(long)]
    pub(super) cursor: Option<String>,
}

impl Page {
    /// `?limit=..&cursor=..` plus `extra`, percent-encoded; empty when there is nothing.
    pub(super) fn query(&self, mut pairs: Vec<(&'static str, String)>) -> String {
        if let Some(limit) = self.limit {
            pairs.push(("limit", limit.to_string()));
        }
        if let Some(cursor) = &self.cursor {
            pairs.push(("cursor", cursor.clone()));
        }
        if pairs.is_empty() {
            return String::new();
        }
        let parts: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", seg(v)))
            .collect();
        format!("?{}", parts.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_query_encodes_values() {
        let page = Page {
            limit: Some(5),
            cursor: Some("a b".into()),
        };
        assert_eq!(
            page.query(vec![("status", "failed".into())]),
            "?status=failed&limit=5&cursor=a%20b"
        );
        let empty = Page {
            limit: None,
            cursor: None,
        };
        assert_eq!(empty.query(Vec::new()), "");
    }
}
