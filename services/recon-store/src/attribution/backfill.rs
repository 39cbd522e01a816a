//! `reconctl attribution backfill`: marks dirty what the triggers of migration 0009
//! never saw. Only the triggers fill `attribution_dirty`, so ledger transactions and
//! evidence stored before the upgrade are never judged until something marks them.
//!
//! Marks are inserted in batches (one statement each, walking the keys in order) so a
//! large ledger is never one long transaction. A transaction's mark carries the time
//! it reached the ledger as `marked_at`: the engine takes the first mark's time as
//! "stored at", and the grace period of a transaction stored months ago has long run
//! out, not just started. Months already frozen are left alone (their report is
//! final; the engine would only write post-close notes).

use chrono::{DateTime, Utc};
use recon_attribution::{CloseCalendar, Month};
use sqlx::{PgPool, Row};

/// Rows per statement.
pub const BATCH: i64 = 5_000;

/// What a backfill marked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backfilled {
    pub transactions: u64,
    pub evidence: u64,
    /// Frozen months at or after the first month, skipped.
    pub frozen_months_skipped: usize,
}

/// Marks dirty every stored ledger transaction whose `created_at`, and every piece of
/// evidence whose `observed_at`, falls in `from` or a later month (in `calendar`'s
/// zone) that is not frozen. `batch` rows per statement (at least 1).
pub async fn mark_from(
    pool: &PgPool,
    calendar: CloseCalendar,
    from: Month,
    batch: i64,
) -> Result<Backfilled, sqlx::Error> {
    let batch = batch.max(1);
    let since = calendar.start_of(from);
    let frozen: Vec<chrono::NaiveDate> = sqlx::query_scalar(
        "SELECT month FROM attribution_reports WHERE month >= $1 ORDER BY month",
    )
    .bind(from.first_day())
    .fetch_all(pool)
    .await?;
    let (starts, ends): (Vec<DateTime<Utc>>, Vec<DateTime<Utc>>) = frozen
        .iter()
        .map(|day| calendar.bounds(Month::of_date(*day)))
        .unzip();
    let mut done = Backfilled {
        frozen_months_skipped: frozen.len(),
        ..Backfilled::default()
    };

    // Ledger transactions, by (account_id, transaction_id). Pending rows are skipped
    // as the trigger skips them: their own update to stored will mark them.
    let mut after: (String, i64) = (String::new(), i64::MIN);
    loop {
        let row = sqlx::query(
            "WITH picked AS (
                 SELECT account_id, transaction_id,
                        COALESCE(fetched_at, first_seen_at) AS stored_at
                   FROM card_transactions c
                  WHERE reconciliation_status <> 'pending'
                    AND created_at >= $1
                    AND (account_id, transaction_id) > ($2, $3)
                    AND NOT EXISTS (SELECT 1 FROM unnest($4::timestamptz[], $5::timestamptz[]) f(s, e)
                                     WHERE c.created_at >= f.s AND c.created_at < f.e)
                  ORDER BY account_id, transaction_id
                  LIMIT $6),
             marked AS (
                 INSERT INTO attribution_dirty (account_id, transaction_id, marked_at)
                 SELECT account_id, transaction_id, stored_at FROM picked
                 RETURNING 1)
             SELECT (SELECT count(*) FROM marked) AS n,
                    (SELECT account_id FROM picked ORDER BY account_id DESC, transaction_id DESC LIMIT 1) AS last_account,
                    (SELECT transaction_id FROM picked ORDER BY account_id DESC, transaction_id DESC LIMIT 1) AS last_id",
        )
        .bind(since)
        .bind(&after.0)
        .bind(after.1)
        .bind(&starts)
        .bind(&ends)
        .bind(batch)
        .fetch_one(pool)
        .await?;
        let n: i64 = row.get("n");
        done.transactions += n as u64;
        match (
            row.get::<Option<String>, _>("last_account"),
            row.get::<Option<i64>, _>("last_id"),
        ) {
            (Some(account), Some(id)) if n == batch => after = (account, id),
            _ => break,
        }
    }

    // Evidence, by id.
    let mut after_id = i64::MIN;
    loop {
        let row = sqlx::query(
            "WITH picked AS (
                 SELECT id, account_id FROM attribution_evidence e
                  WHERE observed_at >= $1 AND id > $2
                    AND NOT EXISTS (SELECT 1 FROM unnest($3::timestamptz[], $4::timestamptz[]) f(s, en)
                                     WHERE e.observed_at >= f.s AND e.observed_at < f.en)
                  ORDER BY id LIMIT $5),
             marked AS (
                 INSERT INTO attribution_dirty (account_id, evidence_id)
                 SELECT account_id, id FROM picked
                 RETURNING 1)
             SELECT (SELECT count(*) FROM marked) AS n, (SELECT max(id) FROM picked) AS last_id",
        )
        .bind(since)
        .bind(after_id)
        .bind(&starts)
        .bind(&ends)
        .bind(batch)
        .fetch_one(pool)
        .await?;
        let n: i64 = row.get("n");
        done.evidence += n as u64;
        match row.get::<Option<i64>, _>("last_id") {
            Some(id) if n == batch => after_id = id,
            _ => break,
        }
    }
    // Wake the engines now rather than at their next poll.
    if done.transactions + done.evidence > 0 {
        sqlx::query("SELECT pg_notify('recon_attribution', '')")
            .execute(pool)
            .await?;
    }
    Ok(done)
}
