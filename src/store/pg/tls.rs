//! TLS to PostgreSQL: what the URL's `sslmode` and `sslrootcert` and `[store]
//! postgres_ca_file` ask for (the sslmode table in ARCHITECTURE.md), and the rustls
//! connector that does it. It owns that table and the CA file's checks. It never
//! skips a check the settings ask for, never trusts the public roots when a CA file
//! is given, and reads no file but the CA file.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// An `sslmode` as libpq spells it (tokio-postgres knows only the first, third and
/// fourth; hookbox takes the value out of the URL before tokio-postgres parses it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// As `Prefer` (libpq tries plain text first; hookbox tries TLS first).
    Allow,
    /// TLS when the server offers it, plain text otherwise; the certificate is not
    /// checked (libpq's default).
    Prefer,
    /// TLS, and (stricter than libpq) the certificate's chain and host name checked.
    Require,
    /// TLS, the chain checked against the CA file; the host name is not.
    VerifyCa,
    /// TLS, the chain and the host name checked.
    VerifyFull,
}

impl SslMode {
    const ALL: [(&'static str, SslMode); 6] = [
        ("disable", SslMode::Disable),
        ("allow", SslMode::Allow),
        ("prefer", SslMode::Prefer),
        ("require", SslMode::Require),
        ("verify-ca", SslMode::VerifyCa),
        ("verify-full", SslMode::VerifyFull),
    ];

    fn parse(value: &str) -> Option<SslMode> {
        Self::ALL.iter().find(|(n, _)| *n == value).map(|(_, m)| *m)
    }

    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("?", |(n, _)| n)
    }
}

/// `sslrootcert` as libpq spells it: a CA file, or `system` (the public roots).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// Trust only the certificates in this PEM file.
    File(PathBuf),
    /// `sslrootcert=system`: trust the public web roots, and check host names.
    System,
}

/// The TLS settings written in a `postgres_url`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlTls {
    /// `sslmode`, when given.
    pub mode: Option<SslMode>,
    /// `sslrootcert`, when given.
    pub root_cert: Option<RootCert>,
}

/// Takes `sslmode` and `sslrootcert` out of a `postgres://` URL: returns the URL
/// without them (for tokio-postgres's parser, which refuses `verify-ca`,
/// `verify-full` and `sslrootcert`) and their values. Other strings (libpq's
/// `key=value` form) come back unchanged, their `sslmode` left to tokio-postgres.
/// The query is found as tokio-postgres finds it: after the first `@`, if any.
pub fn split_url(url: &str) -> Result<(String, UrlTls), String> {
    let Some(scheme) = ["postgres://", "postgresql://"]
        .into_iter()
        .find(|p| url.starts_with(p))
    else {
        return Ok((url.to_owned(), UrlTls::default()));
    };
    let after_scheme = &url[scheme.len()..];
    let authority = after_scheme.find('@').map_or(0, |at| at + 1);
    let Some(q) = after_scheme[authority..].find('?') else {
        return Ok((url.to_owned(), UrlTls::default()));
    };
    let query_at = scheme.len() + authority + q;
    let mut kept: Vec<&str> = Vec::new();
    let mut tls = UrlTls::default();
    for param in url[query_at + 1..].split('&') {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        match decode(key).as_deref() {
            Some("sslmode") => {
                let value = decode(value).unwrap_or_default();
                tls.mode = Some(SslMode::parse(&value).ok_or_else(|| {
                    format!(
                        "sslmode {value:?} is not one of disable, allow, prefer, require, \
                         verify-ca, verify-full"
                    )
                })?);
            }
            Some("sslrootcert") => {
                let value = decode(value).ok_or("sslrootcert is not valid UTF-8")?;
                tls.root_cert = match value.as_str() {
                    "" => return Err("sslrootcert is empty".to_owned()),
                    "system" => Some(RootCert::System),
                    path => Some(RootCert::File(PathBuf::from(path))),
                };
            }
            _ => kept.push(param),
        }
    }
    let mut rest = url[..query_at].to_owned();
    if !kept.is_empty() {
        rest.push('?');
        rest.push_str(&kept.join("&"));
    }
    Ok((rest, tls))
}

/// Percent-decodes a URL query part; `None` when it is not UTF-8 afterwards.
fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h)? * 16 + hex(l)?) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// What this node's connections do, decided once from the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// Plain text (`sslmode=disable`).
    Plain,
    /// TLS when the server offers it, plain text otherwise, the certificate not
    /// checked (`prefer`, `allow`, or no `sslmode` and no CA): as libpq, this keeps
    /// out a passive listener, not a man in the middle.
    Opportunistic,
    /// TLS required, the certificate's chain checked against `ca_file` (the public
    /// web roots when `None`), and its host name when `host_name`.
    Verified {
        /// The PEM file of the CAs to trust instead of the public roots.
        ca_file: Option<PathBuf>,
        /// Whether the certificate must name the host of the URL.
        host_name: bool,
    },
}

impl Policy {
    /// Decides from the URL's settings and `[store] postgres_ca_file`. Every
    /// contradiction is a problem, all listed: a CA that would not be used, a chain
    /// check without a CA of the user's own (which would accept any public
    /// certificate for any name), and a CA given twice.
    pub fn decide(url: &UrlTls, ca_file: Option<&Path>) -> Result<Policy, Vec<String>> {
        let mut problems = Vec::new();
        let root = match (&url.root_cert, ca_file) {
            (Some(RootCert::File(a)), Some(b)) if a != b => {
                problems.push(
                    "the URL's sslrootcert and store.postgres_ca_file name different CA \
                     files; give one"
                        .to_owned(),
                );
                url.root_cert.clone()
            }
            (Some(root), _) => Some(root.clone()),
            (None, Some(file)) => Some(RootCert::File(file.to_owned())),
            (None, None) => None,
        };
        let ca_file = match &root {
            Some(RootCert::File(f)) => Some(f.clone()),
            _ => None,
        };
        let policy = match (url.mode, &root) {
            (Some(SslMode::Disable), None) => Policy::Plain,
            (Some(mode @ (SslMode::Disable | SslMode::Allow | SslMode::Prefer)), Some(_)) => {
                problems.push(format!(
                    "sslmode={} never checks the server's certificate, so the CA \
                     (sslrootcert or store.postgres_ca_file) would not be used: use \
                     sslmode=verify-full, or remove the CA",
                    mode.name()
                ));
                Policy::Plain
            }
            (None | Some(SslMode::Allow | SslMode::Prefer), None) => Policy::Opportunistic,
            (Some(SslMode::VerifyCa), Some(RootCert::File(_))) => Policy::Verified {
                ca_file,
                host_name: false,
            },
            (Some(SslMode::VerifyCa), _) => {
                problems.push(
                    "sslmode=verify-ca needs a CA file (sslrootcert=/path/ca.pem or \
                     store.postgres_ca_file): a chain check against the public roots \
                     without the host name would accept anyone's certificate"
                        .to_owned(),
                );
                Policy::Plain
            }
            // No sslmode with a CA, require, verify-full: the chain and the name.
            (None | Some(SslMode::Require | SslMode::VerifyFull), _) => Policy::Verified {
                ca_file,
                host_name: true,
            },
        };
        if problems.is_empty() {
            Ok(policy)
        } else {
            Err(problems)
        }
    }

    /// The `sslmode` tokio-postgres itself acts on (whether to ask for TLS, and
    /// whether to go on in plain text when the server has none).
    pub(super) fn ssl_mode(&self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Pg;
        match self {
            Policy::Plain => Pg::Disable,
            Policy::Opportunistic => Pg::Prefer,
            Policy::Verified { .. } => Pg::Require,
        }
    }
}

/// Reads the CA certificates of a PEM file. Every certificate must be one rustls
/// accepts as a trust anchor; at least one is required. The error says what is
/// wrong (not the path: the caller names it).
pub fn load_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot be read: {e}"))?;
    let mut certs = Vec::new();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        certs.push(cert.map_err(|e| format!("is not a valid PEM file: {e}"))?);
    }
    if certs.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned());
    }
    let mut roots = rustls::RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        roots
            .add(cert.clone())
            .map_err(|e| format!("certificate {} is not a usable CA: {e}", i + 1))?;
    }
    Ok(certs)
}

/// How this node's connections reach the database: in plain text, or through TLS
/// with rustls. Built once at open, for the pool and the change listener alike.
#[derive(Clone)]
pub(super) enum Connector {
    /// `Policy::Plain`.
    Plain,
    /// TLS with this configuration.
    Tls(Arc<rustls::ClientConfig>),
}

impl Connector {
    /// The connector for `policy`; fails when the CA file cannot be used.
    pub(super) fn new(policy: &Policy) -> Result<Connector, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup failed: {e}"))?;
        let config = match policy {
            Policy::Plain => return Ok(Connector::Plain),
            Policy::Opportunistic => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
                .with_no_client_auth(),
            Policy::Verified { ca_file, host_name } => {
                let roots = match ca_file {
                    Some(path) => {
                        let mut roots = rustls::RootCertStore::empty();
                        let certs = load_ca(path)
                            .map_err(|e| format!("the CA file {} {e}", path.display()))?;
                        roots.add_parsable_certificates(certs);
                        roots
                    }
                    None => rustls::RootCertStore {
                        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                    },
                };
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| format!("TLS setup failed: {e}"))?;
                if *host_name {
                    builder.with_webpki_verifier(webpki).with_no_client_auth()
                } else {
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
                        .with_no_client_auth()
                }
            }
        };
        Ok(Connector::Tls(Arc::new(config)))
    }

    /// The tokio-postgres TLS maker of a `Tls` connector.
    pub(super) fn rustls(
        config: &Arc<rustls::ClientConfig>,
    ) -> tokio_postgres_rustls::MakeRustlsConnect {
        tokio_postgres_rustls::MakeRustlsConnect::new(rustls::ClientConfig::clone(config))
    }
}

/// `verify-ca`: the full webpki check, but a certificate that fails only on the
/// host name is accepted (webpki checks the chain, validity and usage first, so
/// that error means everything else passed).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer`: the certificate is not checked (as libpq); the handshake's
/// signatures still are, so the session is a real TLS session with the holder of
/// the certificate's key.
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A connection error in words: tokio-postgres's message with its causes (its
/// `Display` alone says only "error performing TLS handshake"), and for a refused
/// certificate what to change.
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut hint = None;
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        let tls = cause.downcast_ref::<rustls::Error>().or_else(|| {
            cause
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(rustls::Error::InvalidCertificate(why)) = tls {
            hint = Some(certificate_hint(why));
        }
        source = cause.source();
    }
    if let Some(hint) = hint {
        text.push_str(" (");
        text.push_str(&hint);
        text.push(')');
    }
    text
}

/// What to change when the server's certificate was refused for `why`.
fn certificate_hint(why: &CertificateError) -> Cow<'static, str> {
    match why {
        CertificateError::UnknownIssuer | CertificateError::BadSignature => Cow::Borrowed(
            "the server's certificate is not signed by a CA hookbox trusts: set \
             sslrootcert=/path/ca.pem in postgres_url or store.postgres_ca_file to the CA \
             that signed it (without one, only the public web roots are trusted)",
        ),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            Cow::Borrowed(
                "the server's certificate does not hold the host name of postgres_url: \
                 connect by a name the certificate holds, or use sslmode=verify-ca to \
                 check the chain only",
            )
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            Cow::Borrowed("the server's certificate has expired")
        }
        other => Cow::Owned(format!("the server's certificate was refused: {other:?}")),
    }
}

#[cfg(test)]
mod tests;
