//! The flows a tenant's customer walks in the portal, in a real browser: open the
//! link, create a webhook, send a test event and see it succeed, see a failure with
//! its response body (markup shown as text, never run), resend, rotate the secret,
//! recover with the count shown first; a read-only session sees no write controls;
//! expired and revoked links say so. The token never appears in a URL the page
//! requested nor in the server's log. Screenshots go to target/portal-screenshots/.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fantoccini::Client;
use hookbox::model::{PortalSession, now_ms};
use hookbox::secrets::hash_key;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::browser::{Driver, click, exists, find, js, screenshot, wait_text};
use crate::helpers::{Tenant, TestApp};
use crate::receiver::{Reply, TestReceiver};

/// A `Write` into a shared buffer: the server's log for this binary.
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

/// The markup a hostile receiver answers with; it must show as text.
const HOSTILE: &str =
    "<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=2</script>oops";

/// How many form fields on the page have no label (keyboard and screen-reader use).
const UNLABELLED: &str = "return [...document.querySelectorAll('input, select, textarea')]\
    .filter(e => !e.labels.length && !e.getAttribute('aria-label')).length;";

/// How many elements act on clicks without being a button, link or form control.
const FAKE_CONTROLS: &str = "return document.querySelectorAll('[onclick], [role=button], div[tabindex], span[tabindex]').length;";

async fn session(app: &TestApp, t: &Tenant, read_only: bool) -> (String, String) {
    let (s, v) = app
        .as_tenant(
            t,
            Method::POST,
            "/v1/portal/sessions",
            Some(json!({ "read_only": read_only })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    (
        v["url"].as_str().expect("url").to_owned(),
        v["token"].as_str().expect("token").to_owned(),
    )
}

/// Every URL the page has requested (navigation and fetches).
async fn requested_urls(c: &Client) -> Vec<String> {
    let v = js(
        c,
        "return [location.href].concat(performance.getEntriesByType('resource').map(e => e.name));",
    )
    .await;
    v.as_array()
        .expect("array")
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// Ingests one event and waits until its delivery is `status`; returns its id.
async fn delivered(app: &TestApp, t: &Tenant, status: &str) -> String {
    let e = app
        .event(t, json!({"type": "PATIENT_CREATED", "data": {"order": 7}}))
        .await;
    let ds = app.deliveries_of(t, e["id"].as_str().expect("event")).await;
    let id = ds[0]["id"].as_str().expect("delivery").to_owned();
    app.wait_delivery(t, &id, Duration::from_secs(15), |d| d["status"] == status)
        .await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_flows_in_a_real_browser() {
    let logs = Captured(Arc::new(Mutex::new(Vec::new())));
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let driver = Driver::start().await;
    let app = TestApp::spawn_with(|c| {
        c.portal.name = "Acme webhooks".into();
        c.portal.accent = "#0f766e".into();
    })
    .await;
    let receiver = TestReceiver::start().await;
    let t = app.tenant("acme").await;
    let mut tokens = Vec::new();
    tokio::time::timeout(Duration::from_secs(240), async {
        tokens.push(full_flow(&driver, &app, &t, &receiver).await);
        tokens.push(read_only_flow(&driver, &app, &t).await);
        tokens.extend(dead_links_flow(&driver, &app, &t).await);
    })
    .await
    .expect("the browser flows finish within 4 minutes");
    let log = String::from_utf8_lossy(&logs.0.lock().expect("log")).into_owned();
    assert!(log.contains("request"), "the server log was captured");
    for token in &tokens {
        assert!(
            !log.contains(token.as_str()),
            "a portal token reached the log"
        );
    }
}

/// A full session on a laptop-sized window, then the list on a phone.
async fn full_flow(driver: &Driver, app: &TestApp, t: &Tenant, receiver: &TestReceiver) -> String {
    let (url, token) = session(app, t, false).await;
    let c = driver.browser("full", 1280, 900).await;
    c.goto(&url).await.expect("open the link");
    wait_text(&c, "#empty", |s| s.contains("No webhooks yet")).await;
    assert!(
        !find(&c, "#mode").await.is_displayed().await.expect("state"),
        "a full session is labelled read-only"
    );
    let here = c.current_url().await.expect("url").to_string();
    assert!(
        !here.contains("token"),
        "the token left the address bar: {here}"
    );
    screenshot(&c, "list-empty-laptop").await;

    // Create a webhook through the form, picking the type from the catalogue;
    // the link opens from the keyboard (Enter), and every field has a label.
    find(&c, "#new-webhook")
        .await
        .send_keys("\u{E007}")
        .await
        .expect("Enter");
    find(&c, "#webhook-form").await;
    assert_eq!(
        js(&c, UNLABELLED).await,
        json!(0),
        "a form field has no label"
    );
    let hook = receiver.url("/orders");
    find(&c, "#wh-url")
        .await
        .send_keys(&hook)
        .await
        .expect("type");
    click(&c, "input.wh-type[value='PATIENT_CREATED']").await;
    find(&c, "#wh-description")
        .await
        .send_keys("Orders to the warehouse")
        .await
        .expect("type");
    find(&c, "#wh-filter")
        .await
        .send_keys(r#"{"data.order": {"$gte": 1}}"#)
        .await
        .expect("type");
    assert_eq!(
        find(&c, "#wh-ordering")
            .await
            .prop("value")
            .await
            .expect("ordering")
            .as_deref(),
        Some("none")
    );
    click(&c, "#add-header").await;
    find(&c, "#wh-headers .hdr-name")
        .await
        .send_keys("X-Shop")
        .await
        .expect("type");
    find(&c, "#wh-headers .hdr-value")
        .await
        .send_keys("s3cret-value")
        .await
        .expect("type");
    screenshot(&c, "create-laptop").await;
    click(&c, "#save").await;
    wait_text(&c, "#webhook-url", |s| s == hook).await;
    let path = c.current_url().await.expect("url").path().to_owned();
    let id = path.rsplit('/').next().expect("id").to_owned();
    assert!(id.starts_with("wh_"), "{path}");
    let (_, w) = app
        .as_tenant(t, Method::GET, &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(w["event_types"], json!(["PATIENT_CREATED"]), "{w}");
    assert_eq!(w["headers"]["X-Shop"], "****", "{w}");
    assert_eq!(w["filter"], json!({"data.order": {"$gte": 1}}), "{w}");
    assert_eq!(w["ordering"], "none", "{w}");
    assert_eq!(
        find(&c, "#webhook-filter")
            .await
            .text()
            .await
            .expect("filter"),
        r#"{"data.order":{"$gte":1}}"#
    );

    assert_eq!(js(&c, UNLABELLED).await, json!(0), "a field has no label");
    assert_eq!(
        js(&c, FAKE_CONTROLS).await,
        json!(0),
        "a control is not a button or link"
    );
    // Send a test event and see it succeed.
    find(&c, "#test-type")
        .await
        .select_by_value("PATIENT_CREATED")
        .await
        .expect("select");
    click(&c, "#send-test").await;
    wait_text(&c, "#test-result", |s| {
        s.contains("Delivered") && s.contains("HTTP 200")
    })
    .await;
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].header("x-shop"), Some("s3cret-value"));

    // Make the receiver fail with markup; see the failure and its body as text.
    receiver.script((0..4).map(|_| Reply::status(500).body(HOSTILE)));
    let failed = delivered(app, t, "exhausted").await;
    click(&c, "#refresh-deliveries").await;
    click(&c, &format!("tr[data-id='{failed}'] a")).await;
    wait_text(&c, "#attempts", |s| s.contains("HTTP 500")).await;
    let body = wait_text(&c, "#attempts .response-body", |s| !s.is_empty()).await;
    assert_eq!(body, HOSTILE, "the response body is shown literally");
    assert_eq!(
        js(&c, "return window.__pwned === undefined;").await,
        json!(true)
    );
    assert_eq!(
        js(&c, "return document.title;").await,
        json!("Acme webhooks")
    );
    assert_eq!(
        js(
            &c,
            "return document.querySelectorAll('#main img, #main script').length;"
        )
        .await,
        json!(0)
    );
    screenshot(&c, "delivery-laptop").await;

    // Resend: the receiver answers 200 again.
    click(&c, "#resend").await;
    wait_text(&c, "#delivery-msg", |s| s.contains("delivered")).await;
    wait_text(&c, "#main [data-state]", |s| s == "succeeded").await;

    // Rotate the secret: the new one is current, the old one signs on (grace).
    click(&c, "#main a[href^='/portal/webhooks/']").await;
    click(&c, "#reveal").await;
    let before = wait_text(&c, "#secrets", |s| s.contains("current: whsec_")).await;
    click(&c, "#rotate").await;
    let after = wait_text(&c, "#secrets", |s| s.contains("Rotated")).await;
    let old = before.trim().trim_start_matches("current: ").to_owned();
    assert!(
        after.contains(&format!("previous: {old}")),
        "{before} -> {after}"
    );
    assert!(!after.contains(&format!("current: {old}")), "{after}");

    // Recover: the count first, then the real run.
    receiver.script((0..4).map(|_| Reply::status(503).body("down")));
    let lost = delivered(app, t, "exhausted").await;
    click(&c, "#recover-count").await;
    wait_text(&c, "#recover-result", |s| {
        s.contains("1 failed delivery since then will be sent again")
    })
    .await;
    c.set_window_size(1280, 1900).await.expect("tall window");
    js(&c, "window.scrollTo(0, 0); return true;").await;
    screenshot(&c, "webhook-laptop").await;
    c.set_window_size(1280, 900).await.expect("laptop size");
    click(&c, "#recover-confirm").await;
    wait_text(&c, "#recover-result", |s| {
        s.contains("Re-queued 1 delivery")
    })
    .await;
    app.wait_delivery(t, &lost, Duration::from_secs(15), |d| {
        d["status"] == "succeeded"
    })
    .await;

    // Filters: failed deliveries of the type, then none of a state never reached.
    find(&c, "#filter-status")
        .await
        .select_by_value("cancelled")
        .await
        .expect("select");
    click(&c, "#filters button[type='submit']").await;
    wait_text(&c, "#deliveries", |s| s.contains("No deliveries match")).await;

    // The list with health, on a laptop and on a phone.
    click(&c, "#main a[href='/portal']").await;
    wait_text(&c, "#webhooks .health", |s| s.contains("succeeded")).await;
    screenshot(&c, "list-laptop").await;
    c.set_window_size(390, 844).await.expect("phone size");
    wait_text(&c, "#webhooks .health", |s| s.contains("succeeded")).await;
    screenshot(&c, "list-phone").await;

    for u in requested_urls(&c).await {
        assert!(!u.contains(&token), "the token was in a requested URL: {u}");
        assert!(!u.contains("token="), "{u}");
    }
    c.close().await.expect("close the browser");
    token
}

/// A read-only session sees everything and no control that writes.
async fn read_only_flow(driver: &Driver, app: &TestApp, t: &Tenant) -> String {
    let (url, token) = session(app, t, true).await;
    let c = driver.browser("read-only", 1280, 900).await;
    c.goto(&url).await.expect("open the link");
    find(&c, "#webhooks").await;
    assert!(find(&c, "#mode").await.is_displayed().await.expect("shown"));
    assert!(
        !exists(&c, "#new-webhook").await,
        "read-only sees Add webhook"
    );
    click(&c, "#webhooks a").await;
    find(&c, "#webhook-url").await;
    wait_text(&c, "#deliveries", |s| s.contains("succeeded")).await;
    for control in [
        "#edit",
        "#toggle",
        "#delete",
        "#reveal",
        "#rotate",
        "#send-test",
        "#recover-count",
    ] {
        assert!(!exists(&c, control).await, "read-only sees {control}");
    }
    click(&c, "#deliveries tbody a").await;
    find(&c, "#attempts").await;
    assert!(!exists(&c, "#resend").await, "read-only sees Resend");
    // Typing a write route's page by hand shows nothing to submit.
    c.goto(&format!("{}/portal/webhooks/new", app.base))
        .await
        .expect("go");
    wait_text(&c, "#fatal", |s| s.contains("Not found")).await;
    assert!(!exists(&c, "#webhook-form").await);
    c.close().await.expect("close the browser");
    token
}

/// Expired and revoked links say so instead of showing a blank page.
async fn dead_links_flow(driver: &Driver, app: &TestApp, t: &Tenant) -> Vec<String> {
    let expired = "hbp_expired-link-for-the-browser-test".to_owned();
    let store = &app.app.as_ref().expect("running").store;
    store
        .create_portal_session(PortalSession {
            hash: hash_key(&expired),
            tenant: t.id.clone(),
            read_only: false,
            created_at: now_ms() - 7_200_000,
            expires_at: now_ms() - 1000,
        })
        .await
        .expect("stored");
    let c = driver.browser("dead", 1280, 900).await;
    c.goto(&format!("{}/portal#token={expired}", app.base))
        .await
        .expect("open");
    wait_text(&c, "#fatal", |s| {
        s.contains("no longer valid") && s.contains("expired")
    })
    .await;
    screenshot(&c, "expired-laptop").await;

    let (url, revoked) = session(app, t, false).await;
    let (s, _) = app
        .as_tenant(t, Method::DELETE, "/v1/portal/sessions", None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // Leave the page first: a link differing only in its fragment would not reload.
    c.goto(&format!("{}/healthz", app.base))
        .await
        .expect("leave");
    c.goto(&url).await.expect("open");
    wait_text(&c, "#fatal", |s| s.contains("revoked")).await;
    // Without any token the page explains how to get in.
    js(&c, "sessionStorage.clear(); return true;").await;
    c.goto(&format!("{}/healthz", app.base))
        .await
        .expect("leave");
    c.goto(&format!("{}/portal", app.base)).await.expect("open");
    wait_text(&c, "#fatal", |s| s.contains("No portal session")).await;
    c.close().await.expect("close the browser");
    vec![expired, revoked]
}
