//! Failure-notification email over SMTP: rendering, sending and the pure throttle
//! decision. It never prints secrets, header values or URL credentials, and it never
//! stores anything (the throttle state is persisted by the store).

use std::fmt;
use std::time::Duration;

use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

use crate::model::{self, Secret, UnixMs};

/// How the connection to the SMTP server is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTlsMode {
    /// Plain connection upgraded with STARTTLS; the upgrade is required, so a server
    /// that does not offer it never sees credentials or mail (no downgrade).
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// No encryption; only for a local relay or tests.
    None,
}

/// Everything the mailer needs, independent of the config file's shape.
#[derive(Clone, Debug)]
pub struct MailerConfig {
    /// SMTP server host name (also the name its TLS certificate is checked against).
    pub host: String,
    /// SMTP server port.
    pub port: u16,
    /// How the connection is secured.
    pub tls: SmtpTlsMode,
    /// AUTH user name; credentials are sent only when this is set.
    pub username: Option<String>,
    /// AUTH password; required when `username` is set.
    pub password: Option<Secret>,
    /// The `From` address, e.g. `hookbox <hookbox@example.com>`.
    pub from: String,
    /// Bound on one whole send: connect, TLS, AUTH and DATA together.
    pub timeout: Duration,
}

/// Why an email could not be built or sent.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// A sender or recipient address does not parse.
    #[error("invalid {role} address {address:?}")]
    InvalidAddress {
        /// `"from"` or `"recipient"`.
        role: &'static str,
        /// The address as given (addresses are not secrets).
        address: String,
        /// The parser's reason.
        #[source]
        source: lettre::address::AddressError,
    },
    /// A password was given without a user name, or a user name without a password.
    #[error("SMTP username and password must be set together")]
    IncompleteCredentials,
    /// The TLS parameters (certificate verifier) could not be set up.
    #[error("cannot set up TLS for SMTP server {server}")]
    Tls {
        /// `host:port`.
        server: String,
        /// The TLS layer's reason.
        #[source]
        source: lettre::transport::smtp::Error,
    },
    /// The message could not be assembled.
    #[error("cannot build the notification email")]
    Build(#[source] lettre::error::Error),
    /// The SMTP conversation failed: connection refused, TLS, AUTH or a 4xx/5xx reply.
    #[error("sending email through SMTP server {server} failed")]
    Transport {
        /// `host:port`.
        server: String,
        /// The transport's reason.
        #[source]
        source: lettre::transport::smtp::Error,
    },
    /// The whole send took longer than `MailerConfig::timeout`.
    #[error("sending email through SMTP server {server} timed out after {timeout:?}")]
    Timeout {
        /// `host:port`.
        server: String,
        /// The configured bound.
        timeout: Duration,
    },
}

/// What happened to the webhook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotificationKind {
    /// A delivery used up its retry schedule and will not be tried again.
    DeliveryExhausted,
    /// The webhook was disabled (failing for too long, or the receiver answered 410).
    WebhookDisabled,
}

/// One failure notification, ready to render.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// Recipient address (the webhook's `notification_email`).
    pub to: String,
    /// What happened.
    pub kind: NotificationKind,
    /// The webhook's tenant.
    pub tenant: String,
    /// The webhook id (`wh_...`).
    pub webhook_id: String,
    /// The webhook URL; credentials and query values are redacted when rendered.
    pub webhook_url: String,
    /// Why it happened (last error, disable reason).
    pub reason: String,
    /// Notifications counted into this one during the rate-limit window.
    pub suppressed: u32,
    /// When it happened.
    pub at: UnixMs,
    /// The exhausted delivery, if any.
    pub delivery_id: Option<String>,
    /// The event of that delivery, if any.
    pub event_id: Option<String>,
}

/// Sends failure notifications through one SMTP server. Cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    server: String,
    timeout: Duration,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The transport holds the credentials: show only where mail goes and from whom.
        f.debug_struct("Mailer")
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Validates the configuration and prepares the transport. No connection is made
    /// here: the SMTP server may be down at start-up without stopping hookbox.
    pub fn new(cfg: MailerConfig) -> Result<Self, EmailError> {
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|source| EmailError::InvalidAddress {
                role: "from",
                address: cfg.from.clone(),
                source,
            })?;
        let server = format!("{}:{}", cfg.host, cfg.port);
        let tls = match cfg.tls {
            SmtpTlsMode::None => Tls::None,
            SmtpTlsMode::Starttls => Tls::Required(tls_parameters(&cfg.host, &server)?),
            SmtpTlsMode::Tls => Tls::Wrapper(tls_parameters(&cfg.host, &server)?),
        };
        // `builder_dangerous` only means "no TLS preset": TLS is set explicitly above.
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host)
            .port(cfg.port)
            .tls(tls)
            // Per-command bound inside lettre; `send` bounds the whole conversation too.
            .timeout(Some(cfg.timeout));
        match (cfg.username, cfg.password) {
            (Some(user), Some(password)) => {
                builder = builder.credentials(Credentials::new(user, password.expose().to_owned()));
            }
            (None, None) => {}
            _ => return Err(EmailError::IncompleteCredentials),
        }
        Ok(Self {
            transport: builder.build(),
            from,
            server,
            timeout: cfg.timeout,
        })
    }

    /// Renders and sends one notification. Each call opens its own connection;
    /// notifications are rare (at most one per webhook per hour).
    pub async fn send(&self, msg: &Notification) -> Result<(), EmailError> {
        let to: Mailbox = msg
            .to
            .parse()
            .map_err(|source| EmailError::InvalidAddress {
                role: "recipient",
                address: msg.to.clone(),
                source,
            })?;
        let (subject, text) = render(msg);
        let message = build_message(self.from.clone(), to, subject, text)?;
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(Ok(_response)) => Ok(()),
            Ok(Err(source)) => Err(EmailError::Transport {
                server: self.server.clone(),
                source,
            }),
            Err(_elapsed) => Err(EmailError::Timeout {
                server: self.server.clone(),
                timeout: self.timeout,
            }),
        }
    }
}

fn tls_parameters(host: &str, server: &str) -> Result<TlsParameters, EmailError> {
    TlsParameters::new(host.to_owned()).map_err(|source| EmailError::Tls {
        server: server.to_owned(),
        source,
    })
}

fn build_message(
    from: Mailbox,
    to: Mailbox,
    subject: String,
    text: String,
) -> Result<Message, EmailError> {
    // Plain 7bit (ASCII) or 8bit (UTF-8) text stays readable for people and tests.
    // lettre accepts them only when every line is under 76 bytes (`render` wraps at
    // 72); anything else falls back to its own quoted-printable or base64. 8bit needs
    // the server's 8BITMIME, which lettre checks before sending.
    let body = Body::new_with_encoding(text.clone(), ContentTransferEncoding::SevenBit)
        .or_else(|_| Body::new_with_encoding(text.clone(), ContentTransferEncoding::EightBit))
        .unwrap_or_else(|_| Body::new(text));
    // A Message-ID in the sender's domain: relays often drop or spam-score mail
    // without one, and lettre's default would reveal this machine's host name.
    let message_id = format!("<{}@{}>", ulid::Ulid::new(), from.email.domain());
    Message::builder()
        .message_id(Some(message_id))
        .from(from)
        .to(to)
        .subject(subject)
        .date_now()
        .header(ContentType::TEXT_PLAIN)
        // RFC 3834: auto-responders must not answer a machine-generated message.
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_owned(),
        ))
        .body(body)
        .map_err(EmailError::Build)
}

/// The longest reason printed; receiver replies can be long and are not ours to trust.
const MAX_REASON_CHARS: usize = 500;

/// Renders a notification as (subject, plain-text body). Pure; never includes
/// secrets, header values, URL credentials or URL query values.
pub fn render(n: &Notification) -> (String, String) {
    let webhook = one_line(&n.webhook_id, 100);
    let delivery = n.delivery_id.as_deref().map(|d| one_line(d, 100));
    let subject = match (n.kind, &delivery) {
        (NotificationKind::WebhookDisabled, _) => format!("[hookbox] webhook {webhook} disabled"),
        (NotificationKind::DeliveryExhausted, Some(d)) => {
            format!("[hookbox] delivery {d} exhausted for webhook {webhook}")
        }
        (NotificationKind::DeliveryExhausted, None) => {
            format!("[hookbox] delivery exhausted for webhook {webhook}")
        }
    };

    let mut body = String::with_capacity(1024);
    body.push_str(match n.kind {
        NotificationKind::DeliveryExhausted => {
            "hookbox gave up on a delivery to one of your webhooks: every retry failed and it will not be attempted again.\n\n"
        }
        NotificationKind::WebhookDisabled => {
            "hookbox disabled one of your webhooks. No events are delivered to it until it is enabled again.\n\n"
        }
    });
    push_field(&mut body, "Tenant", &one_line(&n.tenant, 100));
    push_field(&mut body, "Webhook", &webhook);
    push_field(
        &mut body,
        "URL",
        &one_line(&redact_url(&n.webhook_url), 300),
    );
    if let Some(d) = &delivery {
        push_field(&mut body, "Delivery", d);
    }
    if let Some(e) = &n.event_id {
        push_field(&mut body, "Event", &one_line(e, 100));
    }
    push_field(&mut body, "Time", &model::rfc3339(n.at));
    push_field(&mut body, "Reason", &one_line(&n.reason, MAX_REASON_CHARS));
    body.push('\n');
    if n.suppressed > 0 {
        let s = if n.suppressed == 1 { "" } else { "s" };
        body.push_str(&format!(
            "{} more notification{s} {} suppressed in the last hour (at most one email per webhook per hour).\n\n",
            n.suppressed,
            if n.suppressed == 1 { "was" } else { "were" },
        ));
    }
    // Each API call sits on its own line so that wrapping never splits a command.
    body.push_str("What to do:\n");
    match n.kind {
        NotificationKind::DeliveryExhausted => body.push_str(
            "- Check that the endpoint is reachable and answers 2xx in time.\n",
        ),
        NotificationKind::WebhookDisabled => body.push_str(&format!(
            "- Fix the endpoint, then re-enable the webhook:\n    PATCH /v1/webhooks/{webhook}\n    with the body {{\"enabled\": true}}\n",
        )),
    }
    body.push_str(&format!(
        "- Re-queue the failed deliveries since a time:\n    POST /v1/webhooks/{webhook}/recover\n    with the body {{\"since\": \"<RFC 3339 time>\"}}\n",
    ));
    body.push_str(&format!(
        "- Inspect the attempts in the delivery log:\n    GET /v1/webhooks/{webhook}/deliveries\n",
    ));
    body.push_str("\nThis message was sent automatically by hookbox.\n");
    (subject, wrap(&body))
}

/// Body lines are kept at most this many bytes: lettre (like RFC 2045 practice) only
/// sends a body as readable 7bit/8bit text when no line reaches 76 bytes.
const WRAP_BYTES: usize = 72;
/// Where a field's value starts (`"  Reason:   "`); wrapped values hang there.
const FIELD_INDENT: usize = 12;

fn push_field(body: &mut String, name: &str, value: &str) {
    body.push_str(&format!("  {:<9} {value}\n", format!("{name}:")));
}

/// Wraps every line to `WRAP_BYTES`, at spaces where possible; continuation lines
/// hang under a field's value or a bullet's text.
fn wrap(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for line in text.lines() {
        let hang = if line.starts_with("    ") {
            4
        } else if line.starts_with("  ") {
            FIELD_INDENT
        } else if line.starts_with("- ") {
            2
        } else {
            0
        };
        let mut rest = line;
        let mut first = true;
        loop {
            let indent = if first { 0 } else { hang };
            let width = WRAP_BYTES - indent;
            out.push_str(&" ".repeat(indent));
            if rest.len() <= width {
                out.push_str(rest);
                out.push('\n');
                break;
            }
            // Invariant: index 0 is always a char boundary, and width >= 4 bytes
            // leaves room for at least one char, so `max` is never 0.
            let max = (1..=width)
                .rev()
                .find(|&i| rest.is_char_boundary(i))
                .unwrap_or(rest.len());
            // On a field's first line, the spaces of the label padding are no break.
            let min = if first { hang } else { 0 };
            let cut = rest[..max].rfind(' ').filter(|&i| i > min).unwrap_or(max);
            out.push_str(rest[..cut].trim_end());
            out.push('\n');
            rest = rest[cut..].trim_start();
            first = false;
            if rest.is_empty() {
                break;
            }
        }
    }
    out
}

/// Makes `s` a single printable line of at most `max` chars, so a receiver's reply
/// cannot forge lines of the email or make it unbounded.
fn one_line(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if s.chars().count() > max {
        out.push_str("...");
    }
    out
}

/// Removes userinfo (`user:pass@`) and query values from a URL. Parsing is manual and
/// lenient on purpose: a malformed stored URL must still print without its secrets.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    // The last '@' ends the userinfo: passwords may contain unescaped '@'.
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    // Fragments are never sent to the receiver, so they are dropped too.
    let tail = tail.split_once('#').map_or(tail, |(t, _)| t);
    let redacted_tail = match tail.split_once('?') {
        None => tail.to_owned(),
        Some((path, query)) => {
            // Query values often carry tokens; their names still help to recognise the URL.
            let names: Vec<String> = query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((name, _)) => format!("{name}=****"),
                    None => "****".to_owned(),
                })
                .collect();
            format!("{path}?{}", names.join("&"))
        }
    };
    format!("{scheme}{host}{redacted_tail}")
}

/// The persisted rate-limit state of one webhook's notifications.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottleState {
    /// When the last email was sent, if ever.
    pub last_sent: Option<UnixMs>,
    /// Notifications suppressed since then.
    pub suppressed: u32,
}

/// Whether a notification goes out now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send it, mentioning `suppressed` notifications folded into it.
    Send {
        /// Notifications suppressed since the last email.
        suppressed: u32,
    },
    /// Count it and send nothing.
    Suppress,
}

/// How far ahead of an outcome's time a stored `last_sent` may be and still count
/// as recent. Outcomes are decided in commit order, not in the order of their
/// times: a node (or task) whose outcome came a few milliseconds earlier can find
/// the email of a later one already sent. A minute covers that and the skew of
/// synchronised clocks between nodes.
const OUT_OF_ORDER_MS: i64 = 60_000;

/// Decides whether to send: at most one email per `interval_ms`. A `last_sent`
/// more than [`OUT_OF_ORDER_MS`] in the future (the clock went back) cannot be
/// trusted and does not suppress, so a clock step never silences notifications for
/// the size of the step.
pub fn decide(state: &ThrottleState, now: UnixMs, interval_ms: i64) -> Decision {
    match state.last_sent {
        Some(last) if (-OUT_OF_ORDER_MS..interval_ms).contains(&now.saturating_sub(last)) => {
            Decision::Suppress
        }
        _ => Decision::Send {
            suppressed: state.suppressed,
        },
    }
}

/// The state after acting on `decision` at `now`.
pub fn after(state: &ThrottleState, decision: Decision, now: UnixMs) -> ThrottleState {
    match decision {
        Decision::Send { .. } => ThrottleState {
            last_sent: Some(now),
            suppressed: 0,
        },
        Decision::Suppress => ThrottleState {
            last_sent: state.last_sent,
            suppressed: state.suppressed.saturating_add(1),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn notification(kind: NotificationKind) -> Notification {
        Notification {
            to: "ops@example.com".into(),
            kind,
            tenant: "acme".into(),
            webhook_id: "wh_1".into(),
            webhook_url: "https://user:hunter2@example.com/hook?token=abc123&x=1".into(),
            reason: "HTTP 503\r\nBcc: evil@example.com".into(),
            suppressed: 0,
            at: 1_700_000_000_000,
            delivery_id: Some("dlv_1".into()),
            event_id: Some("evt_1".into()),
        }
    }

    #[test]
    fn throttle_decisions() {
        let sent_at = |t| ThrottleState {
            last_sent: Some(t),
            suppressed: 0,
        };
        // (state, now, expected decision, expected state after)
        let cases = [
            (
                ThrottleState::default(),
                1_000,
                Decision::Send { suppressed: 0 },
                sent_at(1_000),
            ),
            (
                sent_at(1_000),
                1_000 + HOUR - 1,
                Decision::Suppress,
                ThrottleState {
                    last_sent: Some(1_000),
                    suppressed: 1,
                },
            ),
            (
                ThrottleState {
                    last_sent: Some(1_000),
                    suppressed: 4,
                },
                2_000,
                Decision::Suppress,
                ThrottleState {
                    last_sent: Some(1_000),
                    suppressed: 5,
                },
            ),
            (
                ThrottleState {
                    last_sent: Some(1_000),
                    suppressed: 5,
                },
                1_000 + HOUR,
                Decision::Send { suppressed: 5 },
                sent_at(1_000 + HOUR),
            ),
            // Another node's later outcome was decided first: still one email.
            (
                sent_at(10 * HOUR + 8),
                10 * HOUR,
                Decision::Suppress,
                ThrottleState {
                    last_sent: Some(10 * HOUR + 8),
                    suppressed: 1,
                },
            ),
            // Clock went back: the future timestamp does not silence us.
            (
                sent_at(10 * HOUR),
                HOUR,
                Decision::Send { suppressed: 0 },
                sent_at(HOUR),
            ),
            (
                ThrottleState {
                    last_sent: Some(0),
                    suppressed: u32::MAX,
                },
                1,
                Decision::Suppress,
                ThrottleState {
                    last_sent: Some(0),
                    suppressed: u32::MAX,
                },
            ),
        ];
        for (state, now, want, want_after) in cases {
            let got = decide(&state, now, HOUR);
            assert_eq!(got, want, "decide({state:?}, {now})");
            assert_eq!(
                after(&state, got, now),
                want_after,
                "after({state:?}, {now})"
            );
        }
    }

    #[test]
    fn redacts_url_credentials_and_query_values() {
        let cases = [
            ("https://example.com/hook", "https://example.com/hook"),
            (
                "https://user:p@ss@example.com:8443/a?token=abc&flag#frag",
                "https://example.com:8443/a?token=****&****",
            ),
            ("https://tok@example.com", "https://example.com"),
            ("http://example.com?k=v", "http://example.com?k=****"),
            ("not a url", "not a url"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_url(input), want, "{input}");
        }
    }

    #[test]
    fn renders_exhausted_notification() {
        let mut n = notification(NotificationKind::DeliveryExhausted);
        n.suppressed = 3;
        let (subject, body) = render(&n);
        assert_eq!(
            subject,
            "[hookbox] delivery dlv_1 exhausted for webhook wh_1"
        );
        assert!(
            body.contains("https://example.com/hook?token=****&x=****"),
            "{body}"
        );
        assert!(
            !body.contains("hunter2") && !body.contains("abc123"),
            "{body}"
        );
        assert!(body.contains("2023-11-14T22:13:20.000Z"), "{body}");
        assert!(body.contains("3 more notifications were suppressed in the last hour"));
        assert!(body.contains("POST /v1/webhooks/wh_1/recover"));
        assert!(body.contains("dlv_1") && body.contains("evt_1"));
        // The reason stays on one line: no forged header-like lines.
        assert!(!body.lines().any(|l| l.starts_with("Bcc:")), "{body}");
        assert!(body.contains("HTTP 503  Bcc: evil@example.com"));
    }

    #[test]
    fn renders_disabled_notification() {
        let mut n = notification(NotificationKind::WebhookDisabled);
        n.delivery_id = None;
        n.event_id = None;
        n.reason = "x".repeat(2 * MAX_REASON_CHARS);
        let (subject, body) = render(&n);
        assert_eq!(subject, "[hookbox] webhook wh_1 disabled");
        assert!(body.contains("PATCH /v1/webhooks/wh_1\n    with the body {\"enabled\": true}"));
        assert!(!body.contains("suppressed"));
        assert!(!body.contains("Delivery:"));
        // The reason is cut at MAX_REASON_CHARS (and hard-wrapped: join the pieces).
        let joined: String = body.split_whitespace().collect();
        assert!(joined.contains(&format!("{}...", "x".repeat(MAX_REASON_CHARS))));
        assert!(!joined.contains(&"x".repeat(MAX_REASON_CHARS + 1)));
    }

    #[test]
    fn long_values_wrap_into_readable_8bit_text() {
        let mut n = notification(NotificationKind::WebhookDisabled);
        n.reason = "connection refused by the receiver at the given address, \
                    again and again, with ünïcödé, and a very-long-token-without-any-spaces-\
                    0123456789012345678901234567890123456789012345678901234567890123456789"
            .into();
        n.webhook_url = format!("https://example.com/{}", "p".repeat(120));
        let (subject, body) = render(&n);
        for line in body.lines() {
            assert!(line.len() <= WRAP_BYTES, "{} bytes: {line:?}", line.len());
        }
        // Wrapped values hang under the value column, and nothing is lost.
        assert!(body.contains("\n            again and again,"), "{body}");
        let joined: String = body.split_whitespace().collect();
        assert!(joined.contains(&format!("https://example.com/{}", "p".repeat(120))));
        let message = build_message(
            "hookbox@example.com".parse().expect("valid"),
            "ops@example.com".parse().expect("valid"),
            subject,
            body,
        )
        .expect("message builds");
        let encoding = message.headers().get::<ContentTransferEncoding>();
        assert_eq!(encoding, Some(ContentTransferEncoding::EightBit));
    }

    #[test]
    fn mailer_config_is_validated() {
        let cfg = MailerConfig {
            host: "127.0.0.1".into(),
            port: 25,
            tls: SmtpTlsMode::None,
            username: None,
            password: None,
            from: "hookbox <hookbox@example.com>".into(),
            timeout: Duration::from_secs(5),
        };
        assert!(Mailer::new(cfg.clone()).is_ok());
        let bad_from = MailerConfig {
            from: "not an address".into(),
            ..cfg.clone()
        };
        assert!(matches!(
            Mailer::new(bad_from),
            Err(EmailError::InvalidAddress { role: "from", .. })
        ));
        let half_credentials = MailerConfig {
            username: Some("user".into()),
            ..cfg
        };
        assert!(matches!(
            Mailer::new(half_credentials),
            Err(EmailError::IncompleteCredentials)
        ));
    }
}
