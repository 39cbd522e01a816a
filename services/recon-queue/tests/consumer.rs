//! A job always ends settled or back in the queue: never unacknowledged forever.

mod support;

use std::time::Duration;

use recon_queue::{Topology, WorkConsumer};
use support::*;

async fn next_job(consumer: &mut WorkConsumer) -> recon_queue::Job {
    tokio::time::timeout(Duration::from_secs(5), consumer.next())
        .await
        .expect("a message arrives within 5 s (no prefetch slot leaked)")
        .expect("the consumer is open")
        .expect("a delivery")
}

#[tokio::test]
async fn a_job_whose_retry_publish_fails_is_redelivered_and_processed() {
    let topology =
        Topology::new(prefix("retry-fails")).with_retry_delays(vec![Duration::from_secs(5)]);
    let broker = broker(topology.clone());
    broker.connect().await.unwrap();
    publish(&broker, "work", "w1").await;
    // The retry queue is gone: the retry publish comes back unroutable.
    let connection = broker.connection().await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .queue_delete(
            topology.retry_queue(Duration::from_secs(5)).as_str().into(),
            Default::default(),
        )
        .await
        .unwrap();
    let mut consumer = WorkConsumer::start(broker.clone(), 1, "t").await.unwrap();
    let job = next_job(&mut consumer).await;
    assert!(!job.redelivered);
    assert!(job.retry_later("helcim 503", false).await.is_err());

    let again = next_job(&mut consumer).await;
    assert_eq!(again.envelope.as_ref().unwrap().webhook_id, "w1");
    assert!(again.redelivered);
    again.ack().await.expect("processed at last");
    consumer.close().await;
    topology.declare(&connection).await.unwrap();
    wait_for_depth(&broker, &topology.work_queue(), 0, Duration::from_secs(5)).await;
    delete(&broker).await;
}

#[tokio::test]
async fn a_job_dropped_unsettled_gives_its_prefetch_slot_back() {
    let broker = broker(Topology::new(prefix("dropped")));
    broker.connect().await.unwrap();
    publish(&broker, "work", "first").await;
    publish(&broker, "work", "second").await;
    let mut consumer = WorkConsumer::start(broker.clone(), 1, "t").await.unwrap();
    let first = next_job(&mut consumer).await;
    // What a panic unwinding through the job's task does.
    drop(first);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let job = next_job(&mut consumer).await;
        seen.push(job.envelope.as_ref().unwrap().webhook_id.clone());
        job.ack().await.unwrap();
    }
    seen.sort();
    assert_eq!(seen, ["first", "second"]);
    consumer.close().await;
    delete(&broker).await;
}

#[tokio::test]
async fn an_ack_on_a_closed_channel_is_a_failure_not_a_success() {
    let broker = broker(Topology::new(prefix("closed-ack")));
    broker.connect().await.unwrap();
    publish(&broker, "work", "w1").await;
    let mut consumer = WorkConsumer::start(broker.clone(), 1, "t").await.unwrap();
    let job = next_job(&mut consumer).await;
    consumer.close().await;
    let result = job.ack().await;
    assert!(result.is_err(), "{result:?}");
    // The broker still has it: nothing was acknowledged.
    wait_for_depth(
        &broker,
        &broker.topology().work_queue(),
        1,
        Duration::from_secs(5),
    )
    .await;
    delete(&broker).await;
}
