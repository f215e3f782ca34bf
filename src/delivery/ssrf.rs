//! The SSRF guard: decides which addresses hookbox may connect to, and the connector
//! every outbound connection goes through. It must never let a connection reach a
//! refused address, whether the host is a literal, a name, or a name that resolves to
//! several addresses.
//!
//! How the connector is built: [`GuardedConnector`] is our own
//! `tower_service::Service<Uri>` wrapping hyper-util's `HttpConnector` configured with
//! [`GuardedResolver`]. The resolver resolves names with `tokio::net::lookup_host` and
//! refuses the whole lookup if ANY address is blocked, so `HttpConnector` only ever
//! sees vetted addresses and connects to them in order. It resolves once, so a DNS
//! answer cannot change between the check and the connect, and its happy-eyeballs
//! fallback to the other address family draws only from the vetted list.
//! `HttpConnector` skips the resolver for IP-literal hosts, so the wrapper checks
//! literals itself before connecting, and checks the peer address after connecting
//! as a second line of defence. A refusal surfaces as [`ConnectError::Refused`],
//! which callers find with [`find_blocked`] anywhere in an error's source chain.

use std::error::Error as StdError;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioIo;
use ipnet::IpNet;
use tokio::net::TcpStream;

/// A boxed error, as tower and hyper-util pass them around.
type BoxError = Box<dyn StdError + Send + Sync>;

/// An address the guard refuses, with the reason a human reads in a delivery log or
/// a validation message, e.g. "loopback address 127.0.0.1".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} {addr}")]
pub struct Blocked {
    /// The refused address (for a loopback name such as `localhost`, 127.0.0.1).
    pub addr: IpAddr,
    /// Why it is refused, e.g. "loopback address".
    pub reason: &'static str,
}

/// Why `ip` must not be connected to, or `None` if it is an ordinary public address.
///
/// This is the fixed policy; [`Guard`] adds the operator's `allow_networks` exceptions.
/// Every IPv6 form that embeds an IPv4 address is refused outright rather than
/// unwrapped, because the embedded address could be anything and a receiver never
/// needs such a form.
pub fn blocked_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => blocked_reason_v4(v4),
        IpAddr::V6(v6) => blocked_reason_v6(v6),
    }
}

fn blocked_reason_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    // Order matters where ranges nest: the metadata address sits inside link-local,
    // broadcast inside reserved, 0.0.0.0 inside "this network".
    let reason = if ip.is_unspecified() {
        "unspecified address"
    } else if a == 0 {
        "\"this network\" address"
    } else if a == 127 {
        "loopback address"
    } else if a == 10 || (a == 172 && (b & 0xf0) == 16) || (a == 192 && b == 168) {
        "private address"
    } else if ip == Ipv4Addr::new(169, 254, 169, 254) {
        "cloud metadata address"
    } else if a == 169 && b == 254 {
        "link-local address"
    } else if a == 100 && (b & 0xc0) == 64 {
        "shared (CGNAT) address"
    } else if (224..=239).contains(&a) {
        "multicast address"
    } else if ip.is_broadcast() {
        "broadcast address"
    } else if a >= 240 {
        "reserved address"
    } else if (a, b, c) == (192, 0, 2) || (a, b, c) == (198, 51, 100) || (a, b, c) == (203, 0, 113)
    {
        "documentation address"
    } else if a == 198 && (b & 0xfe) == 18 {
        "benchmarking address"
    } else if (a, b, c) == (192, 0, 0) || (a, b, c) == (192, 88, 99) {
        // IETF protocol assignments and the deprecated 6to4 relay anycast range.
        "reserved address"
    } else {
        return None;
    };
    Some(reason)
}

fn blocked_reason_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let reason = if ip.is_unspecified() {
        "unspecified address"
    } else if ip.is_loopback() {
        "loopback address"
    } else if s[..5] == [0; 5] && s[5] == 0xffff {
        "IPv4-mapped address"
    } else if s[..6] == [0; 6] {
        "IPv4-compatible address"
    } else if s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0 {
        "IPv4-translated address"
    } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1)
    {
        "NAT64 address"
    } else if s[0] == 0x2002 {
        "6to4 address"
    } else if s[0] == 0x2001 && s[1] == 0 {
        "Teredo address"
    } else if (s[0] == 0x2001 && s[1] == 0xdb8) || (s[0] & 0xfff0) == 0x3ff0 {
        // 2001:db8::/32 and 3fff::/20 (RFC 9637).
        "documentation address"
    } else if s[0] == 0x2001 && s[1] == 2 && s[2] == 0 {
        "benchmarking address"
    } else if s[..4] == [0x100, 0, 0, 0] {
        "discard-only address"
    } else if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        "cloud metadata address"
    } else if (s[0] & 0xfe00) == 0xfc00 {
        "private address"
    } else if (s[0] & 0xffc0) == 0xfe80 {
        "link-local address"
    } else if (s[0] & 0xffc0) == 0xfec0 {
        "site-local address"
    } else if (s[0] & 0xff00) == 0xff00 {
        "multicast address"
    } else {
        return None;
    };
    Some(reason)
}

/// The guard: the fixed policy of [`blocked_reason`] plus the operator's
/// `allow_networks` exceptions (tests allow 127.0.0.0/8).
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allow: Vec<IpNet>,
}

impl Guard {
    /// A guard whose `allow` networks are exempt from the policy.
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self { allow }
    }

    /// Whether hookbox may connect to `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), Blocked> {
        if self.allow.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        match blocked_reason(ip) {
            Some(reason) => Err(Blocked { addr: ip, reason }),
            None => Ok(()),
        }
    }

    /// Registration-time check of a URL's host text (as `http::Uri::host` gives it).
    ///
    /// An IP literal is checked, including bracketed IPv6 and the legacy IPv4
    /// notations a URL parser or `getaddrinfo` would accept (`2130706433`, `0x7f.1`,
    /// `0177.0.0.1`, `127.1`). A name that always means loopback (`localhost`,
    /// `*.localhost`) is refused. Any other name passes here: it is checked after DNS
    /// at connect time.
    pub fn check_host_literal(&self, host: &str) -> Result<(), Blocked> {
        if let Some(ip) = parse_host_ip(host) {
            return self.check(ip);
        }
        let name = host.strip_suffix('.').unwrap_or(host);
        let is_localhost = name.eq_ignore_ascii_case("localhost")
            || name
                .len()
                .checked_sub(".localhost".len())
                .and_then(|i| name.get(i..))
                .is_some_and(|tail| tail.eq_ignore_ascii_case(".localhost"));
        if is_localhost {
            let addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
            // The operator may have allowed loopback (the example config does).
            if self.allow.iter().any(|net| net.contains(&addr)) {
                return Ok(());
            }
            return Err(Blocked {
                addr,
                reason: "loopback address (localhost)",
            });
        }
        Ok(())
    }
}

/// The IP address a URL host denotes, if it is a literal in any notation.
fn parse_host_ip(host: &str) -> Option<IpAddr> {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        // A zone id ("%25eth0") does not change which address is meant.
        let addr = inner.split('%').next().unwrap_or(inner);
        return addr.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(ip);
    }
    parse_inet_aton(host).map(IpAddr::V4)
}

/// Parses the BSD `inet_aton` / WHATWG URL IPv4 forms: one to four dot-separated
/// parts, each decimal, octal (leading 0) or hex (0x), the last part filling the
/// remaining bytes. A single trailing dot is allowed, as URL parsers allow it.
fn parse_inet_aton(host: &str) -> Option<Ipv4Addr> {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    let mut parts = [0u64; 4];
    let mut n = 0;
    for part in host.split('.') {
        if n == 4 {
            return None;
        }
        parts[n] = parse_aton_part(part)?;
        n += 1;
    }
    // Invariant: the loop ran at least once because `host` is non-empty, so n >= 1.
    let (head, last) = (&parts[..n - 1], parts[n - 1]);
    if head.iter().any(|&p| p > 255) || last >= 1u64 << (8 * (5 - n)) {
        return None;
    }
    let value = head
        .iter()
        .enumerate()
        .fold(last, |acc, (i, &p)| acc | p << (8 * (3 - i)));
    u32::try_from(value).ok().map(Ipv4Addr::from)
}

fn parse_aton_part(part: &str) -> Option<u64> {
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            // "0x" alone is zero in both inet_aton and the WHATWG parser.
            if hex.is_empty() {
                return Some(0);
            }
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    // Bounding the length keeps the value far below u64 overflow; any such value is
    // out of range for an IPv4 part anyway.
    if digits.is_empty() || digits.len() > 12 || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// The first [`Blocked`] in `err`'s source chain, looking inside `io::Error`
/// wrappers too (their `source()` skips the wrapped error itself).
pub fn find_blocked<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a Blocked> {
    find_in_chain::<Blocked>(err)
}

/// The first error of type `T` in `err`'s source chain (`err` included), looking
/// inside `io::Error` wrappers too.
pub(crate) fn find_in_chain<'a, T: StdError + 'static>(
    err: &'a (dyn StdError + 'static),
) -> Option<&'a T> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        cur = next_in_chain(e);
    }
    None
}

/// The next error in a chain; for an `io::Error` that wraps another error, the
/// wrapped error, because `io::Error::source` skips it.
pub(crate) fn next_in_chain<'a>(
    err: &'a (dyn StdError + 'static),
) -> Option<&'a (dyn StdError + 'static)> {
    if let Some(inner) = err
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        return Some(inner);
    }
    err.source()
}

/// Why name resolution failed in [`GuardedResolver`].
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// One of the resolved addresses is blocked, so the name is refused as a whole.
    #[error("{host} resolves to a refused address")]
    Refused {
        /// The name that was resolved.
        host: String,
        /// The first blocked address found.
        #[source]
        blocked: Blocked,
    },
    /// The lookup itself failed (unknown name, resolver unreachable).
    #[error("dns lookup of {host} failed: {source}")]
    Lookup {
        /// The name that was resolved.
        host: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// The lookup did not finish within the connect timeout.
    #[error("dns lookup of {host} timed out after {after:?}")]
    Timeout {
        /// The name that was resolved.
        host: String,
        /// The bound that was exceeded.
        after: Duration,
    },
    /// The lookup succeeded but returned no address.
    #[error("dns lookup of {host} returned no address")]
    Empty {
        /// The name that was resolved.
        host: String,
    },
}

/// A resolver for `HttpConnector` that refuses a name if any of its addresses is
/// blocked, and otherwise hands back all of them in the resolver's order.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    guard: Arc<Guard>,
    timeout: Duration,
}

impl GuardedResolver {
    /// A resolver enforcing `guard`, giving up on a lookup after `timeout`.
    pub fn new(guard: Arc<Guard>, timeout: Duration) -> Self {
        Self { guard, timeout }
    }
}

type ResolveFuture =
    Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, ResolveError>> + Send>>;

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = ResolveError;
    type Future = ResolveFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let guard = Arc::clone(&self.guard);
        let timeout = self.timeout;
        Box::pin(async move {
            let host = name.as_str();
            // Port 0 is a placeholder: HttpConnector sets the real port afterwards.
            let lookup = tokio::net::lookup_host((host, 0));
            let addrs: Vec<SocketAddr> = tokio::time::timeout(timeout, lookup)
                .await
                .map_err(|_elapsed| ResolveError::Timeout {
                    host: host.to_owned(),
                    after: timeout,
                })?
                .map_err(|source| ResolveError::Lookup {
                    host: host.to_owned(),
                    source,
                })?
                .collect();
            if addrs.is_empty() {
                return Err(ResolveError::Empty {
                    host: host.to_owned(),
                });
            }
            for addr in &addrs {
                guard
                    .check(addr.ip())
                    .map_err(|blocked| ResolveError::Refused {
                        host: host.to_owned(),
                        blocked,
                    })?;
            }
            Ok(addrs.into_iter())
        })
    }
}

/// Why [`GuardedConnector`] could not produce a connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The guard refused the destination (a literal, a resolved or a peer address).
    #[error("refused by SSRF guard: {0}")]
    Refused(#[source] Blocked),
    /// Resolution or the TCP connect failed; the source says why.
    #[error("connect failed")]
    Failed(#[source] BoxError),
}

/// The connector every outbound connection goes through: `HttpConnector` with a
/// [`GuardedResolver`], plus the literal and peer checks the resolver cannot do.
#[derive(Debug, Clone)]
pub struct GuardedConnector {
    http: HttpConnector<GuardedResolver>,
    guard: Arc<Guard>,
}

impl GuardedConnector {
    /// A connector enforcing `guard`. The DNS lookup and the TCP connect are each
    /// bounded by `connect_timeout` (the TCP bound is shared among a name's
    /// addresses). It accepts https URIs too, since a TLS layer is expected on top.
    pub fn new(guard: Arc<Guard>, connect_timeout: Duration) -> Self {
        let resolver = GuardedResolver::new(Arc::clone(&guard), connect_timeout);
        let mut http = HttpConnector::new_with_resolver(resolver);
        http.set_connect_timeout(Some(connect_timeout));
        // Webhook requests are small; do not let Nagle hold them back.
        http.set_nodelay(true);
        // The TLS layer above passes https URIs down to us.
        http.enforce_http(false);
        Self { http, guard }
    }
}

type ConnectFuture = Pin<Box<dyn Future<Output = Result<TokioIo<TcpStream>, ConnectError>> + Send>>;

impl tower_service::Service<Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = ConnectError;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.http
            .poll_ready(cx)
            .map_err(|e| ConnectError::Failed(Box::new(e)))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        // HttpConnector connects to IP literals without asking the resolver, using the
        // strict std parsers; we check exactly what it would parse. Other literal
        // notations reach the resolver as names and are checked there.
        if let Some(host) = dst.host() {
            let bare = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            if let Ok(ip) = bare.parse::<IpAddr>()
                && let Err(blocked) = self.guard.check(ip)
            {
                return Box::pin(std::future::ready(Err(ConnectError::Refused(blocked))));
            }
        }
        let connecting = self.http.call(dst);
        let guard = Arc::clone(&self.guard);
        Box::pin(async move {
            let io = connecting.await.map_err(|e| {
                // The resolver's refusal arrives wrapped in HttpConnector's error.
                match find_blocked(&e) {
                    Some(blocked) => ConnectError::Refused(blocked.clone()),
                    None => ConnectError::Failed(Box::new(e)),
                }
            })?;
            // Second line of defence: whatever path led here, the peer we reached
            // must itself be allowed.
            let peer = io
                .inner()
                .peer_addr()
                .map_err(|e| ConnectError::Failed(Box::new(e)))?;
            guard.check(peer.ip()).map_err(ConnectError::Refused)?;
            Ok(io)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_reason_table() {
        let blocked = [
            ("127.0.0.1", "loopback address"),
            ("10.0.0.1", "private address"),
            ("172.16.5.4", "private address"),
            ("172.31.255.255", "private address"),
            ("192.168.1.1", "private address"),
            ("169.254.169.254", "cloud metadata address"),
            ("169.254.1.1", "link-local address"),
            ("100.64.0.1", "shared (CGNAT) address"),
            ("0.0.0.0", "unspecified address"),
            ("0.1.2.3", "\"this network\" address"),
            ("224.0.0.1", "multicast address"),
            ("255.255.255.255", "broadcast address"),
            ("240.0.0.1", "reserved address"),
            ("192.0.2.1", "documentation address"),
            ("198.51.100.7", "documentation address"),
            ("203.0.113.9", "documentation address"),
            ("198.18.0.1", "benchmarking address"),
            ("198.19.255.1", "benchmarking address"),
            ("::1", "loopback address"),
            ("::", "unspecified address"),
            ("fe80::1", "link-local address"),
            ("fc00::1", "private address"),
            ("fd12:3456::1", "private address"),
            ("fd00:ec2::254", "cloud metadata address"),
            ("ff02::1", "multicast address"),
            ("::ffff:127.0.0.1", "IPv4-mapped address"),
            ("::ffff:8.8.8.8", "IPv4-mapped address"),
            ("::8.8.8.8", "IPv4-compatible address"),
            ("64:ff9b::a00:1", "NAT64 address"),
            ("64:ff9b:1::1", "NAT64 address"),
            ("2002:7f00:1::", "6to4 address"),
            ("2001::1", "Teredo address"),
            ("2001:db8::1", "documentation address"),
        ];
        for (ip, reason) in blocked {
            let addr: IpAddr = ip.parse().unwrap();
            assert_eq!(blocked_reason(addr), Some(reason), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
        ] {
            let addr: IpAddr = ip.parse().unwrap();
            assert_eq!(blocked_reason(addr), None, "{ip}");
        }
    }

    #[test]
    fn blocked_displays_reason_and_address() {
        let err = Guard::default()
            .check("127.0.0.1".parse().unwrap())
            .unwrap_err();
        assert_eq!(err.to_string(), "loopback address 127.0.0.1");
    }

    #[test]
    fn check_host_literal_refuses_loopback_in_every_notation() {
        let guard = Guard::default();
        for host in [
            "127.0.0.1",
            "[::1]",
            "[::ffff:127.0.0.1]",
            "[fe80::1%25eth0]",
            "2130706433",
            "0x7f000001",
            "0x7f.1",
            "0177.0.0.1",
            "127.1",
            "127.0.0.1.",
            "localhost",
            "LOCALHOST.",
            "foo.localhost",
            "169.254.169.254",
            "0",
        ] {
            assert!(
                guard.check_host_literal(host).is_err(),
                "{host} must be refused"
            );
        }
        for host in [
            "example.com",
            "hooks.example.com",
            "localhost.example.com",
            "8.8.8.8",
        ] {
            assert_eq!(guard.check_host_literal(host), Ok(()), "{host} must pass");
        }
    }

    #[test]
    fn allow_networks_open_exceptions() {
        let guard = Guard::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert_eq!(guard.check_host_literal("127.0.0.1"), Ok(()));
        assert_eq!(guard.check_host_literal("localhost"), Ok(()));
        assert!(guard.check_host_literal("10.0.0.1").is_err());
        assert!(guard.check_host_literal("[::1]").is_err());
    }

    #[test]
    fn inet_aton_forms() {
        let cases = [
            ("2130706433", Some([127, 0, 0, 1])),
            ("0x7f000001", Some([127, 0, 0, 1])),
            ("0x7f.1", Some([127, 0, 0, 1])),
            ("0177.0.0.1", Some([127, 0, 0, 1])),
            ("127.1", Some([127, 0, 0, 1])),
            ("10.1.2", Some([10, 1, 0, 2])),
            ("1.2.3.4", Some([1, 2, 3, 4])),
            ("0x", Some([0, 0, 0, 0])),
            ("4294967295", Some([255, 255, 255, 255])),
            ("4294967296", None),
            ("1.2.3.256", None),
            ("256.1", None),
            ("1.2.3.4.5", None),
            ("08.1.1.1", None),
            ("1..2", None),
            ("", None),
            (".", None),
            ("example.com", None),
            ("0xg", None),
            ("99999999999999999999999", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_inet_aton(text), want.map(Ipv4Addr::from), "{text}");
        }
    }
}
