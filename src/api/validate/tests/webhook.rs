//! Webhook create bodies: every reason at once, the seeds' shapes, each field's rules.

use super::*;

#[test]
fn every_problem_is_reported_at_once() {
    let body = json!({
        "url": "http://example.com/hook",
        "event_types": ["IN_PROGRESS", "FOO"],
        "secrets": [S1, "whsec_!!!not-base64", S2],
        "headers": {"X-Ok": "line1\r\nline2", "webhook-id": "x", "bad name": "v"},
        "notification_email": "not an email",
        "colour": "blue",
        "rate_limit_per_second": 0,
        "enabled": "yes",
    });
    let r = reasons(webhook_create(&body, &ctx(true)));
    for want in [
        "url must be https",
        "event type \"FOO\" is not in the catalogue",
        "secrets must contain no more than 2 elements",
        "secrets[1] must be \"whsec_\" followed by standard base64",
        "header \"X-Ok\" value must not contain CR, LF or NUL",
        "header \"webhook-id\" is reserved",
        "header name \"bad name\" is not a valid token",
        "notification_email is not a valid email address",
        "unknown field \"colour\"",
        "rate_limit_per_second must be an integer between 1 and 100000",
        "enabled must be a boolean",
    ] {
        assert_has(&r, want);
    }
    assert_eq!(r.len(), 11, "{r:#?}");
    assert!(
        !r.iter().any(|x| x.contains("line1")),
        "header value echoed"
    );
}

#[test]
fn seed_000_oauth_configuration_and_headers() {
    let body = json!({
        "url": "https://yourdomain.com/webhook-endpoint",
        "event_types": ["IN_PROGRESS"],
        "description": "Provider Created Webhook",
        "headers": {"X-Api-Key": "abcdef123456"},
        "oauth_configuration": {
            "client_id": "my-client-id",
            "client_secret": "my-client-secret",
            "token_url": "https://auth.example.com/oauth/token",
            "scope": "resource.read",
            "headers": {"X-Domain-Name": "example.com"}
        }
    });
    let spec = webhook_create(&body, &ctx(true)).unwrap_or_else(|r| panic!("{r:?}"));
    assert_eq!(spec.url, "https://yourdomain.com/webhook-endpoint");
    assert_eq!(spec.event_types, ["IN_PROGRESS"]);
    assert_eq!(
        spec.description.as_deref(),
        Some("Provider Created Webhook")
    );
    assert_eq!(spec.headers["X-Api-Key"].expose(), "abcdef123456");
    let oauth = spec.oauth.unwrap_or_else(|| panic!("oauth missing"));
    assert_eq!(oauth.token_url, "https://auth.example.com/oauth/token");
    assert_eq!(oauth.client_id, "my-client-id");
    assert_eq!(oauth.client_secret.expose(), "my-client-secret");
    assert_eq!(oauth.scope.as_deref(), Some("resource.read"));
    assert_eq!(oauth.headers["X-Domain-Name"].expose(), "example.com");
    assert!(spec.secrets.is_empty() && spec.enabled);

    // scope and headers are nullable in the seed.
    let body = json!({
        "url": "https://a.example/h", "event_types": ["IN_PROGRESS"],
        "oauth_configuration": {"client_id": "c", "client_secret": "s",
            "token_url": "https://auth.example.com/t", "scope": null, "headers": null}
    });
    let spec = webhook_create(&body, &ctx(true)).unwrap_or_else(|r| panic!("{r:?}"));
    let oauth = spec.oauth.unwrap_or_else(|| panic!("oauth missing"));
    assert_eq!((oauth.scope, oauth.headers.len()), (None, 0));
}

#[test]
fn seed_002_subscriptions_and_notification_email() {
    let body = json!({
        "url": "https://clinic.example/hooks",
        "subscriptions": ["PATIENT_CREATED", "APPOINTMENT_CANCELLED", "PATIENT_CREATED"],
        "notificationEmail": "alerts@clinic.example",
    });
    let spec = webhook_create(&body, &ctx(true)).unwrap_or_else(|r| panic!("{r:?}"));
    assert_eq!(
        spec.event_types,
        ["PATIENT_CREATED", "APPOINTMENT_CANCELLED"]
    );
    assert_eq!(
        spec.notification_email.as_deref(),
        Some("alerts@clinic.example")
    );

    let body = json!({"url": "https://clinic.example/hooks",
        "subscriptions": ["PATIENT_CREATED"], "notificationEmail": null});
    let spec = webhook_create(&body, &ctx(true)).unwrap_or_else(|r| panic!("{r:?}"));
    assert_eq!(spec.notification_email, None);

    let body = json!({"url": "https://x.example/h", "subscriptions": []});
    let r = reasons(webhook_create(&body, &ctx(true)));
    assert_eq!(r, ["subscriptions must contain at least 1 element"]);
}

#[test]
fn seed_003_events_and_https_only() {
    let body = json!({
        "url": "https://example.com/webhooks",
        "events": ["validation_request.approved", "donation.hosted.payment_received"],
    });
    let spec = webhook_create(&body, &ctx(true)).unwrap_or_else(|r| panic!("{r:?}"));
    assert_eq!(
        spec.event_types,
        [
            "validation_request.approved",
            "donation.hosted.payment_received"
        ]
    );
    let body = json!({"url": "http://example.com/webhooks", "events": ["nope"]});
    let r = reasons(webhook_create(&body, &ctx(true)));
    assert_eq!(
        r,
        [
            "url must be https",
            "event type \"nope\" is not in the catalogue"
        ]
    );
    // The example config relaxes https for local receivers.
    let body = json!({"url": "http://localhost:9000/h", "events": ["shift.created"]});
    assert!(webhook_create(&body, &ctx(false)).is_ok());
}

#[test]
fn seed_004_all_facilities_and_two_secrets() {
    let body = json!({
        "url": "https://exemple.com/webhook",
        "events": ["all"],
        "facilities": ["P-123456", "P-123457"],
        "secrets": [S1, S2],
    });
    let spec = webhook_create(&body, &ctx(true)).unwrap_or_else(|r| panic!("{r:?}"));
    assert_eq!(spec.event_types, ["*"]);
    assert_eq!(spec.channels, ["P-123456", "P-123457"]);
    let secrets: Vec<&str> = spec.secrets.iter().map(Secret::expose).collect();
    assert_eq!(secrets, [S1, S2]);

    let body = json!({"url": "https://e.com/w", "events": "all",
        "facilities": [1], "secrets": "x"});
    let r = reasons(webhook_create(&body, &ctx(true)));
    assert_eq!(
        r,
        [
            "events must be an array of strings",
            "facilities[0] must be a string",
            "secrets must be an array of strings"
        ]
    );
}

#[test]
fn urls() {
    let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
    let cases: &[(&str, Option<&str>)] = &[
        ("https://example.com/hook?x=1", None),
        ("HTTPS://Example.COM:8443/", None),
        ("http://example.com", Some("url must be https")),
        ("ftp://example.com/", Some("url must use http or https")),
        ("example.com/hook", Some("url is not a valid URL")),
        ("/relative", Some("url must be an absolute http(s) URL")),
        (
            "https://user:pass@example.com/",
            Some("url must not contain user credentials"),
        ),
        (
            "https://example.com/#frag",
            Some("url must not contain a fragment"),
        ),
        ("https://exa mple.com/", Some("url is not a valid URL")),
        (
            "https://127.0.0.1/h",
            Some("url host 127.0.0.1 is not allowed: loopback address"),
        ),
        (
            "https://[::1]:8080/h",
            Some("url host ::1 is not allowed: loopback address"),
        ),
        (
            "https://example.com:0/",
            Some("url port must be between 1 and 65535"),
        ),
        (
            "https://example.com:99999/",
            Some("url port must be between 1 and 65535"),
        ),
        (
            "https://[::1]:0/",
            Some("url port must be between 1 and 65535"),
        ),
        ("https://example.com:/h", None),
        ("https://héllo.example/", Some("url is not a valid URL")),
        ("https://my_service.internal/h", None),
        ("https://example.com./h", None),
        (
            "http://0*",
            Some(
                "url host 0* is not a host name (letters, digits, \"-\" and \"_\" between dots) or an IP address",
            ),
        ),
        (
            "https://example..com/",
            Some(
                "url host example..com is not a host name (letters, digits, \"-\" and \"_\" between dots) or an IP address",
            ),
        ),
        (
            "https://[not:an:ip]/",
            Some(
                "url host not:an:ip is not a host name (letters, digits, \"-\" and \"_\" between dots) or an IP address",
            ),
        ),
        ("https://example.com/a%20b?q=%C3%A9&x=(1)", None),
        (
            "https://example.com/a%2",
            Some(
                "url path and query may hold only letters, digits, \"-._~!$&'()*+,;=:@/?\" and %XX escapes",
            ),
        ),
        (&long, Some("url must be at most 2048 characters")),
    ];
    for (url, want) in cases {
        let body = json!({"url": url, "event_types": ["*"]});
        match (webhook_create(&body, &ctx(true)), want) {
            (Ok(_), None) => {}
            (Err(r), Some(want)) => assert_has(&r, want),
            (got, _) => panic!("{url}: got {got:?}, want {want:?}"),
        }
    }
    let r = reasons(webhook_create(
        &json!({"url": 5, "event_types": ["*"]}),
        &ctx(true),
    ));
    assert_eq!(r, ["url must be a string"]);
    let r = reasons(webhook_create(&json!({}), &ctx(true)));
    assert_eq!(r, ["url is required", "event_types is required"]);
    let r = reasons(webhook_create(&json!([1]), &ctx(true)));
    assert_eq!(r, ["request body must be a JSON object"]);
}

#[test]
fn event_type_filters() {
    let ok: &[(&[&str], &[&str])] = &[
        (&["*"], &["*"]),
        (&["all", "*", "IN_PROGRESS"], &["*", "IN_PROGRESS"]),
        (
            &["shift.*", "PROVIDER_*", "shift.*"],
            &["shift.*", "PROVIDER_*"],
        ),
        (&["hookbox.webhook.disabled"], &["hookbox.webhook.disabled"]),
    ];
    for (input, want) in ok {
        let spec = webhook_create(
            &json!({"url": "https://e.com", "event_types": input}),
            &ctx(true),
        )
        .unwrap_or_else(|r| panic!("{input:?}: {r:?}"));
        assert_eq!(&spec.event_types, want);
    }
    let bad: &[(&str, &str)] = &[
        (".*", "event type filter \".*\" needs a non-empty prefix"),
        ("_*", "event type filter \"_*\" needs a non-empty prefix"),
        (
            "shift*",
            "event type filter \"shift*\" is not valid: \"*\" may only follow \".\" or \"_\" at the end",
        ),
        (
            "a b.*",
            "event type filter \"a b.*\" may only contain letters, digits, \"_\", \".\", \":\" and \"-\" before the \"*\"",
        ),
        ("sh*ift", "event type \"sh*ift\" is not in the catalogue"),
        ("", "event type \"\" is not in the catalogue"),
    ];
    for (input, want) in bad {
        let r = reasons(webhook_create(
            &json!({"url": "https://e.com", "event_types": [input]}),
            &ctx(true),
        ));
        assert_eq!(r, [*want], "{input}");
    }
    let many: Vec<String> = (0..=MAX_EVENT_TYPES).map(|i| format!("t{i}.*")).collect();
    let r = reasons(webhook_create(
        &json!({"url": "https://e.com", "event_types": many}),
        &ctx(true),
    ));
    assert_eq!(r, ["event_types must contain no more than 100 elements"]);
    let r = reasons(webhook_create(
        &json!({"url": "https://e.com", "event_types": ["*"], "events": ["*"]}),
        &ctx(true),
    ));
    assert_eq!(
        r,
        ["\"event_types\" and \"events\" are the same field; send only one"]
    );
}

#[test]
fn headers() {
    let big = "v".repeat(MAX_HEADER_VALUE_BYTES + 1);
    let cases: &[(Value, Option<&str>)] = &[
        (
            json!({"X-Api-Key": "k", "X-Tab": "a\tb", "x-utf8": "héllo"}),
            None,
        ),
        (
            json!({"User-Agent": "me"}),
            Some("header \"User-Agent\" is reserved"),
        ),
        (
            json!({"Webhook-Signature": "x"}),
            Some("header \"Webhook-Signature\" is reserved"),
        ),
        (
            json!({"Content-Type": "text/plain"}),
            Some("header \"Content-Type\" is reserved"),
        ),
        (
            json!({"Transfer-Encoding": "chunked"}),
            Some("header \"Transfer-Encoding\" is reserved"),
        ),
        (
            json!({"X-A": "a\u{0}b"}),
            Some("header \"X-A\" value must not contain CR, LF or NUL"),
        ),
        (
            json!({"X-A": "a\u{7}b"}),
            Some("header \"X-A\" value must not contain control characters"),
        ),
        (
            json!({"X-A": big}),
            Some("header \"X-A\" value must be at most 4096 bytes"),
        ),
        (json!({"X-A": 1}), Some("headers[\"X-A\"] must be a string")),
        (
            json!({"X-A": "1", "x-a": "2"}),
            Some("header \"x-a\" is given more than once (names are case-insensitive)"),
        ),
        (
            json!({"": "1"}),
            Some("header name \"\" is not a valid token"),
        ),
        (
            json!({"X-A": "****"}),
            Some("header \"X-A\" value is the mask \"****\"; send the real value"),
        ),
        (
            json!("X-A: 1"),
            Some("headers must be an object of strings"),
        ),
        // Without oauth, Authorization is the client's own business.
        (json!({"Authorization": "Bearer abc"}), None),
    ];
    for (headers, want) in cases {
        let body = json!({"url": "https://e.com", "event_types": ["*"], "headers": headers});
        match (webhook_create(&body, &ctx(true)), want) {
            (Ok(_), None) => {}
            (Err(r), Some(want)) => assert_eq!(r, [*want]),
            (got, _) => panic!("{headers}: got {got:?}, want {want:?}"),
        }
    }
    let many: Map<String, Value> = (0..=MAX_HEADERS)
        .map(|i| (format!("X-{i}"), json!("v")))
        .collect();
    let r = reasons(webhook_create(
        &json!({"url": "https://e.com", "event_types": ["*"], "headers": many}),
        &ctx(true),
    ));
    assert_eq!(r, ["headers must contain no more than 32 entries"]);
}

#[test]
fn oauth_rules() {
    let base = |oauth: Value, headers: Value| json!({"url": "https://e.com", "event_types": ["*"], "oauth": oauth, "headers": headers});
    let good = json!({"token_url": "https://auth.e.com/t", "client_id": "c", "client_secret": "s",
        "headers": {"Authorization": "Basic abc"}});
    assert!(webhook_create(&base(good.clone(), json!({})), &ctx(true)).is_ok());
    let r = reasons(webhook_create(
        &base(good, json!({"authorization": "x"})),
        &ctx(true),
    ));
    assert_eq!(
        r,
        ["header \"authorization\" is reserved when oauth is set"]
    );

    let bad = json!({"token_url": "http://127.0.0.1/t", "client_id": "", "scope": 3,
        "headers": {"Host": "x"}, "grant": "password"});
    let r = reasons(webhook_create(&base(bad, Value::Null), &ctx(true)));
    assert_eq!(
        r,
        [
            "oauth.token_url must be https",
            "oauth.token_url host 127.0.0.1 is not allowed: loopback address",
            "oauth.client_id must not be empty",
            "oauth.client_secret is required",
            "oauth.scope must be a string",
            "oauth header \"Host\" is reserved",
            "unknown field \"oauth.grant\"",
        ]
    );
    let r = reasons(webhook_create(&base(json!("x"), Value::Null), &ctx(true)));
    assert_eq!(r, ["oauth must be a JSON object"]);
}

#[test]
fn secrets_and_emails() {
    let short = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([7u8; 23])
    );
    let long = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([7u8; 65])
    );
    let max = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([7u8; 64])
    );
    let cases: &[(Value, Option<&str>)] = &[
        (json!([]), None),
        (Value::Null, None),
        (json!([max]), None),
        (
            json!(["sDV1aKqitCLClI12m7UPFbAAvZfZquJw"]),
            Some("secrets[0] must start with \"whsec_\""),
        ),
        (
            json!([short]),
            Some("secrets[0] must decode to 24 to 64 bytes, not 23"),
        ),
        (
            json!([long]),
            Some("secrets[0] must decode to 24 to 64 bytes, not 65"),
        ),
        (
            json!([S1, S1]),
            Some("secrets must not contain the same secret twice"),
        ),
        (json!([7]), Some("secrets[0] must be a string")),
    ];
    for (secrets, want) in cases {
        let body = json!({"url": "https://e.com", "event_types": ["*"], "secrets": secrets});
        match (webhook_create(&body, &ctx(true)), want) {
            (Ok(_), None) => {}
            (Err(r), Some(want)) => assert_eq!(r, [*want]),
            (got, _) => panic!("{secrets}: got {got:?}, want {want:?}"),
        }
    }
    let long_local = format!("{}@example.com", "a".repeat(250));
    for (email, ok) in [
        ("ops@example.com", true),
        ("first.last+tag@sub.example.co", true),
        ("ops@localhost", false),
        ("@example.com", false),
        ("a@@example.com", false),
        ("a b@example.com", false),
        ("a@example..com", false),
        ("a@example.com.", false),
        (long_local.as_str(), false),
    ] {
        let body =
            json!({"url": "https://e.com", "event_types": ["*"], "notification_email": email});
        assert_eq!(webhook_create(&body, &ctx(true)).is_ok(), ok, "{email}");
    }
}

#[test]
fn other_create_fields_and_limits() {
    let body = json!({"url": "https://e.com", "event_types": ["*"], "description": null,
        "channels": null, "metadata": {"team": "billing"}, "rate_limit_per_second": 100000,
        "enabled": false});
    let spec = webhook_create(&body, &ctx(true)).unwrap_or_else(|r| panic!("{r:?}"));
    assert_eq!(spec.metadata["team"], "billing");
    assert_eq!(spec.rate_limit_per_second, Some(100_000));
    assert!(!spec.enabled && spec.channels.is_empty() && spec.description.is_none());

    let meta: Map<String, Value> = (0..=MAX_METADATA)
        .map(|i| (format!("k{i}"), json!("v")))
        .collect();
    let channels: Vec<String> = (0..=MAX_CHANNELS).map(|i| format!("c{i}")).collect();
    let body = json!({"url": "https://e.com", "event_types": ["*"],
        "description": "d".repeat(MAX_DESCRIPTION_LEN + 1), "channels": channels,
        "metadata": meta, "rate_limit_per_second": 1.5});
    let r = reasons(webhook_create(&body, &ctx(true)));
    assert_eq!(
        r,
        [
            "channels must contain no more than 100 elements",
            "description must be at most 1024 characters",
            "metadata must contain no more than 50 entries",
            "rate_limit_per_second must be an integer between 1 and 100000",
        ]
    );
    let body = json!({"url": "https://e.com", "event_types": ["*"],
        "channels": ["", "x".repeat(129), "\u{c} "], "metadata": {"k": 1}});
    let r = reasons(webhook_create(&body, &ctx(true)));
    assert_eq!(
        r,
        [
            "channels[0] must not be empty",
            "channels[1] must be at most 128 characters",
            "channels[2] must not be blank",
            "metadata[\"k\"] must be a string",
        ]
    );
}

/// The document's URL pattern and the server accept the same URLs in shape (the
/// blocked networks and `require_https` aside), so a generated client's check and
/// the server's never disagree; only inside brackets is the pattern looser.
#[test]
fn the_url_pattern_and_the_server_agree() {
    let pattern = jsonschema::validator_for(
        &json!({"type": "string", "pattern": crate::api::requests::URL_PATTERN}),
    )
    .expect("the pattern compiles");
    let open = Ctx {
        require_https: false,
        known_event_type: &known,
        host_blocked: &|_| None,
    };
    let urls = [
        "https://example.com/hook?x=1",
        "HTTPS://Example.COM:8443/",
        "Http://a",
        "http://a:",
        "http://a:080/",
        "http://a:0",
        "http://a:65535",
        "http://a:65536",
        "http://a:99999/",
        "http://127.0.0.1./",
        "http://localhost../",
        "http://LOCALHOST./x",
        "http://.example.com/",
        "http://0*",
        "http://a*b/",
        "http://a!b/",
        "http://my_host-1.internal/",
        "http://[::1]:8080/h",
        "http://[fe80::1]/",
        "http://[not:an:ip]/",
        "http://[1.2.3.4]/",
        "http://a/%41%6a",
        "http://a/%4",
        "http://a/%zz",
        "http://a/%",
        "http://a/b c",
        "http://a/{x}",
        "http://a/x|y",
        "http://a/x^y",
        "http://a/\"q\"",
        "http://a/!$&'()*+,;=:@-._~",
        "http://a?x=1&y=/?z",
        "http://a/?",
        "http://a/p?%",
        "http://a/p?q=%7B",
        "http://a/p?q={",
        "http://a/#f",
        "http://u@a/",
        "http://a@/",
        "ftp://a/",
        "http:/a",
        "http://",
        "http://héllo/",
        "a/b",
    ];
    for url in urls {
        let mut r = Vec::new();
        let server = super::super::fields::check_url("url", url, &open, &mut r).is_some();
        let document = pattern.is_valid(&json!(url));
        if url.contains("://[") {
            // The pattern checks a bracketed address's characters, the server its
            // form: what the server takes, the pattern takes.
            assert!(document || !server, "{url}: server takes it, pattern not");
        } else {
            assert_eq!(
                document, server,
                "{url}: pattern {document}, server {server} {r:?}"
            );
        }
    }
}
