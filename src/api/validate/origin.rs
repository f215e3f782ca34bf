//! Which destination a stored secret belongs to: the scheme, host and port of a
//! URL. A masked `"****"` keeps a stored secret only while that destination is
//! unchanged, so a PATCH cannot move a secret that no read reveals to a host of the
//! caller's choosing. Pure: no I/O, no DNS (names are compared as written).

/// The scheme, host and port of an absolute http(s) URL: lower-cased, IPv6
/// brackets kept, the port made explicit (80 for http, 443 for https). `None` when
/// it does not parse.
pub(super) fn origin(url: &str) -> Option<(String, String, u16)> {
    let uri: http::Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let authority = uri.authority()?;
    let host = authority.host().to_ascii_lowercase();
    let host = host.strip_suffix('.').map(str::to_owned).unwrap_or(host);
    let port = match authority.port_u16() {
        Some(p) => p,
        None if scheme == "https" => 443,
        None if scheme == "http" => 80,
        None => return None,
    };
    Some((scheme, host, port))
}

/// Whether `next` points at the same scheme, host and port as `stored`. Anything
/// that does not parse counts as another destination.
pub(super) fn same_destination(stored: &str, next: &str) -> bool {
    match (origin(stored), origin(next)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_compare_scheme_host_and_port() {
        let cases = [
            ("https://a.example/x", "https://a.example/y?z=1", true),
            ("https://a.example/x", "https://A.EXAMPLE:443/", true),
            ("http://a.example/", "http://a.example:80/p", true),
            ("https://a.example./", "https://a.example/", true),
            ("http://[::1]:8080/", "http://[::1]:8080/other", true),
            ("https://a.example/", "http://a.example/", false),
            ("https://a.example/", "https://b.example/", false),
            ("https://a.example/", "https://a.example:8443/", false),
            ("https://a.example/", "https://a.example.evil/", false),
            ("http://127.0.0.1:1/", "http://127.0.0.1:2/", false),
            ("https://a.example/", "not a url", false),
        ];
        for (stored, next, want) in cases {
            assert_eq!(same_destination(stored, next), want, "{stored} -> {next}");
        }
    }
}
