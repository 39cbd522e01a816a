//! Settlement verdicts in Postgres (`batch_settlements`), and the ledger's side of a
//! batch as the verdict reads it. The rules are `recon_reconcile::settlement`; posting
//! the settlement entry is the journal's ([`super::journal::post_settlement`]).

use chrono::{DateTime, Utc};
use recon_reconcile::Movement;
use recon_reconcile::movement::{Candidate, TransactionFacts, reverses_refund};
use recon_reconcile::settlement::{BatchTransaction, Totals, Verdict};
use sqlx::{PgConnection, Row};

/// One batch's verdict, as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Settlement {
    pub account_id: String,
    pub card_batch_id: i64,
    /// `open`, `balanced` or `mismatch`.
    pub verdict: String,
    pub currency: Option<String>,
    pub ledger_count: i64,
    pub ledger_net_minor: i64,
    pub helcim_count: Option<i64>,
    pub helcim_net_minor: Option<i64>,
    pub difference_minor: i64,
    pub bridge: serde_json::Value,
    pub closed_at: Option<DateTime<Utc>>,
    pub transactions_listed_at: Option<DateTime<Utc>>,
    pub verified_at: DateTime<Utc>,
}

/// A verdict to store.
#[derive(Debug, Clone)]
pub struct NewSettlement<'a> {
    pub account_id: &'a str,
    pub card_batch_id: u64,
    pub verdict: &'a Verdict,
    pub currency: Option<&'a str>,
    pub ledger: &'a Totals,
    /// Helcim's stats; `None` while the batch is open.
    pub helcim: Option<&'a Totals>,
    pub closed_at: Option<DateTime<Utc>>,
    /// When Helcim's transactions of the closed batch were listed by `cardBatchId`.
    pub transactions_listed_at: Option<DateTime<Utc>>,
}

/// Stores a verdict; returns whether a row was written. A closed batch's verdict is
/// always written (its `verified_at` says when it was last checked) and locks the row
/// until the caller commits. An `open` verdict never replaces a closed batch's, and is
/// written only when the ledger's totals changed, so re-checking an unchanged open
/// batch writes nothing.
pub async fn store(db: &mut PgConnection, new: &NewSettlement<'_>) -> Result<bool, sqlx::Error> {
    let (difference, bridge) = match new.verdict {
        Verdict::Mismatch {
            difference_minor,
            bridge,
        } => (
            *difference_minor,
            serde_json::to_value(bridge).unwrap_or_default(),
        ),
        _ => (0, serde_json::json!([])),
    };
    let is_open = matches!(new.verdict, Verdict::Open);
    let helcim = new.helcim;
    let written: Option<bool> = sqlx::query_scalar(
        "INSERT INTO batch_settlements (account_id, card_batch_id, verdict, currency,
             ledger_count, ledger_sales_minor, ledger_refunds_minor, ledger_reversed_minor,
             ledger_refunds_reversed_minor, ledger_net_minor,
             helcim_count, helcim_sales_minor, helcim_refunds_minor, helcim_reversed_minor,
             helcim_refunds_reversed_minor, helcim_net_minor,
             difference_minor, bridge, closed_at, transactions_listed_at, verified_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                 $18, $19, $20, now())
         ON CONFLICT (account_id, card_batch_id) DO UPDATE SET
             verdict = EXCLUDED.verdict, currency = coalesce(EXCLUDED.currency, batch_settlements.currency),
             ledger_count = EXCLUDED.ledger_count, ledger_sales_minor = EXCLUDED.ledger_sales_minor,
             ledger_refunds_minor = EXCLUDED.ledger_refunds_minor,
             ledger_reversed_minor = EXCLUDED.ledger_reversed_minor,
             ledger_refunds_reversed_minor = EXCLUDED.ledger_refunds_reversed_minor,
             ledger_net_minor = EXCLUDED.ledger_net_minor,
             helcim_count = EXCLUDED.helcim_count, helcim_sales_minor = EXCLUDED.helcim_sales_minor,
             helcim_refunds_minor = EXCLUDED.helcim_refunds_minor,
             helcim_reversed_minor = EXCLUDED.helcim_reversed_minor,
             helcim_refunds_reversed_minor = EXCLUDED.helcim_refunds_reversed_minor,
             helcim_net_minor = EXCLUDED.helcim_net_minor,
             difference_minor = EXCLUDED.difference_minor, bridge = EXCLUDED.bridge,
             closed_at = EXCLUDED.closed_at, transactions_listed_at = EXCLUDED.transactions_listed_at,
             verified_at = now()
         WHERE NOT $21
            OR (batch_settlements.verdict = 'open'
                AND (batch_settlements.ledger_count, batch_settlements.ledger_net_minor,
                     batch_settlements.ledger_sales_minor, batch_settlements.ledger_refunds_minor,
                     batch_settlements.ledger_reversed_minor, batch_settlements.ledger_refunds_reversed_minor,
                     batch_settlements.currency)
                    IS DISTINCT FROM
                    (EXCLUDED.ledger_count, EXCLUDED.ledger_net_minor, EXCLUDED.ledger_sales_minor,
                     EXCLUDED.ledger_refunds_minor, EXCLUDED.ledger_reversed_minor,
                     EXCLUDED.ledger_refunds_reversed_minor, EXCLUDED.currency))
         RETURNING true",
    )
    .bind(new.account_id)
    .bind(new.card_batch_id as i64)
    .bind(new.verdict.as_str())
    .bind(new.currency)
    .bind(new.ledger.count)
    .bind(new.ledger.sales)
    .bind(new.ledger.refunds)
    .bind(new.ledger.sales_reversed)
    .bind(new.ledger.refunds_reversed)
    .bind(new.ledger.net)
    .bind(helcim.map(|t| t.count))
    .bind(helcim.map(|t| t.sales))
    .bind(helcim.map(|t| t.refunds))
    .bind(helcim.map(|t| t.sales_reversed))
    .bind(helcim.map(|t| t.refunds_reversed))
    .bind(helcim.map(|t| t.net))
    .bind(difference)
    .bind(bridge)
    .bind(new.closed_at)
    .bind(new.transactions_listed_at)
    .bind(is_open)
    .fetch_optional(&mut *db)
    .await?;
    Ok(written.is_some())
}

/// The stored verdict of a batch.
pub async fn get(
    db: &mut PgConnection,
    account_id: &str,
    card_batch_id: u64,
) -> Result<Option<Settlement>, sqlx::Error> {
    sqlx::query_as(
        "SELECT account_id, card_batch_id, verdict, currency::text AS currency, ledger_count,
                ledger_net_minor, helcim_count, helcim_net_minor, difference_minor, bridge,
                closed_at, transactions_listed_at, verified_at
           FROM batch_settlements WHERE account_id = $1 AND card_batch_id = $2",
    )
    .bind(account_id)
    .bind(card_batch_id as i64)
    .fetch_optional(db)
    .await
}

/// A ledger transaction as the movement rule reads it.
#[derive(Debug, Clone)]
struct LedgerFacts {
    id: u64,
    status: String,
    kind: String,
    amount_minor: i64,
    currency: String,
    invoice_number: String,
    card_token: String,
    created_micros: i64,
}

impl LedgerFacts {
    fn candidate(&self) -> Candidate<'_> {
        Candidate {
            id: self.id,
            status: &self.status,
            kind: &self.kind,
            amount_minor: self.amount_minor,
            currency: &self.currency,
            invoice_number: &self.invoice_number,
            card_token: &self.card_token,
            created: self.created_micros,
        }
    }
}

/// The columns [`read_rows`] reads (a macro: sqlx takes only literal SQL).
macro_rules! facts {
    () => {
        "transaction_id, coalesce(status, '') AS status, coalesce(type, '') AS type,
         amount_minor, currency::text AS currency, coalesce(invoice_number, '') AS invoice_number,
         coalesce(card_token, '') AS card_token, created_at"
    };
}

fn read_rows(rows: &[sqlx::postgres::PgRow]) -> Result<Vec<LedgerFacts>, sqlx::Error> {
    rows.iter()
        .map(|row| {
            let created: DateTime<Utc> = row.try_get("created_at")?;
            Ok(LedgerFacts {
                id: row.try_get::<i64, _>("transaction_id")? as u64,
                status: row.try_get("status")?,
                kind: row.try_get("type")?,
                amount_minor: row.try_get("amount_minor")?,
                currency: row.try_get("currency")?,
                invoice_number: row.try_get("invoice_number")?,
                card_token: row.try_get("card_token")?,
                created_micros: created.timestamp_micros(),
            })
        })
        .collect()
}

/// The ledger's transactions of a batch with what each does to money, a reverse
/// judged by the journal's rule ([`reverses_refund`]) against the account's other
/// transactions of the same card and invoice, wherever they are.
pub async fn ledger_batch_transactions(
    db: &mut PgConnection,
    account_id: &str,
    card_batch_id: u64,
) -> Result<Vec<BatchTransaction>, sqlx::Error> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        facts!(),
        " FROM card_transactions
          WHERE account_id = $1 AND card_batch_id = $2 AND reconciliation_status <> 'pending'
          ORDER BY transaction_id"
    ))
    .bind(account_id)
    .bind(card_batch_id as i64)
    .fetch_all(&mut *db)
    .await?;
    let batch = read_rows(&rows)?;
    let originals = if batch.iter().any(|t| t.kind == "reverse") {
        let rows = sqlx::query(concat!(
            "SELECT ",
            facts!(),
            " FROM card_transactions o
              WHERE o.account_id = $1 AND o.reconciliation_status <> 'pending'
                AND o.type IN ('purchase', 'capture', 'refund')
                AND (o.card_token, o.invoice_number) IN (
                    SELECT r.card_token, r.invoice_number FROM card_transactions r
                     WHERE r.account_id = $1 AND r.card_batch_id = $2 AND r.type = 'reverse')"
        ))
        .bind(account_id)
        .bind(card_batch_id as i64)
        .fetch_all(&mut *db)
        .await?;
        read_rows(&rows)?
    } else {
        Vec::new()
    };
    let candidates: Vec<Candidate<'_>> = originals.iter().map(LedgerFacts::candidate).collect();
    Ok(batch
        .iter()
        .map(|tx| BatchTransaction {
            transaction_id: tx.id,
            movement: movement(tx, &candidates),
            amount_minor: tx.amount_minor,
        })
        .collect())
}

fn movement(tx: &LedgerFacts, others: &[Candidate<'_>]) -> Movement {
    Movement::of(&TransactionFacts {
        status: &tx.status,
        kind: &tx.kind,
        reverses_refund: tx.kind == "reverse" && reverses_refund(&tx.candidate(), others),
    })
}

/// Helcim's listed transactions of a batch with their movements, a reverse judged
/// against the other listed transactions (a reverse voids one of its own batch).
pub fn listed_batch_transactions(listed: &[Candidate<'_>]) -> Vec<BatchTransaction> {
    listed
        .iter()
        .map(|tx| BatchTransaction {
            transaction_id: tx.id,
            movement: Movement::of(&TransactionFacts {
                status: tx.status,
                kind: tx.kind,
                reverses_refund: tx.kind == "reverse" && reverses_refund(tx, listed),
            }),
            amount_minor: tx.amount_minor,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(id: u64, kind: &'static str, created: i64) -> Candidate<'static> {
        Candidate {
            id,
            status: "APPROVED",
            kind,
            amount_minor: 500,
            currency: "CAD",
            invoice_number: "INV1",
            card_token: "tok",
            created,
        }
    }

    #[test]
    fn a_listed_reverse_of_a_refund_is_a_refund_reversed() {
        let txs = listed_batch_transactions(&[
            listed(1, "purchase", 1),
            listed(2, "refund", 2),
            listed(3, "reverse", 3),
        ]);
        let movements: Vec<_> = txs.iter().map(|t| t.movement).collect();
        assert_eq!(
            movements,
            vec![Movement::Sale, Movement::Refund, Movement::RefundReversed]
        );
        // sale − refund + refund reversed
        assert_eq!(Totals::of(&txs).net, 500);
    }
}
