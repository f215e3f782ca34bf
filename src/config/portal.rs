//! The `public_url` setting and the `[portal]` section: their raw shape and checks.
//! Every value here ends up in a response header (CSP) or a link, so each is
//! checked to be exactly an origin, a colour or plain text; it must never read the
//! environment or a file.

use serde::Deserialize;

use super::PortalConfig;

/// `[portal]` as written.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawPortal {
    name: Option<String>,
    accent: Option<String>,
    logo_url: Option<String>,
    frame_ancestors: Option<Vec<String>>,
}

/// Longest portal name, in characters.
const MAX_NAME: usize = 64;

/// Splits an absolute `http(s)` URL into (scheme, authority, rest), or says why not.
/// The authority must be a host with an optional port: no user info, no spaces and
/// none of the characters that would break out of a header or a CSP directive.
fn split_url(url: &str) -> Result<(&str, &str, &str), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?} is not an absolute http(s) URL"))?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(format!("{url:?} must start with http:// or https://"));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host_ok = !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !host_ok {
        return Err(format!("{url:?} has no valid host"));
    }
    if tail.bytes().any(|b| {
        b.is_ascii_whitespace() || b.is_ascii_control() || matches!(b, b';' | b',' | b'\'' | b'"')
    }) {
        return Err(format!(
            "{url:?} must not contain spaces, quotes, ';' or ','"
        ));
    }
    Ok((scheme, authority, tail))
}

/// Checks `public_url`; the result has no trailing `/`. `None` (the default) is
/// resolved against the bound address by [`default_public_url`].
pub(super) fn public_url(raw: Option<String>, add: &mut dyn FnMut(&str, String)) -> Option<String> {
    let url = raw.map(|u| u.trim().to_owned())?;
    match split_url(&url) {
        Ok((_, _, tail)) if tail.contains(['?', '#']) => {
            add(
                "public_url",
                format!("{url:?} must not have a query or fragment"),
            );
            None
        }
        Ok(_) => Some(url.trim_end_matches('/').to_owned()),
        Err(e) => {
            add("public_url", e);
            None
        }
    }
}

/// The default `public_url`: `http://<addr>`, or `https://` when TLS is on.
pub fn default_public_url(addr: std::net::SocketAddr, tls: bool) -> String {
    format!("{}://{addr}", if tls { "https" } else { "http" })
}

/// The origin (`scheme://host[:port]`) of a URL that `split_url` accepts.
pub fn origin(url: &str) -> Option<String> {
    split_url(url)
        .ok()
        .map(|(scheme, authority, _)| format!("{}://{authority}", scheme.to_ascii_lowercase()))
}

/// Checks `[portal]`, recording every problem; defaults stand in for bad values.
pub(super) fn build(raw: RawPortal, add: &mut dyn FnMut(&str, String)) -> PortalConfig {
    let d = PortalConfig::default();
    let name = match raw.name {
        None => d.name,
        Some(n) => {
            let n = n.trim().to_owned();
            if n.is_empty() || n.chars().count() > MAX_NAME || n.chars().any(char::is_control) {
                add(
                    "portal.name",
                    format!("must be 1 to {MAX_NAME} characters without control characters"),
                );
                d.name
            } else {
                n
            }
        }
    };
    let accent = match raw.accent {
        None => d.accent,
        Some(a) => {
            let a = a.trim().to_owned();
            let hex = a.strip_prefix('#').unwrap_or("");
            if a.starts_with('#')
                && matches!(hex.len(), 3 | 6)
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
            {
                a.to_ascii_lowercase()
            } else {
                add(
                    "portal.accent",
                    format!("{a:?} is not a hex colour such as \"#2563eb\" or \"#36c\""),
                );
                d.accent
            }
        }
    };
    let logo_url = match raw.logo_url.map(|u| u.trim().to_owned()) {
        None => d.logo_url,
        Some(u) if u.is_empty() => u,
        Some(u) => match split_url(&u) {
            Ok((scheme, _, _)) if scheme.eq_ignore_ascii_case("https") => u,
            Ok(_) => {
                add(
                    "portal.logo_url",
                    format!("{u:?} must be an https:// URL (or empty)"),
                );
                String::new()
            }
            Err(e) => {
                add("portal.logo_url", e);
                String::new()
            }
        },
    };
    let mut frame_ancestors = Vec::new();
    for (i, o) in raw.frame_ancestors.unwrap_or_default().iter().enumerate() {
        let o = o.trim();
        match split_url(o) {
            Ok((_, _, "" | "/")) => frame_ancestors.push(o.trim_end_matches('/').to_owned()),
            Ok(_) => add(
                &format!("portal.frame_ancestors[{i}]"),
                format!("{o:?} must be an origin (scheme://host[:port]) without a path"),
            ),
            Err(e) => add(&format!("portal.frame_ancestors[{i}]"), e),
        }
    }
    PortalConfig {
        name,
        accent,
        logo_url,
        frame_ancestors,
    }
}
