//! A throwaway PostgreSQL cluster for the tests: installed when missing
//! (`.ci/postgres.sh`, Debian's `postgresql`), created with `initdb` in a temp dir,
//! started with `pg_ctl` on a free loopback port (as the `postgres` user when the
//! tests run as root, since the server refuses root), shared by every test of this
//! binary with one fresh database per test, and stopped when the binary exits.
//! Never skips: when PostgreSQL cannot be installed or started, the test fails.
//! Also the PostgreSQL tests' shared helpers: `open` (a `PgStore` under the fixed
//! test master key), `sql` (a plain client, to look at the rows themselves), the
//! rows the tests build (`tenant`, `event_type`, `webhook`, `rich_webhook`), and
//! a TLS variant of a test's own cluster (`Cluster::private_tls`: ssl=on with a
//! certificate of a test CA made at test time, TCP only through TLS).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use hookbox::model::{EventType, OAuthConfig, Secret, SigningSecret, Tenant, Webhook};
use hookbox::secrets::Cipher;
use hookbox::store::pg::PgStore;

/// The master key of every test `PgStore` opened with [`open`].
#[allow(dead_code)]
pub const MASTER_KEY: [u8; 32] = [7; 32];

/// The cipher of [`MASTER_KEY`].
#[allow(dead_code)]
pub fn cipher() -> Cipher {
    Cipher::new(&MASTER_KEY)
}

/// A `PgStore` on `url` (a pool of 4) sealing with [`MASTER_KEY`].
#[allow(dead_code)]
pub async fn open(url: &str) -> PgStore {
    PgStore::open(url, 4, cipher())
        .await
        .expect("open the PostgreSQL store")
}

/// A plain SQL connection to `url` (no TLS), to look at the rows themselves.
#[allow(dead_code)]
pub async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

/// Tenant `id`, named "`id` Inc".
#[allow(dead_code)]
pub fn tenant(id: &str) -> Tenant {
    Tenant {
        id: id.into(),
        name: format!("{id} Inc"),
        created_at: 1_700_000_000_000,
    }
}

/// Event type `name` of `tenant`, with a description and an object schema.
#[allow(dead_code)]
pub fn event_type(tenant: &str, name: &str) -> EventType {
    EventType {
        tenant: tenant.into(),
        name: name.into(),
        description: Some("paid".into()),
        schema: Some(r#"{"type":"object"}"#.into()),
        created_at: 5,
    }
}

/// The signing secret of every test webhook.
const SIGNING: &str = "whsec_c2lnbmluZy1zZWNyZXQtdmFsdWUtMDEyMzQ1";

/// Webhook `id` of `tenant` with only what every webhook has: every event type,
/// one signing secret, enabled, no options.
#[allow(dead_code)]
pub fn webhook(id: &str, tenant: &str) -> Webhook {
    Webhook {
        id: id.into(),
        tenant: tenant.into(),
        url: "https://receiver.example/hook".into(),
        event_types: vec!["*".into()],
        channels: vec![],
        description: None,
        headers: Default::default(),
        oauth: None,
        secrets: vec![SigningSecret {
            secret: Secret::new(SIGNING),
            expires_at: None,
        }],
        notification_email: None,
        enabled: true,
        disabled_reason: None,
        disabled_at: None,
        metadata: Default::default(),
        rate_limit_per_second: None,
        created_at: 1,
        updated_at: 1,
        deleted_at: None,
        failing_since: None,
        version: 0,
        ordering: hookbox::model::Ordering::None,
        filter: None,
    }
}

/// Webhook `id` of `tenant` with every option set (to `/{id}`): a type pattern, a
/// channel, a secret header, OAuth with a secret and a header, an owner email,
/// metadata, a rate limit, FIFO order and a payload filter.
#[allow(dead_code)]
pub fn rich_webhook(id: &str, tenant: &str) -> Webhook {
    Webhook {
        url: format!("https://receiver.example/{id}"),
        event_types: vec!["invoice.*".into()],
        channels: vec!["P-1".into()],
        description: Some("billing".into()),
        headers: [("X-Api-Key".to_owned(), Secret::new("header-secret-value"))].into(),
        oauth: Some(OAuthConfig {
            token_url: "https://auth.example/token".into(),
            client_id: "client".into(),
            client_secret: Secret::new("oauth-secret-value"),
            scope: Some("hooks".into()),
            headers: [("X-Tok".to_owned(), Secret::new("oauth-header-value"))].into(),
        }),
        notification_email: Some("ops@example.com".into()),
        metadata: [("team".to_owned(), "billing".to_owned())].into(),
        rate_limit_per_second: Some(20),
        created_at: 10,
        updated_at: 10,
        ordering: hookbox::model::Ordering::Fifo,
        filter: Some(
            hookbox::filter::Filter::from_json(r#"{"data.amount":{"$gte":100}}"#)
                .expect("valid filter"),
        ),
        ..webhook(id, tenant)
    }
}

/// A running cluster: where it lives and the port it listens on (127.0.0.1).
pub struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    pub port: u16,
    as_postgres: bool,
    /// Whether the server has ssl=on and refuses TCP connections without TLS (its
    /// own admin connection then goes through the Unix socket).
    tls: bool,
    _dir: tempfile::TempDir,
}

/// A test certificate authority, made at test time (rcgen, pure Rust).
#[allow(dead_code)]
pub struct TestCa {
    /// The CA's certificate (PEM), what a client trusts.
    pub pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

#[allow(dead_code)]
impl TestCa {
    /// A new CA named `name`.
    pub fn new(name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().expect("a CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("self-signed CA");
        TestCa {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A server certificate for `names` (DNS names or IP addresses) signed by this
    /// CA: (certificate PEM, private key PEM).
    pub fn server(&self, names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("a server key");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(names).expect("server params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "hookbox test PostgreSQL");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        (cert.pem(), key.serialize_pem())
    }

    /// Writes the CA certificate into `dir` as `name` and returns its path.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, &self.pem).expect("write the CA file");
        path
    }
}

static SHARED: OnceLock<Cluster> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// The binary's shared cluster, started on first use.
pub fn shared() -> &'static Cluster {
    SHARED.get_or_init(|| {
        let cluster = Cluster::start();
        // Stop the server when the test binary exits (statics are never dropped).
        // SAFETY: `atexit` registers a plain function with no arguments; it runs
        // once at normal process exit.
        unsafe { libc::atexit(stop_shared) };
        cluster
    })
}

extern "C" fn stop_shared() {
    if let Some(cluster) = SHARED.get() {
        cluster.stop();
        let _ = std::fs::remove_dir_all(cluster._dir.path());
    }
}

/// The directory of `initdb`, `pg_ctl` and `postgres`, installing PostgreSQL first
/// when it is missing.
fn bin_dir() -> PathBuf {
    if let Some(dir) = find_bin_dir() {
        return dir;
    }
    install();
    find_bin_dir().expect("PostgreSQL installed, but no initdb under /usr/lib/postgresql")
}

/// Installs what the PostgreSQL tests need (the server and pgbouncer) with
/// `.ci/postgres.sh`, which does nothing for what is already there.
pub fn install() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/postgres.sh");
    let status = Command::new("bash")
        .arg(&script)
        .status()
        .expect("run .ci/postgres.sh");
    assert!(
        status.success(),
        ".ci/postgres.sh could not install PostgreSQL"
    );
}

fn find_bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Cluster {
    /// A cluster of one test's own (for a test that stops the server); stopped and
    /// removed when dropped.
    #[allow(dead_code)]
    pub fn private() -> Private {
        Private(Cluster::start())
    }

    /// A test's own cluster with ssl=on, serving the certificate `cert_pem` with the
    /// key `key_pem` (written into its data dir, the key 0600 and owned by the
    /// server's user, as PostgreSQL requires). Its `pg_hba.conf` accepts TCP only
    /// through TLS, so every connection a test makes over TCP is encrypted; the
    /// test's own admin connection uses the Unix socket.
    #[allow(dead_code)]
    pub fn private_tls(cert_pem: &str, key_pem: &str) -> Private {
        Private(Cluster::start_with(Some((cert_pem, key_pem)), ""))
    }

    /// A test's own cluster with `settings` (lines of `postgresql.conf`) added: for
    /// what takes effect only at the server's start, such as
    /// `shared_preload_libraries`.
    #[allow(dead_code)]
    pub fn private_with(settings: &str) -> Private {
        Private(Cluster::start_with(None, settings))
    }

    fn start() -> Cluster {
        Cluster::start_with(None, "")
    }

    fn start_with(tls: Option<(&str, &str)>, settings: &str) -> Cluster {
        let bin = bin_dir();
        let as_postgres = unsafe { libc::geteuid() } == 0;
        let dir = tempfile::Builder::new()
            .prefix("hookbox-pg-")
            .tempdir()
            .expect("temp dir");
        let data = dir.path().join("data");
        if as_postgres {
            let status = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the cluster dir to postgres");
        }
        let port = free_port();
        let cluster = Cluster {
            bin,
            data,
            port,
            as_postgres,
            tls: tls.is_some(),
            _dir: dir,
        };
        let data = cluster.data.to_string_lossy().into_owned();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        if let Some((cert, key)) = tls {
            cluster.enable_tls(cert, key);
        }
        cluster.add_settings(settings);
        cluster.serve();
        cluster
    }

    /// Writes the server's certificate and key into the data dir, turns ssl on and
    /// makes TCP connections TLS only.
    fn enable_tls(&self, cert: &str, key: &str) {
        use std::os::unix::fs::PermissionsExt;
        let cert_path = self.data.join("server.crt");
        let key_path = self.data.join("server.key");
        std::fs::write(&cert_path, cert).expect("write server.crt");
        std::fs::write(&key_path, key).expect("write server.key");
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))
            .expect("chmod 0600 server.key");
        if self.as_postgres {
            let status = Command::new("chown")
                .arg("postgres:postgres")
                .args([&cert_path, &key_path])
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the server's TLS files");
        }
        self.add_settings("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'");
        // Rewriting keeps the file's owner (the server's user).
        std::fs::write(
            self.data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostnossl all all 127.0.0.1/32 reject\n",
        )
        .expect("write pg_hba.conf");
    }

    /// Appends `settings` to `postgresql.conf` (appending keeps the file's owner,
    /// the server's user).
    fn add_settings(&self, settings: &str) {
        if settings.is_empty() {
            return;
        }
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data.join("postgresql.conf"))
            .expect("open postgresql.conf");
        std::io::Write::write_all(&mut conf, format!("\n{settings}\n").as_bytes())
            .expect("write postgresql.conf");
    }

    /// Starts the server on the cluster's port and waits until it accepts.
    fn serve(&self) {
        let data = self.data.to_string_lossy().into_owned();
        let socket_dir = self._dir.path().to_string_lossy().into_owned();
        let options = format!(
            "-p {} -k {socket_dir} -c listen_addresses=127.0.0.1 -c max_connections=200",
            self.port
        );
        let log = format!("{socket_dir}/server.log");
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-w", "-t", "60", "-o", &options, "start",
            ],
        );
    }

    /// Runs one of the server's programs (as `postgres` when we are root) and
    /// fails the test with its output when it fails.
    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let output = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&path)
                .args(args)
                .current_dir("/")
                .output()
        } else {
            Command::new(&path).args(args).output()
        }
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
        assert!(
            output.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn stop(&self) {
        let data = self.data.to_string_lossy().into_owned();
        let path = self.bin.join("pg_ctl");
        let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
        let _ = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&path)
                .args(args)
                .current_dir("/")
                .output()
        } else {
            Command::new(&path).args(args).output()
        };
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of the cluster's `postgres` database (over TCP without TLS, or for a
    /// TLS cluster through its Unix socket).
    pub fn admin_url(&self) -> String {
        self.url_of("postgres")
    }

    /// The plain-text URL of database `name`: TCP on loopback, or the Unix socket
    /// of a TLS cluster.
    fn url_of(&self, name: &str) -> String {
        if self.tls {
            let socket: String = self
                ._dir
                .path()
                .to_string_lossy()
                .replace('%', "%25")
                .replace('/', "%2F");
            format!("postgres://postgres@{socket}:{}/{name}", self.port)
        } else {
            format!(
                "postgres://postgres@127.0.0.1:{}/{name}?sslmode=disable",
                self.port
            )
        }
    }

    /// Creates a fresh, empty database for one test and returns its URL.
    pub async fn database(&self) -> String {
        let name = format!(
            "hb_{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        let (client, connection) =
            tokio_postgres::connect(&self.admin_url(), tokio_postgres::NoTls)
                .await
                .expect("connect to the test cluster");
        tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create a test database");
        self.url_of(&name)
    }
}

/// A test's own cluster: `halt` and `resume` stop and start its server on the same
/// port and data; dropping it stops the server and removes its files.
pub struct Private(Cluster);

#[allow(dead_code)]
impl Private {
    /// Stops the server at once (connections are cut, as when a database host dies).
    pub fn halt(&self) {
        self.0.stop();
    }

    /// Starts the server again on the same port and data.
    pub fn resume(&self) {
        self.0.serve();
    }

    /// Creates a fresh, empty database and returns its URL (for a TLS cluster, the
    /// Unix socket's: see [`Private::database_name`] for a TCP URL).
    pub async fn database(&self) -> String {
        self.0.database().await
    }

    /// Creates a fresh, empty database and returns its name.
    pub async fn database_name(&self) -> String {
        let url = self.0.database().await;
        let name = url.rsplit('/').next().unwrap_or_default();
        name.split('?').next().unwrap_or_default().to_owned()
    }

    /// The URL of database `name` without TLS: TCP on loopback, or for a TLS
    /// cluster its Unix socket.
    pub fn plain_url(&self, name: &str) -> String {
        self.0.url_of(name)
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.0.port
    }

    /// Stops the server and removes its files, for a cluster kept in a static
    /// (which is never dropped): call it from an `atexit` handler.
    pub fn remove(&self) {
        self.0.stop();
        let _ = std::fs::remove_dir_all(self.0._dir.path());
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// A real hookbox server on the PostgreSQL database at `url` (whatever engine the
/// suite runs on), with `tweak` applied to its config after.
pub async fn app(
    url: &str,
    tweak: impl FnOnce(&mut hookbox::config::Config),
) -> crate::helpers::TestApp {
    let url = url.to_owned();
    crate::helpers::TestApp::spawn_with(move |c| {
        c.store.backend = hookbox::config::Backend::Postgres;
        c.store.postgres_url = Some(Secret::new(url));
        tweak(c);
    })
    .await
}
