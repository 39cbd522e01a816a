//! The periodic sweep: nothing is written when a grace period runs out, so the
//! engine looks for transactions still `pending` and evidence still unmatched whose
//! grace period has passed, and marks them dirty; the next batch judges them
//! (`unattributed`, `orphan_evidence`). Marks already waiting are not repeated.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::Engine;

/// Marks what is due as of `now`; returns how many marks were added.
pub async fn mark_due(
    pool: &PgPool,
    engine: &Engine,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let due_before =
        now - chrono::Duration::from_std(engine.grace).unwrap_or(chrono::Duration::MAX);
    let transactions = sqlx::query(
        "INSERT INTO attribution_dirty (account_id, transaction_id, marked_at)
         SELECT t.account_id, t.transaction_id, $2 FROM attribution_transactions t
          WHERE t.verdict = 'pending' AND t.stored_at <= $1
            AND NOT EXISTS (SELECT 1 FROM attribution_dirty d
                             WHERE d.account_id = t.account_id
                               AND d.transaction_id = t.transaction_id)",
    )
    .bind(due_before)
    .bind(now)
    .execute(pool)
    .await?
    .rows_affected();
    let evidence = sqlx::query(
        "INSERT INTO attribution_dirty (account_id, evidence_id, marked_at)
         SELECT m.account_id, m.evidence_id, $2 FROM attribution_matches m
          WHERE m.state = 'unmatched' AND m.approved_payment AND m.recorded_at <= $1
            AND NOT EXISTS (SELECT 1 FROM attribution_gaps g
                             WHERE g.evidence_id = m.evidence_id AND g.class = 'orphan_evidence')
            AND NOT EXISTS (SELECT 1 FROM attribution_dirty d WHERE d.evidence_id = m.evidence_id)",
    )
    .bind(due_before)
    .bind(now)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(transactions + evidence)
}
