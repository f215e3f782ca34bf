//! The sslmode table and the URL splitting of `tls.rs`, without a server (the
//! handshakes themselves are tested against a real PostgreSQL in tests/it/pg_tls.rs).

use std::path::{Path, PathBuf};

use super::{Policy, RootCert, SslMode, UrlTls, load_ca, split_url};

fn tls(mode: Option<SslMode>, root: Option<RootCert>) -> UrlTls {
    UrlTls {
        mode,
        root_cert: root,
    }
}

#[test]
fn sslmode_and_sslrootcert_are_taken_out_of_the_url_and_the_rest_is_kept() {
    let (rest, got) = split_url(
        "postgres://hb:p%3Fw@db.internal:5432/hb?application_name=x&sslmode=verify-full\
         &sslrootcert=%2Fetc%2Fhookbox%2Fca%20one.pem&connect_timeout=5",
    )
    .unwrap();
    assert_eq!(
        rest,
        "postgres://hb:p%3Fw@db.internal:5432/hb?application_name=x&connect_timeout=5"
    );
    assert_eq!(
        got,
        tls(
            Some(SslMode::VerifyFull),
            Some(RootCert::File(PathBuf::from("/etc/hookbox/ca one.pem")))
        )
    );
    // What is left parses.
    rest.parse::<tokio_postgres::Config>().unwrap();

    // Only TLS parameters: no `?` left behind.
    let (rest, got) = split_url("postgresql://h/db?sslmode=verify-ca&sslrootcert=system").unwrap();
    assert_eq!(rest, "postgresql://h/db");
    assert_eq!(got, tls(Some(SslMode::VerifyCa), Some(RootCert::System)));

    // A `?` in the password (before the `@`) is not the query, as for tokio-postgres.
    let (rest, got) = split_url("postgres://u:a?b@h/db?sslmode=require").unwrap();
    assert_eq!(rest, "postgres://u:a?b@h/db");
    assert_eq!(got.mode, Some(SslMode::Require));

    // No query, or another form: unchanged.
    for url in ["postgres://h/db", "host=h sslmode=require dbname=db"] {
        assert_eq!(split_url(url).unwrap(), (url.to_owned(), UrlTls::default()));
    }

    // An unknown sslmode names the accepted ones.
    let e = split_url("postgres://h/db?sslmode=verify").unwrap_err();
    assert!(e.contains("\"verify\" is not one of disable, allow"), "{e}");
    assert!(split_url("postgres://h/db?sslrootcert=").is_err());
}

#[test]
fn the_sslmode_table() {
    let file = || Some(RootCert::File(PathBuf::from("/ca.pem")));
    let verified = |ca: Option<&str>, host_name| Policy::Verified {
        ca_file: ca.map(PathBuf::from),
        host_name,
    };
    let cases: Vec<(UrlTls, Option<&Path>, Policy)> = vec![
        // libpq's default (prefer): opportunistic, unchecked.
        (tls(None, None), None, Policy::Opportunistic),
        (
            tls(Some(SslMode::Prefer), None),
            None,
            Policy::Opportunistic,
        ),
        (tls(Some(SslMode::Allow), None), None, Policy::Opportunistic),
        (tls(Some(SslMode::Disable), None), None, Policy::Plain),
        // require checks the chain and the name (stricter than libpq).
        (
            tls(Some(SslMode::Require), None),
            None,
            verified(None, true),
        ),
        (
            tls(Some(SslMode::Require), file()),
            None,
            verified(Some("/ca.pem"), true),
        ),
        (
            tls(Some(SslMode::VerifyFull), None),
            None,
            verified(None, true),
        ),
        (
            tls(Some(SslMode::VerifyCa), file()),
            None,
            verified(Some("/ca.pem"), false),
        ),
        // A CA without an sslmode means verify-full; the config key as the URL's.
        (tls(None, file()), None, verified(Some("/ca.pem"), true)),
        (
            tls(None, None),
            Some(Path::new("/ca.pem")),
            verified(Some("/ca.pem"), true),
        ),
        (
            tls(Some(SslMode::VerifyCa), None),
            Some(Path::new("/ca.pem")),
            verified(Some("/ca.pem"), false),
        ),
        // The same file in both places is one CA.
        (
            tls(None, file()),
            Some(Path::new("/ca.pem")),
            verified(Some("/ca.pem"), true),
        ),
        // sslrootcert=system: the public roots, names checked.
        (
            tls(None, Some(RootCert::System)),
            None,
            verified(None, true),
        ),
    ];
    for (url, ca, want) in cases {
        assert_eq!(Policy::decide(&url, ca), Ok(want.clone()), "{url:?} {ca:?}");
    }
}

#[test]
fn settings_that_would_not_do_what_they_say_are_refused_with_every_reason() {
    // A CA that an unchecked mode would ignore.
    for mode in [SslMode::Disable, SslMode::Prefer, SslMode::Allow] {
        let e = Policy::decide(&tls(Some(mode), None), Some(Path::new("/ca.pem"))).unwrap_err();
        assert!(e[0].contains("would not be used"), "{e:?}");
    }
    // verify-ca against the public roots would accept anyone's certificate.
    for root in [None, Some(RootCert::System)] {
        let e = Policy::decide(&tls(Some(SslMode::VerifyCa), root), None).unwrap_err();
        assert!(e[0].contains("verify-ca needs a CA file"), "{e:?}");
    }
    // Two different CA files, and a mode that would not use them: both listed.
    let e = Policy::decide(
        &tls(
            Some(SslMode::Prefer),
            Some(RootCert::File(PathBuf::from("/a.pem"))),
        ),
        Some(Path::new("/b.pem")),
    )
    .unwrap_err();
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].contains("name different CA files"), "{e:?}");
}

#[test]
fn a_ca_file_must_hold_a_usable_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    assert!(load_ca(&missing).unwrap_err().starts_with("cannot be read"));

    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "just some text\n").unwrap();
    assert!(
        load_ca(&empty)
            .unwrap_err()
            .contains("holds no PEM certificate")
    );

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    assert!(
        load_ca(&garbage)
            .unwrap_err()
            .contains("certificate 1 is not a usable CA"),
        "{:?}",
        load_ca(&garbage)
    );
}
