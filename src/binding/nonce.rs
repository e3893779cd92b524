//! Server-provided DPoP nonces (RFC 9449 §8, §9): stateless, so every
//! replica that shares the secret accepts every other's nonces.
//!
//! A nonce is the number of the current time step and an HMAC-SHA256 of it
//! under the secret, base64url. A nonce of the current or the previous step
//! is accepted: a nonce lives between one and two rotation periods, and a
//! new one is handed out once the step changes.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine as _;

use crate::ConfigError;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
/// Bytes of HMAC kept in a nonce.
const TAG_LEN: usize = 16;
const DOMAIN: &[u8] = b"tower-mandate dpop nonce v1";

/// Server nonces for DPoP proofs (RFC 9449 §8): see [`Dpop::with_nonces`](super::Dpop::with_nonces).
///
/// ```
/// use std::time::Duration;
/// use tower_mandate::binding::Nonces;
///
/// // Shared by every replica (from a secret store), rotated every 5 minutes.
/// let nonces = Nonces::new(b"0123456789abcdef0123456789abcdef")?
///     .with_rotation(Duration::from_secs(300));
/// # let _ = nonces;
/// # Ok::<(), tower_mandate::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Nonces {
    key: Arc<hmac::Key>,
    rotation: u64,
}

/// What a proof's nonce is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NonceCheck {
    /// The current step's nonce.
    Current,
    /// The previous step's: accepted, and a new nonce is handed out.
    Previous,
    /// Missing, forged or too old.
    Refused,
}

impl Nonces {
    /// Nonces made with `secret` (at least 32 bytes), which every replica
    /// of the service must share.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidBinding`] when the secret is shorter than 32 bytes.
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Nonces, ConfigError> {
        let secret = secret.as_ref();
        if secret.len() < 32 {
            return Err(ConfigError::InvalidBinding(
                "the DPoP nonce secret must be at least 32 bytes".into(),
            ));
        }
        Ok(Nonces {
            key: Arc::new(hmac::Key::new(hmac::HMAC_SHA256, secret)),
            rotation: 300,
        })
    }

    /// Nonces with a random secret of this process: for one replica only
    /// (another replica refuses them, and the client retries there once).
    ///
    /// # Panics
    ///
    /// If the system random source fails.
    pub fn random() -> Nonces {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("random nonce secret");
        Nonces {
            key: Arc::new(key),
            rotation: 300,
        }
    }

    /// How often the nonce changes (default 5 minutes, at least 1 s): a
    /// nonce is accepted for one to two such periods.
    pub fn with_rotation(mut self, every: Duration) -> Self {
        self.rotation = every.as_secs().max(1);
        self
    }

    fn tag(&self, step: u64) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(DOMAIN);
        ctx.update(&step.to_be_bytes());
        ctx.sign()
    }

    /// The nonce to hand out at `now` (unix seconds).
    pub(crate) fn current(&self, now: u64) -> String {
        let step = now / self.rotation;
        let mut raw = Vec::with_capacity(8 + TAG_LEN);
        raw.extend_from_slice(&step.to_be_bytes());
        raw.extend_from_slice(&self.tag(step).as_ref()[..TAG_LEN]);
        B64.encode(raw)
    }

    /// What `nonce` is worth at `now`.
    pub(crate) fn check(&self, nonce: Option<&str>, now: u64) -> NonceCheck {
        let Some(raw) = nonce.and_then(|n| B64.decode(n).ok()) else {
            return NonceCheck::Refused;
        };
        if raw.len() != 8 + TAG_LEN {
            return NonceCheck::Refused;
        }
        let step = u64::from_be_bytes(raw[..8].try_into().unwrap_or_default());
        let expected = self.tag(step);
        // Constant time: the tag is a secret's output.
        if aws_lc_rs::constant_time::verify_slices_are_equal(
            &raw[8..],
            &expected.as_ref()[..TAG_LEN],
        )
        .is_err()
        {
            return NonceCheck::Refused;
        }
        let current = now / self.rotation;
        if step == current {
            NonceCheck::Current
        } else if step.checked_add(1) == Some(current) {
            NonceCheck::Previous
        } else {
            NonceCheck::Refused
        }
    }
}

impl fmt::Debug for Nonces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nonces")
            .field("rotation_secs", &self.rotation)
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_previous_and_forged() {
        let n = Nonces::new([7u8; 32])
            .unwrap()
            .with_rotation(Duration::from_secs(60));
        let t = 1_800_000_000;
        let nonce = n.current(t);
        assert_eq!(n.check(Some(&nonce), t), NonceCheck::Current);
        assert_eq!(n.check(Some(&nonce), t + 60), NonceCheck::Previous);
        assert_eq!(n.check(Some(&nonce), t + 120), NonceCheck::Refused);
        assert_eq!(n.check(None, t), NonceCheck::Refused);
        assert_eq!(n.check(Some("abc"), t), NonceCheck::Refused);
        // Another secret's nonce, and a future step, are refused.
        let other = Nonces::new([8u8; 32])
            .unwrap()
            .with_rotation(Duration::from_secs(60));
        assert_eq!(n.check(Some(&other.current(t)), t), NonceCheck::Refused);
        assert_eq!(n.check(Some(&n.current(t + 600)), t), NonceCheck::Refused);
        assert!(Nonces::new([1u8; 31]).is_err());
        assert!(!format!("{n:?}").contains("7"));
    }
}
