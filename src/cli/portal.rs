//! `hookbox portal open`: asks the running server for a portal session of a tenant
//! (`POST /v1/portal/sessions` with the admin token) and prints the link to hand
//! the tenant's customer. It never stores the link or logs it.

use clap::{Args, Subcommand};
use http::Method;

use super::args::{Conn, TenantArg};
use super::{ApiClient, CliError};
use crate::config::parse_duration;

/// `hookbox portal ...`
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  hookbox portal open --tenant acme
  hookbox portal open --tenant acme --read-only --ttl 24h
  hookbox portal revoke --tenant acme

The link carries its token after '#', which browsers never send to a server; anyone
holding it can act on the tenant's webhooks until it expires (at most 24h) or is
revoked.\n\nTalks to a running hookbox; see `hookbox --help` for the token and exit status.")]
pub struct Portal {
    #[command(flatten)]
    pub(super) conn: Conn,
    #[command(subcommand)]
    pub(super) cmd: PortalCmd,
}

#[derive(Subcommand, Debug)]
pub(super) enum PortalCmd {
    /// Create a portal session for a tenant; prints its link.
    Open {
        #[command(flatten)]
        tenant: TenantArg,
        /// A session that can only look, not change anything.
        #[arg(long)]
        read_only: bool,
        /// How long the link works: 1m to 24h (e.g. 30m, 1h, 24h).
        #[arg(long, default_value = "1h", value_name = "DURATION")]
        ttl: String,
    },
    /// Revoke every portal session of a tenant at once.
    Revoke {
        #[command(flatten)]
        tenant: TenantArg,
    },
}

/// Runs a `portal` subcommand; returns what to print.
pub(super) async fn run(api: &ApiClient, cmd: PortalCmd, json: bool) -> Result<String, CliError> {
    match cmd {
        PortalCmd::Open {
            tenant,
            read_only,
            ttl,
        } => {
            let ttl = parse_duration(&ttl)
                .map_err(|e| CliError::Usage(format!("--ttl: {e}")))?
                .as_secs();
            let body = serde_json::json!({ "read_only": read_only, "ttl_seconds": ttl });
            let a = api
                .call(
                    Method::POST,
                    "/v1/portal/sessions",
                    Some(&tenant.tenant),
                    Some(body.to_string().into()),
                )
                .await?;
            if json {
                return Ok(a.raw());
            }
            let v = a.json();
            Ok(format!("{}\n", v["url"].as_str().unwrap_or_default())
                + &format!(
                    "expires at {}{}\n",
                    v["expires_at"].as_str().unwrap_or_default(),
                    if read_only { " (read-only)" } else { "" }
                ))
        }
        PortalCmd::Revoke { tenant } => {
            api.call(
                Method::DELETE,
                "/v1/portal/sessions",
                Some(&tenant.tenant),
                None,
            )
            .await?;
            Ok(if json {
                String::new()
            } else {
                format!(
                    "revoked every portal session of {}\n",
                    super::output::printable(&tenant.tenant)
                )
            })
        }
    }
}
