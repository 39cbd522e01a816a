//! Counting redeliveries where the broker does not. Quorum queues count them
//! (`x-delivery-count`) and dead-letter past `x-delivery-limit`; classic queues (the
//! fallback on brokers without quorum queues) do neither, so a message that crashes the
//! worker would loop forever. The worker counts those in Postgres, which outlives the
//! crash, and dead-letters past the same limit.

use sqlx::PgPool;

/// The key of one message's deliveries: a retry or a replay is a fresh message.
pub fn key(account_id: &str, webhook_id: &str, retries: u32, replays: u32) -> String {
    format!("{account_id}/{webhook_id}/retry {retries}/replay {replays}")
}

/// Notes one more redelivery of `key`; returns how many deliveries it has had.
pub async fn count(pool: &PgPool, key: &str) -> Result<u32, sqlx::Error> {
    // The first redelivery is the second delivery.
    let deliveries: i32 = sqlx::query_scalar(
        "INSERT INTO queue_redeliveries (message_key, deliveries) VALUES ($1, 2)
         ON CONFLICT (message_key) DO UPDATE
             SET deliveries = queue_redeliveries.deliveries + 1, last_delivered_at = now()
         RETURNING deliveries",
    )
    .bind(key)
    .fetch_one(pool)
    .await?;
    Ok(deliveries.max(0) as u32)
}

/// Forgets `key` once its message is settled.
pub async fn forget(pool: &PgPool, key: &str) {
    if let Err(error) = sqlx::query("DELETE FROM queue_redeliveries WHERE message_key = $1")
        .bind(key)
        .execute(pool)
        .await
    {
        tracing::debug!(%error, "could not forget a redelivery count (harmless)");
    }
}
