//! Exceptions in Postgres: raising one per cause (by its dedupe key), the workflow
//! (acknowledge, resolve, clear, reopen) with its audit trail, and listing.

use sqlx::PgConnection;

use super::{Origin, StoredFacts};

/// Raises what recording a transaction shows: a changed amount, status, type, batch or
/// currency against `previous`; a currency that differs from its batch's; a status or
/// type this version does not know; a duplicate suspect. Returns how many were raised.
pub async fn on_transaction_recorded(
    _db: &mut PgConnection,
    _account_id: &str,
    _transaction_id: u64,
    _previous: Option<&StoredFacts>,
    _origin: Origin,
) -> Result<u32, sqlx::Error> {
    // FOUNDATION STUB: the exceptions helper implements this.
    Ok(0)
}

/// An exception to raise. `dedupe_key` names the cause (see docs/reconciliation.md
/// for the conventions): raising the same key again changes nothing, unless the
/// system had cleared it, which reopens it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewException {
    pub account_id: String,
    pub class: recon_reconcile::ExceptionClass,
    pub transaction_id: Option<u64>,
    pub card_batch_id: Option<u64>,
    pub dedupe_key: String,
    /// One line a person reads, e.g. "amount changed at Helcim from 12.00 CAD to 15.00 CAD".
    pub summary: String,
    /// What was seen: ids, amounts, Helcim's answers (never tokens or card data beyond
    /// what the ledger stores).
    pub evidence: serde_json::Value,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
}

/// Raises (or reopens, when the system had cleared it) an exception; true when it is
/// new or reopened.
pub async fn raise(_db: &mut PgConnection, _exception: &NewException) -> Result<bool, sqlx::Error> {
    // FOUNDATION STUB: the exceptions helper implements this.
    Ok(false)
}

/// Clears (resolves as `cleared`, actor `system`) the unresolved exception with this
/// key, noting why; true when one was cleared.
pub async fn clear(
    _db: &mut PgConnection,
    _account_id: &str,
    _dedupe_key: &str,
    _why: &str,
) -> Result<bool, sqlx::Error> {
    // FOUNDATION STUB: the exceptions helper implements this.
    Ok(false)
}
