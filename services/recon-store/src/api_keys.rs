//! API keys: random 256-bit secrets shown once; only their SHA-256 is stored. A key has
//! a [`Role`] (what it may do, as [`Capability`]s), an account scope, an optional
//! expiry, and can be revoked; its last use is recorded.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};

use crate::StoreError;

/// Characters of a key kept in clear to name it (`hrk_` and 8 of its 43 random ones:
/// 48 bits, too few to help guess the rest).
pub const PREFIX_LEN: usize = 12;

/// Something a caller may do. Handlers ask [`Role::can`], never compare roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Read ledger rows (amounts, status, dates, batches) of accounts in scope.
    ReadLedger,
    /// Read card and customer details: masked card number, customer code, approval
    /// code, invoice number.
    ReadCardDetails,
    /// Create, list and revoke API keys (and any other management action).
    Manage,
    /// Report attribution evidence seen by an integration that calls Helcim directly
    /// (`POST /v1/attribution/receipts`), for the accounts in scope. Finance keys read;
    /// they do not assert what a partner's integration saw.
    ReportReceipts,
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything, including management.
    Admin,
    /// The whole ledger with card details, of every account or of those in scope.
    Finance,
    /// The partner-safe part of the ledger of the accounts in scope only.
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

    /// Whether this role grants `capability`.
    pub fn can(self, capability: Capability) -> bool {
        match self {
            Role::Admin => true,
            Role::Finance => matches!(
                capability,
                Capability::ReadLedger | Capability::ReadCardDetails
            ),
            Role::Partner => matches!(
                capability,
                Capability::ReadLedger | Capability::ReportReceipts
            ),
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

/// SHA-256 of a presented key: what is stored, looked up and negatively cached.
pub fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A key just made: the secret (shown once) and how listings name it.
#[derive(Debug)]
pub struct CreatedKey {
    pub id: i64,
    pub prefix: String,
    pub key: SecretString,
}

/// Creates a key and returns it; it is not stored and cannot be shown again.
pub async fn create(
    pool: &PgPool,
    role: Role,
    accounts: Option<Vec<String>>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<CreatedKey, StoreError> {
    if role == Role::Partner && accounts.as_ref().is_none_or(Vec::is_empty) {
        return Err(StoreError::Invalid("a partner key needs --accounts".into()));
    }
    if expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(StoreError::Invalid(
            "the expiry is in the past; give a future time or a positive --expires-in".into(),
        ));
    }
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key = format!("hrk_{}", URL_SAFE_NO_PAD.encode(bytes));
    let prefix = key[..PREFIX_LEN].to_string();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO api_keys (key_prefix, key_hash, role, account_ids, expires_at) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(&prefix)
    .bind(hash(&key).as_slice())
    .bind(role.as_str())
    .bind(accounts)
    .bind(expires_at)
    .fetch_one(pool)
    .await?;
    Ok(CreatedKey {
        id,
        prefix,
        key: SecretString::from(key),
    })
}

/// What a presented key turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A live key: its id (for last use) and scope.
    Valid { id: i64, scope: Scope },
    /// No such key.
    Unknown,
    /// The key was revoked.
    Revoked,
    /// The key's expiry has passed.
    Expired { at: DateTime<Utc> },
}

/// Looks a presented key up: one indexed query, no caching (revocation applies to the
/// very next request).
pub async fn look_up(pool: &PgPool, presented: &SecretString) -> Result<Verdict, StoreError> {
    let row = sqlx::query(
        "SELECT id, role, account_ids, revoked_at IS NOT NULL AS revoked, expires_at, \
                expires_at <= now() AS expired \
         FROM api_keys WHERE key_hash = $1",
    )
    .bind(hash(presented.expose_secret()).as_slice())
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(Verdict::Unknown);
    };
    if row.try_get::<bool, _>("revoked")? {
        return Ok(Verdict::Revoked);
    }
    if row.try_get::<Option<bool>, _>("expired")? == Some(true) {
        let at: Option<DateTime<Utc>> = row.try_get("expires_at")?;
        return Ok(Verdict::Expired {
            at: at.unwrap_or_else(Utc::now),
        });
    }
    let role: String = row.try_get("role")?;
    Ok(Verdict::Valid {
        id: row.try_get("id")?,
        scope: Scope {
            role: role.parse().map_err(StoreError::Invalid)?,
            accounts: row.try_get("account_ids")?,
        },
    })
}

/// The scope of a presented key, or `None` if it is unknown, revoked or expired.
pub async fn authenticate(
    pool: &PgPool,
    presented: &SecretString,
) -> Result<Option<Scope>, StoreError> {
    Ok(match look_up(pool, presented).await? {
        Verdict::Valid { scope, .. } => Some(scope),
        _ => None,
    })
}

/// Records that key `id` was used now, unless a use in the last minute was already
/// recorded (the guard in SQL keeps several API replicas from all writing).
pub async fn record_use(pool: &PgPool, id: i64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE api_keys SET last_used_at = now() WHERE id = $1 \
         AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// A key as listings show it: never the key, never its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub id: i64,
    pub prefix: String,
    pub role: Role,
    pub accounts: Option<Vec<String>>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const INFO_COLUMNS: &str =
    "id, key_prefix, role, account_ids, created_at, expires_at, last_used_at, revoked_at";

fn info(row: &sqlx::postgres::PgRow) -> Result<KeyInfo, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(KeyInfo {
        id: row.try_get("id")?,
        prefix: row.try_get("key_prefix")?,
        role: role.parse().map_err(StoreError::Invalid)?,
        accounts: row.try_get("account_ids")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// Every key, oldest first.
pub async fn list(pool: &PgPool) -> Result<Vec<KeyInfo>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {INFO_COLUMNS} FROM api_keys ORDER BY id"
    )))
    .fetch_all(pool)
    .await?;
    rows.iter().map(info).collect()
}

/// Revokes the key named by its id or its prefix (as `list` shows them) and returns
/// it. Revoking a revoked key changes nothing; a prefix naming several keys is refused.
pub async fn revoke(pool: &PgPool, id_or_prefix: &str) -> Result<KeyInfo, StoreError> {
    let id_or_prefix = id_or_prefix.trim();
    let by_id = id_or_prefix.parse::<i64>().ok();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) \
         WHERE id = (SELECT min(id) FROM api_keys WHERE id = $1 OR key_prefix = $2 \
                     HAVING count(*) = 1) \
         RETURNING {INFO_COLUMNS}"
    )))
    .bind(by_id)
    .bind(id_or_prefix)
    .fetch_all(pool)
    .await?;
    if let Some(row) = rows.first() {
        return info(row);
    }
    let matching: i64 =
        sqlx::query_scalar("SELECT count(*) FROM api_keys WHERE id = $1 OR key_prefix = $2")
            .bind(by_id)
            .bind(id_or_prefix)
            .fetch_one(pool)
            .await?;
    Err(StoreError::Invalid(if matching == 0 {
        format!("no API key has id or prefix {id_or_prefix:?}; see `reconctl api-keys list`")
    } else {
        format!(
            "{matching} API keys match {id_or_prefix:?}; name one by its id \
             (`reconctl api-keys list`)"
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partners_and_admins_report_receipts_and_finance_does_not() {
        assert!(Role::Admin.can(Capability::ReportReceipts));
        assert!(Role::Partner.can(Capability::ReportReceipts));
        assert!(!Role::Finance.can(Capability::ReportReceipts));
    }

    #[test]
    fn only_admin_manages_and_only_partners_lack_card_details() {
        for role in [Role::Admin, Role::Finance, Role::Partner] {
            assert!(role.can(Capability::ReadLedger), "{role}");
            assert_eq!(role.can(Capability::Manage), role == Role::Admin, "{role}");
            assert_eq!(
                role.can(Capability::ReadCardDetails),
                role != Role::Partner,
                "{role}"
            );
        }
    }
}
