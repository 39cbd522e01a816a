//! Attribution rows written straight into Postgres, as the engine and the close would
//! leave them, so the API's read and workflow side is tested on its own.

use chrono::{DateTime, Utc};
use recon_attribution::{CloseCalendar, Month};
use sqlx::PgPool;

/// The month now is in (Edmonton), whose close is still ahead.
pub fn this_month() -> Month {
    CloseCalendar::default().month_of(Utc::now())
}

pub fn close_of(month: Month) -> DateTime<Utc> {
    CloseCalendar::default().close_of(month)
}

pub async fn account(pool: &PgPool, id: &str, share_bps: Option<i32>) {
    sqlx::query(
        "INSERT INTO accounts (account_id, revenue_share_bps) VALUES ($1, $2)
         ON CONFLICT (account_id) DO UPDATE SET revenue_share_bps = $2",
    )
    .bind(id)
    .bind(share_bps)
    .execute(pool)
    .await
    .unwrap();
}

/// A gap of a ledger transaction, `open` unless `status` says otherwise, with the
/// transaction's verdict `gap` and the engine's detection event. Returns its id.
pub async fn gap(
    pool: &PgPool,
    account: &str,
    transaction: i64,
    class: &str,
    amount_minor: i64,
    month: Month,
    status: &str,
) -> i64 {
    let id = recon_store::testing::attribution::gap(
        pool,
        account,
        transaction,
        class,
        amount_minor,
        month,
        status,
    )
    .await;
    sqlx::query(
        "INSERT INTO attribution_gap_events (gap_id, at, actor, to_status, to_class, note)
         VALUES ($1, now(), 'engine', 'open', $2, 'detected')",
    )
    .bind(id)
    .bind(class)
    .execute(pool)
    .await
    .unwrap();
    id
}

/// Orphan evidence of an API token no account has: a gap with no account.
pub async fn unregistered_orphan(pool: &PgPool, month: Month) -> i64 {
    let evidence: i64 = sqlx::query_scalar(
        "INSERT INTO attribution_evidence (dedupe_key, source, api_token_lookup, endpoint,
             partner_token_sent, outcome, response_status, transaction_id, amount_minor,
             currency, observed_at)
         VALUES (gen_random_uuid()::text, 'gateway', 'lk-unknown', 'payment/purchase', true,
                 'answered', 200, 77, 5000, 'CAD', now()) RETURNING id",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::query_scalar(
        "INSERT INTO attribution_gaps (api_token_lookup, transaction_id, evidence_id, class,
             reason, amount_minor, currency, month, deadline, detected_at, updated_at)
         VALUES ('lk-unknown', 77, $1, 'orphan_evidence', 'unregistered_account', 5000, 'CAD',
                 $2, $3, now(), now()) RETURNING id",
    )
    .bind(evidence)
    .bind(month.first_day())
    .bind(close_of(month))
    .fetch_one(pool)
    .await
    .unwrap()
}

pub async fn events(pool: &PgPool, gap: i64) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM attribution_gap_events WHERE gap_id = $1")
        .bind(gap)
        .fetch_one(pool)
        .await
        .unwrap()
}

pub async fn verdict(pool: &PgPool, account: &str, transaction: i64) -> String {
    sqlx::query_scalar(
        "SELECT verdict FROM attribution_transactions WHERE account_id = $1 AND transaction_id = $2",
    )
    .bind(account)
    .bind(transaction)
    .fetch_one(pool)
    .await
    .unwrap()
}
