//! Ledger rows and evidence for the attribution engine tests, all of account `m1`.

use chrono::{DateTime, Utc};
use recon_store::evidence::{Evidence, EvidenceStore, Outcome, Source};
use sqlx::PgPool;

/// A CAD card transaction of account `m1`, already reconciled.
pub async fn ledger(
    pool: &PgPool,
    id: i64,
    kind: &str,
    status: &str,
    amount: i64,
    created_at: DateTime<Utc>,
    invoice: Option<&str>,
) {
    sqlx::query(
        "INSERT INTO card_transactions (account_id, transaction_id, created_at, status, type,
             amount_minor, currency, invoice_number, raw, reconciliation_status)
         VALUES ('m1', $1, $2, $3, $4, $5, 'CAD', $6, '{}', 'matched')",
    )
    .bind(id)
    .bind(created_at)
    .bind(status)
    .bind(kind)
    .bind(amount)
    .bind(invoice)
    .execute(pool)
    .await
    .unwrap();
}

/// An answered purchase of 19.99 CAD through the gateway, with Helcim's
/// `is-valid-partner-token` answer `valid`.
pub fn gateway(key: &str, transaction_id: Option<i64>, valid: Option<i16>) -> Evidence {
    Evidence {
        dedupe_key: key.into(),
        source: Source::Gateway,
        account_id: Some("m1".into()),
        api_token_lookup: Some("ab".repeat(16)),
        endpoint: "payment/purchase".into(),
        idempotency_key: None,
        partner_token_sent: true,
        partner_token_added: false,
        is_valid_partner_token: valid,
        outcome: Outcome::Answered,
        response_status: Some(200),
        transaction_id,
        invoice_number: None,
        customer_code: None,
        amount_minor: Some(1999),
        currency: Some("CAD".into()),
        observed_at: Utc::now(),
        receipt_id: None,
        submitted_by: None,
    }
}

pub async fn record(pool: &PgPool, evidence: Vec<Evidence>) {
    EvidenceStore::new(pool.clone())
        .record(&evidence)
        .await
        .unwrap();
}

pub fn s(text: &str) -> Option<String> {
    Some(text.to_string())
}
