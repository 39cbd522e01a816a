//! The confirmed channel pool against the real RabbitMQ.

use std::sync::Arc;

use lapin::BasicProperties;
use rand::Rng;
use recon_queue::{Broker, BrokerConfig, PublishError, Topology};

const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn broker() -> Arc<Broker> {
    let prefix = format!("test-queue-{:012x}", rand::rng().random::<u64>() >> 16);
    Arc::new(Broker::new(BrokerConfig::new(
        AMQP_URL,
        Topology::new(prefix),
        "recon-queue-test",
    )))
}

async fn publish(broker: &Broker) -> Result<(), PublishError> {
    broker
        .publish("work", b"{}", BasicProperties::default())
        .await
}

#[tokio::test]
async fn many_publishes_are_confirmed_concurrently_and_all_land() {
    let broker = broker();
    broker.connect().await.unwrap();
    let results = futures::future::join_all((0..500).map(|_| publish(&broker))).await;
    assert!(results.iter().all(Result::is_ok));
    let connection = broker.connection().await.unwrap();
    let depths = broker.topology().depths(&connection).await.unwrap();
    assert_eq!(depths[0], (broker.topology().work_queue(), 500));
    broker.topology().delete(&connection).await.unwrap();
    broker.close().await;
}

#[tokio::test]
async fn a_channel_the_broker_closed_is_replaced_on_next_use() {
    let broker = broker();
    broker.connect().await.unwrap();
    let connection = broker.connection().await.unwrap();
    // Publishing to a missing exchange makes the broker close that channel (404).
    broker.topology().delete(&connection).await.unwrap();
    let failures = futures::future::join_all((0..8).map(|_| publish(&broker))).await;
    assert!(failures.iter().all(Result::is_err), "{failures:?}");

    broker.topology().declare(&connection).await.unwrap();
    for _ in 0..8 {
        publish(&broker)
            .await
            .expect("a replaced channel publishes");
    }
    assert!(broker.is_ready());
    broker.topology().delete(&connection).await.unwrap();
    broker.close().await;
}

#[tokio::test]
async fn an_unroutable_message_is_an_error_not_a_silent_loss() {
    let broker = broker();
    broker.connect().await.unwrap();
    let result = broker
        .publish("no-such-key", b"{}", BasicProperties::default())
        .await;
    assert!(
        matches!(result, Err(PublishError::Unroutable)),
        "{result:?}"
    );
    let connection = broker.connection().await.unwrap();
    broker.topology().delete(&connection).await.unwrap();
    broker.close().await;
}

#[tokio::test]
async fn an_unreachable_broker_is_reported_not_hung_on() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let broker = Broker::new(BrokerConfig::new(
        format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        Topology::new("unreachable"),
        "test",
    ));
    assert!(matches!(
        broker.connect().await,
        Err(PublishError::Unavailable(_))
    ));
    assert!(matches!(
        publish(&broker).await,
        Err(PublishError::Unavailable(_))
    ));
    assert!(!broker.is_ready());
}
