//! A memory alarm blocks publishers: the connection must be kept (not replaced every
//! second, which would redeliver every unacknowledged message) and readiness must say
//! `blocked`. One test alone in this binary, and the alarm lasts a few seconds: other
//! tests share this broker.

mod support;

use std::sync::Arc;
use std::time::Duration;

use recon_queue::{BrokerState, Topology, WorkConsumer};
use support::*;
use tokio_util::sync::CancellationToken;

/// The longest the alarm may last, whatever happens to the test.
const ALARM_AT_MOST: Duration = Duration::from_secs(6);

/// Restores the memory watermark when dropped (a panic included), and from a
/// separate thread after [`ALARM_AT_MOST`] even if the test hangs.
struct Alarm;

impl Alarm {
    fn raise() -> Alarm {
        rabbitmqctl(&["set_vm_memory_high_watermark", "0.0000001"]);
        std::thread::spawn(|| {
            std::thread::sleep(ALARM_AT_MOST);
            restore();
        });
        Alarm
    }
}

fn restore() {
    let _ = std::process::Command::new("rabbitmqctl")
        .args(["set_vm_memory_high_watermark", "0.4"])
        .status();
}

impl Drop for Alarm {
    fn drop(&mut self) {
        restore();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_broker_keeps_its_connection_and_readiness_says_blocked() {
    let broker = broker(Topology::new(prefix("blocked")));
    broker.connect().await.unwrap();
    let cancel = CancellationToken::new();
    broker.spawn_watchdog(Duration::from_millis(100), cancel.clone());
    for i in 0..3 {
        publish(&broker, "work", &format!("held-{i}")).await;
    }
    let mut consumer = WorkConsumer::start(Arc::clone(&broker), 10, "t")
        .await
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..3 {
        let job = tokio::time::timeout(Duration::from_secs(5), consumer.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(!job.redelivered);
        held.push(job);
    }
    let connection = broker.connection().await.unwrap();

    let alarm = Alarm::raise();
    // A publish makes the broker block this connection (and tells it so).
    let blocked_publish = {
        let broker = Arc::clone(&broker);
        tokio::spawn(async move { publish(&broker, "work", "during-alarm").await })
    };
    let mut saw_blocked = false;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if broker.state() == BrokerState::Blocked {
            saw_blocked = true;
            break;
        }
    }
    // The watchdog checks ten times a second: give it time to do the wrong thing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let state_during = broker.state();
    // Bounded: a broker replacing its connection during the alarm may hang here.
    let current = tokio::time::timeout(Duration::from_secs(1), broker.connection()).await;
    let same_connection = matches!(&current, Ok(Ok(c)) if Arc::ptr_eq(&connection, c));
    let consumer_open = consumer.is_open();
    drop(alarm);

    assert!(saw_blocked, "readiness never reported blocked");
    assert_eq!(state_during, BrokerState::Blocked);
    assert!(same_connection, "the blocked connection was replaced");
    assert!(
        consumer_open,
        "the consumer's channel closed during the alarm"
    );
    // Once the alarm clears, the messages held all along are acknowledged, and none
    // came round again.
    let _ = tokio::time::timeout(Duration::from_secs(20), blocked_publish).await;
    for job in held {
        job.ack().await.expect("the original channel still acks");
    }
    let next = tokio::time::timeout(Duration::from_secs(5), consumer.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next.envelope.as_ref().unwrap().webhook_id, "during-alarm");
    assert!(!next.redelivered);
    next.ack().await.unwrap();
    assert_eq!(broker.state(), BrokerState::Ready);
    cancel.cancel();
    consumer.close().await;
    delete(&broker).await;
}
