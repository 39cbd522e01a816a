//! Secrets at rest: AES-256-GCM under the master key (`RECON_MASTER_KEY`, base64 of
//! 32 random bytes). Each ciphertext is bound to its row and purpose (the associated
//! data), so one row's token cannot be pasted into another.
//!
//! Layout: `0x01 | key id (8 bytes) | nonce (12 bytes) | ciphertext + tag`. The key id
//! names the master key that encrypted it, which is the rotation path: start the
//! services with the new key in `RECON_MASTER_KEY` and the old one in
//! `RECON_MASTER_KEY_PREVIOUS`, run `reconctl keys reencrypt`, then drop the old key.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 12;

/// Why a key or a ciphertext was refused. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error(
        "{0} is not base64 of exactly 32 bytes; make one with `head -c 32 /dev/urandom | base64`"
    )]
    BadKey(&'static str),
    #[error(
        "the secret was encrypted under a master key that is not configured (key id {0}); set it in RECON_MASTER_KEY_PREVIOUS"
    )]
    UnknownKey(String),
    #[error("the secret is not in a format this version reads")]
    Malformed,
    #[error("the secret does not decrypt: wrong key, or the row was tampered with")]
    Tampered,
}

/// One master key.
#[derive(Clone)]
pub struct MasterKey {
    id: [u8; KEY_ID_LEN],
    cipher: Aes256Gcm,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey(id {})", self.id_hex())
    }
}

impl MasterKey {
    /// Reads base64 of 32 bytes; `name` is the variable it came from, for the error.
    pub fn from_base64(text: &SecretString, name: &'static str) -> Result<Self, CryptoError> {
        let bytes = STANDARD
            .decode(text.expose_secret().trim())
            .map_err(|_| CryptoError::BadKey(name))?;
        if bytes.len() != 32 {
            return Err(CryptoError::BadKey(name));
        }
        let digest = Sha256::new_with_prefix(b"helcim-recon master key id\0")
            .chain_update(&bytes)
            .finalize();
        let mut id = [0_u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Ok(MasterKey {
            id,
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)),
        })
    }

    /// A new random key, base64, for `RECON_MASTER_KEY`.
    pub fn generate() -> SecretString {
        let mut bytes = [0_u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        SecretString::from(STANDARD.encode(bytes))
    }

    /// Hex of the key id: safe to print, names the key.
    pub fn id_hex(&self) -> String {
        self.id.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Encrypts with the current key; decrypts with whichever configured key made the
/// ciphertext.
#[derive(Debug, Clone)]
pub struct SecretCipher {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl SecretCipher {
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Self {
        SecretCipher { current, previous }
    }

    /// From `RECON_MASTER_KEY` and, while rotating, `RECON_MASTER_KEY_PREVIOUS`
    /// (comma-separated).
    pub fn from_env() -> anyhow::Result<Self> {
        let current = std::env::var("RECON_MASTER_KEY").map_err(|_| {
            anyhow::anyhow!(
                "RECON_MASTER_KEY is not set: it encrypts secrets at rest; make one with \
                 `head -c 32 /dev/urandom | base64` and keep it in your secret store"
            )
        })?;
        let current = MasterKey::from_base64(&SecretString::from(current), "RECON_MASTER_KEY")?;
        let previous = std::env::var("RECON_MASTER_KEY_PREVIOUS")
            .unwrap_or_default()
            .split(',')
            .filter(|k| !k.trim().is_empty())
            .map(|k| {
                MasterKey::from_base64(
                    &SecretString::from(k.to_string()),
                    "RECON_MASTER_KEY_PREVIOUS",
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SecretCipher::new(current, previous))
    }

    pub fn current_key_id(&self) -> String {
        self.current.id_hex()
    }

    /// Encrypts `secret` for the row and purpose named by `context`.
    pub fn encrypt(&self, secret: &SecretString, context: &str) -> Vec<u8> {
        let mut nonce = [0_u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: secret.expose_secret().as_bytes(),
            aad: context.as_bytes(),
        };
        let sealed = self
            .current
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .expect("AES-GCM encrypts any message of this size");
        let mut out = Vec::with_capacity(1 + KEY_ID_LEN + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&self.current.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts a value made by [`SecretCipher::encrypt`] with the same `context`.
    pub fn decrypt(&self, blob: &[u8], context: &str) -> Result<SecretString, CryptoError> {
        if blob.len() < 1 + KEY_ID_LEN + NONCE_LEN + 16 || blob[0] != VERSION {
            return Err(CryptoError::Malformed);
        }
        let (key_id, rest) = blob[1..].split_at(KEY_ID_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == key_id)
            .ok_or_else(|| {
                CryptoError::UnknownKey(key_id.iter().map(|b| format!("{b:02x}")).collect())
            })?;
        let plain = key
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Tampered)?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| CryptoError::Malformed)
    }

    /// True when `blob` was made under an older key and should be re-encrypted.
    pub fn is_stale(&self, blob: &[u8]) -> bool {
        blob.get(1..1 + KEY_ID_LEN)
            .is_some_and(|id| id != self.current.id)
    }
}

/// A short, non-reversible name for a token (first 12 hex digits of its SHA-256).
pub fn fingerprint(secret: &SecretString) -> String {
    Sha256::digest(secret.expose_secret().trim().as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::from_base64(&MasterKey::generate(), "TEST").unwrap()
    }

    #[test]
    fn a_secret_round_trips_only_with_its_context() {
        let cipher = SecretCipher::new(key(), vec![]);
        let secret = SecretString::from("verifier-token".to_string());
        let blob = cipher.encrypt(&secret, "account:a:verifier");
        assert!(
            !blob.windows(8).any(|w| w == b"verifier"),
            "no plaintext in the blob"
        );
        assert_eq!(
            cipher
                .decrypt(&blob, "account:a:verifier")
                .unwrap()
                .expose_secret(),
            "verifier-token"
        );
        assert_eq!(
            cipher.decrypt(&blob, "account:b:verifier").unwrap_err(),
            CryptoError::Tampered
        );
        let mut flipped = blob.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(
            cipher.decrypt(&flipped, "account:a:verifier").unwrap_err(),
            CryptoError::Tampered
        );
        assert_eq!(
            cipher.decrypt(b"short", "x").unwrap_err(),
            CryptoError::Malformed
        );
    }

    #[test]
    fn rotation_reads_old_ciphertexts_and_flags_them_stale() {
        let (old, new) = (key(), key());
        let before = SecretCipher::new(old.clone(), vec![]);
        let blob = before.encrypt(&SecretString::from("t".to_string()), "c");
        let during = SecretCipher::new(new.clone(), vec![old]);
        assert!(during.is_stale(&blob));
        assert_eq!(during.decrypt(&blob, "c").unwrap().expose_secret(), "t");
        let after = SecretCipher::new(new, vec![]);
        assert!(matches!(
            after.decrypt(&blob, "c"),
            Err(CryptoError::UnknownKey(_))
        ));
    }

    #[test]
    fn bad_keys_are_refused_without_echoing_them() {
        for bad in ["", "not base64!", "c2hvcnQ="] {
            let err =
                MasterKey::from_base64(&SecretString::from(bad.to_string()), "RECON_MASTER_KEY")
                    .unwrap_err();
            assert_eq!(err, CryptoError::BadKey("RECON_MASTER_KEY"));
        }
        let key = key();
        assert!(format!("{key:?}").starts_with("MasterKey(id "));
    }

    #[test]
    fn fingerprints_are_stable_and_short() {
        let token = SecretString::from("abc".to_string());
        assert_eq!(fingerprint(&token), "ba7816bf8f01");
        assert_eq!(fingerprint(&token).len(), 12);
    }
}
