//! Issue 4 tests: auto-disable, failure emails over a real SMTP conversation, their
//! rate limit, operational events, and persistence of all of it across a restart.

use std::time::Duration;

use hookbox::config::{Config, SmtpConfig, SmtpTls};
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Tenant, TestApp};
use crate::receiver::{Reply, TestReceiver};
use crate::smtp::SmtpSink;

const WAIT: Duration = Duration::from_secs(10);

fn with_smtp(c: &mut Config, sink: &SmtpSink) {
    c.smtp = Some(SmtpConfig {
        host: "127.0.0.1".into(),
        port: sink.port(),
        tls: SmtpTls::None,
        username: None,
        password: None,
        from: "hookbox@example.com".into(),
    });
}

async fn webhook_state(app: &TestApp, t: &Tenant, id: &str) -> Value {
    let (s, w) = app
        .as_tenant(t, Method::GET, &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{w}");
    w
}

/// Waits (polling hookbox's own state) until the webhook is disabled.
async fn wait_disabled(app: &TestApp, t: &Tenant, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let w = webhook_state(app, t, id).await;
        if w["enabled"] == false {
            return w;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "webhook never disabled: {w}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_failing_webhook_is_disabled_emailed_and_announced() {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with(|c| {
        with_smtp(c, &sink);
        c.delivery.disable_after = Duration::from_millis(50);
        c.delivery.retry_schedule = [0u64, 30, 30, 30, 30, 30, 30, 30]
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect();
    })
    .await;
    let failing = TestReceiver::start_with(Reply::status(500)).await;
    let ops = TestReceiver::start().await;
    let t = app.tenant("acme").await;
    let bad = app
        .webhook(
            &t,
            json!({"url": failing.url("/down"), "event_types": ["shift.created"],
                   "notification_email": "ops@example.com"}),
        )
        .await;
    let listener = app
        .webhook(
            &t,
            json!({"url": ops.url("/ops"), "event_types": ["hookbox.webhook.disabled"]}),
        )
        .await;
    let bad_id = bad["id"].as_str().expect("id");
    app.event(&t, json!({"type": "shift.created", "data": {"n": 1}}))
        .await;

    let w = wait_disabled(&app, &t, bad_id).await;
    let reason = w["disabled_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("failed continuously"), "{reason}");
    assert!(w["disabled_at"].is_string());

    let mails = sink.wait_for(1, WAIT).await;
    let mail = &mails[0];
    assert_eq!(mail.to, vec!["ops@example.com".to_owned()]);
    let subject = mail.header("subject").unwrap_or_default();
    assert!(
        subject.contains(bad_id) && subject.contains("disabled"),
        "{subject}"
    );
    assert!(
        mail.body().contains("failed continuously"),
        "{}",
        mail.body()
    );

    // The operational event reaches the subscribed webhook, never the failing one.
    let got = ops.wait_for(1, WAIT).await;
    let body = got[0].json();
    assert_eq!(body["type"], "hookbox.webhook.disabled");
    assert_eq!(body["data"]["webhook_id"], bad_id);
    assert!(
        failing
            .received()
            .iter()
            .all(|r| r.json()["type"] == "shift.created")
    );
    assert_ne!(listener["id"], bad["id"]);

    // Disabled state and reason survive a restart; re-enabling clears them.
    let app = app.restart().await;
    let w = webhook_state(&app, &t, bad_id).await;
    assert_eq!(w["enabled"], false);
    assert_eq!(w["disabled_reason"].as_str(), Some(reason));
    let (s, w) = app
        .as_tenant(
            &t,
            Method::PATCH,
            &format!("/v1/webhooks/{bad_id}"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{w}");
    assert_eq!(w["enabled"], true);
    assert!(
        w["disabled_reason"].is_null() && w["disabled_at"].is_null(),
        "{w}"
    );
}

#[tokio::test]
async fn a_410_disables_at_once() {
    let app = TestApp::spawn().await;
    let gone = TestReceiver::start_with(Reply::status(410)).await;
    let t = app.tenant("acme").await;
    let w = app
        .webhook(&t, json!({"url": gone.url("/"), "event_types": ["*"]}))
        .await;
    app.event(&t, json!({"type": "shift.created", "data": {}}))
        .await;
    let w = wait_disabled(&app, &t, w["id"].as_str().expect("id")).await;
    assert!(
        w["disabled_reason"].as_str().unwrap_or("").contains("410"),
        "{w}"
    );
    assert_eq!(gone.received().len(), 1, "no retry after 410");
}

#[tokio::test]
async fn exhaustion_is_emailed_and_announced() {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with(|c| with_smtp(c, &sink)).await;
    let failing = TestReceiver::start_with(Reply::status(503)).await;
    let ops = TestReceiver::start().await;
    let t = app.tenant("acme").await;
    let bad = app
        .webhook(
            &t,
            json!({"url": failing.url("/"), "event_types": ["PATIENT_CREATED"],
                   "notificationEmail": "dev@example.com"}),
        )
        .await;
    app.webhook(
        &t,
        json!({"url": ops.url("/ops"), "event_types": ["hookbox.delivery.exhausted"]}),
    )
    .await;
    let e = app
        .event(&t, json!({"type": "PATIENT_CREATED", "data": {"p": 1}}))
        .await;
    let got = ops.wait_for(1, WAIT).await;
    let body = got[0].json();
    assert_eq!(body["type"], "hookbox.delivery.exhausted");
    assert_eq!(body["data"]["webhook_id"], bad["id"]);
    assert_eq!(body["data"]["event_id"], e["id"]);
    assert_eq!(body["data"]["attempts"], 4);
    assert_eq!(failing.received().len(), 4, "the whole schedule was tried");
    let mails = sink.wait_for(1, WAIT).await;
    assert_eq!(mails[0].to, vec!["dev@example.com".to_owned()]);
    assert!(
        mails[0]
            .header("subject")
            .unwrap_or_default()
            .contains("exhausted")
    );
}

#[tokio::test]
async fn a_flood_of_failures_sends_one_email_per_window_and_counts_the_rest() {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with(|c| {
        with_smtp(c, &sink);
        c.delivery.retry_schedule = vec![Duration::ZERO];
        c.notify.email_interval = Duration::from_millis(1500);
    })
    .await;
    let failing = TestReceiver::start_with(Reply::status(500)).await;
    let t = app.tenant("acme").await;
    let w = app
        .webhook(
            &t,
            json!({"url": failing.url("/"), "event_types": ["*"],
                   "notification_email": "ops@example.com"}),
        )
        .await;
    let id = w["id"].as_str().expect("id");
    let mut ids = Vec::new();
    for i in 0..6 {
        let e = app
            .event(&t, json!({"type": "shift.created", "data": {"i": i}}))
            .await;
        ids.push(e["id"].as_str().expect("id").to_owned());
    }
    // Every delivery is exhausted (one attempt each)...
    for e in &ids {
        let d = app.deliveries_of(&t, e).await[0]["id"]
            .as_str()
            .expect("dlv")
            .to_owned();
        app.wait_delivery(&t, &d, WAIT, |d| d["status"] == "exhausted")
            .await;
    }
    // ...which produced one email in this window.
    let first = sink.wait_for(1, WAIT).await;
    assert!(
        !first[0].body().contains("suppressed"),
        "{}",
        first[0].body()
    );
    // The next failure after the window sends one email counting the five suppressed.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    app.event(&t, json!({"type": "shift.created", "data": {"late": true}}))
        .await;
    let mails = sink.wait_for(2, WAIT).await;
    assert_eq!(mails.len(), 2, "one email per window");
    let body = mails[1].body();
    assert!(body.contains('5') && body.contains("suppressed"), "{body}");
    let (_, log) = app
        .as_tenant(
            &t,
            Method::GET,
            &format!("/v1/webhooks/{id}/deliveries?status=exhausted"),
            None,
        )
        .await;
    assert_eq!(log["data"].as_array().map(Vec::len), Some(7));
}
