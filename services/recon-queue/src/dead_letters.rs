//! The dead-letter queue, for operators: list what is there and why, and replay it onto
//! the work queue. A replayed message is processed like a new one, retries reset, and
//! if it fails again it comes back here: it is never lost.
//!
//! Browsing takes messages with `basic.get` without acknowledging them and then closes
//! the channel, which returns them all to their places in the queue. The dead queue is
//! a classic queue (see [`crate::topology`]): classic queues keep no delivery count and
//! have no delivery limit, so browsing any number of times can never make the broker
//! drop a dead letter, as RabbitMQ 4's quorum queues would past their limit.

use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};

use crate::broker::{Broker, PublishError};
use crate::consumer::{
    DEAD_REASON_HEADER, LAST_ERROR_HEADER, MESSAGE_RETRIES_HEADER, REPLAYED_AT_HEADER,
    REPLAYS_HEADER, RETRIES_HEADER, header_text, header_u32,
};
use crate::envelope::WebhookEnvelope;
use crate::topology::WORK;

/// One message in the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its place in the queue (0 = the oldest), as of the listing.
    pub position: usize,
    pub webhook_id: String,
    pub account_id: String,
    pub event_type: String,
    pub object_id: Option<String>,
    pub reason: String,
    pub replays: u32,
}

/// One page of the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub letters: Vec<DeadLetter>,
    /// The `offset` of the next page; `None` when this page reached the end.
    pub next_offset: Option<usize>,
}

fn unavailable(e: lapin::Error) -> PublishError {
    PublishError::Unavailable(e.to_string())
}

/// Reads up to `limit` dead letters from position `offset` on; every message stays in
/// the queue, in its place. Pages are stable while nothing is replayed: new dead
/// letters join at the end.
pub async fn list(broker: &Broker, offset: usize, limit: usize) -> Result<Page, PublishError> {
    let channel = open(broker).await?;
    let mut letters = Vec::new();
    let mut position = 0;
    let mut more = false;
    while let Some(message) = get(broker, &channel).await? {
        if position >= offset + limit {
            more = true;
            break;
        }
        if position >= offset {
            letters.push(describe(&message, position));
        }
        position += 1;
    }
    // Closing without acknowledging puts every message back where it was.
    let _ = channel.close(200, "listed".into()).await;
    Ok(Page {
        letters,
        next_offset: more.then_some(offset + limit),
    })
}

/// Moves dead letters back onto the work queue (those of `webhook_id`, or all);
/// returns how many. Each is confirmed on the work queue before it leaves this one;
/// the others go back to their places when the channel closes.
///
/// Only the messages in the queue when the replay starts are looked at: one that fails
/// again at once comes back to the end of the dead queue while the replay runs, and
/// taking it again would replay it over and over, never ending.
pub async fn replay(broker: &Broker, webhook_id: Option<&str>) -> Result<usize, PublishError> {
    let channel = open(broker).await?;
    let waiting = channel
        .queue_declare(
            broker.topology().dead_queue().as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(unavailable)?
        .message_count() as usize;
    let mut replayed = 0;
    let mut position = 0;
    let result = async {
        while position < waiting
            && let Some(message) = get(broker, &channel).await?
        {
            let letter = describe(&message, position);
            position += 1;
            if webhook_id.is_some_and(|id| id != letter.webhook_id) {
                continue;
            }
            // A fresh start: the retry counts and the old reasons go.
            let mut kept = message
                .properties
                .headers()
                .clone()
                .unwrap_or_default()
                .inner()
                .clone();
            for name in [
                RETRIES_HEADER,
                MESSAGE_RETRIES_HEADER,
                LAST_ERROR_HEADER,
                DEAD_REASON_HEADER,
            ] {
                kept.remove(&ShortString::from(name));
            }
            let mut headers = FieldTable::from(kept);
            headers.insert(
                REPLAYS_HEADER.into(),
                AMQPValue::LongUInt(letter.replays + 1),
            );
            // An outage is given up on by time: counted from now, or an old webhook
            // would be dead-lettered again by its first 429 or 503.
            headers.insert(
                REPLAYED_AT_HEADER.into(),
                AMQPValue::LongLongInt(now_micros()),
            );
            let properties = message.properties.clone().with_headers(headers);
            broker.publish(WORK, &message.data, properties).await?;
            if !message.ack(Default::default()).await.map_err(unavailable)? {
                return Err(PublishError::Channel(
                    "the channel closed before the dead letter was removed; it stays \
                     in the dead-letter queue (and is also on the work queue)"
                        .into(),
                ));
            }
            replayed += 1;
        }
        Ok(())
    }
    .await;
    let _ = channel.close(200, "replayed".into()).await;
    result.map(|()| replayed)
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as i64)
}

async fn open(broker: &Broker) -> Result<lapin::Channel, PublishError> {
    let connection = broker.connection().await?;
    connection.create_channel().await.map_err(unavailable)
}

/// The next message, unacknowledged (so none is returned twice on this channel).
async fn get(
    broker: &Broker,
    channel: &lapin::Channel,
) -> Result<Option<lapin::message::BasicGetMessage>, PublishError> {
    channel
        .basic_get(
            broker.topology().dead_queue().into(),
            BasicGetOptions { no_ack: false },
        )
        .await
        .map_err(unavailable)
}

fn describe(message: &lapin::message::BasicGetMessage, position: usize) -> DeadLetter {
    let envelope = WebhookEnvelope::decode_from(&message.data).ok();
    let properties = &message.properties;
    // Our own reason, or the broker's (a crash loop past the delivery limit).
    let reason = header_text(properties, DEAD_REASON_HEADER).unwrap_or_else(|| {
        "dead-lettered by RabbitMQ (delivered too many times: the worker kept failing on it)"
            .to_string()
    });
    DeadLetter {
        position,
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
