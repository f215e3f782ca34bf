//! The client commands as an operator runs them: the real server in-process (port 0,
//! temporary data dir), the built `hookbox` binary talking to it with the admin
//! token. Checks stdout, stderr and exit codes. The binary never inherits the
//! caller's `HOOKBOX_*` environment.

#[allow(dead_code)]
#[path = "it/receiver.rs"]
mod receiver;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use hookbox::app::App;
use hookbox::cli::ApiClient;
use hookbox::config::{Config, ENV_OVERRIDES, EventTypeSeed};
use hookbox::model::Secret;
use http::Method;
use serde_json::{Value, json};

use receiver::TestReceiver;

const WAIT: Duration = Duration::from_secs(10);

/// A running hookbox and what the binary needs to reach it.
struct Server {
    app: App,
    base: String,
    admin: String,
    dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut c = Config {
            listen: "127.0.0.1:0".parse().expect("literal address"),
            data_dir: dir.path().to_owned(),
            event_types: vec![EventTypeSeed {
                name: "PATIENT_CREATED".to_owned(),
                description: None,
            }],
            ..Config::default()
        };
        c.security.require_https = false;
        c.security.allow_networks = vec!["127.0.0.0/8".parse().expect("literal cidr")];
        c.delivery.retry_schedule = [0u64, 20, 40]
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect();
        c.delivery.jitter = 0.0;
        let app = App::build(c).await.expect("hookbox starts");
        Server {
            base: format!("http://{}", app.addr),
            admin: app.admin_token.expose().to_owned(),
            app,
            dir,
        }
    }

    /// Runs `hookbox ARGS --server URL --admin-token T`.
    async fn run(&self, args: &[&str]) -> Out {
        let mut full: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        full.extend(["--server".into(), self.base.clone()]);
        full.extend(["--admin-token".into(), self.admin.clone()]);
        run(full, None).await
    }

    /// The admin client of the library, for setup the CLI has no command for.
    fn api(&self, token: &str) -> ApiClient {
        ApiClient::new(&self.base, Secret::new(token), None).expect("client")
    }
}

/// What one run of the binary produced.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs the binary off the async threads (the server keeps serving meanwhile), with a
/// clean `HOOKBOX_*` environment plus `data_dir` when given.
async fn run(args: Vec<String>, data_dir: Option<&Path>) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookbox"));
    for (var, _) in ENV_OVERRIDES {
        cmd.env_remove(var);
    }
    for var in [
        "HOOKBOX_CONFIG",
        "HOOKBOX_SERVER",
        "HOOKBOX_TENANT",
        "HOOKBOX_CA_FILE",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    if let Some(dir) = data_dir {
        cmd.env("HOOKBOX_DATA_DIR", dir);
    }
    cmd.args(args);
    let output: Output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || cmd.output()),
    )
    .await
    .expect("the binary exits within 60 s")
    .expect("join")
    .expect("run hookbox");
    Out {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn ok(out: &Out) -> &str {
    assert_eq!(out.code, 0, "{out:?}");
    &out.stdout
}

fn json_of(out: &Out) -> Value {
    serde_json::from_str(ok(out)).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_create_list_and_delete() {
    let s = Server::start().await;

    let out = s
        .run(&["tenant", "create", "--name", "Acme Health", "--id", "acme"])
        .await;
    assert_eq!(ok(&out), "created tenant acme (Acme Health)\n");
    let out = s.run(&["tenant", "create", "--name", "Beta"]).await;
    assert!(ok(&out).starts_with("created tenant ten_"), "{out:?}");

    let out = s.run(&["tenant", "list"]).await;
    let table = ok(&out);
    let header = table.lines().next().expect("a header line");
    assert!(header.starts_with("ID") && header.contains("NAME") && header.contains("CREATED"));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("acme ") && l.contains("Acme Health")),
        "{out:?}"
    );
    assert_eq!(table.lines().count(), 3, "{out:?}");

    let listed = json_of(&s.run(&["tenant", "list", "--json"]).await);
    assert!(
        listed["data"].as_array().is_some_and(|d| d.len() == 2),
        "{listed}"
    );

    let out = s.run(&["tenant", "delete", "acme"]).await;
    assert_eq!(ok(&out), "deleted tenant acme\n");
    let listed = json_of(&s.run(&["tenant", "list", "--json"]).await);
    assert!(
        !listed["data"]
            .as_array()
            .expect("data")
            .iter()
            .any(|t| t["id"] == "acme"),
        "{listed}"
    );
    s.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_create_shows_the_key_once_then_list_and_revoke() {
    let s = Server::start().await;
    ok(&s
        .run(&["tenant", "create", "--name", "Acme", "--id", "acme"])
        .await);

    let out = s
        .run(&[
            "key",
            "create",
            "--tenant",
            "acme",
            "--name",
            "backend",
            "--scope",
            "webhooks:read,events:write",
            "--scope",
            "events:read",
        ])
        .await;
    let text = ok(&out);
    assert!(text.contains("shown only once"), "{out:?}");
    let key = text
        .split_whitespace()
        .find(|w| w.starts_with("hbk_"))
        .unwrap_or_else(|| panic!("no hbk_ key in {out:?}"))
        .to_owned();
    let id = text
        .split_whitespace()
        .find(|w| w.starts_with("key_"))
        .expect("key id")
        .to_owned();
    // The printed key works against the API.
    s.api(&key)
        .call(Method::GET, "/v1/webhooks", None, None)
        .await
        .expect("the new key is accepted");

    let out = s.run(&["key", "list", "--tenant", "acme"]).await;
    let table = ok(&out);
    assert!(table.contains(&id), "{out:?}");
    assert!(
        table.contains("webhooks:read,events:write,events:read"),
        "{out:?}"
    );
    assert!(!table.contains(&key), "key list shows the key: {out:?}");
    let other = s.run(&["key", "list", "--tenant", "nobody"]).await;
    assert_eq!(ok(&other), "(none)\n");

    let out = s.run(&["key", "revoke", &id]).await;
    assert_eq!(ok(&out), format!("revoked API key {id}\n"));
    let refused = s
        .api(&key)
        .call(Method::GET, "/v1/webhooks", None, None)
        .await
        .err()
        .expect("the revoked key is refused");
    assert_eq!(refused.exit_code(), 1);
    assert!(refused.to_string().starts_with("401"), "{refused}");

    // A refused create lists every reason and exits 1.
    let out = s
        .run(&[
            "key", "create", "--tenant", "acme", "--name", "x", "--scope", "nope,bad",
        ])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("400"), "{out:?}");
    assert!(
        out.stderr.contains("\"nope\"") && out.stderr.contains("\"bad\""),
        "{out:?}"
    );
    s.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_send_then_delivery_list_get_and_retry() {
    let s = Server::start().await;
    let rx = TestReceiver::start().await;
    ok(&s
        .run(&["tenant", "create", "--name", "Acme", "--id", "acme"])
        .await);
    let hook = s
        .api(&s.admin)
        .call(
            Method::POST,
            "/v1/webhooks",
            Some("acme"),
            Some(
                json!({"url": rx.url("/hook"), "event_types": ["PATIENT_CREATED"]})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await
        .expect("webhook created")
        .json();
    let wh = hook["id"].as_str().expect("webhook id").to_owned();

    let out = s.run(&["webhook", "list", "--tenant", "acme"]).await;
    assert!(
        ok(&out).contains(&wh) && out.stdout.contains(&rx.url("/hook")),
        "{out:?}"
    );
    let out = s.run(&["webhook", "get", "--tenant", "acme", &wh]).await;
    let text = ok(&out);
    assert!(
        text.lines()
            .any(|l| l.starts_with("secrets") && l.ends_with("****")),
        "{out:?}"
    );
    assert!(
        !text.contains("whsec_"),
        "webhook get shows a secret: {out:?}"
    );

    // The payload goes through byte-for-byte, spaces included.
    let out = s
        .run(&[
            "event",
            "send",
            "--tenant",
            "acme",
            "--type",
            "PATIENT_CREATED",
            "--data",
            r#"{"id": "p_1",  "n": 1.50}"#,
            "--idempotency-key",
            "k-1",
        ])
        .await;
    let text = ok(&out);
    assert!(text.ends_with("accepted for 1 webhook(s)\n"), "{out:?}");
    let evt = text
        .split_whitespace()
        .find(|w| w.starts_with("evt_"))
        .expect("event id")
        .to_owned();
    let got = rx.wait_for(1, WAIT).await;
    let body = String::from_utf8_lossy(&got[0].body).into_owned();
    assert!(
        body.contains(r#""data":{"id": "p_1",  "n": 1.50}"#),
        "{body}"
    );
    // The same idempotency key answers with the first event.
    let again = s
        .run(&[
            "event",
            "send",
            "--tenant",
            "acme",
            "--type",
            "PATIENT_CREATED",
            "--data",
            r#"{"id": "p_1",  "n": 1.50}"#,
            "--idempotency-key",
            "k-1",
        ])
        .await;
    assert!(
        ok(&again).contains(&evt) && again.stdout.contains("already sent"),
        "{again:?}"
    );

    // The delivery shows up; poll the CLI until the outcome is recorded.
    let deadline = tokio::time::Instant::now() + WAIT;
    let dlv = loop {
        let out = s
            .run(&[
                "delivery",
                "list",
                "--tenant",
                "acme",
                "--webhook",
                &wh,
                "--status",
                "succeeded",
            ])
            .await;
        let table = ok(&out);
        if let Some(line) = table.lines().find(|l| l.contains(&evt)) {
            assert!(
                line.contains("PATIENT_CREATED") && line.contains("200"),
                "{out:?}"
            );
            break line.split_whitespace().next().expect("id").to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not delivered: {out:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let listed = json_of(
        &s.run(&[
            "delivery",
            "list",
            "--tenant",
            "acme",
            "--webhook",
            &wh,
            "--json",
        ])
        .await,
    );
    assert_eq!(listed["data"][0]["event_id"], evt.as_str(), "{listed}");

    let out = s.run(&["delivery", "get", "--tenant", "acme", &dlv]).await;
    assert!(ok(&out).contains("scheduled"), "attempt table: {out:?}");

    let out = s
        .run(&["delivery", "retry", "--tenant", "acme", &dlv])
        .await;
    let text = ok(&out);
    assert!(
        text.starts_with(&format!("delivery {dlv} attempt 2: HTTP 200 in ")),
        "{out:?}"
    );
    assert!(text.ends_with("now succeeded\n"), "{out:?}");
    rx.wait_for(2, WAIT).await;

    let out = s
        .run(&[
            "webhook",
            "recover",
            "--tenant",
            "acme",
            &wh,
            "--since",
            "2020-01-01T00:00:00Z",
        ])
        .await;
    assert_eq!(ok(&out), "re-queued 0 deliveries\n");
    assert!(
        out.stderr.contains("re-queuing"),
        "progress on stderr: {out:?}"
    );

    // Invalid JSON data is a usage error: nothing is sent.
    let out = s
        .run(&[
            "event",
            "send",
            "--tenant",
            "acme",
            "--type",
            "PATIENT_CREATED",
            "--data",
            "{nope",
        ])
        .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("not valid JSON"), "{out:?}");
    s.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_webhook_exits_1_with_the_404_message() {
    let s = Server::start().await;
    ok(&s
        .run(&["tenant", "create", "--name", "Acme", "--id", "acme"])
        .await);
    let out = s
        .run(&["webhook", "get", "--tenant", "acme", "wh_missing"])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stdout, "", "{out:?}");
    assert!(out.stderr.contains("404"), "{out:?}");
    assert!(
        out.stderr.contains("webhook wh_missing not found"),
        "{out:?}"
    );

    // A wrong admin token is an API error too.
    let out = run(
        [
            "tenant",
            "list",
            "--server",
            &s.base,
            "--admin-token",
            "hbadm_wrong",
        ]
        .map(str::to_owned)
        .to_vec(),
        None,
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("401"), "{out:?}");
    s.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_is_read_from_the_data_dir() {
    let s = Server::start().await;
    let args = ["tenant", "create", "--name", "Acme", "--server", &s.base].map(str::to_owned);
    let out = run(args.to_vec(), Some(s.dir.path())).await;
    assert!(ok(&out).starts_with("created tenant"), "{out:?}");

    // Without a token file there is no token: a usage error naming the file.
    let empty = tempfile::tempdir().expect("temp dir");
    let out = run(args.to_vec(), Some(empty.path())).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("admin-token"), "{out:?}");
    s.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_exits_3() {
    // A port that was just free: nothing listens on it.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let args = [
        "tenant",
        "list",
        "--server",
        &format!("http://{addr}"),
        "--admin-token",
        "hbadm_x",
    ]
    .map(str::to_owned);
    let out = run(args.to_vec(), None).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("cannot connect"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_shows_examples_and_usage_errors_exit_2() {
    let out = run(vec!["--help".into()], None).await;
    let text = ok(&out);
    assert!(text.contains("Examples:"), "{out:?}");
    for example in [
        "hookbox tenant create",
        "hookbox key create",
        "hookbox event send",
        "hookbox delivery list",
        "hookbox webhook recover",
        "hookbox verify",
    ] {
        assert!(text.contains(example), "{example} missing: {out:?}");
    }
    for group in ["tenant", "key", "webhook", "event", "delivery"] {
        let out = run(vec![group.into(), "--help".into()], None).await;
        assert!(
            ok(&out).contains(&format!("hookbox {group} ")),
            "{group} --help has no example: {out:?}"
        );
    }
    let out = run(
        ["key", "create", "--tenant", "acme"]
            .map(str::to_owned)
            .to_vec(),
        None,
    )
    .await;
    assert_eq!(out.code, 2, "{out:?}");
    let out = run(
        [
            "tenant",
            "list",
            "--server",
            "localhost:8080",
            "--admin-token",
            "t",
        ]
        .map(str::to_owned)
        .to_vec(),
        None,
    )
    .await;
    assert_eq!(out.code, 2, "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_open_prints_a_working_link_and_revoke_ends_it() {
    let s = Server::start().await;
    ok(&s
        .run(&["tenant", "create", "--name", "Acme", "--id", "acme"])
        .await);
    let out = s
        .run(&[
            "portal",
            "open",
            "--tenant",
            "acme",
            "--read-only",
            "--ttl",
            "30m",
        ])
        .await;
    let text = ok(&out);
    let link = text.lines().next().expect("the link");
    let prefix = format!("{}/portal#token=hbp_", s.base);
    assert!(link.starts_with(&prefix), "{out:?}");
    assert!(
        text.contains("expires at ") && text.contains("(read-only)"),
        "{out:?}"
    );
    let token = link.split_once("#token=").expect("token").1;
    let me = s
        .api(token)
        .call(Method::GET, "/v1/portal/sessions", None, None)
        .await
        .expect("the link works");
    assert_eq!(me.json()["read_only"], true, "{:?}", me.json());
    for bad in ["25h", "10s", "soon"] {
        let out = s
            .run(&["portal", "open", "--tenant", "acme", "--ttl", bad])
            .await;
        assert_ne!(out.code, 0, "--ttl {bad}: {out:?}");
    }
    let out = s.run(&["portal", "revoke", "--tenant", "acme"]).await;
    assert_eq!(ok(&out), "revoked every portal session of acme\n");
    let gone = s
        .api(token)
        .call(Method::GET, "/v1/portal/sessions", None, None)
        .await;
    assert!(gone.is_err(), "a revoked link still works");
    s.app.shutdown().await;
}
