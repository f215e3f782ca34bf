//! Secrets never reach the logs. A global TRACE subscriber (with `log` records of
//! dependencies bridged in) writes to a buffer while a tenant, a key, a webhook with
//! signing secrets, custom headers and OAuth are created, rejected keys are tried,
//! deliveries fail until the webhook is disabled; then no secret may appear in what
//! was logged. A separate test binary, because the subscriber is process-global.

#[allow(dead_code)]
#[path = "it/contract.rs"]
mod contract;
#[allow(dead_code, clippy::field_reassign_with_default)]
#[path = "it/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "it/pg_bouncer.rs"]
mod pg_bouncer;
#[allow(dead_code)]
#[path = "it/pg_cluster.rs"]
mod pg_cluster;
#[allow(dead_code)]
#[path = "it/receiver.rs"]
mod receiver;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;
use serde_json::json;

use helpers::TestApp;
use receiver::{Reply, TestReceiver};

/// A `Write` into a shared buffer.
#[derive(Clone)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_ever_logged() {
    let logs = Captured(Arc::new(Mutex::new(Vec::new())));
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let mut app = TestApp::spawn_with(|cfg| {
        cfg.delivery.disable_after = Duration::from_millis(1);
    })
    .await;
    let t = app.tenant("logs").await;

    let presented = "hbk_presented-but-wrong-5e1f";
    let (s, _) = app
        .call(Method::GET, "/v1/webhooks", presented, &[], None)
        .await;
    assert_eq!(s, 401);

    let access_token = "access-token-c0ffee42";
    let token = TestReceiver::start_with(
        Reply::status(200)
            .header("content-type", "application/json")
            .body(
                &json!({"access_token": access_token, "token_type": "Bearer", "expires_in": 3600})
                    .to_string(),
            ),
    )
    .await;
    let hook = TestReceiver::start_with(Reply::status(500).body("receiver says no")).await;
    let signing = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let header_value = "hdr-value-9d8c7b6a";
    let token_header_value = "token-hdr-1a2b3c4d";
    let client_secret = "client-secret-5f6e7d8c";
    let w = app
        .webhook(
            &t,
            json!({
                "url": hook.url("/hook"),
                "event_types": ["*"],
                "secrets": [signing],
                "headers": {"X-Api-Key": header_value},
                "notification_email": "ops@example.com",
                "oauth": {
                    "token_url": token.url("/token"),
                    "client_id": "client-id",
                    "client_secret": client_secret,
                    "headers": {"X-Token-Key": token_header_value},
                },
            }),
        )
        .await;
    let wid = w["id"].as_str().expect("id").to_owned();
    let (s, rotated) = app
        .as_tenant(
            &t,
            Method::POST,
            &format!("/v1/webhooks/{wid}/secrets/rotate"),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 200, "{rotated}");
    let new_signing = rotated["secrets"][0].as_str().expect("secret").to_owned();
    let (s, attempt) = app
        .as_tenant(
            &t,
            Method::POST,
            &format!("/v1/webhooks/{wid}/test"),
            Some(json!({"event_type": "shift.created"})),
        )
        .await;
    assert_eq!(s, 200, "{attempt}");

    // Failing deliveries until the webhook is disabled (disable_after is 1 ms).
    app.event(&t, json!({"type": "shift.created", "data": {"n": 1}}))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, w) = app
            .as_tenant(&t, Method::GET, &format!("/v1/webhooks/{wid}"), None)
            .await;
        if w["enabled"] == false {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the webhook was not disabled: {w}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        hook.received()
            .iter()
            .any(|r| r.header("authorization") == Some(&format!("Bearer {access_token}"))),
        "the OAuth token was used, so the token exchange ran"
    );
    let admin = app.admin.clone();
    app.stop().await;

    let text = logs.text();
    // The capture works and saw the paths exercised above.
    assert!(text.contains("hookbox is serving"), "{text}");
    assert!(text.contains("webhook disabled"), "{text}");
    for (what, secret) in [
        ("API key", t.key.as_str()),
        ("rejected API key", presented),
        ("admin token", admin.as_str()),
        ("signing secret", signing),
        (
            "signing secret key text",
            signing.trim_start_matches("whsec_"),
        ),
        ("rotated signing secret", new_signing.as_str()),
        ("custom header value", header_value),
        ("OAuth header value", token_header_value),
        ("OAuth client secret", client_secret),
        ("OAuth access token", access_token),
    ] {
        assert!(!text.contains(secret), "the {what} was logged:\n{text}");
    }
    assert!(
        !text.contains("whsec_"),
        "a signing secret was logged:\n{text}"
    );
}
