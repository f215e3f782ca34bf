//! The `[store]` section: which engine holds the data (redb, the default, or
//! PostgreSQL for many nodes), its raw shape and checks. It must never read the
//! environment or a file, and never print the database password.

use std::time::Duration;

use serde::Deserialize;

use super::{Backend, StoreConfig};
use crate::model::Secret;

/// `[store]` as written.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawStore {
    pub backend: Option<String>,
    pub postgres_url: Option<Secret>,
    pub postgres_pool: Option<i64>,
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
    match (&backend, &postgres_url) {
        (Backend::Postgres, None) => add(
            "store.postgres_url",
            "is required when store.backend is \"postgres\"".to_owned(),
        ),
        (_, Some(url)) => {
            let text = url.expose().trim();
            if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
                add(
                    "store.postgres_url",
                    "must be a URL starting with postgres:// or postgresql://".to_owned(),
                );
            } else if let Err(e) = text.parse::<tokio_postgres::Config>() {
                // The parser's message names the part that is wrong, never the password.
                add("store.postgres_url", format!("is not valid: {e}"));
            }
        }
        (Backend::Redb, None) => {}
    }
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
        lease,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{Backend, Config, ConfigError};

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
}
