//! TLS to PostgreSQL against a real server with ssl=on (`Cluster::private_tls`, a
//! certificate for 127.0.0.1 and localhost from a test CA made at test time, TCP
//! accepted only through TLS): the CA given in the URL or in `[store]` is trusted
//! and the connection is encrypted (`pg_stat_ssl`); a hookbox server on it ingests
//! and delivers; a certificate from another CA and a host name the certificate does
//! not hold are refused with a clear error (the binary exits 69); bad TLS settings
//! are refused at start, every reason listed (exit 64). Connects only to 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hookbox::config::{Backend, ENV_OVERRIDES};
use hookbox::model::Secret;
use hookbox::store::pg::{self, PgError, PgStore};
use serde_json::json;

use crate::helpers::TestApp;
use crate::pg_cluster::{self, Cluster, Private, TestCa, sql};
use crate::receiver::TestReceiver;

const WAIT: Duration = Duration::from_secs(10);

/// The TLS cluster the tests of this file share, with its CA and a second CA that
/// signed nothing the server holds.
pub(crate) struct Tls {
    cluster: Private,
    /// The PEM file of the CA that signed the server's certificate.
    pub(crate) ca_file: PathBuf,
    /// The PEM file of an unrelated CA.
    other_ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

static TLS: OnceLock<Tls> = OnceLock::new();

pub(crate) fn tls() -> &'static Tls {
    TLS.get_or_init(|| {
        let ca = TestCa::new("hookbox test CA");
        let (cert, key) = ca.server(&["localhost", "127.0.0.1"]);
        let cluster = Cluster::private_tls(&cert, &key);
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_file = ca.write(dir.path(), "ca.pem");
        let other_ca_file = TestCa::new("another CA").write(dir.path(), "other-ca.pem");
        // SAFETY: `atexit` registers a plain function with no arguments; it runs
        // once at normal process exit (statics are never dropped).
        unsafe { libc::atexit(stop_tls) };
        Tls {
            cluster,
            ca_file,
            other_ca_file,
            _dir: dir,
        }
    })
}

extern "C" fn stop_tls() {
    if let Some(tls) = TLS.get() {
        tls.cluster.remove();
    }
}

impl Tls {
    /// A fresh database: its name, and its TCP URL with `params` (host 127.0.0.1).
    pub(crate) async fn database(&self, params: &str) -> (String, String) {
        let name = self.cluster.database_name().await;
        let url = self.url(&name, "127.0.0.1", params);
        (name, url)
    }

    /// The TCP URL of database `name` at `host` with `params`.
    pub(crate) fn url(&self, name: &str, host: &str, params: &str) -> String {
        let sep = if params.is_empty() { "" } else { "?" };
        format!(
            "postgres://postgres@{host}:{}/{name}{sep}{params}",
            self.cluster.port()
        )
    }

    /// A plain connection to database `name` through the Unix socket, to look at
    /// the server's view of the other connections.
    pub(crate) async fn observer(&self, name: &str) -> tokio_postgres::Client {
        sql(&self.cluster.plain_url(name)).await
    }
}

/// Whether the connection behind `pool` is encrypted, as the server sees it.
async fn encrypted(pool: &deadpool_postgres::Pool) -> Result<bool, PgError> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// Connects once through a hookbox pool on `url` (with `ca`) and says whether the
/// connection is encrypted; the error as hookbox reports it.
async fn connect(url: &str, ca: Option<&Path>) -> Result<bool, String> {
    let pool = pg::pool_with(url, ca, 1).map_err(|e| e.to_string())?;
    let answer = encrypted(&pool).await.map_err(|e| e.to_string());
    pool.close();
    answer
}

/// `path` percent-encoded for a URL query.
fn query_value(path: &Path) -> String {
    path.to_string_lossy()
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn the_servers_ca_is_trusted_from_the_url_or_the_config_and_the_link_is_encrypted() {
    let tls = tls();
    let (name, _) = tls.database("").await;
    let url = |params: &str| tls.url(&name, "127.0.0.1", params);

    // The CA from [store] postgres_ca_file, under each mode that checks it.
    for mode in ["verify-full", "verify-ca", "require"] {
        let got = connect(&url(&format!("sslmode={mode}")), Some(&tls.ca_file)).await;
        assert_eq!(got, Ok(true), "sslmode={mode} with the CA file");
    }
    // The libpq way: sslrootcert in the URL (no sslmode: a CA means verify-full).
    let ca = query_value(&tls.ca_file);
    for params in [
        format!("sslrootcert={ca}"),
        format!("sslmode=verify-full&sslrootcert={ca}"),
    ] {
        assert_eq!(connect(&url(&params), None).await, Ok(true), "{params}");
    }
    // No sslmode and no CA is libpq's `prefer`: TLS because the server offers it,
    // the certificate unchecked (before, this failed on the unknown CA).
    assert_eq!(connect(&url(""), None).await, Ok(true), "no sslmode");
    assert_eq!(connect(&url("sslmode=prefer"), None).await, Ok(true));

    // This server takes TCP only through TLS: plain text is refused, so every TCP
    // connection above was encrypted; pg_stat_ssl said so for each.
    let plain = connect(&url("sslmode=disable"), None).await;
    assert!(plain.is_err(), "{plain:?}");

    // The server's view: a PgStore's connection is TLS 1.3.
    let store = PgStore::open_with(
        &url("sslmode=verify-full"),
        Some(&tls.ca_file),
        2,
        pg_cluster::cipher(),
    )
    .await
    .expect("open on TLS");
    store.list_tenants().await.expect("a statement over TLS");
    let observer = tls.observer(&name).await;
    let rows = observer
        .query(
            "SELECT s.ssl, s.version FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = $1 AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'",
            &[&name],
        )
        .await
        .unwrap();
    assert!(!rows.is_empty(), "the store holds a connection");
    for row in rows {
        assert!(row.get::<_, bool>(0));
        assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("TLSv1.3"));
    }
    store.close();
}

#[tokio::test]
async fn a_hookbox_server_on_tls_postgres_ingests_and_delivers_an_event() {
    let tls = tls();
    let (name, url) = tls.database("sslmode=verify-full").await;
    let rx = TestReceiver::start().await;
    let app = TestApp::spawn_with(|c| {
        c.store.backend = Backend::Postgres;
        c.store.postgres_url = Some(Secret::new(url.clone()));
        c.store.postgres_ca_file = Some(tls.ca_file.clone());
        c.store.postgres_pool = 4;
        c.store.lease = Duration::from_secs(6);
    })
    .await;
    let t = app.tenant("acme").await;
    app.webhook(
        &t,
        json!({"url": rx.url("/tls"), "event_types": ["shift.created"]}),
    )
    .await;
    let e = app
        .event(
            &t,
            json!({"type": "shift.created", "data": {"shift": "S-1"}}),
        )
        .await;
    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("webhook-id"), e["id"].as_str());
    assert_eq!(got[0].json()["data"]["shift"], "S-1");
    let dlv = app.deliveries_of(&t, e["id"].as_str().expect("id")).await;
    let id = dlv[0]["id"].as_str().expect("delivery id").to_owned();
    app.wait_delivery(&t, &id, WAIT, |d| d["status"] == "succeeded")
        .await;

    // Every connection the server holds (pool and change listener) is encrypted.
    let observer = tls.observer(&name).await;
    let ssl: Vec<bool> = observer
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = $1 AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'",
            &[&name],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(ssl.len() >= 2, "pool and listener connections: {ssl:?}");
    assert!(ssl.iter().all(|s| *s), "{ssl:?}");
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_with_a_clear_error() {
    let tls = tls();
    let (_, url) = tls.database("sslmode=verify-full").await;
    let refused = PgStore::open_with(&url, Some(&tls.other_ca_file), 2, pg_cluster::cipher()).await;
    let Err(PgError::Unreachable(why)) = refused else {
        panic!("expected the certificate to be refused");
    };
    assert!(why.contains("UnknownIssuer"), "{why}");
    assert!(why.contains("not signed by a CA hookbox trusts"), "{why}");
    assert!(why.contains("postgres_ca_file"), "{why}");

    // `require` checks the certificate too (stricter than libpq): without a CA,
    // against the public roots, which did not sign the test CA.
    let (_, url) = tls.database("sslmode=require").await;
    let why = connect(&url, None).await.unwrap_err();
    assert!(why.contains("not signed by a CA hookbox trusts"), "{why}");

    // The binary: exit 69 (cannot reach a PostgreSQL it trusts), the reason on stderr.
    let (_, url) = tls.database("sslmode=verify-full").await;
    let (code, stderr) = serve(&[
        ("HOOKBOX_POSTGRES_URL", url.as_str()),
        (
            "HOOKBOX_POSTGRES_CA_FILE",
            &tls.other_ca_file.to_string_lossy(),
        ),
    ]);
    assert_eq!(code, Some(69), "{stderr}");
    assert!(stderr.contains("cannot reach PostgreSQL"), "{stderr}");
    assert!(
        stderr.contains("not signed by a CA hookbox trusts"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_host_name_the_certificate_does_not_hold_is_refused_under_verify_full() {
    let tls = tls();
    let (name, _) = tls.database("").await;
    // `hostaddr` connects to 127.0.0.1 while TLS checks the name in `host`.
    let at = |mode: &str| {
        tls.url(
            &name,
            "db.wrong.example",
            &format!("hostaddr=127.0.0.1&sslmode={mode}"),
        )
    };
    for mode in ["verify-full", "require"] {
        let why = connect(&at(mode), Some(&tls.ca_file)).await.unwrap_err();
        assert!(
            why.contains("not valid for name \"db.wrong.example\""),
            "{mode}: {why}"
        );
        assert!(
            why.contains("does not hold the host name of postgres_url"),
            "{mode}: {why}"
        );
    }
    // verify-ca checks the chain only: the same server is accepted, encrypted.
    assert_eq!(
        connect(&at("verify-ca"), Some(&tls.ca_file)).await,
        Ok(true)
    );
    // And the names the certificate holds pass verify-full.
    let ip = tls.url(&name, "127.0.0.1", "sslmode=verify-full");
    assert_eq!(connect(&ip, Some(&tls.ca_file)).await, Ok(true));
}

#[test]
fn tls_settings_that_cannot_work_stop_the_start_with_every_reason() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no certificate here\n").unwrap();
    let missing = dir.path().join("missing.pem");
    // Loopback, but nothing is reached: the configuration is refused first.
    let url = format!(
        "postgres://hookbox@127.0.0.1:1/hb?sslmode=prefer&sslrootcert={}",
        query_value(&missing)
    );
    let (code, stderr) = serve(&[
        ("HOOKBOX_POSTGRES_URL", url.as_str()),
        ("HOOKBOX_POSTGRES_CA_FILE", &empty.to_string_lossy()),
    ]);
    assert_eq!(code, Some(64), "{stderr}");
    for want in [
        "store.postgres_ca_file: ",
        "holds no PEM certificate",
        "sslrootcert ",
        "cannot be read",
        "name different CA files",
        "sslmode=prefer never checks the server's certificate",
    ] {
        assert!(stderr.contains(want), "{want:?} not in {stderr}");
    }
}

/// Runs `hookbox serve` on PostgreSQL with a fresh data dir and `env`, waits (at
/// most 30 s) for it to exit, and returns its exit code and stderr.
fn serve(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let data = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookbox"));
    for (var, _) in ENV_OVERRIDES {
        cmd.env_remove(var);
    }
    cmd.env_remove("HOOKBOX_CONFIG")
        .env("RUST_LOG", "warn")
        .env("HOOKBOX_LISTEN", "127.0.0.1:0")
        .env("HOOKBOX_DATA_DIR", data.path())
        .env("HOOKBOX_STORE_BACKEND", "postgres")
        .envs(env.iter().copied())
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run hookbox");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for hookbox") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hookbox serve did not exit within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    (status.code(), stderr)
}
