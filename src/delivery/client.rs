//! The outbound HTTP client for webhook deliveries and OAuth token requests: pooled
//! HTTP/1.1 over rustls, every connection through the SSRF guard. It must never
//! follow a redirect, read more of a response body than the caller's cap, outlive
//! the request timeout, or panic on anything a receiver sends.

use std::error::Error as StdError;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT};
use http::{Method, Request, Uri, uri::Scheme};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use ipnet::IpNet;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::ssrf::{self, Blocked, GuardedConnector, ResolveError};

/// How the client connects, times out and pools connections.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Bound on the DNS lookup, and separately on the TCP connect (shared among a
    /// name's addresses).
    pub connect_timeout: Duration,
    /// Bound on the whole exchange: connect, TLS, request, headers and capped body.
    pub request_timeout: Duration,
    /// Networks exempt from the SSRF guard (`[security] allow_networks`).
    pub allow_networks: Vec<IpNet>,
    /// A PEM file of extra CA certificates trusted besides the webpki roots.
    pub extra_ca_file: Option<PathBuf>,
    /// The `user-agent` sent unless the caller passes one.
    pub user_agent: String,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// How many idle connections are kept per host.
    pub max_idle_per_host: usize,
}

impl Default for ClientConfig {
    /// The DESIGN defaults: connect 5 s, request 15 s, nothing allowed, webpki roots
    /// only, 90 s idle pool with up to 64 idle connections per host.
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            allow_networks: Vec::new(),
            extra_ca_file: None,
            user_agent: concat!("hookbox/", env!("CARGO_PKG_VERSION")).to_owned(),
            pool_idle_timeout: Duration::from_secs(90),
            max_idle_per_host: 64,
        }
    }
}

/// Why the client could not be built (start-up errors, all from configuration).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The extra CA file could not be read or is not valid PEM.
    #[error("cannot read CA file {path}")]
    CaFile {
        /// The configured file.
        path: PathBuf,
        /// What went wrong reading or decoding it.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The extra CA file holds no certificate.
    #[error("CA file {path} holds no certificate")]
    NoCaCert {
        /// The configured file.
        path: PathBuf,
    },
    /// A certificate in the extra CA file cannot serve as a trust anchor.
    #[error("CA file {path} holds an unusable certificate")]
    BadCaCert {
        /// The configured file.
        path: PathBuf,
        /// rustls' reason.
        #[source]
        source: rustls::Error,
    },
    /// The TLS configuration could not be built.
    #[error("cannot set up TLS")]
    Tls(#[source] rustls::Error),
    /// The configured user agent is not a valid header value.
    #[error("invalid user agent")]
    UserAgent(#[source] http::header::InvalidHeaderValue),
}

/// Why a request produced no answer. Messages are written for a delivery log.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The URL does not parse, is not http(s), or has no host.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// A header name or value passed by the caller is not valid HTTP.
    #[error("invalid header: {0}")]
    InvalidHeader(String),
    /// The SSRF guard refused the destination.
    #[error("refused by SSRF guard: {0}")]
    Refused(Blocked),
    /// Name resolution or the TCP connect failed, e.g. "connection refused".
    #[error("{0}")]
    Connect(String),
    /// The whole exchange did not finish within the request timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The TLS handshake failed, e.g. an untrusted certificate.
    #[error("TLS error: {0}")]
    Tls(String),
    /// The connection failed after it was set up: reset, closed mid-response, or
    /// the peer did not speak HTTP.
    #[error("{0}")]
    Io(String),
}

/// A receiver's answer: any status, including 3xx (redirects are never followed).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status code.
    pub status: u16,
    /// The raw `Retry-After` header value, if any.
    pub retry_after: Option<String>,
    /// The start of the response body, at most the caller's cap.
    pub body: Bytes,
    /// Time from the start of the call to the end of reading the capped body.
    pub latency: Duration,
}

type Inner = Client<HttpsConnector<GuardedConnector>, Full<Bytes>>;

/// The pooled outbound client. Cloning is cheap and shares the pool.
#[derive(Clone)]
pub struct HttpClient {
    shared: Arc<Shared>,
}

struct Shared {
    client: Inner,
    user_agent: HeaderValue,
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl HttpClient {
    /// Builds the client: webpki roots plus `extra_ca_file`, HTTP/1.1 only, the SSRF
    /// guard on every connection, and a keep-alive pool.
    pub fn new(cfg: ClientConfig) -> Result<Self, ClientError> {
        let tls = tls_config(cfg.extra_ca_file.as_deref())?;
        let user_agent = HeaderValue::from_str(&cfg.user_agent).map_err(ClientError::UserAgent)?;
        let guard = Arc::new(ssrf::Guard::new(cfg.allow_networks));
        let tcp = GuardedConnector::new(guard, cfg.connect_timeout);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            // Without a pool timer the idle timeout is ignored (FIELD-NOTES).
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(cfg.pool_idle_timeout)
            .pool_max_idle_per_host(cfg.max_idle_per_host)
            .build(https);
        Ok(Self {
            shared: Arc::new(Shared {
                client,
                user_agent,
                connect_timeout: cfg.connect_timeout,
                request_timeout: cfg.request_timeout,
            }),
        })
    }

    /// POSTs `body` to `url` with `headers` (a `user-agent` is added unless given),
    /// and reads at most `body_cap` bytes of the response body. The whole exchange is
    /// bounded by the request timeout; redirects come back as answers.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        body_cap: usize,
    ) -> Result<Answer, SendError> {
        let started = Instant::now();
        let req = self.build_request(url, headers, body)?;
        let timeout = self.shared.request_timeout;
        let (status, retry_after, body) =
            match tokio::time::timeout(timeout, self.exchange(req, body_cap)).await {
                Ok(result) => result?,
                Err(_elapsed) => return Err(SendError::Timeout(timeout)),
            };
        Ok(Answer {
            status,
            retry_after,
            body,
            latency: started.elapsed(),
        })
    }

    fn build_request(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, SendError> {
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| SendError::InvalidUrl(e.to_string()))?;
        match uri.scheme() {
            Some(s) if *s == Scheme::HTTP || *s == Scheme::HTTPS => {}
            _ => return Err(SendError::InvalidUrl("scheme must be http or https".into())),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(SendError::InvalidUrl("missing host".into()));
        }
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = uri;
        let map = req.headers_mut();
        map.reserve(headers.len() + 1);
        for &(name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| SendError::InvalidHeader(format!("bad header name {name:?}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| SendError::InvalidHeader(format!("bad value for {name}")))?;
            map.append(name, value);
        }
        if !map.contains_key(USER_AGENT) {
            map.insert(USER_AGENT, self.shared.user_agent.clone());
        }
        Ok(req)
    }

    async fn exchange(
        &self,
        req: Request<Full<Bytes>>,
        body_cap: usize,
    ) -> Result<(u16, Option<String>, Bytes), SendError> {
        let res = self
            .shared
            .client
            .request(req)
            .await
            .map_err(|e| classify(&e, self.shared.connect_timeout))?;
        let status = res.status().as_u16();
        let retry_after = res
            .headers()
            .get(RETRY_AFTER)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let body = read_capped(res.into_body(), body_cap)
            .await
            .map_err(|e| classify(&e, self.shared.connect_timeout))?;
        Ok((status, retry_after, body))
    }
}

/// Reads at most `cap` bytes of `body`, then stops: the rest is never read, and
/// dropping the unfinished body makes hyper close the connection rather than pool it.
async fn read_capped(mut body: Incoming, cap: usize) -> Result<Bytes, hyper::Error> {
    // Most answers are one small chunk: keep it as is and copy only if more follow.
    let mut first = Bytes::new();
    let mut rest: Option<BytesMut> = None;
    let mut len = 0;
    while len < cap {
        let Some(frame) = body.frame().await else {
            break;
        };
        // Trailers carry no body bytes; skip them.
        let Ok(mut data) = frame?.into_data() else {
            continue;
        };
        data.truncate(cap - len);
        len += data.len();
        if let Some(buf) = rest.as_mut() {
            buf.extend_from_slice(&data);
        } else if first.is_empty() {
            first = data;
        } else {
            let mut buf = BytesMut::with_capacity(first.len() + data.len());
            buf.extend_from_slice(&first);
            buf.extend_from_slice(&data);
            rest = Some(buf);
        }
    }
    Ok(rest.map_or(first, BytesMut::freeze))
}

/// Builds the rustls configuration explicitly with the ring provider, so no
/// process-wide default provider has to be installed.
fn tls_config(extra_ca: Option<&Path>) -> Result<rustls::ClientConfig, ClientError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = extra_ca {
        let ca_err = |source| ClientError::CaFile {
            path: path.to_owned(),
            source,
        };
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path).map_err(ca_err)? {
            roots
                .add(cert.map_err(ca_err)?)
                .map_err(|source| ClientError::BadCaCert {
                    path: path.to_owned(),
                    source,
                })?;
            added += 1;
        }
        if added == 0 {
            return Err(ClientError::NoCaCert {
                path: path.to_owned(),
            });
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ClientError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Turns a hyper / hyper-util / rustls error chain into a [`SendError`] a human can
/// read, by looking for the most specific cause.
fn classify(err: &(dyn StdError + 'static), connect_timeout: Duration) -> SendError {
    // Our connector's verdicts come first: they are the most precise.
    if let Some(failure) = ssrf::find_in_chain::<ssrf::ConnectError>(err) {
        return match failure {
            ssrf::ConnectError::Refused(blocked) => SendError::Refused(blocked.clone()),
            ssrf::ConnectError::Failed(cause) => {
                SendError::Connect(describe_connect(cause.as_ref(), connect_timeout))
            }
        };
    }
    if let Some(tls) = ssrf::find_in_chain::<rustls::Error>(err) {
        return SendError::Tls(tls.to_string());
    }
    // A connect-phase failure that is not our connector's happened in the TLS
    // handshake, the only other step the connector takes (e.g. "tls handshake eof").
    if let Some(client_err) = err.downcast_ref::<hyper_util::client::legacy::Error>()
        && client_err.is_connect()
    {
        return SendError::Tls(describe_chain(client_err.source().unwrap_or(err)));
    }
    if let Some(hyper_err) = ssrf::find_in_chain::<hyper::Error>(err) {
        if hyper_err.is_incomplete_message() {
            return SendError::Io("connection closed before the response was complete".into());
        }
        if hyper_err.is_parse() {
            return SendError::Io(format!("invalid HTTP response: {hyper_err}"));
        }
    }
    if let Some(io_err) = ssrf::find_in_chain::<io::Error>(err)
        && let Some(text) = describe_io_kind(io_err.kind())
    {
        return SendError::Io(text.to_owned());
    }
    SendError::Io(describe_chain(err))
}

fn describe_connect(cause: &(dyn StdError + 'static), connect_timeout: Duration) -> String {
    if let Some(resolve) = ssrf::find_in_chain::<ResolveError>(cause) {
        return resolve.to_string();
    }
    if let Some(io_err) = ssrf::find_in_chain::<io::Error>(cause) {
        if io_err.kind() == io::ErrorKind::TimedOut {
            return format!("connect timed out after {connect_timeout:?}");
        }
        if let Some(text) = describe_io_kind(io_err.kind()) {
            return text.to_owned();
        }
    }
    describe_chain(cause)
}

fn describe_io_kind(kind: io::ErrorKind) -> Option<&'static str> {
    use io::ErrorKind::*;
    Some(match kind {
        ConnectionRefused => "connection refused",
        ConnectionReset => "connection reset by peer",
        ConnectionAborted => "connection aborted",
        BrokenPipe => "connection closed by peer",
        UnexpectedEof => "connection closed unexpectedly",
        TimedOut => "timed out",
        NetworkUnreachable => "network unreachable",
        HostUnreachable => "host unreachable",
        _ => return None,
    })
}

/// "outer: inner: innermost", skipping a level that repeats the previous one.
fn describe_chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = String::new();
    let mut prev = String::new();
    let mut cur = Some(err);
    while let Some(e) = cur {
        let text = e.to_string();
        if !text.is_empty() && text != prev {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        prev = text;
        cur = ssrf::next_in_chain(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http::{HeaderMap, Response, StatusCode};
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;

    use super::*;

    /// A throwaway self-signed certificate for 127.0.0.1 and localhost (CA:FALSE,
    /// P-256, valid until 2126), made with `openssl req -x509` for these tests only.
    const TEST_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBszCCAVqgAwIBAgIUTJ/wsGyCUYcWA8XHhHcAqP7SxVUwCgYIKoZIzj0EAwIw
IDEeMBwGA1UEAwwVaG9va2JveCB0ZXN0IHJlY2VpdmVyMCAXDTI2MTEyMjA1NDcw
MloYDzIxMjYxMDI5MDU0NzAyWjAgMR4wHAYDVQQDDBVob29rYm94IHRlc3QgcmVj
ZWl2ZXIwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATXvFzdNSlEfpwY2YLSWvDk
Pa8U8lXIFnsUnDon/S4M1BXp334b8W+OH2MDmN07HHNpvld0WrqOyXS3HjkFHks4
o3AwbjAMBgNVHRMBAf8EAjAAMA4GA1UdDwEB/wQEAwIHgDATBgNVHSUEDDAKBggr
BgEFBQcDATAaBgNVHREEEzARhwR/AAABgglsb2NhbGhvc3QwHQYDVR0OBBYEFKNK
mQ3M0gI1k8crBIbXxSBckB1yMAoGCCqGSM49BAMCA0cAMEQCIBVdwMUMot8a9HDg
h+NGfcYiHETM14E2rx3D3IUw32pKAiANhsSeuea/Ioy+z4x+0aQLEokPeFQvqure
Be+Y3f7gaQ==
-----END CERTIFICATE-----
";
    const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgorC7Zo6pPbz/kBAe
DWEmX2fqUe2YzrcGLOAiU8yCnimhRANCAATXvFzdNSlEfpwY2YLSWvDkPa8U8lXI
FnsUnDon/S4M1BXp334b8W+OH2MDmN07HHNpvld0WrqOyXS3HjkFHks4
-----END PRIVATE KEY-----
";

    const CAP: usize = 4096;

    /// One request as the receiver saw it.
    struct Seen {
        conn: usize,
        headers: HeaderMap,
        body: Bytes,
    }

    /// A loopback receiver: counts accepted connections and records requests.
    struct Receiver {
        addr: SocketAddr,
        accepted: Arc<AtomicUsize>,
        seen: mpsc::UnboundedReceiver<Seen>,
    }

    impl Receiver {
        fn url(&self) -> String {
            format!("http://{}/hook", self.addr)
        }

        fn accepted(&self) -> usize {
            self.accepted.load(Ordering::SeqCst)
        }
    }

    /// What a raw (non-hyper) receiver does with each connection.
    #[derive(Clone, Copy)]
    enum Raw {
        /// Reads the request and never answers.
        Hang,
        /// Reads the request head, then closes the socket.
        Close,
        /// Reads the request head, then answers with something that is not HTTP.
        Garbage,
        /// Answers 200 with a 1 GiB content-length and streams until the peer leaves.
        Endless,
    }

    async fn listener() -> (TcpListener, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (listener, addr)
    }

    /// A hyper receiver answering every request with `respond()`; with `tls`, it
    /// serves HTTPS with the test certificate.
    async fn http_receiver<F>(respond: F, tls: bool) -> Receiver
    where
        F: Fn() -> Response<Full<Bytes>> + Clone + Send + Sync + 'static,
    {
        let (listener, addr) = listener().await;
        let accepted = Arc::new(AtomicUsize::new(0));
        let (tx, seen) = mpsc::unbounded_channel();
        let acceptor = tls.then(tls_acceptor);
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let conn = counter.fetch_add(1, Ordering::SeqCst);
                let tx = tx.clone();
                let acceptor = acceptor.clone();
                let respond = respond.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let tx = tx.clone();
                        let respond = respond.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes());
                            let _ = tx.send(Seen {
                                conn,
                                headers: parts.headers,
                                body: body.unwrap_or_default(),
                            });
                            Ok::<_, Infallible>(respond())
                        }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match acceptor {
                        Some(acceptor) => {
                            // A failed handshake is the point of some tests.
                            if let Ok(tls) = acceptor.accept(stream).await {
                                let _ = http.serve_connection(TokioIo::new(tls), service).await;
                            }
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                });
            }
        });
        Receiver {
            addr,
            accepted,
            seen,
        }
    }

    fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
        let certs = vec![CertificateDer::from_pem_slice(TEST_CERT.as_bytes()).unwrap()];
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(TEST_KEY.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
    }

    async fn raw_receiver(raw: Raw) -> Receiver {
        let (listener, addr) = listener().await;
        let accepted = Arc::new(AtomicUsize::new(0));
        let (_tx, seen) = mpsc::unbounded_channel();
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    read_head(&mut stream).await;
                    match raw {
                        // Holds the socket until the client goes away (read returns 0).
                        Raw::Hang => {
                            while matches!(stream.read(&mut [0; 1024]).await, Ok(n) if n > 0) {}
                        }
                        Raw::Close => drop(stream),
                        Raw::Garbage => {
                            let _ = stream
                                .write_all(b"SSH-2.0-OpenSSH_9.6 not http at all\r\n\r\n")
                                .await;
                        }
                        Raw::Endless => {
                            let head = b"HTTP/1.1 200 OK\r\ncontent-length: 1073741824\r\n\r\n";
                            let chunk = vec![b'x'; 64 * 1024];
                            if stream.write_all(head).await.is_ok() {
                                // Ends when the client drops the connection.
                                while stream.write_all(&chunk).await.is_ok() {}
                            }
                        }
                    }
                });
            }
        });
        Receiver {
            addr,
            accepted,
            seen,
        }
    }

    /// Reads until the end of the request head (or EOF).
    async fn read_head(stream: &mut TcpStream) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut chunk).await {
                Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        }
    }

    fn client(allow: &[&str], request_timeout: Duration) -> HttpClient {
        HttpClient::new(ClientConfig {
            request_timeout,
            allow_networks: allow.iter().map(|n| n.parse().unwrap()).collect(),
            user_agent: "hookbox-test/1".into(),
            ..ClientConfig::default()
        })
        .unwrap()
    }

    fn loopback_client() -> HttpClient {
        client(&["127.0.0.0/8"], Duration::from_secs(5))
    }

    fn ok() -> Response<Full<Bytes>> {
        Response::new(Full::new(Bytes::from_static(b"thanks")))
    }

    async fn post(client: &HttpClient, url: &str) -> Result<Answer, SendError> {
        client.post(url, &[], Bytes::from_static(b"{}"), CAP).await
    }

    #[tokio::test]
    async fn loopback_literal_is_refused_without_allow_list() {
        let rx = http_receiver(ok, false).await;
        let c = client(&[], Duration::from_secs(5));
        let err = post(&c, &rx.url()).await.unwrap_err();
        assert!(matches!(err, SendError::Refused(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "refused by SSRF guard: loopback address 127.0.0.1"
        );
        let err = post(&c, &format!("http://[::1]:{}/", rx.addr.port()))
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::Refused(_)), "{err:?}");
        assert_eq!(rx.accepted(), 0);
    }

    #[tokio::test]
    async fn name_resolving_to_loopback_is_refused() {
        let rx = http_receiver(ok, false).await;
        let c = client(&[], Duration::from_secs(5));
        let url = format!("http://localhost:{}/hook", rx.addr.port());
        let err = post(&c, &url).await.unwrap_err();
        match err {
            SendError::Refused(blocked) => assert_eq!(blocked.reason, "loopback address"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(rx.accepted(), 0);
    }

    #[tokio::test]
    async fn allowed_loopback_gets_status_and_body() {
        fn created() -> Response<Full<Bytes>> {
            let mut res = Response::new(Full::new(Bytes::from_static(b"stored")));
            *res.status_mut() = StatusCode::CREATED;
            res
        }
        let mut rx = http_receiver(created, false).await;
        let answer = loopback_client()
            .post(
                &rx.url(),
                &[("content-type", "application/json")],
                Bytes::from_static(b"{\"a\":1}"),
                CAP,
            )
            .await
            .unwrap();
        assert_eq!(answer.status, 201);
        assert_eq!(answer.body, Bytes::from_static(b"stored"));
        assert_eq!(answer.retry_after, None);
        let seen = rx.seen.recv().await.unwrap();
        assert_eq!(seen.body, Bytes::from_static(b"{\"a\":1}"));
        assert_eq!(seen.headers["content-type"], "application/json");
    }

    #[tokio::test]
    async fn custom_headers_and_user_agent_arrive() {
        let mut rx = http_receiver(ok, false).await;
        let c = loopback_client();
        let headers = [("x-custom", "one"), ("webhook-id", "evt_1")];
        c.post(&rx.url(), &headers, Bytes::new(), CAP)
            .await
            .unwrap();
        let seen = rx.seen.recv().await.unwrap();
        assert_eq!(seen.headers["x-custom"], "one");
        assert_eq!(seen.headers["webhook-id"], "evt_1");
        assert_eq!(seen.headers["user-agent"], "hookbox-test/1");

        // A caller-given user agent replaces ours rather than doubling it.
        let headers = [("User-Agent", "mine/2")];
        c.post(&rx.url(), &headers, Bytes::new(), CAP)
            .await
            .unwrap();
        let seen = rx.seen.recv().await.unwrap();
        let agents: Vec<_> = seen.headers.get_all("user-agent").iter().collect();
        assert_eq!(agents, ["mine/2"]);
    }

    #[tokio::test]
    async fn redirect_is_returned_not_followed() {
        let mut target = http_receiver(ok, false).await;
        let location = HeaderValue::from_str(&target.url()).unwrap();
        let redirect = move || {
            let mut res = Response::new(Full::new(Bytes::new()));
            *res.status_mut() = StatusCode::FOUND;
            res.headers_mut().insert("location", location.clone());
            res
        };
        let rx = http_receiver(redirect, false).await;
        let answer = post(&loopback_client(), &rx.url()).await.unwrap();
        assert_eq!(answer.status, 302);
        assert_eq!(target.accepted(), 0);
        assert!(target.seen.try_recv().is_err());
    }

    #[tokio::test]
    async fn retry_after_is_returned_raw() {
        fn busy() -> Response<Full<Bytes>> {
            let mut res = Response::new(Full::new(Bytes::new()));
            *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            res.headers_mut()
                .insert("retry-after", HeaderValue::from_static("120"));
            res
        }
        let rx = http_receiver(busy, false).await;
        let answer = post(&loopback_client(), &rx.url()).await.unwrap();
        assert_eq!(answer.status, 503);
        assert_eq!(answer.retry_after.as_deref(), Some("120"));
    }

    #[tokio::test]
    async fn silent_receiver_times_out() {
        let rx = raw_receiver(Raw::Hang).await;
        let timeout = Duration::from_millis(300);
        let c = client(&["127.0.0.0/8"], timeout);
        let started = Instant::now();
        let err = post(&c, &rx.url()).await.unwrap_err();
        let elapsed = started.elapsed();
        assert!(matches!(err, SendError::Timeout(_)), "{err:?}");
        assert_eq!(err.to_string(), "timed out after 300ms");
        assert!(
            elapsed >= timeout && elapsed < Duration::from_secs(3),
            "{elapsed:?}"
        );
    }

    #[tokio::test]
    async fn endless_body_stops_at_the_cap_promptly() {
        let rx = raw_receiver(Raw::Endless).await;
        // A long request timeout: returning promptly must come from the cap.
        let c = client(&["127.0.0.0/8"], Duration::from_secs(30));
        let started = Instant::now();
        let answer = c.post(&rx.url(), &[], Bytes::new(), 10_000).await.unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body.len(), 10_000);
        assert!(answer.body.iter().all(|&b| b == b'x'));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn closed_socket_is_an_io_error() {
        let rx = raw_receiver(Raw::Close).await;
        let err = post(&loopback_client(), &rx.url()).await.unwrap_err();
        assert!(matches!(err, SendError::Io(_)), "{err:?}");
    }

    #[tokio::test]
    async fn garbage_reply_is_an_io_error() {
        let rx = raw_receiver(Raw::Garbage).await;
        let err = post(&loopback_client(), &rx.url()).await.unwrap_err();
        assert!(matches!(err, SendError::Io(_)), "{err:?}");
        assert!(
            err.to_string().starts_with("invalid HTTP response"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn closed_port_is_a_connect_error() {
        let (listener, addr) = listener().await;
        drop(listener);
        let err = post(&loopback_client(), &format!("http://{addr}/"))
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::Connect(_)), "{err:?}");
        assert_eq!(err.to_string(), "connection refused");
    }

    #[tokio::test]
    async fn invalid_urls_and_headers_are_refused_before_sending() {
        let c = loopback_client();
        for url in [
            "not a url",
            "ftp://example.com/",
            "/relative",
            "http:///nohost",
        ] {
            let err = post(&c, url).await.unwrap_err();
            assert!(matches!(err, SendError::InvalidUrl(_)), "{url}: {err:?}");
        }
        let err = c
            .post(
                "http://127.0.0.1:9/",
                &[("bad name", "v")],
                Bytes::new(),
                CAP,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::InvalidHeader(_)), "{err:?}");
        let err = c
            .post(
                "http://127.0.0.1:9/",
                &[("x-a", "a\r\nb")],
                Bytes::new(),
                CAP,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::InvalidHeader(_)), "{err:?}");
    }

    #[tokio::test]
    async fn sequential_posts_reuse_one_connection() {
        let mut rx = http_receiver(ok, false).await;
        let c = loopback_client();
        for _ in 0..2 {
            assert_eq!(post(&c, &rx.url()).await.unwrap().status, 200);
        }
        assert_eq!(rx.seen.recv().await.unwrap().conn, 0);
        assert_eq!(rx.seen.recv().await.unwrap().conn, 0);
        assert_eq!(rx.accepted(), 1);
    }

    #[tokio::test]
    async fn https_with_extra_ca_succeeds() {
        let mut rx = http_receiver(ok, true).await;
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, TEST_CERT).unwrap();
        let c = HttpClient::new(ClientConfig {
            allow_networks: vec!["127.0.0.0/8".parse().unwrap()],
            extra_ca_file: Some(ca),
            ..ClientConfig::default()
        })
        .unwrap();
        let url = format!("https://127.0.0.1:{}/hook", rx.addr.port());
        let answer = post(&c, &url).await.unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, Bytes::from_static(b"thanks"));
        assert_eq!(
            rx.seen.recv().await.unwrap().body,
            Bytes::from_static(b"{}")
        );
    }

    #[tokio::test]
    async fn https_with_untrusted_cert_is_a_tls_error() {
        let rx = http_receiver(ok, true).await;
        let url = format!("https://127.0.0.1:{}/hook", rx.addr.port());
        let err = post(&loopback_client(), &url).await.unwrap_err();
        assert!(matches!(err, SendError::Tls(_)), "{err:?}");
        assert!(err.to_string().contains("certificate"), "{err}");
    }

    #[tokio::test]
    async fn https_to_plain_http_port_fails_fast() {
        let rx = http_receiver(ok, false).await;
        let url = format!("https://127.0.0.1:{}/hook", rx.addr.port());
        let err = post(&loopback_client(), &url).await.unwrap_err();
        assert!(
            matches!(err, SendError::Tls(_) | SendError::Io(_)),
            "{err:?}"
        );
    }

    #[test]
    fn bad_ca_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").unwrap();
        for path in [missing, empty] {
            let res = HttpClient::new(ClientConfig {
                extra_ca_file: Some(path.clone()),
                ..ClientConfig::default()
            });
            assert!(res.is_err(), "{}", path.display());
        }
    }
}
