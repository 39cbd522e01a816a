//! What the broker tests share: a broker on a random prefix, publishing envelopes, and
//! reading queues with `rabbitmqctl`.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use recon_queue::publisher::properties;
use recon_queue::{Broker, BrokerConfig, Topology, WebhookEnvelope};

pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

pub fn prefix(name: &str) -> String {
    format!("test-{name}-{:012x}", rand::rng().random::<u64>() >> 16)
}

pub fn broker(topology: Topology) -> Arc<Broker> {
    Arc::new(Broker::new(BrokerConfig::new(
        AMQP_URL,
        topology,
        "recon-queue-test",
    )))
}

pub fn envelope(webhook_id: &str) -> WebhookEnvelope {
    WebhookEnvelope {
        schema_version: 1,
        webhook_id: webhook_id.into(),
        account_id: "acct".into(),
        event_type: "cardTransaction".into(),
        object_id: Some("1".into()),
        helcim_timestamp: 1_700_000_000,
        received_at_micros: 1_700_000_000_000_000,
        raw_body: b"{}".to_vec(),
        request_id: "req".into(),
        sealed_secrets: None,
    }
}

pub async fn publish(broker: &Broker, routing_key: &str, webhook_id: &str) {
    let envelope = envelope(webhook_id);
    broker
        .publish(
            routing_key,
            &envelope.encode_to_bytes(),
            properties(&envelope),
        )
        .await
        .expect("the broker confirms");
}

/// Messages waiting in `queue` (ready, not unacknowledged).
pub async fn depth(broker: &Broker, queue: &str) -> u32 {
    let connection = broker.connection().await.unwrap();
    broker
        .topology()
        .depths(&connection)
        .await
        .unwrap()
        .into_iter()
        .find(|(name, _)| name == queue)
        .map(|(_, depth)| depth)
        .unwrap_or_else(|| panic!("no queue {queue}"))
}

/// Waits until `queue` holds `expected` ready messages.
pub async fn wait_for_depth(broker: &Broker, queue: &str, expected: u32, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let now = depth(broker, queue).await;
        if now == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{queue} holds {now}, not {expected}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn delete(broker: &Broker) {
    let connection = broker.connection().await.unwrap();
    broker.topology().delete(&connection).await.unwrap();
    broker.close().await;
}

/// `rabbitmqctl` with these arguments; its standard output.
pub fn rabbitmqctl(args: &[&str]) -> String {
    let output = std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl runs");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Each queue of `prefix` with its type and arguments, as the broker reports them.
pub fn queues(prefix: &str) -> Vec<serde_json::Value> {
    let json = rabbitmqctl(&[
        "list_queues",
        "-q",
        "name",
        "type",
        "arguments",
        "--formatter",
        "json",
    ]);
    let all: Vec<serde_json::Value> = serde_json::from_str(&json).expect("JSON from rabbitmqctl");
    // Arguments come as [name, type, value] triples: made into an object.
    all.into_iter()
        .filter(|q| q["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        .map(|mut q| {
            let arguments: serde_json::Map<String, serde_json::Value> = q["arguments"]
                .as_array()
                .map(|triples| {
                    triples
                        .iter()
                        .filter_map(|t| Some((t[0].as_str()?.to_string(), t[2].clone())))
                        .collect()
                })
                .unwrap_or_default();
            q["arguments"] = serde_json::Value::Object(arguments);
            q
        })
        .collect()
}
