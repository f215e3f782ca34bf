//! The hookbox binary: command-line parsing, dispatch and exit codes only. It must
//! never hold application logic; everything it runs lives in the library.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use hookbox::cli;
use hookbox::config::{Config, ConfigError, LogFormat};
use hookbox::delivery::signer;
use hookbox::store::StoreError;
use hookbox::store::pg::PgError;

/// Exit code for an unusable configuration (sysexits' EX_USAGE): distinct from a
/// runtime failure (1) so a supervisor can stop restarting a process that cannot
/// start (systemd `RestartPreventExitStatus=64`).
const EXIT_BAD_CONFIG: u8 = 64;

/// Exit code for a data file written by a newer hookbox (sysexits' EX_DATAERR): the
/// file is refused, never misread, and restarting cannot help
/// (systemd `RestartPreventExitStatus=64 65`).
const EXIT_NEWER_DATA: u8 = 65;

/// Exit code for a PostgreSQL store that cannot be reached at start (sysexits'
/// EX_UNAVAILABLE): a supervisor may retry later.
const EXIT_DB_UNAVAILABLE: u8 = 69;

const EXAMPLES: &str = "\
Examples:
  hookbox                                      serve with the built-in defaults
  hookbox --config /etc/hookbox/hookbox.toml   serve with a config file
  HOOKBOX_LISTEN=0.0.0.0:8080 hookbox serve    override a setting from the environment
  hookbox tenant create --name 'Acme Health' --id acme
  hookbox key create --tenant acme --name backend --scope events:write
  hookbox event send --tenant acme --type PATIENT_CREATED --data '{\"id\":\"p_1\"}'
  hookbox delivery list --tenant acme --webhook wh_01J... --status failed
  hookbox webhook recover --tenant acme wh_01J... --since 2026-01-31T00:00:00Z
  hookbox verify --secret whsec_... --id evt_... --timestamp 1614265330 \\
      --signature 'v1,g0hM9SsE...' < body.json  check a received webhook

The tenant, key, webhook, event and delivery commands talk to a running server
(--server, default http://127.0.0.1:8080, env HOOKBOX_SERVER): the data file has a
single owner, so there is no offline mode. They use the admin token from
--admin-token, HOOKBOX_ADMIN_TOKEN, the config's admin_token or <data_dir>/admin-token.
Exit status: 0 ok, 1 the server refused (every reason is printed), 2 bad usage,
3 cannot connect, 64 invalid configuration, 65 (serve) the data file (or the
PostgreSQL schema) was written by a newer hookbox, 69 (serve) PostgreSQL cannot
be reached. `hookbox store copy|compact` work offline on a stopped data dir and
have their own exit codes (see `hookbox store --help`).
";

/// hookbox: an embedded webhook gateway. Durable ingest, signed Standard Webhooks
/// delivery with retries, one binary and one data file.
#[derive(Parser)]
#[command(name = "hookbox", version, after_help = EXAMPLES)]
struct Cli {
    /// TOML configuration file; built-in defaults when omitted.
    #[arg(long, global = true, env = "HOOKBOX_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Serve,
    /// Check a webhook signature the way a receiver would; the body is read from stdin.
    #[command(after_help = "Exit status: 0 when valid, 1 when invalid or the secret is malformed.")]
    Verify(VerifyArgs),
    /// Offline maintenance of a stopped data dir: copy it into PostgreSQL, or compact it.
    Store(cli::store::Store),
    #[command(flatten)]
    Client(cli::ClientCommand),
}

#[derive(Args)]
struct VerifyArgs {
    /// The endpoint's signing secret: whsec_... (base64 key), or a plain secret
    /// (seed 004's form; its UTF-8 bytes are the key).
    #[arg(long, env = "HOOKBOX_VERIFY_SECRET", hide_env_values = true)]
    secret: String,
    /// The webhook-id header.
    #[arg(long)]
    id: String,
    /// The webhook-timestamp header (Unix seconds).
    #[arg(long, allow_negative_numbers = true)]
    timestamp: i64,
    /// The webhook-signature header (space-separated v1,<base64> entries).
    #[arg(long)]
    signature: String,
    /// Skip the 5-minute timestamp tolerance check (for replaying old messages).
    #[arg(long)]
    no_timestamp_check: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // `store` reports bad usage as sysexits' EX_USAGE, like its other exit codes.
        Err(e) if e.use_stderr() && std::env::args().any(|a| a == "store") => {
            let _ = e.print();
            return ExitCode::from(cli::store::exit::USAGE);
        }
        Err(e) => e.exit(),
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config).await,
        Command::Verify(args) => verify(&args),
        Command::Store(cmd) => {
            let env: Vec<(String, String)> = std::env::vars().collect();
            ExitCode::from(cli::store::run(cli.config.as_deref(), &env, cmd).await)
        }
        Command::Client(cmd) => {
            let env: Vec<(String, String)> = std::env::vars().collect();
            ExitCode::from(cli::run(cli.config.as_deref(), &env, cmd).await)
        }
    }
}

async fn serve(path: Option<PathBuf>) -> ExitCode {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let config = match Config::load(path.as_deref(), &env) {
        Ok(config) => config,
        Err(err) => {
            report_config_error(&err);
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    init_tracing(&config);
    match hookbox::app::serve(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hookbox: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            let newer = err.chain().any(|cause| {
                matches!(
                    cause.downcast_ref::<StoreError>(),
                    Some(StoreError::NewerFormat { .. })
                ) || matches!(
                    cause.downcast_ref::<PgError>(),
                    Some(PgError::NewerSchema { .. })
                )
            });
            let unreachable = err.chain().any(|cause| {
                matches!(
                    cause.downcast_ref::<PgError>(),
                    Some(PgError::Unreachable(_))
                )
            });
            if newer {
                ExitCode::from(EXIT_NEWER_DATA)
            } else if unreachable {
                ExitCode::from(EXIT_DB_UNAVAILABLE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn report_config_error(err: &ConfigError) {
    match err {
        ConfigError::Invalid(reasons) => {
            eprintln!(
                "hookbox: invalid configuration ({} problems):",
                reasons.len()
            );
            for reason in reasons {
                eprintln!("  - {reason}");
            }
        }
        other => {
            eprintln!("hookbox: {other}");
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
        }
    }
}

/// Logs go to stderr; `RUST_LOG` overrides the configured level.
fn init_tracing(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn verify(args: &VerifyArgs) -> ExitCode {
    let key = match signer::decode_secret(&args.secret) {
        Ok(key) => key,
        Err(err) => {
            eprintln!("invalid: {err}");
            return ExitCode::FAILURE;
        }
    };
    // Blocking read on the runtime thread is fine: nothing else runs in this mode.
    let mut body = Vec::new();
    if let Err(err) = std::io::stdin().read_to_end(&mut body) {
        eprintln!("invalid: cannot read the body from stdin: {err}");
        return ExitCode::FAILURE;
    }
    let tolerance = (!args.no_timestamp_check).then_some(signer::DEFAULT_TOLERANCE);
    let now = jiff::Timestamp::now().as_second();
    match signer::verify(
        &key,
        &args.id,
        args.timestamp,
        &body,
        &args.signature,
        now,
        tolerance,
    ) {
        Ok(()) => {
            println!("valid");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("invalid: {err}");
            ExitCode::FAILURE
        }
    }
}
