//! Issue 18 tests, the minor items: IPv6 zone ids refused at registration, control
//! characters refused in tenant names and idempotency keys, and `Retry-After` given
//! as an HTTP date honoured and clamped. Only loopback receivers; every wait has a
//! deadline.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::json;

use crate::helpers::TestApp;
use crate::receiver::{Reply, TestReceiver};
use crate::security::reasons;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn ipv6_zone_ids_are_refused_at_registration() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    for url in ["http://[fe80::1%25lo]/hook", "http://[fe80::1%lo]/hook"] {
        let (s, body) = app
            .as_tenant(
                &t,
                Method::POST,
                "/v1/webhooks",
                Some(json!({"url": url, "event_types": ["shift.created"]})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{url}: {body}");
        assert_eq!(
            reasons(&body),
            ["url host must not carry an IPv6 zone id (\"%\" inside the brackets)"],
            "{url}"
        );
    }
    let (_, list) = app.as_tenant(&t, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn control_characters_are_refused_in_tenant_names_and_idempotency_keys() {
    let app = TestApp::spawn().await;
    let (s, body) = app
        .admin(
            Method::POST,
            "/v1/tenants",
            Some(json!({"name": "Acme\r\nX-Injected: yes"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        reasons(&body),
        ["name must not contain control characters (such as CR or LF)"]
    );
    let (_, list) = app.admin(Method::GET, "/v1/tenants", None).await;
    assert_eq!(list["data"], json!([]), "nothing stored");

    let t = app.tenant("acme").await;
    let (s, body) = app
        .as_tenant(
            &t,
            Method::POST,
            "/v1/events",
            Some(json!({"type": "shift.created", "data": {}, "idempotency_key": "k\r\nX: y"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        reasons(&body),
        ["idempotency_key must not contain control characters (such as CR or LF)"]
    );
    let (s, body) = app
        .as_tenant(
            &t,
            Method::POST,
            "/v1/events/batch",
            Some(json!([{"type": "shift.created", "data": {}, "idempotency_key": "a\nb"}])),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    // The header path: HTTP already refuses CR and LF; a tab is the one control
    // character a header value may carry, and it is refused too.
    let (s, body) = app
        .call(
            Method::POST,
            "/v1/events",
            &t.key,
            &[("idempotency-key", "a\tb")],
            Some(json!({"type": "shift.created", "data": {}})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        reasons(&body),
        ["Idempotency-Key header must not contain control characters (such as CR or LF)"]
    );
    let (_, list) = app.as_tenant(&t, Method::GET, "/v1/events", None).await;
    assert_eq!(list["data"], json!([]), "nothing stored");
}

fn seconds_from_now(secs: i64) -> jiff::Timestamp {
    jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(secs))
        .expect("in range")
}

/// The IMF-fixdate of `at` (whole seconds, as HTTP dates are).
fn http_date(at: jiff::Timestamp) -> String {
    jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&at)
        .expect("printable")
}

/// The obsolete asctime form of an HTTP date (`Sun Nov  6 08:49:37 1994`), which
/// RFC 9110 still requires recipients to accept.
fn asctime_in(secs: i64) -> String {
    seconds_from_now(secs)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%a %b %e %H:%M:%S %Y")
        .to_string()
}

#[tokio::test]
async fn a_retry_after_http_date_is_honoured_and_clamped() {
    // Default retry_after_max (1 h): a date 3 s ahead delays the retry (the
    // schedule alone would retry after 20 ms).
    let app = TestApp::spawn().await;
    let rx = TestReceiver::start().await;
    let date = seconds_from_now(3);
    // The date has whole seconds: the instant it names, on the monotonic clock.
    let named = date.as_second() as f64 - jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
    let not_before = Instant::now() + Duration::from_secs_f64(named.max(0.0));
    rx.script([Reply::status(503).header("retry-after", &http_date(date))]);
    let t = app.tenant("acme").await;
    app.webhook(
        &t,
        json!({"url": rx.url("/hook"), "event_types": ["shift.created"]}),
    )
    .await;
    app.event(&t, json!({"type": "shift.created", "data": {}}))
        .await;
    let got = rx.wait_for(2, WAIT).await;
    // Not before the date (measured from the date, not from the first attempt: on a
    // loaded machine the first attempt may come late, which shortens the gap).
    assert!(
        got[1].at + Duration::from_millis(100) >= not_before,
        "retried {:?} before the date",
        not_before - got[1].at
    );

    // A date an hour ahead (in the obsolete asctime form) is clamped to
    // retry_after_max.
    let app = TestApp::spawn_with(|c| c.delivery.retry_after_max = Duration::from_secs(1)).await;
    let rx = TestReceiver::start().await;
    rx.script([Reply::status(503).header("retry-after", &asctime_in(3600))]);
    let t = app.tenant("acme").await;
    app.webhook(
        &t,
        json!({"url": rx.url("/hook"), "event_types": ["shift.created"]}),
    )
    .await;
    app.event(&t, json!({"type": "shift.created", "data": {}}))
        .await;
    let got = rx.wait_for(2, WAIT).await;
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(900) && gap < Duration::from_secs(5),
        "retried after {gap:?}"
    );
}
