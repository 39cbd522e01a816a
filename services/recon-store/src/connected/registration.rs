//! A connected account registered as an account of this deployment, so its webhooks
//! have a URL, the worker fetches its transactions with its own token, and the gateway
//! finds it by that token.
//!
//! The rules, in one place:
//! - **The account id** comes from Helcim's `connectedAccountId` alone
//!   ([`account_id_for`]): `connected-<id>` when the id is already made of the
//!   characters an account id allows and fits, else `connected.<32 hex digits of its
//!   SHA-256>`. The two forms cannot be mistaken for each other (`-` against `.`), and no
//!   referrer is part of it: one merchant is one account, whichever partner announced it.
//! - **Never taking over**: the row at that id is updated only when it was registered
//!   for the same `connectedAccountId`. An account an operator made (no
//!   `connected_account_id`) or one registered for another id is left alone:
//!   [`Registration::IdTaken`]. A token some other account already has is not
//!   registered twice (the gateway could not tell the two apart):
//!   [`Registration::TokenRegistered`].
//! - **Never going backwards**: the account's token is written only when the
//!   `connected_accounts` row took this delivery (a redelivery or an older delivery
//!   leaves it) and no other partner's row for the same merchant is newer.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use sqlx::{PgTransaction, Row};

use crate::accounts::{StoreError, context, valid_id};
use crate::crypto::{Purpose, SecretCipher, hex};

/// What registering a connected account did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// Registration is switched off: only the `connected_accounts` row was kept.
    Off,
    /// A new account was made. `fingerprinted` is false when this process holds no
    /// lookup key (the gateway cannot find the account until one fingerprints it).
    Registered {
        account_id: String,
        fingerprinted: bool,
    },
    /// The account's API token was replaced by a newer delivery's.
    Updated {
        account_id: String,
        fingerprinted: bool,
    },
    /// Nothing changed: a redelivery, an older delivery, or the token it already had.
    Unchanged { account_id: String },
    /// The id the rule gives belongs to an account not registered for this
    /// `connectedAccountId` (an operator made it): left alone.
    IdTaken { account_id: String },
    /// Another account already has this API token: left alone, not registered twice.
    TokenRegistered {
        account_id: String,
        existing: String,
    },
}

impl Registration {
    /// The account whose API token changed, if any (cached clients must re-read it).
    pub fn changed_account(&self) -> Option<&str> {
        match self {
            Registration::Registered { account_id, .. }
            | Registration::Updated { account_id, .. } => Some(account_id),
            _ => None,
        }
    }
}

/// The longest `connectedAccountId` kept as it is (`connected-` is 10 of the 64).
const MAX_PLAIN_ID: usize = 54;

/// The account id a connected account is registered under (see the module docs).
pub fn account_id_for(connected_account_id: &str) -> String {
    let id = connected_account_id.trim();
    let plain = format!("connected-{id}");
    if id.len() <= MAX_PLAIN_ID && valid_id(&plain) && !id.is_empty() {
        plain
    } else {
        format!("connected.{}", hex(&Sha256::digest(id.as_bytes())[..16]))
    }
}

/// What the row at the derived id is, as far as registering goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Existing<'a> {
    Missing,
    /// Registered for a `connectedAccountId` (this one or another).
    Connected(&'a str),
    /// Made by an operator (no `connected_account_id`).
    Operator,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Insert,
    Update,
    IdTaken,
}

/// Whether the row at the derived id may be written for `connected_account_id`.
fn decide(existing: Existing<'_>, connected_account_id: &str) -> Step {
    match existing {
        Existing::Missing => Step::Insert,
        Existing::Connected(id) if id == connected_account_id => Step::Update,
        Existing::Connected(_) | Existing::Operator => Step::IdTaken,
    }
}

/// The delivery the `connected_accounts` row just took, to register from.
pub(crate) struct Delivered<'a> {
    pub referrer: &'a str,
    pub connected_account_id: &'a str,
    pub api_token: &'a SecretString,
    pub helcim_timestamp: chrono::DateTime<chrono::Utc>,
}

/// Registers (or updates) the account inside the caller's transaction, which has just
/// upserted the `connected_accounts` row; `took_delivery` says whether that row took it.
/// A referrer with no `accounts` row (a receiver configured by environment variables
/// alone) leaves `referred_by` empty: the gateway then adds `HELCIM_PARTNER_TOKEN`.
pub(crate) async fn register(
    tx: &mut PgTransaction<'_>,
    cipher: &SecretCipher,
    delivered: &Delivered<'_>,
    took_delivery: bool,
) -> Result<Registration, StoreError> {
    let account_id = account_id_for(delivered.connected_account_id);
    let unchanged = || {
        Ok(Registration::Unchanged {
            account_id: account_id.clone(),
        })
    };
    if !took_delivery || newer_elsewhere(tx, delivered).await? {
        return unchanged();
    }
    // Twice at most: a concurrent first registration of the same merchant (announced
    // to two partner accounts at once) makes the insert find the row after all.
    for _ in 0..2 {
        let row = sqlx::query(
            "SELECT connected_account_id, api_token_encrypted FROM accounts
             WHERE account_id = $1 FOR UPDATE",
        )
        .bind(&account_id)
        .fetch_optional(&mut **tx)
        .await?;
        let existing_id: Option<Option<String>> = row
            .as_ref()
            .map(|r| r.try_get("connected_account_id"))
            .transpose()?;
        let existing = match &existing_id {
            None => Existing::Missing,
            Some(Some(id)) => Existing::Connected(id),
            Some(None) => Existing::Operator,
        };
        let step = decide(existing, delivered.connected_account_id);
        if step == Step::IdTaken {
            return Ok(Registration::IdTaken { account_id });
        }
        if let Some(existing) = same_token_elsewhere(tx, cipher, &account_id, delivered).await? {
            return Ok(Registration::TokenRegistered {
                account_id,
                existing,
            });
        }
        let context = context(&account_id, "api-token");
        let lookup = cipher
            .lookup_key()
            .ok()
            .map(|key| key.fingerprint_secret(delivered.api_token));
        let fingerprinted = lookup.is_some();
        if step == Step::Update {
            let stored: Option<Vec<u8>> = row
                .as_ref()
                .map(|r| r.try_get("api_token_encrypted"))
                .transpose()?
                .flatten();
            let same = stored
                .and_then(|blob| cipher.decrypt(Purpose::ApiToken, &blob, &context).ok())
                .is_some_and(|t| t.expose_secret() == delivered.api_token.expose_secret());
            if same {
                return unchanged();
            }
            sqlx::query(
                "UPDATE accounts SET api_token_encrypted = $2, api_token_lookup = $3,
                        referred_by = coalesce(referred_by,
                            (SELECT account_id FROM accounts WHERE account_id = $4)),
                        updated_at = now()
                 WHERE account_id = $1",
            )
            .bind(&account_id)
            .bind(cipher.encrypt(Purpose::ApiToken, delivered.api_token, &context)?)
            .bind(&lookup)
            .bind(delivered.referrer)
            .execute(&mut **tx)
            .await?;
            return Ok(Registration::Updated {
                account_id,
                fingerprinted,
            });
        }
        let inserted = sqlx::query(
            "INSERT INTO accounts (account_id, api_token_encrypted, api_token_lookup,
                                   referred_by, connected_account_id)
             VALUES ($1, $2, $3, (SELECT account_id FROM accounts WHERE account_id = $4), $5)
             ON CONFLICT (account_id) DO NOTHING",
        )
        .bind(&account_id)
        .bind(cipher.encrypt(Purpose::ApiToken, delivered.api_token, &context)?)
        .bind(&lookup)
        .bind(delivered.referrer)
        .bind(delivered.connected_account_id)
        .execute(&mut **tx)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(Registration::Registered {
                account_id,
                fingerprinted,
            });
        }
    }
    Err(StoreError::Invalid(format!(
        "account {account_id:?} kept changing while the connected account was registered; the delivery is retried"
    )))
}

/// Another partner's row for the same merchant holds a newer delivery: its token wins.
async fn newer_elsewhere(
    tx: &mut PgTransaction<'_>,
    delivered: &Delivered<'_>,
) -> Result<bool, StoreError> {
    let newer: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM connected_accounts
                        WHERE connected_account_id = $1 AND account_id <> $2
                          AND helcim_timestamp > $3)",
    )
    .bind(delivered.connected_account_id)
    .bind(delivered.referrer)
    .bind(delivered.helcim_timestamp)
    .fetch_one(&mut **tx)
    .await?;
    Ok(newer)
}

/// The account, other than `account_id`, that already has this API token. Found by
/// its lookup fingerprint (under every lookup key held, for a rotation) when this
/// process holds a lookup key; else by decrypting each stored token (rare events, few
/// accounts), skipping any that does not decrypt here.
async fn same_token_elsewhere(
    tx: &mut PgTransaction<'_>,
    cipher: &SecretCipher,
    account_id: &str,
    delivered: &Delivered<'_>,
) -> Result<Option<String>, StoreError> {
    if !cipher.lookup_keys().is_empty() {
        let fingerprints: Vec<String> = cipher
            .lookup_keys()
            .iter()
            .map(|key| key.fingerprint_secret(delivered.api_token))
            .collect();
        let found = sqlx::query_scalar(
            "SELECT account_id FROM accounts
             WHERE api_token_lookup = ANY($1) AND account_id <> $2
             ORDER BY account_id LIMIT 1",
        )
        .bind(&fingerprints)
        .bind(account_id)
        .fetch_optional(&mut **tx)
        .await?;
        return Ok(found);
    }
    let rows = sqlx::query(
        "SELECT account_id, api_token_encrypted FROM accounts
         WHERE api_token_encrypted IS NOT NULL AND account_id <> $1 ORDER BY account_id",
    )
    .bind(account_id)
    .fetch_all(&mut **tx)
    .await?;
    let wanted = delivered.api_token.expose_secret().trim();
    for row in rows {
        let other: String = row.try_get("account_id")?;
        let blob: Vec<u8> = row.try_get("api_token_encrypted")?;
        let Ok(token) = cipher.decrypt(Purpose::ApiToken, &blob, &context(&other, "api-token"))
        else {
            continue;
        };
        if token.expose_secret().trim() == wanted {
            return Ok(Some(other));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_connected_account_id_is_kept_and_any_other_is_hashed() {
        assert_eq!(account_id_for("981"), "connected-981");
        assert_eq!(account_id_for(" ca_1.x-Y "), "connected-ca_1.x-Y");
        let odd = account_id_for("merchant 981/ä");
        assert!(odd.starts_with("connected."), "{odd}");
        assert_eq!(odd.len(), "connected.".len() + 32);
        assert!(valid_id(&odd));
        assert_ne!(
            odd,
            account_id_for("merchant 981/a"),
            "no folding of characters"
        );
        let longest = "9".repeat(MAX_PLAIN_ID);
        assert_eq!(account_id_for(&longest), format!("connected-{longest}"));
        assert!(valid_id(&account_id_for(&longest)));
        let too_long = account_id_for(&"9".repeat(MAX_PLAIN_ID + 1));
        assert!(too_long.starts_with("connected.") && valid_id(&too_long));
    }

    #[test]
    fn only_a_row_registered_for_the_same_connected_account_is_written() {
        assert_eq!(decide(Existing::Missing, "981"), Step::Insert);
        assert_eq!(decide(Existing::Connected("981"), "981"), Step::Update);
        assert_eq!(decide(Existing::Connected("982"), "981"), Step::IdTaken);
        assert_eq!(decide(Existing::Operator, "981"), Step::IdTaken);
    }
}
