//! The month close (docs/alerts.md).
//!
//! - At the close (the deadline): every open or acknowledged gap of the month becomes
//!   `expired`, with an audit event by `engine`. Its transaction's verdict stays `gap`:
//!   the share was lost.
//! - At the close plus `RECON_REPORT_FREEZE_DELAY`: the month's report is frozen once,
//!   whatever the number of replicas: the `attribution_reports` insert (ON CONFLICT
//!   DO NOTHING) decides the one that renders, and the documents and the
//!   `month_closed` alert are written in that same transaction. The documents say
//!   `asOf` = the freeze instant (close + delay), never the wall clock, so they are
//!   the same bytes whichever replica wrote them and however late it ran.

use chrono::{DateTime, Utc};
use recon_attribution::report::{Report, sha256_hex};
use recon_attribution::{CloseCalendar, Month};
use recon_queue::envelope::alert::{Detail, MonthClosedDetail};
use recon_store::attribution::report::{Scope, live};
use sqlx::{PgPool, Postgres, Transaction};

use super::publish::insert_alert;

/// How many gaps one expiry statement takes (and locks).
const EXPIRE_BATCH: i64 = 500;

/// What a sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Closed {
    pub expired: u64,
    pub frozen: Vec<Month>,
}

/// Expires what is due and freezes the months whose freeze instant has passed.
pub async fn sweep(
    pool: &PgPool,
    calendar: CloseCalendar,
    freeze_delay: std::time::Duration,
    now: DateTime<Utc>,
) -> anyhow::Result<Closed> {
    let expired = expire_due(pool, now).await?;
    let mut frozen = Vec::new();
    for month in months_to_freeze(pool, calendar, freeze_delay, now).await? {
        if freeze(pool, calendar, month, freeze_delay).await? {
            tracing::info!(%month, "attribution report frozen");
            frozen.push(month);
        }
    }
    Ok(Closed { expired, frozen })
}

/// Open and acknowledged gaps whose deadline has passed → `expired`, each with its
/// event, in batches (rows locked, and skipped when a person or the engine holds
/// one: the next sweep takes it).
pub async fn expire_due(pool: &PgPool, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let n = sqlx::query(
            "WITH due AS (
                 SELECT id, status FROM attribution_gaps
                  WHERE status IN ('open', 'acknowledged') AND deadline <= $1
                  ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED),
             expired AS (
                 UPDATE attribution_gaps g SET status = 'expired', updated_at = $1
                   FROM due WHERE g.id = due.id
                 RETURNING g.id, due.status AS from_status, g.class)
             INSERT INTO attribution_gap_events
                 (gap_id, at, actor, from_status, to_status, from_class, to_class, note)
             SELECT id, $1, 'engine', from_status, 'expired', class, class,
                    'the month closed with the gap unresolved'
               FROM expired",
        )
        .bind(now)
        .bind(EXPIRE_BATCH)
        .execute(pool)
        .await?
        .rows_affected();
        total += n;
        if n < EXPIRE_BATCH as u64 {
            return Ok(total);
        }
    }
}

/// The freeze instant of a month: its close plus the delay.
pub fn freeze_at(
    calendar: CloseCalendar,
    month: Month,
    delay: std::time::Duration,
) -> DateTime<Utc> {
    calendar.close_of(month) + chrono::Duration::from_std(delay).unwrap_or_default()
}

/// Months with verdicts or gaps, not frozen, whose freeze instant is ≤ now. Walks
/// from the oldest month with data (an index lookup) instead of scanning for
/// distinct months.
async fn months_to_freeze(
    pool: &PgPool,
    calendar: CloseCalendar,
    delay: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<Vec<Month>, sqlx::Error> {
    let oldest: Option<chrono::NaiveDate> = sqlx::query_scalar(
        "SELECT least((SELECT min(month) FROM attribution_transactions),
                      (SELECT min(month) FROM attribution_gaps))",
    )
    .fetch_one(pool)
    .await?;
    let Some(oldest) = oldest else {
        return Ok(Vec::new());
    };
    let frozen: Vec<chrono::NaiveDate> =
        sqlx::query_scalar("SELECT month FROM attribution_reports WHERE month >= $1")
            .bind(oldest)
            .fetch_all(pool)
            .await?;
    let mut months = Vec::new();
    let mut month = Month::of_date(oldest);
    while freeze_at(calendar, month, delay) <= now {
        if !frozen.contains(&month.first_day()) && has_data(pool, month).await? {
            months.push(month);
        }
        month = month.next();
    }
    Ok(months)
}

async fn has_data(pool: &PgPool, month: Month) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM attribution_transactions WHERE month = $1)
             OR EXISTS (SELECT 1 FROM attribution_gaps WHERE month = $1)",
    )
    .bind(month.first_day())
    .fetch_one(pool)
    .await
}

/// Freezes one month; false when another replica already did (or is doing it: the
/// insert waits for its transaction, then finds the row).
pub async fn freeze(
    pool: &PgPool,
    calendar: CloseCalendar,
    month: Month,
    delay: std::time::Duration,
) -> anyhow::Result<bool> {
    let at = freeze_at(calendar, month, delay);
    let mut tx = pool.begin().await?;
    let won = sqlx::query(
        "INSERT INTO attribution_reports (month, frozen_at) VALUES ($1, $2)
         ON CONFLICT DO NOTHING",
    )
    .bind(month.first_day())
    .bind(at)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !won {
        return Ok(false);
    }
    // Gaps still open now would be in the report as live; the sweep expired them, but
    // a gap opened between that statement and this one is expired here.
    lock_live_accounts(&mut tx, month).await?;
    expire_month(&mut tx, month, at).await?;
    // Read on the pool, not in this transaction: it sees everything committed, and
    // nothing here changes what it sums (the expiries above change statuses within
    // "not resolved", which the report counts alike).
    let mut report = live(pool, calendar, month, &Scope::All, at).await?;
    report.frozen = true;
    let sha = store(&mut tx, month, "*", &report).await?;
    for account in accounts(&report) {
        let only = report.only(&|a| a == account);
        store(&mut tx, month, &account, &only).await?;
    }
    let expired: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM attribution_gaps WHERE month = $1 AND status = 'expired'",
    )
    .bind(month.first_day())
    .fetch_one(&mut *tx)
    .await?;
    insert_alert(
        &mut tx,
        &format!("month_closed:{month}"),
        "month_closed",
        None,
        month,
        calendar.close_of(month),
        at,
        Detail::MonthClosed(MonthClosedDetail {
            expired_gaps: u32::try_from(expired).unwrap_or(u32::MAX),
            report_sha256: sha,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

fn accounts(report: &Report) -> Vec<String> {
    let mut accounts: Vec<String> = report
        .accounts
        .iter()
        .map(|line| line.account_id.clone())
        .collect();
    accounts.dedup();
    accounts
}

/// Takes the engine's lock of every account with a live gap in `month` before the
/// freeze locks those gaps: an engine batch locks its gap rows in its own order under
/// these locks, so taking the rows without them could deadlock with a batch (each
/// holding a row the other wants). With them, the freeze waits for the batch.
async fn lock_live_accounts(
    tx: &mut Transaction<'_, Postgres>,
    month: Month,
) -> Result<(), sqlx::Error> {
    let accounts: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT coalesce(account_id, '') FROM attribution_gaps
          WHERE month = $1 AND status IN ('open', 'acknowledged')",
    )
    .bind(month.first_day())
    .fetch_all(&mut **tx)
    .await?;
    super::engine::lock_accounts(tx, &accounts.into_iter().collect()).await
}

async fn expire_month(
    tx: &mut Transaction<'_, Postgres>,
    month: Month,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH due AS (
             SELECT id, status FROM attribution_gaps
              WHERE month = $1 AND status IN ('open', 'acknowledged') FOR UPDATE),
         expired AS (
             UPDATE attribution_gaps g SET status = 'expired', updated_at = $2
               FROM due WHERE g.id = due.id
             RETURNING g.id, due.status AS from_status, g.class)
         INSERT INTO attribution_gap_events
             (gap_id, at, actor, from_status, to_status, from_class, to_class, note)
         SELECT id, $2, 'engine', from_status, 'expired', class, class,
                'the month closed with the gap unresolved'
           FROM expired",
    )
    .bind(month.first_day())
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Stores the JSON and CSV of one scope; returns the JSON's SHA-256.
async fn store(
    tx: &mut Transaction<'_, Postgres>,
    month: Month,
    scope: &str,
    report: &Report,
) -> Result<String, sqlx::Error> {
    let json = report.to_json();
    let json_sha = sha256_hex(&json);
    for (format, body) in [("json", json), ("csv", report.to_csv())] {
        let sha = sha256_hex(&body);
        sqlx::query(
            "INSERT INTO attribution_report_documents (month, scope, format, body, sha256)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(month.first_day())
        .bind(scope)
        .bind(format)
        .bind(body)
        .bind(sha)
        .execute(&mut **tx)
        .await?;
    }
    Ok(json_sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_freeze_instant_is_the_close_plus_the_delay() {
        let calendar = CloseCalendar::default();
        let nov = Month::new(2026, 11).unwrap();
        assert_eq!(
            freeze_at(calendar, nov, std::time::Duration::from_secs(900)),
            "2026-12-01T07:15:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }
}
