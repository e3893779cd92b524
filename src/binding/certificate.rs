//! Certificate-bound tokens (RFC 8705 §3): where the client certificate of
//! a request comes from, and its SHA-256 thumbprint.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use http::HeaderName;

use super::thumbprint::sha256_b64;
use crate::AuthError;
use crate::token::Head;

/// The TLS client certificate of a connection, put into each request's
/// extensions by the server that terminated TLS (see the
/// [module docs](super) for axum over rustls). tonic's own TLS server
/// needs nothing: the layer reads tonic's `TlsConnectInfo` (feature
/// `tonic-tls`).
#[derive(Clone)]
pub struct ClientCertificate {
    /// `x5t#S256`, computed once per connection.
    thumbprint: Arc<str>,
}

impl ClientCertificate {
    /// The certificate, DER-encoded (the first of rustls'
    /// `peer_certificates()`: the client's own).
    pub fn from_der(der: impl AsRef<[u8]>) -> Self {
        ClientCertificate {
            thumbprint: sha256_b64(der.as_ref()).into(),
        }
    }

    /// Its SHA-256 thumbprint, base64url: what a token bound to it carries
    /// in `cnf["x5t#S256"]`.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t#S256", &self.thumbprint)
            .finish()
    }
}

#[derive(Clone, Debug)]
enum Source {
    Connection,
    Envoy,
    PemHeader(HeaderName),
}

/// Where the layer finds a request's client certificate, for tokens bound
/// to one: see [`MandateBuilder::with_client_certificates`](crate::server::MandateBuilder::with_client_certificates).
///
/// # Security
///
/// A header source trusts whoever sets the header: use one only when every
/// request reaches the service through that proxy, which removes the
/// header from what clients send and sets it from the TLS connection it
/// terminated itself.
#[derive(Clone, Debug)]
pub struct CertificateSource(Source);

impl CertificateSource {
    /// The TLS connection the request came on (the default): a
    /// [`ClientCertificate`] in the request's extensions, or tonic's
    /// `TlsConnectInfo` (feature `tonic-tls`).
    pub fn connection() -> Self {
        CertificateSource(Source::Connection)
    }

    /// Envoy's `x-forwarded-client-cert` header (`forward_client_cert_details`
    /// `SANITIZE_SET` — the safe mode, where Envoy replaces what the client
    /// sent — or `APPEND_FORWARD`; `set_current_client_cert_details` naming
    /// `Cert` or the default `Hash`): the last element, the one the proxy
    /// next to this service added. An element with a quote left open, or
    /// with two `Hash` or `Cert` members, is refused (400): it would hide
    /// what the proxy appended.
    pub fn envoy_xfcc() -> Self {
        CertificateSource(Source::Envoy)
    }

    /// A header holding the client certificate as PEM, URL-encoded or not
    /// (nginx `$ssl_client_escaped_cert`, AWS ALB `X-Amzn-Mtls-Clientcert`).
    pub fn pem_header(header: HeaderName) -> Self {
        CertificateSource(Source::PemHeader(header))
    }

    /// The thumbprint of the request's client certificate, when it has one.
    pub(crate) fn thumbprint(&self, head: &Head<'_>) -> Result<Option<String>, AuthError> {
        match &self.0 {
            Source::Connection => Ok(connection(head)),
            Source::Envoy => {
                let Some(value) = one_header(head, &XFCC)? else {
                    return Ok(None);
                };
                envoy(value).map(Some)
            }
            Source::PemHeader(name) => {
                let Some(value) = one_header(head, name)? else {
                    return Ok(None);
                };
                let der = pem_der(&percent_decode(value)).ok_or_else(malformed)?;
                Ok(Some(sha256_b64(&der)))
            }
        }
    }
}

const XFCC: HeaderName = HeaderName::from_static("x-forwarded-client-cert");

fn malformed() -> AuthError {
    AuthError::invalid_request("malformed client certificate header")
}

fn connection(head: &Head<'_>) -> Option<String> {
    if let Some(cert) = head.extensions.get::<ClientCertificate>() {
        return Some(cert.thumbprint.to_string());
    }
    #[cfg(feature = "tonic-tls")]
    {
        use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
        if let Some(info) = head.extensions.get::<TlsConnectInfo<TcpConnectInfo>>()
            && let Some(certs) = info.peer_certs()
            && let Some(first) = certs.first()
        {
            return Some(sha256_b64(first.as_ref()));
        }
    }
    None
}

fn one_header<'a>(head: &Head<'a>, name: &HeaderName) -> Result<Option<&'a str>, AuthError> {
    let mut values = head.headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(v), None) => v.to_str().map(Some).map_err(|_| malformed()),
        (Some(_), Some(_)) => Err(AuthError::invalid_request(
            "duplicate client certificate headers",
        )),
    }
}

/// The certificate thumbprint of the last element of an XFCC header:
/// `Cert` (URL-encoded PEM) when present, else `Hash` (hex SHA-256).
fn envoy(value: &str) -> Result<String, AuthError> {
    let elements = split_quoted(value, b',').ok_or_else(malformed)?;
    let last = elements.last().ok_or_else(malformed)?;
    let mut hash = None;
    let mut cert = None;
    for pair in split_quoted(last, b';').ok_or_else(malformed)? {
        let (key, value) = pair.split_once('=').ok_or_else(malformed)?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        let slot = match key.trim().to_ascii_lowercase().as_str() {
            "hash" => &mut hash,
            "cert" => &mut cert,
            _ => continue,
        };
        // One of each per element: a second one is an injection attempt.
        if slot.replace(value).is_some() {
            return Err(malformed());
        }
    }
    if let Some(cert) = cert {
        let der = pem_der(&percent_decode(cert)).ok_or_else(malformed)?;
        return Ok(sha256_b64(&der));
    }
    let hash = hash.ok_or_else(malformed)?;
    let digest = hex(hash).filter(|d| d.len() == 32).ok_or_else(malformed)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest))
}

/// Split on `sep` outside double quotes (`\"` escapes a quote inside);
/// `None` when a quote is left open, which would swallow what a proxy
/// appended after it.
fn split_quoted(s: &str, sep: u8) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, b) in s.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            _ if b == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted || escaped {
        return None;
    }
    parts.push(&s[start..]);
    Some(
        parts
            .into_iter()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect(),
    )
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The DER of the first `CERTIFICATE` block of `pem` (line breaks may have
/// become spaces in a header).
fn pem_der(pem: &str) -> Option<Vec<u8>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let start = pem.find(BEGIN)? + BEGIN.len();
    let end = start + pem[start..].find(END)?;
    let body: String = pem[start..end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    (!der.is_empty()).then_some(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_with(name: &'static str, values: &[&str]) -> (http::Request<()>,) {
        let mut req = http::Request::new(());
        for v in values {
            req.headers_mut()
                .append(name, http::HeaderValue::from_str(v).unwrap());
        }
        (req,)
    }

    // A self-signed certificate's DER, as base64 (any bytes work for the digest).
    const DER_B64: &str = "MIIBszCCAVmgAwIBAgIUZm9vYmFy";

    #[test]
    fn pem_headers_url_encoded_or_not() {
        let pem = format!("-----BEGIN CERTIFICATE-----\n{DER_B64}\n-----END CERTIFICATE-----\n");
        let der = base64::engine::general_purpose::STANDARD
            .decode(DER_B64)
            .unwrap();
        let want = sha256_b64(&der);
        let encoded: String =
            percent_encoding::utf8_percent_encode(&pem, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        let source = CertificateSource::pem_header(HeaderName::from_static("x-client-cert"));
        for value in [encoded.as_str(), &pem.replace('\n', " ")] {
            let (req,) = head_with("x-client-cert", &[value]);
            assert_eq!(
                source.thumbprint(&Head::of(&req)).unwrap(),
                Some(want.clone())
            );
        }
        let (req,) = head_with("x-client-cert", &[&encoded, &encoded]);
        assert!(source.thumbprint(&Head::of(&req)).is_err(), "two headers");
        let (req,) = head_with("x-client-cert", &["garbage"]);
        assert!(source.thumbprint(&Head::of(&req)).is_err());
        let (req,) = head_with("x-other", &[&encoded]);
        assert_eq!(source.thumbprint(&Head::of(&req)).unwrap(), None);
    }

    #[test]
    fn envoy_xfcc_last_element() {
        let der = base64::engine::general_purpose::STANDARD
            .decode(DER_B64)
            .unwrap();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let pem = format!("-----BEGIN CERTIFICATE-----\n{DER_B64}\n-----END CERTIFICATE-----\n");
        let cert: String =
            percent_encoding::utf8_percent_encode(&pem, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        let want = sha256_b64(&der);
        let source = CertificateSource::envoy_xfcc();
        let cases = [
            format!("By=spiffe://a;Hash={hex};Subject=\"CN=x,O=y\";URI=spiffe://c"),
            format!("Hash=00;By=x,By=spiffe://proxy;Hash={hex}"),
            format!("By=spiffe://proxy;Cert=\"{cert}\";Hash=ignored-when-cert"),
        ];
        for value in &cases {
            let (req,) = head_with("x-forwarded-client-cert", &[value]);
            assert_eq!(
                source.thumbprint(&Head::of(&req)).unwrap(),
                Some(want.clone()),
                "{value}"
            );
        }
        // A client's element whose open quote would swallow what Envoy
        // appends (APPEND_FORWARD), and repeated members.
        let injected = [
            format!(
                "Hash={hex};By=\",By=spiffe://envoy;Hash={}",
                "00".repeat(32)
            ),
            format!(
                "Hash={hex};Subject=\"CN=x\";By=\",By=spiffe://envoy;Hash={}",
                "00".repeat(32)
            ),
            format!("By=spiffe://envoy;Hash={};Hash={hex}", "00".repeat(32)),
        ];
        for value in &injected {
            let (req,) = head_with("x-forwarded-client-cert", &[value]);
            assert!(source.thumbprint(&Head::of(&req)).is_err(), "{value}");
        }
        for bad in ["By=x", "Hash=zz", "Hash=abcd", ";;"] {
            let (req,) = head_with("x-forwarded-client-cert", &[bad]);
            assert!(source.thumbprint(&Head::of(&req)).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_connection_extension() {
        let mut req = http::Request::new(());
        let cert = ClientCertificate::from_der(b"der");
        req.extensions_mut().insert(cert.clone());
        let got = CertificateSource::connection()
            .thumbprint(&Head::of(&req))
            .unwrap();
        assert_eq!(got.as_deref(), Some(cert.thumbprint()));
        assert!(format!("{cert:?}").contains(cert.thumbprint()));
    }
}
