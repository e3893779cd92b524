//! One DPoP proof, checked as RFC 9449 §4.3 lists it: one `DPoP` header, a
//! compact JWS of `typ` `dpop+jwt` with an allowed asymmetric `alg` and a
//! public `jwk`, its signature by that key, `htm` and `htu` of this
//! request, a fresh `iat`, a `jti`, the `ath` of the access token and, with
//! server nonces on, the current `nonce`. The caller compares the key's
//! thumbprint with the token's `cnf.jkt` and records the `jti`.

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine as _;
use http::HeaderMap;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

use super::thumbprint::{jwk_thumbprint, sha256_b64};
use super::uri::NormalizedUri;
use crate::AuthError;
use crate::keys::{AlgSet, Algorithm};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The longest proof read (a proof with an RSA-4096 `jwk` is under 2 KiB).
pub(crate) const MAX_PROOF_LEN: usize = 8 * 1024;
/// The longest `jti` accepted: stores keep it for the proof's lifetime.
const MAX_JTI_LEN: usize = 256;

/// The `DPoP` header name.
pub(crate) const DPOP: http::HeaderName = http::HeaderName::from_static("dpop");

fn invalid(reason: &'static str) -> AuthError {
    AuthError::invalid_dpop_proof(reason)
}

/// The protected header of a proof. Members of the wrong JSON type, and
/// duplicate members, fail deserialisation.
#[derive(Deserialize)]
struct ProofHeader<'a> {
    #[serde(borrow)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow)]
    alg: Cow<'a, str>,
    jwk: Option<Value>,
    crit: Option<IgnoredAny>,
    // Other key sources: the proof's key is its `jwk`, and only that.
    jku: Option<IgnoredAny>,
    x5u: Option<IgnoredAny>,
    x5c: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ProofClaims<'a> {
    #[serde(borrow)]
    jti: Option<Cow<'a, str>>,
    #[serde(borrow)]
    htm: Option<Cow<'a, str>>,
    #[serde(borrow)]
    htu: Option<Cow<'a, str>>,
    iat: Option<f64>,
    #[serde(borrow)]
    ath: Option<Cow<'a, str>>,
    #[serde(borrow)]
    nonce: Option<Cow<'a, str>>,
}

/// What a request must match.
pub(crate) struct Expected<'a> {
    pub(crate) method: &'a str,
    /// Any of the URIs the request may have been sent to.
    pub(crate) uris: &'a [NormalizedUri],
    /// The access token the proof must name in `ath`.
    pub(crate) token: &'a str,
    pub(crate) now: u64,
    pub(crate) algs: AlgSet,
    pub(crate) max_age: u64,
    pub(crate) leeway: u64,
    /// Proof headers already checked.
    pub(crate) keys: &'a ProofKeys,
}

/// A proof that passed every check but the nonce, the thumbprint
/// comparison and the replay record, which the caller does.
#[derive(Debug)]
pub(crate) struct Checked {
    /// RFC 7638 thumbprint of the proof's key.
    pub(crate) jkt: String,
    pub(crate) jti: String,
    pub(crate) iat: u64,
    pub(crate) nonce: Option<String>,
}

/// A proof header that passed its checks: the key it carries, parsed, and
/// its thumbprint. A client signs every proof with one key, so the header
/// segment repeats: kept in a bounded cache by that segment (identical
/// text, identical outcome), it costs one look-up instead of a base64
/// decode, a JSON parse, a key parse and a digest.
pub(crate) struct ProofKey {
    alg: Algorithm,
    key: crate::keys::VerifyingKey,
    jkt: String,
}

/// Proof keys by header segment.
pub(crate) type ProofKeys = crate::bounded::Bounded<Box<str>, Arc<ProofKey>>;

/// Check a proof's protected header (`h`, base64url).
fn header_key(h: &str, algs: AlgSet) -> Result<ProofKey, AuthError> {
    let malformed = || invalid("malformed DPoP proof");
    let header_json = B64.decode(h).map_err(|_| malformed())?;
    let header: ProofHeader<'_> = serde_json::from_slice(&header_json).map_err(|_| malformed())?;
    if !header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt"))
    {
        return Err(invalid("DPoP proof typ is not dpop+jwt"));
    }
    let alg = Algorithm::from_header(&header.alg)
        .filter(|a| algs.contains(*a))
        .ok_or_else(|| invalid("DPoP proof algorithm not allowed"))?;
    if header.crit.is_some() {
        return Err(invalid("DPoP proof with crit"));
    }
    if header.jku.is_some() || header.x5u.is_some() || header.x5c.is_some() {
        return Err(invalid("DPoP proof names a key besides its jwk"));
    }
    let jwk = header
        .jwk
        .ok_or_else(|| invalid("DPoP proof without jwk"))?;
    let key = crate::keys::proof_key(&jwk, alg).map_err(invalid)?;
    let jkt = jwk_thumbprint(jwk.as_object().ok_or_else(malformed)?).map_err(invalid)?;
    Ok(ProofKey { alg, key, jkt })
}

/// The one `DPoP` header of a request: none, or two, is an invalid proof.
pub(crate) fn header(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(DPOP).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(if headers.contains_key(DPOP) {
            invalid("more than one DPoP proof")
        } else {
            invalid("no DPoP proof")
        });
    };
    let text = value
        .to_str()
        .map_err(|_| invalid("malformed DPoP proof"))?;
    if text.len() > MAX_PROOF_LEN {
        return Err(invalid("DPoP proof too long"));
    }
    Ok(text.trim_ascii())
}

/// Check `proof` for the request `want`.
pub(crate) fn check(proof: &str, want: &Expected<'_>) -> Result<Checked, AuthError> {
    let malformed = || invalid("malformed DPoP proof");
    let mut parts = proof.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    if h.is_empty() || p.is_empty() || s.is_empty() {
        // An empty signature is `alg: none`, whatever the header says.
        return Err(invalid("unsigned DPoP proof"));
    }
    let key = match want.keys.get(h) {
        Some(key) => key,
        None => {
            let key = Arc::new(header_key(h, want.algs)?);
            want.keys.insert(h.into(), key.clone());
            key
        }
    };
    let claims_json = B64.decode(p).map_err(|_| malformed())?;
    let claims: ProofClaims<'_> = serde_json::from_slice(&claims_json).map_err(|_| malformed())?;
    let jti = claims
        .jti
        .ok_or_else(|| invalid("DPoP proof without jti"))?;
    if jti.is_empty() || jti.len() > MAX_JTI_LEN {
        return Err(invalid("DPoP proof jti empty or too long"));
    }
    let htm = claims
        .htm
        .ok_or_else(|| invalid("DPoP proof without htm"))?;
    // RFC 9110 §9.1: the method is case-sensitive.
    if *htm != *want.method {
        return Err(invalid("DPoP proof htm does not match the request"));
    }
    let htu = claims
        .htu
        .ok_or_else(|| invalid("DPoP proof without htu"))?;
    match NormalizedUri::parse(&htu) {
        Some(u) if want.uris.contains(&u) => {}
        _ => return Err(invalid("DPoP proof htu does not match the request")),
    }
    let iat = claims
        .iat
        .ok_or_else(|| invalid("DPoP proof without iat"))?;
    if !iat.is_finite() || iat < 0.0 {
        return Err(malformed());
    }
    let iat = iat.floor() as u64;
    if iat > want.now.saturating_add(want.leeway) {
        return Err(invalid("DPoP proof issued in the future"));
    }
    if iat.saturating_add(want.max_age).saturating_add(want.leeway) < want.now {
        return Err(invalid("DPoP proof too old"));
    }
    match claims.ath.as_deref() {
        None => return Err(invalid("DPoP proof without ath")),
        Some(ath) if ath != sha256_b64(want.token.as_bytes()) => {
            return Err(invalid("DPoP proof ath does not match the token"));
        }
        Some(_) => {}
    }
    let signing_input = &proof[..h.len() + 1 + p.len()];
    if !key.key.verify(key.alg, signing_input.as_bytes(), s) {
        return Err(invalid("bad DPoP proof signature"));
    }
    Ok(Checked {
        jkt: key.jkt.clone(),
        jti: jti.into_owned(),
        iat,
        nonce: claims.nonce.map(Cow::into_owned),
    })
}
