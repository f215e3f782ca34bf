//! The webhook field checkers (URL, event-type filters, channels, headers, OAuth,
//! signing secrets, e-mail, metadata), called from the field table's kinds.
//! Pure: no I/O, never echoes a secret value in a reason.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use serde_json::Value;

use super::*;
use crate::api::dto::MASK;
use crate::model::Secret;

/// Whether `host` can name a receiver: an IPv6 address inside brackets, or dot
/// separated labels of ASCII letters, digits, `-` and `_` (which an IPv4 address
/// also is), with at most one trailing dot (a fully qualified name); what the
/// document's URL pattern says.
fn host_shape_ok(host: &str, bracketed: bool) -> bool {
    if bracketed {
        return host.parse::<std::net::Ipv6Addr>().is_ok();
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    host.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Whether a URL's path and query use only what RFC 3986 allows there: unreserved
/// characters, sub-delimiters, `:`, `@`, `/`, `?` (in the query) and `%` followed
/// by two hex digits; what the document's URL pattern says. (`http::Uri` lets more
/// through, such as `{`, `|` or a bare `%`.)
fn path_query_ok(pq: &str) -> bool {
    let (path, query) = pq.split_once('?').unwrap_or((pq, ""));
    escaped_ok(path, b"") && escaped_ok(query, b"?")
}

/// Whether `part` holds only RFC 3986 path characters, `extra`, and `%XX` escapes.
fn escaped_ok(part: &str, extra: &[u8]) -> bool {
    let b = part.as_bytes();
    let hex = |i: usize| b.get(i).is_some_and(u8::is_ascii_hexdigit);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
        } else if c.is_ascii_alphanumeric()
            || b"-._~!$&'()*+,;=:@/".contains(&c)
            || extra.contains(&c)
        {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// required, no userinfo or fragment, at most 2048 bytes, host not blocked.
pub(super) fn check_url(name: &str, s: &str, ctx: &Ctx, r: &mut Vec<String>) -> Option<String> {
    let before = r.len();
    if s.len() > MAX_URL_LEN {
        r.push(format!("{name} must be at most {MAX_URL_LEN} characters"));
        return None;
    }
    if has_zone_id(s) {
        // A zone id (`[fe80::1%25lo]`, or `%lo` raw) names a local interface: the
        // host is not one global address the SSRF guard could judge.
        r.push(format!(
            "{name} host must not carry an IPv6 zone id (\"%\" inside the brackets)"
        ));
        return None;
    }
    let uri: http::Uri = match s.parse() {
        Ok(uri) => uri,
        Err(_) => {
            r.push(format!("{name} is not a valid URL"));
            return None;
        }
    };
    // http::Uri silently drops a fragment; receivers never see one, so a URL with
    // a fragment would not be delivered to as written.
    if s.contains('#') {
        r.push(format!("{name} must not contain a fragment"));
    }
    if uri
        .path_and_query()
        .is_some_and(|pq| !path_query_ok(pq.as_str()))
    {
        r.push(format!(
            "{name} path and query may hold only letters, digits, \"-._~!$&'()*+,;=:@/?\" \
             and %XX escapes"
        ));
    }
    match uri.scheme_str() {
        Some(scheme) if scheme.eq_ignore_ascii_case("https") => {}
        Some(scheme) if scheme.eq_ignore_ascii_case("http") => {
            if ctx.require_https {
                r.push(format!("{name} must be https"));
            }
        }
        Some(_) => r.push(format!("{name} must use http or https")),
        None => r.push(format!("{name} must be an absolute http(s) URL")),
    }
    match uri.authority() {
        None => r.push(format!("{name} must have a host")),
        Some(authority) => {
            if authority.as_str().contains('@') {
                r.push(format!("{name} must not contain user credentials"));
            }
            let host = authority.host();
            let bare = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            if bare.is_empty() {
                r.push(format!("{name} must have a host"));
            } else if !host_shape_ok(bare, bare.len() != host.len()) {
                r.push(format!(
                    "{name} host {bare} is not a host name (letters, digits, \"-\" and \"_\" \
                     between dots) or an IP address"
                ));
            } else if let Some(why) = (ctx.host_blocked)(bare) {
                r.push(format!("{name} host {bare} is not allowed: {why}"));
            }
            // http::Uri accepts any digits as a port (e.g. 99999); an empty port
            // (`host:`) means the default and is fine.
            let port_ok = match port_text(authority.as_str()) {
                None | Some("") => true,
                Some(p) => p.parse::<u16>().is_ok_and(|n| n != 0),
            };
            if !port_ok {
                r.push(format!("{name} port must be between 1 and 65535"));
            }
        }
    }
    (r.len() == before).then(|| s.to_owned())
}

/// Whether the authority of URL text `s` holds a bracketed IPv6 literal with a
/// zone id (`%` inside the brackets, encoded as `%25` or raw).
fn has_zone_id(s: &str) -> bool {
    let rest = s.split_once("://").map_or(s, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host = authority.rsplit('@').next().unwrap_or(authority);
    host.split_once('[')
        .and_then(|(_, tail)| tail.split_once(']'))
        .is_some_and(|(literal, _)| literal.contains('%'))
}

/// The port text of an authority (`user@host:port`, `[v6]:port`), if any.
pub(super) fn port_text(authority: &str) -> Option<&str> {
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let tail = match host_port.rfind(']') {
        Some(i) => host_port.get(i + 1..).unwrap_or(""),
        None => host_port,
    };
    tail.rsplit_once(':').map(|(_, port)| port)
}

/// Whether `c` may appear in an event-type name (and a filter's prefix).
pub(super) fn event_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')
}

/// Normalises one event-type filter: `*`/`all` -> `*`; `prefix.*`/`prefix_*`
/// kept; an exact name must be in the catalogue.
pub(super) fn event_filter(s: &str, ctx: &Ctx) -> Result<String, String> {
    if s == "*" || s == "all" {
        return Ok("*".to_owned());
    }
    let Some(stem_sep) = s.strip_suffix('*') else {
        return if (ctx.known_event_type)(s) {
            Ok(s.to_owned())
        } else {
            Err(format!("event type {} is not in the catalogue", quote(s)))
        };
    };
    let Some(stem) = stem_sep.strip_suffix(['.', '_']) else {
        return Err(format!(
            "event type filter {} is not valid: \"*\" may only follow \".\" or \"_\" at the end",
            quote(s)
        ));
    };
    if stem.is_empty() {
        Err(format!(
            "event type filter {} needs a non-empty prefix",
            quote(s)
        ))
    } else if !stem.chars().all(event_name_char) {
        Err(format!(
            "event type filter {} may only contain letters, digits, \"_\", \".\", \":\" and \"-\" before the \"*\"",
            quote(s)
        ))
    } else {
        Ok(s.to_owned())
    }
}

/// `event_types` (or an alias): 1..=100 filters, normalised, duplicates removed.
pub(super) fn check_event_types(f: &Field, ctx: &Ctx, r: &mut Vec<String>) -> Option<Vec<String>> {
    let items = f.strings(true, MAX_EVENT_TYPES, r)?;
    let before = r.len();
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Some(s) = item.as_str() else {
            r.push(format!("{}[{i}] must be a string", f.name));
            continue;
        };
        match event_filter(s, ctx) {
            Ok(filter) if !out.contains(&filter) => out.push(filter),
            Ok(_) => {}
            Err(reason) => r.push(reason),
        }
    }
    (r.len() == before).then_some(out)
}

/// A list of channel names (webhook filter or event channels): at most 100, each
/// 1..=128 characters, duplicates removed.
pub(super) fn check_channel_list<'s>(
    name: &str,
    items: impl ExactSizeIterator<Item = Option<&'s str>>,
    r: &mut Vec<String>,
) -> Option<Vec<String>> {
    if items.len() > MAX_CHANNELS {
        r.push(format!(
            "{name} must contain no more than {MAX_CHANNELS} elements"
        ));
        return None;
    }
    let before = r.len();
    let mut out: Vec<String> = Vec::new();
    for (i, item) in items.enumerate() {
        let Some(s) = item else {
            r.push(format!("{name}[{i}] must be a string"));
            continue;
        };
        if s.is_empty() {
            r.push(format!("{name}[{i}] must not be empty"));
        } else if s.chars().count() > MAX_CHANNEL_LEN {
            r.push(format!(
                "{name}[{i}] must be at most {MAX_CHANNEL_LEN} characters"
            ));
        } else if !out.iter().any(|c| c == s) {
            out.push(s.to_owned());
        }
    }
    (r.len() == before).then_some(out)
}

pub(super) fn check_channels(f: &Field, r: &mut Vec<String>) -> Option<Vec<String>> {
    let items = f.strings(false, usize::MAX, r)?;
    let out = check_channel_list(&f.name, items.iter().map(Value::as_str), r);
    // A subscription's channel is a name to match: only whitespace names nothing
    // (an event's channel list is taken as sent).
    let before = r.len();
    for (i, item) in items.iter().enumerate() {
        if item
            .as_str()
            .is_some_and(|s| !s.is_empty() && s.trim().is_empty())
        {
            r.push(format!("{}[{i}] must not be blank", f.name));
        }
    }
    out.filter(|_| r.len() == before)
}

/// Which custom header names a map refuses (beyond the framing headers, which
/// every map refuses), and how its reasons name a header.
pub(crate) struct HeaderRules {
    label: &'static str,
    reserved: &'static [&'static str],
    reserved_prefix: Option<&'static str>,
}

/// Headers that frame the HTTP message; a custom value would corrupt the request.
const FRAMING_HEADERS: [&str; 8] = [
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "upgrade",
];

/// Webhook headers: we also set `user-agent` and every `webhook-*` signature header.
pub(crate) const WEBHOOK_HEADERS: HeaderRules = HeaderRules {
    label: "header",
    reserved: &["user-agent"],
    reserved_prefix: Some("webhook-"),
};

/// OAuth token-request headers: only framing headers are ours (an extra
/// `authorization` is legitimate for token endpoints that want Basic auth).
pub(crate) const OAUTH_HEADERS: HeaderRules = HeaderRules {
    label: "oauth header",
    reserved: &[],
    reserved_prefix: None,
};

/// RFC 7230 `tchar`.
pub(super) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A custom header map. A value of exactly `"****"` (what reads show) keeps the
/// value in `keep` under the same name, so a client may send back what it read;
/// with nothing to keep it is refused rather than stored as a literal mask. When
/// `moved` says why the stored values' destination changed, a mask keeps nothing
/// and each masked value must be sent again.
pub(super) fn check_headers(
    f: &Field,
    rules: &HeaderRules,
    keep: Option<&BTreeMap<String, Secret>>,
    moved: Option<&str>,
    r: &mut Vec<String>,
) -> Option<BTreeMap<String, Secret>> {
    let map = f.string_map(MAX_HEADERS, r)?;
    let label = rules.label;
    let before = r.len();
    let mut out = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (name, value) in map {
        let lower = name.to_ascii_lowercase();
        if name.is_empty() || name.len() > MAX_HEADER_NAME_LEN || !name.bytes().all(is_tchar) {
            r.push(format!("{label} name {} is not a valid token", quote(name)));
            continue;
        }
        if FRAMING_HEADERS.contains(&lower.as_str())
            || rules.reserved.contains(&lower.as_str())
            || rules.reserved_prefix.is_some_and(|p| lower.starts_with(p))
        {
            r.push(format!("{label} {} is reserved", quote(name)));
        }
        if !seen.insert(lower) {
            r.push(format!(
                "{label} {} is given more than once (names are case-insensitive)",
                quote(name)
            ));
        }
        let Some(v) = value.as_str() else {
            r.push(format!("{}[{}] must be a string", f.name, quote(name)));
            continue;
        };
        if v.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            r.push(format!(
                "{label} {} value must not contain CR, LF or NUL",
                quote(name)
            ));
        } else if v.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            r.push(format!(
                "{label} {} value must not contain control characters",
                quote(name)
            ));
        } else if v.len() > MAX_HEADER_VALUE_BYTES {
            r.push(format!(
                "{label} {} value must be at most {MAX_HEADER_VALUE_BYTES} bytes",
                quote(name)
            ));
        } else if v == MASK {
            let kept = keep.and_then(|k| k.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)));
            match kept {
                Some(_) if let Some(why) = moved => {
                    r.push(format!("{}.{name} must be sent again: {why}", f.name));
                }
                Some((_, secret)) => {
                    out.insert(name.clone(), secret.clone());
                }
                None => r.push(format!(
                    "{label} {} value is the mask \"****\"; send the real value",
                    quote(name)
                )),
            }
        } else {
            out.insert(name.clone(), Secret::new(v));
        }
    }
    (r.len() == before).then_some(out)
}

/// One signing secret: `whsec_` + standard base64 of 24..=64 bytes. The value is
/// never echoed in a reason.
pub(super) fn check_signing_secret(name: &str, v: &Value, r: &mut Vec<String>) -> Option<Secret> {
    let Some(s) = v.as_str() else {
        r.push(format!("{name} must be a string"));
        return None;
    };
    let Some(encoded) = s.strip_prefix(SECRET_PREFIX) else {
        r.push(format!("{name} must start with \"{SECRET_PREFIX}\""));
        return None;
    };
    // Strict standard base64 (padded), the encoding the Standard Webhooks
    // libraries decode, so a secret we accept is one receivers can verify with.
    match base64::engine::general_purpose::STANDARD.decode(encoded) {
        Err(_) => {
            r.push(format!(
                "{name} must be \"{SECRET_PREFIX}\" followed by standard base64"
            ));
            None
        }
        Ok(bytes) if !SECRET_BYTES.contains(&bytes.len()) => {
            r.push(format!(
                "{name} must decode to {} to {} bytes, not {}",
                SECRET_BYTES.start(),
                SECRET_BYTES.end(),
                bytes.len()
            ));
            None
        }
        Ok(_) => Some(Secret::new(s)),
    }
}

pub(super) fn check_secrets(f: &Field, r: &mut Vec<String>) -> Option<Vec<Secret>> {
    let items = f.strings(false, usize::MAX, r)?;
    // Too many is a reason, but each entry is still checked (below).
    f.at_most(items.len(), MAX_SECRETS, "elements", r);
    let before = r.len();
    let mut out: Vec<Secret> = Vec::new();
    // Each entry is still checked so one answer lists every bad secret, but a
    // huge array gets a bounded number of reasons.
    for (i, item) in items.iter().enumerate().take(MAX_SECRETS + 8) {
        if let Some(secret) = check_signing_secret(&format!("{}[{i}]", f.name), item, r) {
            if out.contains(&secret) {
                r.push(format!("{} must not contain the same secret twice", f.name));
            } else {
                out.push(secret);
            }
        }
    }
    (r.len() == before).then_some(out)
}

/// A plausible address that the SMTP client will also accept: one `@`, a
/// non-empty local part, a dotted domain without empty labels, no whitespace.
pub(super) fn plausible_email(s: &str) -> bool {
    let shape = s.len() <= MAX_EMAIL_LEN
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && s.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && domain.split('.').all(|label| !label.is_empty())
        });
    shape && s.parse::<lettre::Address>().is_ok()
}

pub(super) fn check_email(f: &Field, r: &mut Vec<String>) -> Option<String> {
    let s = f.string(r)?;
    if plausible_email(s) {
        Some(s.to_owned())
    } else {
        r.push(format!("{} is not a valid email address", f.name));
        None
    }
}

pub(super) fn check_metadata(f: &Field, r: &mut Vec<String>) -> Option<BTreeMap<String, String>> {
    let map = f.string_map(MAX_METADATA, r)?;
    let before = r.len();
    let mut out = BTreeMap::new();
    for (k, v) in map {
        if k.is_empty() || k.chars().count() > MAX_METADATA_KEY_LEN {
            r.push(format!(
                "{} keys must be 1 to {MAX_METADATA_KEY_LEN} characters",
                f.name
            ));
            continue;
        }
        match v.as_str() {
            Some(s) if s.chars().count() <= MAX_TEXT_LEN => {
                out.insert(k.clone(), s.to_owned());
            }
            Some(_) => r.push(format!(
                "{}[{}] must be at most {MAX_TEXT_LEN} characters",
                f.name,
                quote(k)
            )),
            None => r.push(format!("{}[{}] must be a string", f.name, quote(k))),
        }
    }
    (r.len() == before).then_some(out)
}
