//! Keyed fingerprints of Helcim API tokens: how the gateway finds a request's merchant
//! account from its `api-token` header without decrypting any stored token.
//!
//! The fingerprint is HMAC-SHA256 under the lookup key (derived from the master key,
//! or given alone as `RECON_LOOKUP_KEY`). Keyed, so a copy of the database alone cannot
//! test a guessed token against it, and a process holding only the lookup key can
//! compute fingerprints but decrypt nothing. During a rotation the previous lookup keys
//! (`RECON_LOOKUP_KEY_PREVIOUS`) still find rows fingerprinted before it;
//! `reconctl keys reencrypt` refingerprints every row under the current key.

use std::fmt;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::crypto::{CryptoError, KEY_ID_LEN, decode_key, hex, key_id};

/// The variable holding the lookup key alone.
pub const LOOKUP_KEY_ENV: &str = "RECON_LOOKUP_KEY";
/// The variable holding the previous lookup keys (comma-separated) during a rotation.
pub const LOOKUP_KEY_PREVIOUS_ENV: &str = "RECON_LOOKUP_KEY_PREVIOUS";
/// The HKDF `info` deriving the lookup key from the master key: never change it.
pub(crate) const LOOKUP_LABEL: &[u8] = b"helcim-recon lookup key v1: api-token fingerprint";

/// Bytes of HMAC output kept: 128 bits, far beyond any collision among accounts.
const FINGERPRINT_LEN: usize = 16;

/// The key that fingerprints API tokens.
#[derive(Clone)]
pub struct LookupKey {
    bytes: [u8; 32],
    id: [u8; KEY_ID_LEN],
}

impl fmt::Debug for LookupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LookupKey(id {})", hex(&self.id))
    }
}

impl LookupKey {
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        LookupKey {
            id: key_id(b"helcim-recon lookup key id\0", &bytes),
            bytes,
        }
    }

    /// Reads base64 of 32 bytes (from `RECON_LOOKUP_KEY`, named in the error).
    pub fn from_base64(text: &SecretString) -> Result<Self, CryptoError> {
        Ok(LookupKey::from_bytes(decode_key(text, LOOKUP_KEY_ENV)?))
    }

    /// Hex of the key id: safe to print.
    pub fn id_hex(&self) -> String {
        hex(&self.id)
    }

    /// The token's fingerprint under this key: 32 hex digits. Surrounding whitespace
    /// is ignored, as Helcim ignores it in the header.
    pub fn fingerprint(&self, token: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.bytes)
            .expect("HMAC-SHA256 takes a key of any length");
        mac.update(b"api-token\0");
        mac.update(token.trim().as_bytes());
        hex(&mac.finalize().into_bytes()[..FINGERPRINT_LEN])
    }

    /// As [`LookupKey::fingerprint`], for a token held as a secret.
    pub fn fingerprint_secret(&self, token: &SecretString) -> String {
        self.fingerprint(token.expose_secret())
    }

    /// A keyed digest of arbitrary parts (e.g. a request's identity for deduplication),
    /// under a different domain than token fingerprints: safe to store even when a
    /// part holds card data, since it cannot be tested without the key.
    pub fn digest(&self, domain: &str, parts: &[&[u8]]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.bytes)
            .expect("HMAC-SHA256 takes a key of any length");
        mac.update(domain.as_bytes());
        mac.update(b"\0");
        for part in parts {
            // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        hex(&mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> LookupKey {
        LookupKey::from_bytes([byte; 32])
    }

    #[test]
    fn a_fingerprint_depends_on_the_key_and_the_token_but_not_on_surrounding_space() {
        let fp = key(1).fingerprint("tok-123");
        assert_eq!(fp.len(), 32);
        assert_eq!(fp, key(1).fingerprint("  tok-123\n"));
        assert_ne!(fp, key(2).fingerprint("tok-123"));
        assert_ne!(fp, key(1).fingerprint("tok-124"));
        assert!(!fp.contains("tok"));
    }

    #[test]
    fn digests_separate_their_parts_and_their_domain_from_fingerprints() {
        let k = key(7);
        assert_ne!(k.digest("d", &[b"ab", b"c"]), k.digest("d", &[b"a", b"bc"]));
        assert_ne!(k.digest("d", &[b"x"]), k.digest("e", &[b"x"]));
        assert_eq!(k.digest("d", &[b"x"]), k.digest("d", &[b"x"]));
        assert_ne!(k.digest("api-token", &[b"t"])[..32], k.fingerprint("t"));
    }

    #[test]
    fn debug_shows_the_key_id_only() {
        let k = key(9);
        let shown = format!("{k:?}");
        assert!(shown.starts_with("LookupKey(id "));
        assert!(!shown.contains("9, 9"));
    }
}
