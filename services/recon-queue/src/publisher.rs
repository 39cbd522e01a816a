//! Publishing envelopes: the receiver's only way onto the queue.

use std::sync::Arc;

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};

use crate::broker::{Broker, PublishError};
use crate::envelope::{CONTENT_TYPE, WebhookEnvelope};
use crate::topology::WORK;

/// Puts verified webhooks on the work queue, persistently, confirmed.
#[derive(Debug, Clone)]
pub struct EnvelopePublisher {
    broker: Arc<Broker>,
}

impl EnvelopePublisher {
    pub fn new(broker: Arc<Broker>) -> Self {
        EnvelopePublisher { broker }
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Returns once RabbitMQ confirmed the message; any error means it may not be
    /// queued, and the sender must be told to retry.
    pub async fn publish(&self, envelope: &WebhookEnvelope) -> Result<(), PublishError> {
        self.broker
            .publish(WORK, &envelope.encode_to_bytes(), properties(envelope))
            .await
    }
}

/// `message_id` is the webhook id, so the broker's tools and the worker's dedupe
/// see the same key.
pub fn properties(envelope: &WebhookEnvelope) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        "account-id".into(),
        AMQPValue::LongString(envelope.account_id.as_str().into()),
    );
    headers.insert(
        "schema-version".into(),
        AMQPValue::LongUInt(envelope.schema_version),
    );
    BasicProperties::default()
        .with_message_id(envelope.webhook_id.as_str().into())
        .with_content_type(CONTENT_TYPE.into())
        .with_type(envelope.event_type.as_str().into())
        .with_timestamp((envelope.received_at_micros / 1_000_000).max(0) as u64)
        .with_app_id("recon-receiver".into())
        .with_headers(headers)
}
