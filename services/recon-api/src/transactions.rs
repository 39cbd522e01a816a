//! `GET /v1/accounts/{account_id}/transactions/{transaction_id}`.
//!
//! What a caller sees depends on its role: keys with [`Capability::ReadCardDetails`]
//! (admin, finance) get every field below; partner keys get only [`PARTNER_FIELDS`].
//! Cardholder name, card token, AVS/CVV results, the Helcim user and the raw payload
//! are stored but served to no one.
//!
//! `reconciliation.exceptions` lists the transaction's unresolved reconciliation
//! exceptions (`id`, `class`, `status`); while there is one, `reconciliation.status`
//! is `exception` (a pending row stays `pending`).

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use recon_money::format_minor_units;
use recon_store::api_keys::Capability;
use serde_json::{Map, Value, json};
use sqlx::Row;

use crate::AppState;
use crate::auth::Caller;

/// The fields a partner key receives: what attribution needs (amount, when, what kind,
/// which batch, whether it reconciled), nothing about the card or its holder. An
/// allow-list, so a field added later is hidden from partners until listed here.
pub const PARTNER_FIELDS: &[&str] = &[
    "accountId",
    "transactionId",
    "amount",
    "amountMinor",
    "currency",
    "type",
    "status",
    "cardBatchId",
    "createdAt",
    "createdAtLocal",
    "cardType",
    "reconciliation",
    "fetchedAt",
];

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
    if !caller.can(Capability::ReadLedger) || !caller.scope.allows(&account_id) {
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
    let exceptions = match unresolved_exceptions(&state.pool, &account_id, transaction_id).await {
        Ok(exceptions) => exceptions,
        Err(error) => {
            tracing::error!(%error, "exceptions query failed");
            return HttpResponse::ServiceUnavailable()
                .json(json!({"error": "the ledger cannot be read right now; retry"}));
        }
    };
    let full = full_view(&row, &account_id, transaction_id, exceptions);
    HttpResponse::Ok().json(if caller.can(Capability::ReadCardDetails) {
        full
    } else {
        partner_view(full)
    })
}

/// The transaction's exceptions nobody has resolved yet, oldest first:
/// `[{"id", "class", "status"}]`.
async fn unresolved_exceptions(
    pool: &sqlx::PgPool,
    account_id: &str,
    transaction_id: i64,
) -> Result<Vec<Value>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, class, status FROM reconciliation_exceptions
          WHERE account_id = $1 AND transaction_id = $2 AND status <> 'resolved'
          ORDER BY id",
    )
    .bind(account_id)
    .bind(transaction_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(json!({
                "id": row.try_get::<i64, _>("id")?,
                "class": row.try_get::<String, _>("class")?,
                "status": row.try_get::<String, _>("status")?,
            }))
        })
        .collect()
}

/// The reconciliation status shown: `pending` while no answer is stored, `exception`
/// while an exception of the transaction is unresolved, else what the ledger stored.
fn reconciliation_status(stored: Option<String>, unresolved: bool) -> Option<String> {
    match stored.as_deref() {
        Some("pending") => stored,
        _ if unresolved => Some("exception".to_string()),
        _ => stored,
    }
}

fn full_view(
    row: &sqlx::postgres::PgRow,
    account_id: &str,
    transaction_id: i64,
    exceptions: Vec<Value>,
) -> Value {
    let text = |column: &str| row.try_get::<Option<String>, _>(column).ok().flatten();
    let amount_minor: Option<i64> = row.try_get("amount_minor").ok().flatten();
    let created_at: Option<DateTime<Utc>> = row.try_get("created_at").ok().flatten();
    let fetched_at: Option<DateTime<Utc>> = row.try_get("fetched_at").ok().flatten();
    json!({
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
            "status": reconciliation_status(text("reconciliation_status"), !exceptions.is_empty()),
            "reason": text("reconciliation_reason"),
            "exceptions": exceptions,
        },
        "fetchedAt": fetched_at,
    })
}

/// Keeps only [`PARTNER_FIELDS`].
pub fn partner_view(full: Value) -> Value {
    let Value::Object(fields) = full else {
        return Value::Object(Map::new());
    };
    Value::Object(
        fields
            .into_iter()
            .filter(|(name, _)| PARTNER_FIELDS.contains(&name.as_str()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partner_view_holds_only_the_allowed_fields() {
        let full = json!({"amount": "1.00", "cardNumber": "4111********1111",
                          "customerCode": "CST1", "approvalCode": "T1", "newField": 1});
        let view = partner_view(full);
        assert_eq!(view, json!({"amount": "1.00"}));
    }

    #[test]
    fn an_unresolved_exception_shows_as_exception_but_a_pending_row_stays_pending() {
        let status =
            |stored: &str, unresolved| reconciliation_status(Some(stored.into()), unresolved);
        assert_eq!(status("matched", true).as_deref(), Some("exception"));
        assert_eq!(status("matched", false).as_deref(), Some("matched"));
        assert_eq!(status("exception", false).as_deref(), Some("exception"));
        assert_eq!(status("pending", true).as_deref(), Some("pending"));
    }
}
