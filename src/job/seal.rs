//! Sealing job handles: AES-256-GCM (aws-lc-rs) under the application's
//! keys, with a key id so keys can rotate.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine as _;

use crate::ConfigError;

/// The length of a sealing key: 32 bytes (AES-256).
pub const KEY_LEN: usize = 32;

/// The longest key id.
const MAX_KID: usize = 64;

struct Key {
    kid: Box<str>,
    key: RandomizedNonceKey,
}

/// The application keys that seal [job handles](super::JobHandle): one
/// current key that seals (and opens), and previous keys that only open,
/// while handles sealed under them drain from the queues.
///
/// Each key is 32 random bytes (AES-256-GCM) with an id; every handle names
/// the id of its key. To rotate: deploy the new key as current with the old
/// one as previous; once the longest job lifetime has passed, drop the old
/// one. A handle sealed under a key that is no longer here is refused
/// ([`JobErrorKind::UnknownKey`](super::JobErrorKind::UnknownKey)).
/// Nonces are random (96 bits): rotate before a key has sealed 2³²
/// handles.
///
/// ```
/// use tower_mandate::job::SealingKeys;
///
/// // In production: SealingKeys::from_base64("2026-12", &std::env::var("JOB_KEY")?)
/// let keys = SealingKeys::new("2026-12", &[7u8; 32])?
///     .with_previous("2026-11", &[9u8; 32])?;
/// assert_eq!(keys.current_kid(), "2026-12");
/// assert!(SealingKeys::new("short", &[7u8; 16]).is_err());
/// # Ok::<(), tower_mandate::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct SealingKeys {
    current: Arc<Key>,
    previous: Vec<Arc<Key>>,
}

fn invalid(kid: &str, reason: String) -> ConfigError {
    ConfigError::InvalidKey {
        kid: Some(kid.to_owned()),
        reason,
    }
}

fn key(kid: &str, secret: &[u8]) -> Result<Arc<Key>, ConfigError> {
    if kid.is_empty()
        || kid.len() > MAX_KID
        || !kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        return Err(invalid(
            kid,
            format!("a sealing key id is 1 to {MAX_KID} characters of A-Z a-z 0-9 - _ . :"),
        ));
    }
    if secret.len() != KEY_LEN {
        return Err(invalid(
            kid,
            format!(
                "a sealing key of {} bytes, expected {KEY_LEN}",
                secret.len()
            ),
        ));
    }
    let key = RandomizedNonceKey::new(&AES_256_GCM, secret)
        .map_err(|_| invalid(kid, "not an AES-256 key".into()))?;
    Ok(Arc::new(Key {
        kid: kid.into(),
        key,
    }))
}

fn decode(kid: &str, text: &str) -> Result<Vec<u8>, ConfigError> {
    let text = text.trim();
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
        .map_err(|_| invalid(kid, "a sealing key that is not base64".into()))
}

impl SealingKeys {
    /// Seal with `secret` (32 bytes), named `kid`.
    ///
    /// # Errors
    ///
    /// A secret that is not 32 bytes, or an id that is empty, longer than
    /// 64 characters or not of `A-Z a-z 0-9 - _ . :`.
    pub fn new(kid: &str, secret: &[u8]) -> Result<Self, ConfigError> {
        Ok(SealingKeys {
            current: key(kid, secret)?,
            previous: Vec::new(),
        })
    }

    /// [`SealingKeys::new`] from the key's base64 (standard or URL-safe),
    /// e.g. the output of `openssl rand -base64 32`.
    ///
    /// # Errors
    ///
    /// As [`SealingKeys::new`], or text that is not base64.
    pub fn from_base64(kid: &str, secret: &str) -> Result<Self, ConfigError> {
        Self::new(kid, &decode(kid, secret)?)
    }

    /// Also open handles sealed under `secret` (named `kid`), a previous key.
    ///
    /// # Errors
    ///
    /// As [`SealingKeys::new`], or a `kid` already present.
    pub fn with_previous(mut self, kid: &str, secret: &[u8]) -> Result<Self, ConfigError> {
        if self.find(kid).is_some() {
            return Err(invalid(kid, "a sealing key id given twice".into()));
        }
        self.previous.push(key(kid, secret)?);
        Ok(self)
    }

    /// [`SealingKeys::with_previous`] from the key's base64.
    ///
    /// # Errors
    ///
    /// As [`SealingKeys::with_previous`], or text that is not base64.
    pub fn with_previous_base64(self, kid: &str, secret: &str) -> Result<Self, ConfigError> {
        let bytes = decode(kid, secret)?;
        self.with_previous(kid, &bytes)
    }

    /// The id of the key that seals.
    pub fn current_kid(&self) -> &str {
        &self.current.kid
    }

    fn find(&self, kid: &str) -> Option<&Key> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| &*k.kid == kid)
            .map(|k| &**k)
    }

    /// Seal `plaintext`, authenticating `aad`: the current key's id, the
    /// nonce and the ciphertext with its tag.
    pub(super) fn seal(
        &self,
        aad: &[u8],
        mut plaintext: Vec<u8>,
    ) -> (&str, [u8; NONCE_LEN], Vec<u8>) {
        let nonce = self
            .current
            .key
            .seal_in_place_append_tag(Aad::from(aad), &mut plaintext)
            // AES-GCM sealing fails only on inputs of more than 64 GiB.
            .expect("AES-256-GCM seals a job payload");
        (&self.current.kid, *nonce.as_ref(), plaintext)
    }

    /// Open what key `kid` sealed; `Err(None)` when no key has that id,
    /// `Err(Some(()))` when the tag does not verify.
    pub(super) fn open(
        &self,
        kid: &str,
        nonce: &[u8],
        aad: &[u8],
        mut sealed: Vec<u8>,
    ) -> Result<Vec<u8>, Option<()>> {
        let key = self.find(kid).ok_or(None)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Some(()))?;
        let len = key
            .key
            .open_in_place(nonce, Aad::from(aad), &mut sealed)
            .map_err(|_| Some(()))?
            .len();
        sealed.truncate(len);
        Ok(sealed)
    }
}

impl fmt::Debug for SealingKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKeys")
            .field("current", &self.current.kid)
            .field(
                "previous",
                &self.previous.iter().map(|k| &*k.kid).collect::<Vec<_>>(),
            )
            .finish()
    }
}
