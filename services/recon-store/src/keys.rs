//! Which keys a process holds. The master key derives one data key per [`Purpose`]
//! (HKDF-SHA256, the purpose's label as `info`) and the intake key pair
//! ([`crate::intake`]); a deployment given only a purpose key (e.g. the receiver,
//! `RECON_VERIFIER_KEY`) can decrypt that purpose and nothing else.

use std::collections::HashMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hkdf::Hkdf;
use rand::RngCore;
use secrecy::SecretString;
use sha2::Sha256;

use crate::crypto::{
    CryptoError, Header, KEY_ID_LEN, Sealer, decode_key, header, hex, key_id, open_v1, open_v2,
};
use crate::lookup::{LOOKUP_KEY_ENV, LOOKUP_KEY_PREVIOUS_ENV, LOOKUP_LABEL, LookupKey};

/// What a data key protects. Each has its own key, variable and ciphertext tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Webhook verifier tokens (the receiver).
    Verifier,
    /// Merchants' Helcim API tokens, connected accounts' too (the worker).
    ApiToken,
    /// Integration partners' `partner-token`s.
    PartnerToken,
    /// Alert webhook subscribers' `whsec_` signing secrets (the worker signs with them).
    AlertWebhook,
}

impl Purpose {
    pub const ALL: [Purpose; 4] = [
        Purpose::Verifier,
        Purpose::ApiToken,
        Purpose::PartnerToken,
        Purpose::AlertWebhook,
    ];

    pub(crate) fn code(self) -> u8 {
        match self {
            Purpose::Verifier => 1,
            Purpose::ApiToken => 2,
            Purpose::PartnerToken => 3,
            Purpose::AlertWebhook => 4,
        }
    }

    /// The HKDF `info` deriving this purpose's key: never change it (keys would change).
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Verifier => b"helcim-recon data key v2: verifier",
            Purpose::ApiToken => b"helcim-recon data key v2: api-token",
            Purpose::PartnerToken => b"helcim-recon data key v2: partner-token",
            Purpose::AlertWebhook => b"helcim-recon data key v2: alert-webhook",
        }
    }

    /// Human name, for errors and listings.
    pub fn name(self) -> &'static str {
        match self {
            Purpose::Verifier => "verifier token",
            Purpose::ApiToken => "API token",
            Purpose::PartnerToken => "partner token",
            Purpose::AlertWebhook => "alert webhook secret",
        }
    }

    /// The variable holding this purpose's key alone (`*_PREVIOUS` while rotating).
    pub fn env(self) -> &'static str {
        match self {
            Purpose::Verifier => "RECON_VERIFIER_KEY",
            Purpose::ApiToken => "RECON_API_TOKEN_KEY",
            Purpose::PartnerToken => "RECON_PARTNER_TOKEN_KEY",
            Purpose::AlertWebhook => "RECON_ALERT_WEBHOOK_KEY",
        }
    }

    fn previous_env(self) -> &'static str {
        match self {
            Purpose::Verifier => "RECON_VERIFIER_KEY_PREVIOUS",
            Purpose::ApiToken => "RECON_API_TOKEN_KEY_PREVIOUS",
            Purpose::PartnerToken => "RECON_PARTNER_TOKEN_KEY_PREVIOUS",
            Purpose::AlertWebhook => "RECON_ALERT_WEBHOOK_KEY_PREVIOUS",
        }
    }
}

/// The master key: derives every other key; kept by operators and `reconctl`.
#[derive(Clone)]
pub struct MasterKey {
    bytes: [u8; 32],
    id: [u8; KEY_ID_LEN],
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey(id {})", self.id_hex())
    }
}

impl MasterKey {
    /// Reads base64 of 32 bytes; `name` is the variable it came from, for the error.
    pub fn from_base64(text: &SecretString, name: &'static str) -> Result<Self, CryptoError> {
        let bytes = decode_key(text, name)?;
        Ok(MasterKey {
            id: key_id(b"helcim-recon master key id\0", &bytes),
            bytes,
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
        hex(&self.id)
    }

    /// 32 bytes for `label`, by HKDF-SHA256 (no salt: the master key is uniformly
    /// random, which is what HKDF's extract step would otherwise provide).
    pub(crate) fn expand(&self, label: &[u8]) -> [u8; 32] {
        let mut out = [0_u8; 32];
        Hkdf::<Sha256>::new(None, &self.bytes)
            .expand(label, &mut out)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        out
    }

    /// The purpose's data key.
    pub fn derive(&self, purpose: Purpose) -> DataKey {
        DataKey::from_bytes(purpose, self.expand(purpose.label()))
    }

    /// The purpose's data key as base64, for the deployment's secret store.
    pub fn derive_base64(&self, purpose: Purpose) -> SecretString {
        SecretString::from(STANDARD.encode(self.expand(purpose.label())))
    }

    /// The key that fingerprints API tokens ([`crate::lookup`]).
    pub fn derive_lookup(&self) -> LookupKey {
        LookupKey::from_bytes(self.expand(LOOKUP_LABEL))
    }

    /// The lookup key as base64, for the deployment's secret store (`RECON_LOOKUP_KEY`).
    pub fn derive_lookup_base64(&self) -> SecretString {
        SecretString::from(STANDARD.encode(self.expand(LOOKUP_LABEL)))
    }

    /// The master key's own cipher: version-1 ciphertexts only.
    pub(crate) fn sealer(&self) -> Sealer {
        Sealer::new(self.id, &self.bytes)
    }
}

/// One purpose's data key.
#[derive(Clone)]
pub struct DataKey {
    purpose: Purpose,
    sealer: Sealer,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKey({:?}, {:?})", self.purpose, self.sealer)
    }
}

impl DataKey {
    fn from_bytes(purpose: Purpose, bytes: [u8; 32]) -> Self {
        let id = key_id(b"helcim-recon data key id\0", &bytes);
        DataKey {
            purpose,
            sealer: Sealer::new(id, &bytes),
        }
    }

    /// Reads base64 of 32 bytes from `purpose.env()` (named in the error).
    pub fn from_base64(purpose: Purpose, text: &SecretString) -> Result<Self, CryptoError> {
        Ok(DataKey::from_bytes(
            purpose,
            decode_key(text, purpose.env())?,
        ))
    }

    pub fn id_hex(&self) -> String {
        hex(&self.sealer.id)
    }
}

#[derive(Debug, Clone)]
struct Ring {
    current: DataKey,
    previous: Vec<DataKey>,
}

/// The keys this process holds: per purpose, the current data key (encrypts) and the
/// previous ones (decrypt during a rotation); and the master keys, only to read
/// version-1 ciphertexts; and the lookup keys that fingerprint API tokens (current
/// first), which decrypt nothing. A purpose it was not given cannot be decrypted here.
#[derive(Debug, Clone)]
pub struct SecretCipher {
    rings: HashMap<Purpose, Ring>,
    masters: Vec<MasterKey>,
    lookup: Vec<LookupKey>,
}

impl SecretCipher {
    /// Every purpose, derived from `current` (and from `previous` while rotating).
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Self {
        let rings = Purpose::ALL
            .into_iter()
            .map(|purpose| {
                let ring = Ring {
                    current: current.derive(purpose),
                    previous: previous.iter().map(|m| m.derive(purpose)).collect(),
                };
                (purpose, ring)
            })
            .collect();
        let masters: Vec<MasterKey> = std::iter::once(current).chain(previous).collect();
        SecretCipher {
            rings,
            lookup: masters.iter().map(MasterKey::derive_lookup).collect(),
            masters,
        }
    }

    /// Only the given purpose keys, no master key.
    pub fn from_data_keys(current: Vec<DataKey>, previous: Vec<DataKey>) -> Self {
        let mut rings: HashMap<Purpose, Ring> = HashMap::new();
        for key in current {
            rings.insert(
                key.purpose,
                Ring {
                    current: key,
                    previous: vec![],
                },
            );
        }
        for key in previous {
            if let Some(ring) = rings.get_mut(&key.purpose) {
                ring.previous.push(key);
            }
        }
        SecretCipher {
            rings,
            masters: vec![],
            lookup: vec![],
        }
    }

    /// The same keys with `current` (then `previous`) as the lookup keys.
    pub fn with_lookup_keys(mut self, current: LookupKey, previous: Vec<LookupKey>) -> Self {
        self.lookup = std::iter::once(current).chain(previous).collect();
        self
    }

    /// From the environment: `RECON_MASTER_KEY` (and `RECON_MASTER_KEY_PREVIOUS`,
    /// comma-separated) derives every purpose; a purpose's own variable
    /// (`RECON_VERIFIER_KEY`, `RECON_API_TOKEN_KEY`, `RECON_PARTNER_TOKEN_KEY`, each with
    /// `*_PREVIOUS`) gives that purpose alone and wins over the derived one. Each may
    /// instead be in the file its `NAME_FILE` variable names (mounted secrets).
    pub fn from_env() -> anyhow::Result<Self> {
        SecretCipher::from_lookup(&recon_common::secrets::ProcessEnv)
    }

    /// As [`SecretCipher::from_env`], with the variables looked up in `env`.
    pub fn from_lookup(env: &dyn recon_common::secrets::Env) -> anyhow::Result<Self> {
        let master = env_keys(env, "RECON_MASTER_KEY", |t| {
            MasterKey::from_base64(t, "RECON_MASTER_KEY")
        })?;
        let master_previous = env_keys(env, "RECON_MASTER_KEY_PREVIOUS", |t| {
            MasterKey::from_base64(t, "RECON_MASTER_KEY_PREVIOUS")
        })?;
        let mut cipher = match master.into_iter().next() {
            Some(current) => SecretCipher::new(current, master_previous),
            None => SecretCipher {
                rings: HashMap::new(),
                masters: vec![],
                lookup: vec![],
            },
        };
        let lookup = env_keys(env, LOOKUP_KEY_ENV, LookupKey::from_base64)?;
        if let Some(current) = lookup.into_iter().next() {
            let previous = env_keys(env, LOOKUP_KEY_PREVIOUS_ENV, LookupKey::from_base64)?;
            cipher = cipher.with_lookup_keys(current, previous);
        }
        for purpose in Purpose::ALL {
            let Some(current) = env_keys(env, purpose.env(), |t| DataKey::from_base64(purpose, t))?
                .into_iter()
                .next()
            else {
                continue;
            };
            let previous = env_keys(env, purpose.previous_env(), |t| {
                DataKey::from_base64(purpose, t)
            })?;
            cipher.rings.insert(purpose, Ring { current, previous });
        }
        if cipher.rings.is_empty() && cipher.lookup.is_empty() {
            anyhow::bail!(
                "no key to read secrets at rest: set RECON_MASTER_KEY (make one with `reconctl keys \
                 generate`), or the purpose keys this service needs (from `reconctl keys derive`)"
            );
        }
        Ok(cipher)
    }

    /// The same keys minus every purpose not listed and minus the master keys unless
    /// `keep_masters` (needed only to read version-1 ciphertexts before the upgrade's
    /// re-encryption). What an internet-facing service keeps. Lookup keys stay: they
    /// decrypt nothing.
    pub fn restricted_to(mut self, purposes: &[Purpose], keep_masters: bool) -> Self {
        self.rings.retain(|p, _| purposes.contains(p));
        if !keep_masters {
            self.masters.clear();
        }
        self
    }

    /// The current lookup key: fingerprints API tokens for storing.
    pub fn lookup_key(&self) -> Result<&LookupKey, CryptoError> {
        self.lookup
            .first()
            .ok_or(CryptoError::NoKey("API-token lookup", LOOKUP_KEY_ENV))
    }

    /// Every lookup key held, current first: a token's fingerprint under each is what
    /// finds its row while the lookup key rotates.
    pub fn lookup_keys(&self) -> &[LookupKey] {
        &self.lookup
    }

    /// Whether this process can encrypt and decrypt `purpose`.
    pub fn holds(&self, purpose: Purpose) -> bool {
        self.rings.contains_key(&purpose)
    }

    fn ring(&self, purpose: Purpose) -> Result<&Ring, CryptoError> {
        self.rings
            .get(&purpose)
            .ok_or(CryptoError::NoKey(purpose.name(), purpose.env()))
    }

    /// Id of the current key of `purpose`, when held.
    pub fn current_key_id(&self, purpose: Purpose) -> Option<String> {
        self.rings.get(&purpose).map(|r| r.current.id_hex())
    }

    /// Encrypts `secret` under the purpose's current key, for the row named by `context`.
    pub fn encrypt(
        &self,
        purpose: Purpose,
        secret: &SecretString,
        context: &str,
    ) -> Result<Vec<u8>, CryptoError> {
        let ring = self.ring(purpose)?;
        Ok(ring.current.sealer.encrypt(purpose, secret, context))
    }

    /// Decrypts a value made by [`SecretCipher::encrypt`] with the same purpose and
    /// `context`, or a version-1 value when a master key is held.
    pub fn decrypt(
        &self,
        purpose: Purpose,
        blob: &[u8],
        context: &str,
    ) -> Result<SecretString, CryptoError> {
        let ring = self.ring(purpose)?;
        match header(blob)? {
            Header::Purposed {
                purpose: code,
                key_id,
            } => {
                if code != purpose.code() {
                    return Err(CryptoError::Tampered);
                }
                let key = std::iter::once(&ring.current)
                    .chain(&ring.previous)
                    .find(|k| k.sealer.id == key_id)
                    .ok_or_else(|| CryptoError::UnknownKey(hex(key_id)))?;
                open_v2(&key.sealer, blob, context)
            }
            Header::Legacy { key_id } => {
                if self.masters.is_empty() {
                    return Err(CryptoError::NeedsMasterKey);
                }
                let master = self
                    .masters
                    .iter()
                    .find(|m| m.id == key_id)
                    .ok_or_else(|| CryptoError::UnknownKey(hex(key_id)))?;
                open_v1(&master.sealer(), blob, context)
            }
        }
    }

    /// True when `blob` is not under the purpose's current key (version 1, or an
    /// older data key): `reconctl keys reencrypt` rewrites it.
    pub fn is_stale(&self, purpose: Purpose, blob: &[u8]) -> bool {
        match (header(blob), self.rings.get(&purpose)) {
            (Ok(Header::Purposed { key_id, .. }), Some(ring)) => key_id != ring.current.sealer.id,
            (Ok(Header::Legacy { .. }), _) => true,
            _ => false,
        }
    }
}

/// Parses a comma-separated secret variable, `name` or the file `name_FILE` names
/// (unset or empty: none).
pub(crate) fn env_keys<T>(
    env: &dyn recon_common::secrets::Env,
    name: &str,
    parse: impl Fn(&SecretString) -> Result<T, CryptoError>,
) -> anyhow::Result<Vec<T>> {
    use secrecy::ExposeSecret;
    let Some(text) = recon_common::secrets::read(env, name)? else {
        return Ok(vec![]);
    };
    Ok(text
        .expose_secret()
        .split(',')
        .filter(|k| !k.trim().is_empty())
        .map(|k| parse(&SecretString::from(k.trim().to_string())))
        .collect::<Result<_, _>>()?)
}
