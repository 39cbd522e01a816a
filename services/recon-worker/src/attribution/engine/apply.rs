//! Applying the gap lifecycle (`recon_attribution::classify::decide`) to a gap row:
//! the row itself, its audit event, the outbox alert and post-close notes, all in the
//! batch's database transaction.
//!
//! Two replicas can decide about the same subject at once only across different
//! batches; the account lock (see `batch.rs`) already serialises them, and the
//! unique indexes with `ON CONFLICT DO NOTHING` make a double insert impossible even
//! without it: the loser re-reads the winner's row and decides again.

use chrono::{DateTime, Utc};
use helcim_client::money::format_minor_units;
use prost::Message;
use recon_attribution::classify::{Decision, Desired, GapState, Step, decide};
use recon_attribution::{GapClass, GapStatus, Month, OrphanReason, Resolution};
use recon_queue::envelope::alert::{AttributionAlert, Detail, GapDetail};
use sqlx::PgConnection;

/// Who the engine is in the audit trail.
pub const ACTOR: &str = "engine";

/// What a gap is about, and what it carries when it is inserted.
#[derive(Debug, Clone)]
pub struct Subject {
    pub account_id: Option<String>,
    pub api_token_lookup: Option<String>,
    pub transaction_id: Option<i64>,
    /// The orphaned evidence, or the evidence that decided the class.
    pub evidence_id: Option<i64>,
    pub candidates: Option<Vec<i64>>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub month: Month,
    pub deadline: DateTime<Utc>,
    /// An orphan (keyed by its evidence) or a transaction's gap (keyed by the
    /// transaction).
    pub orphan: bool,
}

#[derive(Debug, Clone)]
struct Row {
    id: i64,
    state: GapState,
    amount_minor: Option<i64>,
    currency: Option<String>,
}

/// Locks the subject's gap row (if any), decides, and applies the decision.
///
/// `may_exist` false says the batch knows there is no gap row (it looked, under the
/// account lock), which saves the locking read; an insert still goes through the
/// unique index, so a wrong hint cannot double a gap.
pub async fn apply(
    conn: &mut PgConnection,
    subject: &Subject,
    desired: Desired,
    may_exist: bool,
    now: DateTime<Utc>,
) -> Result<Decision, sqlx::Error> {
    let mut existing = if may_exist {
        lock(conn, subject).await?
    } else {
        None
    };
    if existing.is_none() && !matches!(desired, Desired::Gap { .. }) {
        // Nothing to lock, nothing to create.
        return Ok(decide(None, desired, now, subject.deadline));
    }
    let mut decision = decide(
        existing.as_ref().map(|r| r.state),
        desired,
        now,
        subject.deadline,
    );
    if let (Step::Insert { status }, Desired::Gap { class, reason }) = (decision.step, desired) {
        match insert(conn, subject, class, reason, status, now).await? {
            Some(id) => {
                event(
                    conn,
                    id,
                    now,
                    None,
                    status,
                    None,
                    class,
                    &opened_note(subject, class, reason),
                )
                .await?;
                alert(
                    conn,
                    subject,
                    Fresh(id),
                    "gap_opened",
                    class,
                    reason,
                    status,
                    None,
                    now,
                )
                .await?;
                return Ok(decision);
            }
            None => {
                // Another replica inserted it first: judge its row instead.
                existing = lock(conn, subject).await?;
                decision = decide(
                    existing.as_ref().map(|r| r.state),
                    desired,
                    now,
                    subject.deadline,
                );
            }
        }
    }
    let Some(row) = existing else {
        return Ok(decision);
    };
    match decision.step {
        Step::Nothing | Step::Insert { .. } => {}
        Step::Reclassify { class, reason } => {
            set_class(conn, row.id, subject, class, reason, Reopening::No, now).await?;
            let note = match (row.state.reason, reason) {
                (Some(from), Some(to)) if from != to => {
                    format!("orphan reason {} -> {}", from.as_str(), to.as_str())
                }
                _ => format!("class {} -> {}", row.state.class, class),
            };
            row_event(conn, &row, now, row.state.status, class, &note).await?;
        }
        Step::ResolveByEvidence { evidence_id } => {
            let note = if subject.orphan {
                format!(
                    "evidence #{evidence_id} now matches transaction {}",
                    subject.transaction_id.map_or("?".into(), |t| t.to_string())
                )
            } else {
                format!("evidence #{evidence_id} (is-valid-partner-token: 1) arrived")
            };
            resolve_by_evidence(conn, &row, subject, &note, now).await?;
        }
        Step::Reopen { class, reason } => {
            set_class(conn, row.id, subject, class, reason, Reopening::Yes, now).await?;
            let note = if subject.orphan {
                format!(
                    "no longer matches one transaction: reopened ({})",
                    opened_note(subject, class, reason)
                )
            } else {
                format!(
                    "the evidence that resolved it no longer matches this transaction: reopened as {class}"
                )
            };
            row_event(conn, &row, now, GapStatus::Open, class, &note).await?;
            alert(
                conn,
                subject,
                Existing(row.id),
                "gap_opened",
                class,
                reason,
                GapStatus::Open,
                None,
                now,
            )
            .await?;
        }
        Step::PostCloseNote { evidence_id } => {
            let note = if subject.orphan {
                format!("evidence #{evidence_id} matched a transaction after the close")
            } else {
                format!(
                    "evidence #{evidence_id} (is-valid-partner-token: 1) arrived after the close"
                )
            };
            sqlx::query(
                "INSERT INTO attribution_post_close_notes (month, account_id, gap_id, evidence_id, at, note)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (gap_id, evidence_id) DO NOTHING",
            )
            .bind(subject.month.first_day())
            .bind(&subject.account_id)
            .bind(row.id)
            .bind(evidence_id)
            .bind(now)
            .bind(note)
            .execute(&mut *conn)
            .await?;
        }
    }
    let still_live = match decision.step {
        Step::Nothing | Step::Reclassify { .. } => {
            matches!(row.state.status, GapStatus::Open | GapStatus::Acknowledged)
        }
        Step::Reopen { .. } => true,
        _ => false,
    };
    if !subject.orphan && still_live {
        follow_amount(conn, &row, subject, now).await?;
    }
    Ok(decision)
}

/// Whether `set_class` also reopens the gap (status `open`, no resolution).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reopening {
    No,
    Yes,
}

/// Gives the gap its new class and reason, with the subject's candidates and deciding
/// evidence; reopening it too when asked.
async fn set_class(
    conn: &mut PgConnection,
    gap_id: i64,
    subject: &Subject,
    class: GapClass,
    reason: Option<OrphanReason>,
    reopening: Reopening,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let sql = match reopening {
        Reopening::No => {
            "UPDATE attribution_gaps
                SET class = $2, reason = $3, candidates = $4, evidence_id = $5, updated_at = $6
              WHERE id = $1"
        }
        Reopening::Yes => {
            "UPDATE attribution_gaps
                SET status = 'open', resolution = NULL, class = $2, reason = $3,
                    candidates = $4, evidence_id = $5, updated_at = $6
              WHERE id = $1"
        }
    };
    sqlx::query(sql)
        .bind(gap_id)
        .bind(class.as_str())
        .bind(reason.map(OrphanReason::as_str))
        .bind(&subject.candidates)
        .bind(subject.evidence_id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// A live gap's amount follows its ledger transaction (a corrected amount or
/// currency), as the report's verdict row does, so the gap, its share at risk and the
/// escalations' money agree with the report. The change is in the audit trail.
async fn follow_amount(
    conn: &mut PgConnection,
    row: &Row,
    subject: &Subject,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let (Some(amount), Some(currency)) = (subject.amount_minor, subject.currency.as_deref()) else {
        return Ok(());
    };
    let before = (row.amount_minor, row.currency.as_deref().map(str::trim));
    if before == (Some(amount), Some(currency)) {
        return Ok(());
    }
    sqlx::query(
        "UPDATE attribution_gaps SET amount_minor = $2, currency = $3, updated_at = $4
          WHERE id = $1",
    )
    .bind(row.id)
    .bind(amount)
    .bind(currency)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let shown = |minor: Option<i64>, currency: Option<&str>| match (minor, currency) {
        (Some(minor), Some(currency)) => format!("{} {currency}", format_minor_units(minor, 2)),
        _ => "none".to_string(),
    };
    let note = format!(
        "amount {} -> {} (the ledger transaction changed)",
        shown(before.0, before.1),
        shown(Some(amount), Some(currency))
    );
    row_event(conn, row, now, row.state.status, row.state.class, &note).await
}

/// The ledger no longer makes the transaction revenue (stored approved, then
/// corrected to declined, say): nothing is at risk, so its live gap is resolved before
/// the close, as evidence would resolve it, and the trail says why. After the close
/// it is left to expire with its month, like every gap.
pub async fn not_revenue(
    conn: &mut PgConnection,
    subject: &Subject,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let Some(row) = lock(conn, subject).await? else {
        return Ok(());
    };
    let live = matches!(row.state.status, GapStatus::Open | GapStatus::Acknowledged);
    if !live || now >= subject.deadline {
        return Ok(());
    }
    let note = format!(
        "the ledger no longer makes transaction {} revenue (not an approved purchase or capture): nothing is at risk",
        subject.transaction_id.map_or("?".into(), |t| t.to_string())
    );
    resolve_by_evidence(conn, &row, subject, &note, now).await
}

/// Resolves a live gap as `evidence` (evidence arrived, or the ledger took the
/// transaction out of revenue): the row, its audit event and its `gap_resolved` alert.
async fn resolve_by_evidence(
    conn: &mut PgConnection,
    row: &Row,
    subject: &Subject,
    note: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE attribution_gaps SET status = 'resolved', resolution = 'evidence', updated_at = $2
          WHERE id = $1",
    )
    .bind(row.id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    row_event(conn, row, now, GapStatus::Resolved, row.state.class, note).await?;
    alert(
        conn,
        subject,
        Existing(row.id),
        "gap_resolved",
        row.state.class,
        row.state.reason,
        GapStatus::Resolved,
        Some(Resolution::Evidence),
        now,
    )
    .await
}

/// id, status, class, reason, resolution, amount, currency.
type GapColumns = (
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
);

async fn lock(conn: &mut PgConnection, subject: &Subject) -> Result<Option<Row>, sqlx::Error> {
    let row: Option<GapColumns> = if subject.orphan {
        sqlx::query_as(
            "SELECT id, status, class, reason, resolution, amount_minor, currency FROM attribution_gaps
              WHERE evidence_id = $1 AND class = 'orphan_evidence' FOR UPDATE",
        )
        .bind(subject.evidence_id)
        .fetch_optional(&mut *conn)
        .await?
    } else {
        sqlx::query_as(
            "SELECT id, status, class, reason, resolution, amount_minor, currency FROM attribution_gaps
              WHERE account_id = $1 AND transaction_id = $2 AND class <> 'orphan_evidence'
              FOR UPDATE",
        )
        .bind(&subject.account_id)
        .bind(subject.transaction_id)
        .fetch_optional(&mut *conn)
        .await?
    };
    let Some((id, status, class, reason, resolution, amount_minor, currency)) = row else {
        return Ok(None);
    };
    // The table's CHECK constraints only admit these names.
    let state = GapState {
        status: status.parse().map_err(decode)?,
        class: class.parse().map_err(decode)?,
        reason: reason.map(|r| r.parse()).transpose().map_err(decode)?,
        resolution: resolution.map(|r| r.parse()).transpose().map_err(decode)?,
    };
    Ok(Some(Row {
        id,
        state,
        amount_minor,
        currency,
    }))
}

fn decode(error: recon_attribution::model::UnknownName) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(error))
}

async fn insert(
    conn: &mut PgConnection,
    subject: &Subject,
    class: GapClass,
    reason: Option<OrphanReason>,
    status: GapStatus,
    now: DateTime<Utc>,
) -> Result<Option<i64>, sqlx::Error> {
    let conflict = if subject.orphan {
        "ON CONFLICT (evidence_id) WHERE class = 'orphan_evidence' DO NOTHING"
    } else {
        "ON CONFLICT (account_id, transaction_id) WHERE class <> 'orphan_evidence' DO NOTHING"
    };
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "INSERT INTO attribution_gaps (account_id, api_token_lookup, transaction_id, evidence_id,
             class, reason, candidates, amount_minor, currency, month, deadline, status,
             detected_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
         {conflict} RETURNING id"
    )))
    .bind(&subject.account_id)
    .bind(&subject.api_token_lookup)
    .bind(subject.transaction_id)
    .bind(subject.evidence_id)
    .bind(class.as_str())
    .bind(reason.map(OrphanReason::as_str))
    .bind(&subject.candidates)
    .bind(subject.amount_minor)
    .bind(&subject.currency)
    .bind(subject.month.first_day())
    .bind(subject.deadline)
    .bind(status.as_str())
    .bind(now)
    .fetch_optional(conn)
    .await
}

fn opened_note(subject: &Subject, class: GapClass, reason: Option<OrphanReason>) -> String {
    match (class, reason, subject.evidence_id) {
        (GapClass::OrphanEvidence, Some(OrphanReason::Ambiguous), Some(e)) => format!(
            "evidence #{e} fits several transactions: {}",
            subject
                .candidates
                .iter()
                .flatten()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (GapClass::OrphanEvidence, Some(reason), Some(e)) => {
            format!("evidence #{e}: {}", reason.as_str())
        }
        (GapClass::Unattributed, ..) => "no evidence once the grace period passed".into(),
        (_, _, Some(e)) => format!("decided by evidence #{e}"),
        _ => "detected".into(),
    }
}

/// The audit event for a change to an existing gap row: from the row's own state to
/// `to_status` / `to_class`.
async fn row_event(
    conn: &mut PgConnection,
    row: &Row,
    at: DateTime<Utc>,
    to_status: GapStatus,
    to_class: GapClass,
    note: &str,
) -> Result<(), sqlx::Error> {
    event(
        conn,
        row.id,
        at,
        Some(row.state.status),
        to_status,
        Some(row.state.class),
        to_class,
        note,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn event(
    conn: &mut PgConnection,
    gap_id: i64,
    at: DateTime<Utc>,
    from_status: Option<GapStatus>,
    to_status: GapStatus,
    from_class: Option<GapClass>,
    to_class: GapClass,
    note: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO attribution_gap_events (gap_id, at, actor, from_status, to_status,
             from_class, to_class, note)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(gap_id)
    .bind(at)
    .bind(ACTOR)
    .bind(from_status.map(GapStatus::as_str))
    .bind(to_status.as_str())
    .bind(from_class.map(GapClass::as_str))
    .bind(to_class.as_str())
    .bind(note)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes the outbox row `<kind>:<gap id>` once, whatever the number of replicas; its
/// payload carries the row's own id, so the row is inserted first. A gap reopened `n`
/// times (`Step::Reopen`) alerts under `<kind>:<gap id>:<n>`, so its new opening and
/// resolution are alerted too, each once.
/// The gap an alert is about: one this transaction just inserted (never reopened, so
/// no need to count), or one that existed.
#[derive(Debug, Clone, Copy)]
enum AlertedGap {
    Fresh(i64),
    Existing(i64),
}
use AlertedGap::{Existing, Fresh};

#[allow(clippy::too_many_arguments)]
async fn alert(
    conn: &mut PgConnection,
    subject: &Subject,
    gap: AlertedGap,
    kind: &str,
    class: GapClass,
    reason: Option<OrphanReason>,
    status: GapStatus,
    resolution: Option<Resolution>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let (gap_id, reopened) = match gap {
        Fresh(id) => (id, 0),
        // Only a reopening leaves `resolved` (a person cannot; the close expires live
        // gaps).
        Existing(id) => (
            id,
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM attribution_gap_events
                  WHERE gap_id = $1 AND from_status = 'resolved'",
            )
            .bind(id)
            .fetch_one(&mut *conn)
            .await?,
        ),
    };
    let key = match reopened {
        0 => format!("{kind}:{gap_id}"),
        n => format!("{kind}:{gap_id}:{n}"),
    };
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO attribution_alerts (dedupe_key, kind, account_id, month, payload, created_at)
         VALUES ($1, $2, $3, $4, '\\x'::bytea, $5)
         ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
    )
    .bind(key)
    .bind(kind)
    .bind(&subject.account_id)
    .bind(subject.month.first_day())
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(id) = id else {
        return Ok(());
    };
    let message = AttributionAlert {
        schema_version: recon_queue::envelope::SCHEMA_VERSION,
        alert_id: id as u64,
        kind: kind.to_string(),
        account_id: subject.account_id.clone().unwrap_or_default(),
        month: subject.month.to_string(),
        deadline: subject.deadline.timestamp(),
        created_at_micros: now.timestamp_micros(),
        detail: Some(Detail::Gap(GapDetail {
            gap_id: gap_id as u64,
            transaction_id: subject.transaction_id,
            class: class.as_str().to_string(),
            reason: reason.map(|r| r.as_str().to_string()).unwrap_or_default(),
            amount: subject
                .amount_minor
                .map(|minor| format_minor_units(minor, 2))
                .unwrap_or_default(),
            currency: subject.currency.clone().unwrap_or_default(),
            status: status.as_str().to_string(),
            resolution: resolution
                .map(|r| r.as_str().to_string())
                .unwrap_or_default(),
        })),
    };
    sqlx::query("UPDATE attribution_alerts SET payload = $2 WHERE id = $1")
        .bind(id)
        .bind(message.encode_to_vec())
        .execute(conn)
        .await?;
    Ok(())
}
