//! The journal in Postgres: posting a transaction's entry (and its corrections), a
//! batch's settlement, and reading balances. The rules are `recon_reconcile::journal`;
//! the database enforces balance and immutability on its own.

use sqlx::PgConnection;

/// What a posting wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Posted {
    pub entries: u32,
    pub corrections: u32,
}

/// Brings the transaction's journal entry in line with its stored row: nothing when
/// the active entry already says the same, otherwise the reversal of the active entry
/// and the entry that is right now. Callers hold the row's lock (they just wrote it).
pub async fn post_transaction(
    _db: &mut PgConnection,
    _account_id: &str,
    _transaction_id: u64,
) -> Result<Posted, sqlx::Error> {
    // FOUNDATION STUB: the journal helper implements this.
    Ok(Posted::default())
}

/// Brings a closed batch's settlement entry in line with `net_minor` (the net Helcim
/// reports for it): nothing when the active settlement entry already says it;
/// otherwise its reversal and the new one. A zero net posts nothing. Returns what was
/// written; the caller holds the batch's `batch_settlements` row lock.
pub async fn post_settlement(
    _db: &mut PgConnection,
    _account_id: &str,
    _card_batch_id: u64,
    _currency: &str,
    _net_minor: i64,
    _closed_at: chrono::DateTime<chrono::Utc>,
) -> Result<Posted, sqlx::Error> {
    // FOUNDATION STUB: the journal helper implements this.
    Ok(Posted::default())
}
