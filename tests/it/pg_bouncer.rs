//! PgBouncer in transaction mode in front of the throwaway cluster: Debian's
//! `pgbouncer` (installed by `.ci/postgres.sh` when missing), started on a free
//! loopback port as the `postgres` user (it refuses root), with every database of the
//! cluster reachable under its own name and a server pool smaller than hookbox's, so
//! consecutive transactions of one hookbox connection land on different server
//! connections. `on_postgres` runs the whole API and delivery suite through it with
//! `postgres_statements = "unnamed"`; `pg_pooled` checks the bouncer really pools
//! by transaction.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The server connections PgBouncer keeps per database: fewer than any test's
/// hookbox pool, so transactions move between server connections.
pub const SERVER_POOL: usize = 2;

/// A running PgBouncer.
pub struct Bouncer {
    port: u16,
    child: std::sync::Mutex<Child>,
    dir: PathBuf,
}

static SHARED: OnceLock<Bouncer> = OnceLock::new();

/// The binary's PgBouncer in front of the shared cluster, started on first use.
pub fn shared() -> &'static Bouncer {
    SHARED.get_or_init(|| {
        let cluster = crate::pg_cluster::shared();
        let bouncer = Bouncer::start(cluster.port());
        // Stop it when the test binary exits (statics are never dropped).
        // SAFETY: `atexit` registers a plain function with no arguments; it runs
        // once at normal process exit.
        unsafe { libc::atexit(stop_shared) };
        bouncer
    })
}

extern "C" fn stop_shared() {
    if let Some(bouncer) = SHARED.get() {
        bouncer.stop();
    }
}

/// Where Debian puts the program; installs the package first when it is missing.
fn program() -> PathBuf {
    let path = Path::new("/usr/sbin/pgbouncer");
    if !path.is_file() {
        crate::pg_cluster::install();
    }
    assert!(
        path.is_file(),
        "pgbouncer installed, but not at {}",
        path.display()
    );
    path.to_owned()
}

impl Bouncer {
    fn start(server_port: u16) -> Bouncer {
        let program = program();
        let as_postgres = unsafe { libc::geteuid() } == 0;
        let dir = tempfile::Builder::new()
            .prefix("hookbox-pgbouncer-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let ini = dir.join("pgbouncer.ini");
        std::fs::write(dir.join("users.txt"), "\"postgres\" \"\"\n").expect("write users.txt");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n\
                 * = host=127.0.0.1 port={server_port}\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = trust\n\
                 auth_file = {users}\n\
                 admin_users = postgres\n\
                 pool_mode = transaction\n\
                 default_pool_size = {SERVER_POOL}\n\
                 max_client_conn = 2000\n\
                 max_db_connections = 0\n\
                 server_lifetime = 3600\n\
                 ignore_startup_parameters = extra_float_digits,options\n\
                 logfile = {log}\n",
                users = dir.join("users.txt").display(),
                log = dir.join("pgbouncer.log").display(),
            ),
        )
        .expect("write pgbouncer.ini");
        let mut command = if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the pgbouncer dir to postgres");
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let child = command
            .arg(&ini)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pgbouncer");
        let bouncer = Bouncer {
            port,
            child: std::sync::Mutex::new(child),
            dir,
        };
        bouncer.wait_accepting();
        bouncer
    }

    /// Waits (bounded) until the bouncer accepts connections.
    fn wait_accepting(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.lock().unwrap().try_wait() {
                panic!("pgbouncer exited with {status}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "pgbouncer did not accept within 30 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The bouncer's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }

    /// The URL of database `name` through the bouncer.
    pub fn url_of(&self, name: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{name}?sslmode=disable",
            self.port
        )
    }

    /// A fresh database of the shared cluster: its URL through the bouncer and
    /// its direct URL.
    pub async fn database(&self) -> (String, String) {
        let direct = crate::pg_cluster::shared().database().await;
        let name = direct
            .rsplit('/')
            .next()
            .and_then(|rest| rest.split('?').next())
            .expect("a database name")
            .to_owned();
        (self.url_of(&name), direct)
    }

    fn stop(&self) {
        // The bouncer runs under runuser as root; SIGTERM to runuser is passed on.
        if let Ok(mut child) = self.child.lock() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
        let _ = Command::new("pkill")
            .args(["-TERM", "-f"])
            .arg(self.dir.join("pgbouncer.ini"))
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
