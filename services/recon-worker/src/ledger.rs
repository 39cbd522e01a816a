//! The worker's Postgres writes. Primary keys make a double insert impossible; a
//! transaction, its batch, the raw payloads and the delivery's completion commit
//! together or not at all.

use chrono::{DateTime, Utc};
use helcim_client::{CardBatch, CardTransaction, Currency};
use recon_queue::WebhookEnvelope;
use sqlx::PgPool;

use crate::reconcile::Reconciliation;

#[derive(Debug, Clone)]
pub struct Ledger {
    pool: PgPool,
}

fn micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

fn seconds(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(s, 0).unwrap_or_default()
}

impl Ledger {
    pub fn new(pool: PgPool) -> Self {
        Ledger { pool }
    }

    /// Records that the delivery arrived (again) and, for a transaction it announces,
    /// a `pending` row, in one round trip. Returns true when the delivery's work was
    /// already committed: a duplicate, to acknowledge and skip.
    pub async fn record_delivery(
        &self,
        envelope: &WebhookEnvelope,
        announced: Option<u64>,
    ) -> Result<bool, sqlx::Error> {
        let processed: Option<DateTime<Utc>> = sqlx::query_scalar(
            "WITH delivery AS (
                 INSERT INTO webhook_deliveries
                     (account_id, webhook_id, event_type, object_id, helcim_timestamp, received_at, raw_body, request_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (account_id, webhook_id) DO UPDATE SET attempts = webhook_deliveries.attempts + 1
                 RETURNING processed_at
             ), pending AS (
                 INSERT INTO card_transactions (account_id, transaction_id)
                 SELECT $1, $9 WHERE $9 IS NOT NULL
                 ON CONFLICT (account_id, transaction_id) DO NOTHING
             )
             SELECT processed_at FROM delivery",
        )
        .bind(&envelope.account_id)
        .bind(&envelope.webhook_id)
        .bind(&envelope.event_type)
        .bind(&envelope.object_id)
        .bind(seconds(envelope.helcim_timestamp))
        .bind(micros(envelope.received_at_micros))
        .bind(&envelope.raw_body)
        .bind(&envelope.request_id)
        .bind(announced.map(|id| id as i64))
        .fetch_one(&self.pool)
        .await?;
        Ok(processed.is_some())
    }

    /// The currency the ledger holds for a batch (that of its first transaction).
    pub async fn batch_currency(
        &self,
        account_id: &str,
        batch_id: u64,
    ) -> Result<Option<Currency>, sqlx::Error> {
        let code: Option<String> = sqlx::query_scalar(
            "SELECT currency FROM card_batches WHERE account_id = $1 AND card_batch_id = $2",
        )
        .bind(account_id)
        .bind(batch_id as i64)
        .fetch_optional(&self.pool)
        .await?
        .flatten();
        Ok(code.and_then(|c| c.trim().parse().ok()))
    }

    /// Stores the fetched transaction (and the batch, when it was fetched now) and
    /// completes the delivery, in one database transaction.
    pub async fn store(
        &self,
        envelope: &WebhookEnvelope,
        tx: &CardTransaction,
        fetched_batch: Option<&CardBatch>,
        reconciliation: &Reconciliation,
    ) -> Result<(), sqlx::Error> {
        let account = envelope.account_id.as_str();
        let mut db = self.pool.begin().await?;
        if let Some(batch) = fetched_batch {
            insert_payload(&mut db, account, "card_batch", batch.id.0, &batch.raw).await?;
            upsert_batch(&mut db, account, batch, tx.amount.currency).await?;
        }
        insert_payload(&mut db, account, "card_transaction", tx.id.0, &tx.raw).await?;
        upsert_transaction(&mut db, account, tx, reconciliation).await?;
        complete(&mut db, envelope, "reconciled").await?;
        db.commit().await
    }

    /// Notes that the delivery went to the dead-letter queue (it stays unprocessed, so
    /// a replay processes it).
    pub async fn complete_dead(
        &self,
        envelope: &WebhookEnvelope,
        outcome: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE webhook_deliveries SET outcome = $3 WHERE account_id = $1 AND webhook_id = $2",
        )
        .bind(&envelope.account_id)
        .bind(&envelope.webhook_id)
        .bind(outcome)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Completes a delivery that needed no fetch (terminal cancels, unknown types).
    pub async fn complete(
        &self,
        envelope: &WebhookEnvelope,
        outcome: &str,
    ) -> Result<(), sqlx::Error> {
        let mut db = self.pool.begin().await?;
        complete(&mut db, envelope, outcome).await?;
        db.commit().await
    }
}

async fn complete(
    db: &mut sqlx::PgTransaction<'_>,
    envelope: &WebhookEnvelope,
    outcome: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE webhook_deliveries SET processed_at = coalesce(processed_at, now()), outcome = $3
         WHERE account_id = $1 AND webhook_id = $2",
    )
    .bind(&envelope.account_id)
    .bind(&envelope.webhook_id)
    .bind(outcome)
    .execute(&mut **db)
    .await?;
    Ok(())
}

async fn insert_payload(
    db: &mut sqlx::PgTransaction<'_>,
    account: &str,
    kind: &str,
    object_id: u64,
    raw: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO helcim_payloads (account_id, kind, object_id, body) VALUES ($1, $2, $3, $4::json)")
        .bind(account)
        .bind(kind)
        .bind(object_id as i64)
        .bind(raw.to_string())
        .execute(&mut **db)
        .await?;
    Ok(())
}

async fn upsert_batch(
    db: &mut sqlx::PgTransaction<'_>,
    account: &str,
    batch: &CardBatch,
    currency: Currency,
) -> Result<(), sqlx::Error> {
    let stats = batch.stats.as_ref();
    sqlx::query(
        "INSERT INTO card_batches (account_id, card_batch_id, terminal_id, batch_number, opened_at, updated_at,
             closed_at, closed, currency, net_sales_minor, total_sales_minor, total_refunds_minor,
             total_reversed_minor, total_refunds_reversed_minor, count_total, count_approved, count_declined,
             raw, fetched_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18::json, now())
         ON CONFLICT (account_id, card_batch_id) DO UPDATE SET
             terminal_id = EXCLUDED.terminal_id, batch_number = EXCLUDED.batch_number,
             opened_at = EXCLUDED.opened_at, updated_at = EXCLUDED.updated_at,
             closed_at = EXCLUDED.closed_at, closed = EXCLUDED.closed,
             currency = coalesce(card_batches.currency, EXCLUDED.currency),
             net_sales_minor = EXCLUDED.net_sales_minor, total_sales_minor = EXCLUDED.total_sales_minor,
             total_refunds_minor = EXCLUDED.total_refunds_minor,
             total_reversed_minor = EXCLUDED.total_reversed_minor,
             total_refunds_reversed_minor = EXCLUDED.total_refunds_reversed_minor,
             count_total = EXCLUDED.count_total, count_approved = EXCLUDED.count_approved,
             count_declined = EXCLUDED.count_declined, raw = EXCLUDED.raw, fetched_at = now()",
    )
    .bind(account)
    .bind(batch.id.0 as i64)
    .bind(&batch.terminal_id)
    .bind(batch.batch_number.map(|n| n as i64))
    .bind(batch.created_at)
    .bind(batch.updated_at)
    .bind(batch.closed_at)
    .bind(batch.closed)
    .bind(currency.code())
    .bind(stats.map(|s| s.net_sales))
    .bind(stats.map(|s| s.total_sales))
    .bind(stats.map(|s| s.total_refunds))
    .bind(stats.map(|s| s.total_reversed))
    .bind(stats.map(|s| s.total_refunds_reversed))
    .bind(stats.map(|s| s.count_total as i64))
    .bind(stats.map(|s| s.count_approved as i64))
    .bind(stats.map(|s| s.count_declined as i64))
    .bind(batch.raw.to_string())
    .execute(&mut **db)
    .await?;
    Ok(())
}

async fn upsert_transaction(
    db: &mut sqlx::PgTransaction<'_>,
    account: &str,
    tx: &CardTransaction,
    reconciliation: &Reconciliation,
) -> Result<(), sqlx::Error> {
    let local = tx
        .raw
        .get("dateCreated")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    sqlx::query(
        "INSERT INTO card_transactions (account_id, transaction_id, card_batch_id, created_at, created_at_local,
             status, type, amount_minor, currency, card_type, card_number_masked, card_token, card_holder_name,
             customer_code, invoice_number, approval_code, avs_response, cvv_response, helcim_user, warning,
             raw, fetched_at, reconciliation_status, reconciliation_reason, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
                 $21::json, now(), $22, $23, now())
         ON CONFLICT (account_id, transaction_id) DO UPDATE SET
             card_batch_id = EXCLUDED.card_batch_id, created_at = EXCLUDED.created_at,
             created_at_local = EXCLUDED.created_at_local, status = EXCLUDED.status, type = EXCLUDED.type,
             amount_minor = EXCLUDED.amount_minor, currency = EXCLUDED.currency,
             card_type = EXCLUDED.card_type, card_number_masked = EXCLUDED.card_number_masked,
             card_token = EXCLUDED.card_token, card_holder_name = EXCLUDED.card_holder_name,
             customer_code = EXCLUDED.customer_code, invoice_number = EXCLUDED.invoice_number,
             approval_code = EXCLUDED.approval_code, avs_response = EXCLUDED.avs_response,
             cvv_response = EXCLUDED.cvv_response, helcim_user = EXCLUDED.helcim_user,
             warning = EXCLUDED.warning, raw = EXCLUDED.raw, fetched_at = now(),
             reconciliation_status = EXCLUDED.reconciliation_status,
             reconciliation_reason = EXCLUDED.reconciliation_reason, updated_at = now()",
    )
    .bind(account)
    .bind(tx.id.0 as i64)
    .bind(tx.card_batch_id.map(|b| b.0 as i64))
    .bind(tx.created_at)
    .bind(local)
    .bind(tx.status.as_str())
    .bind(tx.transaction_type.as_str())
    .bind(tx.amount.minor_units)
    .bind(tx.amount.currency.code())
    .bind(&tx.card_type)
    .bind(&tx.card_number)
    .bind(&tx.card_token)
    .bind(&tx.card_holder_name)
    .bind(&tx.customer_code)
    .bind(&tx.invoice_number)
    .bind(&tx.approval_code)
    .bind(&tx.avs_response)
    .bind(&tx.cvv_response)
    .bind(&tx.user)
    .bind(&tx.warning)
    .bind(tx.raw.to_string())
    .bind(reconciliation.status())
    .bind(reconciliation.reason())
    .execute(&mut **db)
    .await?;
    Ok(())
}
