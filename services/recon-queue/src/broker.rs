//! One AMQP connection and a pool of channels in confirm mode.
//!
//! Publishes share the channels round-robin, many in flight on each, so throughput
//! never waits on one confirm at a time. A channel found closed is replaced; a lost
//! connection is re-established (and the topology re-declared) by the next caller
//! or by the watchdog, without a restart. Modelled on Vector's AMQP sink.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use tokio_util::sync::CancellationToken;

use crate::topology::{QueueKind, Topology};

/// How to reach the broker.
#[derive(Clone)]
pub struct BrokerConfig {
    /// `amqp://user:pass@host:port/vhost`; it holds a password, so it is never logged
    /// (see [`redact_url`]).
    pub url: String,
    pub topology: Topology,
    /// Channels in the pool.
    pub channels: usize,
    /// How long to wait for the broker to confirm one publish.
    pub confirm_timeout: Duration,
    pub connect_timeout: Duration,
    /// Shown in the broker's management UI.
    pub connection_name: String,
}

impl fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("url", &redact_url(&self.url))
            .field("topology", &self.topology)
            .field("channels", &self.channels)
            .field("confirm_timeout", &self.confirm_timeout)
            .finish()
    }
}

impl BrokerConfig {
    pub fn new(url: impl Into<String>, topology: Topology, connection_name: &str) -> Self {
        BrokerConfig {
            url: url.into(),
            topology,
            channels: 4,
            confirm_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            connection_name: connection_name.to_string(),
        }
    }
}

/// Why a publish was not confirmed. Every kind means "not durably queued".
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("RabbitMQ is unreachable: {0}")]
    Unavailable(String),
    #[error("RabbitMQ is blocking publishers (memory or disk alarm)")]
    Blocked,
    #[error("RabbitMQ did not confirm the message within {0:?}")]
    Timeout(Duration),
    #[error("RabbitMQ refused the message (nack)")]
    Nacked,
    #[error("RabbitMQ could not route the message: the topology is missing")]
    Unroutable,
    #[error("publishing failed: {0}")]
    Channel(String),
}

/// How the connection stands, for `/readyz` and the watchdog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerState {
    /// Connected; publishes are accepted.
    Ready,
    /// Connected, but RabbitMQ blocks publishers (a memory or disk alarm). Consuming
    /// and acknowledging still work; publishes wait until the alarm clears.
    Blocked,
    /// No connection (never made, or lost).
    Disconnected,
}

impl BrokerState {
    /// The word `/readyz` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            BrokerState::Ready => "ready",
            BrokerState::Blocked => "blocked",
            BrokerState::Disconnected => "disconnected",
        }
    }
}

struct Live {
    connection: Arc<Connection>,
    channels: Vec<Channel>,
}

/// The connection, its channels, and how to repair them.
pub struct Broker {
    config: BrokerConfig,
    live: Mutex<Option<Live>>,
    /// Serialises reconnects and channel repairs.
    repairing: tokio::sync::Mutex<()>,
    next: AtomicUsize,
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("config", &self.config)
            .field("state", &self.state())
            .finish()
    }
}

impl Broker {
    /// A broker that connects on first use (or via [`Broker::connect`]).
    pub fn new(config: BrokerConfig) -> Self {
        Broker {
            config,
            live: Mutex::new(None),
            repairing: tokio::sync::Mutex::new(()),
            next: AtomicUsize::new(0),
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.config.topology
    }

    /// True when connected and not blocked: publishing works right now.
    pub fn is_ready(&self) -> bool {
        self.state() == BrokerState::Ready
    }

    /// Connected, blocked by an alarm, or not connected: what `/readyz` reports.
    pub fn state(&self) -> BrokerState {
        let live = self.live.lock().expect("lock poisoned");
        match live.as_ref().map(|l| l.connection.status()) {
            Some(status) if status.connected() && status.blocked() => BrokerState::Blocked,
            Some(status) if status.connected() => BrokerState::Ready,
            _ => BrokerState::Disconnected,
        }
    }

    /// Connects (if not connected), declares the topology and opens the channels.
    /// A connection that is merely blocked (a memory or disk alarm) is kept: replacing
    /// it would return every unacknowledged message to the queue and change nothing,
    /// since the new connection would be blocked too.
    pub async fn connect(&self) -> Result<(), PublishError> {
        let _repairing = self.repairing.lock().await;
        if self.state() != BrokerState::Disconnected {
            return Ok(());
        }
        self.reconnect().await
    }

    async fn reconnect(&self) -> Result<(), PublishError> {
        let unavailable = |e: lapin::Error| PublishError::Unavailable(e.to_string());
        let properties = ConnectionProperties::default()
            .with_connection_name(self.config.connection_name.clone().into());
        // Parsed here, not by lapin, whose parse errors quote the URL and its password.
        let uri = crate::amqp_url::parse_amqp_url(&self.config.url)
            .map_err(|e| PublishError::Unavailable(e.to_string()))?;
        let connection = tokio::time::timeout(
            self.config.connect_timeout,
            Connection::connect_uri(uri, properties),
        )
        .await
        .map_err(|_| {
            PublishError::Unavailable(format!(
                "no answer within {:?}",
                self.config.connect_timeout
            ))
        })?
        .map_err(unavailable)?;
        let kind = self
            .config
            .topology
            .declare(&connection)
            .await
            .map_err(unavailable)?;
        let mut channels = Vec::with_capacity(self.config.channels);
        for _ in 0..self.config.channels.max(1) {
            channels.push(confirm_channel(&connection).await.map_err(unavailable)?);
        }
        tracing::info!(
            broker = %redact_url(&self.config.url),
            prefix = %self.config.topology.prefix,
            work_queue = if kind == QueueKind::Quorum { "quorum" } else { "classic" },
            channels = channels.len(),
            "connected to RabbitMQ"
        );
        let old = self.live.lock().expect("lock poisoned").replace(Live {
            connection: Arc::new(connection),
            channels,
        });
        if let Some(old) = old {
            let _ = old.connection.close(200, "replaced".into()).await;
        }
        Ok(())
    }

    /// A connected confirm-mode channel, repairing the pool if needed.
    async fn channel(&self) -> Result<Channel, PublishError> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.config.channels.max(1);
        if let Some(channel) = self.healthy_channel(index)? {
            return Ok(channel);
        }
        let _repairing = self.repairing.lock().await;
        if let Some(channel) = self.healthy_channel(index)? {
            return Ok(channel);
        }
        let connection = {
            let live = self.live.lock().expect("lock poisoned");
            live.as_ref()
                .filter(|l| l.connection.status().connected())
                .map(|l| l.connection.clone())
        };
        match connection {
            Some(connection) => {
                let channel = confirm_channel(&connection)
                    .await
                    .map_err(|e| PublishError::Unavailable(e.to_string()))?;
                tracing::warn!(index, "replaced a closed AMQP channel");
                if let Some(live) = self.live.lock().expect("lock poisoned").as_mut() {
                    live.channels[index] = channel.clone();
                }
                Ok(channel)
            }
            None => {
                tracing::warn!(broker = %redact_url(&self.config.url), "AMQP connection lost; reconnecting");
                self.reconnect().await?;
                self.healthy_channel(index)?.ok_or_else(|| {
                    PublishError::Unavailable("reconnected, but the channel closed again".into())
                })
            }
        }
    }

    /// `Ok(None)` when the pool needs repair; `Err(Blocked)` when the broker blocks us.
    fn healthy_channel(&self, index: usize) -> Result<Option<Channel>, PublishError> {
        let live = self.live.lock().expect("lock poisoned");
        let Some(live) = live.as_ref() else {
            return Ok(None);
        };
        if live.connection.status().blocked() {
            return Err(PublishError::Blocked);
        }
        let channel = &live.channels[index];
        let usable = live.connection.status().connected() && channel.status().connected();
        Ok(usable.then(|| channel.clone()))
    }

    /// Publishes persistently to the topology's exchange and waits for the confirm.
    /// `Ok` means RabbitMQ has taken responsibility for the message.
    pub async fn publish(
        &self,
        routing_key: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        // Mandatory: an unroutable message comes back instead of vanishing.
        self.publish_to(
            &self.config.topology.exchange(),
            routing_key,
            true,
            payload,
            properties,
        )
        .await
    }

    /// Publishes persistently to `exchange` and waits for the confirm. With
    /// `mandatory`, a message no queue is bound for is an error ([`PublishError::
    /// Unroutable`]); without, the broker drops it and confirms (a topic exchange
    /// nobody subscribed to yet).
    pub async fn publish_to(
        &self,
        exchange: &str,
        routing_key: &str,
        mandatory: bool,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        let channel = self.channel().await?;
        let publish = async {
            let confirm = channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions {
                        mandatory,
                        ..BasicPublishOptions::default()
                    },
                    payload,
                    properties.with_delivery_mode(2),
                )
                .await
                .map_err(|e| PublishError::Channel(e.to_string()))?;
            confirm
                .await
                .map_err(|e| PublishError::Channel(e.to_string()))
        };
        let confirmation = tokio::time::timeout(self.config.confirm_timeout, publish)
            .await
            .map_err(|_| PublishError::Timeout(self.config.confirm_timeout))??;
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) => Err(PublishError::Unroutable),
            Confirmation::Nack(_) => Err(PublishError::Nacked),
            Confirmation::NotRequested => Err(PublishError::Channel(
                "the channel is not in confirm mode".into(),
            )),
        }
    }

    /// Keeps the connection up in the background: checks every `every`, reconnects
    /// when lost (never when only blocked), until `cancel`.
    pub fn spawn_watchdog(self: &Arc<Self>, every: Duration, cancel: CancellationToken) {
        let broker = Arc::clone(self);
        tokio::spawn(async move {
            let mut failures = 0_u32;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                if broker.state() != BrokerState::Disconnected {
                    failures = 0;
                    continue;
                }
                match broker.connect().await {
                    Ok(()) => failures = 0,
                    Err(error) => {
                        failures += 1;
                        // Log the first failure and then one in ten, not every second.
                        if failures == 1 || failures.is_multiple_of(10) {
                            tracing::error!(%error, failures, "RabbitMQ is unavailable; still trying");
                        }
                    }
                }
            }
        });
    }

    /// A connection for administration and tests (declare, inspect, delete).
    pub async fn connection(&self) -> Result<Arc<Connection>, PublishError> {
        self.connect().await?;
        let live = self.live.lock().expect("lock poisoned");
        live.as_ref()
            .map(|l| l.connection.clone())
            .ok_or_else(|| PublishError::Unavailable("not connected".into()))
    }

    /// Closes the connection (after in-flight publishes were answered).
    pub async fn close(&self) {
        let live = self.live.lock().expect("lock poisoned").take();
        if let Some(live) = live {
            let _ = live.connection.close(200, "shutting down".into()).await;
        }
    }
}

async fn confirm_channel(connection: &Connection) -> lapin::Result<Channel> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// The URL without its user and password, for logs.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            let host = host.split('?').next().unwrap_or(host);
            format!("{scheme}://{host}")
        }
        None => "(not a URL)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials_in_logs() {
        assert_eq!(
            redact_url("amqp://guest:s3cret@127.0.0.1:5672/%2f"),
            "amqp://127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redact_url("amqps://u:p@w@host/vh?heartbeat=10"),
            "amqps://host/vh"
        );
        assert_eq!(redact_url("amqp://host"), "amqp://host");
        let config = BrokerConfig::new("amqp://guest:s3cret@h/", Topology::new("p"), "t");
        assert!(!format!("{config:?}").contains("s3cret"));
    }
}
