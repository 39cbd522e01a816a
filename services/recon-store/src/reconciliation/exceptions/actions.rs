//! A person acknowledging or resolving an exception: in one database transaction, the
//! row locked (`FOR UPDATE`, as the system locks it to clear or reopen, so neither
//! loses the other's change), the step checked by the workflow's rules, the row and
//! its audit event written together.

use recon_reconcile::ExceptionAction;
use recon_reconcile::exceptions::TransitionError;
use sqlx::PgPool;

use super::read::{Exception, get};
use super::workflow;
use crate::attribution::gaps::{Note, NoteError};

/// Why an action was refused.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("no exception {0}")]
    NotFound(i64),
    #[error("exception {id} cannot be {verb}: {refused}")]
    Refused {
        id: i64,
        verb: &'static str,
        refused: TransitionError,
    },
    #[error("{0}")]
    Note(#[from] NoteError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// open → acknowledged, by `actor`, with an optional note.
pub async fn acknowledge(
    pool: &PgPool,
    id: i64,
    actor: &str,
    note: Option<&str>,
) -> Result<Exception, ActionError> {
    let note = note.map(Note::parse).transpose()?;
    act(pool, id, actor, ExceptionAction::Acknowledge, note.as_ref()).await
}

/// open|acknowledged → resolved (resolution `person`), by `actor`, with a note saying
/// why (required). Final: the same cause raised again does not reopen it.
pub async fn resolve(
    pool: &PgPool,
    id: i64,
    actor: &str,
    note: &str,
) -> Result<Exception, ActionError> {
    let note = Note::parse(note)?;
    act(pool, id, actor, ExceptionAction::Resolve, Some(&note)).await
}

async fn act(
    pool: &PgPool,
    id: i64,
    actor: &str,
    action: ExceptionAction,
    note: Option<&Note>,
) -> Result<Exception, ActionError> {
    let mut db = pool.begin().await?;
    let Some(locked) = workflow::lock_by_id(&mut db, id).await? else {
        return Err(ActionError::NotFound(id));
    };
    if let Err(refused) =
        workflow::apply(&mut db, &locked, action, actor, note.map(Note::as_str)).await?
    {
        return Err(ActionError::Refused {
            id,
            verb: action.as_str(),
            refused,
        });
    }
    db.commit().await?;
    let (exception, _) = get(pool, id).await?.ok_or(ActionError::NotFound(id))?;
    Ok(exception)
}
