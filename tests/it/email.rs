//! Failure emails over a real SMTP conversation with the loopback sink: what the
//! recipient reads, what the server sees, and that an absent server fails fast.

use std::time::{Duration, Instant};

use hookbox::model::Secret;
use hookbox::notify::email::{
    EmailError, Mailer, MailerConfig, Notification, NotificationKind, SmtpTlsMode,
};
use tokio::net::TcpListener;

use crate::smtp::SmtpSink;

const FROM: &str = "hookbox@example.org";
const TO: &str = "ops@example.com";
/// A secret-looking string that must never leave the process.
const URL_SECRET: &str = "s3cr3t-pa55word-in-userinfo";

fn mailer(port: u16, timeout: Duration) -> Mailer {
    Mailer::new(MailerConfig {
        host: "127.0.0.1".into(),
        port,
        tls: SmtpTlsMode::None,
        username: Some("mailer-user".into()),
        password: Some(Secret::new("mailer-password")),
        from: format!("hookbox <{FROM}>"),
        timeout,
    })
    .expect("a valid mailer config")
}

fn notification(kind: NotificationKind, reason: &str, suppressed: u32) -> Notification {
    Notification {
        to: TO.into(),
        kind,
        tenant: "acme".into(),
        webhook_id: "wh_01JABCDEFGHJKMNPQRSTVWXYZ0".into(),
        webhook_url: format!("https://deploy:{URL_SECRET}@receiver.example.com/hooks/in"),
        reason: reason.into(),
        suppressed,
        at: 1_700_000_000_000,
        delivery_id: Some("dlv_01JABCDEFGHJKMNPQRSTVWXYZ1".into()),
        event_id: Some("evt_01JABCDEFGHJKMNPQRSTVWXYZ2".into()),
    }
}

#[tokio::test]
async fn exhausted_and_disabled_notifications_reach_the_smtp_server() {
    let sink = SmtpSink::start().await;
    let mailer = mailer(sink.port(), Duration::from_secs(5));

    let exhausted = notification(
        NotificationKind::DeliveryExhausted,
        "HTTP 503 Service Unavailable after 10 attempts",
        3,
    );
    mailer.send(&exhausted).await.expect("exhausted email sent");
    let disabled = notification(
        NotificationKind::WebhookDisabled,
        "failing continuously for 5 days",
        0,
    );
    mailer.send(&disabled).await.expect("disabled email sent");

    let mails = sink.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(mails.len(), 2, "{mails:#?}");
    for mail in &mails {
        assert_eq!(mail.from, FROM);
        assert_eq!(mail.to, [TO]);
        assert_eq!(mail.auth_user.as_deref(), Some("mailer-user"));
        assert_eq!(
            mail.header("From").as_deref(),
            Some("hookbox <hookbox@example.org>")
        );
        assert_eq!(mail.header("To").as_deref(), Some(TO));
        assert_eq!(
            mail.header("Auto-Submitted").as_deref(),
            Some("auto-generated")
        );
        let message_id = mail.header("Message-ID").unwrap_or_default();
        assert!(message_id.ends_with("@example.org>"), "{message_id:?}");
        assert!(!mail.data.contains(URL_SECRET), "{}", mail.data);
        assert!(!mail.data.contains("mailer-password"), "{}", mail.data);
        // Plain text a person can read, not quoted-printable or base64.
        let encoding = mail.header("Content-Transfer-Encoding");
        assert!(
            matches!(encoding.as_deref(), Some("7bit" | "8bit")),
            "{encoding:?}"
        );
        assert!(
            mail.body()
                .contains("https://receiver.example.com/hooks/in"),
            "{}",
            mail.body()
        );
    }

    let (first, second) = (&mails[0], &mails[1]);
    assert_eq!(
        first.header("Subject").as_deref(),
        Some(
            "[hookbox] delivery dlv_01JABCDEFGHJKMNPQRSTVWXYZ1 exhausted for webhook wh_01JABCDEFGHJKMNPQRSTVWXYZ0"
        )
    );
    let body = first.body();
    assert!(
        body.contains("HTTP 503 Service Unavailable after 10 attempts"),
        "{body}"
    );
    assert!(
        body.contains("3 more notifications were suppressed in the last hour"),
        "{body}"
    );
    assert!(body.contains("2023-11-14T22:13:20.000Z"), "{body}");
    assert!(
        body.contains("POST /v1/webhooks/wh_01JABCDEFGHJKMNPQRSTVWXYZ0/recover"),
        "{body}"
    );

    assert_eq!(
        second.header("Subject").as_deref(),
        Some("[hookbox] webhook wh_01JABCDEFGHJKMNPQRSTVWXYZ0 disabled")
    );
    let body = second.body();
    assert!(body.contains("failing continuously for 5 days"), "{body}");
    assert!(!body.contains("suppressed"), "{body}");
    assert!(body.contains("{\"enabled\": true}"), "{body}");
}

#[tokio::test]
async fn closed_port_fails_with_a_transport_error() {
    // Bind and release a port so nothing listens on it.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("address").port()
    };
    let timeout = Duration::from_secs(2);
    let mailer = mailer(port, timeout);
    let n = notification(NotificationKind::WebhookDisabled, "gone", 0);

    let started = Instant::now();
    let result = mailer.send(&n).await;
    assert!(
        matches!(result, Err(EmailError::Transport { .. })),
        "{result:?}"
    );
    assert!(started.elapsed() < timeout, "took {:?}", started.elapsed());
}

#[tokio::test]
async fn silent_server_is_bounded_by_the_timeout() {
    // The kernel completes the handshake from the backlog, but no greeting ever
    // comes: without a bound the mailer would wait forever.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let timeout = Duration::from_millis(300);
    let mailer = mailer(port, timeout);
    let n = notification(NotificationKind::WebhookDisabled, "gone", 0);

    let started = Instant::now();
    let result = mailer.send(&n).await;
    let elapsed = started.elapsed();
    assert!(
        matches!(
            result,
            Err(EmailError::Timeout { .. } | EmailError::Transport { .. })
        ),
        "{result:?}"
    );
    assert!(
        elapsed >= timeout / 2,
        "returned before the server could answer: {elapsed:?}"
    );
    assert!(
        elapsed < timeout + Duration::from_secs(2),
        "took {elapsed:?}"
    );
    drop(listener);
}

#[tokio::test]
async fn invalid_recipient_is_refused_before_connecting() {
    let sink = SmtpSink::start().await;
    let mailer = mailer(sink.port(), Duration::from_secs(5));
    let mut n = notification(NotificationKind::WebhookDisabled, "gone", 0);
    n.to = "not an address".into();

    let result = mailer.send(&n).await;
    assert!(
        matches!(
            result,
            Err(EmailError::InvalidAddress {
                role: "recipient",
                ..
            })
        ),
        "{result:?}"
    );
    assert!(sink.messages().is_empty());
}
