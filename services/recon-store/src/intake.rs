//! The intake key pair: how a secret found in a webhook body (a connected account's
//! `apiToken`) crosses the queue without being readable there. The receiver holds only
//! the public key and seals the secret (an X25519 sealed box: an ephemeral key pair
//! plus XSalsa20-Poly1305); only the worker, holding the private key, can open it.
//!
//! Layout: `0x01 | public key id (8 bytes) | sealed box`. The key id lets the worker
//! pick the right private key while one rotates (`RECON_INTAKE_PRIVATE_KEY_PREVIOUS`).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crypto_box::aead::OsRng;
use crypto_box::{PublicKey, SecretKey};
use secrecy::SecretString;

use crate::crypto::{CryptoError, KEY_ID_LEN, decode_key, hex, key_id};
use recon_common::secrets::{Env, ProcessEnv};

use crate::keys::{MasterKey, env_keys};

const SEALED_VERSION: u8 = 1;
const INTAKE_LABEL: &[u8] = b"helcim-recon intake x25519 v1";

fn public_id(public: &PublicKey) -> [u8; KEY_ID_LEN] {
    key_id(b"helcim-recon intake key id\0", public.as_bytes())
}

/// What the receiver seals with (`RECON_INTAKE_PUBLIC_KEY`). Not a secret.
#[derive(Clone)]
pub struct IntakePublicKey {
    key: PublicKey,
    id: [u8; KEY_ID_LEN],
}

impl fmt::Debug for IntakePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IntakePublicKey(id {})", hex(&self.id))
    }
}

impl IntakePublicKey {
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let bytes = decode_key(
            &SecretString::from(text.to_string()),
            "RECON_INTAKE_PUBLIC_KEY",
        )?;
        let key = PublicKey::from(bytes);
        Ok(IntakePublicKey {
            id: public_id(&key),
            key,
        })
    }

    /// `RECON_INTAKE_PUBLIC_KEY`, else derived from `RECON_MASTER_KEY` (or the file
    /// `RECON_MASTER_KEY_FILE` names); `None` when neither is set (a body with a secret
    /// is then refused with 503, never queued).
    pub fn from_env() -> anyhow::Result<Option<Self>> {
        IntakePublicKey::from_lookup(&ProcessEnv)
    }

    /// As [`IntakePublicKey::from_env`], with the variables looked up in `env`.
    pub fn from_lookup(env: &dyn Env) -> anyhow::Result<Option<Self>> {
        if let Some(text) = env.var("RECON_INTAKE_PUBLIC_KEY")
            && !text.trim().is_empty()
        {
            return Ok(Some(IntakePublicKey::from_base64(&text)?));
        }
        Ok(IntakeSecretKeys::from_master(env)?.map(|keys| keys.current.public()))
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.key.as_bytes())
    }

    /// Seals `secret`; only the matching private key opens it.
    pub fn seal(&self, secret: &[u8]) -> Vec<u8> {
        let sealed = self
            .key
            .seal(&mut OsRng, secret)
            .expect("a sealed box takes any message of this size");
        [&[SEALED_VERSION][..], &self.id, &sealed].concat()
    }
}

/// One intake private key.
#[derive(Clone)]
pub struct IntakeSecretKey {
    key: SecretKey,
}

impl fmt::Debug for IntakeSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IntakeSecretKey(public id {})",
            hex(&public_id(&self.key.public_key()))
        )
    }
}

impl IntakeSecretKey {
    pub fn from_base64(text: &SecretString, name: &'static str) -> Result<Self, CryptoError> {
        Ok(IntakeSecretKey {
            key: SecretKey::from(decode_key(text, name)?),
        })
    }

    /// The pair derived from the master key.
    pub fn derive(master: &MasterKey) -> Self {
        IntakeSecretKey {
            key: SecretKey::from(master.expand(INTAKE_LABEL)),
        }
    }

    /// The private key as base64, for the worker's secret store.
    pub fn to_base64(&self) -> SecretString {
        SecretString::from(STANDARD.encode(self.key.to_bytes()))
    }

    pub fn public(&self) -> IntakePublicKey {
        let key = self.key.public_key();
        IntakePublicKey {
            id: public_id(&key),
            key,
        }
    }
}

/// The worker's intake private keys: the current one and, while rotating, previous ones.
#[derive(Debug, Clone)]
pub struct IntakeSecretKeys {
    current: IntakeSecretKey,
    previous: Vec<IntakeSecretKey>,
}

impl IntakeSecretKeys {
    pub fn new(current: IntakeSecretKey, previous: Vec<IntakeSecretKey>) -> Self {
        IntakeSecretKeys { current, previous }
    }

    /// `RECON_INTAKE_PRIVATE_KEY` (and `_PREVIOUS`, comma-separated), else derived from
    /// `RECON_MASTER_KEY` (and `RECON_MASTER_KEY_PREVIOUS`); each may instead be in the
    /// file its `NAME_FILE` variable names. `None` when unset.
    pub fn from_env() -> anyhow::Result<Option<Self>> {
        IntakeSecretKeys::from_lookup(&ProcessEnv)
    }

    /// As [`IntakeSecretKeys::from_env`], with the variables looked up in `env`.
    pub fn from_lookup(env: &dyn Env) -> anyhow::Result<Option<Self>> {
        let given = list(env, "RECON_INTAKE_PRIVATE_KEY")?;
        if let Some(current) = given.into_iter().next() {
            let previous = list(env, "RECON_INTAKE_PRIVATE_KEY_PREVIOUS")?;
            return Ok(Some(IntakeSecretKeys { current, previous }));
        }
        IntakeSecretKeys::from_master(env)
    }

    fn from_master(env: &dyn Env) -> anyhow::Result<Option<Self>> {
        let current = env_keys(env, "RECON_MASTER_KEY", |t| {
            MasterKey::from_base64(t, "RECON_MASTER_KEY")
        })?;
        let Some(current) = current.into_iter().next() else {
            return Ok(None);
        };
        let previous = env_keys(env, "RECON_MASTER_KEY_PREVIOUS", |t| {
            MasterKey::from_base64(t, "RECON_MASTER_KEY_PREVIOUS")
        })?;
        Ok(Some(IntakeSecretKeys {
            current: IntakeSecretKey::derive(&current),
            previous: previous.iter().map(IntakeSecretKey::derive).collect(),
        }))
    }

    /// Opens what [`IntakePublicKey::seal`] made under one of these keys.
    pub fn open(&self, blob: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if blob.len() < 1 + KEY_ID_LEN || blob[0] != SEALED_VERSION {
            return Err(CryptoError::Malformed);
        }
        let (id, sealed) = blob[1..].split_at(KEY_ID_LEN);
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| public_id(&k.key.public_key()) == id)
            .ok_or_else(|| CryptoError::UnknownKey(hex(id)))?;
        key.key.unseal(sealed).map_err(|_| CryptoError::Tampered)
    }
}

fn list(env: &dyn Env, name: &'static str) -> anyhow::Result<Vec<IntakeSecretKey>> {
    env_keys(env, name, |t| IntakeSecretKey::from_base64(t, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> MasterKey {
        MasterKey::from_base64(&MasterKey::generate(), "TEST").unwrap()
    }

    #[test]
    fn only_the_private_key_opens_what_the_public_key_sealed() {
        let private = IntakeSecretKey::derive(&master());
        let public = IntakePublicKey::from_base64(&private.public().to_base64()).unwrap();
        let sealed = public.seal(b"merchant-api-token");
        assert!(!sealed.windows(8).any(|w| w == b"merchant"));
        let keys = IntakeSecretKeys::new(private, vec![]);
        assert_eq!(keys.open(&sealed).unwrap(), b"merchant-api-token");
        let stranger = IntakeSecretKeys::new(IntakeSecretKey::derive(&master()), vec![]);
        assert!(matches!(
            stranger.open(&sealed),
            Err(CryptoError::UnknownKey(_))
        ));
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(keys.open(&flipped).unwrap_err(), CryptoError::Tampered);
    }

    #[test]
    fn a_previous_private_key_still_opens_during_a_rotation() {
        let (old, new) = (
            IntakeSecretKey::derive(&master()),
            IntakeSecretKey::derive(&master()),
        );
        let sealed = old.public().seal(b"t");
        assert_eq!(
            IntakeSecretKeys::new(new, vec![old]).open(&sealed).unwrap(),
            b"t"
        );
    }

    #[test]
    fn the_pair_derived_from_a_master_key_is_stable_and_never_printed() {
        let m = master();
        let (a, b) = (IntakeSecretKey::derive(&m), IntakeSecretKey::derive(&m));
        assert_eq!(a.public().to_base64(), b.public().to_base64());
        assert!(format!("{a:?}").starts_with("IntakeSecretKey(public id "));
    }
}
