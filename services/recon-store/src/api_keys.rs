//! API keys: random 256-bit secrets shown once; only their SHA-256 is stored.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};

use crate::StoreError;

/// What a key may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything.
    Admin,
    /// The ledger, of every account or of the accounts in scope.
    Finance,
    /// Attribution and the ledger of the accounts in scope only.
    Partner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Finance => "finance",
            Role::Partner => "partner",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "admin" => Ok(Role::Admin),
            "finance" => Ok(Role::Finance),
            "partner" => Ok(Role::Partner),
            other => Err(format!("role {other:?} is not admin, finance or partner")),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated key's role and account scope (`None`: every account).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub role: Role,
    pub accounts: Option<Vec<String>>,
}

impl Scope {
    pub fn allows(&self, account_id: &str) -> bool {
        self.accounts
            .as_ref()
            .is_none_or(|accounts| accounts.iter().any(|a| a == account_id))
    }
}

fn hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// Creates a key and returns it; it is not stored and cannot be shown again.
pub async fn create(
    pool: &PgPool,
    role: Role,
    accounts: Option<Vec<String>>,
) -> Result<SecretString, StoreError> {
    if role == Role::Partner && accounts.as_ref().is_none_or(Vec::is_empty) {
        return Err(StoreError::Invalid("a partner key needs --accounts".into()));
    }
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key = format!("hrk_{}", URL_SAFE_NO_PAD.encode(bytes));
    sqlx::query(
        "INSERT INTO api_keys (key_prefix, key_hash, role, account_ids) VALUES ($1, $2, $3, $4)",
    )
    .bind(&key[..12])
    .bind(hash(&key))
    .bind(role.as_str())
    .bind(accounts)
    .execute(pool)
    .await?;
    Ok(SecretString::from(key))
}

/// The scope of a presented key, or `None` if it is unknown or revoked.
pub async fn authenticate(
    pool: &PgPool,
    presented: &SecretString,
) -> Result<Option<Scope>, StoreError> {
    let row = sqlx::query(
        "SELECT role, account_ids FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
    )
    .bind(hash(presented.expose_secret()))
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let role: String = row.try_get("role")?;
    Ok(Some(Scope {
        role: role.parse().map_err(StoreError::Invalid)?,
        accounts: row.try_get("account_ids")?,
    }))
}
