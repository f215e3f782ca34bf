//! Hostile input to the API: a table of malformed and malicious requests, each of
//! which must get the right 4xx with a clear reason, leave the server up, and leave
//! the store exactly as it was (compared through the API, since redb commits lazily).
//! Raw-socket cases (10 MB bodies, smuggling headers, slowloris) are in
//! `hostile_raw.rs`.

use http::Method;
use serde_json::{Value, json};

use crate::helpers::{Tenant, TestApp};

/// Who a row authenticates as.
#[derive(Clone, Copy, Debug)]
enum Auth {
    Tenant,
    Admin,
    None,
    Raw(&'static str),
}

/// One hostile request and what it must get back.
struct Row {
    method: Method,
    path: String,
    auth: Auth,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    /// Must appear in the JSON error (message or a reason).
    needle: String,
}

impl Row {
    fn new(method: Method, path: &str, body: impl Into<Vec<u8>>, status: u16, needle: &str) -> Row {
        let body = body.into();
        let headers = if body.is_empty() {
            Vec::new()
        } else {
            vec![("content-type", "application/json".to_owned())]
        };
        Row {
            method,
            path: path.to_owned(),
            auth: Auth::Tenant,
            headers,
            body,
            status,
            needle: needle.to_owned(),
        }
    }

    fn auth(mut self, auth: Auth) -> Row {
        self.auth = auth;
        self
    }

    fn header(mut self, k: &'static str, v: &str) -> Row {
        self.headers.retain(|(name, _)| *name != k);
        self.headers.push((k, v.to_owned()));
        self
    }

    fn describe(&self) -> String {
        let body = String::from_utf8_lossy(&self.body);
        let body: String = body.chars().take(120).collect();
        format!("{} {} {body}", self.method, self.path)
    }
}

fn post(path: &str, body: &str, status: u16, needle: &str) -> Row {
    Row::new(Method::POST, path, body, status, needle)
}

fn get(path: &str, status: u16, needle: &str) -> Row {
    Row::new(Method::GET, path, "", status, needle)
}

/// A webhook registration that is valid except for `extra`, merged over it.
pub(crate) fn wh(extra: Value) -> String {
    let mut base = json!({"url": "https://example.com/hook", "event_types": ["shift.created"]});
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    base.to_string()
}

fn wh_url(url: &str) -> String {
    wh(json!({"url": url}))
}

/// Standard base64 of `n` bytes, as a `whsec_` secret.
fn secret_of(n: usize) -> String {
    use base64::Engine as _;
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(vec![7u8; n])
    )
}

/// Everything a tenant and the admin can read: compared before and after.
pub(crate) async fn snapshot(
    app: &TestApp,
    t: &Tenant,
    webhook_id: &str,
    event_id: &str,
) -> Vec<Value> {
    let mut out = Vec::new();
    for path in ["/v1/tenants", "/v1/api-keys"] {
        let (s, v) = app.admin(Method::GET, path, None).await;
        assert_eq!(s, 200, "{path}: {v}");
        out.push(v);
    }
    let paths = [
        "/v1/webhooks".to_owned(),
        format!("/v1/webhooks/{webhook_id}"),
        format!("/v1/webhooks/{webhook_id}/secrets"),
        format!("/v1/webhooks/{webhook_id}/deliveries"),
        "/v1/event-types".to_owned(),
        "/v1/events".to_owned(),
        format!("/v1/events/{event_id}"),
    ];
    for path in paths {
        let (s, v) = app.as_tenant(t, Method::GET, &path, None).await;
        assert_eq!(s, 200, "{path}: {v}");
        out.push(v);
    }
    out
}

/// A hookbox that refuses http and every private address, with one tenant, one
/// webhook and one event (which matches no webhook, so nothing is delivered).
pub(crate) async fn setup() -> (TestApp, Tenant, String, String) {
    let app = TestApp::spawn_with(|cfg| {
        cfg.security.require_https = true;
        cfg.security.allow_networks = vec![];
    })
    .await;
    let t = app.tenant("hostile").await;
    let w = app
        .webhook(
            &t,
            json!({
                "url": "https://example.com/hook",
                "event_types": ["PATIENT_CREATED"],
                "headers": {"X-Api-Key": "header-secret"},
            }),
        )
        .await;
    let wid = w["id"].as_str().expect("webhook id").to_owned();
    let e = app
        .event(&t, json!({"type": "shift.created", "data": {"n": 1}}))
        .await;
    assert_eq!(e["deliveries"], 0, "{e}");
    let eid = e["id"].as_str().expect("event id").to_owned();
    (app, t, wid, eid)
}

fn table(t: &Tenant, wid: &str) -> Vec<Row> {
    let wp = format!("/v1/webhooks/{wid}");
    let rot = format!("{wp}/secrets/rotate");
    let ev = "/v1/events";
    let batch = "/v1/events/batch";
    let whs = "/v1/webhooks";
    let deep_arr = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_obj = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    let oauth = |extra: Value| {
        let mut o = json!({"token_url": "https://auth.example.com/token", "client_id": "c", "client_secret": "s"});
        if let (Some(b), Some(e)) = (o.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        wh(json!({"oauth": o}))
    };
    let mut rows = vec![
        // --- Bad JSON.
        post(whs, "{", 400, "invalid JSON"),
        post(whs, "{\"url\": }", 400, "invalid JSON"),
        post(whs, "not json", 400, "invalid JSON"),
        post(
            whs,
            &format!("{} trailing", wh(json!({}))),
            400,
            "invalid JSON",
        ),
        post(whs, "[]", 400, "request body must be a JSON object"),
        post(whs, "\"https://example.com\"", 400, "must be a JSON object"),
        post(whs, "null", 400, "must be a JSON object"),
        post(whs, "\u{feff}{}", 400, "invalid JSON"),
        post(
            whs,
            "{\"url\": \"\\ud800\", \"event_types\": [\"*\"]}",
            400,
            "invalid JSON",
        ),
        post(whs, "{'url': 'https://example.com'}", 400, "invalid JSON"),
        post(
            whs,
            "{\"url\": \"https://example.com/hook\", \"event_types\": [\"*\"],}",
            400,
            "invalid JSON",
        ),
        Row::new(
            Method::POST,
            whs,
            b"{\"url\": \"\xff\xfe\"}".to_vec(),
            400,
            "invalid JSON",
        ),
        post(whs, "", 400, "url is required"),
        post(ev, "", 415, "application/json"),
        post(whs, &wh(json!({})), 415, "application/json").header("content-type", "text/plain"),
        post(
            ev,
            "{\"type\":\"shift.created\",\"data\":1}",
            415,
            "application/json",
        )
        .header("content-type", "application/x-www-form-urlencoded"),
        // --- Deeply nested JSON: serde_json's recursion limit answers 400.
        post(whs, &deep_arr, 400, "recursion limit"),
        post(whs, &deep_obj, 400, "recursion limit"),
        // Event data is kept raw (not parsed), so ingest bounds its depth itself.
        post(
            ev,
            &format!("{{\"type\":\"shift.created\",\"data\":{deep_arr}}}"),
            400,
            "more than 100 levels deep",
        ),
        post(
            ev,
            &format!("{{\"type\":\"shift.created\",\"data\":{deep_obj}}}"),
            400,
            "more than 100 levels deep",
        ),
        post(
            batch,
            &format!("[{{\"type\":\"shift.created\",\"data\":{deep_arr}}}]"),
            400,
            "events[0]: data must not nest",
        ),
        post(
            batch,
            &deep_arr,
            400,
            "events[0]: event must be a JSON object",
        ),
        post(&rot, &deep_obj, 400, "recursion limit"),
        // --- Wrong types.
        post(whs, &wh(json!({"url": 123})), 400, "url must be a string"),
        post(whs, &wh(json!({"url": null})), 400, "url must not be null"),
        post(
            whs,
            &wh(json!({"url": ["https://example.com"]})),
            400,
            "url must be a string",
        ),
        post(
            whs,
            &wh(json!({"event_types": "shift.created"})),
            400,
            "event_types must be an array",
        ),
        post(
            whs,
            &wh(json!({"event_types": []})),
            400,
            "at least 1 element",
        ),
        post(
            whs,
            &wh(json!({"event_types": [1]})),
            400,
            "event_types[0] must be a string",
        ),
        post(
            whs,
            &wh(json!({"headers": ["X-A", "b"]})),
            400,
            "headers must be an object",
        ),
        post(
            whs,
            &wh(json!({"headers": {"X-A": 1}})),
            400,
            "must be a string",
        ),
        post(
            whs,
            &wh(json!({"enabled": "true"})),
            400,
            "enabled must be a boolean",
        ),
        post(
            whs,
            &wh(json!({"metadata": {"a": 1}})),
            400,
            "must be a string",
        ),
        post(
            whs,
            &wh(json!({"metadata": "a=b"})),
            400,
            "metadata must be an object",
        ),
        post(
            whs,
            &wh(json!({"channels": "P-1"})),
            400,
            "channels must be an array",
        ),
        post(
            whs,
            &wh(json!({"channels": [""]})),
            400,
            "must not be empty",
        ),
        post(
            whs,
            &wh(json!({"description": 5})),
            400,
            "description must be a string",
        ),
        post(
            whs,
            &wh(json!({"notification_email": "not-an-email"})),
            400,
            "not a valid email",
        ),
        post(
            whs,
            &wh(json!({"notification_email": "a@b.co\r\nBcc: x@y.z"})),
            400,
            "not a valid email",
        ),
        post(
            whs,
            &wh(json!({"urll": "https://example.com"})),
            400,
            "unknown field \\\"urll\\\"",
        ),
        post(
            whs,
            &wh(json!({"subscriptions": ["*"]})),
            400,
            "are the same field",
        ),
        post(
            whs,
            &wh(json!({"oauth": "client_credentials"})),
            400,
            "oauth must be a JSON object",
        ),
        post(
            whs,
            &oauth(json!({"client_secret": null})),
            400,
            "oauth.client_secret is required",
        ),
        post(
            whs,
            &oauth(json!({"client_secret": "****"})),
            400,
            "is the mask",
        ),
        post(
            whs,
            &wh(json!({"headers": {"X-A": "****"}})),
            400,
            "is the mask",
        ),
        post(
            whs,
            &oauth(json!({"grant": "password"})),
            400,
            "unknown field \\\"oauth.grant\\\"",
        ),
        // --- Huge and out-of-range numbers.
        post(
            whs,
            "{\"url\":\"https://example.com/hook\",\"event_types\":[\"*\"],\"rate_limit_per_second\":1e400}",
            400,
            "invalid JSON",
        ),
        post(
            whs,
            "{\"url\":\"https://example.com/hook\",\"event_types\":[\"*\"],\"rate_limit_per_second\":18446744073709551616}",
            400,
            "rate_limit_per_second must be an integer",
        ),
        post(
            whs,
            &wh(json!({"rate_limit_per_second": 4_294_967_296u64})),
            400,
            "rate_limit_per_second must be an integer",
        ),
        post(
            whs,
            &wh(json!({"rate_limit_per_second": 0})),
            400,
            "between 1 and",
        ),
        post(
            whs,
            &wh(json!({"rate_limit_per_second": -1})),
            400,
            "between 1 and",
        ),
        post(
            whs,
            &wh(json!({"rate_limit_per_second": 1.5})),
            400,
            "between 1 and",
        ),
        post(
            whs,
            &wh(json!({"rate_limit_per_second": "10"})),
            400,
            "between 1 and",
        ),
        post(
            &rot,
            "{\"grace_seconds\": 18446744073709551616}",
            400,
            "grace_seconds must be an integer",
        ),
        post(&rot, "{\"grace_seconds\": 1e400}", 400, "invalid JSON"),
        post(
            &rot,
            "{\"grace_seconds\": -1}",
            400,
            "grace_seconds must be an integer",
        ),
        post(
            &rot,
            "{\"grace_seconds\": 604801}",
            400,
            "grace_seconds must be an integer",
        ),
        post(
            &rot,
            "{\"grace_seconds\": \"60\"}",
            400,
            "grace_seconds must be an integer",
        ),
        get(
            "/v1/webhooks?limit=99999999999999999999999",
            400,
            "limit must be an integer",
        ),
        get("/v1/webhooks?limit=0", 400, "limit must be an integer"),
        get("/v1/events?limit=-1", 400, "limit must be an integer"),
        get(
            "/v1/events?since=yesterday",
            400,
            "since must be an RFC 3339",
        ),
        get(
            "/v1/events?since=99999-01-01T00:00:00Z",
            400,
            "since must be an RFC 3339",
        ),
        get(
            &format!("{wp}/deliveries?status=delivered"),
            400,
            "status must be one of",
        ),
        post(
            &format!("{wp}/recover"),
            "{\"since\": \"2999-01-01T00:00:00Z\"}",
            400,
            "must not be in the future",
        ),
        post(
            &format!("{wp}/recover"),
            "{\"since\": 0}",
            400,
            "since must be a string",
        ),
        post(&format!("{wp}/recover"), "{}", 400, "since is required"),
        // --- Header injection and reserved header names (custom webhook headers).
        post(
            whs,
            &wh(json!({"headers": {"X-A": "a\r\nX-Evil: 1"}})),
            400,
            "must not contain CR, LF or NUL",
        ),
        post(
            whs,
            &wh(json!({"headers": {"X-A": "a\nb"}})),
            400,
            "must not contain CR, LF or NUL",
        ),
        post(
            whs,
            &wh(json!({"headers": {"X-A": "a\rb"}})),
            400,
            "must not contain CR, LF or NUL",
        ),
        post(
            whs,
            &wh(json!({"headers": {"X-A": "a\u{0}b"}})),
            400,
            "must not contain CR, LF or NUL",
        ),
        post(
            whs,
            &wh(json!({"headers": {"X-A": "a\u{7}b"}})),
            400,
            "control characters",
        ),
        post(
            whs,
            &wh(json!({"headers": {"X-A\r\nX-Evil": "1"}})),
            400,
            "not a valid token",
        ),
        post(
            whs,
            &wh(json!({"headers": {"X A": "1"}})),
            400,
            "not a valid token",
        ),
        post(
            whs,
            &wh(json!({"headers": {"X-A:": "1"}})),
            400,
            "not a valid token",
        ),
        post(
            whs,
            &wh(json!({"headers": {"": "1"}})),
            400,
            "not a valid token",
        ),
        post(
            whs,
            &wh(json!({"headers": {"X-\u{e9}": "1"}})),
            400,
            "not a valid token",
        ),
        post(
            whs,
            &wh(json!({"headers": {"X-A": "x".repeat(5000)}})),
            400,
            "at most 4096 bytes",
        ),
        post(
            whs,
            &wh(json!({"headers": {"Content-Type": "text/plain"}})),
            400,
            "is reserved",
        ),
        post(
            whs,
            &wh(json!({"headers": {"content-length": "0"}})),
            400,
            "is reserved",
        ),
        post(
            whs,
            &wh(json!({"headers": {"HOST": "internal"}})),
            400,
            "is reserved",
        ),
        post(
            whs,
            &wh(json!({"headers": {"Transfer-Encoding": "chunked"}})),
            400,
            "is reserved",
        ),
        post(
            whs,
            &wh(json!({"headers": {"Connection": "upgrade"}})),
            400,
            "is reserved",
        ),
        post(
            whs,
            &wh(json!({"headers": {"webhook-id": "x"}})),
            400,
            "is reserved",
        ),
        post(
            whs,
            &wh(json!({"headers": {"Webhook-Signature": "v1,x"}})),
            400,
            "is reserved",
        ),
        post(
            whs,
            &wh(json!({"headers": {"webhook-timestamp": "1"}})),
            400,
            "is reserved",
        ),
        post(
            whs,
            &wh(json!({"headers": {"User-Agent": "x"}})),
            400,
            "is reserved",
        ),
        post(
            whs,
            &wh(json!({"headers": {"X-A": "1", "x-a": "2"}})),
            400,
            "more than once",
        ),
        post(
            whs,
            &wh(
                json!({"headers": {"Authorization": "Bearer x"}, "oauth": {"token_url": "https://auth.example.com/t", "client_id": "c", "client_secret": "s"}}),
            ),
            400,
            "reserved when oauth is set",
        ),
        post(
            whs,
            &oauth(json!({"headers": {"Content-Length": "1"}})),
            400,
            "oauth header \\\"Content-Length\\\" is reserved",
        ),
        post(
            whs,
            &oauth(json!({"headers": {"X-A": "a\r\nb"}})),
            400,
            "CR, LF or NUL",
        ),
        post(
            whs,
            &wh(
                json!({"headers": (0..40).map(|i| (format!("X-H{i}"), json!("v"))).collect::<serde_json::Map<_, _>>()}),
            ),
            400,
            "no more than 32",
        ),
        // --- Unicode tricks and malformed URLs. http::Uri refuses every non-ASCII
        // URL, so fullwidth dots and IDN homoglyphs are 400 "not a valid URL";
        // punycode (xn--) names are ordinary names, checked after DNS at connect.
        post(
            whs,
            &wh_url(
                "https://\u{ff11}\u{ff12}\u{ff17}\u{ff0e}\u{ff10}\u{ff0e}\u{ff10}\u{ff0e}\u{ff11}/",
            ),
            400,
            "not a valid URL",
        ),
        post(
            whs,
            &wh_url("https://127\u{3002}0\u{3002}0\u{3002}1/"),
            400,
            "not a valid URL",
        ),
        post(
            whs,
            &wh_url("https://ex\u{430}mple.com/"),
            400,
            "not a valid URL",
        ),
        post(
            whs,
            &wh_url("https://example.com\u{202e}/"),
            400,
            "not a valid URL",
        ),
        post(
            whs,
            &wh_url("https://exa\u{200b}mple.com/"),
            400,
            "not a valid URL",
        ),
        post(
            whs,
            &wh_url("https://example.com\\@127.0.0.1/"),
            400,
            "not a valid URL",
        ),
        post(
            whs,
            &wh_url("https://example.com/a b"),
            400,
            "not a valid URL",
        ),
        post(
            whs,
            &wh_url("https://user:pw@example.com/"),
            400,
            "must not contain user credentials",
        ),
        post(
            whs,
            &wh_url("https://127.0.0.1@example.com/"),
            400,
            "must not contain user credentials",
        ),
        post(
            whs,
            &wh_url("https://example.com/#frag"),
            400,
            "must not contain a fragment",
        ),
        post(
            whs,
            &wh_url("ftp://example.com/"),
            400,
            "must use http or https",
        ),
        post(whs, &wh_url("javascript:alert(1)"), 400, "url"),
        post(whs, &wh_url("file:///etc/passwd"), 400, "url"),
        post(whs, &wh_url("//example.com/hook"), 400, "url"),
        post(whs, &wh_url("/relative"), 400, "url"),
        post(whs, &wh_url("https://"), 400, "url"),
        post(whs, &wh_url("https://:443/"), 400, "must have a host"),
        post(
            whs,
            &wh_url("https://example.com:0/"),
            400,
            "port must be between 1 and 65535",
        ),
        post(
            whs,
            &wh_url("https://example.com:99999/"),
            400,
            "port must be between 1 and 65535",
        ),
        post(
            whs,
            &wh_url(&format!("https://example.com/{}", "a".repeat(3000))),
            400,
            "at most 2048",
        ),
        post(
            whs,
            &wh_url("http://example.com/hook"),
            400,
            "url must be https",
        ),
        post(whs, &wh_url("https://127.0.0.1%2e/"), 400, "url"),
        post(whs, &wh_url("https://%31%32%37.0.0.1/"), 400, "url"),
    ];
    // --- SSRF: private and metadata addresses in every notation.
    for host in [
        "127.0.0.1",
        "127.0.0.1.",
        "2130706433",
        "0x7f000001",
        "0x7F.0x0.0x0.0x1",
        "0177.0.0.1",
        "017700000001",
        "127.1",
        "0x7f.1",
        "[::1]",
        "[0:0:0:0:0:0:0:1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::ffff:169.254.169.254]",
        "[::127.0.0.1]",
        "[64:ff9b::7f00:1]",
        "[2002:7f00:1::]",
        "169.254.169.254",
        "2852039166",
        "0xa9fea9fe",
        "[fd00:ec2::254]",
        "0.0.0.0",
        "0",
        "[::]",
        "[fe80::1]",
        "100.64.0.1",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "224.0.0.1",
        "255.255.255.255",
        "[fc00::1]",
        "[ff02::1]",
        "localhost",
        "LOCALHOST.",
        "api.localhost",
    ] {
        rows.push(post(
            whs,
            &wh_url(&format!("https://{host}:8443/hook")),
            400,
            "is not allowed",
        ));
    }
    rows.extend([
        post(whs, &oauth(json!({"token_url": "https://169.254.169.254/token"})), 400, "cloud metadata"),
        post(whs, &oauth(json!({"token_url": "https://[::ffff:a9fe:a9fe]/token"})), 400, "is not allowed"),
        post(whs, &oauth(json!({"token_url": "http://auth.example.com/token"})), 400, "must be https"),
        Row::new(Method::PATCH, &wp, json!({"url": "https://10.1.2.3/"}).to_string(), 400, "private address"),
        Row::new(Method::PATCH, &wp, json!({"url": "https://[::1]/"}).to_string(), 400, "loopback"),
        // --- Too many secrets, bad secret encodings.
        post(whs, &wh(json!({"secrets": [secret_of(32), secret_of(33), secret_of(34)]})), 400, "no more than 2"),
        post(whs, &wh(json!({"secrets": vec![secret_of(32); 1000]})), 400, "no more than 2"),
        post(whs, &wh(json!({"secrets": secret_of(32)})), 400, "secrets must be an array"),
        post(whs, &wh(json!({"secrets": [32]})), 400, "secrets[0] must be a string"),
        post(whs, &wh(json!({"secrets": ["nope"]})), 400, "must start with \\\"whsec_\\\""),
        post(whs, &wh(json!({"secrets": ["whsec_"]})), 400, "must decode to 24 to 64 bytes"),
        post(whs, &wh(json!({"secrets": ["whsec_!!!!"]})), 400, "standard base64"),
        post(whs, &wh(json!({"secrets": ["whsec_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_"]})), 400, "standard base64"),
        post(whs, &wh(json!({"secrets": [secret_of(32).trim_end_matches('=')]})), 400, "standard base64"),
        post(whs, &wh(json!({"secrets": [format!(" {}", secret_of(32))]})), 400, "whsec_"),
        post(whs, &wh(json!({"secrets": [format!("{} ", secret_of(32))]})), 400, "standard base64"),
        post(whs, &wh(json!({"secrets": [secret_of(10)]})), 400, "not 10"),
        post(whs, &wh(json!({"secrets": [secret_of(100)]})), 400, "not 100"),
        post(whs, &wh(json!({"secrets": [secret_of(32), secret_of(32)]})), 400, "same secret twice"),
        post(&rot, &json!({"secret": "whsec_short"}).to_string(), 400, "secret must"),
        post(&rot, &json!({"secret": 5}).to_string(), 400, "secret must be a string"),
        post(&rot, &json!({"secrets": [secret_of(32)]}).to_string(), 400, "unknown field"),
        Row::new(Method::PATCH, &wp, json!({"secrets": [secret_of(32)]}).to_string(), 400, "secrets/rotate"),
        // --- Unknown event types and bad filters.
        post(whs, &wh(json!({"event_types": ["NOPE"]})), 400, "event type \\\"NOPE\\\" is not in the catalogue"),
        post(whs, &wh(json!({"event_types": ["shift*"]})), 400, "may only follow"),
        post(whs, &wh(json!({"event_types": [".*"]})), 400, "non-empty prefix"),
        post(whs, &wh(json!({"event_types": ["a/b.*"]})), 400, "may only contain"),
        post(whs, &wh(json!({"event_types": vec!["*"; 101]})), 400, "no more than 100"),
        post(ev, &json!({"type": "NOPE", "data": {}}).to_string(), 400, "not in the catalogue"),
        post(ev, &json!({"type": "hookbox.webhook.disabled", "data": {}}).to_string(), 400, "not in the catalogue"),
        post(ev, &json!({"type": "", "data": {}}).to_string(), 400, "type must not be empty"),
        post(ev, &json!({"type": "x".repeat(200), "data": {}}).to_string(), 400, "at most 128"),
        post(batch, &json!({"events": [{"type": "shift.created", "data": 1}, {"type": "NOPE", "data": 1}]}).to_string(), 400, "events[1]: event type \\\"NOPE\\\""),
        post(&format!("{wp}/test"), &json!({"event_type": "NOPE"}).to_string(), 400, "not in the catalogue"),
        post("/v1/event-types", &json!({"name": "all"}).to_string(), 400, "must not be \\\"all\\\""),
        post("/v1/event-types", &json!({"name": "hookbox.x"}).to_string(), 400, "reserved for operational events"),
        post("/v1/event-types", &json!({"name": "has space"}).to_string(), 400, "letters, digits"),
        post("/v1/event-types", &json!({"name": "../etc"}).to_string(), 400, "letters, digits"),
        post("/v1/event-types", &json!({"name": "x", "schema": "string"}).to_string(), 400, "JSON Schema"),
        post("/v1/event-types", &json!({"name": "shift.created"}).to_string(), 409, "already exists"),
        // --- Malformed events and batches.
        post(ev, "{}", 400, "type is required"),
        post(ev, &json!({"type": "shift.created"}).to_string(), 400, "data is required"),
        post(ev, "[\"shift.created\", {}]", 400, "must be a JSON object"),
        post(ev, &json!({"type": 5, "data": 1}).to_string(), 400, "invalid request"),
        post(ev, &json!({"type": "shift.created", "data": 1, "channels": "P"}).to_string(), 400, "invalid request"),
        post(ev, &json!({"type": "shift.created", "data": 1, "extra": 1}).to_string(), 400, "unknown field"),
        post(ev, &json!({"type": "shift.created", "data": 1, "idempotency_key": "k".repeat(300)}).to_string(), 400, "1 to 256 characters"),
        post(ev, &json!({"type": "shift.created", "data": 1, "idempotency_key": "a"}).to_string(), 400, "differs from the Idempotency-Key header")
            .header("idempotency-key", "b"),
        post(ev, &json!({"type": "shift.created", "data": 1}).to_string(), 400, "visible ASCII")
            .header("idempotency-key", "\u{e9}t\u{e9}"),
        post(ev, "{\"type\":\"shift.created\",\"type\":\"PATIENT_CREATED\",\"data\":1}", 400, "duplicate field"),
        post(batch, "[]", 400, "at least 1 element"),
        post(batch, "{\"events\": 5}", 400, "invalid"),
        post(batch, "\"x\"", 400, "must be {\\\"events\\\": [...]}"),
        post(batch, &json!(vec![json!({"type": "shift.created", "data": 1}); 1001]).to_string(), 400, "no more than 1000"),
        post(batch, &json!([{"type": "shift.created", "data": 1, "idempotency_key": "k"}, {"type": "shift.created", "data": 2, "idempotency_key": "k"}]).to_string(), 400, "repeats the one of events[0]"),
        // --- Path traversal and odd ids: 404, never another object.
        get("/v1/webhooks/..%2F..%2Fetc", 404, "not found"),
        get("/v1/webhooks/%00", 404, "not found"),
        get("/v1/webhooks/../tenants", 404, "not found"),
        get("/v1/webhooks/..", 404, "not found"),
        get(&format!("/v1/webhooks/{wid}%00"), 404, "not found"),
        get(&format!("/v1/webhooks/{wid}%20"), 404, "not found"),
        get(&format!("/v1/webhooks/{}", wid.to_lowercase()), 404, "not found"),
        get("/v1/webhooks/%E2%80%AE", 404, "not found"),
        get(&format!("/v1/webhooks/{}", "a".repeat(10_000)), 404, "not found"),
        get("/v1/events/..%2f..%2fetc%2fpasswd", 404, "not found"),
        get("/v1/deliveries/%2e%2e", 404, "not found"),
        Row::new(Method::DELETE, "/v1/webhooks/wh_%00", "", 404, "not found"),
        Row::new(Method::DELETE, "/v1/event-types/..%2F..%2Fshift.created", "", 404, "not found"),
        Row::new(Method::DELETE, "/v1/tenants/..%2F", "", 404, "not found").auth(Auth::Admin),
        Row::new(Method::DELETE, "/v1/api-keys/..%2F", "", 404, "not found").auth(Auth::Admin),
        post("/v1/deliveries/..%2F/retry", "", 404, "not found"),
        get("/v1/nope", 404, "not found"),
        get("/v2/webhooks", 404, "not found"),
        Row::new(Method::PUT, whs, wh(json!({})), 405, "allowed methods"),
        Row::new(Method::DELETE, whs, "", 405, "allowed methods"),
        Row::new(Method::PATCH, &format!("{wp}/secrets"), "{}", 405, "allowed methods"),
        // --- Authentication and tenancy.
        get(whs, 401, "unauthorized").auth(Auth::None),
        get(whs, 401, "unauthorized").auth(Auth::Raw("Bearer ")),
        get(whs, 401, "unauthorized").auth(Auth::Raw("Basic YWRtaW46YWRtaW4=")),
        get(whs, 401, "unauthorized").auth(Auth::Raw("Bearer hbk_not_a_key")),
        get(whs, 401, "unauthorized").auth(Auth::Raw("Bearer hbk_\u{ff41}")),
        post(whs, &wh(json!({})), 401, "unauthorized").auth(Auth::None),
        post("/v1/tenants", "{\"name\": \"x\"}", 403, "admin token"),
        get("/v1/api-keys", 403, "admin token"),
        get(whs, 403, "another tenant").header("x-tenant-id", "someone-else"),
        get(whs, 400, "X-Tenant-Id").auth(Auth::Admin),
        get(whs, 404, "tenant ../.. not found").auth(Auth::Admin).header("x-tenant-id", "../.."),
        get(whs, 404, "not found").auth(Auth::Admin).header("organization-id", "nobody"),
        post("/v1/tenants", &json!({"id": "../x", "name": "x"}).to_string(), 400, "letters, digits").auth(Auth::Admin),
        post("/v1/tenants", &json!({"id": "t".repeat(65), "name": "x"}).to_string(), 400, "1 to 64").auth(Auth::Admin),
        post("/v1/tenants", &json!({"id": "t\u{e9}", "name": "x"}).to_string(), 400, "letters, digits").auth(Auth::Admin),
        post("/v1/tenants", &json!({"name": "   "}).to_string(), 400, "name must not be empty").auth(Auth::Admin),
        post("/v1/tenants", &json!({"name": "n".repeat(201)}).to_string(), 400, "at most 200").auth(Auth::Admin),
        post("/v1/tenants", &json!({"id": t.id, "name": "dup"}).to_string(), 409, "already exists").auth(Auth::Admin),
        post("/v1/api-keys", &json!({"tenant": t.id, "name": "k", "scopes": ["admin"]}).to_string(), 400, "scope \\\"admin\\\" is not one of").auth(Auth::Admin),
        post("/v1/api-keys", &json!({"tenant": t.id, "name": "k", "scopes": []}).to_string(), 400, "at least 1").auth(Auth::Admin),
        post("/v1/api-keys", &json!({"tenant": "nobody", "name": "k", "scopes": ["events:read"]}).to_string(), 400, "does not exist").auth(Auth::Admin),
    ]);
    rows
}

async fn run(app: &TestApp, t: &Tenant, row: &Row) -> Result<(), String> {
    let auth_value = match row.auth {
        Auth::Tenant => Some(format!("Bearer {}", t.key)),
        Auth::Admin => Some(format!("Bearer {}", app.admin)),
        Auth::None => None,
        Auth::Raw(v) => Some(v.to_owned()),
    };
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(a) = &auth_value {
        headers.push(("authorization", a));
    }
    for (k, v) in &row.headers {
        headers.push((k, v));
    }
    let (status, body) = app
        .raw(row.method.clone(), &row.path, &headers, row.body.clone())
        .await;
    let text = body.to_string();
    let message = body["error"]["message"].as_str().unwrap_or("");
    if status.as_u16() != row.status || !text.contains(&row.needle) || message.is_empty() {
        return Err(format!(
            "{}\n    want {} containing {:?}\n    got  {status} {}",
            row.describe(),
            row.status,
            row.needle,
            text.chars().take(400).collect::<String>()
        ));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_a_clear_4xx_and_change_nothing() {
    let (app, t, wid, eid) = setup().await;
    let before = snapshot(&app, &t, &wid, &eid).await;
    let rows = table(&t, &wid);
    assert!(rows.len() >= 100, "the table has {} rows", rows.len());
    let mut failures = Vec::new();
    for row in &rows {
        if let Err(f) = run(&app, &t, row).await {
            failures.push(f);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    let (s, _) = app.raw(Method::GET, "/healthz", &[], Vec::new()).await;
    assert_eq!(s, 200, "the server is still up");
    let after = snapshot(&app, &t, &wid, &eid).await;
    assert_eq!(before, after, "a hostile request changed the store");
}
