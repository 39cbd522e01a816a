//! RabbitMQ for helcim-recon, so the services never touch lapin directly:
//!
//! - [`envelope`]: the versioned protobuf message for one verified webhook;
//! - [`topology`]: exchange, work queue, delayed retry queues and dead-letter queue,
//!   declared idempotently;
//! - [`broker`]: one connection with a pool of confirm-mode channels, repaired or
//!   reconnected on failure;
//! - [`publisher`]: publish an envelope and return only once RabbitMQ confirmed it.

pub mod amqp_url;
pub mod broker;
pub mod consumer;
pub mod dead_letters;
pub mod envelope;
pub mod publisher;
pub mod settings;
pub mod topology;

pub use amqp_url::{InvalidAmqpUrl, parse_amqp_url};
pub use broker::{Broker, BrokerConfig, BrokerState, PublishError};
pub use consumer::{Job, WorkConsumer};
pub use envelope::WebhookEnvelope;
pub use publisher::EnvelopePublisher;
pub use settings::AmqpSettings;
pub use topology::Topology;
