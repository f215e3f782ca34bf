//! The `[store]` section: which engine holds the data (redb, the default, or
//! PostgreSQL for many nodes), its raw shape and checks, TLS settings included. It
//! reads no file but the CA file it checks, never the environment, and never prints
//! the database password.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{Backend, StoreConfig};
use crate::model::Secret;
use crate::store::pg::{Policy, RootCert, Statements, UrlTls, load_ca, split_url};

/// `[store]` as written.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawStore {
    pub backend: Option<String>,
    pub postgres_url: Option<Secret>,
    pub postgres_pool: Option<i64>,
    pub postgres_ca_file: Option<PathBuf>,
    pub postgres_statements: Option<String>,
    pub postgres_listen_url: Option<Secret>,
    pub lease: Option<String>,
}

/// The accepted range of `store.postgres_pool`.
const POOL: (i64, i64) = (1, 1024);
/// The shortest accepted `store.lease`.
const MIN_LEASE: Duration = Duration::from_secs(1);

/// Checks `[store]`. `request_timeout` is the delivery setting the lease must
/// outlast three times over (an attempt never outlives its lease unrenewed).
/// `duration` parses a duration value the usual way, reporting its own problems.
pub(super) fn build(
    raw: RawStore,
    request_timeout: Duration,
    add: &mut dyn FnMut(&str, String),
    duration: &mut dyn FnMut(&str, Option<String>, Duration) -> Duration,
) -> StoreConfig {
    let d = StoreConfig::default();
    let backend = match raw.backend.as_deref().map(str::trim) {
        None => d.backend,
        Some(b) if b.eq_ignore_ascii_case("redb") => Backend::Redb,
        Some(b) if b.eq_ignore_ascii_case("postgres") || b.eq_ignore_ascii_case("postgresql") => {
            Backend::Postgres
        }
        Some(b) => {
            add(
                "store.backend",
                format!("{b:?} is not \"redb\" or \"postgres\""),
            );
            d.backend
        }
    };
    let postgres_url = raw.postgres_url.filter(|u| !u.expose().trim().is_empty());
    let postgres_listen_url = raw
        .postgres_listen_url
        .filter(|u| !u.expose().trim().is_empty());
    let postgres_ca_file = raw.postgres_ca_file.filter(|f| !f.as_os_str().is_empty());
    if backend == Backend::Postgres && postgres_url.is_none() {
        add(
            "store.postgres_url",
            "is required when store.backend is \"postgres\"".to_owned(),
        );
    }
    let url_tls = postgres_url
        .as_ref()
        .and_then(|url| check_url("store.postgres_url", url.expose(), add));
    let ca_file = postgres_ca_file.as_deref();
    if let Some(path) = ca_file
        && let Err(e) = load_ca(path)
    {
        add("store.postgres_ca_file", format!("{}: {e}", path.display()));
    }
    check_tls("store.postgres_url", url_tls.as_ref(), ca_file, add);
    if let Some(url) = &postgres_listen_url {
        // The listener's connection trusts the same CA file as the pool's.
        let key = "store.postgres_listen_url";
        let tls = check_url(key, url.expose(), add);
        check_tls(key, tls.as_ref(), ca_file, add);
    }
    let postgres_statements = match raw.postgres_statements.as_deref() {
        None => d.postgres_statements,
        Some(text) => Statements::parse(text).unwrap_or_else(|| {
            add(
                "store.postgres_statements",
                format!("{text:?} is not \"cached\" or \"unnamed\""),
            );
            d.postgres_statements
        }),
    };
    let postgres_pool = match raw.postgres_pool {
        None => d.postgres_pool,
        Some(n) if (POOL.0..=POOL.1).contains(&n) => usize::try_from(n).unwrap_or(d.postgres_pool),
        Some(n) => {
            add(
                "store.postgres_pool",
                format!("{n} is out of range {}..={}", POOL.0, POOL.1),
            );
            d.postgres_pool
        }
    };
    let lease = duration("store.lease", raw.lease, d.lease);
    if lease < MIN_LEASE {
        add("store.lease", "must be at least 1s".to_owned());
    } else if lease < request_timeout * 3 {
        add(
            "store.lease",
            format!(
                "{}s is shorter than 3 x delivery.request_timeout ({}s): an attempt could \
                 outlive its lease",
                lease.as_secs_f64(),
                (request_timeout * 3).as_secs_f64()
            ),
        );
    }
    StoreConfig {
        backend,
        postgres_url,
        postgres_pool,
        postgres_ca_file,
        postgres_statements,
        postgres_listen_url,
        lease,
    }
}

/// Checks a PostgreSQL URL's shape (`key` names it in the problems); its TLS
/// settings when it is one.
fn check_url(key: &str, url: &str, add: &mut dyn FnMut(&str, String)) -> Option<UrlTls> {
    let text = url.trim();
    if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
        add(
            key,
            "must be a URL starting with postgres:// or postgresql://".to_owned(),
        );
        return None;
    }
    // The parsers' messages name the part that is wrong, never the password.
    match split_url(text) {
        Err(e) => add(key, format!("is not valid: {e}")),
        Ok((rest, tls)) => match rest.parse::<tokio_postgres::Config>() {
            Err(e) => add(key, format!("is not valid: {}", chain(&e))),
            Ok(_) => return Some(tls),
        },
    }
    None
}

/// An error with its causes (tokio-postgres's own message is only "invalid
/// connection string"; the cause names the option or value, never the password).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Checks the TLS settings of the URL at `key`: its `sslmode` and `sslrootcert`
/// with `postgres_ca_file` (every contradiction), and that the CA file its
/// `sslrootcert` names exists and holds at least one usable PEM certificate.
fn check_tls(
    key: &str,
    url: Option<&UrlTls>,
    ca_file: Option<&Path>,
    add: &mut dyn FnMut(&str, String),
) {
    let Some(url) = url else { return };
    if let Some(RootCert::File(path)) = &url.root_cert
        && Some(path.as_path()) != ca_file
        && let Err(e) = load_ca(path)
    {
        add(key, format!("sslrootcert {}: {e}", path.display()));
    }
    if let Err(problems) = Policy::decide(url, ca_file) {
        for p in problems {
            add(key, p);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{Backend, Config, ConfigError};
    use crate::store::pg::Statements;

    fn load(toml: &str, vars: &[(&str, &str)]) -> Result<Config, Vec<String>> {
        let env: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        match Config::from_toml(toml, &env) {
            Ok(c) => Ok(c),
            Err(ConfigError::Invalid(list)) => Err(list),
            Err(other) => Err(vec![format!("unexpected error: {other:?}")]),
        }
    }

    #[test]
    fn redb_is_the_default_and_postgres_is_read_from_file_and_env() {
        let c = load("", &[]).expect("defaults");
        assert_eq!(c.store.backend, Backend::Redb);
        assert_eq!(c.store.postgres_pool, 16);
        assert_eq!(c.store.lease, Duration::from_secs(60));

        let c = load(
            "[store]\nbackend = \"postgres\"\npostgres_url = \"postgres://hb@127.0.0.1:5432/hb\"\n\
             postgres_pool = 4\nlease = \"90s\"\n",
            &[],
        )
        .expect("valid");
        assert_eq!(c.store.backend, Backend::Postgres);
        assert_eq!(c.store.postgres_pool, 4);
        assert_eq!(c.store.lease, Duration::from_secs(90));

        // Every key has its environment override, and the environment wins.
        let c = load(
            "",
            &[
                ("HOOKBOX_STORE_BACKEND", "postgres"),
                ("HOOKBOX_POSTGRES_URL", "postgresql://hb:pw@127.0.0.1/hb"),
                ("HOOKBOX_POSTGRES_POOL", "32"),
                ("HOOKBOX_STORE_LEASE", "2m"),
            ],
        )
        .expect("valid");
        assert_eq!(c.store.backend, Backend::Postgres);
        assert_eq!(c.store.postgres_pool, 32);
        assert_eq!(c.store.lease, Duration::from_secs(120));
        assert_eq!(
            c.store.postgres_url.as_ref().map(|u| u.expose().to_owned()),
            Some("postgresql://hb:pw@127.0.0.1/hb".to_owned())
        );
        // The URL may carry a password: it never shows in debug output.
        assert!(!format!("{c:?}").contains("pw@"));
    }

    #[test]
    fn every_store_problem_is_listed_at_once() {
        let found = load(
            "[store]\nbackend = \"mysql\"\npostgres_url = \"mysql://x\"\npostgres_pool = 0\n\
             lease = \"1s\"\n",
            &[],
        )
        .expect_err("invalid");
        for want in [
            "store.backend: \"mysql\" is not \"redb\" or \"postgres\"",
            "store.postgres_url: must be a URL starting with postgres://",
            "store.postgres_pool: 0 is out of range 1..=1024",
            "store.lease: 1s is shorter than 3 x delivery.request_timeout",
        ] {
            assert!(
                found.iter().any(|p| p.starts_with(want)),
                "{want:?} not in {found:?}"
            );
        }
        let found = load("[store]\nbackend = \"postgres\"\n", &[]).expect_err("no url");
        assert_eq!(
            found,
            ["store.postgres_url: is required when store.backend is \"postgres\""]
        );
        let found = load("", &[("HOOKBOX_POSTGRES_POOL", "many")]).expect_err("not a number");
        assert!(
            found[0].contains("(set by HOOKBOX_POSTGRES_POOL)"),
            "{found:?}"
        );
        let found = load(
            "[store]\npostgres_url = \"postgres://127.0.0.1:notaport/x\"\n",
            &[],
        )
        .expect_err("bad port");
        assert!(
            found[0].starts_with("store.postgres_url: is not valid"),
            "{found:?}"
        );
    }

    #[test]
    fn statements_and_the_listener_url_are_read_checked_and_listed() {
        let c = load("", &[]).expect("defaults");
        assert_eq!(c.store.postgres_statements, Statements::Cached);
        assert_eq!(c.store.postgres_listen_url, None);
        let c = load(
            "[store]\nbackend = \"postgres\"\npostgres_url = \"postgres://hb@127.0.0.1:6432/hb\"\n\
             postgres_statements = \"unnamed\"\n\
             postgres_listen_url = \"postgres://hb@127.0.0.1:5432/hb\"\n",
            &[],
        )
        .expect("valid");
        assert_eq!(c.store.postgres_statements, Statements::Unnamed);
        assert_eq!(
            c.store
                .postgres_listen_url
                .as_ref()
                .map(|u| u.expose().to_owned()),
            Some("postgres://hb@127.0.0.1:5432/hb".to_owned())
        );
        let c = load(
            "",
            &[
                ("HOOKBOX_POSTGRES_STATEMENTS", "Unnamed"),
                ("HOOKBOX_POSTGRES_LISTEN_URL", "postgresql://hb:pw@db/hb"),
            ],
        )
        .expect("valid");
        assert_eq!(c.store.postgres_statements, Statements::Unnamed);
        assert!(
            !format!("{c:?}").contains("pw@"),
            "the listener URL is a secret"
        );

        let found = load(
            "[store]\npostgres_statements = \"named\"\npostgres_listen_url = \"mysql://x\"\n",
            &[("HOOKBOX_POSTGRES_URL", "postgres://h/db?sslmode=strict")],
        )
        .expect_err("invalid");
        for want in [
            "store.postgres_statements: \"named\" is not \"cached\" or \"unnamed\"",
            "store.postgres_listen_url: must be a URL starting with postgres://",
            "store.postgres_url: is not valid: sslmode \"strict\"",
        ] {
            assert!(
                found.iter().any(|p| p.starts_with(want)),
                "{want:?} not in {found:?}"
            );
        }
        assert_eq!(found.len(), 3, "{found:?}");
        let found = load(
            "[store]\npostgres_listen_url = \"postgres://h/db?sslmode=verify-ca\"\n",
            &[],
        )
        .expect_err("no CA for the listener");
        assert!(
            found[0].starts_with("store.postgres_listen_url: sslmode=verify-ca needs a CA file"),
            "{found:?}"
        );
    }

    /// A CA certificate (PEM) made at test time.
    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn the_ca_file_is_read_from_the_url_the_file_or_the_env_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, ca_pem()).unwrap();
        let url = "postgres://hb@127.0.0.1/hb?sslmode=verify-full";
        let toml = format!(
            "[store]\nbackend = \"postgres\"\npostgres_url = \"{url}\"\n\
             postgres_ca_file = \"{}\"\n",
            ca.display()
        );
        let c = load(&toml, &[]).expect("valid");
        assert_eq!(c.store.postgres_ca_file.as_deref(), Some(ca.as_path()));
        // The URL keeps its TLS parameters: the engine reads them at open.
        assert_eq!(
            c.store.postgres_url.as_ref().map(|u| u.expose().to_owned()),
            Some(url.to_owned())
        );

        let c = load(
            "",
            &[
                ("HOOKBOX_STORE_BACKEND", "postgres"),
                (
                    "HOOKBOX_POSTGRES_URL",
                    "postgres://hb@127.0.0.1/hb?sslmode=verify-ca",
                ),
                ("HOOKBOX_POSTGRES_CA_FILE", &ca.to_string_lossy()),
            ],
        )
        .expect("valid");
        assert_eq!(c.store.postgres_ca_file.as_deref(), Some(ca.as_path()));

        // libpq's way, in the URL alone.
        let url = format!(
            "postgres://hb@127.0.0.1/hb?sslrootcert={}",
            ca.display().to_string().replace('/', "%2F")
        );
        let c = load(
            "",
            &[
                ("HOOKBOX_STORE_BACKEND", "postgres"),
                ("HOOKBOX_POSTGRES_URL", &url),
            ],
        )
        .expect("valid");
        assert_eq!(c.store.postgres_ca_file, None);
    }

    #[test]
    fn every_tls_problem_is_listed_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let missing = dir.path().join("missing.pem");
        let url = format!(
            "postgres://hb@127.0.0.1/hb?sslmode=prefer&sslrootcert={}",
            missing.display()
        );
        let found = load(
            "",
            &[
                ("HOOKBOX_STORE_BACKEND", "postgres"),
                ("HOOKBOX_POSTGRES_URL", &url),
                ("HOOKBOX_POSTGRES_CA_FILE", &empty.to_string_lossy()),
            ],
        )
        .expect_err("invalid");
        let wants = [
            format!(
                "store.postgres_ca_file: {}: holds no PEM certificate",
                empty.display()
            ),
            format!(
                "store.postgres_url: sslrootcert {}: cannot be read",
                missing.display()
            ),
            "store.postgres_url: the URL's sslrootcert and store.postgres_ca_file name \
             different CA files"
                .to_owned(),
            "store.postgres_url: sslmode=prefer never checks the server's certificate".to_owned(),
        ];
        for want in &wants {
            assert!(
                found.iter().any(|p| p.starts_with(want.as_str())),
                "{want:?} not in {found:?}"
            );
        }
        assert_eq!(found.len(), wants.len(), "{found:?}");

        // verify-ca needs a CA; an unknown sslmode names the known ones.
        let found = load(
            "[store]\npostgres_url = \"postgres://h/db?sslmode=verify-ca\"\n",
            &[],
        )
        .expect_err("no CA");
        assert!(
            found[0].contains("sslmode=verify-ca needs a CA file"),
            "{found:?}"
        );
        let found = load(
            "[store]\npostgres_url = \"postgres://h/db?sslmode=strict\"\n",
            &[],
        )
        .expect_err("unknown mode");
        assert!(
            found[0].starts_with("store.postgres_url: is not valid: sslmode \"strict\""),
            "{found:?}"
        );
        // Client certificates are not supported: the option is named.
        let found = load(
            "[store]\npostgres_url = \"postgres://h/db?sslcert=%2Fc.pem\"\n",
            &[],
        )
        .expect_err("client certificate");
        assert!(found[0].ends_with("unknown option `sslcert`"), "{found:?}");
    }
}
