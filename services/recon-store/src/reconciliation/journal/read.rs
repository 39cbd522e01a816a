//! Reading the journal: balances (as the journal knew them at a time), entries with
//! their lines, and a batch's card clearing.

use chrono::{DateTime, Utc};
use recon_reconcile::journal::{EntryKind, JournalAccount, Line};
use serde::Serialize;

/// One account of the chart in one currency: signed minor units (debit positive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Balance {
    pub account: JournalAccount,
    pub currency: String,
    pub balance_minor: i64,
}

/// An entry with its lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub id: i64,
    pub kind: EntryKind,
    pub transaction_id: Option<u64>,
    pub card_batch_id: Option<u64>,
    /// For a correction: the entry it reverses.
    pub reverses_entry_id: Option<i64>,
    pub effective_at: DateTime<Utc>,
    pub posted_at: DateTime<Utc>,
    pub memo: String,
    pub lines: Vec<Line>,
}

fn account(code: &str) -> Result<JournalAccount, sqlx::Error> {
    JournalAccount::parse(code)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown journal account {code:?}").into()))
}

/// The account's balances per journal account and currency, from the entries posted
/// at or before `at` (all of them when `None`): what the journal said then, since
/// nothing posted is ever changed. Accounts with lines that net to zero are listed
/// with zero; chart order, then currency.
pub async fn balances(
    db: impl sqlx::PgExecutor<'_>,
    account_id: &str,
    at: Option<DateTime<Utc>>,
) -> Result<Vec<Balance>, sqlx::Error> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT l.ledger_account, l.currency::text, sum(l.amount_minor)::bigint
         FROM journal_entries e JOIN journal_lines l ON l.entry_id = e.id
         WHERE e.account_id = $1 AND ($2::timestamptz IS NULL OR e.posted_at <= $2)
         GROUP BY l.ledger_account, l.currency",
    )
    .bind(account_id)
    .bind(at)
    .fetch_all(db)
    .await?;
    let mut balances = rows
        .into_iter()
        .map(|(code, currency, balance_minor)| {
            Ok(Balance {
                account: account(&code)?,
                currency,
                balance_minor,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    balances.sort_by(|a, b| (a.account, &a.currency).cmp(&(b.account, &b.currency)));
    Ok(balances)
}

/// The account's entries with ids above `after_id` (from the first when `None`),
/// oldest first, at most `limit`.
pub async fn entries(
    db: impl sqlx::PgExecutor<'_>,
    account_id: &str,
    after_id: Option<i64>,
    limit: u32,
) -> Result<Vec<Entry>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: i64,
        kind: String,
        transaction_id: Option<i64>,
        card_batch_id: Option<i64>,
        reverses_entry_id: Option<i64>,
        effective_at: DateTime<Utc>,
        posted_at: DateTime<Utc>,
        memo: String,
        accounts: Vec<String>,
        currencies: Vec<String>,
        amounts: Vec<i64>,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT e.id, e.kind, e.transaction_id, e.card_batch_id, e.reverses_entry_id,
                e.effective_at, e.posted_at, e.memo,
                ARRAY(SELECT l.ledger_account FROM journal_lines l WHERE l.entry_id = e.id
                      ORDER BY l.line_no) AS accounts,
                ARRAY(SELECT l.currency::text FROM journal_lines l WHERE l.entry_id = e.id
                      ORDER BY l.line_no) AS currencies,
                ARRAY(SELECT l.amount_minor FROM journal_lines l WHERE l.entry_id = e.id
                      ORDER BY l.line_no) AS amounts
         FROM journal_entries e
         WHERE e.account_id = $1 AND e.id > $2
         ORDER BY e.id
         LIMIT $3",
    )
    .bind(account_id)
    .bind(after_id.unwrap_or(0))
    .bind(i64::from(limit))
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|row| {
            let lines = row
                .accounts
                .iter()
                .zip(&row.currencies)
                .zip(&row.amounts)
                .map(|((code, currency), &amount_minor)| {
                    Ok(Line::new(account(code)?, currency, amount_minor))
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            Ok(Entry {
                id: row.id,
                kind: EntryKind::parse(&row.kind).ok_or_else(|| {
                    sqlx::Error::Decode(format!("unknown journal entry kind {:?}", row.kind).into())
                })?,
                transaction_id: row.transaction_id.map(|t| t as u64),
                card_batch_id: row.card_batch_id.map(|b| b as u64),
                reverses_entry_id: row.reverses_entry_id,
                effective_at: row.effective_at,
                posted_at: row.posted_at,
                memo: row.memo,
                lines,
            })
        })
        .collect()
}

/// The card clearing of one batch per currency: its transactions' entries, their
/// corrections and its settlement. Zero once a balanced batch has settled; for a
/// mismatched one, the difference Helcim's net leaves unexplained by the ledger.
pub async fn batch_clearing(
    db: impl sqlx::PgExecutor<'_>,
    account_id: &str,
    card_batch_id: u64,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT l.currency::text, sum(l.amount_minor)::bigint
         FROM journal_entries e JOIN journal_lines l ON l.entry_id = e.id
         WHERE e.account_id = $1 AND e.card_batch_id = $2 AND l.ledger_account = 'card_clearing'
         GROUP BY l.currency ORDER BY l.currency",
    )
    .bind(account_id)
    .bind(card_batch_id as i64)
    .fetch_all(db)
    .await
}
