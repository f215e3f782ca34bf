//! Webhook bodies: create, patch (against the stored webhook), rotate, test event
//! and recover. Pure: no I/O; the catalogue and SSRF checks come in through [`Ctx`].

use std::collections::BTreeMap;

use serde_json::Value;

use super::fields::*;
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
/// patch, plus the create-only secrets. Reasons accumulate in `r`.
fn webhook_fields(
    body: &Value,
    ctx: &Ctx,
    current: Option<&Webhook>,
    r: &mut Vec<String>,
) -> (WebhookPatch, Vec<Secret>) {
    let mut p = WebhookPatch::default();
    let mut secrets = Vec::new();
    let Some(mut fields) = Fields::of(body, String::new(), "request body", r) else {
        return (p, secrets);
    };
    let creating = current.is_none();

    match fields.get(&["url"], r) {
        Some(f) if !f.is_null() => {
            p.url = f.string(r).and_then(|s| check_url(&f.name, s, ctx, r));
        }
        Some(f) => r.push(format!("{} must not be null", f.name)),
        None if creating => r.push("url is required".to_owned()),
        None => {}
    }
    match fields.get(names("event_types"), r) {
        Some(f) if !f.is_null() => p.event_types = check_event_types(&f, ctx, r),
        Some(f) => r.push(format!("{} must not be null", f.name)),
        None if creating => r.push("event_types is required".to_owned()),
        None => {}
    }
    match fields.get(names("channels"), r) {
        Some(f) if f.is_null() => p.channels = Some(Vec::new()),
        Some(f) => p.channels = check_channels(&f, r),
        None => {}
    }
    match fields.get(&["description"], r) {
        Some(f) if f.is_null() => p.description = Some(None),
        Some(f) => p.description = check_description(&f, r).map(Some),
        None => {}
    }

    // OAuth first: whether `authorization` is a reserved header depends on it.
    let oauth_field = fields.get(names("oauth"), r);
    let oauth_set = match &oauth_field {
        Some(f) => !f.is_null(),
        None => current.is_some_and(|w| w.oauth.is_some()),
    };
    match &oauth_field {
        Some(f) if f.is_null() => p.oauth = Some(None),
        Some(f) => {
            let cur = current.and_then(|w| w.oauth.as_ref());
            p.oauth = check_oauth(f, ctx, cur, r).map(Some);
        }
        None => {}
    }
    // Stored header values belong to the webhook's destination: a mask keeps them
    // only while `url` stays at the same scheme, host and port.
    let url_moved = match (current, &p.url) {
        (Some(w), Some(next)) if !super::origin::same_destination(&w.url, next) => {
            Some("url moves to another host".to_owned())
        }
        _ => None,
    };
    let headers_field = fields.get(&["headers"], r);
    let header_names: Vec<&str> = match &headers_field {
        Some(f) => f
            .value
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default(),
        None => current
            .map(|w| w.headers.keys().map(String::as_str).collect())
            .unwrap_or_default(),
    };
    match &headers_field {
        Some(f) if f.is_null() => p.headers = Some(BTreeMap::new()),
        Some(f) => {
            p.headers = check_headers(
                f,
                &WEBHOOK_HEADERS,
                current.map(|w| &w.headers),
                url_moved.as_deref(),
                r,
            )
        }
        // Stored header values left out of the PATCH would follow the webhook to
        // its new host just as masked ones would.
        None => {
            if let (Some(why), Some(w)) = (&url_moved, current) {
                for name in w.headers.keys() {
                    r.push(format!("headers.{name} must be sent again: {why}"));
                }
            }
        }
    }
    if oauth_set {
        for name in header_names {
            if name.eq_ignore_ascii_case("authorization") {
                r.push(format!(
                    "header {} is reserved when oauth is set",
                    quote(name)
                ));
            }
        }
    }

    match fields.get(&["secrets"], r) {
        Some(f) if !creating => r.push(format!(
            "{} cannot be changed here; use POST /v1/webhooks/{{id}}/secrets/rotate",
            f.name
        )),
        Some(f) if f.is_null() => {}
        Some(f) => secrets = check_secrets(&f, r).unwrap_or_default(),
        None => {}
    }
    match fields.get(names("notification_email"), r) {
        Some(f) if f.is_null() => p.notification_email = Some(None),
        Some(f) => p.notification_email = check_email(&f, r).map(Some),
        None => {}
    }
    if let Some(f) = fields.get(&["enabled"], r) {
        p.enabled = check_bool(&f, r);
    }
    match fields.get(&["metadata"], r) {
        Some(f) if f.is_null() => p.metadata = Some(BTreeMap::new()),
        Some(f) => p.metadata = check_metadata(&f, r),
        None => {}
    }
    match fields.get(&["rate_limit_per_second"], r) {
        Some(f) if f.is_null() => p.rate_limit_per_second = Some(None),
        Some(f) => p.rate_limit_per_second = check_rate_limit(&f, r).map(Some),
        None => {}
    }
    if let Some(f) = fields.get(&["ordering"], r) {
        p.ordering = check_ordering(&f, r);
    }
    match fields.get(&["filter"], r) {
        Some(f) if f.is_null() => p.filter = Some(None),
        // Filter reasons already name where they apply (`filter.$or[1]: ...`).
        Some(f) => {
            p.filter = Filter::parse(f.value)
                .map_err(|e| r.extend(e))
                .ok()
                .map(Some)
        }
        None => {}
    }
    fields.finish(r);
    (p, secrets)
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

/// `ordering`: `"none"` or `"fifo"` (not null: there is nothing to clear).
fn check_ordering(f: &Field, r: &mut Vec<String>) -> Option<model::Ordering> {
    let o = f.value.as_str().and_then(model::Ordering::parse);
    if o.is_none() {
        r.push(format!("{} must be \"none\" or \"fifo\"", f.name));
    }
    o
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
    let mut r = Vec::new();
    let Some(mut fields) = Fields::of(body, String::new(), "request body", &mut r) else {
        return Err(r);
    };
    let secret = match fields.get(&["secret"], &mut r) {
        Some(f) if !f.is_null() => check_signing_secret(&f.name, f.value, &mut r),
        _ => None,
    };
    let grace_seconds = match fields.get(&["grace_seconds"], &mut r) {
        Some(f) if !f.is_null() => match whole_number(f.value) {
            Some(n) if n <= MAX_GRACE_SECONDS => n,
            _ => {
                r.push(format!(
                    "{} must be an integer between 0 and {MAX_GRACE_SECONDS}",
                    f.name
                ));
                0
            }
        },
        _ => DEFAULT_GRACE_SECONDS,
    };
    fields.finish(&mut r);
    if r.is_empty() {
        Ok(RotateSpec {
            secret,
            grace_seconds,
        })
    } else {
        Err(r)
    }
}

/// Validates a test-event body `{event_type (alias eventType), message?}`.
pub fn test_event(body: &Value, ctx: &Ctx) -> Result<TestEventSpec, Vec<String>> {
    let mut r = Vec::new();
    let Some(mut fields) = Fields::of(body, String::new(), "request body", &mut r) else {
        return Err(r);
    };
    let event_type = required(
        fields.get(names("event_type"), &mut r),
        "event_type",
        &mut r,
    )
    .and_then(|f| {
        let s = f.string(&mut r)?;
        if (ctx.known_event_type)(s) {
            Some(s.to_owned())
        } else {
            r.push(format!("event type {} is not in the catalogue", quote(s)));
            None
        }
    });
    let message = match fields.get(&["message"], &mut r) {
        Some(f) if !f.is_null() => f.text(MAX_TEXT_LEN, &mut r),
        _ => Some(DEFAULT_TEST_MESSAGE.to_owned()),
    };
    fields.finish(&mut r);
    match (event_type, message) {
        (Some(event_type), Some(message)) if r.is_empty() => Ok(TestEventSpec {
            event_type,
            message,
        }),
        _ => Err(r),
    }
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
    let mut r = Vec::new();
    let Some(mut fields) = Fields::of(body, String::new(), "request body", &mut r) else {
        return Err(r);
    };
    let since = required(fields.get(&["since"], &mut r), "since", &mut r).and_then(|f| {
        let s = f.string(&mut r)?;
        match model::parse_rfc3339(s) {
            Some(ms) if ms <= now => Some(ms),
            Some(_) => {
                r.push(format!("{} must not be in the future", f.name));
                None
            }
            None => {
                r.push(format!(
                    "{} must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z",
                    f.name
                ));
                None
            }
        }
    });
    let dry_run = match fields.get(&["dry_run"], &mut r) {
        None => false,
        Some(f) if f.is_null() => false,
        Some(f) => f.value.as_bool().unwrap_or_else(|| {
            r.push(format!("{} must be true or false", f.name));
            false
        }),
    };
    fields.finish(&mut r);
    match since {
        Some(ms) if r.is_empty() => Ok((ms, dry_run)),
        _ => Err(r),
    }
}
