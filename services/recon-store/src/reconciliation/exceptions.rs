//! Exceptions in Postgres: raising one per cause (by its dedupe key), the workflow
//! (acknowledge, resolve, clear, reopen) with its audit trail, and listing.
//!
//! - the system raises ([`raise`]), clears ([`clear`], [`clear_matching`]) and reopens
//!   (a cleared exception whose key is raised again); [`on_transaction_recorded`] is
//!   what recording a transaction raises;
//! - a person acknowledges and resolves ([`acknowledge`], [`resolve`]); a person's
//!   resolution is final: raising the same key again changes nothing;
//! - [`get`] and [`list`] read them.
//!
//! Every status change goes through `recon_reconcile::exceptions::next_status` and
//! writes its event to `reconciliation_exception_events` (append-only) in the same
//! database transaction.

mod actions;
mod causes;
mod read;
mod recorded;
mod workflow;

use recon_reconcile::ExceptionAction;
use sqlx::PgConnection;

pub use actions::{ActionError, acknowledge, resolve};
pub use causes::{DUPLICATE_WINDOW_SECONDS, LATE_WEBHOOK_NOTE};
pub use read::{
    DEFAULT_LIMIT, Exception, ExceptionEvent, ExceptionFilter, MAX_LIMIT, Page, Resolution, get,
    list,
};
pub use recon_reconcile::{ExceptionClass, ExceptionStatus};
pub use recorded::{on_transaction_recorded, on_transaction_recorded_within};
pub use workflow::SYSTEM_ACTOR;

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
/// new or reopened. An open or acknowledged one, or one a person resolved, is left
/// as it is.
pub async fn raise(db: &mut PgConnection, exception: &NewException) -> Result<bool, sqlx::Error> {
    // Insert first: two recorders raising the same new cause at once meet on the
    // unique key, and the second waits for the first, then finds its row below.
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO reconciliation_exceptions
             (account_id, class, transaction_id, card_batch_id, dedupe_key, summary, evidence,
              amount_minor, currency)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (account_id, dedupe_key) DO NOTHING
         RETURNING id",
    )
    .bind(&exception.account_id)
    .bind(exception.class.as_str())
    .bind(exception.transaction_id.map(|id| id as i64))
    .bind(exception.card_batch_id.map(|id| id as i64))
    .bind(&exception.dedupe_key)
    .bind(&exception.summary)
    .bind(&exception.evidence)
    .bind(exception.amount_minor)
    .bind(exception.currency.as_deref())
    .fetch_optional(&mut *db)
    .await?;
    if let Some(id) = inserted {
        workflow::record_event(
            db,
            id,
            SYSTEM_ACTOR,
            "raised",
            None,
            ExceptionStatus::Open,
            None,
        )
        .await?;
        return Ok(true);
    }
    let Some(locked) =
        workflow::lock_by_key(db, &exception.account_id, &exception.dedupe_key).await?
    else {
        return Ok(false);
    };
    let reopened =
        workflow::apply(db, &locked, ExceptionAction::Reopen, SYSTEM_ACTOR, None).await?;
    if reopened.is_err() {
        return Ok(false);
    }
    // What is seen now, for the person who looks at the reopened exception.
    sqlx::query(
        "UPDATE reconciliation_exceptions
            SET summary = $2, evidence = $3, amount_minor = $4, currency = $5
          WHERE id = $1",
    )
    .bind(locked.id)
    .bind(&exception.summary)
    .bind(&exception.evidence)
    .bind(exception.amount_minor)
    .bind(exception.currency.as_deref())
    .execute(&mut *db)
    .await?;
    Ok(true)
}

/// Clears (resolves as `cleared`, actor `system`) the unresolved exception with this
/// key, noting why; true when one was cleared.
pub async fn clear(
    db: &mut PgConnection,
    account_id: &str,
    dedupe_key: &str,
    why: &str,
) -> Result<bool, sqlx::Error> {
    let Some(locked) = workflow::lock_by_key(db, account_id, dedupe_key).await? else {
        return Ok(false);
    };
    let cleared =
        workflow::apply(db, &locked, ExceptionAction::Clear, SYSTEM_ACTOR, Some(why)).await?;
    Ok(cleared.is_ok())
}

/// Clears every unresolved exception of the account whose key starts with
/// `key_prefix`, except the one keyed `keep` (the cause as it stands now), noting why;
/// returns how many were cleared. E.g. prefix `batch_mismatch:batch:42:` with `keep`
/// the batch's current key clears the mismatches of differences that no longer hold.
pub async fn clear_matching(
    db: &mut PgConnection,
    account_id: &str,
    key_prefix: &str,
    keep: Option<&str>,
    why: &str,
) -> Result<u32, sqlx::Error> {
    // `starts_with`, not LIKE: keys hold `_`, a LIKE wildcard.
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM reconciliation_exceptions
          WHERE account_id = $1 AND status <> 'resolved' AND starts_with(dedupe_key, $2)
            AND dedupe_key IS DISTINCT FROM $3
          ORDER BY id",
    )
    .bind(account_id)
    .bind(key_prefix)
    .bind(keep)
    .fetch_all(&mut *db)
    .await?;
    let mut cleared = 0;
    for id in ids {
        // Locked one by one, then checked again: another clear may have won meanwhile.
        let Some(locked) = workflow::lock_by_id(db, id).await? else {
            continue;
        };
        if workflow::apply(db, &locked, ExceptionAction::Clear, SYSTEM_ACTOR, Some(why))
            .await?
            .is_ok()
        {
            cleared += 1;
        }
    }
    Ok(cleared)
}
