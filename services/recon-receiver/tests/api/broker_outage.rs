use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::helpers::*;
use recon_common::tcp_proxy::Proxy;

async fn wait_until(mut ready: impl AsyncFnMut() -> bool, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if ready().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within {within:?}");
}

/// Sends `ids` concurrently, a few at a time; returns the ids answered 200 and the
/// statuses seen.
async fn send_all(
    receiver: &TestReceiver,
    ids: impl Iterator<Item = String>,
) -> (Vec<String>, Vec<u16>) {
    use futures::StreamExt;
    let results: Vec<(String, u16)> = futures::stream::iter(ids)
        .map(|id| async move {
            let status = receiver
                .send(&card_transaction(&id, 1))
                .await
                .status()
                .as_u16();
            (id, status)
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let accepted = results
        .iter()
        .filter(|(_, s)| *s == 200)
        .map(|(id, _)| id.clone())
        .collect();
    (accepted, results.into_iter().map(|(_, s)| s).collect())
}

async fn readiness(receiver: &TestReceiver) -> u16 {
    receiver
        .http
        .get(format!("{}/readyz", receiver.url))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_stops_mid_stream_costs_503s_but_no_acknowledged_event() {
    let proxy = Proxy::start("127.0.0.1:5672").await;
    let receiver = spawn_receiver(Options {
        amqp_url: proxy.url(),
        confirm_timeout_ms: 1000,
        ..Options::default()
    })
    .await;

    let (mut accepted, _) = send_all(&receiver, (0..100).map(|n| format!("msg_before_{n}"))).await;
    assert_eq!(accepted.len(), 100);

    proxy.cut();
    wait_until(
        async || readiness(&receiver).await == 503,
        Duration::from_secs(10),
        "not ready",
    )
    .await;
    let during: Vec<String> = (0..50).map(|n| format!("msg_during_{n}")).collect();
    let (accepted_during, statuses) = send_all(&receiver, during.clone().into_iter()).await;
    assert!(
        statuses.contains(&503),
        "the outage is answered 503: {statuses:?}"
    );
    accepted.extend(accepted_during.iter().cloned());

    proxy.restore();
    wait_until(
        async || readiness(&receiver).await == 200,
        Duration::from_secs(15),
        "ready again",
    )
    .await;
    // Helcim retries what got 503: all of it is accepted now.
    let retried = during
        .into_iter()
        .filter(|id| !accepted_during.contains(id));
    let (accepted_retry, statuses) = send_all(&receiver, retried).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    accepted.extend(accepted_retry);
    let (accepted_after, _) = send_all(&receiver, (0..100).map(|n| format!("msg_after_{n}"))).await;
    assert_eq!(accepted_after.len(), 100, "recovered without a restart");
    accepted.extend(accepted_after);

    let queued: Vec<String> = receiver
        .drain_work_queue()
        .await
        .into_iter()
        .map(|(_, e)| e.webhook_id)
        .collect();
    let queued_set: HashSet<&str> = queued.iter().map(String::as_str).collect();
    for id in &accepted {
        assert!(
            queued_set.contains(id.as_str()),
            "{id} was answered 200 but is not in the queue"
        );
    }
    assert_eq!(
        queued_set.len(),
        250,
        "every event is queued, each at least once"
    );
    receiver.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_broker_gets_503_after_the_confirm_timeout_and_recovers() {
    let proxy = Proxy::start("127.0.0.1:5672").await;
    let receiver = spawn_receiver(Options {
        amqp_url: proxy.url(),
        confirm_timeout_ms: 500,
        ..Options::default()
    })
    .await;
    assert_eq!(
        receiver
            .send(&card_transaction("msg_stall_0", 1))
            .await
            .status(),
        200
    );

    proxy.stall();
    let started = Instant::now();
    let response = receiver.send(&card_transaction("msg_stall_1", 1)).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers().get("retry-after").unwrap(), "5");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered within the confirm timeout"
    );

    proxy.restore();
    wait_until(
        async || {
            receiver
                .send(&card_transaction("msg_stall_2", 1))
                .await
                .status()
                == 200
        },
        Duration::from_secs(15),
        "publishing again",
    )
    .await;
    let queued: HashSet<String> = receiver
        .drain_work_queue()
        .await
        .into_iter()
        .map(|(_, e)| e.webhook_id)
        .collect();
    assert!(queued.contains("msg_stall_0") && queued.contains("msg_stall_2"));
    receiver.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_started_before_its_broker_becomes_ready_on_its_own() {
    let proxy = Proxy::start("127.0.0.1:5672").await;
    proxy.cut();
    let receiver = spawn_receiver(Options {
        amqp_url: proxy.url(),
        confirm_timeout_ms: 500,
        ..Options::default()
    })
    .await;
    assert_eq!(readiness(&receiver).await, 503);
    assert_eq!(
        receiver
            .send(&card_transaction("msg_early", 1))
            .await
            .status(),
        503
    );
    proxy.restore();
    wait_until(
        async || readiness(&receiver).await == 200,
        Duration::from_secs(15),
        "ready",
    )
    .await;
    assert_eq!(
        receiver
            .send(&card_transaction("msg_early", 1))
            .await
            .status(),
        200
    );
    assert_eq!(receiver.work_queue_depth().await, 1);
    receiver.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_answers_the_requests_already_in_flight() {
    let proxy = Proxy::start("127.0.0.1:5672").await;
    let receiver = spawn_receiver(Options {
        amqp_url: proxy.url(),
        confirm_timeout_ms: 2000,
        ..Options::default()
    })
    .await;
    assert_eq!(
        receiver
            .send(&card_transaction("msg_drain_0", 1))
            .await
            .status(),
        200
    );

    // A stalled broker keeps the next request waiting for its confirm...
    proxy.stall();
    let (http, url) = (receiver.http.clone(), receiver.url.clone());
    let in_flight = tokio::spawn(async move {
        let sent = card_transaction("msg_drain_1", 1);
        http.post(format!("{url}/webhooks/helcim/{ACCOUNT}"))
            .header("webhook-id", &sent.webhook_id)
            .header("webhook-timestamp", &sent.timestamp)
            .header("webhook-signature", &sent.signature)
            .body(sent.body)
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...while the server is told to stop: it must still answer it.
    let stopping = tokio::spawn(receiver.handle.clone().stop(true));
    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request is answered, not cut off");
    assert_eq!(response.status(), 503);
    stopping.await.unwrap();
    proxy.restore();
    receiver.finish().await;
}
