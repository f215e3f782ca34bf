//! The check of each field [`Kind`] of the request field table (`table.rs`): a
//! present value in, the checked value (its type fixed by the kind) or the reasons
//! out. Pure: no I/O, never panics on client input, never echoes a secret value.

use super::event::check_idempotency_key;
use super::fields::*;
use super::table::{Cx, Kind, OAUTH, Val, reserved_with_oauth};
use super::*;
use crate::api::dto::MASK;
use crate::filter::Filter;
use crate::model::{self, OAuthConfig, Scope, Secret};

impl Kind {
    /// Checks a present, non-null (or, for [`Req::Opt`], null) value.
    pub(super) fn check(self, f: &Field, cx: &mut Cx, r: &mut Vec<String>) -> Option<Val> {
        let n = &f.name;
        let v: Val = match self {
            Kind::Text(0, max) => {
                let s = f.string(r)?;
                if s.chars().count() > max {
                    r.push(format!("{n} must be at most {max} characters"));
                    return None;
                }
                Box::new(s.to_owned())
            }
            Kind::Text(_, max) => Box::new(f.text(max, r)?),
            Kind::IngestType => Box::new(f.text(MAX_EVENT_TYPE_LEN, r)?),
            Kind::Name => {
                let s = f.text(MAX_NAME_LEN, r)?;
                Box::new(no_control_chars(n, &s, r).then_some(s)?)
            }
            Kind::TenantId => {
                let s = f.string(r)?;
                let ok = !s.is_empty()
                    && s.len() <= MAX_TENANT_ID_LEN
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if !ok {
                    r.push(format!(
                        "{n} must be 1 to {MAX_TENANT_ID_LEN} letters, digits, \"_\" or \"-\""
                    ));
                    return None;
                }
                Box::new(s.to_owned())
            }
            Kind::Url => {
                let url = check_url(n, f.string(r)?, cx.ctx, r)?;
                // Stored secrets belong to the destination: a mask keeps them only
                // while the URL stays at the same scheme, host and port.
                if cx
                    .stored_url
                    .is_some_and(|u| !super::origin::same_destination(u, &url))
                {
                    cx.moved = Some(format!("{n} moves to another host"));
                }
                Box::new(url)
            }
            Kind::EventTypes => Box::new(check_event_types(f, cx.ctx, r)?),
            Kind::Channels { .. } => Box::new(check_channels(f, r)?),
            Kind::Headers(rules) => {
                let names = f.value.as_object().into_iter().flat_map(|m| m.keys());
                let out = check_headers(f, rules, cx.keep_headers, cx.moved.as_deref(), r);
                reserved_with_oauth(cx, names.map(String::as_str), r);
                Box::new(out?)
            }
            Kind::Metadata => Box::new(check_metadata(f, r)?),
            Kind::Secret => Box::new(check_signing_secret(n, f.value, r)?),
            Kind::Secrets => Box::new(check_secrets(f, r).unwrap_or_default()),
            Kind::Int(min, max) => match whole_number(f.value) {
                Some(v) if (min..=max).contains(&v) => Box::new(v),
                _ => {
                    r.push(format!("{n} must be an integer between {min} and {max}"));
                    return None;
                }
            },
            Kind::Seconds(min, max) => match whole_number(f.value) {
                Some(v) if (min..=max).contains(&v) => Box::new(v),
                _ => {
                    r.push(format!(
                        "{n} must be a whole number of seconds from {min} to {max} (24 h)"
                    ));
                    return None;
                }
            },
            Kind::Ordering => match f.value.as_str().and_then(model::Ordering::parse) {
                Some(o) => Box::new(o),
                None => {
                    r.push(format!("{n} must be \"none\" or \"fifo\""));
                    return None;
                }
            },
            Kind::Bool { strict_text } => match f.value.as_bool() {
                Some(b) => Box::new(b),
                None if strict_text => {
                    r.push(format!("{n} must be a boolean"));
                    return None;
                }
                None => {
                    r.push(format!("{n} must be true or false"));
                    return None;
                }
            },
            Kind::Email => Box::new(check_email(f, r)?),
            Kind::OAuth => {
                let before = r.len();
                let prefix = format!("{n}.");
                let mut v = OAUTH.read(f.value, &prefix, n, &mut cx.oauth(), r);
                if r.len() != before {
                    return None;
                }
                Box::new(OAuthConfig {
                    token_url: v.take("token_url")?,
                    client_id: v.take("client_id")?,
                    client_secret: v.take("client_secret")?,
                    scope: v.take("scope"),
                    headers: v.take("headers").unwrap_or_default(),
                })
            }
            Kind::ClientSecret => {
                let s = f.text(MAX_TEXT_LEN, r)?;
                if s != MASK {
                    return Some(Box::new(Secret::new(s)));
                }
                if let Some(why) = &cx.moved {
                    r.push(format!("{n} must be sent again: {why}"));
                    return None;
                }
                let Some(kept) = cx.keep_secret else {
                    r.push(format!("{n} is the mask \"****\"; send the real value"));
                    return None;
                };
                Box::new(kept.clone())
            }
            Kind::Catalogued => {
                let s = f.string(r)?;
                if !(cx.ctx.known_event_type)(s) {
                    r.push(format!("event type {} is not in the catalogue", quote(s)));
                    return None;
                }
                Box::new(s.to_owned())
            }
            Kind::NewEventType => Box::new(check_new_event_type(n, f.string(r)?, r)?),
            Kind::JsonSchema if f.value.is_object() => Box::new(f.value.to_string()),
            Kind::JsonSchema => {
                r.push(format!("{n} must be a JSON object (a JSON Schema)"));
                return None;
            }
            Kind::Since => {
                let s = f.string(r)?;
                match model::parse_rfc3339(s) {
                    Some(ms) if ms <= cx.now => Box::new(ms),
                    Some(_) => {
                        r.push(format!("{n} must not be in the future"));
                        return None;
                    }
                    None => {
                        r.push(format!(
                            "{n} must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z"
                        ));
                        return None;
                    }
                }
            }
            // Filter reasons already name where they apply (`filter.$or[1]: ...`).
            Kind::Filter => Box::new(Filter::parse(f.value).map_err(|e| r.extend(e)).ok()?),
            Kind::Scopes => Box::new(check_scopes(f, r)?),
            Kind::Any | Kind::Batch => Box::new(f.value.to_string()),
            Kind::IdempotencyKey => {
                let s = f.string(r)?;
                Box::new(check_idempotency_key(n, s, r).then(|| s.to_owned())?)
            }
        };
        Some(v)
    }
}

/// A new catalogue name: 1..=128 name characters, not `all`, not `hookbox.*`.
fn check_new_event_type(n: &str, s: &str, r: &mut Vec<String>) -> Option<String> {
    let before = r.len();
    if s.is_empty() || s.chars().count() > MAX_EVENT_TYPE_LEN || !s.chars().all(event_name_char) {
        r.push(format!(
            "{n} must be 1 to {MAX_EVENT_TYPE_LEN} letters, digits, \"_\", \".\", \":\" or \"-\""
        ));
    }
    if s == "all" {
        r.push(format!(
            "{n} must not be \"all\": it means every event type"
        ));
    }
    if s.starts_with("hookbox.") {
        r.push(format!(
            "{n} must not start with \"hookbox.\": those names are reserved for operational events"
        ));
    }
    (r.len() == before).then(|| s.to_owned())
}

/// API key scopes: 1 or more known names, duplicates dropped, in the order given.
fn check_scopes(f: &Field, r: &mut Vec<String>) -> Option<Vec<Scope>> {
    let items = f.strings(true, usize::MAX, r)?;
    let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.as_str().map(|s| (s, Scope::parse(s))) {
            Some((_, Some(scope))) if !out.contains(&scope) => out.push(scope),
            Some((_, Some(_))) => {}
            Some((s, None)) => r.push(format!(
                "scope {} is not one of {}",
                quote(s),
                known.join(", ")
            )),
            None => r.push(format!("{}[{i}] must be a string", f.name)),
        }
    }
    Some(out)
}
