//! The queues, declared idempotently at start-up by every service that uses them
//! (docs/queues.md has the whole picture):
//!
//! ```text
//!                       ┌──────── routing key "work" ───────▶ {prefix}.work (quorum)
//!  publish ──▶ {prefix} │                                        │ worker: ack after commit
//!  (direct exchange)    ├── "retry.5s" ──▶ {prefix}.retry.5s ──┐ │ transient failure: publish
//!                       ├── "retry.30s" ─▶ {prefix}.retry.30s ─┤ │ to the next retry queue
//!                       ├── ... (quorum, TTL, then dead- ──────┘ │ back to "work")
//!                       │        lettered at least once)         │
//!                       └── "dead" ──────▶ {prefix}.dead ◀──────┘ permanent failure, or
//!                                          (classic: no TTL,       delivered too often
//!                                           no length or delivery limit)
//! ```
//!
//! RabbitMQ has no delay plugin here, so a delayed retry is a queue whose messages
//! expire after its TTL and are dead-lettered back to the work queue. Every queue the
//! broker dead-letters from is a quorum queue with `x-dead-letter-strategy:
//! at-least-once` (which needs `x-overflow: reject-publish`): the broker keeps the
//! message until the target queue confirmed it, so no hop is at most once.
//!
//! The dead queue is a classic queue on purpose: classic queues have no delivery
//! limit in any RabbitMQ version, so an operator browsing it (get, then return) can
//! never make the broker drop a dead letter.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Connection, ErrorKind, ExchangeKind};

/// The durable topic exchange attribution alerts are published on (routing key
/// `attribution.<kind>`), by default. Subscribers bind their own queues to it; no
/// queue of ours is bound, so a message nobody subscribed to is dropped by design.
pub const ALERTS_EXCHANGE: &str = "recon.alerts";

/// Routing key of the work queue.
pub const WORK: &str = "work";
/// Routing key of the dead-letter queue.
pub const DEAD: &str = "dead";
/// After this many deliveries of one message (crash loops), it is dead-lettered: by
/// the broker on quorum queues (`x-delivery-limit`), by the worker on classic ones.
pub const DELIVERY_LIMIT: i64 = 20;

/// The growing delays of the retry queues, by default.
pub const RETRY_DELAYS: [Duration; 4] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
    Duration::from_secs(600),
];

/// Reads delays like `5s,30s,2m,10m` or `200ms,1s` (`AMQP_RETRY_DELAYS`).
pub fn parse_delays(text: &str) -> Result<Vec<Duration>, String> {
    let parse_one = |item: &str| -> Result<Duration, String> {
        let item = item.trim();
        let (number, unit) = item.split_at(
            item.find(|c: char| !c.is_ascii_digit())
                .unwrap_or(item.len()),
        );
        let n: u64 = number
            .parse()
            .map_err(|_| format!("{item:?} does not start with a number"))?;
        let delay = match unit {
            "ms" => Duration::from_millis(n),
            "s" | "" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            _ => return Err(format!("{item:?}: use ms, s, m or h")),
        };
        if delay.is_zero() {
            return Err(format!("{item:?}: a delay must be more than zero"));
        }
        Ok(delay)
    };
    let delays: Vec<Duration> = text
        .split(',')
        .filter(|i| !i.trim().is_empty())
        .map(parse_one)
        .collect::<Result<_, _>>()?;
    if delays.is_empty() {
        return Err("no delays given".into());
    }
    Ok(delays)
}

/// Reads one duration like `72h`, `10m` or `500ms` (settings that take a time).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    match parse_delays(text)?.as_slice() {
        [one] => Ok(*one),
        _ => Err(format!("{text:?}: give one duration, like 72h, 10m or 30s")),
    }
}

/// Retry delays as configured (`AMQP_RETRY_DELAYS`), for settings parsers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryDelays(pub Vec<Duration>);

impl std::str::FromStr for RetryDelays {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_delays(text).map(RetryDelays)
    }
}

/// Names under one prefix (tests use a random one each), and the retry delays.
/// Every service sharing a prefix must use the same delays: they are queue arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub prefix: String,
    pub retry_delays: Vec<Duration>,
    /// Declare classic queues even where quorum queues are available: what a broker
    /// without quorum queues gets, and how tests exercise that fallback.
    pub classic_only: bool,
    /// The attribution alerts' topic exchange ([`ALERTS_EXCHANGE`] unless configured;
    /// tests use their own).
    pub alerts_exchange: String,
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
            retry_delays: RETRY_DELAYS.to_vec(),
            classic_only: false,
            alerts_exchange: ALERTS_EXCHANGE.to_string(),
        }
    }

    /// Another alerts exchange (`AMQP_ALERTS_EXCHANGE`; tests use a random one).
    pub fn with_alerts_exchange(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        if !name.is_empty() {
            self.alerts_exchange = name;
        }
        self
    }

    /// Classic queues only (see [`Topology::classic_only`]).
    pub fn classic(mut self) -> Self {
        self.classic_only = true;
        self
    }

    /// Other retry delays (tests use short ones).
    pub fn with_retry_delays(mut self, delays: Vec<Duration>) -> Self {
        if !delays.is_empty() {
            self.retry_delays = delays;
        }
        self
    }

    /// The delay before retry number `retry` (0-based); the last delay repeats.
    pub fn retry_delay(&self, retry: u32) -> Duration {
        let index = (retry as usize).min(self.retry_delays.len() - 1);
        self.retry_delays[index]
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
        if delay.subsec_millis() == 0 {
            format!("retry.{}s", delay.as_secs())
        } else {
            format!("retry.{}ms", delay.as_millis())
        }
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
        channel
            .exchange_declare(
                self.alerts_exchange.as_str().into(),
                ExchangeKind::Topic,
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
        for &delay in &self.retry_delays {
            let mut args = broker_dead_letters(kind);
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
            declare_durable(&channel, &queue, args)
                .await
                .map_err(|e| explain_mismatch(&queue, e))?;
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
        if self.classic_only {
            self.declare_pair(&channel, QueueKind::Classic).await?;
            let _ = channel.close(200, "topology declared".into()).await;
            return Ok(QueueKind::Classic);
        }
        let quorum = self.declare_pair(&channel, QueueKind::Quorum).await;
        let (channel, kind) = match quorum {
            Ok(()) => (channel, QueueKind::Quorum),
            // The queues exist with other arguments (an older version's): falling back
            // would fail the same way, and the operator has to act (docs/queues.md).
            Err(error) if is_precondition_failed(&error) => return Err(error),
            Err(error) => {
                // The failed declaration closed the channel; an older broker without
                // quorum queues. Classic durable queues still keep confirmed messages,
                // and the worker enforces the delivery limit itself.
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
        let mut work_args = broker_dead_letters(kind);
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
        let work = self.work_queue();
        declare_durable(channel, &work, work_args)
            .await
            .map_err(|e| explain_mismatch(&work, e))?;
        bind(channel, &work, &self.exchange(), WORK).await?;
        let dead = self.dead_queue();
        declare_durable(channel, &dead, dead_queue_arguments())
            .await
            .map_err(|e| explain_mismatch(&dead, e))?;
        bind(channel, &dead, &self.exchange(), DEAD).await
    }

    /// Every queue's name and the messages waiting in it (work, retries, dead).
    pub async fn depths(&self, connection: &Connection) -> lapin::Result<Vec<(String, u32)>> {
        let channel = connection.create_channel().await?;
        let mut queues = vec![self.work_queue()];
        queues.extend(self.retry_delays.iter().map(|d| self.retry_queue(*d)));
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
        queues.extend(self.retry_delays.iter().map(|d| self.retry_queue(*d)));
        for queue in queues {
            channel
                .queue_delete(queue.into(), Default::default())
                .await?;
        }
        // The shared alerts exchange stays (subscribers' bindings hang off it); a
        // test's own one goes with its prefix.
        if self.alerts_exchange != ALERTS_EXCHANGE {
            channel
                .exchange_delete(self.alerts_exchange.as_str().into(), Default::default())
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

/// The arguments of a queue the broker dead-letters from: on quorum queues, at least
/// once (the broker holds the message until the target confirmed it), which RabbitMQ
/// allows only with `reject-publish` overflow. Classic queues cannot do better than at
/// most once (docs/queues.md says what that fallback costs).
fn broker_dead_letters(kind: QueueKind) -> FieldTable {
    let mut args = FieldTable::default();
    if kind == QueueKind::Quorum {
        args.insert("x-queue-type".into(), long_string("quorum"));
        args.insert(
            "x-dead-letter-strategy".into(),
            long_string("at-least-once"),
        );
        args.insert("x-overflow".into(), long_string("reject-publish"));
    }
    args
}

/// The dead queue keeps everything until an operator replays it: a classic queue (no
/// delivery limit to count browsing against) with no TTL, length limit or dead-letter
/// target of its own.
pub fn dead_queue_arguments() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long_string("classic"));
    args
}

/// Whether the broker refused a declaration because the queue exists with other
/// arguments (406 PRECONDITION_FAILED).
pub fn is_precondition_failed(error: &lapin::Error) -> bool {
    matches!(error.kind(), ErrorKind::ProtocolError(e)
        if *e.kind() == AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED))
}

/// Logs what an operator does when a queue exists with an older version's arguments.
fn explain_mismatch(queue: &str, error: lapin::Error) -> lapin::Error {
    if is_precondition_failed(&error) {
        tracing::error!(
            queue,
            %error,
            "the queue exists with other arguments (made by an older version); \
             move to a new AMQP_PREFIX and drain the old queues as docs/queues.md \
             (\"Upgrading\") describes"
        );
    }
    error
}

fn long_string(text: &str) -> AMQPValue {
    AMQPValue::LongString(text.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_parse_with_units_and_bad_ones_say_why() {
        assert_eq!(
            parse_delays("5s,30s,2m,10m").unwrap(),
            RETRY_DELAYS.to_vec()
        );
        assert_eq!(
            parse_delays("200ms, 1s").unwrap(),
            vec![Duration::from_millis(200), Duration::from_secs(1)]
        );
        for bad in ["", "5x", "0s", "s", "1,,"] {
            if bad == "1,," {
                assert!(parse_delays(bad).is_ok());
                continue;
            }
            assert!(parse_delays(bad).is_err(), "{bad}");
        }
    }

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
        assert_eq!(
            Topology::retry_key(Duration::from_millis(200)),
            "retry.200ms"
        );
        let short = Topology::new("t")
            .with_retry_delays(vec![Duration::from_millis(200), Duration::from_secs(1)]);
        assert_eq!(short.retry_delay(0), Duration::from_millis(200));
        assert_eq!(short.retry_delay(7), Duration::from_secs(1));
    }
}
