//! The README's five-minute tour, run for real: the built binary serves with
//! `config.example.toml`, the README's own python3 receiver listens, and the tour's
//! shell blocks run one after the other in ONE bash process (`set -euo pipefail`,
//! so shell variables carry over and any failing command fails the test).
//!
//! The README marks its blocks with HTML comments, invisible when rendered:
//! `<!-- tour:server -->` and `<!-- tour:receiver -->` before the blocks meant for
//! terminals 1 and 2, `<!-- tour:run -->` before each block of terminal 3,
//! `<!-- tour:await OUTCOME -->` where a reader watches a delivery happen (the test
//! waits until `/metrics` counts one with that outcome), and
//! `<!-- tour:stop-receiver -->` / `<!-- tour:start-receiver -->` where the reader
//! stops and restarts terminal 2. Every `sh` block of the tour must carry one of the
//! first three markers, so a new block cannot be skipped silently.
//!
//! The addresses are rewritten so the test never clashes with anything: the server
//! listens on port 0 (its address is read from its "listening on" line) and the
//! receiver on a free port. Everything stays on loopback; every process is killed
//! (with its process group) when the test ends.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use hookbox::config::ENV_OVERRIDES;

/// Longest wait for the server, the receiver, one tour block or one awaited outcome.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// What the README's terminal 1 runs, and where its server listens.
const README_SERVER_CMD: &str = "cargo run --release --";
const README_API: &str = "127.0.0.1:8080";
/// The README's binary path, replaced by the one cargo built for this test.
const README_BINARY: &str = "./target/release/hookbox";

/// One thing the tour does, in README order.
#[derive(Debug, PartialEq)]
enum Step {
    /// A terminal-3 block.
    Run(String),
    /// Wait until `hookbox_deliveries_total{outcome=...}` is at least 1.
    Await(String),
    StopReceiver,
    StartReceiver,
}

/// The tour as the README writes it.
#[derive(Debug)]
struct Tour {
    server: String,
    receiver: String,
    steps: Vec<Step>,
}

/// Reads the "Five-minute tour" section of `readme`.
fn parse_tour(readme: &str) -> Tour {
    let start = readme
        .find("\n## Five-minute tour")
        .expect("README has a \"Five-minute tour\" section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let (mut server, mut receiver, mut steps) = (None, None, Vec::new());
    let mut pending: Option<String> = None;
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if let Some(marker) = line
            .strip_prefix("<!-- tour:")
            .and_then(|m| m.strip_suffix(" -->"))
        {
            let (name, arg) = marker.split_once(' ').unwrap_or((marker, ""));
            match name {
                "server" | "receiver" | "run" => pending = Some(name.to_owned()),
                "await" => steps.push(Step::Await(arg.to_owned())),
                "stop-receiver" => steps.push(Step::StopReceiver),
                "start-receiver" => steps.push(Step::StartReceiver),
                other => panic!("unknown tour marker {other:?}"),
            }
            continue;
        }
        if !line.starts_with("```") {
            continue;
        }
        let mut block = String::new();
        for body in lines.by_ref() {
            if body.starts_with("```") {
                break;
            }
            block.push_str(body);
            block.push('\n');
        }
        let kind = pending.take();
        if line.trim() != "```sh" {
            assert!(kind.is_none(), "a tour marker precedes a non-sh block");
            continue;
        }
        match kind.as_deref() {
            Some("server") => server = Some(block),
            Some("receiver") => receiver = Some(block),
            Some("run") => steps.push(Step::Run(block)),
            _ => panic!("this sh block of the tour has no tour marker:\n{block}"),
        }
    }
    Tour {
        server: server.expect("a tour:server block"),
        receiver: receiver.expect("a tour:receiver block"),
        steps,
    }
}

/// The port in the receiver's `HTTPServer(("127.0.0.1", PORT), ...)`.
fn receiver_port(block: &str) -> u16 {
    let after = block
        .split("(\"127.0.0.1\", ")
        .nth(1)
        .expect("the receiver listens on (\"127.0.0.1\", PORT)");
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().expect("a port number")
}

/// A port nobody listens on right now (the OS's pick for an ephemeral bind).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local addr").port()
}

/// `program` with none of the caller's `HOOKBOX_*` settings, which would change
/// what the tour does.
fn command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    for (var, _) in ENV_OVERRIDES {
        cmd.env_remove(var);
    }
    cmd.env_remove("HOOKBOX_CONFIG")
        .env_remove("HOOKBOX_SERVER")
        .env_remove("HOOKBOX_VERIFY_SECRET");
    cmd
}

/// A child in its own process group; the whole group is killed on drop.
struct Proc {
    child: Child,
}

impl Proc {
    fn spawn(mut cmd: Command, what: &'static str) -> Proc {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {what}: {e}"));
        Proc { child }
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Kills the process group (Ctrl-C in its terminal) and reaps the child.
    fn stop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.exited() {
            self.stop();
        }
    }
}

/// Forwards a stream's lines to a channel from a thread (so reads can time out).
fn lines_of(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Polls `ready` every 20 ms until it holds; fails after [`STEP_TIMEOUT`] with
/// `context()` (logs) in the message.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool, context: impl Fn() -> String) {
    let deadline = Instant::now() + STEP_TIMEOUT;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            context()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// `GET path` over plain HTTP/1.1 on loopback; the body as text.
fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
}

/// The value of `hookbox_deliveries_total{outcome="..."}`.
fn deliveries_total(addr: &str, outcome: &str) -> f64 {
    let wanted = format!("hookbox_deliveries_total{{outcome=\"{outcome}\"}} ");
    http_get(addr, "/metrics")
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix(&wanted).and_then(|v| v.trim().parse().ok()))
        })
        .unwrap_or(0.0)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// The README's receiver, run as in terminal 2 (from the tour's directory, on
/// the test's port), appending its output to one log.
struct PyReceiver {
    script: String,
    dir: PathBuf,
    log: PathBuf,
    addr: String,
    proc: Option<Proc>,
}

impl PyReceiver {
    fn start(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("receiver log");
        let mut cmd = command("bash");
        cmd.arg("-c")
            .arg(&self.script)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        let mut proc = Proc::spawn(cmd, "python3 receiver");
        wait_until(
            "the receiver to listen",
            || {
                assert!(
                    !proc.exited(),
                    "the README's receiver exited:\n{}",
                    read(&self.log)
                );
                TcpStream::connect(&self.addr).is_ok()
            },
            || read(&self.log),
        );
        self.proc = Some(proc);
    }

    fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop();
        }
        wait_until(
            "the receiver to stop",
            || TcpStream::connect(&self.addr).is_err(),
            || read(&self.log),
        );
    }
}

/// The terminal-3 shell: one bash process fed block by block.
struct Shell {
    stdin: ChildStdin,
    out: Receiver<String>,
    transcript: String,
    proc: Proc,
}

impl Shell {
    /// Runs one block (stdin closed, so it cannot eat the script) and waits
    /// for it to finish; a failing command ends bash and fails the test.
    fn run(&mut self, n: usize, block: &str, dir: &Path, logs: &dyn Fn() -> String) {
        let file = dir.join(format!("step-{n}.sh"));
        fs::write(&file, block).expect("write step");
        let done = format!("@@tour-step-{n}-done@@");
        writeln!(
            self.stdin,
            "source '{}' </dev/null\necho\necho '{done}'",
            file.display()
        )
        .expect("bash reads its script");
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.out.recv_timeout(left) {
                Ok(line) if line == done => return,
                Ok(line) => {
                    self.transcript.push_str(&line);
                    self.transcript.push('\n');
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("tour block {n} timed out:\n{block}\n{}", self.report(logs))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.proc.child.wait();
                    panic!("tour block {n} failed:\n{block}\n{}", self.report(logs))
                }
            }
        }
    }

    fn report(&self, logs: &dyn Fn() -> String) -> String {
        format!("--- transcript\n{}{}", self.transcript, logs())
    }
}

#[test]
fn readme_tour_runs_against_a_live_server() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(root.join("README.md")).expect("README.md");
    let tour = parse_tour(&readme);
    assert!(
        tour.steps
            .iter()
            .filter(|s| matches!(s, Step::Run(_)))
            .count()
            >= 8,
        "{tour:?}"
    );
    for tool in ["python3", "curl", "bash"] {
        let found = Command::new("bash")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(found, "the README tour needs {tool} on PATH");
    }

    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let data_dir = dir.join("hookbox-data");
    let steps_dir = dir.join(".tour");
    fs::create_dir(&steps_dir).expect("steps dir");
    let server_err = dir.join("server.stderr");
    let shell_err = dir.join("shell.stderr");
    let receiver_log = dir.join("receiver.log");

    // Terminal 1: the binary with the README's arguments, on port 0.
    let args = tour
        .server
        .trim()
        .strip_prefix(README_SERVER_CMD)
        .unwrap_or_else(|| panic!("the server block is not `{README_SERVER_CMD} ...`"));
    let mut server_cmd = command(env!("CARGO_BIN_EXE_hookbox"));
    for arg in args.split_whitespace() {
        // Paths relative to the repository root (the README's working directory).
        let in_repo = root.join(arg);
        server_cmd.arg(if in_repo.exists() {
            in_repo.into_os_string()
        } else {
            arg.into()
        });
    }
    server_cmd
        .current_dir(dir)
        .env("HOOKBOX_LISTEN", "127.0.0.1:0")
        .env("HOOKBOX_DATA_DIR", &data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(File::create(&server_err).expect("server log"));
    let mut server = Proc::spawn(server_cmd, "hookbox server");
    let server_out = lines_of(server.child.stdout.take().expect("piped stdout"));
    let deadline = Instant::now() + STEP_TIMEOUT;
    let api = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match server_out.recv_timeout(left) {
            Ok(line) => {
                if let Some(addr) = line.strip_prefix("hookbox: listening on http://") {
                    break addr.trim().to_owned();
                }
            }
            Err(e) => panic!("the server did not start ({e}):\n{}", read(&server_err)),
        }
    };
    assert_ne!(api, README_API, "HOOKBOX_LISTEN was not applied");
    assert!(
        data_dir.join("admin-token").exists(),
        "HOOKBOX_DATA_DIR was not applied"
    );
    // Keep draining its stdout so it never blocks on a full pipe.
    thread::spawn(move || for _ in server_out {});

    // Terminal 2: the README's receiver, on a free port.
    let readme_port = receiver_port(&tour.receiver);
    let port = free_port();
    let mut receiver = PyReceiver {
        script: tour.receiver.replace(
            &format!("(\"127.0.0.1\", {readme_port})"),
            &format!("(\"127.0.0.1\", {port})"),
        ),
        dir: dir.to_owned(),
        log: receiver_log.clone(),
        addr: format!("127.0.0.1:{port}"),
        proc: None,
    };
    receiver.start();

    let logs = || {
        format!(
            "--- shell stderr\n{}--- receiver\n{}--- server stderr\n{}",
            read(&shell_err),
            read(&receiver_log),
            read(&server_err)
        )
    };

    // Terminal 3: one bash for every block.
    let mut bash = command("bash");
    bash.args(["--noprofile", "--norc"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(File::create(&shell_err).expect("shell log"));
    let mut proc = Proc::spawn(bash, "bash");
    let out = lines_of(proc.child.stdout.take().expect("piped stdout"));
    let stdin = proc.child.stdin.take().expect("piped stdin");
    let mut shell = Shell {
        stdin,
        out,
        transcript: String::new(),
        proc,
    };
    writeln!(shell.stdin, "set -euo pipefail").expect("bash reads its script");

    let binary = env!("CARGO_BIN_EXE_hookbox");
    let readme_receiver = format!("127.0.0.1:{readme_port}");
    for (n, step) in tour.steps.iter().enumerate() {
        match step {
            Step::Run(block) => {
                let block = block
                    .replace(README_API, &api)
                    .replace(&readme_receiver, &receiver.addr)
                    .replace(README_BINARY, binary);
                shell.run(n, &block, &steps_dir, &logs);
            }
            Step::Await(outcome) => wait_until(
                &format!("a delivery with outcome {outcome}"),
                || deliveries_total(&api, outcome) >= 1.0,
                || shell.report(&logs),
            ),
            Step::StopReceiver => receiver.stop(),
            Step::StartReceiver => receiver.start(),
        }
    }
    writeln!(shell.stdin, "exit 0").expect("bash reads its script");
    let mut status = None;
    wait_until(
        "bash to exit",
        || {
            status = shell.proc.child.try_wait().expect("bash status");
            status.is_some()
        },
        String::new,
    );
    let status = status.expect("bash exited");
    assert!(status.success(), "{status}\n{}", shell.report(&logs));

    // What the reader would have seen.
    let transcript = &shell.transcript;
    assert!(
        transcript.lines().any(|l| l == "valid"),
        "hookbox verify did not print valid:\n{}",
        shell.report(&logs)
    );
    assert!(
        transcript.contains("\"status\":\"succeeded\"")
            && transcript.contains("\"trigger\":\"manual\""),
        "the manual retry did not succeed:\n{}",
        shell.report(&logs)
    );
    assert!(
        transcript.contains("\"code\":\"bad_request\""),
        "{transcript}"
    );
    let received = read(&receiver_log);
    assert!(
        received.contains("POST /hooks HTTP/1.1")
            && received.contains(r#""data":{"provider_id": "P-1001", "approved": true}"#),
        "the receiver did not get the tour's event:\n{received}"
    );
    assert!(
        received.contains(r#""data":{"shift_id": "S-77", "hours": 7.5}"#),
        "the receiver did not get the retried event:\n{received}"
    );
    drop(receiver);
    drop(server);
}

#[test]
fn tour_markers_are_parsed_in_order() {
    let readme = "# x\n\n## Five-minute tour\n\n<!-- tour:server -->\n```sh\ncargo run --release -- --config c.toml\n```\n```\noutput\n```\n<!-- tour:receiver -->\n```sh\npython3 - <<'EOF'\nHTTPServer((\"127.0.0.1\", 9000), R)\nEOF\n```\n<!-- tour:run -->\n```sh\nH=1\n```\n<!-- tour:await succeeded -->\n<!-- tour:stop-receiver -->\n<!-- tour:start-receiver -->\n\n## Next\n\n```sh\nnot in the tour\n```\n";
    let tour = parse_tour(readme);
    assert_eq!(receiver_port(&tour.receiver), 9000);
    assert!(tour.server.starts_with("cargo run"));
    assert_eq!(
        tour.steps,
        vec![
            Step::Run("H=1\n".to_owned()),
            Step::Await("succeeded".to_owned()),
            Step::StopReceiver,
            Step::StartReceiver,
        ]
    );
}

#[test]
#[should_panic(expected = "has no tour marker")]
fn an_unmarked_tour_block_is_refused() {
    parse_tour("# x\n## Five-minute tour\n\n<!-- tour:server -->\n```sh\na\n```\n```sh\nb\n```\n");
}
