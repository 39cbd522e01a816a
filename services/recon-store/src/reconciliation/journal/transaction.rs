//! Posting one card transaction: its entry from its stored row, and the reverses whose
//! classification it may change.

use chrono::{DateTime, Utc};
use recon_reconcile::journal::{EntryKind, entry_amount, transaction_entry};
use recon_reconcile::movement::{
    Candidate, Movement, TransactionFacts, is_reversible_kind, reverses_refund,
};
use sqlx::PgConnection;

use super::store::{self, ActiveEntry, Target};
use super::{Posted, memo};

/// Brings the transaction's journal entry in line with its stored row: nothing when
/// the active entry already says the same, otherwise the reversal of the active entry
/// and the entry that is right now. A purchase, capture or refund then re-posts the
/// reverses of the same card, invoice and amount, whose original it may be (it may
/// have arrived after them). Callers hold the row's lock (they just wrote it); it is
/// taken again here for the reverses, so two postings never race on one entry.
pub async fn post_transaction(
    db: &mut PgConnection,
    account_id: &str,
    transaction_id: u64,
) -> Result<Posted, sqlx::Error> {
    lock_originals(db, account_id, transaction_id).await?;
    let Some(outcome) = post_one(db, account_id, transaction_id).await? else {
        return Ok(Posted::default());
    };
    let mut posted = outcome.posted;
    let mut reverses = outcome.related_reverses;
    // The active entry this posting replaced recorded an older amount or currency:
    // reverses that matched that one may have lost their original.
    if let Some((amount_minor, currency)) = outcome.replaced_amount {
        reverses.extend(
            related_reverses(db, account_id, transaction_id, amount_minor, &currency).await?,
        );
    }
    reverses.sort_unstable();
    reverses.dedup();
    for reverse in reverses {
        // A reverse is never the original of another, so this goes no deeper.
        if let Some(outcome) = post_one(db, account_id, reverse).await? {
            posted.add(outcome.posted);
        }
    }
    Ok(posted)
}

/// A reverse and its original may be recorded at the same moment by two consumers;
/// each would read the other still uncommitted (the reverse finds no original, the
/// original no reverse to re-post) and the reverse would stay misclassified. So
/// posting any money transaction first takes a transaction-scoped advisory lock per
/// account, card and invoice: the second waits for the first to commit, and its next
/// statement sees it.
async fn lock_originals(
    db: &mut PgConnection,
    account_id: &str,
    transaction_id: u64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtext('recon_journal_originals'),
                    hashtext(account_id || ':' || coalesce(card_token, '') || ':'
                             || coalesce(invoice_number, '')))
           FROM card_transactions
          WHERE account_id = $1 AND transaction_id = $2
            AND type IN ('purchase', 'capture', 'refund', 'reverse')",
    )
    .bind(account_id)
    .bind(transaction_id as i64)
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// The stored row, as posting reads it.
#[derive(Debug, sqlx::FromRow)]
struct Row {
    reconciliation_status: String,
    status: Option<String>,
    #[sqlx(rename = "type")]
    kind: Option<String>,
    amount_minor: Option<i64>,
    currency: Option<String>,
    card_batch_id: Option<i64>,
    created_at: Option<DateTime<Utc>>,
    invoice_number: Option<String>,
    card_token: Option<String>,
    /// The transaction's active entries (normally at most one), as JSON.
    active: serde_json::Value,
    /// For a reverse: the same card, invoice, amount and currency, created no later.
    candidates: Option<serde_json::Value>,
    /// For any other type: reverses of the same card, invoice, amount and currency.
    related_reverses: Option<Vec<i64>>,
}

#[derive(Debug, serde::Deserialize)]
struct StoredCandidate {
    id: i64,
    status: Option<String>,
    kind: Option<String>,
    created_at: DateTime<Utc>,
}

struct Outcome {
    posted: Posted,
    related_reverses: Vec<u64>,
    /// The amount and currency of the active entry this posting reversed, when they
    /// differ from the row's.
    replaced_amount: Option<(i64, String)>,
}

/// One round trip reads (and locks) the row with everything posting needs; then at
/// most two statements append the correction and the new entry.
///
/// Originals are matched on an equal invoice number (SQL `=`, so a transaction with no
/// invoice number is nobody's original): that keeps the lookup on the
/// `card_transactions_invoice` index instead of reading all of an account's rows.
async fn post_one(
    db: &mut PgConnection,
    account_id: &str,
    transaction_id: u64,
) -> Result<Option<Outcome>, sqlx::Error> {
    let sql = concat!(
        "WITH tx AS (
             SELECT reconciliation_status, status, type, amount_minor, currency::text AS currency,
                    card_batch_id, created_at, invoice_number, card_token
             FROM card_transactions WHERE account_id = $1 AND transaction_id = $2
             FOR UPDATE)
         SELECT tx.*, ",
        active_entries_json!(),
        " AND e.account_id = $1 AND e.transaction_id = $2) AS active,
                CASE WHEN tx.type = 'reverse' THEN
                    (SELECT json_agg(json_build_object('id', o.transaction_id, 'status', o.status,
                                                       'kind', o.type, 'created_at', o.created_at))
                     FROM card_transactions o
                     WHERE o.account_id = $1 AND o.transaction_id <> $2
                       AND o.card_token IS NOT DISTINCT FROM tx.card_token
                       AND o.invoice_number = tx.invoice_number
                       AND o.amount_minor = tx.amount_minor AND o.currency = tx.currency
                       AND o.created_at <= tx.created_at)
                END AS candidates,
                CASE WHEN tx.type <> 'reverse' THEN
                    ARRAY(SELECT o.transaction_id FROM card_transactions o
                          WHERE o.account_id = $1 AND o.transaction_id <> $2 AND o.type = 'reverse'
                            AND o.card_token IS NOT DISTINCT FROM tx.card_token
                            AND o.invoice_number = tx.invoice_number
                            AND o.amount_minor = tx.amount_minor AND o.currency = tx.currency)
                END AS related_reverses
         FROM tx"
    );
    let Some(row): Option<Row> = sqlx::query_as(sql)
        .bind(account_id)
        .bind(transaction_id as i64)
        .fetch_optional(&mut *db)
        .await?
    else {
        return Ok(None);
    };
    // Announced, never fetched: the journal has no facts yet (and a fetched row never
    // returns to pending, so nothing posted is undone here).
    let (Some(amount_minor), Some(currency), Some(created_at)) =
        (row.amount_minor, row.currency.as_deref(), row.created_at)
    else {
        return Ok(None);
    };
    if row.reconciliation_status == "pending" {
        return Ok(None);
    }
    let status = row.status.as_deref().unwrap_or_default();
    let kind = row.kind.as_deref().unwrap_or_default();
    let candidates = match &row.candidates {
        Some(json) => serde_json::from_value::<Vec<StoredCandidate>>(json.clone())
            .map_err(|e| sqlx::Error::Decode(format!("reverse candidates: {e}").into()))?,
        None => Vec::new(),
    };
    let reverses_refund = kind == "reverse" && {
        let card_token = row.card_token.as_deref().unwrap_or_default();
        let invoice_number = row.invoice_number.as_deref().unwrap_or_default();
        let others: Vec<Candidate<'_>> = candidates
            .iter()
            .map(|c| Candidate {
                id: c.id as u64,
                status: c.status.as_deref().unwrap_or_default(),
                kind: c.kind.as_deref().unwrap_or_default(),
                amount_minor,
                currency,
                invoice_number,
                card_token,
                created: c.created_at.timestamp_micros(),
            })
            .collect();
        let reverse = Candidate {
            id: transaction_id,
            status,
            kind,
            amount_minor,
            currency,
            invoice_number,
            card_token,
            created: created_at.timestamp_micros(),
        };
        reverses_refund(&reverse, &others)
    };
    let movement = Movement::of(&TransactionFacts {
        status,
        kind,
        reverses_refund,
    });
    let desired = transaction_entry(movement, amount_minor, currency);
    let active = store::parse_active(row.active)?;
    let card_batch_id = row.card_batch_id.map(|b| b as u64);
    let target = Target {
        account_id,
        transaction_id: Some(transaction_id),
        card_batch_id,
        effective_at: created_at,
        memo: memo::transaction(movement, kind, transaction_id, amount_minor, currency),
        why: memo::transaction_now(
            transaction_id,
            movement,
            status,
            kind,
            amount_minor,
            currency,
            card_batch_id,
        ),
    };
    let posted = store::bring_in_line(db, &active, desired, &target).await?;
    let reversible = is_reversible_kind(kind);
    let replaced_amount = if reversible && posted.corrections > 0 {
        replaced(&active, amount_minor, currency)
    } else {
        None
    };
    let related_reverses = if reversible {
        row.related_reverses
            .unwrap_or_default()
            .into_iter()
            .map(|id| id as u64)
            .collect()
    } else {
        Vec::new()
    };
    Ok(Some(Outcome {
        posted,
        related_reverses,
        replaced_amount,
    }))
}

/// The amount and currency of a reversed entry, when they differ from the row's now.
fn replaced(active: &[ActiveEntry], amount_minor: i64, currency: &str) -> Option<(i64, String)> {
    active.iter().find_map(|entry| {
        let is_transaction_entry = entry
            .kind()
            .is_ok_and(|k| !matches!(k, EntryKind::Correction | EntryKind::Settlement));
        entry_amount(&entry.lines)
            .filter(|&(old, old_currency)| {
                is_transaction_entry && (old != amount_minor.abs() || old_currency != currency)
            })
            .map(|(old, old_currency)| (old, old_currency.to_string()))
    })
}

/// Reverses of the same card and invoice as the transaction, for this amount and
/// currency (the ones an older version of it may have been the original of).
async fn related_reverses(
    db: &mut PgConnection,
    account_id: &str,
    transaction_id: u64,
    amount_minor: i64,
    currency: &str,
) -> Result<Vec<u64>, sqlx::Error> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT o.transaction_id FROM card_transactions tx
         JOIN card_transactions o ON o.account_id = tx.account_id
             AND o.transaction_id <> tx.transaction_id AND o.type = 'reverse'
             AND o.card_token IS NOT DISTINCT FROM tx.card_token
             AND o.invoice_number = tx.invoice_number
             AND o.amount_minor = $3 AND o.currency = $4
         WHERE tx.account_id = $1 AND tx.transaction_id = $2",
    )
    .bind(account_id)
    .bind(transaction_id as i64)
    .bind(amount_minor)
    .bind(currency)
    .fetch_all(db)
    .await?;
    Ok(ids.into_iter().map(|id| id as u64).collect())
}
