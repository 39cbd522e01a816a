//! The dead-letter queue, for operators: list what is there and why, and replay it onto
//! the work queue. A replayed message is processed like a new one, retries reset, and
//! if it fails again it comes back here: it is never lost.

use lapin::options::{BasicGetOptions, BasicNackOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};

use crate::broker::{Broker, PublishError};
use crate::consumer::{
    DEAD_REASON_HEADER, LAST_ERROR_HEADER, REPLAYS_HEADER, RETRIES_HEADER, header_text, header_u32,
};
use crate::envelope::WebhookEnvelope;
use crate::topology::WORK;

/// One message in the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub webhook_id: String,
    pub account_id: String,
    pub event_type: String,
    pub object_id: Option<String>,
    pub reason: String,
    pub replays: u32,
}

fn unavailable(e: lapin::Error) -> PublishError {
    PublishError::Unavailable(e.to_string())
}

/// Reads every dead letter (they stay in the queue).
pub async fn list(broker: &Broker) -> Result<Vec<DeadLetter>, PublishError> {
    let (channel, messages) = take_all(broker).await?;
    let letters = messages.iter().map(describe).collect();
    for message in messages {
        let _ = message
            .nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await;
    }
    let _ = channel.close(200, "listed".into()).await;
    Ok(letters)
}

/// Moves dead letters back onto the work queue (those of `webhook_id`, or all);
/// returns how many. Each is confirmed on the work queue before it leaves this one.
pub async fn replay(broker: &Broker, webhook_id: Option<&str>) -> Result<usize, PublishError> {
    let (channel, messages) = take_all(broker).await?;
    let mut replayed = 0;
    for message in messages {
        let letter = describe(&message);
        if webhook_id.is_some_and(|id| id != letter.webhook_id) {
            let _ = message
                .nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await;
            continue;
        }
        // A fresh start: the retry count and the old reasons go.
        let mut kept = message
            .properties
            .headers()
            .clone()
            .unwrap_or_default()
            .inner()
            .clone();
        for name in [RETRIES_HEADER, LAST_ERROR_HEADER, DEAD_REASON_HEADER] {
            kept.remove(&ShortString::from(name));
        }
        let mut headers = FieldTable::from(kept);
        headers.insert(
            REPLAYS_HEADER.into(),
            AMQPValue::LongUInt(letter.replays + 1),
        );
        let properties = message.properties.clone().with_headers(headers);
        broker.publish(WORK, &message.data, properties).await?;
        message.ack(Default::default()).await.map_err(unavailable)?;
        replayed += 1;
    }
    let _ = channel.close(200, "replayed".into()).await;
    Ok(replayed)
}

/// Takes every message without acknowledging it (so none is returned twice).
async fn take_all(
    broker: &Broker,
) -> Result<(lapin::Channel, Vec<lapin::message::BasicGetMessage>), PublishError> {
    let connection = broker.connection().await?;
    let channel = connection.create_channel().await.map_err(unavailable)?;
    let mut messages = Vec::new();
    while let Some(message) = channel
        .basic_get(
            broker.topology().dead_queue().into(),
            BasicGetOptions { no_ack: false },
        )
        .await
        .map_err(unavailable)?
    {
        messages.push(message);
    }
    Ok((channel, messages))
}

fn describe(message: &lapin::message::BasicGetMessage) -> DeadLetter {
    let envelope = WebhookEnvelope::decode_from(&message.data).ok();
    let properties = &message.properties;
    // Our own reason, or the broker's (a crash loop past the delivery limit).
    let reason = header_text(properties, DEAD_REASON_HEADER).unwrap_or_else(|| {
        "dead-lettered by RabbitMQ (delivered too many times: the worker kept failing on it)"
            .to_string()
    });
    DeadLetter {
        webhook_id: envelope
            .as_ref()
            .map(|e| e.webhook_id.clone())
            .unwrap_or_else(|| "(undecodable)".into()),
        account_id: envelope
            .as_ref()
            .map(|e| e.account_id.clone())
            .unwrap_or_default(),
        event_type: envelope
            .as_ref()
            .map(|e| e.event_type.clone())
            .unwrap_or_default(),
        object_id: envelope.and_then(|e| e.object_id),
        reason,
        replays: header_u32(properties, REPLAYS_HEADER).unwrap_or(0),
    }
}
