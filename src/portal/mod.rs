//! The portal page: a static shell (HTML, CSS, JavaScript modules) compiled into the
//! binary, served under `/portal` with a strict Content-Security-Policy, and the
//! branding from `[portal]`. The page talks only to the normal `/v1` API with the
//! session token from the URL fragment. This module must never embed a tenant's
//! data in a page (everything is fetched and shown as text by the script), never
//! load anything from another origin but the configured logo, and never see a token.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use crate::api::{ApiError, Call, Reply};
use crate::config::{Config, default_public_url, url_origin};

/// A compiled-in asset: name, content type, bytes.
type Asset = (&'static str, &'static str, &'static [u8]);

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The assets under `/portal/assets/`, committed in `src/portal/assets/`.
const ASSETS: &[Asset] = &[
    ("app.js", JS, include_bytes!("assets/app.js")),
    ("api.js", JS, include_bytes!("assets/api.js")),
    ("dom.js", JS, include_bytes!("assets/dom.js")),
    ("views.js", JS, include_bytes!("assets/views.js")),
    ("forms.js", JS, include_bytes!("assets/forms.js")),
    ("style.css", CSS, include_bytes!("assets/style.css")),
];

/// The page shell; `{{name}}` and `{{logo}}` are filled in (escaped) at start.
const INDEX: &str = include_str!("assets/index.html");

/// Everything the portal routes serve, built once from the config.
#[derive(Debug, Clone)]
pub struct PortalSite {
    /// `public_url` without a trailing `/`: links start with it.
    pub public_url: String,
    /// The rendered shell.
    index: Bytes,
    /// `:root { --accent: ... }` from `[portal] accent`.
    brand_css: Bytes,
    /// The Content-Security-Policy of every portal response.
    csp: HeaderValue,
    /// Whether no one may frame the page (then `X-Frame-Options: DENY` too).
    deny_frames: bool,
}

/// Escapes text for an HTML text node or a quoted attribute.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

impl PortalSite {
    /// Builds the site from a validated config; `addr` is the bound address (the
    /// default `public_url`).
    pub fn new(config: &Config, addr: std::net::SocketAddr) -> PortalSite {
        let p = &config.portal;
        let logo = if p.logo_url.is_empty() {
            String::new()
        } else {
            format!(
                "<img class=\"logo\" src=\"{}\" alt=\"\" height=\"32\">",
                escape(&p.logo_url)
            )
        };
        let index = INDEX
            .replace("{{name}}", &escape(&p.name))
            .replace("{{logo}}", &logo);
        let logo_origin = url_origin(&p.logo_url)
            .map(|o| format!(" {o}"))
            .unwrap_or_default();
        let ancestors = if p.frame_ancestors.is_empty() {
            "'none'".to_owned()
        } else {
            p.frame_ancestors.join(" ")
        };
        let csp = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'{logo_origin}; \
             connect-src 'self'; frame-ancestors {ancestors}; base-uri 'none'; form-action 'none'"
        );
        PortalSite {
            public_url: config
                .public_url
                .clone()
                .unwrap_or_else(|| default_public_url(addr, config.tls.is_some())),
            index: Bytes::from(index),
            brand_css: Bytes::from(format!(":root {{ --accent: {}; }}\n", p.accent)),
            // Config validation admits only origins and hex colours, so this holds
            // header-safe characters; the fallback refuses everything.
            csp: HeaderValue::from_str(&csp)
                .unwrap_or(HeaderValue::from_static("default-src 'none'")),
            deny_frames: p.frame_ancestors.is_empty(),
        }
    }

    /// A portal response with the security headers.
    fn respond(&self, content_type: &'static str, cache: &'static str, body: Bytes) -> Reply {
        let mut resp = Response::new(Full::new(body));
        *resp.status_mut() = StatusCode::OK;
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(header::CONTENT_SECURITY_POLICY, self.csp.clone());
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        if self.deny_frames {
            h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        }
        Ok(resp)
    }
}

/// `GET /portal` and its deep links: the shell (the script routes by path).
pub fn page(call: &Call<'_>) -> Reply {
    let site = &call.state.portal;
    site.respond("text/html; charset=utf-8", "no-store", site.index.clone())
}

/// `GET /portal/assets/{name}`: a compiled-in asset, or the generated brand CSS.
pub fn asset(call: &Call<'_>, name: &str) -> Reply {
    let site = &call.state.portal;
    // Assets change only with the binary; an hour keeps reloads cheap while an
    // upgrade is picked up soon.
    const CACHE: &str = "public, max-age=3600";
    if name == "brand.css" {
        return site.respond(CSS, "no-cache", site.brand_css.clone());
    }
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, ty, bytes)) => site.respond(ty, CACHE, Bytes::from_static(bytes)),
        None => Err(ApiError::not_found(format!("portal asset {name}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branding_is_escaped_and_the_csp_is_strict() {
        let mut config = Config::default();
        config.portal.name = "Acme <b>\"x\"</b> & co".into();
        config.portal.logo_url = "https://cdn.example.com/l.png?a=1&b=2".into();
        config.portal.frame_ancestors = vec!["https://app.example.com".into()];
        let site = PortalSite::new(&config, ([127, 0, 0, 1], 1).into());
        let html = std::str::from_utf8(&site.index).unwrap();
        assert!(html.contains("Acme &lt;b&gt;&quot;x&quot;&lt;/b&gt; &amp; co"));
        assert!(html.contains("src=\"https://cdn.example.com/l.png?a=1&amp;b=2\""));
        assert!(!html.contains("{{"));
        // No inline script or style anywhere in the shell.
        assert!(!html.contains("<script>") && !html.contains("style="));
        assert!(!html.contains("<style"));
        let csp = site.csp.to_str().unwrap();
        assert!(
            csp.contains("img-src 'self' https://cdn.example.com;"),
            "{csp}"
        );
        assert!(
            csp.contains("frame-ancestors https://app.example.com;"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe"), "{csp}");
        assert!(!site.deny_frames);
        let plain = PortalSite::new(&Config::default(), ([127, 0, 0, 1], 1).into());
        let csp = plain.csp.to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("img-src 'self';"));
        assert!(plain.deny_frames);
    }
}
