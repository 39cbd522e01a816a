//! Accounts and their tokens. Tokens go in encrypted and come out as `SecretString`s;
//! listings show fingerprints, never tokens.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use sqlx::{PgPool, Row};

use crate::crypto::{CryptoError, Purpose, SecretCipher, fingerprint};

mod partner_token;
mod share;

pub use partner_token::PartnerTokenSource;
pub use share::{MAX_SHARE_BPS, set_revenue_share};

/// What went wrong with an account operation, in terms an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("account {0:?} already exists")]
    AccountExists(String),
    #[error("no account {0:?}; add it with `reconctl accounts add`")]
    NoSuchAccount(String),
    #[error("account id {0:?} must be 1 to 64 letters, digits, `.`, `_` or `-`")]
    BadAccountId(String),
    #[error("account {0:?} already has this verifier token")]
    TokenExists(String),
    #[error("account {account:?} has no active verifier token {fingerprint}")]
    NoSuchToken {
        account: String,
        fingerprint: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// An account as `reconctl accounts list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSummary {
    pub account_id: String,
    pub display_name: Option<String>,
    pub has_api_token: bool,
    pub has_partner_token: bool,
    /// Fingerprints of the active verifier tokens.
    pub active_verifiers: Vec<String>,
    /// The partner account whose `connectedAccount` webhook registered this one.
    pub referred_by: Option<String>,
    /// Helcim's `connectedAccountId`, for an account registered from a webhook.
    pub connected_account_id: Option<String>,
    /// Where the gateway's partner token for this account comes from.
    pub partner_token: PartnerTokenSource,
    /// The revenue share rate in basis points (`reconctl accounts set-share`).
    pub revenue_share_bps: Option<i32>,
    pub created_at: DateTime<Utc>,
}

/// The tokens to set on a new account (any may be left out).
#[derive(Debug, Default)]
pub struct NewAccount {
    pub account_id: String,
    pub display_name: Option<String>,
    pub verifier_token: Option<SecretString>,
    pub api_token: Option<SecretString>,
    pub partner_token: Option<SecretString>,
}

#[derive(Debug, Clone)]
pub struct AccountStore {
    pool: PgPool,
    cipher: Arc<SecretCipher>,
}

pub(crate) fn context(account_id: &str, purpose: &str) -> String {
    format!("accounts/{account_id}/{purpose}")
}

pub(crate) fn valid_id(account_id: &str) -> bool {
    (1..=64).contains(&account_id.len())
        && account_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl AccountStore {
    pub fn new(pool: PgPool, cipher: Arc<SecretCipher>) -> Self {
        AccountStore { pool, cipher }
    }

    pub async fn add(&self, account: NewAccount) -> Result<(), StoreError> {
        let id = account.account_id.as_str();
        if !valid_id(id) {
            return Err(StoreError::BadAccountId(id.to_string()));
        }
        let encrypt = |purpose, token: &Option<SecretString>, name| {
            token
                .as_ref()
                .map(|t| self.cipher.encrypt(purpose, t, &context(id, name)))
                .transpose()
        };
        let api_token = encrypt(Purpose::ApiToken, &account.api_token, "api-token")?;
        let api_token_lookup = self.lookup_of(account.api_token.as_ref());
        let partner_token = encrypt(
            Purpose::PartnerToken,
            &account.partner_token,
            "partner-token",
        )?;
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO accounts (account_id, display_name, api_token_encrypted, partner_token_encrypted,
                                   api_token_lookup)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id) DO NOTHING",
        )
        .bind(id)
        .bind(&account.display_name)
        .bind(api_token)
        .bind(partner_token)
        .bind(api_token_lookup)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::AccountExists(id.to_string()));
        }
        if let Some(token) = &account.verifier_token {
            insert_verifier(&mut tx, &self.cipher, id, token).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Adds a verifier token beside the active ones (the first half of a rotation).
    /// Returns its fingerprint.
    pub async fn add_verifier(
        &self,
        account_id: &str,
        token: &SecretString,
    ) -> Result<String, StoreError> {
        let mut tx = self.pool.begin().await?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT account_id FROM accounts WHERE account_id = $1 FOR UPDATE")
                .bind(account_id)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Err(StoreError::NoSuchAccount(account_id.to_string()));
        }
        let fingerprint = insert_verifier(&mut tx, &self.cipher, account_id, token).await?;
        tx.commit().await?;
        Ok(fingerprint)
    }

    /// Retires one verifier token (the second half of a rotation).
    pub async fn retire_verifier(
        &self,
        account_id: &str,
        fingerprint: &str,
    ) -> Result<(), StoreError> {
        let retired = sqlx::query(
            "UPDATE account_verifier_tokens SET retired_at = now()
             WHERE account_id = $1 AND fingerprint = $2 AND retired_at IS NULL",
        )
        .bind(account_id)
        .bind(fingerprint)
        .execute(&self.pool)
        .await?;
        if retired.rows_affected() == 0 {
            return Err(StoreError::NoSuchToken {
                account: account_id.to_string(),
                fingerprint: fingerprint.to_string(),
            });
        }
        Ok(())
    }

    pub async fn list(&self) -> Result<Vec<AccountSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.account_id, a.display_name, a.api_token_encrypted IS NOT NULL AS has_api,
                    a.partner_token_encrypted IS NOT NULL AS has_partner, a.created_at,
                    a.referred_by, a.connected_account_id, a.revenue_share_bps,
                    coalesce(r.partner_token_encrypted IS NOT NULL, false) AS referrer_has_partner,
                    coalesce(array_agg(v.fingerprint ORDER BY v.created_at)
                             FILTER (WHERE v.id IS NOT NULL), '{}') AS verifiers
             FROM accounts a
             LEFT JOIN accounts r ON r.account_id = a.referred_by
             LEFT JOIN account_verifier_tokens v ON v.account_id = a.account_id AND v.retired_at IS NULL
             GROUP BY a.account_id, r.account_id ORDER BY a.account_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let has_partner_token: bool = row.try_get("has_partner")?;
                let referred_by: Option<String> = row.try_get("referred_by")?;
                Ok(AccountSummary {
                    account_id: row.try_get("account_id")?,
                    display_name: row.try_get("display_name")?,
                    has_api_token: row.try_get("has_api")?,
                    has_partner_token,
                    active_verifiers: row.try_get("verifiers")?,
                    partner_token: PartnerTokenSource::of(
                        has_partner_token,
                        referred_by.as_deref(),
                        row.try_get("referrer_has_partner")?,
                    ),
                    referred_by,
                    connected_account_id: row.try_get("connected_account_id")?,
                    revenue_share_bps: row.try_get("revenue_share_bps")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Every active verifier token, decrypted: what the receiver verifies with. A row
    /// that does not decrypt (a master key not configured here) is returned as an
    /// error beside the others, so one bad row cannot stop every account.
    pub async fn active_verifier_tokens(
        &self,
    ) -> Result<Vec<(String, Result<SecretString, CryptoError>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT account_id, token_encrypted FROM account_verifier_tokens
             WHERE retired_at IS NULL ORDER BY account_id, created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let account_id: String = row.try_get("account_id")?;
                let blob: Vec<u8> = row.try_get("token_encrypted")?;
                let token = self.cipher.decrypt(
                    Purpose::Verifier,
                    &blob,
                    &context(&account_id, "verifier-token"),
                );
                Ok((account_id, token))
            })
            .collect()
    }

    /// Every account's Helcim API token, decrypted (accounts without one are left out).
    pub async fn api_tokens(
        &self,
    ) -> Result<Vec<(String, Result<SecretString, CryptoError>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT account_id, api_token_encrypted FROM accounts WHERE api_token_encrypted IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let account_id: String = row.try_get("account_id")?;
                let blob: Vec<u8> = row.try_get("api_token_encrypted")?;
                let token = self.cipher.decrypt(
                    Purpose::ApiToken,
                    &blob,
                    &context(&account_id, "api-token"),
                );
                Ok((account_id, token))
            })
            .collect()
    }

    /// Creates the account if missing and sets its API (and partner) token: how a
    /// single account configured by environment variables enters the database.
    pub async fn upsert_tokens(
        &self,
        account_id: &str,
        api_token: &SecretString,
        partner_token: Option<&SecretString>,
    ) -> Result<(), StoreError> {
        let api_token_plain = api_token;
        if !valid_id(account_id) {
            return Err(StoreError::BadAccountId(account_id.to_string()));
        }
        let api_token = self.cipher.encrypt(
            Purpose::ApiToken,
            api_token,
            &context(account_id, "api-token"),
        )?;
        let api_token_lookup = self.lookup_of(Some(api_token_plain));
        let partner_token = partner_token
            .map(|t| {
                self.cipher.encrypt(
                    Purpose::PartnerToken,
                    t,
                    &context(account_id, "partner-token"),
                )
            })
            .transpose()?;
        sqlx::query(
            "INSERT INTO accounts (account_id, api_token_encrypted, partner_token_encrypted, api_token_lookup)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (account_id) DO UPDATE SET
                 api_token_encrypted = EXCLUDED.api_token_encrypted,
                 api_token_lookup = EXCLUDED.api_token_lookup,
                 partner_token_encrypted = coalesce(EXCLUDED.partner_token_encrypted, accounts.partner_token_encrypted),
                 updated_at = now()",
        )
        .bind(account_id)
        .bind(api_token)
        .bind(partner_token)
        .bind(api_token_lookup)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The token's keyed fingerprint, when this process holds the lookup key (a
    /// process without it leaves the column for one that has it: see
    /// [`AccountStore::fingerprint_api_tokens`]).
    fn lookup_of(&self, api_token: Option<&SecretString>) -> Option<String> {
        let token = api_token?;
        match self.cipher.lookup_key() {
            Ok(key) => Some(key.fingerprint_secret(token)),
            Err(_) => {
                tracing::warn!(
                    "the API token is stored without its lookup fingerprint (this process holds no \
                     RECON_LOOKUP_KEY): recon-gateway will not find the account until \
                     `reconctl keys reencrypt` runs or a worker holding the key starts"
                );
                None
            }
        }
    }

    /// Sets `api_token_lookup` on every account whose API token has none, or one made
    /// under an older lookup key; returns how many. Needs the API-token key and the
    /// lookup key (the worker runs it at start, `reconctl keys reencrypt` too). A token
    /// that does not decrypt here is skipped with a warning naming its account.
    pub async fn fingerprint_api_tokens(&self) -> Result<usize, StoreError> {
        let key = self.cipher.lookup_key()?;
        let rows = sqlx::query(
            "SELECT account_id, api_token_encrypted, api_token_lookup FROM accounts
             WHERE api_token_encrypted IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut count = 0;
        for row in rows {
            let account_id: String = row.try_get("account_id")?;
            let blob: Vec<u8> = row.try_get("api_token_encrypted")?;
            let current: Option<String> = row.try_get("api_token_lookup")?;
            // One token this process cannot read (a key it was not given) must not
            // leave every other account unfindable by the gateway.
            let token = match self.cipher.decrypt(
                Purpose::ApiToken,
                &blob,
                &context(&account_id, "api-token"),
            ) {
                Ok(token) => token,
                Err(error) => {
                    tracing::warn!(
                        account_id,
                        %error,
                        "cannot fingerprint this account's API token: it does not decrypt \
                         with the API-token keys given; the gateway will not find the \
                         account until a process holding its key runs this"
                    );
                    continue;
                }
            };
            let fresh = key.fingerprint_secret(&token);
            if current.as_deref() == Some(fresh.as_str()) {
                continue;
            }
            // Only if the token is still the one just read: a concurrent change wins.
            let updated = sqlx::query(
                "UPDATE accounts SET api_token_lookup = $1
                 WHERE account_id = $2 AND api_token_encrypted = $3",
            )
            .bind(&fresh)
            .bind(&account_id)
            .bind(&blob)
            .execute(&self.pool)
            .await?;
            count += updated.rows_affected() as usize;
        }
        Ok(count)
    }

    /// Re-encrypts every secret not under its purpose's current key (made under an
    /// older key, or a version-1 secret made under the master key itself); returns how
    /// many. Needs every purpose key (run it with `RECON_MASTER_KEY`).
    pub async fn reencrypt_stale(&self) -> Result<usize, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut count = 0;
        let rows = sqlx::query(
            "SELECT id, account_id, token_encrypted FROM account_verifier_tokens FOR UPDATE",
        )
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            let (id, account_id, blob): (i64, String, Vec<u8>) = (
                row.try_get("id")?,
                row.try_get("account_id")?,
                row.try_get("token_encrypted")?,
            );
            if self.cipher.is_stale(Purpose::Verifier, &blob) {
                let fresh = self.rewrap(
                    Purpose::Verifier,
                    &blob,
                    &context(&account_id, "verifier-token"),
                )?;
                sqlx::query(
                    "UPDATE account_verifier_tokens SET token_encrypted = $1 WHERE id = $2",
                )
                .bind(fresh)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                count += 1;
            }
        }
        let rows = sqlx::query("SELECT account_id, api_token_encrypted, partner_token_encrypted FROM accounts FOR UPDATE")
            .fetch_all(&mut *tx)
            .await?;
        for row in rows {
            let account_id: String = row.try_get("account_id")?;
            for (column, purpose, name) in [
                ("api_token_encrypted", Purpose::ApiToken, "api-token"),
                (
                    "partner_token_encrypted",
                    Purpose::PartnerToken,
                    "partner-token",
                ),
            ] {
                let blob: Option<Vec<u8>> = row.try_get(column)?;
                let Some(blob) = blob.filter(|b| self.cipher.is_stale(purpose, b)) else {
                    continue;
                };
                let fresh = self.rewrap(purpose, &blob, &context(&account_id, name))?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE accounts SET {column} = $1, updated_at = now() WHERE account_id = $2"
                )))
                .bind(fresh)
                .bind(&account_id)
                .execute(&mut *tx)
                .await?;
                count += 1;
            }
        }
        count += crate::connected::reencrypt_stale(&mut tx, &self.cipher).await?;
        tx.commit().await?;
        Ok(count)
    }

    fn rewrap(&self, purpose: Purpose, blob: &[u8], context: &str) -> Result<Vec<u8>, StoreError> {
        let secret = self.cipher.decrypt(purpose, blob, context)?;
        Ok(self.cipher.encrypt(purpose, &secret, context)?)
    }

    /// The pool and cipher, for the other tables holding secrets.
    pub fn parts(&self) -> (&PgPool, &Arc<SecretCipher>) {
        (&self.pool, &self.cipher)
    }
}

async fn insert_verifier(
    tx: &mut sqlx::PgTransaction<'_>,
    cipher: &SecretCipher,
    account_id: &str,
    token: &SecretString,
) -> Result<String, StoreError> {
    let fingerprint = fingerprint(token);
    let inserted = sqlx::query(
        "INSERT INTO account_verifier_tokens (account_id, token_encrypted, fingerprint)
         VALUES ($1, $2, $3) ON CONFLICT (account_id, fingerprint) DO NOTHING",
    )
    .bind(account_id)
    .bind(cipher.encrypt(
        Purpose::Verifier,
        token,
        &context(account_id, "verifier-token"),
    )?)
    .bind(&fingerprint)
    .execute(&mut **tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(StoreError::TokenExists(account_id.to_string()));
    }
    Ok(fingerprint)
}
