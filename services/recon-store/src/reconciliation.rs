//! Reconciliation in Postgres: the journal ([`journal`]), exceptions
//! ([`exceptions`]), settlement verdicts ([`settlement`]), and the hook every path
//! that records a card transaction calls inside its database transaction
//! ([`after_transaction_recorded`]), so the webhook path, sweeps and backfills post and
//! flag the same way.

pub mod exceptions;
pub mod journal;
pub mod settlement;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// How a transaction reached the ledger this time (stored in
/// `card_transactions.discovered_by` when it is new).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A webhook announced it and the worker fetched it.
    Webhook,
    /// A scheduled sweep listed it.
    Sweep,
    /// `reconctl backfill` listed it.
    Backfill,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Webhook => "webhook",
            Origin::Sweep => "sweep",
            Origin::Backfill => "backfill",
        }
    }
}

/// A transaction row as it stood before a write (read `FOR UPDATE`, so nothing else
/// changes it until the write commits).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredFacts {
    /// `pending`: announced by a webhook, no API answer stored yet (the fields below
    /// are null).
    pub reconciliation_status: String,
    pub status: Option<String>,
    #[sqlx(rename = "type")]
    pub kind: Option<String>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub card_batch_id: Option<i64>,
    pub fetched_at: Option<DateTime<Utc>>,
    pub discovered_by: String,
}

impl StoredFacts {
    /// Announced but never fetched: nothing to compare a new answer with.
    pub fn is_pending(&self) -> bool {
        self.reconciliation_status == "pending"
    }
}

/// The row before a write, locked until the write commits; `None` when the ledger has
/// never heard of the transaction.
pub async fn previous_facts(
    db: &mut PgConnection,
    account_id: &str,
    transaction_id: u64,
) -> Result<Option<StoredFacts>, sqlx::Error> {
    sqlx::query_as(
        "SELECT reconciliation_status, status, type, amount_minor, currency::text AS currency,
                card_batch_id, fetched_at, discovered_by
         FROM card_transactions WHERE account_id = $1 AND transaction_id = $2
         FOR UPDATE",
    )
    .bind(account_id)
    .bind(transaction_id as i64)
    .fetch_optional(db)
    .await
}

/// What recording a transaction led to, for counters and sweep reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AfterRecord {
    /// Journal entries posted (corrections included).
    pub entries_posted: u32,
    /// Of them, corrections (reversals of an earlier entry).
    pub corrections: u32,
    /// Exceptions raised or reopened.
    pub exceptions_raised: u32,
}

/// Called after a card transaction's row was written (or found newer and left alone),
/// in the same database transaction: posts what the journal now needs for it and
/// raises what it shows. `previous` is the row as it stood before the write.
pub async fn after_transaction_recorded(
    db: &mut PgConnection,
    account_id: &str,
    transaction_id: u64,
    previous: Option<&StoredFacts>,
    origin: Origin,
) -> Result<AfterRecord, sqlx::Error> {
    let mut after = AfterRecord::default();
    let raised =
        exceptions::on_transaction_recorded(db, account_id, transaction_id, previous, origin)
            .await?;
    after.exceptions_raised += raised;
    let posted = journal::post_transaction(db, account_id, transaction_id).await?;
    after.entries_posted += posted.entries;
    after.corrections += posted.corrections;
    Ok(after)
}
