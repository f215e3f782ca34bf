//! A small HTTP/1.1 client for hookbox's own API (plain http or https) used by the
//! client commands. It must never reuse the delivery client: that one's SSRF guard
//! refuses loopback, which is exactly where an operator's hookbox usually listens.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::Value;

use super::output::printable;
use super::{CliError, DEFAULT_SERVER, TIMEOUT};
use crate::model::Secret;

/// A successful answer.
pub struct Answer {
    /// The HTTP status (2xx).
    pub status: StatusCode,
    /// The body as received.
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON (`null` when empty or not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The body for `--json`: as received, with one trailing newline.
    pub(super) fn raw(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim_end();
        if text.is_empty() {
            String::new()
        } else {
            format!("{text}\n")
        }
    }
}

/// A small HTTP/1.1 client for hookbox's API: plain http or https (webpki roots plus
/// an optional CA file), the admin token on every call.
pub struct ApiClient {
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: String,
    token: Secret,
}

impl ApiClient {
    /// A client for the server at `server` (`http://host:port` or `https://...`, an
    /// optional path prefix, no query).
    pub fn new(server: &str, token: Secret, ca_file: Option<&Path>) -> Result<Self, CliError> {
        let uri: http::Uri = server
            .parse()
            .map_err(|e| CliError::Usage(format!("--server {server:?} is not a URL: {e}")))?;
        if !matches!(uri.scheme_str(), Some("http" | "https"))
            || uri.authority().is_none()
            || uri.query().is_some()
        {
            return Err(CliError::Usage(format!(
                "--server {server:?} must be an http:// or https:// URL such as {DEFAULT_SERVER}"
            )));
        }
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(ca_file)?)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(ApiClient {
            http: Client::builder(TokioExecutor::new()).build(https),
            base: server.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// Sends one call; `tenant` goes in `X-Tenant-Id`. A non-2xx answer is
    /// [`CliError::Api`] with the server's message and reasons.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        tenant: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, CliError> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", self.token.expose()),
            )
            .header(header::ACCEPT, "application/json")
            .header(
                header::USER_AGENT,
                concat!("hookbox-cli/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(tenant) = tenant {
            req = req.header("x-tenant-id", tenant);
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| CliError::Usage(format!("cannot build the request: {e}")))?;
        let server = || self.base.clone();
        let exchange = async {
            let resp = self.http.request(req).await.map_err(|source| {
                if source.is_connect() {
                    CliError::Connect {
                        server: server(),
                        source,
                    }
                } else {
                    CliError::Transport {
                        server: server(),
                        source: Box::new(source),
                    }
                }
            })?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| CliError::Transport {
                    server: server(),
                    source: Box::new(e),
                })?
                .to_bytes();
            Ok::<_, CliError>(Answer { status, body })
        };
        let answer = tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| CliError::Timeout { server: server() })??;
        if answer.status.is_success() {
            Ok(answer)
        } else {
            Err(api_error(answer.status, &answer.body))
        }
    }
}

/// The server's `{"error": {code, message, reasons}}`, or the status and the start
/// of whatever else it sent.
pub(super) fn api_error(status: StatusCode, body: &[u8]) -> CliError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let e = &v["error"];
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let message = text(&e["message"]).unwrap_or_else(|| {
        let raw = String::from_utf8_lossy(body);
        let raw: String = raw.trim().chars().take(200).collect();
        if raw.is_empty() {
            status.canonical_reason().unwrap_or("error").to_owned()
        } else {
            raw
        }
    });
    CliError::Api {
        status,
        code: text(&e["code"]).unwrap_or_default(),
        message: printable(&message),
        reasons: e["reasons"]
            .as_array()
            .map(|r| r.iter().filter_map(text).collect())
            .unwrap_or_default(),
    }
}

/// rustls with the ring provider and the webpki roots, plus the CA file if given.
fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, CliError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let ca_err = |reason: String| CliError::CaFile {
            path: path.to_owned(),
            reason,
        };
        let certs = CertificateDer::pem_file_iter(path).map_err(|e| ca_err(e.to_string()))?;
        let mut added = 0;
        for cert in certs {
            let cert = cert.map_err(|e| ca_err(e.to_string()))?;
            roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(ca_err("no certificate in it".to_owned()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CliError::Usage(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Percent-encodes everything but RFC 3986 unreserved characters, for one path
/// segment or query value.
pub(super) fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::EXIT_API;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(seg("wh_01J-x.y~z"), "wh_01J-x.y~z");
        assert_eq!(seg("a/b?c d"), "a%2Fb%3Fc%20d");
        assert_eq!(seg("é"), "%C3%A9");
    }

    #[test]
    fn api_errors_keep_message_and_every_reason() {
        let body = br#"{"error":{"code":"bad_request","message":"invalid","reasons":["a","b"]}}"#;
        let e = api_error(StatusCode::BAD_REQUEST, body);
        assert_eq!(e.exit_code(), EXIT_API);
        assert_eq!(
            e.report(),
            "hookbox: 400 Bad Request: invalid\n  - a\n  - b\n"
        );
        let e = api_error(StatusCode::BAD_GATEWAY, b"");
        assert_eq!(e.report(), "hookbox: 502 Bad Gateway: Bad Gateway\n");
    }

    #[test]
    fn server_must_be_an_http_url() {
        for bad in ["127.0.0.1:8080", "ftp://x", "http://x/?q=1", "not a url"] {
            let e = ApiClient::new(bad, Secret::new("t"), None).err();
            assert!(
                matches!(e, Some(CliError::Usage(_))),
                "{bad} should be refused"
            );
        }
        assert!(ApiClient::new("https://hookbox.example/", Secret::new("t"), None).is_ok());
    }
}
