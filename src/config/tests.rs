//! Table-driven tests of config loading: defaults, the example file, env overrides
//! and every validation message.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The problems reported for `toml` with `env`, or an empty list when it loads.
fn problems(toml: &str, vars: &[(&str, &str)]) -> Vec<String> {
    match Config::from_toml(toml, &env(vars)) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid(list)) => list,
        Err(other) => vec![format!("unexpected error: {other:?}")],
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn parse_duration_cases() {
    let ok = [
        ("0s", secs(0)),
        ("250ms", ms(250)),
        ("5s", secs(5)),
        ("5m", secs(300)),
        ("2h", secs(7200)),
        ("5d", secs(432_000)),
        (" 30m ", secs(1800)),
    ];
    for (input, want) in ok {
        assert_eq!(parse_duration(input), Ok(want), "{input:?}");
    }
    let bad = [
        ("", DurationError::Empty),
        ("   ", DurationError::Empty),
        ("5", DurationError::MissingUnit("5".into())),
        ("s", DurationError::InvalidNumber("s".into())),
        ("-5s", DurationError::InvalidNumber("-5s".into())),
        ("1.5h", DurationError::InvalidNumber("1.5h".into())),
        (
            "5 s",
            DurationError::UnknownUnit {
                input: "5 s".into(),
                unit: " s".into(),
            },
        ),
        (
            "5w",
            DurationError::UnknownUnit {
                input: "5w".into(),
                unit: "w".into(),
            },
        ),
        (
            "99999999999999999999d",
            DurationError::Overflow("99999999999999999999d".into()),
        ),
        (
            "18446744073709551615d",
            DurationError::Overflow("18446744073709551615d".into()),
        ),
    ];
    for (input, want) in bad {
        assert_eq!(parse_duration(input), Err(want), "{input:?}");
    }
}

#[test]
fn no_file_and_no_env_gives_the_defaults() {
    let config = Config::load(None, &[]).expect("defaults are valid");
    assert_eq!(config, Config::default());
    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.delivery.retry_schedule.len(), 10);
    assert_eq!(config.delivery.retry_schedule[3], secs(1800));
    assert!(config.security.require_https);
    assert_eq!(config.master_key_bytes(), None);
}

#[test]
fn example_file_loads() {
    let text = include_str!("../../config.example.toml");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("hookbox.toml");
    std::fs::write(&path, text).expect("write example");
    let config = Config::load(Some(&path), &[]).expect("the example is valid");
    assert_eq!(Config::from_toml(text, &[]).ok(), Some(config.clone()));

    // Other than the local-trial relaxations and the seeds, it shows the defaults.
    let d = Config::default();
    assert!(!config.security.require_https);
    assert_eq!(config.security.allow_networks.len(), 2);
    assert!(
        config
            .event_types
            .iter()
            .any(|e| e.name == "PROVIDER_CRED_APPROVED")
    );
    assert_eq!(config.delivery, d.delivery);
    assert_eq!(config.retention, d.retention);
    assert_eq!(config.notify, d.notify);
    assert_eq!(config.log, d.log);
    assert_eq!((config.listen, &config.data_dir), (d.listen, &d.data_dir));
    assert_eq!(config.max_body_bytes, d.max_body_bytes);
    assert_eq!(config.cache_mib, 16);
    assert_eq!((config.smtp, config.tls), (None, None));
}

#[test]
fn full_file_round_trip() {
    let toml = r#"
        listen = "0.0.0.0:9000"
        data_dir = "/var/lib/hookbox"
        admin_token = "adm-0123456789abcdef"
        master_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
        max_body_bytes = 2048
        cache_mib = 64
        [log]
        format = "json"
        level = "info,hookbox=debug"
        [tls]
        cert = "/etc/hookbox/cert.pem"
        key = "/etc/hookbox/key.pem"
        [security]
        require_https = false
        allow_networks = ["10.1.2.3/8", "::1/128"]
        [delivery]
        retry_schedule = ["0s", "250ms", "1m"]
        jitter = 0
        connect_timeout = "1s"
        request_timeout = "1s"
        disable_after = "1d"
        max_in_flight = 8
        per_webhook_in_flight = 2
        retry_after_max = "10m"
        ca_file = "/etc/hookbox/ca.pem"
        [retention]
        events = "7d"
        purge_interval = "10m"
        [smtp]
        host = "smtp.example.com"
        tls = "tls"
        username = "hookbox"
        password = "pw"
        from = "hookbox <hookbox@example.com>"
        [notify]
        email_interval = "30m"
        [[event_types]]
        name = "shift.report.created"
        description = "A shift report was filed"
    "#;
    let c = Config::from_toml(toml, &[]).expect("valid");
    assert_eq!(c.listen.port(), 9000);
    assert_eq!(c.max_body_bytes, 2048);
    assert_eq!(c.cache_mib, 64);
    assert_eq!(c.master_key_bytes().map(|k| k[31]), Some(31));
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(
        c.tls.map(|t| t.key),
        Some(PathBuf::from("/etc/hookbox/key.pem"))
    );
    assert_eq!(c.security.allow_networks[0].to_string(), "10.0.0.0/8");
    assert_eq!(c.delivery.retry_schedule, vec![secs(0), ms(250), secs(60)]);
    assert_eq!(c.delivery.jitter, 0.0);
    assert_eq!(c.delivery.retry_after_max, secs(600));
    assert_eq!(c.retention.events, secs(7 * 86_400));
    let smtp = c.smtp.expect("smtp set");
    assert_eq!((smtp.tls, smtp.port), (SmtpTls::Tls, 465));
    assert_eq!(
        smtp.password.map(|p| p.expose().to_owned()),
        Some("pw".into())
    );
    assert_eq!(c.notify.email_interval, secs(1800));
    assert_eq!(
        c.event_types[0].description.as_deref(),
        Some("A shift report was filed")
    );
}

#[test]
fn env_overrides_the_file() {
    let toml = "listen = \"127.0.0.1:1\"\n[security]\nrequire_https = true\n[smtp]\nhost = \"h\"\nusername = \"u\"\nfrom = \"a@b.c\"\n";
    let vars = [
        ("HOOKBOX_LISTEN", "0.0.0.0:8443"),
        ("HOOKBOX_DATA_DIR", "/data"),
        ("HOOKBOX_ADMIN_TOKEN", "tok"),
        (
            "HOOKBOX_MASTER_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        ),
        ("HOOKBOX_MAX_BODY_BYTES", "4096"),
        ("HOOKBOX_CACHE_MIB", "8"),
        ("HOOKBOX_LOG_FORMAT", "json"),
        ("HOOKBOX_LOG_LEVEL", "debug"),
        ("HOOKBOX_REQUIRE_HTTPS", "false"),
        ("HOOKBOX_ALLOW_NETWORKS", "127.0.0.0/8, ::1/128,"),
        ("HOOKBOX_SMTP_PASSWORD", "pw"),
        ("HOOKBOX_DATA_DIR_TYPO", "/ignored"),
        ("PATH", "/bin"),
    ];
    let c = Config::from_toml(toml, &env(&vars)).expect("valid");
    assert_eq!(c.listen.to_string(), "0.0.0.0:8443");
    assert_eq!(c.data_dir, PathBuf::from("/data"));
    assert_eq!(c.admin_token, Some(Secret::new("tok")));
    assert!(c.master_key_bytes().is_some());
    assert_eq!(c.max_body_bytes, 4096);
    assert_eq!(c.cache_mib, 8);
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.log.level, "debug");
    assert!(!c.security.require_https);
    assert_eq!(c.security.allow_networks.len(), 2);
    assert_eq!(c.smtp.and_then(|s| s.password), Some(Secret::new("pw")));

    // Empty values leave the file's setting alone; the last occurrence wins.
    let vars = [
        ("HOOKBOX_LISTEN", ""),
        ("HOOKBOX_REQUIRE_HTTPS", "0"),
        ("HOOKBOX_REQUIRE_HTTPS", "yes"),
    ];
    let c = Config::from_toml("listen = \"127.0.0.1:1\"", &env(&vars)).expect("valid");
    assert_eq!(c.listen.port(), 1);
    assert!(c.security.require_https);
}

#[test]
fn every_problem_is_reported_at_once() {
    let toml = r#"
        listen = "localhost"
        master_key = "c2hvcnQ="
        max_body_bytes = 10
        cache_mib = 1
        [log]
        format = "yaml"
        [tls]
        cert = "/c.pem"
        [security]
        allow_networks = ["10.0.0.0/33"]
        [delivery]
        retry_schedule = ["0s", "5x"]
        jitter = 1.5
        connect_timeout = "20s"
        max_in_flight = 0
        per_webhook_in_flight = -1
        [smtp]
        host = "h"
        from = ""
    "#;
    let got = problems(toml, &[]);
    let keys = [
        "listen:",
        "master_key:",
        "max_body_bytes:",
        "cache_mib:",
        "log.format:",
        "tls.key:",
        "security.allow_networks:",
        "delivery.retry_schedule[1]:",
        "delivery.jitter:",
        "delivery.connect_timeout:",
        "delivery.max_in_flight:",
        "delivery.per_webhook_in_flight:",
        "smtp.from:",
    ];
    for key in keys {
        assert!(
            got.iter().any(|m| m.starts_with(key)),
            "no {key} in {got:#?}"
        );
    }
    assert_eq!(got.len(), keys.len(), "{got:#?}");
}

#[test]
fn single_problems_name_their_key() {
    // (toml, env, the start of the one expected message)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (
            "max_body_bytes = 1023",
            &[],
            "max_body_bytes: 1023 is out of range",
        ),
        ("max_body_bytes = 67108865", &[], "max_body_bytes: 67108865"),
        ("max_body_bytes = 67108864", &[], ""),
        ("max_body_bytes = 1024", &[], ""),
        (
            "cache_mib = 3",
            &[],
            "cache_mib: 3 is out of range 4..=65536",
        ),
        ("cache_mib = 65537", &[], "cache_mib: 65537 is out of range"),
        ("cache_mib = 4", &[], ""),
        ("", &[("HOOKBOX_CACHE_MIB", "lots")], "cache_mib"),
        (
            "[delivery]\nretry_schedule = []",
            &[],
            "delivery.retry_schedule: needs",
        ),
        ("[delivery]\njitter = -0.01", &[], "delivery.jitter"),
        ("[delivery]\njitter = nan", &[], "delivery.jitter"),
        ("[delivery]\njitter = 1.0", &[], ""),
        (
            "[delivery]\nrequest_timeout = \"0s\"",
            &[],
            "delivery.request_timeout: must be",
        ),
        (
            "[delivery]\nconnect_timeout = \"0ms\"",
            &[],
            "delivery.connect_timeout: must be",
        ),
        ("[delivery]\nconnect_timeout = \"15s\"", &[], ""),
        (
            "[delivery]\ndisable_after = \"0d\"",
            &[],
            "delivery.disable_after",
        ),
        (
            "[retention]\nevents = \"30\"",
            &[],
            "retention.events: \"30\" has no unit",
        ),
        (
            "[notify]\nemail_interval = \"soon\"",
            &[],
            "notify.email_interval",
        ),
        (
            "master_key = \"!!\"",
            &[],
            "master_key: is not valid standard base64",
        ),
        ("admin_token = \" \"", &[], "admin_token: must not be empty"),
        ("[tls]\nkey = \"/k.pem\"", &[], "tls.cert: is required"),
        ("[tls]", &[], ""),
        ("[log]\nlevel = \"hookbox=loud\"", &[], "log.level"),
        ("[smtp]\nfrom = \"a@b.c\"", &[], "smtp.host: is required"),
        (
            "[smtp]\nhost = \"h\"\nfrom = \"nobody\"",
            &[],
            "smtp.from: \"nobody\" is not a mailbox",
        ),
        (
            "[smtp]\nhost = \"h\"\nfrom = \"a@b.c\"\ntls = \"ssl\"",
            &[],
            "smtp.tls",
        ),
        (
            "[smtp]\nhost = \"h\"\nfrom = \"a@b.c\"\nport = 70000",
            &[],
            "smtp.port",
        ),
        (
            "[smtp]\nhost = \"h\"\nfrom = \"a@b.c\"\npassword = \"p\"",
            &[],
            "smtp.username",
        ),
        (
            "[[event_types]]\nname = \"a.*\"",
            &[],
            "event_types[0].name",
        ),
        (
            "[[event_types]]\nname = \"a\"\n[[event_types]]\nname = \"a\"",
            &[],
            "event_types[1].name: \"a\" is listed twice",
        ),
        (
            "",
            &[("HOOKBOX_LISTEN", "nope")],
            "listen: \"nope\" is not an ip:port address",
        ),
        (
            "",
            &[("HOOKBOX_MAX_BODY_BYTES", "1MB")],
            "max_body_bytes: \"1MB\" is not an integer",
        ),
        (
            "",
            &[("HOOKBOX_MAX_BODY_BYTES", "100")],
            "max_body_bytes: 100 is out of range",
        ),
        (
            "",
            &[("HOOKBOX_REQUIRE_HTTPS", "maybe")],
            "security.require_https",
        ),
        (
            "",
            &[("HOOKBOX_ALLOW_NETWORKS", "10.0.0.0/8,nope")],
            "security.allow_networks",
        ),
        ("", &[("HOOKBOX_LOG_FORMAT", "xml")], "log.format"),
        (
            "",
            &[("HOOKBOX_MASTER_KEY", "c2hvcnQ=")],
            "master_key: must decode to 32 bytes",
        ),
        (
            "",
            &[("HOOKBOX_SMTP_PASSWORD", "p")],
            "smtp.password: is set but",
        ),
    ];
    for (toml, vars, want) in cases {
        let got = problems(toml, vars);
        if want.is_empty() {
            assert!(got.is_empty(), "{toml:?} {vars:?}: {got:#?}");
        } else {
            assert_eq!(got.len(), 1, "{toml:?} {vars:?}: {got:#?}");
            assert!(got[0].starts_with(want), "{toml:?} {vars:?}: {got:#?}");
        }
    }
    // A message about an env-supplied value says where it came from.
    let got = problems("", &[("HOOKBOX_LISTEN", "nope")]);
    assert!(got[0].ends_with("(set by HOOKBOX_LISTEN)"), "{got:?}");
}

#[test]
fn syntax_types_and_unknown_keys_are_parse_errors() {
    let cases = [
        "listen = ",
        "lisen = \"127.0.0.1:1\"",
        "[delivery]\nretries = 3",
        "[delivery]\nretry_schedule = [0, 5]",
        "[smtp]\nhost = \"h\"\nfrom = \"a@b.c\"\nuser = \"x\"",
        "[[event_types]]\ndescription = \"no name\"",
        "max_body_bytes = \"1MiB\"",
    ];
    for toml in cases {
        assert!(
            matches!(Config::from_toml(toml, &[]), Err(ConfigError::Parse(_))),
            "{toml:?}"
        );
    }
}

#[test]
fn a_missing_file_is_a_read_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("absent.toml");
    match Config::load(Some(&path), &[]) {
        Err(ConfigError::Read { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected a read error, got {other:?}"),
    }
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let toml = "admin_token = \"adm-secret-value\"\n[smtp]\nhost = \"h\"\nusername = \"u\"\npassword = \"smtp-secret-value\"\nfrom = \"a@b.c\"";
    let c = Config::from_toml(toml, &[]).expect("valid");
    let debug = format!("{c:?}");
    assert!(!debug.contains("secret-value"), "{debug}");
}

#[test]
fn per_tenant_and_byte_bounds_load_default_and_validate() {
    // Defaults: a quarter of max_in_flight (at least 1) and 64 MiB.
    let c = Config::from_toml("", &[]).expect("valid");
    assert_eq!(c.delivery.per_tenant_in_flight, None);
    assert_eq!(c.delivery.per_tenant_bound(), 64);
    assert_eq!(c.delivery.max_queued_bytes, 64 * 1024 * 1024);
    let c = Config::from_toml("[delivery]\nmax_in_flight = 2\n", &[]).expect("valid");
    assert_eq!(c.delivery.per_tenant_bound(), 1);
    let c = Config::from_toml("[delivery]\nmax_in_flight = 40\n", &[]).expect("valid");
    assert_eq!(c.delivery.per_tenant_bound(), 10);

    // File values, then env overrides.
    let toml = "[delivery]\nper_tenant_in_flight = 8\nmax_queued_bytes = 2097152\n";
    let c = Config::from_toml(toml, &[]).expect("valid");
    assert_eq!(c.delivery.per_tenant_bound(), 8);
    assert_eq!(c.delivery.max_queued_bytes, 2 * 1024 * 1024);
    let vars = [
        ("HOOKBOX_PER_TENANT_IN_FLIGHT", "12"),
        ("HOOKBOX_MAX_QUEUED_BYTES", "3145728"),
    ];
    let c = Config::from_toml(toml, &env(&vars)).expect("valid");
    assert_eq!(c.delivery.per_tenant_bound(), 12);
    assert_eq!(c.delivery.max_queued_bytes, 3 * 1024 * 1024);

    // Every bad value is reported with its key.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (
            "[delivery]\nper_tenant_in_flight = 0\n",
            &[],
            "delivery.per_tenant_in_flight: 0 is out of range",
        ),
        (
            "[delivery]\nmax_in_flight = 10\nper_tenant_in_flight = 11\n",
            &[],
            "delivery.per_tenant_in_flight: 11 is out of range 1..=delivery.max_in_flight (10)",
        ),
        (
            "[delivery]\nmax_queued_bytes = 1000\n",
            &[],
            "delivery.max_queued_bytes: 1000 is out of range",
        ),
        (
            "",
            &[("HOOKBOX_PER_TENANT_IN_FLIGHT", "many")],
            "delivery.per_tenant_in_flight",
        ),
        (
            "",
            &[("HOOKBOX_MAX_QUEUED_BYTES", "-1")],
            "delivery.max_queued_bytes",
        ),
    ];
    for (toml, vars, want) in cases {
        let err = Config::from_toml(toml, &env(vars)).expect_err(toml);
        let text = err.to_string();
        assert!(text.contains(want), "{toml:?} {vars:?}: {text}");
    }
}

#[test]
fn api_profiles_from_file_and_env() {
    assert_eq!(Config::default().api_profiles, Vec::new());
    let c = Config::from_toml(
        "[api]\nprofiles = [\"v2-webhooks\", \"facility-webhooks\"]\n",
        &[],
    )
    .expect("valid");
    assert_eq!(
        c.api_profiles,
        [ApiProfile::V2Webhooks, ApiProfile::FacilityWebhooks]
    );
    // The environment wins over the file, as a comma list with spaces and a
    // trailing comma tolerated.
    let c = Config::from_toml(
        "[api]\nprofiles = [\"v2-webhooks\"]\n",
        &env(&[(
            "HOOKBOX_API_PROFILES",
            "webhook-create, webhook-subscriptions,",
        )]),
    )
    .expect("valid");
    assert_eq!(
        c.api_profiles,
        [ApiProfile::WebhookCreate, ApiProfile::WebhookSubscriptions]
    );
    for p in ApiProfile::ALL {
        assert_eq!(ApiProfile::from_name(p.name()), Some(p));
    }
}

#[test]
fn api_profiles_report_every_unknown_name_with_the_known_ones() {
    let found = problems(
        "[api]\nprofiles = [\"v2-webhooks\", \"stripe\", \"v2-webhooks\", \"svix\"]\n",
        &[],
    );
    let known = "(known: v2-webhooks, webhook-create, webhook-subscriptions, facility-webhooks)";
    assert_eq!(
        found,
        [
            format!("api.profiles: unknown profile \"stripe\" {known}"),
            "api.profiles: \"v2-webhooks\" is listed twice".to_owned(),
            format!("api.profiles: unknown profile \"svix\" {known}"),
        ]
    );
    let found = problems("", &[("HOOKBOX_API_PROFILES", "nope")]);
    assert_eq!(
        found,
        [format!(
            "api.profiles: unknown profile \"nope\" {known} (set by HOOKBOX_API_PROFILES)"
        )]
    );
}
