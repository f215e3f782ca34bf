//! One chromedriver per test binary (started on a free loopback port, killed with
//! its whole process group by a Drop guard) and headless Chromium sessions with a
//! fresh profile each. Every wait has a deadline.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long any one wait for the page may take.
pub const WAIT: Duration = Duration::from_secs(15);

/// Installs Chromium and chromedriver with `.ci/chromium.sh` when missing.
fn ensure_installed() {
    if Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists() {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/chromium.sh");
    let status = Command::new("bash")
        .arg(&script)
        .status()
        .expect("run .ci/chromium.sh");
    assert!(status.success(), ".ci/chromium.sh failed: {status}");
    assert!(
        Path::new(CHROMEDRIVER).exists(),
        "{CHROMEDRIVER} is still missing"
    );
}

/// A running chromedriver; dropping it kills it and every browser it started.
pub struct Driver {
    child: Child,
    pub url: String,
    _profiles: tempfile::TempDir,
    profiles: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver leads its own process group (Chromium included).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Starts chromedriver on a free loopback port and waits until it is ready.
    pub async fn start() -> Driver {
        ensure_installed();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = {
            use std::os::unix::process::CommandExt;
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("start chromedriver")
        };
        let profiles = tempfile::tempdir().expect("temp dir");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profiles: profiles.path().to_owned(),
            _profiles: profiles,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        driver
    }

    /// A new headless browser session with a fresh profile, `width` x `height`.
    pub async fn browser(&self, name: &str, width: u32, height: u32) -> Client {
        let profile = self.profiles.join(name);
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.display()),
                    format!("--window-size={width},{height}"),
                ],
            },
        });
        let Value::Object(caps) = caps else {
            unreachable!("a literal object")
        };
        let client = tokio::time::timeout(
            Duration::from_secs(30),
            ClientBuilder::new(HttpConnector::new())
                .capabilities(caps)
                .connect(&self.url),
        )
        .await
        .expect("a browser session within 30 s")
        .expect("a browser session");
        client
            .set_window_size(width, height)
            .await
            .expect("window size");
        client
    }
}

/// Waits for an element.
pub async fn find(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} within {WAIT:?}: {e}"))
}

/// Waits until the text of the first `css` element satisfies `pred`; returns it.
pub async fn wait_text(c: &Client, css: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    let mut last = String::new();
    loop {
        if let Ok(el) = c.find(Locator::Css(css)).await
            && let Ok(text) = el.text().await
        {
            if pred(&text) {
                return text;
            }
            last = text;
        }
        assert!(
            Instant::now() < deadline,
            "{css} never showed the expected text; last: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether an element exists now (no waiting).
pub async fn exists(c: &Client, css: &str) -> bool {
    c.find(Locator::Css(css)).await.is_ok()
}

/// Clicks the element matching `css` once it exists.
pub async fn click(c: &Client, css: &str) {
    find(c, css)
        .await
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

/// Runs a script in the page and returns its value.
pub async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, Vec::new())
        .await
        .unwrap_or_else(|e| panic!("script {script}: {e}"))
}

/// Saves a screenshot as `target/portal-screenshots/<name>.png`.
pub async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("portal-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}
