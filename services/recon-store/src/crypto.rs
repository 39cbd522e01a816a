//! Secrets at rest: AES-256-GCM under a data key per purpose (verifier tokens, Helcim
//! API tokens, partner tokens), each derived from the master key (`RECON_MASTER_KEY`)
//! with HKDF-SHA256 and a purpose label, or given alone to a deployment that needs only
//! that purpose (`RECON_VERIFIER_KEY`, ...; see [`crate::keys`]). Each ciphertext is
//! bound to its row and purpose (the associated data), so one row's token cannot be
//! pasted into another.
//!
//! Layout (version 2): `0x02 | purpose (1 byte) | key id (8) | nonce (12) | ciphertext +
//! tag`; the header is authenticated too. The key id names the data key, which is the
//! rotation path (see `docs/security.md`). Version 1 (`0x01 | master key id | nonce |
//! ciphertext + tag`, made under the master key itself before purpose keys existed)
//! is still read when the master key is configured, and `reconctl keys reencrypt`
//! rewrites it as version 2.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

pub use crate::keys::{DataKey, MasterKey, Purpose, SecretCipher};

pub(crate) const LEGACY_VERSION: u8 = 1;
pub(crate) const VERSION: u8 = 2;
pub(crate) const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 2 + KEY_ID_LEN;

/// Why a key or a ciphertext was refused. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error(
        "{0} is not base64 of exactly 32 bytes; make one with `reconctl keys generate` (or `reconctl keys derive` for purpose keys)"
    )]
    BadKey(&'static str),
    #[error(
        "the secret was encrypted under a key that is not configured (key id {0}); during a rotation set the old one in RECON_MASTER_KEY_PREVIOUS (or the purpose's *_PREVIOUS)"
    )]
    UnknownKey(String),
    #[error(
        "this process holds no {0} key: set {1} (or RECON_MASTER_KEY, which derives every key)"
    )]
    NoKey(&'static str, &'static str),
    #[error(
        "the secret predates purpose keys (version 1): it needs RECON_MASTER_KEY until `reconctl keys reencrypt` has run"
    )]
    NeedsMasterKey,
    #[error("the secret is not in a format this version reads")]
    Malformed,
    #[error("the secret does not decrypt: wrong key, or the row was tampered with")]
    Tampered,
}

/// The 8-byte id naming a key: safe to store and print, reveals nothing of the key.
pub(crate) fn key_id(label: &[u8], bytes: &[u8]) -> [u8; KEY_ID_LEN] {
    let digest = Sha256::new_with_prefix(label)
        .chain_update(bytes)
        .finalize();
    let mut id = [0_u8; KEY_ID_LEN];
    id.copy_from_slice(&digest[..KEY_ID_LEN]);
    id
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Base64 of exactly 32 bytes; `name` is the variable it came from, for the error.
pub(crate) fn decode_key(text: &SecretString, name: &'static str) -> Result<[u8; 32], CryptoError> {
    let bytes = STANDARD
        .decode(text.expose_secret().trim())
        .map_err(|_| CryptoError::BadKey(name))?;
    <[u8; 32]>::try_from(bytes).map_err(|_| CryptoError::BadKey(name))
}

/// An AES-256-GCM key with its id.
#[derive(Clone)]
pub(crate) struct Sealer {
    pub(crate) id: [u8; KEY_ID_LEN],
    cipher: Aes256Gcm,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key id {}", hex(&self.id))
    }
}

impl Sealer {
    pub(crate) fn new(id: [u8; KEY_ID_LEN], bytes: &[u8; 32]) -> Self {
        Sealer {
            id,
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(bytes)),
        }
    }

    /// Version 2: the header (version, purpose, key id) and `context` are authenticated.
    pub(crate) fn encrypt(
        &self,
        purpose: Purpose,
        secret: &SecretString,
        context: &str,
    ) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(HEADER_LEN + NONCE_LEN + secret.expose_secret().len() + TAG_LEN);
        out.push(VERSION);
        out.push(purpose.code());
        out.extend_from_slice(&self.id);
        let mut nonce = [0_u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = [&out[..], context.as_bytes()].concat();
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret.expose_secret().as_bytes(),
                    aad: &aad,
                },
            )
            .expect("AES-GCM encrypts any message of this size");
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    fn open(&self, aad: &[u8], nonce: &[u8], sealed: &[u8]) -> Result<SecretString, CryptoError> {
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad })
            .map_err(|_| CryptoError::Tampered)?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| CryptoError::Malformed)
    }
}

/// A ciphertext's header, read without any key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header<'a> {
    /// Version 1: under a master key directly.
    Legacy { key_id: &'a [u8] },
    /// Version 2: under a purpose key.
    Purposed { purpose: u8, key_id: &'a [u8] },
}

pub(crate) fn header(blob: &[u8]) -> Result<Header<'_>, CryptoError> {
    match blob.first() {
        Some(&LEGACY_VERSION) if blob.len() >= 1 + KEY_ID_LEN + NONCE_LEN + TAG_LEN => {
            Ok(Header::Legacy {
                key_id: &blob[1..1 + KEY_ID_LEN],
            })
        }
        Some(&VERSION) if blob.len() >= HEADER_LEN + NONCE_LEN + TAG_LEN => Ok(Header::Purposed {
            purpose: blob[1],
            key_id: &blob[2..HEADER_LEN],
        }),
        _ => Err(CryptoError::Malformed),
    }
}

/// Decrypts a version-2 blob with `sealer` (whose id the header names).
pub(crate) fn open_v2(
    sealer: &Sealer,
    blob: &[u8],
    context: &str,
) -> Result<SecretString, CryptoError> {
    let (head, rest) = blob.split_at(HEADER_LEN);
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    sealer.open(&[head, context.as_bytes()].concat(), nonce, sealed)
}

/// Decrypts a version-1 blob with the master key's own cipher (only `context` was
/// authenticated then).
pub(crate) fn open_v1(
    sealer: &Sealer,
    blob: &[u8],
    context: &str,
) -> Result<SecretString, CryptoError> {
    let rest = &blob[1 + KEY_ID_LEN..];
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    sealer.open(context.as_bytes(), nonce, sealed)
}

/// Makes a version-1 blob, as releases before purpose keys did (upgrade tests only).
#[doc(hidden)]
pub fn legacy_encrypt(master: &MasterKey, secret: &SecretString, context: &str) -> Vec<u8> {
    let sealer = master.sealer();
    let mut nonce = [0_u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let sealed = sealer
        .cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: secret.expose_secret().as_bytes(),
                aad: context.as_bytes(),
            },
        )
        .expect("AES-GCM encrypts any message of this size");
    [&[LEGACY_VERSION][..], &sealer.id, &nonce, &sealed].concat()
}

/// A short, non-reversible name for a token (first 12 hex digits of its SHA-256).
pub fn fingerprint(secret: &SecretString) -> String {
    hex(&Sha256::digest(secret.expose_secret().trim().as_bytes())[..6])
}

#[cfg(test)]
mod tests;
