//! Verdicts and gaps written with SQL, as the engine would have written them.

use chrono::{DateTime, Utc};
use recon_attribution::{CloseCalendar, Month};
use sqlx::PgPool;

/// A revenue transaction of `month` with its verdict (`attributed`, `gap`, ...).
pub async fn verdict(
    pool: &PgPool,
    account: &str,
    transaction_id: i64,
    month: Month,
    amount_minor: i64,
    verdict: &str,
    class: Option<&str>,
) {
    sqlx::query(
        "INSERT INTO attribution_transactions
             (account_id, transaction_id, month, kind, amount_minor, currency, stored_at,
              verdict, gap_class, evaluated_at)
         VALUES ($1, $2, $3, 'revenue', $4, 'CAD', now(), $5, $6, now())",
    )
    .bind(account)
    .bind(transaction_id)
    .bind(month.first_day())
    .bind(amount_minor)
    .bind(verdict)
    .bind(class)
    .execute(pool)
    .await
    .unwrap();
}

/// A gap of `status` on a transaction (with its `gap` verdict), returning its id.
pub async fn gap(
    pool: &PgPool,
    calendar: CloseCalendar,
    account: &str,
    transaction_id: i64,
    month: Month,
    amount_minor: i64,
    status: &str,
) -> i64 {
    let verdict_of = if status == "resolved" {
        "waived"
    } else {
        "gap"
    };
    verdict(
        pool,
        account,
        transaction_id,
        month,
        amount_minor,
        verdict_of,
        Some("unattributed"),
    )
    .await;
    let deadline: DateTime<Utc> = calendar.close_of(month);
    sqlx::query_scalar(
        "INSERT INTO attribution_gaps
             (account_id, transaction_id, class, amount_minor, currency, month, deadline,
              status, resolution, detected_at, updated_at)
         VALUES ($1, $2, 'unattributed', $3, 'CAD', $4, $5, $6,
                 CASE WHEN $6 = 'resolved' THEN 'person' END, now(), now())
         RETURNING id",
    )
    .bind(account)
    .bind(transaction_id)
    .bind(amount_minor)
    .bind(month.first_day())
    .bind(deadline)
    .bind(status)
    .fetch_one(pool)
    .await
    .unwrap()
}
