//! What recording a transaction raises (and clears), read from the row as stored after
//! the write: an older answer the upsert ignored leaves the row as it was, so it
//! raises nothing new.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};

use super::causes::{self, Current, DUPLICATE_WINDOW_SECONDS, LATE_WEBHOOK_NOTE, Twin};
use super::{clear, raise};
use crate::reconciliation::{Origin, StoredFacts};

/// Raises what recording a transaction shows: a changed amount, status, type, batch or
/// currency against `previous`; a currency that differs from its batch's; a status or
/// type this version does not know; a duplicate suspect (within
/// [`DUPLICATE_WINDOW_SECONDS`]). A webhook for a transaction a sweep or backfill found
/// first clears its `missed_webhook`. Returns how many were raised or reopened.
pub async fn on_transaction_recorded(
    db: &mut PgConnection,
    account_id: &str,
    transaction_id: u64,
    previous: Option<&StoredFacts>,
    origin: Origin,
) -> Result<u32, sqlx::Error> {
    on_transaction_recorded_within(
        db,
        account_id,
        transaction_id,
        previous,
        origin,
        Duration::from_secs(DUPLICATE_WINDOW_SECONDS),
    )
    .await
}

/// [`on_transaction_recorded`] with another duplicate window (tests; no setting yet).
pub async fn on_transaction_recorded_within(
    db: &mut PgConnection,
    account_id: &str,
    transaction_id: u64,
    previous: Option<&StoredFacts>,
    origin: Origin,
    duplicate_window: Duration,
) -> Result<u32, sqlx::Error> {
    if origin == Origin::Webhook && previous.is_some_and(|p| p.discovered_by != "webhook") {
        clear(
            db,
            account_id,
            &format!("missed_webhook:tx:{transaction_id}"),
            LATE_WEBHOOK_NOTE,
        )
        .await?;
    }
    let Some(now) = current(db, account_id, transaction_id).await? else {
        return Ok(0);
    };
    // A pending row had no answer to compare with: the first answer changes nothing.
    let previous = previous.filter(|p| !p.is_pending());
    let mut found = previous.map_or_else(Vec::new, |p| causes::changes(account_id, p, &now));
    found.extend(causes::currency_mismatch(account_id, previous, &now));
    found.extend(causes::unknown_status(account_id, &now));
    for twin in twins(db, account_id, transaction_id, duplicate_window).await? {
        found.push(causes::duplicate_suspect(account_id, &now, &twin));
    }
    // One order for every recorder, so two raising the same keys cannot deadlock.
    found.sort_by(|a, b| a.dedupe_key.cmp(&b.dedupe_key));
    found.dedup_by(|a, b| a.dedupe_key == b.dedupe_key);
    let mut raised = 0;
    for exception in &found {
        if raise(db, exception).await? {
            raised += 1;
        }
    }
    Ok(raised)
}

/// The stored row with its batch's currency; `None` while it is pending (or absent).
async fn current(
    db: &mut PgConnection,
    account_id: &str,
    transaction_id: u64,
) -> Result<Option<Current>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT t.status, t.type, t.amount_minor, t.currency::text AS currency, t.card_batch_id,
                t.created_at, t.card_number_masked, b.currency::text AS batch_currency
           FROM card_transactions t
           LEFT JOIN card_batches b
                  ON b.account_id = t.account_id AND b.card_batch_id = t.card_batch_id
          WHERE t.account_id = $1 AND t.transaction_id = $2
            AND t.reconciliation_status <> 'pending'",
    )
    .bind(account_id)
    .bind(transaction_id as i64)
    .fetch_optional(db)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(Current {
        transaction_id,
        status: row
            .try_get::<Option<String>, _>("status")?
            .unwrap_or_default(),
        kind: row
            .try_get::<Option<String>, _>("type")?
            .unwrap_or_default(),
        amount_minor: row.try_get("amount_minor")?,
        currency: row.try_get("currency")?,
        card_batch_id: row.try_get("card_batch_id")?,
        created_at: row.try_get("created_at")?,
        card_number_masked: row.try_get("card_number_masked")?,
        batch_currency: row.try_get("batch_currency")?,
    }))
}

/// Other approved transactions of the account with the same type (purchase or
/// capture), card token, amount and currency, created within `window` of this one
/// (itself approved), nearest first. The token is compared in the database and never
/// read out.
///
/// Two payments of one card recorded at the same moment (two webhooks, two consumers)
/// would each miss the other, still uncommitted: so recording a candidate first takes
/// a transaction-scoped advisory lock per account and card, and the second recorder
/// waits for the first to commit, then sees it.
async fn twins(
    db: &mut PgConnection,
    account_id: &str,
    transaction_id: u64,
    window: Duration,
) -> Result<Vec<Twin>, sqlx::Error> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtext('recon_duplicate_suspect'),
                                      hashtext(account_id || ':' || card_token))
           FROM card_transactions
          WHERE account_id = $1 AND transaction_id = $2
            AND status IN ('APPROVED', 'APPROVAL') AND type IN ('purchase', 'capture')
            AND coalesce(card_token, '') <> ''",
    )
    .bind(account_id)
    .bind(transaction_id as i64)
    .execute(&mut *db)
    .await?;
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let rows = sqlx::query(
        "SELECT o.transaction_id, o.created_at
           FROM card_transactions t
           JOIN card_transactions o
             ON o.account_id = t.account_id AND o.transaction_id <> t.transaction_id
            AND o.created_at BETWEEN t.created_at - $3::bigint * interval '1 millisecond'
                                 AND t.created_at + $3::bigint * interval '1 millisecond'
            AND o.type = t.type AND o.status IN ('APPROVED', 'APPROVAL')
            AND o.card_token = t.card_token AND o.amount_minor = t.amount_minor
            AND o.currency = t.currency
          WHERE t.account_id = $1 AND t.transaction_id = $2
            AND t.status IN ('APPROVED', 'APPROVAL') AND t.type IN ('purchase', 'capture')
            AND coalesce(t.card_token, '') <> ''
          ORDER BY abs(extract(epoch FROM o.created_at - t.created_at)), o.transaction_id
          LIMIT 10",
    )
    .bind(account_id)
    .bind(transaction_id as i64)
    .bind(window_ms)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|row| {
            let id: i64 = row.try_get("transaction_id")?;
            let created_at: DateTime<Utc> = row.try_get("created_at")?;
            Ok(Twin {
                transaction_id: id as u64,
                created_at,
            })
        })
        .collect()
}
