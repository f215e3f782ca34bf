//! `hookbox store copy|compact` through the real binary, as an operator runs them on
//! a data dir a real server wrote and then stopped: what they print and their exit
//! codes (0, 64 usage, 66 no data file, 69 unreachable, 73 target not empty, 75
//! data dir in use).
//! The environment is cleared of every `HOOKBOX_*` override.

use std::path::Path;
use std::process::{Command, Output};

use http::Method;
use serde_json::json;

use hookbox::config::{Backend, ENV_OVERRIDES};
use hookbox::secrets;
use hookbox::store::Store;
use hookbox::store::pg::PgStore;

use crate::helpers::TestApp;
use crate::pg_cluster;

fn hookbox(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookbox"));
    for (var, _) in ENV_OVERRIDES {
        cmd.env_remove(var);
    }
    cmd.env_remove("HOOKBOX_CONFIG")
        .env_remove("HOOKBOX_POSTGRES_URL")
        .env_remove("HOOKBOX_DATA_DIR")
        .env("RUST_LOG", "warn")
        .args(args)
        .output()
        .expect("run hookbox")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `hookbox store copy --data-dir DIR --postgres-url URL`.
fn store_copy(dir: &str, url: &str) -> Output {
    hookbox(&["store", "copy", "--data-dir", dir, "--postgres-url", url])
}

/// Asserts that `out` ended with exit code `code` and, when `says` is not empty,
/// said so on stderr.
fn exits(out: &Output, code: i32, says: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(err.contains(says), "{err}");
}

fn open_redb(dir: &Path) -> Store {
    let cipher = secrets::load_master_key(None, dir).expect("the server's master key");
    Store::open(&dir.join(hookbox::app::DATA_FILE), cipher, 1 << 20).expect("open")
}

/// A data dir written by a real server: a tenant, a webhook with a custom header,
/// events (their deliveries fail against a closed port and retry on the fast test
/// schedule), then a graceful stop.
async fn served_dir() -> TestApp {
    // A redb data dir whatever engine the rest of the suite runs on.
    let mut app = TestApp::spawn_with(|c| c.store.backend = Backend::Redb).await;
    let t = app.tenant("Acme").await;
    app.webhook(
        &t,
        json!({
            "url": "http://127.0.0.1:9/hook",
            "event_types": ["PATIENT_CREATED"],
            "headers": {"X-Api-Key": "header-secret-value"}
        }),
    )
    .await;
    for i in 0..3 {
        let (s, e) = app
            .call(
                Method::POST,
                "/v1/events",
                &t.key,
                &[("idempotency-key", &format!("k-{i}"))],
                Some(json!({"type": "PATIENT_CREATED", "data": {"id": i}})),
            )
            .await;
        assert_eq!(s, http::StatusCode::ACCEPTED, "{e}");
    }
    app.stop().await;
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_copy_through_the_binary_copies_a_served_dir_and_refuses_a_second_time() {
    let app = served_dir().await;
    let dir = app.dir.path().to_owned();
    let dir_arg = dir.to_string_lossy().into_owned();
    let url = pg_cluster::shared().database().await;

    let usage = hookbox(&["store", "copy", "--data-dir", &dir_arg]);
    exits(&usage, 64, "");

    let out = store_copy(&dir_arg, &url);
    exits(&out, 0, "");
    let stdout = text(&out.stdout);
    let count = |table: &str| -> u64 {
        stdout
            .lines()
            .find_map(|l| {
                let mut words = l.split_whitespace();
                (words.next() == Some(table)).then(|| words.next()?.parse().ok())?
            })
            .unwrap_or_else(|| panic!("no {table} line in: {stdout}"))
    };
    assert_eq!(count("tenants"), 1, "{stdout}");
    assert_eq!(count("webhooks"), 1, "{stdout}");
    assert_eq!(count("events"), 3, "{stdout}");
    assert_eq!(count("deliveries"), 3, "{stdout}");
    assert_eq!(count("idempotency"), 3, "{stdout}");
    assert!(!stdout.contains(url.as_str()), "the URL is never printed");

    // The copy serves what the stopped server had.
    let store = open_redb(&dir);
    let webhooks = store.load_webhooks().expect("webhooks");
    let (events, _) = store
        .list_events(&webhooks[0].tenant, None, None, None, 10)
        .expect("events");
    let mut expected = Vec::new();
    for e in &events {
        expected.push(store.get_event(&e.id).expect("read").expect("event"));
    }
    store.close();
    drop(store);
    let cipher = secrets::load_master_key(None, &dir).expect("key");
    let pg = PgStore::open(&url, 2, cipher).await.expect("open pg");
    assert_eq!(pg.load_webhooks().await.expect("webhooks"), webhooks);
    for e in &expected {
        assert_eq!(
            &pg.get_event(&e.0.id).await.expect("read").expect("event"),
            e
        );
    }

    let again = store_copy(&dir_arg, &url);
    exits(&again, 73, "not empty");
    assert_eq!(pg.list_tenants().await.expect("tenants").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_commands_refuse_a_dir_in_use_a_missing_file_or_an_unreachable_database() {
    let app = served_dir().await;
    let dir = app.dir.path().to_owned();
    let dir_arg = dir.to_string_lossy().into_owned();
    let url = pg_cluster::shared().database().await;

    let store = open_redb(&dir);
    let busy = store_copy(&dir_arg, &url);
    exits(&busy, 75, "in use");
    let busy = hookbox(&["store", "compact", "--data-dir", &dir_arg]);
    exits(&busy, 75, "");
    store.close();
    drop(store);

    let empty = tempfile::tempdir().expect("temp dir");
    let empty_arg = empty.path().to_string_lossy().into_owned();
    let none = store_copy(&empty_arg, &url);
    exits(&none, 66, "");
    let none = hookbox(&["store", "compact", "--data-dir", &empty_arg]);
    exits(&none, 66, "");
    assert!(
        !empty.path().join(hookbox::app::DATA_FILE).exists(),
        "no data file is created"
    );

    // Nothing listens on port 1 of loopback: unreachable, not a crash.
    let down = "postgres://postgres@127.0.0.1:1/hookbox?sslmode=disable";
    let unreachable = store_copy(&dir_arg, down);
    exits(&unreachable, 69, "");
    let bad = hookbox(&[
        "store",
        "copy",
        "--data-dir",
        &dir_arg,
        "--postgres-url",
        "nope://",
    ]);
    exits(&bad, 64, "");

    let done = hookbox(&["store", "compact", "--data-dir", &dir_arg]);
    exits(&done, 0, "");
    assert!(
        text(&done.stdout).contains("bytes"),
        "{}",
        text(&done.stdout)
    );
}
