//! Operability as an operator sees it: `/metrics` moves as events flow, parses as
//! Prometheus text and never carries a secret or a URL; every response carries a
//! request id; request and attempt logs carry ids and never secrets.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;

use crate::helpers::TestApp;
use crate::receiver::TestReceiver;

const WAIT: Duration = Duration::from_secs(10);
/// A secret-looking query parameter and header value on the webhook: neither may
/// appear in metrics or logs.
const QUERY_SECRET: &str = "sk_live_QUERYSECRET";
const HEADER_SECRET: &str = "hv_HEADERSECRET";

/// A GET with extra headers; returns status, headers and the body as text.
async fn get(
    app: &TestApp,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::builder()
        .method(Method::GET)
        .uri(format!("{}{path}", app.base));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::new())).expect("valid request");
    let resp = tokio::time::timeout(WAIT, client.request(req))
        .await
        .expect("answer in time")
        .expect("request succeeds");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// Scrapes `/metrics`, checks it is valid exposition text and returns it with its
/// samples (`name{labels}` -> value).
async fn scrape(app: &TestApp) -> (String, BTreeMap<String, f64>) {
    let (status, headers, text) = get(app, "/metrics", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/plain")),
        "{headers:?}"
    );
    let samples = parse_exposition(&text);
    (text, samples)
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Checks the Prometheus text format: every sample is `name{labels} value` with a
/// numeric value and well-formed labels, and belongs to a family that has one HELP
/// and one TYPE line before its first sample. Panics with the offending line.
fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    let mut help = BTreeSet::new();
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, doc) = rest.split_once(' ').unwrap_or((rest, ""));
            assert!(is_metric_name(name) && !doc.is_empty(), "bad HELP: {line}");
            assert!(help.insert(name.to_owned()), "second HELP: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "bad TYPE: {line}"
            );
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "second TYPE: {line}"
            );
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment: {line}");
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("non-numeric value: {line}")),
        };
        let name = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').expect("labels close");
                for pair in split_labels(labels) {
                    let (k, v) = pair.split_once('=').expect("label has =");
                    assert!(is_metric_name(k), "bad label name: {line}");
                    assert!(
                        v.len() >= 2 && v.starts_with('"') && v.ends_with('"'),
                        "unquoted label value: {line}"
                    );
                }
                name
            }
            None => series,
        };
        assert!(is_metric_name(name), "bad metric name: {line}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|s| name.strip_suffix(s))
            .find(|f| {
                types
                    .get(*f)
                    .is_some_and(|k| k == "histogram" || k == "summary")
            })
            .unwrap_or(name);
        assert!(
            help.contains(family) && types.contains_key(family),
            "sample without HELP and TYPE before it: {line}"
        );
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "duplicate series: {line}"
        );
    }
    samples
}

/// Splits `a="x",b="y,z"` at the commas outside quotes.
fn split_labels(labels: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in labels.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&labels[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < labels.len() {
        out.push(&labels[start..]);
    }
    out
}

fn sample(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_move_as_events_flow_and_never_show_secrets_or_urls() {
    let app = TestApp::spawn().await;
    let rx = TestReceiver::start().await;
    let t = app.tenant("metrics").await;
    let w = app
        .webhook(
            &t,
            json!({
                "url": rx.url(&format!("/hook?token={QUERY_SECRET}")),
                "event_types": ["PATIENT_CREATED"],
                "headers": {"X-Api-Key": HEADER_SECRET},
            }),
        )
        .await;
    let signing = w["secrets"][0].as_str().expect("secret").to_owned();

    let (_, before) = scrape(&app).await;
    const SUCCEEDED: &str = r#"hookbox_deliveries_total{outcome="succeeded"}"#;
    for i in 0..3 {
        app.event(&t, json!({"type": "PATIENT_CREATED", "data": {"i": i}}))
            .await;
    }
    rx.wait_for(3, WAIT).await;
    // The outcome counter moves when the recorder commits: poll hookbox's own view.
    let deadline = tokio::time::Instant::now() + WAIT;
    let (text, after) = loop {
        let (text, after) = scrape(&app).await;
        if sample(&after, SUCCEEDED) >= sample(&before, SUCCEEDED) + 3.0 {
            break (text, after);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "deliveries_total did not reach 3:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };

    assert_eq!(
        sample(
            &after,
            r#"hookbox_events_ingested_total{type="PATIENT_CREATED"}"#
        ),
        3.0,
        "{text}"
    );
    assert!(
        sample(&after, "hookbox_attempt_duration_seconds_count")
            >= sample(&before, "hookbox_attempt_duration_seconds_count") + 3.0,
        "{text}"
    );
    assert!(
        sample(
            &after,
            r#"hookbox_attempt_duration_seconds_bucket{le="+Inf"}"#
        ) == sample(&after, "hookbox_attempt_duration_seconds_count"),
        "{text}"
    );
    assert!(sample(&after, r#"hookbox_attempts_total{result="ok"}"#) >= 3.0);
    // The group-commit figures and the file size are the redb writer's own; on
    // PostgreSQL the database reports its commits itself.
    if crate::helpers::postgres_under_test() {
        assert!(!after.contains_key("hookbox_store_commits_total"), "{text}");
    } else {
        assert!(
            sample(&after, "hookbox_store_commits_total") > 0.0,
            "{text}"
        );
        assert!(
            sample(&after, "hookbox_store_commit_batch_size_sum")
                >= sample(&after, "hookbox_store_commit_batch_size_count"),
            "a commit carries at least one write:\n{text}"
        );
        assert!(sample(&after, "hookbox_store_file_bytes") > 0.0, "{text}");
    }
    for gauge in [
        "hookbox_in_flight_requests",
        "hookbox_due_backlog",
        "hookbox_oldest_due_age_seconds",
    ] {
        assert!(after.contains_key(gauge), "{gauge} missing:\n{text}");
    }

    for secret in [
        QUERY_SECRET,
        HEADER_SECRET,
        signing.as_str(),
        t.key.as_str(),
        app.admin.as_str(),
        rx.url("").as_str(),
        "/hook",
        "http://",
    ] {
        assert!(!text.contains(secret), "/metrics shows {secret:?}:\n{text}");
    }
}

#[tokio::test]
async fn responses_carry_a_request_id_and_echo_a_sane_given_one() {
    let app = TestApp::spawn().await;
    let id_of = |h: &HeaderMap| {
        h.get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .expect("x-request-id on the response")
    };

    let (_, h1, _) = get(&app, "/healthz", &[]).await;
    let (_, h2, _) = get(&app, "/healthz", &[]).await;
    let (a, b) = (id_of(&h1), id_of(&h2));
    assert!(a.starts_with("req_"), "{a}");
    assert_ne!(a, b, "each request gets its own id");

    // Echoed on errors too (401 before any body is read).
    let (status, h, _) = get(&app, "/v1/webhooks", &[("x-request-id", "trace-abc.123")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(id_of(&h), "trace-abc.123");

    let long = "a".repeat(65);
    for bad in ["has space", long.as_str(), "semi;colon"] {
        let (_, h, _) = get(&app, "/healthz", &[("x-request-id", bad)]).await;
        let id = id_of(&h);
        assert!(id.starts_with("req_"), "{bad:?} was adopted as {id:?}");
    }
}

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

// The default current-thread runtime runs the server's tasks on this thread, so a
// thread-local subscriber sees their request and attempt logs (and no other test's).
#[tokio::test]
async fn request_and_attempt_logs_carry_ids_but_no_secrets() {
    // tracing caches each callsite's interest process-wide, computed against the
    // registering thread's subscriber while only one dispatcher exists; a sibling test
    // without a subscriber would cache "never" and blind this one. A second live,
    // always-interested dispatcher makes the cache consult every dispatcher instead.
    let _anchor = tracing::Dispatch::new(tracing_subscriber::registry());
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("hookbox=debug"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = TestApp::spawn().await;
    let rx = TestReceiver::start().await;
    let t = app.tenant("logs").await;
    let w = app
        .webhook(
            &t,
            json!({
                "url": rx.url(&format!("/hook?token={QUERY_SECRET}")),
                "event_types": ["PATIENT_CREATED"],
                "headers": {"X-Api-Key": HEADER_SECRET},
            }),
        )
        .await;
    let wh = w["id"].as_str().expect("webhook id").to_owned();
    let signing = w["secrets"][0].as_str().expect("secret").to_owned();
    let e = app
        .event(&t, json!({"type": "PATIENT_CREATED", "data": {"n": 1}}))
        .await;
    let evt = e["id"].as_str().expect("event id").to_owned();
    let deliveries = app.deliveries_of(&t, &evt).await;
    let dlv = deliveries[0]["id"]
        .as_str()
        .expect("delivery id")
        .to_owned();
    app.wait_delivery(&t, &dlv, WAIT, |d| d["status"] == "succeeded")
        .await;
    let (_, _, _) = get(
        &app,
        "/v1/webhooks?limit=1&cursor=QUERYCURSOR",
        &[
            ("x-request-id", "trace-log-1"),
            ("authorization", &format!("Bearer {}", t.key)),
        ],
    )
    .await;

    let logs = capture.text();
    let line = logs
        .lines()
        .find(|l| l.contains("request_id=trace-log-1"))
        .unwrap_or_else(|| panic!("no request line for trace-log-1:\n{logs}"));
    assert!(line.contains("method=GET"), "{line}");
    assert!(line.contains(r#"path="/v1/webhooks""#), "{line}");
    assert!(line.contains("status=200"), "{line}");
    assert!(!line.contains("QUERYCURSOR"), "query string logged: {line}");

    let attempt = logs
        .lines()
        .find(|l| l.contains("attempt finished") && l.contains(&dlv))
        .unwrap_or_else(|| panic!("no attempt line for {dlv}:\n{logs}"));
    for field in [
        format!("delivery_id={dlv}"),
        format!("webhook_id={wh}"),
        format!("event_id={evt}"),
        "status=200".to_owned(),
    ] {
        assert!(attempt.contains(&field), "{field} missing: {attempt}");
    }

    for secret in [
        QUERY_SECRET,
        HEADER_SECRET,
        signing.as_str(),
        t.key.as_str(),
        app.admin.as_str(),
    ] {
        assert!(!logs.contains(secret), "the logs show {secret:?}:\n{logs}");
    }
}
