//! Upgrades: a data dir written by hookbox 0.1.0 (tests/fixtures/v0.1.0) opens with
//! this build with every value intact and its waiting delivery is delivered, signed
//! with the stored secret; a file from a newer store format is refused at start with
//! a clear message and exit status 65, and is left untouched.

use std::path::Path;
use std::time::Duration;

use hookbox::config::EventTypeSeed;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::delivery::verify_official;
use crate::helpers::{Tenant, TestApp};
use crate::receiver::{Reply, TestReceiver};

const WAIT: Duration = Duration::from_secs(15);

fn fixture_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0.1.0")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixture_dir().join("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("expected.json is JSON")
}

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

/// Copies the fixture's data dir (the file and its master key) into `to`.
fn copy_fixture(to: &Path) {
    for name in ["hookbox.redb", "master.key"] {
        std::fs::copy(fixture_dir().join(name), to.join(name)).expect("copy fixture");
    }
}

/// Starts the current build on a copy of the 0.1.0 fixture with the fixture's
/// config (its admin token, seeds and retry schedule), listening on port 0.
async fn start_on_fixture(data: &Path, admin: &str) -> TestApp {
    let admin = admin.to_owned();
    let data = data.to_owned();
    TestApp::spawn_redb_with(move |c| {
        c.data_dir = data;
        c.admin_token = Some(hookbox::model::Secret::new(admin));
        c.event_types = vec![
            EventTypeSeed {
                name: "PROVIDER_CRED_APPROVED".into(),
                description: Some("A provider's credentialing was approved".into()),
            },
            EventTypeSeed {
                name: "shift.report.created".into(),
                description: None,
            },
        ];
        c.delivery.retry_schedule = ["0s", "10s", "1h"]
            .iter()
            .map(|d| match *d {
                "0s" => Duration::ZERO,
                "10s" => Duration::from_secs(10),
                _ => Duration::from_secs(3600),
            })
            .collect();
        c.delivery.jitter = 0.0;
    })
    .await
}

#[tokio::test]
async fn a_data_dir_written_by_0_1_0_opens_with_every_value_intact() {
    let exp = expected();
    let data = tempfile::tempdir().expect("temp dir");
    copy_fixture(data.path());
    // The receiver listens where the fixture's webhooks point before hookbox starts,
    // so the delivery left waiting by 0.1.0 reaches it right after the start.
    let rx = TestReceiver::start_on("127.0.0.77:48177", Reply::status(200)).await;
    let app = start_on_fixture(data.path(), &s(&exp["admin_token"])).await;
    let acme = Tenant {
        id: "acme".into(),
        key: s(&exp["acme_key"]),
    };
    let globex = Tenant {
        id: "globex".into(),
        key: s(&exp["globex_key"]),
    };

    // The waiting delivery is delivered, signed with the secret 0.1.0 stored.
    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got[0].path, "/fail/one");
    assert!(
        verify_official(&s(&exp["failing"]["secret"]), &got[0]),
        "signed with the stored secret"
    );
    assert_eq!(
        got[0].header("webhook-id"),
        Some(s(&exp["fail_event"]).as_str())
    );
    assert_eq!(
        got[0].json()["data"],
        json!({"invoice": "I-9", "amount": 12.50})
    );

    // Tenants.
    let (st, tenants) = app.admin(Method::GET, "/v1/tenants", None).await;
    assert_eq!(st, StatusCode::OK);
    let names: Vec<(String, String)> = tenants["data"]
        .as_array()
        .expect("list")
        .iter()
        .map(|t| (s(&t["id"]), s(&t["name"])))
        .collect();
    assert_eq!(
        names,
        [
            ("acme".to_owned(), "Acme Health".to_owned()),
            ("globex".to_owned(), "Globex".to_owned())
        ]
    );

    // Both keys authenticate, each with its own scopes.
    let (st, keys) = app.admin(Method::GET, "/v1/api-keys", None).await;
    assert_eq!(st, StatusCode::OK);
    let scopes = |tenant: &str| -> Value {
        keys["data"]
            .as_array()
            .expect("list")
            .iter()
            .find(|k| k["tenant"] == tenant)
            .map(|k| k["scopes"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        scopes("acme"),
        json!([
            "webhooks:read",
            "webhooks:write",
            "events:write",
            "events:read"
        ])
    );
    assert_eq!(scopes("globex"), json!(["webhooks:read"]));
    let (st, _) = app
        .as_tenant(&globex, Method::GET, "/v1/webhooks", None)
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = app
        .as_tenant(
            &globex,
            Method::POST,
            "/v1/webhooks",
            Some(json!({"url": "http://127.0.0.1:9/x", "event_types": ["*"]})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "globex's key is read-only");

    // The catalogue, with the tenant's own type and its schema.
    let (st, types) = app
        .as_tenant(&acme, Method::GET, "/v1/event-types", None)
        .await;
    assert_eq!(st, StatusCode::OK);
    let by_name = |name: &str| -> Value {
        types["data"]
            .as_array()
            .expect("list")
            .iter()
            .find(|t| t["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing from {types}"))
    };
    let invoice = by_name("invoice.paid");
    assert_eq!(invoice["description"], "An invoice was paid");
    assert_eq!(invoice["schema"], json!({"type": "object"}));
    assert_eq!(
        by_name("PROVIDER_CRED_APPROVED")["description"],
        "A provider's credentialing was approved"
    );
    by_name("shift.report.created");

    // The full webhook: every field, secret values masked on read.
    let full_id = s(&exp["full"]["id"]);
    let (st, full) = app
        .as_tenant(&acme, Method::GET, &format!("/v1/webhooks/{full_id}"), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{full}");
    let r = s(&exp["receiver"]);
    assert_eq!(full["url"], format!("{r}/ok/full"));
    assert_eq!(
        full["event_types"],
        json!(["PROVIDER_CRED_APPROVED", "shift.*"])
    );
    assert_eq!(full["description"], "everything set");
    assert_eq!(full["channels"], json!(["P-1", "P-2"]));
    assert_eq!(full["headers"], json!({"X-Api-Key": "****"}));
    assert_eq!(
        full["oauth"],
        json!({"token_url": format!("{r}/token"), "client_id": "cid", "client_secret": "****",
               "scope": "hooks", "headers": {"X-Tenant": "****"}})
    );
    assert_eq!(full["notification_email"], "ops@acme.example");
    assert_eq!(full["metadata"], json!({"team": "cred", "tier": "gold"}));
    assert_eq!(full["rate_limit_per_second"], 50);
    assert_eq!(full["enabled"], true);
    assert_eq!(full["secrets"], json!(["****", "****"]));
    let (st, secrets) = app
        .as_tenant(
            &acme,
            Method::GET,
            &format!("/v1/webhooks/{full_id}/secrets"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(secrets["secrets"], exp["full"]["secrets"]);

    // The one disabled by a 410 keeps its reason; the deleted one stays deleted.
    let (_, gone) = app
        .as_tenant(
            &acme,
            Method::GET,
            &format!("/v1/webhooks/{}", s(&exp["gone"])),
            None,
        )
        .await;
    assert_eq!(gone["enabled"], false);
    assert_eq!(gone["disabled_reason"], "the receiver answered 410 Gone");
    let (st, _) = app
        .as_tenant(
            &acme,
            Method::GET,
            &format!("/v1/webhooks/{}", s(&exp["deleted"])),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Events and their deliveries: the succeeded one with its attempt.
    let ok = app.deliveries_of(&acme, &s(&exp["ok_event"])).await;
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0]["status"], "succeeded");
    assert_eq!(ok[0]["webhook_id"], full_id.as_str());
    let (_, d) = app
        .as_tenant(
            &acme,
            Method::GET,
            &format!("/v1/deliveries/{}", s(&ok[0]["id"])),
            None,
        )
        .await;
    assert_eq!(d["attempts"][0]["status_code"], 200);
    assert_eq!(d["attempts"][0]["trigger"], "scheduled");
    assert_eq!(d["attempts"][0]["response_body"], "ok");

    // The failed one (now delivered) kept 0.1.0's failed attempt; the one to the
    // 410 receiver is exhausted.
    let failing_id = s(&exp["failing"]["id"]);
    let fail = app.deliveries_of(&acme, &s(&exp["fail_event"])).await;
    assert_eq!(fail.len(), 2);
    let to_failing = fail
        .iter()
        .find(|d| d["webhook_id"] == failing_id.as_str())
        .expect("delivery to the failing webhook");
    let d = app
        .wait_delivery(&acme, &s(&to_failing["id"]), WAIT, |d| {
            d["status"] == "succeeded"
        })
        .await;
    assert_eq!(d["attempts"][0]["status_code"], 500);
    assert_eq!(d["attempts"][0]["response_body"], "try later");
    assert_eq!(d["attempts"][1]["status_code"], 200);
    let to_gone = fail
        .iter()
        .find(|d| d["webhook_id"] == exp["gone"])
        .expect("delivery to the gone webhook");
    assert_eq!(to_gone["status"], "exhausted");
    assert_eq!(to_gone["last_status_code"], 410);

    // The test event's delivery is in the log, exhausted, with its test attempt.
    let (_, log) = app
        .as_tenant(
            &acme,
            Method::GET,
            &format!("/v1/webhooks/{failing_id}/deliveries?status=exhausted"),
            None,
        )
        .await;
    let test = &log["data"][0];
    assert_eq!(test["event_type"], "invoice.paid");
    let (_, d) = app
        .as_tenant(
            &acme,
            Method::GET,
            &format!("/v1/deliveries/{}", s(&test["id"])),
            None,
        )
        .await;
    assert_eq!(d["attempts"][0]["trigger"], "test");
    assert_eq!(d["attempts"][0]["status_code"], exp["test_status"]);

    // Idempotency records: the same body replays the first answer, another is 409.
    let auth = format!("Bearer {}", acme.key);
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("idempotency-key", "cred-P-1001"),
    ];
    let replay = |body: &'static str| {
        app.raw(
            Method::POST,
            "/v1/events",
            &headers,
            body.as_bytes().to_vec(),
        )
    };
    // Byte for byte what the fixture script (Python's json.dumps) sent.
    let (st, e) = replay(
        r#"{"type": "PROVIDER_CRED_APPROVED", "channels": ["P-1"], "data": {"provider_id": "P-1001", "approved": true}}"#,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{e}");
    assert_eq!(e["id"], exp["ok_event"]);
    let (st, e) = replay(
        r#"{"type": "PROVIDER_CRED_APPROVED", "channels": ["P-1"], "data": {"provider_id": "P-1002", "approved": true}}"#,
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT, "{e}");

    // The stored header and OAuth values are intact: a new event to the full
    // webhook fetches a token with the stored client secret and sends the header.
    rx.script([
        Reply::status(200)
            .header("content-type", "application/json")
            .body(r#"{"access_token": "tok-2", "token_type": "Bearer", "expires_in": 3600}"#),
        Reply::status(200),
    ]);
    app.event(
        &acme,
        json!({"type": "PROVIDER_CRED_APPROVED", "channels": ["P-2"], "data": {"n": 2}}),
    )
    .await;
    let got = rx.wait_for(3, WAIT).await;
    let token = &got[1];
    assert_eq!(token.path, "/token");
    let form = String::from_utf8_lossy(&token.body).into_owned();
    assert!(form.contains("client_secret=oauth-secret-1"), "{form}");
    assert!(form.contains("client_id=cid"), "{form}");
    assert_eq!(token.header("x-tenant"), Some("acme-oauth"));
    let hook = &got[2];
    assert_eq!(hook.path, "/ok/full");
    assert_eq!(hook.header("x-api-key"), Some("header-secret-1"));
    assert_eq!(hook.header("authorization"), Some("Bearer tok-2"));
    for secret in exp["full"]["secrets"].as_array().expect("two secrets") {
        assert!(verify_official(&s(secret), hook), "signed with {secret}");
    }

    // Opening the 0.1.0 file (which had no format record) recorded this format.
    let mut app = app;
    app.stop().await;
    assert_eq!(
        read_format(&data.path().join(hookbox::app::DATA_FILE)),
        hookbox::store::FORMAT
    );
}

/// Writes a data file whose store format is `format` (a META record, as a newer
/// hookbox would write it).
fn forge_format(file: &Path, format: u32) {
    let db = redb::Database::create(file).expect("create redb file");
    let txn = db.begin_write().expect("write");
    {
        let meta: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
        let mut t = txn.open_table(meta).expect("meta table");
        t.insert("format", format.to_le_bytes().as_slice())
            .expect("insert");
    }
    txn.commit().expect("commit");
}

fn read_format(file: &Path) -> u32 {
    use redb::ReadableDatabase;
    let db = redb::Database::open(file).expect("open");
    let txn = db.begin_read().expect("read");
    let meta: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
    let t = txn.open_table(meta).expect("meta");
    let v = t.get("format").expect("get").expect("format record");
    u32::from_le_bytes(v.value().try_into().expect("4 bytes"))
}

#[tokio::test]
async fn a_file_from_a_newer_format_is_refused_with_exit_status_65() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join(hookbox::app::DATA_FILE);
    forge_format(&file, 99);
    let config = dir.path().join("hookbox.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n",
            dir.path().display()
        ),
    )
    .expect("write config");
    let out = run_to_exit(
        std::process::Command::new(env!("CARGO_BIN_EXE_hookbox"))
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .env_remove("HOOKBOX_CONFIG"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{stderr}");
    assert!(
        stderr.contains("store format 99")
            && stderr.contains(&format!("format {}", hookbox::store::FORMAT)),
        "names both formats: {stderr}"
    );
    // Refused before anything was written.
    assert_eq!(read_format(&file), 99);

    // A fresh file records the current format.
    let mut app = TestApp::spawn_redb_with(|_| {}).await;
    let fresh = app.data_file();
    app.stop().await;
    assert_eq!(read_format(&fresh), hookbox::store::FORMAT);
}

/// Runs a command that must exit by itself within [`WAIT`]; kills it otherwise.
fn run_to_exit(cmd: &mut std::process::Command) -> std::process::Output {
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hookbox");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("hookbox did not exit within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
