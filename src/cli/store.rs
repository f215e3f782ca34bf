//! `hookbox store copy|compact`: offline maintenance of a STOPPED data dir, through
//! the store's own functions (`store::copy`, `store::offline`). Arguments, output
//! and exit codes only; unlike the client commands these open the data file, and
//! they refuse one a running hookbox holds. Never prints a secret or the database URL.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::app::DATA_FILE;
use crate::config::{Config, ConfigError};
use crate::secrets;
use crate::store::StoreError;
use crate::store::copy::{self, CopyError, CopyOptions, DEFAULT_BATCH_ROWS};
use crate::store::offline::{self, OfflineError};
use crate::store::pg::PgError;

/// Exit codes of `hookbox store` (sysexits.h), documented in its help.
pub mod exit {
    /// Done.
    pub const OK: u8 = 0;
    /// Bad arguments, an invalid config file or an invalid `--postgres-url`.
    pub const USAGE: u8 = 64;
    /// A newer store format (file) or schema (database), a corrupt record, or a
    /// master key that does not open the file's webhooks.
    pub const DATA: u8 = 65;
    /// No data file in `--data-dir`, or no master key for it.
    pub const NO_INPUT: u8 = 66;
    /// PostgreSQL cannot be reached.
    pub const UNAVAILABLE: u8 = 69;
    /// An internal error (a bug); nothing was committed.
    pub const SOFTWARE: u8 = 70;
    /// The target database is not empty; nothing was written.
    pub const CANT_CREATE: u8 = 73;
    /// Reading the file or writing to PostgreSQL failed; nothing was committed.
    pub const IO: u8 = 74;
    /// The data dir is in use (a running hookbox holds it): stop it and retry.
    pub const IN_USE: u8 = 75;
}

const HELP: &str = "\
Both commands work on a STOPPED data dir: stop hookbox first (they refuse a data file
a running hookbox holds).

Examples:
  hookbox store copy --data-dir /var/lib/hookbox \\
      --postgres-url 'postgres://hookbox@127.0.0.1:5432/hookbox'
  hookbox --config /etc/hookbox/hookbox.toml store copy --data-dir /var/lib/hookbox \\
      --postgres-url \"$HOOKBOX_POSTGRES_URL\"
  hookbox store compact --data-dir /var/lib/hookbox

`store copy` fills an EMPTY database (migrated first) in one transaction: all or
nothing. Webhook secrets stay sealed with the data dir's master key (`master_key` from
--config or HOOKBOX_MASTER_KEY, else <data_dir>/master.key); every node on the
database must be configured with that same master_key.

Exit status: 0 ok, 64 bad usage or config, 65 newer format or schema, corrupt data or
wrong master key, 66 no data file or master key, 69 PostgreSQL unreachable, 70
internal error, 73 target database not empty, 74 read or write failed (nothing
committed), 75 data dir in use by a running hookbox.";

/// `hookbox store ...`
#[derive(Args, Debug)]
#[command(after_help = HELP)]
pub struct Store {
    #[command(subcommand)]
    cmd: StoreCmd,
}

#[derive(Subcommand, Debug)]
enum StoreCmd {
    /// Copy a stopped redb store into an empty PostgreSQL database.
    Copy {
        /// The data dir of the stopped hookbox (holding hookbox.redb).
        #[arg(long, env = "HOOKBOX_DATA_DIR", value_name = "DIR")]
        data_dir: PathBuf,
        /// The target database (empty; migrated by the copy). Default: the config's
        /// `[store] postgres_url` (env HOOKBOX_POSTGRES_URL).
        #[arg(long, value_name = "URL")]
        postgres_url: Option<String>,
        /// Rows per multi-row insert.
        #[arg(long, default_value_t = DEFAULT_BATCH_ROWS, value_name = "N")]
        batch_rows: usize,
    },
    /// Compact a stopped data file, printing its size before and after.
    Compact {
        /// The data dir of the stopped hookbox (holding hookbox.redb).
        #[arg(long, env = "HOOKBOX_DATA_DIR", value_name = "DIR")]
        data_dir: PathBuf,
    },
}

/// Runs a `store` command; prints what it did (stdout) or why it failed (stderr)
/// and returns the exit code.
pub async fn run(config: Option<&Path>, env: &[(String, String)], cmd: Store) -> u8 {
    match cmd.cmd {
        StoreCmd::Copy {
            data_dir,
            postgres_url,
            batch_rows,
        } => copy(config, env, &data_dir, postgres_url, batch_rows).await,
        StoreCmd::Compact { data_dir } => compact(&data_dir).await,
    }
}

async fn copy(
    config: Option<&Path>,
    env: &[(String, String)],
    data_dir: &Path,
    url: Option<String>,
    batch_rows: usize,
) -> u8 {
    let config = match Config::load(config, env) {
        Ok(c) => c,
        Err(e) => return fail(&config_error(&e), exit::USAGE),
    };
    let configured = config
        .store
        .postgres_url
        .as_ref()
        .map(|u| u.expose().trim().to_owned());
    let Some(url) = url.or(configured) else {
        return fail(
            "no target database: give --postgres-url, or postgres_url in the config's \
             [store] section (env HOOKBOX_POSTGRES_URL)",
            exit::USAGE,
        );
    };
    let file = data_dir.join(DATA_FILE);
    if !file.is_file() {
        return fail(
            &format!("no hookbox data file at {}", file.display()),
            exit::NO_INPUT,
        );
    }
    let cipher = match secrets::load_master_key(config.master_key.as_ref(), data_dir) {
        Ok(c) => c,
        Err(e) => {
            return fail(
                &format!(
                    "no usable master key ({e}): give master_key in --config or \
                     HOOKBOX_MASTER_KEY, or keep the data dir's master.key"
                ),
                exit::NO_INPUT,
            );
        }
    };
    let options = CopyOptions {
        batch_rows,
        ca_file: config.store.postgres_ca_file.clone(),
    };
    match copy::copy_to_postgres(&file, cipher, &url, options).await {
        Ok(copied) => {
            print!("{}", report(&file, &copied));
            exit::OK
        }
        Err(e) => fail(&chain(&e), copy_exit(&e)),
    }
}

async fn compact(data_dir: &Path) -> u8 {
    let file = data_dir.join(DATA_FILE);
    let done = tokio::task::spawn_blocking(move || offline::compact(&file)).await;
    match done {
        Ok(Ok(c)) => {
            println!(
                "compacted {}: {} -> {} bytes ({} freed)",
                data_dir.join(DATA_FILE).display(),
                c.before,
                c.after,
                c.before.saturating_sub(c.after)
            );
            exit::OK
        }
        Ok(Err(e)) => fail(&chain(&e), offline_exit(&e)),
        Err(e) => fail(&format!("the compaction task failed: {e}"), exit::SOFTWARE),
    }
}

/// What a finished copy prints: rows per table, and what was not copied.
pub fn report(file: &Path, c: &copy::Copied) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "copied {} into PostgreSQL in one transaction ({} insert statements):",
        file.display(),
        c.statements
    );
    for (table, n) in &c.rows.0 {
        let _ = writeln!(out, "  {table:<16} {n:>10}");
    }
    for (table, n, why) in &c.skipped {
        let _ = writeln!(out, "not copied: {table} {n} ({why})");
    }
    let _ = writeln!(
        out,
        "Webhook secrets are sealed with this data dir's master key: configure every node \
         on this database with the same master_key."
    );
    out
}

fn fail(message: &str, code: u8) -> u8 {
    eprintln!("hookbox store: {message}");
    code
}

/// An error and its causes, one per line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let _ = write!(out, "\n  caused by: {cause}");
        source = cause.source();
    }
    out
}

fn config_error(e: &ConfigError) -> String {
    match e {
        ConfigError::Invalid(reasons) => format!(
            "invalid configuration ({} problems):\n  - {}",
            reasons.len(),
            reasons.join("\n  - ")
        ),
        other => chain(other),
    }
}

fn offline_exit(e: &OfflineError) -> u8 {
    match e {
        OfflineError::Missing(_) => exit::NO_INPUT,
        OfflineError::InUse(_) => exit::IN_USE,
        OfflineError::NewerFormat { .. } => exit::DATA,
        OfflineError::Read(e) => store_exit(e),
        OfflineError::Open { .. } | OfflineError::Compact(_) => exit::IO,
    }
}

fn store_exit(e: &StoreError) -> u8 {
    match e {
        StoreError::Corrupt { .. } | StoreError::Seal(_) | StoreError::NewerFormat { .. } => {
            exit::DATA
        }
        StoreError::Unavailable(_) | StoreError::Postgres(PgError::Unreachable(_)) => {
            exit::UNAVAILABLE
        }
        StoreError::Conflict(_) | StoreError::NotFound(_) | StoreError::Revoked(_) => {
            exit::SOFTWARE
        }
        _ => exit::IO,
    }
}

fn copy_exit(e: &CopyError) -> u8 {
    match e {
        CopyError::Source(e) => offline_exit(e),
        CopyError::Read(e) => store_exit(e),
        CopyError::Target(PgError::Url(_) | PgError::Tls(_)) => exit::USAGE,
        CopyError::Target(PgError::Unreachable(_)) => exit::UNAVAILABLE,
        CopyError::Target(PgError::NewerSchema { .. }) => exit::DATA,
        CopyError::Target(_) => exit::IO,
        CopyError::NotEmpty(_) => exit::CANT_CREATE,
        CopyError::Write(e) => store_exit(e),
        CopyError::Mismatch { .. } => exit::SOFTWARE,
    }
}
