//! A throwaway PostgreSQL cluster for the tests: installed when missing
//! (`.ci/postgres.sh`, Debian's `postgresql`), created with `initdb` in a temp dir,
//! started with `pg_ctl` on a free loopback port (as the `postgres` user when the
//! tests run as root, since the server refuses root), shared by every test of this
//! binary with one fresh database per test, and stopped when the binary exits.
//! Never skips: when PostgreSQL cannot be installed or started, the test fails.
//! Also the PostgreSQL tests' shared helpers: `open` (a `PgStore` under the fixed
//! test master key) and `sql` (a plain client, to look at the rows themselves).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use hookbox::secrets::Cipher;
use hookbox::store::pg::PgStore;

/// The master key of every test `PgStore` opened with [`open`].
pub const MASTER_KEY: [u8; 32] = [7; 32];

/// The cipher of [`MASTER_KEY`].
pub fn cipher() -> Cipher {
    Cipher::new(&MASTER_KEY)
}

/// A `PgStore` on `url` (a pool of 4) sealing with [`MASTER_KEY`].
pub async fn open(url: &str) -> PgStore {
    PgStore::open(url, 4, cipher())
        .await
        .expect("open the PostgreSQL store")
}

/// A plain SQL connection to `url` (no TLS), to look at the rows themselves.
pub async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

/// A running cluster: where it lives and the port it listens on (127.0.0.1).
pub struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    pub port: u16,
    as_postgres: bool,
    _dir: tempfile::TempDir,
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
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/postgres.sh");
    let status = Command::new("bash")
        .arg(&script)
        .status()
        .expect("run .ci/postgres.sh");
    assert!(
        status.success(),
        ".ci/postgres.sh could not install PostgreSQL"
    );
    find_bin_dir().expect("PostgreSQL installed, but no initdb under /usr/lib/postgresql")
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

    fn start() -> Cluster {
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
        cluster.serve();
        cluster
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

    /// The URL of the cluster's `postgres` database.
    pub fn admin_url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
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
        format!(
            "postgres://postgres@127.0.0.1:{}/{name}?sslmode=disable",
            self.port
        )
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

    /// Creates a fresh, empty database and returns its URL.
    pub async fn database(&self) -> String {
        self.0.database().await
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        self.0.stop();
    }
}
