//! Taking work off the queue, so the worker never touches lapin: each [`Job`] ends in
//! exactly one of `ack` (done), `retry_later` (to a delay queue), `dead_letter` (with
//! the reason), or `requeue`. The original is acknowledged only after its successor
//! was confirmed; when the successor cannot be published, the original goes back to
//! the queue (nack with requeue) rather than sitting unacknowledged. A job dropped
//! without being settled (a panic, a forgotten path) is requeued too, so a prefetch
//! slot is never lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Consumer};

use crate::broker::{Broker, BrokerState, PublishError};
use crate::envelope::WebhookEnvelope;
use crate::topology::{DEAD, Topology};

/// How many retries a message has had (0 on first delivery): the retry ladder's step.
pub const RETRIES_HEADER: &str = "x-recon-retries";
/// How many of those retries were for causes of the message's own (they count toward
/// the retry limit; outages do not).
pub const MESSAGE_RETRIES_HEADER: &str = "x-recon-message-retries";
/// Why the last attempt failed.
pub const LAST_ERROR_HEADER: &str = "x-recon-last-error";
/// Why the message was dead-lettered.
pub const DEAD_REASON_HEADER: &str = "x-recon-dead-reason";
/// How many times an operator replayed it from the dead-letter queue.
pub const REPLAYS_HEADER: &str = "x-recon-replays";
/// When an operator last replayed it from the dead-letter queue (Unix microseconds):
/// an outage is given up on by time counted from then, not from the webhook's receipt.
pub const REPLAYED_AT_HEADER: &str = "x-recon-replayed-at";
/// Set by quorum queues on a redelivery: how many times it was delivered before.
pub const DELIVERY_COUNT_HEADER: &str = "x-delivery-count";

/// How long a publish waits for a blocked broker (memory or disk alarm) to unblock
/// before the job gives its message back.
const BLOCKED_WAIT: Duration = Duration::from_secs(30);
/// A pause before a message whose successor could not be published is requeued, so a
/// failing broker does not become a hot loop of redeliveries.
const REQUEUE_PAUSE: Duration = Duration::from_millis(500);

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

    /// Stops new deliveries but keeps the channel open, so the jobs already handed
    /// out can still acknowledge on it (shutdown: cancel, wait for them, then close).
    pub async fn cancel(&self) {
        let tag = self.consumer.tag();
        let _ = self.channel.basic_cancel(tag, Default::default()).await;
    }

    /// Whether the channel is open (acks are possible).
    pub fn is_open(&self) -> bool {
        self.channel.status().connected()
    }

    /// Closes the channel: the broker returns every message still unacknowledged on
    /// it to the queue. Used to recycle a channel a job could not settle on.
    pub async fn close(self) {
        let _ = self.channel.close(200, "consumer closed".into()).await;
    }
}

/// One message from the work queue.
pub struct Job {
    /// The decoded envelope, or why it could not be decoded.
    pub envelope: Result<WebhookEnvelope, String>,
    /// Retries so far (0 on first delivery).
    pub retries: u32,
    /// Retries so far that were the message's own fault (see
    /// [`MESSAGE_RETRIES_HEADER`]).
    pub message_retries: u32,
    /// RabbitMQ redelivered it (a worker died, a channel closed or a job was
    /// requeued before the ack).
    pub redelivered: bool,
    /// Deliveries before this one, as a quorum queue counts them; `None` on a classic
    /// queue (which does not count) or a first delivery.
    pub delivery_count: Option<u32>,
    /// Replays from the dead-letter queue so far.
    pub replays: u32,
    /// When the last replay put it back on the work queue (Unix microseconds).
    pub replayed_at_micros: Option<i64>,
    /// When this worker received it.
    pub received: Instant,
    delivery: lapin::message::Delivery,
    broker: Arc<Broker>,
    settled: bool,
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

impl Drop for Job {
    /// A job nobody settled (a panic unwound through it) goes back to the queue at
    /// once: an unacknowledged message would hold its prefetch slot until the channel
    /// closes.
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let acker = self.delivery.acker.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = acker.nack(requeue()).await;
            });
        }
    }
}

fn requeue() -> BasicNackOptions {
    BasicNackOptions {
        requeue: true,
        ..BasicNackOptions::default()
    }
}

/// lapin answers `Ok(false)` when the channel closed before the ack could be sent:
/// the broker will deliver the message again, so it is a failure.
fn acknowledged(result: lapin::Result<bool>, what: &str) -> Result<(), PublishError> {
    match result {
        Ok(true) => Ok(()),
        Ok(false) => Err(PublishError::Channel(format!(
            "the channel closed before the {what}; RabbitMQ will deliver the message again"
        ))),
        Err(e) => Err(PublishError::Channel(e.to_string())),
    }
}

impl Job {
    fn new(delivery: lapin::message::Delivery, broker: Arc<Broker>) -> Self {
        let envelope = WebhookEnvelope::decode_from(&delivery.data)
            .map_err(|e| format!("the message is not a WebhookEnvelope: {e}"));
        let retries = header_u32(&delivery.properties, RETRIES_HEADER).unwrap_or(0);
        // Messages queued by an older version have no split count: all theirs.
        let message_retries =
            header_u32(&delivery.properties, MESSAGE_RETRIES_HEADER).unwrap_or(retries);
        let delivery_count = header_u32(&delivery.properties, DELIVERY_COUNT_HEADER);
        let redelivered = delivery.redelivered;
        let replays = header_u32(&delivery.properties, REPLAYS_HEADER).unwrap_or(0);
        let replayed_at_micros = header_i64(&delivery.properties, REPLAYED_AT_HEADER);
        Job {
            replays,
            replayed_at_micros,
            envelope,
            retries,
            message_retries,
            redelivered,
            delivery_count,
            received: Instant::now(),
            delivery,
            broker,
            settled: false,
        }
    }

    /// The AMQP `message_id` (the webhook id, as the receiver publishes it).
    pub fn message_id(&self) -> Option<String> {
        self.delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.to_string())
    }

    /// Done: the work is committed. An error means the broker did not take the ack
    /// (the channel closed) and will deliver the message again.
    pub async fn ack(mut self) -> Result<(), PublishError> {
        self.settled = true;
        acknowledged(self.delivery.ack(BasicAckOptions::default()).await, "ack")
    }

    /// Not now: to the retry queue of the next delay. `counted` says whether this
    /// retry counts toward the message's own limit ([`Job::message_retries`]).
    /// On failure the message has been given back to the queue (or will be
    /// redelivered when its channel closes).
    pub async fn retry_later(
        mut self,
        reason: &str,
        counted: bool,
    ) -> Result<Duration, PublishError> {
        let topology: &Topology = self.broker.topology();
        let delay = topology.retry_delay(self.retries);
        let mut headers = self.headers();
        headers.insert(RETRIES_HEADER.into(), AMQPValue::LongUInt(self.retries + 1));
        headers.insert(
            MESSAGE_RETRIES_HEADER.into(),
            AMQPValue::LongUInt(self.message_retries + u32::from(counted)),
        );
        headers.insert(LAST_ERROR_HEADER.into(), long_string(reason));
        self.publish_then_ack(&Topology::retry_key(delay), headers)
            .await?;
        Ok(delay)
    }

    /// Never: to the dead-letter queue with the reason, for an operator to inspect and
    /// replay. On failure the message has been given back to the queue.
    pub async fn dead_letter(mut self, reason: &str) -> Result<(), PublishError> {
        let mut headers = self.headers();
        headers.insert(DEAD_REASON_HEADER.into(), long_string(reason));
        self.publish_then_ack(DEAD, headers).await
    }

    /// Back to the queue at once (shutting down before the work started, a panic, a
    /// dependency that is down).
    pub async fn requeue(mut self) -> Result<(), PublishError> {
        self.settled = true;
        acknowledged(self.delivery.nack(requeue()).await, "requeue")
    }

    /// Publishes the successor (waiting out a blocked broker for a while), then acks
    /// the original; when the successor is not confirmed, requeues the original.
    async fn publish_then_ack(
        &mut self,
        routing_key: &str,
        headers: FieldTable,
    ) -> Result<(), PublishError> {
        let properties = self.delivery.properties.clone().with_headers(headers);
        let waiting_since = Instant::now();
        let published = loop {
            let result = self
                .broker
                .publish(routing_key, &self.delivery.data, properties.clone())
                .await;
            let blocked = matches!(result, Err(PublishError::Blocked))
                || (result.is_err() && self.broker.state() == BrokerState::Blocked);
            if !blocked || waiting_since.elapsed() >= BLOCKED_WAIT {
                break result;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        self.settled = true;
        match published {
            Ok(()) => acknowledged(self.delivery.ack(BasicAckOptions::default()).await, "ack"),
            Err(error) => {
                tokio::time::sleep(REQUEUE_PAUSE).await;
                if let Err(nack) = acknowledged(self.delivery.nack(requeue()).await, "requeue") {
                    tracing::warn!(%nack, "could not requeue either; the channel's closing returns it");
                }
                Err(error)
            }
        }
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

/// Reads a signed 64-bit header (a time in microseconds).
pub fn header_i64(properties: &BasicProperties, name: &str) -> Option<i64> {
    let headers = properties.headers().as_ref()?;
    match headers.inner().get(&ShortString::from(name))? {
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::Timestamp(n) => i64::try_from(*n).ok(),
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
