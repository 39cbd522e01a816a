//! The exceptions sweeps raise and clear themselves: `missed_webhook`,
//! `missing_in_api`, `orphan_refund` and `batch_mismatch` (what recording a transaction
//! shows is raised by the record hook).

use chrono::{DateTime, Utc};
use helcim_client::CardTransaction;
use recon_reconcile::ExceptionClass;
use recon_reconcile::settlement::{Totals, Verdict};
use recon_store::reconciliation::exceptions::{NewException, clear};
use serde_json::json;
use sqlx::PgConnection;

use super::compare::StoredRow;

/// Why a `missing_in_api` clears.
pub const REAPPEARED: &str = "Helcim lists the transaction again";
/// Why an `orphan_refund` clears.
pub const SALE_FOUND: &str = "the sale it refunds is now in the ledger";
/// Why a `batch_mismatch` clears.
pub const BALANCED: &str = "the batch balances now";
/// Why a `batch_mismatch` of an earlier difference clears.
pub const DIFFERENCE_CHANGED: &str = "the batch's difference changed; see the newer exception";

pub fn missed_webhook(
    account: &str,
    tx: &CardTransaction,
    listed_at: DateTime<Utc>,
) -> NewException {
    NewException {
        account_id: account.to_string(),
        class: ExceptionClass::MissedWebhook,
        transaction_id: Some(tx.id.0),
        card_batch_id: tx.card_batch_id.map(|b| b.0),
        dedupe_key: format!("missed_webhook:tx:{}", tx.id.0),
        summary: format!(
            "no webhook announced transaction {} ({} {} of {}); a sweep found it",
            tx.id.0,
            tx.status.as_str(),
            tx.transaction_type.as_str(),
            tx.amount
        ),
        evidence: json!({
            "listedAt": listed_at,
            "createdAt": tx.created_at,
            "cardBatchId": tx.card_batch_id.map(|b| b.0),
        }),
        amount_minor: Some(tx.amount.minor_units),
        currency: Some(tx.amount.currency.code().to_string()),
    }
}

pub fn missing_in_api(
    account: &str,
    row: &StoredRow,
    listed_at: DateTime<Utc>,
    listing: &str,
) -> NewException {
    let id = row.transaction_id as u64;
    NewException {
        account_id: account.to_string(),
        class: ExceptionClass::MissingInApi,
        transaction_id: Some(id),
        card_batch_id: row.card_batch_id.map(|b| b as u64),
        dedupe_key: format!("missing_in_api:tx:{id}"),
        summary: format!(
            "the ledger holds transaction {id} but Helcim's {listing} does not list it"
        ),
        evidence: json!({
            "listing": listing,
            "listedAt": listed_at,
            "ledgerFetchedAt": row.fetched_at,
            "createdAt": row.created_at,
            "status": row.status,
            "type": row.kind,
        }),
        amount_minor: row.amount_minor,
        currency: row.currency.as_deref().map(|c| c.trim().to_string()),
    }
}

/// An approved refund (or reverse) the ledger holds no sale for.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Orphan {
    pub transaction_id: i64,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub amount_minor: i64,
    pub currency: String,
    pub invoice_number: Option<String>,
    pub card_batch_id: Option<i64>,
}

pub fn orphan_refund(account: &str, orphan: &Orphan) -> NewException {
    let id = orphan.transaction_id as u64;
    NewException {
        account_id: account.to_string(),
        class: ExceptionClass::OrphanRefund,
        transaction_id: Some(id),
        card_batch_id: orphan.card_batch_id.map(|b| b as u64),
        dedupe_key: format!("orphan_refund:tx:{id}"),
        summary: format!(
            "approved {} {id} matches no approved sale of the same card and invoice {} in the ledger",
            orphan.kind,
            orphan.invoice_number.as_deref().unwrap_or("(none)")
        ),
        evidence: json!({
            "type": orphan.kind,
            "invoiceNumber": orphan.invoice_number,
            "amountMinor": orphan.amount_minor,
        }),
        amount_minor: Some(orphan.amount_minor),
        currency: Some(orphan.currency.trim().to_string()),
    }
}

/// The key of a batch's mismatch as it stands (a different difference, or count, is
/// another exception).
pub fn batch_mismatch_key(batch: u64, difference: i64, ledger_count: i64) -> String {
    format!("batch_mismatch:batch:{batch}:{difference}:{ledger_count}")
}

pub fn batch_mismatch_prefix(batch: u64) -> String {
    format!("batch_mismatch:batch:{batch}:")
}

/// What a mismatched batch raises: its difference, both sides' totals and the bridge.
#[allow(clippy::too_many_arguments)]
pub fn batch_mismatch(
    account: &str,
    batch: u64,
    verdict: &Verdict,
    ledger: &Totals,
    helcim: &Totals,
    currency: Option<&str>,
    closed_at: Option<DateTime<Utc>>,
    listed_at: Option<DateTime<Utc>>,
) -> Option<NewException> {
    let Verdict::Mismatch {
        difference_minor,
        bridge,
    } = verdict
    else {
        return None;
    };
    Some(NewException {
        account_id: account.to_string(),
        class: ExceptionClass::BatchMismatch,
        transaction_id: None,
        card_batch_id: Some(batch),
        dedupe_key: batch_mismatch_key(batch, *difference_minor, ledger.count),
        summary: format!(
            "batch {batch} does not balance: Helcim's net {} against the ledger's {} ({} transactions against {}), difference {} minor units {}",
            helcim.net,
            ledger.net,
            helcim.count,
            ledger.count,
            difference_minor,
            currency.unwrap_or("")
        ),
        evidence: json!({
            "helcim": helcim,
            "ledger": ledger,
            "differenceMinor": difference_minor,
            "bridge": bridge,
            "closedAt": closed_at,
            "transactionsListedAt": listed_at,
        }),
        amount_minor: Some(*difference_minor),
        currency: currency.map(str::to_string),
    })
}

/// Clears the unresolved exceptions of `class` on these transactions.
pub async fn clear_on_transactions(
    db: &mut PgConnection,
    account: &str,
    class: ExceptionClass,
    transaction_ids: &[i64],
    why: &str,
) -> Result<u32, sqlx::Error> {
    if transaction_ids.is_empty() {
        return Ok(0);
    }
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT dedupe_key FROM reconciliation_exceptions
          WHERE account_id = $1 AND class = $2 AND status <> 'resolved'
            AND transaction_id = ANY($3)",
    )
    .bind(account)
    .bind(class.as_str())
    .bind(transaction_ids)
    .fetch_all(&mut *db)
    .await?;
    let mut cleared = 0;
    for key in keys {
        if clear(db, account, &key, why).await? {
            cleared += 1;
        }
    }
    Ok(cleared)
}
