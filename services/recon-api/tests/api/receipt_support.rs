//! Helpers shared by the receipts tests.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Row;

use crate::harness::*;

/// Registers [`ACCOUNT`] and [`OTHER_ACCOUNT`] (the ledger seed names them but does not
/// register them).
pub async fn register_accounts(api: &Harness) {
    sqlx::query("INSERT INTO accounts (account_id) VALUES ($1), ($2)")
        .bind(ACCOUNT)
        .bind(OTHER_ACCOUNT)
        .execute(&api.db.pool)
        .await
        .unwrap();
}

/// A valid receipt for `account`.
pub fn receipt(receipt_id: &str, account: &str) -> Value {
    json!({
        "receiptId": receipt_id,
        "accountId": account,
        "transactionId": "25745757",
        "invoiceNumber": "INV-77",
        "amount": "100.99",
        "currency": "CAD",
        "partnerTokenSent": true,
        "isValidPartnerToken": 1,
        "observedAt": "2026-11-01T10:00:00.123456-06:00"
    })
}

/// `n` valid receipts for [`ACCOUNT`], `r-0` to `r-<n-1>`.
pub fn receipts(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| receipt(&format!("r-{i}"), ACCOUNT))
        .collect()
}

pub async fn post_batch(api: &Harness, key: &str, items: &[Value]) -> (StatusCode, Value) {
    post_body(api, key, &json!({"receipts": items})).await
}

pub async fn post_body(api: &Harness, key: &str, body: &Value) -> (StatusCode, Value) {
    let response = api
        .http
        .post(format!("{}/v1/attribution/receipts", api.url))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// The receipt rows, by receiptId.
pub async fn stored(api: &Harness) -> Vec<sqlx::postgres::PgRow> {
    sqlx::query("SELECT * FROM attribution_evidence WHERE source = 'receipt' ORDER BY receipt_id")
        .fetch_all(&api.db.pool)
        .await
        .unwrap()
}

pub async fn evidence_rows(api: &Harness) -> i64 {
    sqlx::query("SELECT count(*) AS n FROM attribution_evidence")
        .fetch_one(&api.db.pool)
        .await
        .unwrap()
        .get("n")
}

/// The indexes a 422 lists.
pub fn indexes(body: &Value) -> Vec<u64> {
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {body}"))
        .iter()
        .map(|item| item["index"].as_u64().unwrap())
        .collect()
}
