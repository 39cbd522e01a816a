//! Taking work off the queue, so the worker never touches lapin: each [`Job`] ends in
//! exactly one of `ack` (done), `retry_later` (to the next delay queue, or the
//! dead-letter queue once retries run out), `dead_letter` (with the reason), or
//! `requeue`. The original is acknowledged only after its successor was confirmed.

use std::sync::Arc;

use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Consumer};

use crate::broker::{Broker, PublishError};
use crate::envelope::WebhookEnvelope;
use crate::topology::{DEAD, Topology};

/// How many retries a message has had (0 on first delivery).
pub const RETRIES_HEADER: &str = "x-recon-retries";
/// Why the last attempt failed.
pub const LAST_ERROR_HEADER: &str = "x-recon-last-error";
/// Why the message was dead-lettered.
pub const DEAD_REASON_HEADER: &str = "x-recon-dead-reason";
/// How many times an operator replayed it from the dead-letter queue.
pub const REPLAYS_HEADER: &str = "x-recon-replays";

/// A consumer of the work queue with a bounded prefetch.
pub struct WorkConsumer {
    broker: Arc<Broker>,
    channel: Channel,
    consumer: Consumer,
}

impl std::fmt::Debug for WorkConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkConsumer")
            .field("tag", &self.consumer.tag())
            .finish()
    }
}

/// What happened to a job the worker gave up on for now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deferred {
    /// Published to the retry queue with this delay.
    Retry(std::time::Duration),
    /// Retries ran out: published to the dead-letter queue.
    Dead,
}

impl WorkConsumer {
    /// Starts consuming; at most `prefetch` messages are unacknowledged at once.
    pub async fn start(
        broker: Arc<Broker>,
        prefetch: u16,
        tag: &str,
    ) -> Result<Self, PublishError> {
        let connection = broker.connection().await?;
        let unavailable = |e: lapin::Error| PublishError::Unavailable(e.to_string());
        let channel = connection.create_channel().await.map_err(unavailable)?;
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(unavailable)?;
        let consumer = channel
            .basic_consume(
                broker.topology().work_queue().into(),
                tag.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
        Ok(WorkConsumer {
            broker,
            channel,
            consumer,
        })
    }

    /// The next job; `None` when the consumer was cancelled or its channel closed.
    pub async fn next(&mut self) -> Option<Result<Job, lapin::Error>> {
        let delivery = self.consumer.next().await?;
        Some(delivery.map(|delivery| Job::new(delivery, Arc::clone(&self.broker))))
    }

    /// Stops new deliveries; jobs already handed out still ack on this channel.
    pub async fn cancel(&self) {
        let tag = self.consumer.tag();
        let _ = self.channel.basic_cancel(tag, Default::default()).await;
    }
}

/// One message from the work queue.
pub struct Job {
    /// The decoded envelope, or why it could not be decoded.
    pub envelope: Result<WebhookEnvelope, String>,
    /// Retries so far (0 on first delivery).
    pub retries: u32,
    /// RabbitMQ redelivered it (a worker died or a channel closed before the ack).
    pub redelivered: bool,
    delivery: lapin::message::Delivery,
    broker: Arc<Broker>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field(
                "webhook_id",
                &self.envelope.as_ref().map(|e| e.webhook_id.as_str()).ok(),
            )
            .field("retries", &self.retries)
            .field("redelivered", &self.redelivered)
            .finish()
    }
}

impl Job {
    fn new(delivery: lapin::message::Delivery, broker: Arc<Broker>) -> Self {
        let envelope = WebhookEnvelope::decode_from(&delivery.data)
            .map_err(|e| format!("the message is not a WebhookEnvelope: {e}"));
        let retries = header_u32(&delivery.properties, RETRIES_HEADER).unwrap_or(0);
        let redelivered = delivery.redelivered;
        Job {
            envelope,
            retries,
            redelivered,
            delivery,
            broker,
        }
    }

    /// Done: the work is committed.
    pub async fn ack(self) -> Result<(), PublishError> {
        self.delivery
            .ack(BasicAckOptions::default())
            .await
            .map(|_| ())
            .map_err(|e| PublishError::Channel(e.to_string()))
    }

    /// Not now: to the retry queue for retry number `retries + 1`, or to the
    /// dead-letter queue when `max_retries` are spent.
    pub async fn retry_later(
        self,
        reason: &str,
        max_retries: u32,
    ) -> Result<Deferred, PublishError> {
        if self.retries >= max_retries {
            let reason = format!("gave up after {} retries: {reason}", self.retries);
            self.dead_letter(&reason).await?;
            return Ok(Deferred::Dead);
        }
        let topology: &Topology = self.broker.topology();
        let delay = topology.retry_delay(self.retries);
        let mut headers = self.headers();
        headers.insert(RETRIES_HEADER.into(), AMQPValue::LongUInt(self.retries + 1));
        headers.insert(LAST_ERROR_HEADER.into(), long_string(reason));
        let properties = self.delivery.properties.clone().with_headers(headers);
        self.broker
            .publish(&Topology::retry_key(delay), &self.delivery.data, properties)
            .await?;
        self.ack().await?;
        Ok(Deferred::Retry(delay))
    }

    /// Never: to the dead-letter queue with the reason, for an operator to inspect and
    /// replay.
    pub async fn dead_letter(self, reason: &str) -> Result<(), PublishError> {
        let mut headers = self.headers();
        headers.insert(DEAD_REASON_HEADER.into(), long_string(reason));
        let properties = self.delivery.properties.clone().with_headers(headers);
        self.broker
            .publish(DEAD, &self.delivery.data, properties)
            .await?;
        self.ack().await
    }

    /// Back to the queue at once (shutting down before the work started).
    pub async fn requeue(self) -> Result<(), PublishError> {
        self.delivery
            .nack(BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            })
            .await
            .map(|_| ())
            .map_err(|e| PublishError::Channel(e.to_string()))
    }

    fn headers(&self) -> FieldTable {
        self.delivery
            .properties
            .headers()
            .clone()
            .unwrap_or_default()
    }
}

fn long_string(text: &str) -> AMQPValue {
    // AMQP long strings are unbounded, but a reason is for people: keep it short.
    let text: String = text.chars().take(1000).collect();
    AMQPValue::LongString(text.as_str().into())
}

/// Reads a numeric header whatever integer type the sender used.
pub fn header_u32(properties: &BasicProperties, name: &str) -> Option<u32> {
    let headers = properties.headers().as_ref()?;
    let value = headers.inner().get(&ShortString::from(name))?;
    match value {
        AMQPValue::LongUInt(n) => Some(*n),
        AMQPValue::LongInt(n) => u32::try_from(*n).ok(),
        AMQPValue::LongLongInt(n) => u32::try_from(*n).ok(),
        AMQPValue::ShortUInt(n) => Some(u32::from(*n)),
        AMQPValue::ShortInt(n) => u32::try_from(*n).ok(),
        _ => None,
    }
}

/// Reads a text header.
pub fn header_text(properties: &BasicProperties, name: &str) -> Option<String> {
    let headers = properties.headers().as_ref()?;
    match headers.inner().get(&ShortString::from(name))? {
        AMQPValue::LongString(text) => Some(text.to_string()),
        AMQPValue::ShortString(text) => Some(text.to_string()),
        _ => None,
    }
}
