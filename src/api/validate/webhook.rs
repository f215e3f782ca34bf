//! Webhook bodies: create, patch (against the stored webhook), rotate, test event
//! and recover. Pure: no I/O; the catalogue and SSRF checks come in through [`Ctx`].

use std::collections::BTreeMap;

use serde_json::Value;

use super::table::{Cx, PLAIN, RECOVER, ROTATE, TEST_EVENT, WEBHOOK};
use super::*;
use crate::filter::Filter;
use crate::model::{self, OAuthConfig, Secret, UnixMs, Webhook};

/// A validated `POST /v1/webhooks` body, ready to become a [`model::Webhook`].
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSpec {
    pub url: String,
    /// Normalised filters: exact names, `*`, or `prefix.*`/`prefix_*`; no duplicates.
    pub event_types: Vec<String>,
    /// Channel filter; empty means every channel. No duplicates.
    pub channels: Vec<String>,
    pub description: Option<String>,
    pub headers: BTreeMap<String, Secret>,
    pub oauth: Option<OAuthConfig>,
    /// 0..=2 `whsec_` secrets, current first; empty means the handler generates one.
    pub secrets: Vec<Secret>,
    pub notification_email: Option<String>,
    pub enabled: bool,
    pub metadata: BTreeMap<String, String>,
    pub rate_limit_per_second: Option<u32>,
    /// `"none"` (the default) or `"fifo"`.
    pub ordering: model::Ordering,
    pub filter: Option<Filter>,
}

/// A validated `PATCH /v1/webhooks/{id}` body. `None` leaves a field alone; for
/// clearable fields `Some(None)` (or an empty collection) clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    pub description: Option<Option<String>>,
    pub headers: Option<BTreeMap<String, Secret>>,
    pub oauth: Option<Option<OAuthConfig>>,
    pub notification_email: Option<Option<String>>,
    pub enabled: Option<bool>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub rate_limit_per_second: Option<Option<u32>>,
    pub ordering: Option<model::Ordering>,
    pub filter: Option<Option<Filter>>,
}

impl WebhookPatch {
    /// Applies the patch to `w` and stamps `updated_at = now`.
    ///
    /// Re-enabling a disabled webhook forgets why it was disabled and its failure
    /// run (so auto-disable starts afresh); disabling it through the API records
    /// `"disabled by API"` as the reason.
    pub fn apply(self, w: &mut Webhook, now: UnixMs) {
        if let Some(url) = self.url {
            w.url = url;
        }
        if let Some(event_types) = self.event_types {
            w.event_types = event_types;
        }
        if let Some(channels) = self.channels {
            w.channels = channels;
        }
        if let Some(description) = self.description {
            w.description = description;
        }
        if let Some(headers) = self.headers {
            w.headers = headers;
        }
        if let Some(oauth) = self.oauth {
            w.oauth = oauth;
        }
        if let Some(email) = self.notification_email {
            w.notification_email = email;
        }
        if let Some(metadata) = self.metadata {
            w.metadata = metadata;
        }
        if let Some(rate) = self.rate_limit_per_second {
            w.rate_limit_per_second = rate;
        }
        if let Some(ordering) = self.ordering {
            w.ordering = ordering;
        }
        if let Some(filter) = self.filter {
            w.filter = filter;
        }
        if let Some(enabled) = self.enabled {
            if enabled && !w.enabled {
                w.disabled_reason = None;
                w.disabled_at = None;
                w.failing_since = None;
            } else if !enabled && w.enabled {
                w.disabled_reason = Some("disabled by API".to_owned());
                w.disabled_at = Some(now);
            }
            w.enabled = enabled;
        }
        w.updated_at = now;
    }
}

/// A validated `POST /v1/webhooks/{id}/secrets/rotate` body.
#[derive(Debug, Clone, PartialEq)]
pub struct RotateSpec {
    /// The new current secret; `None` means the handler generates one.
    pub secret: Option<Secret>,
    /// How long the previous secret keeps signing.
    pub grace_seconds: u64,
}

/// A validated `POST /v1/webhooks/{id}/test` body.
#[derive(Debug, Clone, PartialEq)]
pub struct TestEventSpec {
    /// A catalogued event type.
    pub event_type: String,
    /// Free text put in the test payload (a default when the client sent none).
    pub message: String,
}

/// Reads every webhook field of a create (`current == None`) or patch body into a
/// patch, plus the create-only secrets, from the field table [`WEBHOOK`].
fn webhook_fields(
    body: &Value,
    ctx: &Ctx,
    current: Option<&Webhook>,
    r: &mut Vec<String>,
) -> (WebhookPatch, Vec<Secret>) {
    let mut v = WEBHOOK.read(body, "", "request body", &mut Cx::new(ctx, 0, current), r);
    let p = WebhookPatch {
        url: v.take("url"),
        event_types: v.take("event_types"),
        channels: v.patch("channels").map(Option::unwrap_or_default),
        description: v.patch("description"),
        headers: v.patch("headers").map(Option::unwrap_or_default),
        oauth: v.patch("oauth"),
        notification_email: v.patch("notification_email"),
        enabled: v.take("enabled"),
        metadata: v.patch("metadata").map(Option::unwrap_or_default),
        rate_limit_per_second: v
            .patch::<u64>("rate_limit_per_second")
            .map(|n| n.and_then(|n| u32::try_from(n).ok())),
        ordering: v.take("ordering"),
        filter: v.patch("filter"),
    };
    (p, v.take("secrets").unwrap_or_default())
}

/// Validates a `POST /v1/webhooks` body (seed aliases included: `subscriptions`
/// and `events` for `event_types`, `facilities` for `channels`,
/// `oauth_configuration` for `oauth`, `notificationEmail`).
pub fn webhook_create(body: &Value, ctx: &Ctx) -> Result<WebhookSpec, Vec<String>> {
    let mut r = Vec::new();
    let (p, secrets) = webhook_fields(body, ctx, None, &mut r);
    if !r.is_empty() {
        return Err(r);
    }
    let (Some(url), Some(event_types)) = (p.url, p.event_types) else {
        // Unreachable: a missing or invalid url/event_types always adds a reason.
        return Err(vec!["url and event_types are required".to_owned()]);
    };
    Ok(WebhookSpec {
        url,
        event_types,
        channels: p.channels.unwrap_or_default(),
        description: p.description.flatten(),
        headers: p.headers.unwrap_or_default(),
        oauth: p.oauth.flatten(),
        secrets,
        notification_email: p.notification_email.flatten(),
        enabled: p.enabled.unwrap_or(true),
        metadata: p.metadata.unwrap_or_default(),
        rate_limit_per_second: p.rate_limit_per_second.flatten(),
        ordering: p.ordering.unwrap_or_default(),
        filter: p.filter.flatten(),
    })
}

/// Validates a `PATCH /v1/webhooks/{id}` body against the stored webhook. Same
/// rules and aliases as create; `null` clears optional fields; `secrets` are
/// refused (rotation has its own route).
pub fn webhook_patch(
    body: &Value,
    current: &Webhook,
    ctx: &Ctx,
) -> Result<WebhookPatch, Vec<String>> {
    let mut r = Vec::new();
    let (p, _) = webhook_fields(body, ctx, Some(current), &mut r);
    if r.is_empty() { Ok(p) } else { Err(r) }
}

// ---------------------------------------------------------------------------
// Other small bodies.

/// Validates a rotation body `{secret?, grace_seconds?}`; `{}` is fine.
pub fn rotate(body: &Value) -> Result<RotateSpec, Vec<String>> {
    let mut v = ROTATE.check(body, &mut Cx::new(&PLAIN, 0, None))?;
    Ok(RotateSpec {
        secret: v.take("secret"),
        grace_seconds: v.take("grace_seconds").unwrap_or(DEFAULT_GRACE_SECONDS),
    })
}

/// Validates a test-event body `{event_type (alias eventType), message?}`.
pub fn test_event(body: &Value, ctx: &Ctx) -> Result<TestEventSpec, Vec<String>> {
    let mut v = TEST_EVENT.check(body, &mut Cx::new(ctx, 0, None))?;
    Ok(TestEventSpec {
        // Required: present once the table's check passed.
        event_type: v.take("event_type").unwrap_or_default(),
        message: v
            .take("message")
            .unwrap_or_else(|| DEFAULT_TEST_MESSAGE.to_owned()),
    })
}

/// A validated `POST /v1/webhooks/{id}/filter/test` body: the event to try.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterTestSpec {
    pub event_type: String,
    /// `data` as JSON text (filters read it as ingest stores it).
    pub data: String,
    /// The event's time; now when the body has none.
    pub timestamp: UnixMs,
}

/// Validates a filter-test body `{event: {type, data, timestamp?}}`.
pub fn filter_test(body: &Value) -> Result<FilterTestSpec, Vec<String>> {
    filter_test_at(body, model::now_ms())
}

/// [`filter_test`] with an explicit clock (the default `timestamp`).
pub fn filter_test_at(body: &Value, now: UnixMs) -> Result<FilterTestSpec, Vec<String>> {
    let mut r = Vec::new();
    let Some(mut fields) = Fields::of(body, String::new(), "request body", &mut r) else {
        return Err(r);
    };
    let event = required(fields.get(&["event"], &mut r), "event", &mut r);
    fields.finish(&mut r);
    let Some(mut event) =
        event.and_then(|e| Fields::of(e.value, "event.".to_owned(), "event", &mut r))
    else {
        return Err(r);
    };
    let event_type = required(event.get(&["type"], &mut r), "event.type", &mut r)
        .and_then(|f| f.text(MAX_EVENT_TYPE_LEN, &mut r));
    let data = match event.get(&["data"], &mut r) {
        Some(f) => Some(f.value.to_string()),
        None => {
            r.push("event.data is required".to_owned());
            None
        }
    };
    let timestamp = match event.get(&["timestamp"], &mut r) {
        Some(f) if !f.is_null() => f.string(&mut r).and_then(|s| {
            let ms = model::parse_rfc3339(s);
            if ms.is_none() {
                r.push(format!(
                    "{} must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z",
                    f.name
                ));
            }
            ms
        }),
        _ => Some(now),
    };
    event.finish(&mut r);
    match (event_type, data, timestamp) {
        (Some(event_type), Some(data), Some(timestamp)) if r.is_empty() => Ok(FilterTestSpec {
            event_type,
            data,
            timestamp,
        }),
        _ => Err(r),
    }
}

/// Validates a recover body `{since: RFC 3339}` against the current clock.
pub fn recover(body: &Value) -> Result<UnixMs, Vec<String>> {
    recover_at(body, model::now_ms())
}

/// [`recover`] with an explicit clock: `since` must not be after `now`.
pub fn recover_at(body: &Value, now: UnixMs) -> Result<UnixMs, Vec<String>> {
    recover_spec_at(body, now).map(|(since, _)| since)
}

/// A recover body: `since` and whether it is a dry run (`dry_run`, default false:
/// only count what would be re-queued).
pub fn recover_spec(body: &Value) -> Result<(UnixMs, bool), Vec<String>> {
    recover_spec_at(body, model::now_ms())
}

/// [`recover_spec`] with an explicit clock.
pub fn recover_spec_at(body: &Value, now: UnixMs) -> Result<(UnixMs, bool), Vec<String>> {
    let mut v = RECOVER.check(body, &mut Cx::new(&PLAIN, now, None))?;
    // `since` is required: present once the table's check passed.
    Ok((
        v.take("since").unwrap_or(now),
        v.take("dry_run").unwrap_or(false),
    ))
}
