//! One step of an exception's workflow in the database: the row is locked
//! (`FOR UPDATE`), the step is checked by `recon_reconcile::exceptions::next_status`
//! (the only place the rules live), then the row and its audit event are written
//! together. Every change, by the system or a person, goes through [`apply`].

use recon_reconcile::exceptions::{TransitionError, next_status};
use recon_reconcile::{ExceptionAction, ExceptionStatus};
use sqlx::{PgConnection, Row};

/// Who the system is in the audit trail.
pub const SYSTEM_ACTOR: &str = "system";

/// An exception's workflow state, read under its row lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Locked {
    pub id: i64,
    pub status: ExceptionStatus,
    /// Resolved by the system (`cleared`), so the cause coming back reopens it.
    pub cleared: bool,
}

fn locked_of(row: &sqlx::postgres::PgRow) -> Result<Locked, sqlx::Error> {
    let status: String = row.try_get("status")?;
    let status = ExceptionStatus::parse(&status).map_err(|e| sqlx::Error::ColumnDecode {
        index: "status".into(),
        source: Box::new(e),
    })?;
    let resolution: Option<String> = row.try_get("resolution")?;
    Ok(Locked {
        id: row.try_get("id")?,
        status,
        cleared: resolution.as_deref() == Some("cleared"),
    })
}

/// Locks the exception with this key of the account.
pub(crate) async fn lock_by_key(
    db: &mut PgConnection,
    account_id: &str,
    dedupe_key: &str,
) -> Result<Option<Locked>, sqlx::Error> {
    sqlx::query(
        "SELECT id, status, resolution FROM reconciliation_exceptions
          WHERE account_id = $1 AND dedupe_key = $2 FOR UPDATE",
    )
    .bind(account_id)
    .bind(dedupe_key)
    .fetch_optional(db)
    .await?
    .as_ref()
    .map(locked_of)
    .transpose()
}

/// Locks the exception with this id.
pub(crate) async fn lock_by_id(
    db: &mut PgConnection,
    id: i64,
) -> Result<Option<Locked>, sqlx::Error> {
    sqlx::query(
        "SELECT id, status, resolution FROM reconciliation_exceptions WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(db)
    .await?
    .as_ref()
    .map(locked_of)
    .transpose()
}

/// Writes the audit event of a step (the table refuses updates and deletes).
pub(crate) async fn record_event(
    db: &mut PgConnection,
    exception_id: i64,
    actor: &str,
    action: &str,
    from: Option<ExceptionStatus>,
    to: ExceptionStatus,
    note: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO reconciliation_exception_events
             (exception_id, actor, action, from_status, to_status, note)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(exception_id)
    .bind(actor)
    .bind(action)
    .bind(from.map(ExceptionStatus::as_str))
    .bind(to.as_str())
    .bind(note)
    .execute(db)
    .await?;
    Ok(())
}

/// Applies `action` to the locked exception, by `actor`, with `note`: the row and its
/// audit event, or the rule's refusal (nothing written). Callers hold the lock.
pub(crate) async fn apply(
    db: &mut PgConnection,
    locked: &Locked,
    action: ExceptionAction,
    actor: &str,
    note: Option<&str>,
) -> Result<Result<ExceptionStatus, TransitionError>, sqlx::Error> {
    let to = match next_status(locked.status, locked.cleared, action) {
        Ok(to) => to,
        Err(refused) => return Ok(Err(refused)),
    };
    let (id, status) = (locked.id, to.as_str());
    let query = match action {
        // The latest note a person wrote stays on the row; the trail keeps each one.
        ExceptionAction::Acknowledge => sqlx::query(
            "UPDATE reconciliation_exceptions
                SET status = $2, acknowledged_at = now(), acknowledged_by = $3,
                    note = coalesce($4, note), updated_at = now()
              WHERE id = $1",
        )
        .bind(id)
        .bind(status)
        .bind(actor)
        .bind(note),
        ExceptionAction::Resolve | ExceptionAction::Clear => sqlx::query(
            "UPDATE reconciliation_exceptions
                SET status = $2, resolution = $3, resolved_at = now(), resolved_by = $4,
                    note = $5, updated_at = now()
              WHERE id = $1",
        )
        .bind(id)
        .bind(status)
        .bind(if action == ExceptionAction::Clear {
            "cleared"
        } else {
            "person"
        })
        .bind(actor)
        .bind(note),
        // A new occurrence of the cause: nobody has seen or explained it yet.
        ExceptionAction::Reopen => sqlx::query(
            "UPDATE reconciliation_exceptions
                SET status = $2, resolution = NULL, resolved_at = NULL, resolved_by = NULL,
                    acknowledged_at = NULL, acknowledged_by = NULL, note = $3,
                    updated_at = now()
              WHERE id = $1",
        )
        .bind(id)
        .bind(status)
        .bind(note),
    };
    query.execute(&mut *db).await?;
    record_event(
        db,
        locked.id,
        actor,
        action.as_str(),
        Some(locked.status),
        to,
        note,
    )
    .await?;
    Ok(Ok(to))
}
