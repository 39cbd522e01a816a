//! Receipts: attribution evidence reported by an integration that calls Helcim directly
//! (`POST /v1/attribution/receipts`), stored in `attribution_evidence` beside the
//! gateway's (`source = 'receipt'`, `outcome = 'reported'`, `endpoint = 'receipt'`).
//!
//! A receipt is named by its account and the caller's `receiptId` forever: the row's
//! `dedupe_key` is `receipt:<account_id>:<receiptId>` (account ids cannot hold `:`, so
//! the key is unambiguous). A batch is filed in one transaction, all or nothing:
//! receipts already on file with the same content are counted, not written again; one
//! already on file with different content refuses the whole batch. Two identical
//! batches filed at once end as one set of rows: the second transaction's insert waits
//! on the first's uncommitted rows, then finds them and compares.
//!
//! Unlike [`crate::evidence::EvidenceStore::record`], nothing here ever updates a row:
//! what a caller reported stands as first reported.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::{PgPool, QueryBuilder, Row};

/// The `endpoint` column of every receipt.
pub const ENDPOINT: &str = "receipt";

/// A validated receipt, ready to store. Holds no secret: only what the integration saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub account_id: String,
    pub receipt_id: String,
    pub transaction_id: Option<i64>,
    pub invoice_number: Option<String>,
    pub amount_minor: i64,
    /// ISO 4217 code, as `recon_money::Currency::code` writes it.
    pub currency: String,
    pub partner_token_sent: bool,
    /// Helcim's `is-valid-partner-token`: `Some(1)`, `Some(0)`, or `None` when absent.
    pub is_valid_partner_token: Option<i16>,
    /// Microsecond precision, as Postgres keeps it (so a resent receipt compares equal).
    pub observed_at: DateTime<Utc>,
}

impl Receipt {
    /// The row's `dedupe_key`.
    pub fn dedupe_key(&self) -> String {
        dedupe_key(&self.account_id, &self.receipt_id)
    }
}

/// `receipt:<account_id>:<receipt_id>`.
pub fn dedupe_key(account_id: &str, receipt_id: &str) -> String {
    format!("receipt:{account_id}:{receipt_id}")
}

/// A receipt already on file whose content differs from the one sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// Position of the receipt in the slice given.
    pub position: usize,
    /// The fields that differ, as the API names them (`amount`, `observedAt`, ...).
    pub fields: Vec<&'static str>,
}

/// What filing a batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filed {
    /// Committed: `stored` new rows; `already_recorded` receipts were on file unchanged.
    Stored { stored: u64, already_recorded: u64 },
    /// Nothing stored: these receipts are on file with different content.
    Refused(Vec<Conflict>),
}

/// Columns compared between a receipt sent and the row on file.
const ROW_COLUMNS: &str = "dedupe_key, source, account_id, transaction_id, invoice_number, \
     amount_minor, currency, partner_token_sent, is_valid_partner_token, observed_at, receipt_id";

/// Rows per INSERT: 15 bind parameters each, well under Postgres's 65,535.
const ROWS_PER_STATEMENT: usize = 1_000;

#[derive(Debug, Clone)]
pub struct ReceiptStore {
    pool: PgPool,
}

impl ReceiptStore {
    pub fn new(pool: PgPool) -> Self {
        ReceiptStore { pool }
    }

    /// Which of `account_ids` are registered accounts.
    pub async fn known_accounts(&self, account_ids: &[String]) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT account_id FROM accounts WHERE account_id = ANY($1)")
            .bind(account_ids)
            .fetch_all(&self.pool)
            .await
    }

    /// The receipts of `receipts` already on file with different content, without
    /// writing anything (to list every bad item when a batch is refused anyway).
    pub async fn conflicts(&self, receipts: &[Receipt]) -> Result<Vec<Conflict>, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        let on_file = on_file(&mut conn, receipts, &HashSet::new()).await?;
        Ok(on_file.conflicts)
    }

    /// Files `receipts` in one transaction, all or nothing (see the module
    /// documentation). `submitted_by` names the API key (never the key itself).
    pub async fn file(
        &self,
        receipts: &[Receipt],
        submitted_by: &str,
    ) -> Result<Filed, sqlx::Error> {
        // Rows locked in key order, so two batches sharing receipts in different orders
        // wait for each other instead of deadlocking.
        let mut order: Vec<usize> = (0..receipts.len()).collect();
        let keys: Vec<String> = receipts.iter().map(Receipt::dedupe_key).collect();
        order.sort_by(|a, b| keys[*a].cmp(&keys[*b]));

        let mut tx = self.pool.begin().await?;
        let mut inserted: HashSet<String> = HashSet::new();
        for chunk in order.chunks(ROWS_PER_STATEMENT) {
            let mut insert = QueryBuilder::new(
                "INSERT INTO attribution_evidence (dedupe_key, source, account_id, endpoint,
                     partner_token_sent, partner_token_added, is_valid_partner_token, outcome,
                     transaction_id, invoice_number, amount_minor, currency, observed_at,
                     receipt_id, submitted_by) ",
            );
            insert.push_values(chunk, |mut row, &i| {
                let r = &receipts[i];
                row.push_bind(&keys[i])
                    .push_bind("receipt")
                    .push_bind(&r.account_id)
                    .push_bind(ENDPOINT)
                    .push_bind(r.partner_token_sent)
                    .push_bind(false)
                    .push_bind(r.is_valid_partner_token)
                    .push_bind("reported")
                    .push_bind(r.transaction_id)
                    .push_bind(&r.invoice_number)
                    .push_bind(r.amount_minor)
                    .push_bind(&r.currency)
                    .push_bind(r.observed_at)
                    .push_bind(&r.receipt_id)
                    .push_bind(submitted_by);
            });
            insert.push(" ON CONFLICT (dedupe_key) DO NOTHING RETURNING dedupe_key");
            for key in insert.build().fetch_all(&mut *tx).await? {
                inserted.insert(key.try_get("dedupe_key")?);
            }
        }
        let stored = inserted.len() as u64;
        let on_file = on_file(&mut tx, receipts, &inserted).await?;
        if !on_file.conflicts.is_empty() {
            tx.rollback().await?;
            return Ok(Filed::Refused(on_file.conflicts));
        }
        tx.commit().await?;
        Ok(Filed::Stored {
            stored,
            already_recorded: on_file.same,
        })
    }
}

/// Receipts found on file (apart from those this transaction just inserted).
struct OnFile {
    same: u64,
    conflicts: Vec<Conflict>,
}

/// Compares each receipt not in `skip` with its row, if it has one.
async fn on_file(
    conn: &mut sqlx::PgConnection,
    receipts: &[Receipt],
    skip: &HashSet<String>,
) -> Result<OnFile, sqlx::Error> {
    let wanted: Vec<(usize, String)> = receipts
        .iter()
        .enumerate()
        .map(|(i, r)| (i, r.dedupe_key()))
        .filter(|(_, key)| !skip.contains(key))
        .collect();
    let mut result = OnFile {
        same: 0,
        conflicts: Vec::new(),
    };
    if wanted.is_empty() {
        return Ok(result);
    }
    let keys: Vec<&str> = wanted.iter().map(|(_, key)| key.as_str()).collect();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ROW_COLUMNS} FROM attribution_evidence WHERE dedupe_key = ANY($1)"
    )))
    .bind(&keys)
    .fetch_all(&mut *conn)
    .await?;
    let mut found = HashMap::with_capacity(rows.len());
    for row in &rows {
        found.insert(row.try_get::<String, _>("dedupe_key")?, row);
    }
    for (position, key) in wanted {
        let Some(row) = found.get(&key) else {
            continue;
        };
        let fields = differences(&receipts[position], row)?;
        if fields.is_empty() {
            result.same += 1;
        } else {
            result.conflicts.push(Conflict { position, fields });
        }
    }
    Ok(result)
}

/// The fields in which `sent` differs from the stored `row`, by their API names.
/// Who submitted it is not compared: the same receipt resent by another key of the
/// account (or an admin) is the same receipt.
fn differences(
    sent: &Receipt,
    row: &sqlx::postgres::PgRow,
) -> Result<Vec<&'static str>, sqlx::Error> {
    let mut fields = Vec::new();
    let source: String = row.try_get("source")?;
    let receipt_id: Option<String> = row.try_get("receipt_id")?;
    if source != "receipt" || receipt_id.as_deref() != Some(sent.receipt_id.as_str()) {
        fields.push("receiptId");
    }
    let mut differs = |name: &'static str, same: bool| {
        if !same {
            fields.push(name);
        }
    };
    let account: Option<String> = row.try_get("account_id")?;
    differs(
        "accountId",
        account.as_deref() == Some(sent.account_id.as_str()),
    );
    let transaction: Option<i64> = row.try_get("transaction_id")?;
    differs("transactionId", transaction == sent.transaction_id);
    let invoice: Option<String> = row.try_get("invoice_number")?;
    differs("invoiceNumber", invoice == sent.invoice_number);
    let amount: Option<i64> = row.try_get("amount_minor")?;
    differs("amount", amount == Some(sent.amount_minor));
    let currency: Option<String> = row.try_get("currency")?;
    differs(
        "currency",
        currency.as_deref().map(str::trim) == Some(sent.currency.as_str()),
    );
    let token_sent: bool = row.try_get("partner_token_sent")?;
    differs("partnerTokenSent", token_sent == sent.partner_token_sent);
    let valid: Option<i16> = row.try_get("is_valid_partner_token")?;
    differs("isValidPartnerToken", valid == sent.is_valid_partner_token);
    let observed: DateTime<Utc> = row.try_get("observed_at")?;
    differs("observedAt", observed == sent.observed_at);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dedupe_key_names_the_account_and_the_receipt() {
        assert_eq!(dedupe_key("acct-a", "r:1"), "receipt:acct-a:r:1");
        // Account ids hold no `:`, so the first one after the prefix ends the account.
        assert_ne!(dedupe_key("a", "b:c"), dedupe_key("a.b", "c"));
    }
}
