//! The alert outbox (`attribution_alerts`) to the `recon.alerts` topic exchange.
//!
//! An alert is written in the database transaction that causes it; here any replica
//! takes unpublished ones (`FOR UPDATE SKIP LOCKED`, so two never take the same),
//! publishes each persistently with publisher confirms, and only after RabbitMQ
//! confirmed it sets `published_at` and creates its webhook deliveries, in the same
//! transaction. A broker outage leaves the rows unpublished for the next round; a
//! crash between the confirm and the commit publishes the alert again (at least
//! once: consumers dedupe on `alert_id`, which is also the AMQP `message_id`).

use chrono::{DateTime, Utc};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use prost::Message;
use recon_attribution::Month;
use recon_queue::envelope::ALERT_CONTENT_TYPE;
use recon_queue::envelope::alert::{AttributionAlert, Detail};
use recon_queue::{Broker, PublishError};
use sqlx::{PgPool, Postgres, Row, Transaction};

/// The `schema_version` of the alerts this build writes.
pub const ALERT_SCHEMA_VERSION: u32 = 1;

/// How many alerts one round takes.
const BATCH: i64 = 100;

/// The routing key of an alert kind.
pub fn routing_key(kind: &str) -> String {
    format!("attribution.{kind}")
}

/// Writes an alert to the outbox unless one with `dedupe_key` exists; returns its id
/// when this call wrote it. The payload carries the row's own id, so it is written in
/// two steps inside the caller's transaction.
#[allow(clippy::too_many_arguments)]
pub async fn insert_alert(
    tx: &mut Transaction<'_, Postgres>,
    dedupe_key: &str,
    kind: &str,
    account_id: Option<&str>,
    month: Month,
    deadline: DateTime<Utc>,
    now: DateTime<Utc>,
    detail: Detail,
) -> Result<Option<i64>, sqlx::Error> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO attribution_alerts (dedupe_key, kind, account_id, month, payload, created_at)
         VALUES ($1, $2, $3, $4, '\\x'::bytea, $5)
         ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
    )
    .bind(dedupe_key)
    .bind(kind)
    .bind(account_id)
    .bind(month.first_day())
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(id) = id else {
        return Ok(None);
    };
    let alert = AttributionAlert {
        schema_version: ALERT_SCHEMA_VERSION,
        alert_id: id as u64,
        kind: kind.to_string(),
        account_id: account_id.unwrap_or_default().to_string(),
        month: month.to_string(),
        deadline: deadline.timestamp(),
        created_at_micros: now.timestamp_micros(),
        detail: Some(detail),
    };
    sqlx::query("UPDATE attribution_alerts SET payload = $2 WHERE id = $1")
        .bind(id)
        .bind(alert.encode_to_vec())
        .execute(&mut **tx)
        .await?;
    Ok(Some(id))
}

/// The bytes to publish: the stored payload with `alert_id` set to the row's id (so
/// an alert written without it still names itself), or the stored bytes unchanged
/// when they do not decode (a bug elsewhere must not stall the outbox).
pub fn payload_for(id: i64, stored: &[u8]) -> Vec<u8> {
    match AttributionAlert::decode(stored) {
        Ok(mut alert) => {
            alert.alert_id = id as u64;
            alert.encode_to_vec()
        }
        Err(error) => {
            tracing::error!(alert_id = id, %error, "an attribution alert's payload does not decode; publishing it as stored");
            stored.to_vec()
        }
    }
}

fn properties(id: i64, kind: &str, created_at: DateTime<Utc>) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        "schema-version".into(),
        AMQPValue::LongUInt(ALERT_SCHEMA_VERSION),
    );
    BasicProperties::default()
        .with_message_id(id.to_string().as_str().into())
        .with_content_type(ALERT_CONTENT_TYPE.into())
        .with_type(kind.into())
        .with_timestamp(created_at.timestamp().max(0) as u64)
        .with_app_id("recon-worker".into())
        .with_headers(headers)
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Published {
    /// Alerts RabbitMQ confirmed and that are now marked published.
    pub published: usize,
    /// Of those, how many no queue was bound for: RabbitMQ returned them (they are
    /// published `mandatory` to find out) and nobody received them on AMQP.
    pub unroutable: usize,
}

/// One round: publishes what is unpublished (up to a batch). Stops at the first
/// failed publish (the rest wait for the next round) and returns the error after
/// committing what was confirmed.
///
/// An alert no queue is bound for (nobody subscribed to its routing key yet) is still
/// marked published: a deployment may use webhooks only, and holding it back would
/// hold back every alert behind it and their webhooks. It is not lost: the outbox row
/// stays in `attribution_alerts`, `reconctl alerts republish --since` publishes it
/// again once a subscriber is bound, and it is counted
/// (`attribution_alerts_unroutable_total{kind}`) and logged so the gap is seen.
pub async fn publish_pending(
    pool: &PgPool,
    broker: &Broker,
    now: DateTime<Utc>,
) -> anyhow::Result<Published> {
    let exchange = broker.topology().alerts_exchange.clone();
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "SELECT id, kind, account_id, payload, created_at FROM attribution_alerts
          WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    let mut done = Published::default();
    let mut failure = None;
    for row in &rows {
        let id: i64 = row.get("id");
        let kind: String = row.get("kind");
        let account: Option<String> = row.get("account_id");
        let payload = payload_for(id, row.get::<&[u8], _>("payload"));
        let sent = broker
            .publish_to(
                &exchange,
                &routing_key(&kind),
                true,
                &payload,
                properties(id, &kind, row.get("created_at")),
            )
            .await;
        match sent {
            Ok(()) => {}
            Err(PublishError::Unroutable) => {
                done.unroutable += 1;
                metrics::counter!("attribution_alerts_unroutable_total", "kind" => kind.clone())
                    .increment(1);
            }
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
        sqlx::query("UPDATE attribution_alerts SET published_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        recon_store::attribution::alert_webhooks::enqueue(&mut tx, id, account.as_deref(), now)
            .await?;
        done.published += 1;
    }
    tx.commit().await?;
    if done.unroutable > 0 {
        tracing::warn!(
            unroutable = done.unroutable,
            %exchange,
            "attribution alerts published with no queue bound to the exchange: no AMQP subscriber got them (kept in attribution_alerts; `reconctl alerts republish --since` sends them again)"
        );
    }
    match failure {
        Some(error) => Err(anyhow::anyhow!(
            "published {} alerts, then: {error}; the rest wait for the next round",
            done.published
        )),
        None => Ok(done),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use recon_queue::envelope::alert::MonthClosedDetail;

    #[test]
    fn the_published_payload_names_its_row() {
        let alert = AttributionAlert {
            schema_version: 1,
            alert_id: 0,
            kind: "month_closed".into(),
            month: "2026-11".into(),
            detail: Some(Detail::MonthClosed(MonthClosedDetail {
                expired_gaps: 2,
                report_sha256: "ab".into(),
            })),
            ..Default::default()
        };
        let out =
            AttributionAlert::decode(payload_for(42, &alert.encode_to_vec()).as_slice()).unwrap();
        assert_eq!(out.alert_id, 42);
        assert_eq!(out.detail, alert.detail);
        assert_eq!(payload_for(7, &[0xff, 0xff]), vec![0xff, 0xff]);
        assert_eq!(routing_key("escalation"), "attribution.escalation");
    }
}
