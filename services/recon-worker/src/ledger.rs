//! The worker's Postgres writes. Primary keys make a double insert impossible; a
//! transaction, its batch, the raw payloads and the delivery's completion commit
//! together or not at all.
//!
//! No state goes backwards: every row carries `fetched_at`, the time the request of its
//! answer was sent, and an answer older than the stored one never replaces it (jobs
//! commit in any order). A closed batch never reopens and keeps its close time.

use chrono::{DateTime, Utc};
use helcim_client::{CardBatch, CardBatchId, CardTransaction, Currency, Fetched, RawAnswer};
use recon_queue::WebhookEnvelope;
use sqlx::PgPool;

use recon_store::reconciliation::{Origin, after_transaction_recorded, previous_facts};

use crate::reconcile::Reconciliation;

mod listed;
pub use listed::Recorded;

/// What one job learnt about a transaction's batch, to store beside the transaction.
#[derive(Debug, Clone, Copy)]
pub enum BatchAnswer<'a> {
    /// Read: stored in `card_batches` (unless the ledger holds a newer answer).
    Readable(&'a Fetched<CardBatch>),
    /// Not readable: kept as received in `helcim_payloads` with why.
    Unreadable {
        id: CardBatchId,
        reason: &'a str,
        answer: &'a RawAnswer,
    },
}

/// The kinds of object `helcim_payloads` holds.
pub const CARD_TRANSACTION: &str = "card_transaction";
pub const CARD_BATCH: &str = "card_batch";

const DEAD_LETTERED: &str = "dead-lettered";

/// The outcome noted for a delivery dead-lettered after `replays` replays from the
/// dead-letter queue (`dead-lettered: <reason>` for the first time).
pub fn dead_outcome(reason: &str, replays: u32) -> String {
    if replays == 0 {
        format!("{DEAD_LETTERED}: {reason}")
    } else {
        format!("{DEAD_LETTERED} after replay {replays}: {reason}")
    }
}

/// The replays a [`dead_outcome`] was noted after; `None` for any other outcome.
pub fn dead_replays(outcome: &str) -> Option<u32> {
    let rest = outcome.strip_prefix(DEAD_LETTERED)?;
    if rest.starts_with(": ") {
        return Some(0);
    }
    let (replays, _) = rest.strip_prefix(" after replay ")?.split_once(": ")?;
    replays.parse().ok()
}

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
                     (account_id, webhook_id, event_type, object_id, helcim_timestamp, received_at, raw_body, request_id, sealed_secrets)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $10)
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
        .bind(&envelope.sealed_secrets)
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

    /// Stores the fetched transaction (and what was learnt about its batch, when it
    /// was fetched now) and completes the delivery, in one database transaction. Every
    /// answer goes to `helcim_payloads`; the typed rows change only when this answer is
    /// not older than the stored one.
    ///
    /// `reconcile` decides the transaction's status; it is given the stored batch when
    /// that is newer than the one this job fetched (another job committed a later
    /// answer first), so a transaction is never judged against a batch the ledger has
    /// already moved past. Returns true when `card_batches` now holds the batch as this
    /// job read it (false: no readable batch, or a newer one is stored).
    pub async fn store(
        &self,
        envelope: &WebhookEnvelope,
        tx: &Fetched<CardTransaction>,
        batch: Option<BatchAnswer<'_>>,
        reconcile: impl FnOnce(Option<&CardBatch>) -> Reconciliation,
    ) -> Result<bool, sqlx::Error> {
        let account = envelope.account_id.as_str();
        let mut db = self.pool.begin().await?;
        let mut batch_current = false;
        let mut newer = None;
        match batch {
            Some(BatchAnswer::Readable(batch)) => {
                let Fetched { value, sent_at } = batch;
                insert_payload(
                    &mut db, account, CARD_BATCH, value.id.0, &value.raw, *sent_at,
                )
                .await?;
                batch_current =
                    upsert_batch(&mut db, account, value, tx.value.amount.currency, *sent_at)
                        .await?;
                if !batch_current {
                    newer = stored_batch(&mut db, account, value.id).await?;
                }
            }
            Some(BatchAnswer::Unreadable { id, reason, answer }) => {
                insert_unreadable(&mut db, account, CARD_BATCH, id.0, reason, answer).await?;
            }
            None => {}
        }
        let Fetched { value, sent_at } = tx;
        insert_payload(
            &mut db,
            account,
            CARD_TRANSACTION,
            value.id.0,
            &value.raw,
            *sent_at,
        )
        .await?;
        let reconciliation = reconcile(newer.as_ref());
        let previous = previous_facts(&mut db, account, value.id.0).await?;
        upsert_transaction(
            &mut db,
            account,
            value,
            *sent_at,
            &reconciliation,
            Origin::Webhook,
        )
        .await?;
        after_transaction_recorded(
            &mut db,
            account,
            value.id.0,
            previous.as_ref(),
            Origin::Webhook,
        )
        .await?;
        complete(&mut db, envelope, "reconciled").await?;
        db.commit().await?;
        Ok(batch_current)
    }

    /// Keeps an answer that could not be read, exactly as received, with why; returns
    /// its `helcim_payloads` id (for the dead-letter reason an operator reads).
    pub async fn keep_unreadable(
        &self,
        account: &str,
        kind: &str,
        object_id: u64,
        reason: &str,
        answer: &RawAnswer,
    ) -> Result<i64, sqlx::Error> {
        let mut db = self.pool.begin().await?;
        let id = insert_unreadable(&mut db, account, kind, object_id, reason, answer).await?;
        db.commit().await?;
        Ok(id)
    }

    /// Which replay of the delivery is in the dead-letter queue, as noted by
    /// [`Ledger::complete_dead`] once the broker confirmed it there; `None` when none
    /// is noted (or the delivery was processed since).
    pub async fn dead_lettered_after(
        &self,
        envelope: &WebhookEnvelope,
    ) -> Result<Option<u32>, sqlx::Error> {
        let outcome: Option<Option<String>> = sqlx::query_scalar(
            "SELECT outcome FROM webhook_deliveries
             WHERE account_id = $1 AND webhook_id = $2 AND processed_at IS NULL",
        )
        .bind(&envelope.account_id)
        .bind(&envelope.webhook_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(outcome.flatten().as_deref().and_then(dead_replays))
    }

    /// Notes that the delivery went to the dead-letter queue (it stays unprocessed, so
    /// a replay processes it). `outcome` comes from [`dead_outcome`].
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
    fetched_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO helcim_payloads (account_id, kind, object_id, fetched_at, body)
         VALUES ($1, $2, $3, $4, $5::json)",
    )
    .bind(account)
    .bind(kind)
    .bind(object_id as i64)
    .bind(fetched_at)
    .bind(raw.to_string())
    .execute(&mut **db)
    .await?;
    Ok(())
}

/// The bytes go in as they came (a `bytea`): the body may not be JSON, or not even
/// text, and a `json` column would refuse it.
async fn insert_unreadable(
    db: &mut sqlx::PgTransaction<'_>,
    account: &str,
    kind: &str,
    object_id: u64,
    reason: &str,
    answer: &RawAnswer,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO helcim_payloads (account_id, kind, object_id, fetched_at, raw_body, parse_error)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(account)
    .bind(kind)
    .bind(object_id as i64)
    .bind(answer.sent_at)
    .bind(&answer.body)
    .bind(reason)
    .fetch_one(&mut **db)
    .await
}

/// Writes the batch unless the stored answer is newer, or closed while this one is
/// open; returns whether it wrote.
async fn upsert_batch(
    db: &mut sqlx::PgTransaction<'_>,
    account: &str,
    batch: &CardBatch,
    currency: Currency,
    fetched_at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let stats = batch.stats.as_ref();
    let written: Option<bool> = sqlx::query_scalar(
        "INSERT INTO card_batches (account_id, card_batch_id, terminal_id, batch_number, opened_at, updated_at,
             closed_at, closed, currency, net_sales_minor, total_sales_minor, total_refunds_minor,
             total_reversed_minor, total_refunds_reversed_minor, count_total, count_approved, count_declined,
             raw, fetched_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18::json, $19)
         ON CONFLICT (account_id, card_batch_id) DO UPDATE SET
             terminal_id = EXCLUDED.terminal_id, batch_number = EXCLUDED.batch_number,
             opened_at = EXCLUDED.opened_at, updated_at = EXCLUDED.updated_at,
             closed_at = CASE WHEN card_batches.closed THEN card_batches.closed_at
                              ELSE EXCLUDED.closed_at END,
             closed = card_batches.closed OR EXCLUDED.closed,
             currency = coalesce(card_batches.currency, EXCLUDED.currency),
             net_sales_minor = EXCLUDED.net_sales_minor, total_sales_minor = EXCLUDED.total_sales_minor,
             total_refunds_minor = EXCLUDED.total_refunds_minor,
             total_reversed_minor = EXCLUDED.total_reversed_minor,
             total_refunds_reversed_minor = EXCLUDED.total_refunds_reversed_minor,
             count_total = EXCLUDED.count_total, count_approved = EXCLUDED.count_approved,
             count_declined = EXCLUDED.count_declined, raw = EXCLUDED.raw,
             fetched_at = EXCLUDED.fetched_at
         WHERE EXCLUDED.fetched_at >= card_batches.fetched_at
           AND (EXCLUDED.closed OR NOT card_batches.closed)
         RETURNING true",
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
    .bind(fetched_at)
    .fetch_optional(&mut **db)
    .await?;
    Ok(written.is_some())
}

/// The batch as the ledger holds it (the upsert that found it newer locked its row).
/// `None` if its stored JSON no longer reads (a format this version does not know).
async fn stored_batch(
    db: &mut sqlx::PgTransaction<'_>,
    account: &str,
    id: CardBatchId,
) -> Result<Option<CardBatch>, sqlx::Error> {
    let raw: Option<String> = sqlx::query_scalar(
        "SELECT raw::text FROM card_batches WHERE account_id = $1 AND card_batch_id = $2",
    )
    .bind(account)
    .bind(id.0 as i64)
    .fetch_optional(&mut **db)
    .await?;
    Ok(raw
        .and_then(|raw| serde_json::from_str(&raw).ok())
        .and_then(|json| CardBatch::from_json(json).ok()))
}

/// Writes the transaction unless the stored answer is newer (a `pending` row has
/// none).
async fn upsert_transaction(
    db: &mut sqlx::PgTransaction<'_>,
    account: &str,
    tx: &CardTransaction,
    fetched_at: DateTime<Utc>,
    reconciliation: &Reconciliation,
    origin: Origin,
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
             raw, fetched_at, reconciliation_status, reconciliation_reason, updated_at, discovered_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
                 $21::json, $24, $22, $23, now(), $25)
         ON CONFLICT (account_id, transaction_id) DO UPDATE SET
             card_batch_id = EXCLUDED.card_batch_id, created_at = EXCLUDED.created_at,
             created_at_local = EXCLUDED.created_at_local, status = EXCLUDED.status, type = EXCLUDED.type,
             amount_minor = EXCLUDED.amount_minor, currency = EXCLUDED.currency,
             card_type = EXCLUDED.card_type, card_number_masked = EXCLUDED.card_number_masked,
             card_token = EXCLUDED.card_token, card_holder_name = EXCLUDED.card_holder_name,
             customer_code = EXCLUDED.customer_code, invoice_number = EXCLUDED.invoice_number,
             approval_code = EXCLUDED.approval_code, avs_response = EXCLUDED.avs_response,
             cvv_response = EXCLUDED.cvv_response, helcim_user = EXCLUDED.helcim_user,
             warning = EXCLUDED.warning, raw = EXCLUDED.raw, fetched_at = EXCLUDED.fetched_at,
             reconciliation_status = EXCLUDED.reconciliation_status,
             reconciliation_reason = EXCLUDED.reconciliation_reason, updated_at = now()
         WHERE card_transactions.fetched_at IS NULL
            OR EXCLUDED.fetched_at >= card_transactions.fetched_at",
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
    .bind(fetched_at)
    .bind(origin.as_str())
    .execute(&mut **db)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_outcome_tells_which_replay_was_dead_lettered() {
        for replays in [0, 1, 7] {
            let outcome = dead_outcome("gave up after 2 retries: x: y", replays);
            assert_eq!(dead_replays(&outcome), Some(replays), "{outcome}");
        }
        assert_eq!(dead_outcome("why", 0), "dead-lettered: why");
        for other in [
            "reconciled",
            "recorded",
            "dead-lettered",
            "dead-lettered after replay x: y",
        ] {
            assert_eq!(dead_replays(other), None, "{other}");
        }
    }
}
