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
