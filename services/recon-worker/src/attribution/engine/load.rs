//! What the engine reads: dirty marks, ledger rows, evidence and earlier matches.
//! Every read runs inside the batch's database transaction.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use recon_attribution::Kind;
use recon_attribution::classify::{TokenEvidence, is_approved_payment};
use recon_attribution::matching::{EvidenceKey, LedgerKey, Method};
use sqlx::PgConnection;

/// One `attribution_dirty` row, taken (deleted) by this batch.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Dirty {
    pub account_id: Option<String>,
    pub transaction_id: Option<i64>,
    pub evidence_id: Option<i64>,
    pub marked_at: DateTime<Utc>,
}

/// Takes up to `limit` dirty rows that no other replica holds. The rows are deleted
/// in the caller's transaction: if it fails or the process dies, they come back.
pub async fn take_dirty(conn: &mut PgConnection, limit: i64) -> Result<Vec<Dirty>, sqlx::Error> {
    sqlx::query_as(
        "DELETE FROM attribution_dirty WHERE id IN (
             SELECT id FROM attribution_dirty ORDER BY id
              FOR UPDATE SKIP LOCKED LIMIT $1)
         RETURNING account_id, transaction_id, evidence_id, marked_at",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// A stored ledger transaction (never a `pending` one: nothing is known of it yet).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LedgerRow {
    pub account_id: String,
    pub transaction_id: i64,
    pub created_at: Option<DateTime<Utc>>,
    pub status: Option<String>,
    #[sqlx(rename = "type")]
    pub kind: Option<String>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub invoice_number: Option<String>,
}

/// A ledger row with every column the rules need.
#[derive(Debug, Clone)]
pub struct Stored {
    pub key: LedgerKey,
    pub kind: Kind,
}

impl LedgerRow {
    /// None when a column the rules need is missing (a row the worker stored
    /// without them is not one attribution can judge; it says so in the log).
    pub fn stored(&self) -> Option<Stored> {
        Some(Stored {
            key: LedgerKey {
                account_id: self.account_id.clone(),
                transaction_id: self.transaction_id,
                invoice_number: self.invoice_number.clone(),
                amount_minor: self.amount_minor?,
                currency: self.currency.clone()?.trim().to_string(),
                created_at: self.created_at?,
            },
            kind: Kind::of(self.kind.as_deref()?, self.status.as_deref()?),
        })
    }
}

const LEDGER_COLUMNS: &str = "SELECT account_id, transaction_id, created_at, status, type,
        amount_minor, currency, invoice_number
   FROM card_transactions";

/// Stored ledger rows by (account, transaction id).
pub async fn ledger_by_id(
    conn: &mut PgConnection,
    keys: &[(String, i64)],
) -> Result<Vec<LedgerRow>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let (accounts, ids): (Vec<String>, Vec<i64>) = keys.iter().cloned().unzip();
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{LEDGER_COLUMNS}
          WHERE (account_id, transaction_id) IN (SELECT * FROM unnest($1::text[], $2::bigint[]))
            AND reconciliation_status <> 'pending'"
    )))
    .bind(accounts)
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// Stored ledger rows by (account, invoice number): the candidates of invoice matching.
pub async fn ledger_by_invoice(
    conn: &mut PgConnection,
    keys: &[(String, String)],
) -> Result<Vec<LedgerRow>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let (accounts, invoices): (Vec<String>, Vec<String>) = keys.iter().cloned().unzip();
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{LEDGER_COLUMNS}
          WHERE (account_id, invoice_number) IN (SELECT * FROM unnest($1::text[], $2::text[]))
            AND reconciliation_status <> 'pending'"
    )))
    .bind(accounts)
    .bind(invoices)
    .fetch_all(conn)
    .await
}

/// One piece of evidence, as the rules need it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EvidenceRow {
    pub id: i64,
    pub source: String,
    pub account_id: Option<String>,
    pub api_token_lookup: Option<String>,
    pub endpoint: String,
    pub outcome: String,
    pub response_status: Option<i16>,
    pub transaction_id: Option<i64>,
    pub invoice_number: Option<String>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub observed_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
}

impl EvidenceRow {
    pub fn key(&self) -> EvidenceKey {
        EvidenceKey {
            id: self.id,
            account_id: self.account_id.clone(),
            transaction_id: self.transaction_id,
            invoice_number: self.invoice_number.clone(),
            amount_minor: self.amount_minor,
            currency: self.currency.as_ref().map(|c| c.trim().to_string()),
            observed_at: self.observed_at,
        }
    }

    pub fn approved_payment(&self) -> bool {
        is_approved_payment(
            &self.source,
            &self.outcome,
            self.response_status,
            &self.endpoint,
        )
    }

    /// Evidence matched on its invoice (no transaction id): its group is every
    /// transaction of the account with that invoice.
    pub fn invoice_key(&self) -> Option<(String, String)> {
        match (&self.account_id, self.transaction_id, &self.invoice_number) {
            (Some(account), None, Some(invoice)) => Some((account.clone(), invoice.clone())),
            _ => None,
        }
    }
}

const EVIDENCE_COLUMNS: &str = "SELECT id, source, account_id, api_token_lookup, endpoint,
        outcome, response_status, transaction_id, invoice_number, amount_minor, currency,
        observed_at, recorded_at
   FROM attribution_evidence";

pub async fn evidence_by_id(
    conn: &mut PgConnection,
    ids: &[i64],
) -> Result<Vec<EvidenceRow>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{EVIDENCE_COLUMNS} WHERE id = ANY($1)"
    )))
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// Evidence that claims one of these (account, transaction id) pairs.
pub async fn evidence_claiming(
    conn: &mut PgConnection,
    keys: &[(String, i64)],
) -> Result<Vec<EvidenceRow>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let (accounts, ids): (Vec<String>, Vec<i64>) = keys.iter().cloned().unzip();
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{EVIDENCE_COLUMNS}
          WHERE (account_id, transaction_id) IN (SELECT * FROM unnest($1::text[], $2::bigint[]))"
    )))
    .bind(accounts)
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// Evidence without a transaction id that names one of these (account, invoice) pairs.
pub async fn evidence_by_invoice(
    conn: &mut PgConnection,
    keys: &[(String, String)],
) -> Result<Vec<EvidenceRow>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let (accounts, invoices): (Vec<String>, Vec<String>) = keys.iter().cloned().unzip();
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{EVIDENCE_COLUMNS}
          WHERE transaction_id IS NULL
            AND (account_id, invoice_number) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
    )))
    .bind(accounts)
    .bind(invoices)
    .fetch_all(conn)
    .await
}

/// Evidence whose stored match names one of these transactions: matched to it, or
/// ambiguous with it among the candidates.
pub async fn evidence_matched_to(
    conn: &mut PgConnection,
    keys: &[(String, i64)],
) -> Result<Vec<i64>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let (accounts, ids) = unzip_keys(keys);
    sqlx::query_scalar(
        "SELECT m.evidence_id FROM attribution_matches m
          WHERE m.state = 'matched'
            AND (m.account_id, m.transaction_id) IN (SELECT * FROM unnest($1::text[], $2::bigint[]))
         UNION
         SELECT m.evidence_id FROM attribution_matches m
           JOIN unnest($1::text[], $2::bigint[]) AS k(account_id, transaction_id)
             ON m.account_id = k.account_id AND k.transaction_id = ANY(m.candidates)
          WHERE m.state = 'ambiguous'",
    )
    .bind(accounts)
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// The transactions these pieces of evidence were matched to before this batch (so a
/// transaction that loses its evidence is judged again).
pub async fn previous_matches(
    conn: &mut PgConnection,
    evidence_ids: &[i64],
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT account_id, transaction_id FROM attribution_matches
          WHERE evidence_id = ANY($1) AND state = 'matched'",
    )
    .bind(evidence_ids)
    .fetch_all(conn)
    .await
}

fn unzip_keys(keys: &[(String, i64)]) -> (Vec<String>, Vec<i64>) {
    keys.iter().cloned().unzip()
}

/// When each of these transactions was first seen stored (those judged before).
pub async fn first_seen(
    conn: &mut PgConnection,
    keys: &[(String, i64)],
) -> Result<BTreeMap<(String, i64), DateTime<Utc>>, sqlx::Error> {
    let (accounts, ids) = unzip_keys(keys);
    let rows: Vec<(String, i64, DateTime<Utc>)> = sqlx::query_as(
        "SELECT account_id, transaction_id, stored_at FROM attribution_transactions
          WHERE (account_id, transaction_id) IN (SELECT * FROM unnest($1::text[], $2::bigint[]))",
    )
    .bind(accounts)
    .bind(ids)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(a, t, at)| ((a, t), at)).collect())
}

/// The earliest waiting mark of a transaction: when it was stored, for one reached
/// through its evidence while its own mark sits in another batch.
pub async fn earliest_mark(
    conn: &mut PgConnection,
    key: &(String, i64),
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT min(marked_at) FROM attribution_dirty WHERE account_id = $1 AND transaction_id = $2",
    )
    .bind(&key.0)
    .bind(key.1)
    .fetch_one(conn)
    .await
}

/// Which of these transactions already have a gap (of any status).
pub async fn transactions_with_gaps(
    conn: &mut PgConnection,
    keys: &[(String, i64)],
) -> Result<BTreeSet<(String, i64)>, sqlx::Error> {
    let (accounts, ids) = unzip_keys(keys);
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT account_id, transaction_id FROM attribution_gaps
          WHERE class <> 'orphan_evidence'
            AND (account_id, transaction_id) IN (SELECT * FROM unnest($1::text[], $2::bigint[]))",
    )
    .bind(accounts)
    .bind(ids)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Which of these pieces of evidence already have an orphan gap.
pub async fn orphan_gaps(
    conn: &mut PgConnection,
    evidence_ids: &[i64],
) -> Result<BTreeSet<i64>, sqlx::Error> {
    let rows: Vec<i64> = sqlx::query_scalar(
        "SELECT evidence_id FROM attribution_gaps
          WHERE class = 'orphan_evidence' AND evidence_id = ANY($1)",
    )
    .bind(evidence_ids)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// account, transaction, evidence id, is-valid-partner-token, sent, added, method.
type MatchedColumns = (String, i64, i64, Option<i16>, bool, bool, String);

/// The evidence matched to each of these transactions, as stored (this batch's
/// matches included), with how each was matched.
pub async fn matched_evidence(
    conn: &mut PgConnection,
    keys: &[(String, i64)],
) -> Result<BTreeMap<(String, i64), Vec<(TokenEvidence, Method)>>, sqlx::Error> {
    let (accounts, ids) = unzip_keys(keys);
    let rows: Vec<MatchedColumns> = sqlx::query_as(
        "SELECT m.account_id, m.transaction_id, e.id, e.is_valid_partner_token,
                e.partner_token_sent, e.partner_token_added, m.method
           FROM attribution_matches m JOIN attribution_evidence e ON e.id = m.evidence_id
          WHERE m.state = 'matched'
            AND (m.account_id, m.transaction_id) IN (SELECT * FROM unnest($1::text[], $2::bigint[]))",
    )
    .bind(accounts)
    .bind(ids)
    .fetch_all(conn)
    .await?;
    let mut out: BTreeMap<(String, i64), Vec<(TokenEvidence, Method)>> = BTreeMap::new();
    for (account, tx, id, valid, sent, added, method) in rows {
        out.entry((account, tx)).or_default().push((
            TokenEvidence {
                id,
                is_valid_partner_token: valid,
                partner_token_sent: sent,
                partner_token_added: added,
            },
            Method::parse(&method).unwrap_or(Method::TransactionId),
        ));
    }
    Ok(out)
}
