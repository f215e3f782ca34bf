//! The `hookbox` binary as an operator runs it: `verify` exit codes on signatures made
//! by the library's signer, and exit code 64 on an invalid config file. It must never
//! depend on the caller's environment (every `HOOKBOX_*` override is removed).

use std::io::Write;
use std::process::{Command, Output, Stdio};

use hookbox::config::ENV_OVERRIDES;
use hookbox::delivery::signer;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ID: &str = "evt_01JTESTCLI";
const BODY: &[u8] = br#"{"type":"PATIENT_CREATED","data":{"id":"p_1"}}"#;

/// The binary with a clean environment as far as hookbox is concerned.
fn hookbox() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookbox"));
    for (var, _) in ENV_OVERRIDES {
        cmd.env_remove(var);
    }
    cmd.env_remove("HOOKBOX_CONFIG")
        .env_remove("HOOKBOX_VERIFY_SECRET");
    cmd
}

/// Runs `hookbox verify` with `body` on stdin.
fn run_verify(timestamp: i64, signature: &str, body: &[u8], extra: &[&str]) -> Output {
    let ts = timestamp.to_string();
    let mut child = hookbox()
        .args(["verify", "--secret", SECRET, "--id", ID, "--timestamp", &ts])
        .args(["--signature", signature])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hookbox");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(body)
        .expect("write body");
    child.wait_with_output().expect("hookbox exits")
}

fn signature_at(timestamp: i64, body: &[u8]) -> String {
    let key = signer::decode_secret(SECRET).expect("valid secret");
    signer::sign(&[&key], ID, timestamp, body)
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

#[test]
fn valid_signature_exits_zero() {
    let ts = now();
    let out = run_verify(ts, &signature_at(ts, BODY), BODY, &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "valid");
}

#[test]
fn tampered_body_exits_one() {
    let ts = now();
    let out = run_verify(ts, &signature_at(ts, BODY), b"{\"tampered\":true}", &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("invalid: "));
}

#[test]
fn stale_timestamp_fails_unless_the_check_is_skipped() {
    let ts = now() - 3600;
    let sig = signature_at(ts, BODY);
    let out = run_verify(ts, &sig, BODY, &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("old"),
        "{out:?}"
    );

    let out = run_verify(ts, &sig, BODY, &["--no-timestamp-check"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn malformed_secret_exits_one_with_the_reason() {
    let out = hookbox()
        .args([
            "verify",
            "--secret",
            "whsec_***",
            "--id",
            ID,
            "--timestamp",
            "1",
        ])
        .args(["--signature", "v1,abc"])
        .stdin(Stdio::null())
        .output()
        .expect("run hookbox");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("base64"),
        "{out:?}"
    );
}

#[test]
fn invalid_config_exits_64_listing_every_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "listen = \"nowhere\"\n[delivery]\njitter = 2.0\n").expect("write");

    let out = hookbox()
        .arg("--config")
        .arg(&path)
        .arg("serve")
        .output()
        .expect("run hookbox");
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("listen: \"nowhere\""), "{stderr}");
    assert!(stderr.contains("delivery.jitter"), "{stderr}");

    // The same file named through HOOKBOX_CONFIG, with serve as the default command.
    let out = hookbox()
        .env("HOOKBOX_CONFIG", &path)
        .output()
        .expect("run hookbox");
    assert_eq!(out.status.code(), Some(64), "{out:?}");
}
