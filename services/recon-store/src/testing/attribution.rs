//! Attribution rows for tests, written as the engine would leave them, so the read
//! and workflow sides (API, reconctl) are tested on their own.

use recon_attribution::report::sha256_hex;
use recon_attribution::{CloseCalendar, Month};
use sqlx::PgPool;

/// A CAD gap of `status` on a ledger transaction of `month` (deadline: the default
/// calendar's close), with the transaction's verdict `gap`. Returns the gap's id.
pub async fn gap(
    pool: &PgPool,
    account: &str,
    transaction: i64,
    class: &str,
    amount_minor: i64,
    month: Month,
    status: &str,
) -> i64 {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO attribution_gaps (account_id, transaction_id, class, amount_minor, currency,
             month, deadline, status, detected_at, updated_at)
         VALUES ($1, $2, $3, $4, 'CAD', $5, $6, $7, now(), now()) RETURNING id",
    )
    .bind(account)
    .bind(transaction)
    .bind(class)
    .bind(amount_minor)
    .bind(month.first_day())
    .bind(CloseCalendar::default().close_of(month))
    .bind(status)
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO attribution_transactions (account_id, transaction_id, month, kind,
             amount_minor, currency, stored_at, verdict, gap_class, evaluated_at)
         VALUES ($1, $2, $3, 'revenue', $4, 'CAD', now(), 'gap', $5, now())",
    )
    .bind(account)
    .bind(transaction)
    .bind(month.first_day())
    .bind(amount_minor)
    .bind(class)
    .execute(pool)
    .await
    .unwrap();
    id
}

/// A frozen report document of `month` for `scope` (`*` or an account) in `format`,
/// stored with its SHA-256 as the close stores it.
pub async fn report_document(pool: &PgPool, month: Month, scope: &str, format: &str, body: &[u8]) {
    sqlx::query(
        "INSERT INTO attribution_report_documents (month, scope, format, body, sha256)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(month.first_day())
    .bind(scope)
    .bind(format)
    .bind(body)
    .bind(sha256_hex(body))
    .execute(pool)
    .await
    .unwrap();
}
