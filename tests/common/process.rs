//! A hookbox node as its own process, for tests that SIGKILL it (tests/crash.rs,
//! tests/fifo_crash.rs, tests/nodes): the release binary started from a config file
//! with every `HOOKBOX_*` override of the outer environment removed (then the
//! test's own variables set), stderr appended to a log file across restarts, stdout
//! read for the address it listens on, killed and reaped on demand and when
//! dropped. It never talks HTTP to the node and decides nothing a test asserts.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// One hookbox process (started any number of times); killed when dropped, so a
/// failing test never leaves it running.
pub struct Process {
    child: Option<Child>,
    config: PathBuf,
    log: PathBuf,
    env: Vec<(String, String)>,
    lives: u32,
    listening: Option<mpsc::Receiver<String>>,
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Process {
    /// A process run with the config file `config`, its stderr appended to `log`;
    /// not started yet.
    pub fn new(config: impl Into<PathBuf>, log: impl Into<PathBuf>) -> Process {
        Process {
            child: None,
            config: config.into(),
            log: log.into(),
            env: Vec::new(),
            lives: 0,
            listening: None,
        }
    }

    /// Sets an environment variable for every start.
    pub fn env(mut self, key: &str, value: &str) -> Process {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Starts the binary (`--config <file> serve`); panics if it is running.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "hookbox is already running");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the hookbox log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookbox"));
        for (var, _) in hookbox::config::ENV_OVERRIDES {
            cmd.env_remove(var);
        }
        cmd.env_remove("HOOKBOX_CONFIG").env_remove("RUST_LOG");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn hookbox");
        // Read stdout to its end (so the child never blocks on a full pipe), passing
        // on the address line of this start.
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Some(addr) = line.strip_prefix("hookbox: listening on ") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        self.listening = Some(rx);
        self.child = Some(child);
        self.lives += 1;
    }

    /// The base URL this start listens on (`http://127.0.0.1:port`), once it says
    /// so on stdout; panics after `bound` or if it exits first.
    pub fn wait_listening(&mut self, bound: Duration) -> String {
        let rx = self.listening.as_ref().expect("hookbox was started");
        match rx.recv_timeout(bound) {
            Ok(addr) => addr,
            Err(e) => panic!(
                "hookbox did not listen within {bound:?} ({e}), exit {:?}:\n{}",
                self.exited(),
                self.log_tail(30)
            ),
        }
    }

    /// SIGKILL, then reap; panics if it is not running.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("hookbox is running");
        child.kill().expect("SIGKILL hookbox");
        child.wait().expect("reap hookbox");
    }

    /// How the current start ended, if it has.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok())
            .flatten()
    }

    /// Starts so far.
    pub fn lives(&self) -> u32 {
        self.lives
    }

    /// The last `n` lines of the process log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}
