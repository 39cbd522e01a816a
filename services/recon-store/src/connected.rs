//! Connected accounts (what `connectedAccount` webhooks announce to a partner): the
//! referred merchant's API token, encrypted under the API-token data key, and (unless
//! switched off) the merchant registered as an account ([`registration`]).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use sqlx::{PgPool, Row};

use crate::accounts::StoreError;
use crate::crypto::{Purpose, SecretCipher, fingerprint};

pub mod registration;

pub use registration::{Registration, account_id_for};

fn context(account_id: &str, connected_account_id: &str) -> String {
    format!("connected-accounts/{account_id}/{connected_account_id}/api-token")
}

/// One connected account's token, as a webhook delivered it.
#[derive(Debug)]
pub struct ConnectedAccount<'a> {
    pub account_id: &'a str,
    pub connected_account_id: &'a str,
    pub api_token: &'a SecretString,
    pub webhook_id: &'a str,
    pub helcim_timestamp: DateTime<Utc>,
}

/// What [`ConnectedAccounts::record`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The token's fingerprint (first 12 hex digits of SHA-256): safe to log.
    pub fingerprint: String,
    pub registration: Registration,
}

#[derive(Debug, Clone)]
pub struct ConnectedAccounts {
    pool: PgPool,
    cipher: Arc<SecretCipher>,
}

impl ConnectedAccounts {
    pub fn new(pool: PgPool, cipher: Arc<SecretCipher>) -> Self {
        ConnectedAccounts { pool, cipher }
    }

    /// Stores the token unless a newer delivery already set one (idempotent: a
    /// redelivery changes nothing). Returns the token's fingerprint.
    pub async fn upsert(&self, account: &ConnectedAccount<'_>) -> Result<String, StoreError> {
        Ok(self.record(account, false).await?.fingerprint)
    }

    /// As [`ConnectedAccounts::upsert`], and, when `register` is set, registers the
    /// merchant as an account of this deployment in the same transaction (the rules are
    /// in [`registration`]).
    pub async fn record(
        &self,
        account: &ConnectedAccount<'_>,
        register: bool,
    ) -> Result<Recorded, StoreError> {
        let context = context(account.account_id, account.connected_account_id);
        let encrypted = self
            .cipher
            .encrypt(Purpose::ApiToken, account.api_token, &context)?;
        let fingerprint = fingerprint(account.api_token);
        let mut tx = self.pool.begin().await?;
        let took = sqlx::query(
            "INSERT INTO connected_accounts
                 (account_id, connected_account_id, api_token_encrypted, api_token_fingerprint,
                  webhook_id, helcim_timestamp)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (account_id, connected_account_id) DO UPDATE SET
                 api_token_encrypted = EXCLUDED.api_token_encrypted,
                 api_token_fingerprint = EXCLUDED.api_token_fingerprint,
                 webhook_id = EXCLUDED.webhook_id,
                 helcim_timestamp = EXCLUDED.helcim_timestamp,
                 updated_at = now()
             WHERE connected_accounts.helcim_timestamp <= EXCLUDED.helcim_timestamp
               AND connected_accounts.webhook_id <> EXCLUDED.webhook_id",
        )
        .bind(account.account_id)
        .bind(account.connected_account_id)
        .bind(encrypted)
        .bind(&fingerprint)
        .bind(account.webhook_id)
        .bind(account.helcim_timestamp)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let registration = if register {
            let delivered = registration::Delivered {
                referrer: account.account_id,
                connected_account_id: account.connected_account_id,
                api_token: account.api_token,
                helcim_timestamp: account.helcim_timestamp,
            };
            registration::register(&mut tx, &self.cipher, &delivered, took).await?
        } else {
            Registration::Off
        };
        tx.commit().await?;
        Ok(Recorded {
            fingerprint,
            registration,
        })
    }

    /// The connected account's API token, decrypted (`None` when not known).
    pub async fn api_token(
        &self,
        account_id: &str,
        connected_account_id: &str,
    ) -> Result<Option<SecretString>, StoreError> {
        let blob: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT api_token_encrypted FROM connected_accounts
             WHERE account_id = $1 AND connected_account_id = $2",
        )
        .bind(account_id)
        .bind(connected_account_id)
        .fetch_optional(&self.pool)
        .await?;
        blob.map(|blob| {
            self.cipher
                .decrypt(
                    Purpose::ApiToken,
                    &blob,
                    &context(account_id, connected_account_id),
                )
                .map_err(StoreError::from)
        })
        .transpose()
    }
}

/// Part of `reconctl keys reencrypt`: rewrites stale connected-account tokens.
pub(crate) async fn reencrypt_stale(
    tx: &mut sqlx::PgTransaction<'_>,
    cipher: &SecretCipher,
) -> Result<usize, StoreError> {
    let rows = sqlx::query(
        "SELECT account_id, connected_account_id, api_token_encrypted FROM connected_accounts FOR UPDATE",
    )
    .fetch_all(&mut **tx)
    .await?;
    let mut count = 0;
    for row in rows {
        let (account_id, connected_id, blob): (String, String, Vec<u8>) = (
            row.try_get("account_id")?,
            row.try_get("connected_account_id")?,
            row.try_get("api_token_encrypted")?,
        );
        if !cipher.is_stale(Purpose::ApiToken, &blob) {
            continue;
        }
        let context = context(&account_id, &connected_id);
        let token = cipher.decrypt(Purpose::ApiToken, &blob, &context)?;
        sqlx::query(
            "UPDATE connected_accounts SET api_token_encrypted = $1
             WHERE account_id = $2 AND connected_account_id = $3",
        )
        .bind(cipher.encrypt(Purpose::ApiToken, &token, &context)?)
        .bind(&account_id)
        .bind(&connected_id)
        .execute(&mut **tx)
        .await?;
        count += 1;
    }
    Ok(count)
}
