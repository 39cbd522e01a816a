//! What the sweeps read from the ledger: one query per question, never one per
//! transaction.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use recon_reconcile::settlement::Totals;
use sqlx::PgPool;

use super::compare::StoredRow;
use super::flags::Orphan;
use super::window::Window;

const ROW: &str = "transaction_id, reconciliation_status, status, type, amount_minor,
    currency::text AS currency, card_batch_id, created_at, fetched_at";

/// The ledger's rows created in the window, and those of `ids` wherever they are
/// (pending rows have no creation time yet), by id.
pub async fn window_rows(
    pool: &PgPool,
    account: &str,
    window: &Window,
    ids: &[i64],
) -> Result<HashMap<i64, StoredRow>, sqlx::Error> {
    let (start, end) = window.utc_bounds();
    let rows: Vec<StoredRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ROW} FROM card_transactions
          WHERE account_id = $1
            AND ((created_at >= $2 AND created_at < $3) OR transaction_id = ANY($4))"
    )))
    .bind(account)
    .bind(start)
    .bind(end)
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.transaction_id, r)).collect())
}

/// The ledger's rows of a batch, and those of `ids` wherever they are, by id.
pub async fn batch_rows(
    pool: &PgPool,
    account: &str,
    batch: u64,
    ids: &[i64],
) -> Result<HashMap<i64, StoredRow>, sqlx::Error> {
    let rows: Vec<StoredRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ROW} FROM card_transactions
          WHERE account_id = $1 AND (card_batch_id = $2 OR transaction_id = ANY($3))"
    )))
    .bind(account)
    .bind(batch as i64)
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.transaction_id, r)).collect())
}

/// Which of these batches `card_batches` holds.
pub async fn known_batches(
    pool: &PgPool,
    account: &str,
    ids: &[i64],
) -> Result<HashSet<i64>, sqlx::Error> {
    let known: Vec<i64> = sqlx::query_scalar(
        "SELECT card_batch_id FROM card_batches WHERE account_id = $1 AND card_batch_id = ANY($2)",
    )
    .bind(account)
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(known.into_iter().collect())
}

/// The rule both orphan queries share: an approved refund with no approved purchase or
/// capture of the same card token and invoice, or an approved reverse with no approved
/// purchase, capture or refund of the same card, invoice, amount and currency created
/// no later than it. Invoices compare with `=` so the lookup uses the invoice index
/// (with `IS NOT DISTINCT FROM` it read every row of the account per refund: a sweep over
/// 100,000 transactions hit the statement timeout); a refund without an invoice number
/// is an orphan, as the journal treats it as nobody's follow-up.
const ORPHAN: &str = "r.status IN ('APPROVED', 'APPROVAL') AND (
       (r.type = 'refund' AND NOT EXISTS (
            SELECT 1 FROM card_transactions s
             WHERE s.account_id = r.account_id AND s.status IN ('APPROVED', 'APPROVAL')
               AND s.type IN ('purchase', 'capture')
               AND s.card_token IS NOT DISTINCT FROM r.card_token
               AND s.invoice_number = r.invoice_number))
    OR (r.type = 'reverse' AND NOT EXISTS (
            SELECT 1 FROM card_transactions s
             WHERE s.account_id = r.account_id AND s.status IN ('APPROVED', 'APPROVAL')
               AND s.type IN ('purchase', 'capture', 'refund')
               AND s.card_token IS NOT DISTINCT FROM r.card_token
               AND s.invoice_number = r.invoice_number
               AND s.amount_minor = r.amount_minor AND s.currency = r.currency
               AND s.created_at <= r.created_at)))";

/// Orphan refunds and reverses created in the window.
pub async fn orphans(
    pool: &PgPool,
    account: &str,
    window: &Window,
) -> Result<Vec<Orphan>, sqlx::Error> {
    let (start, end) = window.utc_bounds();
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT r.transaction_id, r.type, r.amount_minor, r.currency::text AS currency,
                r.invoice_number, r.card_batch_id
           FROM card_transactions r
          WHERE r.account_id = $1 AND r.created_at >= $2 AND r.created_at < $3 AND {ORPHAN}
          ORDER BY r.transaction_id"
    )))
    .bind(account)
    .bind(start)
    .bind(end)
    .fetch_all(pool)
    .await
}

/// Transactions with an unresolved `orphan_refund` that are orphans no more.
pub async fn orphans_with_a_sale(pool: &PgPool, account: &str) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT e.transaction_id FROM reconciliation_exceptions e
           JOIN card_transactions r
             ON r.account_id = e.account_id AND r.transaction_id = e.transaction_id
          WHERE e.account_id = $1 AND e.class = 'orphan_refund' AND e.status <> 'resolved'
            AND NOT ({ORPHAN})"
    )))
    .bind(account)
    .fetch_all(pool)
    .await
}

/// A batch the batch pass must look at.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BatchToCheck {
    pub card_batch_id: i64,
    /// `card_batches` holds it closed (with or without stats).
    pub closed: bool,
    pub currency: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    pub net_sales_minor: Option<i64>,
    pub total_sales_minor: Option<i64>,
    pub total_refunds_minor: Option<i64>,
    pub total_reversed_minor: Option<i64>,
    pub total_refunds_reversed_minor: Option<i64>,
    pub count_total: Option<i64>,
}

impl BatchToCheck {
    /// Helcim's stats as stored, when complete.
    pub fn stats(&self) -> Option<Totals> {
        Some(Totals {
            count: self.count_total?,
            sales: self.total_sales_minor?,
            refunds: self.total_refunds_minor?,
            sales_reversed: self.total_reversed_minor?,
            refunds_reversed: self.total_refunds_reversed_minor?,
            net: self.net_sales_minor?,
        })
    }
}

/// Batches the ledger's transactions name (all of the account's, or those of `only`)
/// that are not closed in `card_batches`, or closed without a closed verdict, or with
/// a transaction written after their verdict.
pub async fn batches_to_check(
    pool: &PgPool,
    account: &str,
    only: Option<&[i64]>,
) -> Result<Vec<BatchToCheck>, sqlx::Error> {
    sqlx::query_as(
        "SELECT t.card_batch_id, coalesce(b.closed, false) AS closed,
                b.currency::text AS currency, b.closed_at, b.net_sales_minor,
                b.total_sales_minor, b.total_refunds_minor, b.total_reversed_minor,
                b.total_refunds_reversed_minor, b.count_total
           FROM (SELECT DISTINCT card_batch_id FROM card_transactions
                  WHERE account_id = $1 AND card_batch_id IS NOT NULL
                    AND ($2::bigint[] IS NULL OR card_batch_id = ANY($2))) t
           LEFT JOIN card_batches b
                  ON b.account_id = $1 AND b.card_batch_id = t.card_batch_id
           LEFT JOIN batch_settlements s
                  ON s.account_id = $1 AND s.card_batch_id = t.card_batch_id
          WHERE b.card_batch_id IS NULL OR NOT b.closed
             OR s.card_batch_id IS NULL OR s.verdict = 'open'
             OR EXISTS (SELECT 1 FROM card_transactions x
                         WHERE x.account_id = $1 AND x.card_batch_id = t.card_batch_id
                           AND x.updated_at > s.verified_at)
          ORDER BY t.card_batch_id",
    )
    .bind(account)
    .bind(only)
    .fetch_all(pool)
    .await
}

/// Accounts with an API token: those the sweeps cover.
pub async fn accounts_with_tokens(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT account_id FROM accounts WHERE api_token_encrypted IS NOT NULL ORDER BY account_id",
    )
    .fetch_all(pool)
    .await
}
