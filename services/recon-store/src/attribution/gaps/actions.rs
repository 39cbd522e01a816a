//! A person acknowledging or resolving a gap. The gap row is locked (`FOR UPDATE`)
//! for the whole change, as the engine locks it for its own, so neither loses the
//! other's update; the status change, its audit event and (on resolve) the
//! transaction's verdict `gap` → `waived` commit together or not at all.
//!
//! The rules ([`next_status`]): acknowledge takes an `open` gap to `acknowledged`;
//! resolve takes an `open` or `acknowledged` gap to `resolved` (resolution
//! `person`). A note is required. Nothing changes once the gap's month has closed
//! (its deadline passed): the gap expires with the month, and a change after the
//! close would make the frozen report depend on when the close was processed.

use chrono::{DateTime, SecondsFormat, Utc};
use recon_attribution::{GapClass, GapStatus, Resolution};
use sqlx::{PgPool, Row};

use super::{Gap, Scope, gap_of, named, named_opt, sees, select_gap};

/// The longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 2_000;

/// A checked note: trimmed, not empty, at most [`MAX_NOTE_CHARS`] characters, no
/// control characters but line breaks and tabs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("a note is required: say why (for example what was fixed, or who accepted the loss)")]
    Empty,
    #[error("the note is {0} characters long; keep it to {MAX_NOTE_CHARS}")]
    TooLong(usize),
    #[error("the note holds a control character; send plain text (line breaks and tabs are fine)")]
    ControlCharacter,
}

impl Note {
    pub fn parse(text: &str) -> Result<Note, NoteError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(NoteError::Empty);
        }
        let length = text.chars().count();
        if length > MAX_NOTE_CHARS {
            return Err(NoteError::TooLong(length));
        }
        if text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(NoteError::ControlCharacter);
        }
        Ok(Note(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a person does to a gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Acknowledge,
    Resolve,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Acknowledge => "acknowledged",
            Action::Resolve => "resolved",
        }
    }
}

/// Why an action was refused.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// No such gap, or one outside the caller's scope (told apart by no one).
    #[error("no such gap")]
    NotFound,
    /// The gap is not in a status the action applies to; the message names it.
    #[error("{message}")]
    Conflict { status: GapStatus, message: String },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// The status `action` leads to from `status`, or why it cannot apply. `now` against
/// `deadline`: nothing changes once the month has closed.
pub fn next_status(
    gap_id: i64,
    action: Action,
    status: GapStatus,
    resolution: Option<Resolution>,
    deadline: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<GapStatus, String> {
    let closed = deadline.to_rfc3339_opts(SecondsFormat::Secs, true);
    match (action, status) {
        (_, GapStatus::Expired) => Err(format!(
            "gap {gap_id} is expired: its month closed at {closed} with it unresolved, so the \
             share is lost and the gap can no longer be {}",
            action.verb()
        )),
        (_, GapStatus::Resolved) => Err(format!(
            "gap {gap_id} is already resolved (by {}); there is nothing left to do",
            resolution.map_or("evidence", Resolution::as_str)
        )),
        (_, _) if now >= deadline => Err(format!(
            "gap {gap_id} is {status}, but its month closed at {closed}: it expires with the \
             month and can no longer be {}",
            action.verb()
        )),
        (Action::Acknowledge, GapStatus::Acknowledged) => Err(format!(
            "gap {gap_id} is already acknowledged; resolve it once the cause is fixed or the \
             share is written off"
        )),
        (Action::Acknowledge, GapStatus::Open) => Ok(GapStatus::Acknowledged),
        (Action::Resolve, GapStatus::Open | GapStatus::Acknowledged) => Ok(GapStatus::Resolved),
    }
}

/// open → acknowledged, with the note, by `actor`, at `now`.
pub async fn acknowledge(
    pool: &PgPool,
    gap_id: i64,
    scope: &Scope,
    actor: &str,
    note: &Note,
    now: DateTime<Utc>,
) -> Result<Gap, ActionError> {
    act(pool, gap_id, scope, actor, note, now, Action::Acknowledge).await
}

/// open|acknowledged → resolved (by a person), with the note; the transaction's
/// verdict `gap` becomes `waived`.
pub async fn resolve(
    pool: &PgPool,
    gap_id: i64,
    scope: &Scope,
    actor: &str,
    note: &Note,
    now: DateTime<Utc>,
) -> Result<Gap, ActionError> {
    act(pool, gap_id, scope, actor, note, now, Action::Resolve).await
}

async fn act(
    pool: &PgPool,
    gap_id: i64,
    scope: &Scope,
    actor: &str,
    note: &Note,
    now: DateTime<Utc>,
    action: Action,
) -> Result<Gap, ActionError> {
    let mut tx = pool.begin().await?;
    // Locked first, before any verdict row: the same order as the engine's, so the
    // two never wait on each other in a cycle.
    let row = sqlx::query(
        "SELECT account_id, transaction_id, class, status, resolution, deadline
           FROM attribution_gaps WHERE id = $1 FOR UPDATE",
    )
    .bind(gap_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ActionError::NotFound)?;
    let account: Option<String> = row.try_get("account_id")?;
    if !sees(scope, account.as_deref()) {
        return Err(ActionError::NotFound);
    }
    let class: GapClass = named(&row, "class")?;
    let status: GapStatus = named(&row, "status")?;
    let resolution: Option<Resolution> = named_opt(&row, "resolution")?;
    let deadline: DateTime<Utc> = row.try_get("deadline")?;
    let to = next_status(gap_id, action, status, resolution, deadline, now)
        .map_err(|message| ActionError::Conflict { status, message })?;
    let resolution = (to == GapStatus::Resolved).then_some(Resolution::Person.as_str());
    sqlx::query(
        "UPDATE attribution_gaps SET status = $2, resolution = $3, updated_at = $4 WHERE id = $1",
    )
    .bind(gap_id)
    .bind(to.as_str())
    .bind(resolution)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO attribution_gap_events
             (gap_id, at, actor, from_status, to_status, from_class, to_class, note)
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7)",
    )
    .bind(gap_id)
    .bind(now)
    .bind(actor)
    .bind(status.as_str())
    .bind(to.as_str())
    .bind(class.as_str())
    .bind(note.as_str())
    .execute(&mut *tx)
    .await?;
    // An orphan's transaction id is one its evidence claimed, not a ledger row: no
    // verdict to waive.
    if to == GapStatus::Resolved && class != GapClass::OrphanEvidence {
        let transaction: Option<i64> = row.try_get("transaction_id")?;
        sqlx::query(
            "UPDATE attribution_transactions SET verdict = 'waived', evaluated_at = $3
              WHERE account_id = $1 AND transaction_id = $2 AND verdict = 'gap'",
        )
        .bind(account.as_deref())
        .bind(transaction)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    let gap = sqlx::query(concat!(select_gap!(), "WHERE g.id = $1"))
        .bind(gap_id)
        .fetch_one(&mut *tx)
        .await?;
    let gap = gap_of(&gap)?;
    tx.commit().await?;
    Ok(gap)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn notes_are_trimmed_required_and_bounded() {
        assert_eq!(
            Note::parse("  fixed the token \n").unwrap().as_str(),
            "fixed the token"
        );
        assert_eq!(Note::parse(" \n\t "), Err(NoteError::Empty));
        assert!(Note::parse(&"é".repeat(MAX_NOTE_CHARS)).is_ok());
        assert_eq!(
            Note::parse(&"é".repeat(MAX_NOTE_CHARS + 1)),
            Err(NoteError::TooLong(MAX_NOTE_CHARS + 1))
        );
        assert_eq!(Note::parse("a\u{0}b"), Err(NoteError::ControlCharacter));
        assert!(Note::parse("line one\nline two").is_ok());
    }

    #[test]
    fn only_live_gaps_before_the_close_change_and_refusals_name_the_status() {
        let deadline = at("2026-12-01T07:00:00Z");
        let before = at("2026-11-20T00:00:00Z");
        let go = |action, status, resolution, now| {
            next_status(7, action, status, resolution, deadline, now)
        };
        use Action::*;
        use GapStatus::*;
        assert_eq!(go(Acknowledge, Open, None, before), Ok(Acknowledged));
        assert_eq!(go(Resolve, Open, None, before), Ok(Resolved));
        assert_eq!(go(Resolve, Acknowledged, None, before), Ok(Resolved));
        let again = go(Acknowledge, Acknowledged, None, before).unwrap_err();
        assert!(again.contains("already acknowledged"), "{again}");
        let done = go(Resolve, Resolved, Some(Resolution::Evidence), before).unwrap_err();
        assert!(done.contains("already resolved (by evidence)"), "{done}");
        let expired = go(Acknowledge, Expired, None, before).unwrap_err();
        assert!(expired.contains("is expired") && expired.contains("2026-12-01T07:00:00Z"));
        let late = go(Resolve, Open, None, deadline).unwrap_err();
        assert!(late.contains("is open, but its month closed"), "{late}");
    }
}
