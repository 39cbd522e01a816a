//! The queue arguments and what they do, on the real RabbitMQ: no hop is at most once,
//! a crash loop ends in the dead queue, and the dead queue keeps everything however
//! often it is browsed.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicNackOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use recon_queue::Topology;
use recon_queue::dead_letters;
use recon_queue::topology::{DELIVERY_LIMIT, is_precondition_failed};
use support::*;

#[tokio::test]
async fn every_queue_the_broker_dead_letters_from_is_quorum_and_at_least_once() {
    let prefix = prefix("args");
    let broker = broker(Topology::new(&prefix));
    broker.connect().await.unwrap();
    let queues = queues(&prefix);
    assert_eq!(
        queues.len(),
        2 + broker.topology().retry_delays.len(),
        "{queues:?}"
    );
    for queue in &queues {
        let name = queue["name"].as_str().unwrap();
        let args = &queue["arguments"];
        if name == broker.topology().dead_queue() {
            // Nothing may leave the dead queue but a replay.
            assert_eq!(queue["type"], "classic", "{queue}");
            for absent in [
                "x-message-ttl",
                "x-max-length",
                "x-max-length-bytes",
                "x-delivery-limit",
                "x-expires",
                "x-dead-letter-exchange",
            ] {
                assert!(args.get(absent).is_none(), "{name} has {absent}: {queue}");
            }
            continue;
        }
        assert_eq!(queue["type"], "quorum", "{queue}");
        assert_eq!(args["x-dead-letter-strategy"], "at-least-once", "{queue}");
        assert_eq!(args["x-overflow"], "reject-publish", "{queue}");
        assert_eq!(args["x-dead-letter-exchange"], prefix.as_str(), "{queue}");
        if name == broker.topology().work_queue() {
            assert_eq!(args["x-delivery-limit"], DELIVERY_LIMIT, "{queue}");
            assert_eq!(args["x-dead-letter-routing-key"], "dead", "{queue}");
        } else {
            assert!(args["x-message-ttl"].as_i64().unwrap() > 0, "{queue}");
            assert_eq!(args["x-dead-letter-routing-key"], "work", "{queue}");
        }
    }
    delete(&broker).await;
}

#[tokio::test]
async fn a_delayed_retry_comes_back_to_the_work_queue_through_a_quorum_queue() {
    let topology = Topology::new(prefix("ttl")).with_retry_delays(vec![Duration::from_millis(300)]);
    let broker = broker(topology);
    broker.connect().await.unwrap();
    let key = Topology::retry_key(Duration::from_millis(300));
    for i in 0..5 {
        publish(&broker, &key, &format!("w{i}")).await;
    }
    let work = broker.topology().work_queue();
    wait_for_depth(&broker, &work, 5, Duration::from_secs(10)).await;
    delete(&broker).await;
}

#[tokio::test]
async fn a_message_returned_past_the_delivery_limit_lands_in_the_dead_queue() {
    let broker = broker(Topology::new(prefix("limit")));
    broker.connect().await.unwrap();
    publish(&broker, "work", "crash-loop").await;
    let connection = broker.connection().await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .basic_qos(1, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = channel
        .basic_consume(
            broker.topology().work_queue().as_str().into(),
            "crasher".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    // What a worker that crashes on it every time does: it never settles it.
    let mut deliveries = 0;
    while deliveries <= DELIVERY_LIMIT {
        let next = tokio::time::timeout(Duration::from_millis(1500), consumer.next()).await;
        let Ok(Some(Ok(delivery))) = next else { break };
        deliveries += 1;
        delivery
            .nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    assert!(deliveries <= DELIVERY_LIMIT + 1, "{deliveries} deliveries");
    wait_for_depth(
        &broker,
        &broker.topology().dead_queue(),
        1,
        Duration::from_secs(10),
    )
    .await;
    let _ = channel.close(200, "done".into()).await;
    delete(&broker).await;
}

#[tokio::test]
async fn listing_the_dead_queue_twice_leaves_every_dead_letter_in_place() {
    let broker = broker(Topology::new(prefix("list")));
    broker.connect().await.unwrap();
    let n = 30;
    for i in 0..n {
        publish(&broker, "dead", &format!("dead-{i:02}")).await;
    }
    for _ in 0..2 {
        let page = dead_letters::list(&broker, 0, 1000).await.unwrap();
        assert_eq!(page.letters.len(), n);
        assert_eq!(page.next_offset, None);
    }
    // Browsing many more times than any delivery limit drops nothing either.
    for _ in 0..(DELIVERY_LIMIT + 5) {
        dead_letters::list(&broker, 0, 5).await.unwrap();
    }
    let dead = broker.topology().dead_queue();
    wait_for_depth(&broker, &dead, n as u32, Duration::from_secs(5)).await;
    let page = dead_letters::list(&broker, 0, 1000).await.unwrap();
    let ids: Vec<_> = page.letters.iter().map(|l| l.webhook_id.clone()).collect();
    let expected: Vec<_> = (0..n).map(|i| format!("dead-{i:02}")).collect();
    assert_eq!(ids, expected, "in their places, oldest first");
    delete(&broker).await;
}

#[tokio::test]
async fn paging_through_the_dead_queue_returns_every_message_exactly_once() {
    let broker = broker(Topology::new(prefix("pages")));
    broker.connect().await.unwrap();
    let n = 47;
    for i in 0..n {
        publish(&broker, "dead", &format!("page-{i:02}")).await;
    }
    let mut seen = Vec::new();
    let mut offset = Some(0);
    let mut pages = 0;
    while let Some(from) = offset {
        let page = dead_letters::list(&broker, from, 10).await.unwrap();
        assert!(page.letters.len() <= 10);
        seen.extend(page.letters.into_iter().map(|l| l.webhook_id));
        offset = page.next_offset;
        pages += 1;
    }
    assert_eq!(pages, 5);
    assert_eq!(seen.len(), n);
    assert_eq!(
        seen.iter().collect::<HashSet<_>>().len(),
        n,
        "no message twice"
    );
    wait_for_depth(
        &broker,
        &broker.topology().dead_queue(),
        n as u32,
        Duration::from_secs(5),
    )
    .await;
    // A replay is still confirmed on the work queue before it leaves the dead one.
    assert_eq!(
        dead_letters::replay(&broker, Some("page-07"))
            .await
            .unwrap(),
        1
    );
    wait_for_depth(
        &broker,
        &broker.topology().work_queue(),
        1,
        Duration::from_secs(5),
    )
    .await;
    wait_for_depth(
        &broker,
        &broker.topology().dead_queue(),
        n as u32 - 1,
        Duration::from_secs(5),
    )
    .await;
    delete(&broker).await;
}

#[tokio::test]
async fn queues_left_by_an_older_version_are_refused_with_a_precondition_error() {
    let topology = Topology::new(prefix("old"));
    let broker = broker(topology.clone());
    // The work queue as the previous version declared it.
    let connection = lapin::Connection::connect(AMQP_URL, Default::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let mut old = FieldTable::default();
    old.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    old.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(20));
    channel
        .queue_declare(
            topology.work_queue().as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            old,
        )
        .await
        .unwrap();
    let error = topology.declare(&connection).await.unwrap_err();
    assert!(is_precondition_failed(&error), "{error}");
    // No classic fallback was declared over it.
    assert!(
        queues(&topology.prefix)
            .iter()
            .all(|q| q["type"] == "quorum")
    );
    let cleanup = connection.create_channel().await.unwrap();
    cleanup
        .queue_delete(topology.work_queue().as_str().into(), Default::default())
        .await
        .unwrap();
    let _ = topology.delete(&connection).await;
    broker.close().await;
}

#[tokio::test]
async fn a_replay_ends_even_when_every_replayed_message_is_dead_lettered_again_at_once() {
    let broker = broker(Topology::new(prefix("replay-loop")));
    broker.connect().await.unwrap();
    for i in 0..3 {
        publish(&broker, "dead", &format!("again-{i}")).await;
    }
    // A worker that dead-letters everything at once (Helcim refuses the account).
    let connection = broker.connection().await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    let mut consumer = channel
        .basic_consume(
            broker.topology().work_queue().as_str().into(),
            "dead-lettering-worker".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let worker = {
        let broker = std::sync::Arc::clone(&broker);
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                broker
                    .publish("dead", &delivery.data, delivery.properties.clone())
                    .await
                    .unwrap();
                delivery.ack(Default::default()).await.unwrap();
            }
        })
    };
    let replayed =
        tokio::time::timeout(Duration::from_secs(20), dead_letters::replay(&broker, None))
            .await
            .expect("the replay ends");
    assert_eq!(replayed.unwrap(), 3, "each dead letter replayed once");
    worker.abort();
    delete(&broker).await;
}
