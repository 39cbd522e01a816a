//! `POST /v1/attribution/receipts`: an integration that calls Helcim directly reports
//! the `is-valid-partner-token` answers it saw. The rules are in [`receipt_rules`];
//! storing is `recon_store::receipts`. This file only orders the steps and words the
//! answers:
//!
//! 1. the key: 401 (as elsewhere), 403 unless partner or admin;
//! 2. the body: 415 unless JSON, 413 past [`MAX_BODY_BYTES`] or [`MAX_RECEIPTS`], 400
//!    when not JSON, 422 when not a non-empty `{"receipts": [...]}`;
//! 3. the accounts: any named account outside the key's scope or not registered
//!    answers 404 for the whole batch, out of scope exactly as unknown, whatever else
//!    is wrong with it (so no answer says anything about another account's receipts);
//! 4. the items: every invalid item, and every `receiptId` already on file with other
//!    content, listed in one 422; nothing stored;
//! 5. stored in one transaction: 200 with counts.

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use recon_store::api_keys::Capability;
use recon_store::receipts::{Conflict, Filed, Receipt, ReceiptStore};
use serde_json::{Value, json};

use super::receipt_rules::{
    self, BatchError, Checked, ItemError, MAX_BODY_BYTES, MAX_RECEIPTS, is_json,
};
use crate::AppState;
use crate::auth::{Caller, Forbidden};

/// Files a batch of receipts (see the module documentation).
pub async fn report(
    caller: Caller,
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Forbidden> {
    if let Err(forbidden) = caller.require(Capability::ReportReceipts) {
        count_batch("forbidden");
        return Err(forbidden);
    }
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if !is_json(content_type) {
        return Ok(refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the batch as `Content-Type: application/json`".into(),
        ));
    }
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let body = match declared {
        Some(length) if length > MAX_BODY_BYTES => Err(()),
        _ => payload
            .to_bytes_limited(MAX_BODY_BYTES)
            .await
            .map_err(|_| ()),
    };
    let body = match body {
        Ok(Ok(body)) => body,
        Ok(Err(error)) => {
            return Ok(refuse(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                format!("the body could not be read ({error}); send it again"),
            ));
        }
        Err(()) => {
            return Ok(refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "the body is larger than {MAX_BODY_BYTES} bytes; send at most \
                     {MAX_RECEIPTS} receipts per batch"
                ),
            ));
        }
    };
    let checked = match receipt_rules::check(&body, Utc::now()) {
        Ok(checked) => checked,
        Err(error) => return Ok(refuse_batch(&error)),
    };
    let store = ReceiptStore::new(state.pool.clone());
    Ok(match file(&caller, &store, checked).await {
        Ok(response) => response,
        Err(error) => {
            tracing::error!(%error, "could not file receipts");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "receipts cannot be stored right now; send the same batch again later (it is \
                 idempotent)"
                    .into(),
            )
        }
    })
}

/// Steps 3 to 5, which need the database.
async fn file(
    caller: &Caller,
    store: &ReceiptStore,
    checked: Checked,
) -> Result<HttpResponse, sqlx::Error> {
    let received = checked.receipts.len() + checked.errors.len();
    if let Some(account) = first_unknown_account(caller, store, &checked.accounts).await? {
        count_batch("not_found");
        return Ok(HttpResponse::NotFound()
            .json(json!({"error": "no such account", "accountId": account})));
    }
    let (positions, receipts): (Vec<usize>, Vec<Receipt>) = checked.receipts.into_iter().unzip();
    let mut errors = checked.errors;
    if !errors.is_empty() {
        // Refused anyway; still name the receipts that conflict, so one fix suffices.
        let conflicts = store.conflicts(&receipts).await?;
        return Ok(invalid(received, errors, &conflicts, &positions, &receipts));
    }
    let submitted_by = format!("api-key:{}", caller.key_id);
    match store.file(&receipts, &submitted_by).await? {
        Filed::Refused(conflicts) => {
            errors.clear();
            Ok(invalid(received, errors, &conflicts, &positions, &receipts))
        }
        Filed::Stored {
            stored,
            already_recorded,
        } => {
            count_batch("stored");
            metrics::counter!("recon_api_receipts_total", "result" => "stored").increment(stored);
            metrics::counter!("recon_api_receipts_total", "result" => "already_recorded")
                .increment(already_recorded);
            tracing::info!(
                key_id = caller.key_id,
                received,
                stored,
                already_recorded,
                "receipts filed"
            );
            Ok(HttpResponse::Ok().json(json!({
                "received": received,
                "stored": stored,
                "alreadyRecorded": already_recorded,
            })))
        }
    }
}

/// The first account named that the key does not cover or that is not registered.
async fn first_unknown_account(
    caller: &Caller,
    store: &ReceiptStore,
    accounts: &[String],
) -> Result<Option<String>, sqlx::Error> {
    let unknown = match accounts.iter().find(|a| !caller.scope.allows(a)) {
        Some(outside) => Some(outside),
        None => {
            let known = store.known_accounts(accounts).await?;
            accounts.iter().find(|a| !known.contains(a))
        }
    };
    // Echoed to help find the item; an id is at most 64 characters, junk is cut there.
    Ok(unknown.map(|id| id.chars().take(64).collect()))
}

/// 422 listing every invalid item and every conflicting receipt, by index.
fn invalid(
    received: usize,
    mut errors: Vec<ItemError>,
    conflicts: &[Conflict],
    positions: &[usize],
    receipts: &[Receipt],
) -> HttpResponse {
    for conflict in conflicts {
        let receipt = &receipts[conflict.position];
        errors.push(ItemError {
            index: positions[conflict.position],
            receipt_id: Some(receipt.receipt_id.clone()),
            reason: format!(
                "receiptId {:?} is already recorded for account {} with a different {}; a \
                 receiptId names one payment for good: resend exactly what was recorded, or \
                 use a new receiptId for another payment",
                receipt.receipt_id,
                receipt.account_id,
                conflict.fields.join(", ")
            ),
        });
    }
    errors.sort_by_key(|e| e.index);
    count_batch("invalid");
    metrics::counter!("recon_api_receipts_total", "result" => "rejected")
        .increment(received as u64);
    let items: Vec<Value> = errors
        .iter()
        .map(|e| {
            let mut item = json!({"index": e.index, "reason": e.reason});
            if let Some(id) = &e.receipt_id {
                item["receiptId"] = json!(id);
            }
            item
        })
        .collect();
    HttpResponse::UnprocessableEntity().json(json!({
        "error": "invalid_receipts",
        "message": format!(
            "{} of {received} receipts cannot be accepted; nothing was stored. Fix the items \
             listed (index counts from 0) and send the whole batch again",
            items.len()
        ),
        "items": items,
    }))
}

fn refuse_batch(error: &BatchError) -> HttpResponse {
    let (status, code) = match error {
        BatchError::NotJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
        BatchError::NotABatch(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_batch"),
        BatchError::Empty => (StatusCode::UNPROCESSABLE_ENTITY, "empty_batch"),
        BatchError::TooMany(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_many_receipts"),
    };
    refuse(status, code, error.to_string())
}

/// `{"error": code, "message": what to do}`: a whole batch refused before any item.
fn refuse(status: StatusCode, code: &'static str, message: String) -> HttpResponse {
    count_batch(code);
    HttpResponse::build(status).json(json!({"error": code, "message": message}))
}

/// `recon_api_receipt_batches_total{outcome}`.
fn count_batch(outcome: &'static str) {
    metrics::counter!("recon_api_receipt_batches_total", "outcome" => outcome).increment(1);
}
