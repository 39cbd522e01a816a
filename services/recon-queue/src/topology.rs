//! The queues, declared idempotently at start-up by every service that uses them:
//!
//! ```text
//!                       ┌──────── routing key "work" ───────▶ {prefix}.work (quorum)
//!  publish ──▶ {prefix} │                                        │ worker: ack after commit
//!  (direct exchange)    ├── "retry.5s" ──▶ {prefix}.retry.5s ──┐ │ transient failure: publish
//!                       ├── "retry.30s" ─▶ {prefix}.retry.30s ─┤ │ to the next retry queue
//!                       ├── ... (TTL, then dead-lettered ──────┘ │ back to "work")
//!                       └── "dead" ──────▶ {prefix}.dead ◀──────┘ permanent failure, or
//!                                                                  delivered too often
//! ```
//!
//! RabbitMQ has no delay plugin here, so a delayed retry is a queue whose messages
//! expire after its TTL and are dead-lettered back to the work queue.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Connection, ExchangeKind};

/// Routing key of the work queue.
pub const WORK: &str = "work";
/// Routing key of the dead-letter queue.
pub const DEAD: &str = "dead";
/// After this many deliveries of one message (crash loops), the broker dead-letters it.
pub const DELIVERY_LIMIT: i64 = 20;

/// The growing delays of the retry queues.
pub const RETRY_DELAYS: [Duration; 4] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
    Duration::from_secs(600),
];

/// Names under one prefix (tests use a random one each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub prefix: String,
}

/// Which kind of queue the broker gave the work queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    Quorum,
    Classic,
}

impl Topology {
    pub fn new(prefix: impl Into<String>) -> Self {
        Topology {
            prefix: prefix.into(),
        }
    }

    pub fn exchange(&self) -> String {
        self.prefix.clone()
    }

    pub fn work_queue(&self) -> String {
        format!("{}.{WORK}", self.prefix)
    }

    pub fn dead_queue(&self) -> String {
        format!("{}.{DEAD}", self.prefix)
    }

    /// The routing key of the retry queue for `delay`.
    pub fn retry_key(delay: Duration) -> String {
        format!("retry.{}s", delay.as_secs())
    }

    pub fn retry_queue(&self, delay: Duration) -> String {
        format!("{}.{}", self.prefix, Topology::retry_key(delay))
    }

    /// Declares everything; safe to repeat. The work and dead queues are quorum
    /// queues where the broker supports them, classic durable queues otherwise.
    pub async fn declare(&self, connection: &Connection) -> lapin::Result<QueueKind> {
        let channel = connection.create_channel().await?;
        channel
            .exchange_declare(
                self.exchange().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        let kind = self.declare_work_and_dead(connection).await?;
        let channel = if channel.status().connected() {
            channel
        } else {
            connection.create_channel().await?
        };
        for delay in RETRY_DELAYS {
            let mut args = FieldTable::default();
            args.insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt(delay.as_millis() as i64),
            );
            args.insert(
                "x-dead-letter-exchange".into(),
                long_string(&self.exchange()),
            );
            args.insert("x-dead-letter-routing-key".into(), long_string(WORK));
            let queue = self.retry_queue(delay);
            declare_durable(&channel, &queue, args).await?;
            bind(
                &channel,
                &queue,
                &self.exchange(),
                &Topology::retry_key(delay),
            )
            .await?;
        }
        let _ = channel.close(200, "topology declared".into()).await;
        Ok(kind)
    }

    async fn declare_work_and_dead(&self, connection: &Connection) -> lapin::Result<QueueKind> {
        let channel = connection.create_channel().await?;
        let quorum = self.declare_pair(&channel, QueueKind::Quorum).await;
        let (channel, kind) = match quorum {
            Ok(()) => (channel, QueueKind::Quorum),
            Err(error) => {
                // The failed declaration closed the channel; an older broker, or
                // queues made classic earlier. Classic durable queues still keep
                // confirmed messages.
                tracing::warn!(%error, "quorum queues refused; declaring classic durable queues");
                let channel = connection.create_channel().await?;
                self.declare_pair(&channel, QueueKind::Classic).await?;
                (channel, QueueKind::Classic)
            }
        };
        let _ = channel.close(200, "topology declared".into()).await;
        Ok(kind)
    }

    async fn declare_pair(&self, channel: &Channel, kind: QueueKind) -> lapin::Result<()> {
        let base = || {
            let mut args = FieldTable::default();
            if kind == QueueKind::Quorum {
                args.insert("x-queue-type".into(), long_string("quorum"));
            }
            args
        };
        let mut work_args = base();
        work_args.insert(
            "x-dead-letter-exchange".into(),
            long_string(&self.exchange()),
        );
        work_args.insert("x-dead-letter-routing-key".into(), long_string(DEAD));
        if kind == QueueKind::Quorum {
            work_args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongLongInt(DELIVERY_LIMIT),
            );
        }
        declare_durable(channel, &self.work_queue(), work_args).await?;
        bind(channel, &self.work_queue(), &self.exchange(), WORK).await?;
        declare_durable(channel, &self.dead_queue(), base()).await?;
        bind(channel, &self.dead_queue(), &self.exchange(), DEAD).await
    }

    /// Every queue's name and the messages waiting in it (work, retries, dead).
    pub async fn depths(&self, connection: &Connection) -> lapin::Result<Vec<(String, u32)>> {
        let channel = connection.create_channel().await?;
        let mut queues = vec![self.work_queue()];
        queues.extend(RETRY_DELAYS.iter().map(|d| self.retry_queue(*d)));
        queues.push(self.dead_queue());
        let mut depths = Vec::new();
        for queue in queues {
            let declared = channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            depths.push((queue, declared.message_count()));
        }
        let _ = channel.close(200, "depths read".into()).await;
        Ok(depths)
    }

    /// Deletes every queue and the exchange (tests clean up their prefix with it).
    pub async fn delete(&self, connection: &Connection) -> lapin::Result<()> {
        let channel = connection.create_channel().await?;
        let mut queues = vec![self.work_queue(), self.dead_queue()];
        queues.extend(RETRY_DELAYS.iter().map(|d| self.retry_queue(*d)));
        for queue in queues {
            channel
                .queue_delete(queue.into(), Default::default())
                .await?;
        }
        channel
            .exchange_delete(self.exchange().into(), Default::default())
            .await
    }
}

async fn declare_durable(channel: &Channel, queue: &str, args: FieldTable) -> lapin::Result<()> {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            args,
        )
        .await
        .map(|_| ())
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str) -> lapin::Result<()> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            ShortString::from(key),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

fn long_string(text: &str) -> AMQPValue {
    AMQPValue::LongString(text.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_live_under_the_prefix() {
        let topology = Topology::new("t1");
        assert_eq!(topology.work_queue(), "t1.work");
        assert_eq!(topology.dead_queue(), "t1.dead");
        assert_eq!(
            topology.retry_queue(Duration::from_secs(30)),
            "t1.retry.30s"
        );
        assert_eq!(Topology::retry_key(Duration::from_secs(5)), "retry.5s");
    }
}
