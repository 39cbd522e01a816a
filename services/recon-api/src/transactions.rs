//! `GET /v1/accounts/{account_id}/transactions/{transaction_id}`.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use recon_money::format_minor_units;
use serde_json::json;
use sqlx::Row;

use crate::AppState;
use crate::auth::Caller;

fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({"error": "no such transaction in this account"}))
}

pub async fn get_one(
    caller: Caller,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (account_id, transaction_id) = path.into_inner();
    // Out of scope looks exactly like absent: a key learns nothing about other accounts.
    if !caller.0.allows(&account_id) {
        return not_found();
    }
    let Ok(transaction_id) = transaction_id.parse::<i64>() else {
        return not_found();
    };
    let row = sqlx::query(
        "SELECT * FROM card_transactions WHERE account_id = $1 AND transaction_id = $2",
    )
    .bind(&account_id)
    .bind(transaction_id)
    .fetch_optional(&state.pool)
    .await;
    let row = match row {
        Ok(Some(row)) => row,
        Ok(None) => return not_found(),
        Err(error) => {
            tracing::error!(%error, "ledger query failed");
            return HttpResponse::ServiceUnavailable()
                .json(json!({"error": "the ledger cannot be read right now; retry"}));
        }
    };
    let text = |column: &str| row.try_get::<Option<String>, _>(column).ok().flatten();
    let amount_minor: Option<i64> = row.try_get("amount_minor").ok().flatten();
    let created_at: Option<DateTime<Utc>> = row.try_get("created_at").ok().flatten();
    let fetched_at: Option<DateTime<Utc>> = row.try_get("fetched_at").ok().flatten();
    HttpResponse::Ok().json(json!({
        "accountId": account_id,
        "transactionId": transaction_id,
        "amount": amount_minor.map(|m| format_minor_units(m, 2)),
        "amountMinor": amount_minor,
        "currency": text("currency").map(|c| c.trim().to_string()),
        "type": text("type"),
        "status": text("status"),
        "cardBatchId": row.try_get::<Option<i64>, _>("card_batch_id").ok().flatten(),
        "createdAt": created_at,
        "createdAtLocal": text("created_at_local"),
        "cardType": text("card_type"),
        "cardNumber": text("card_number_masked"),
        "customerCode": text("customer_code"),
        "invoiceNumber": text("invoice_number"),
        "approvalCode": text("approval_code"),
        "reconciliation": {
            "status": text("reconciliation_status"),
            "reason": text("reconciliation_reason"),
        },
        "fetchedAt": fetched_at,
    }))
}
