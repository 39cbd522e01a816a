use recon_receiver::startup::Clock;

use crate::helpers::*;

#[tokio::test]
async fn a_signed_card_transaction_is_confirmed_onto_the_work_queue_then_answered() {
    let receiver = spawn_receiver(Options::default()).await;
    let sent = card_transaction("msg_single_1", 25764674);
    let response = receiver.send(&sent).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["webhookId"], "msg_single_1");

    let messages = receiver.drain_work_queue().await;
    assert_eq!(messages.len(), 1);
    let (properties, envelope) = &messages[0];
    assert_eq!(envelope.webhook_id, "msg_single_1");
    assert_eq!(envelope.account_id, ACCOUNT);
    assert_eq!(envelope.event_type, "cardTransaction");
    assert_eq!(envelope.object_id.as_deref(), Some("25764674"));
    assert_eq!(envelope.raw_body, sent.body.as_bytes());
    assert_eq!(envelope.helcim_timestamp.to_string(), sent.timestamp);
    assert!(!envelope.request_id.is_empty());
    assert_eq!(
        properties.message_id().as_ref().map(|m| m.as_str()),
        Some("msg_single_1")
    );
    assert_eq!(*properties.delivery_mode(), Some(2), "persistent");
    receiver.finish().await;
}

#[tokio::test]
async fn several_signatures_in_one_header_verify_when_any_one_matches() {
    let receiver = spawn_receiver(Options::default()).await;
    let mut sent = card_transaction("msg_multi_1", 1);
    let wrong = delivery(
        "msg_multi_1",
        &sent.body,
        TOKEN_UNKNOWN,
        sent.timestamp.parse().unwrap(),
    );
    sent.signature = format!("{} {}", wrong.signature, sent.signature);
    assert_eq!(receiver.send(&sent).await.status(), 200);
    assert_eq!(receiver.drain_work_queue().await.len(), 1);
    receiver.finish().await;
}

#[tokio::test]
async fn both_tokens_of_a_rotation_verify_and_a_stranger_does_not() {
    let receiver = spawn_receiver(Options::default()).await;
    let body = r#"{"id":"9","type":"cardTransaction"}"#;
    let with_old = delivery("msg_rot_old", body, TOKEN_OLD, now());
    let with_new = delivery("msg_rot_new", body, TOKEN_NEW, now());
    let stranger = delivery("msg_rot_x", body, TOKEN_UNKNOWN, now());
    assert_eq!(receiver.send(&with_old).await.status(), 200);
    assert_eq!(receiver.send(&with_new).await.status(), 200);
    assert_eq!(receiver.send(&stranger).await.status(), 401);
    let ids: Vec<String> = receiver
        .drain_work_queue()
        .await
        .into_iter()
        .map(|(_, e)| e.webhook_id)
        .collect();
    assert_eq!(ids, ["msg_rot_old", "msg_rot_new"]);
    receiver.finish().await;
}

#[tokio::test]
async fn timestamps_at_300_seconds_pass_and_at_301_fail_either_way() {
    let now = 1_900_000_000;
    let receiver = spawn_receiver(Options {
        clock: Clock::Fixed(now),
        ..Options::default()
    })
    .await;
    let body = r#"{"id":"1","type":"cardTransaction"}"#;
    for (offset, expected) in [(-300, 200), (300, 200), (-301, 401), (301, 401)] {
        let id = format!("msg_edge_{}", offset + 1000);
        let response = receiver
            .send(&delivery(&id, body, TOKEN_NEW, now + offset))
            .await;
        assert_eq!(response.status(), expected, "timestamp offset {offset}");
    }
    let ids: Vec<String> = receiver
        .drain_work_queue()
        .await
        .into_iter()
        .map(|(_, e)| e.webhook_id)
        .collect();
    assert_eq!(
        ids,
        ["msg_edge_700", "msg_edge_1300"],
        "only the in-window ones were queued"
    );
    receiver.finish().await;
}

#[tokio::test]
async fn unknown_event_types_are_queued_and_counted() {
    let receiver = spawn_receiver(Options::default()).await;
    let sent = delivery(
        "msg_new_type",
        r#"{"type":"invoicePaid","id":77}"#,
        TOKEN_NEW,
        now(),
    );
    assert_eq!(receiver.send(&sent).await.status(), 200);
    let cancel = delivery(
        "msg_cancel",
        r#"{"type":"terminalCancel","data":{"invoiceNumber":"INV1","transactionAmount":1}}"#,
        TOKEN_NEW,
        now(),
    );
    assert_eq!(receiver.send(&cancel).await.status(), 200);
    let envelopes: Vec<_> = receiver
        .drain_work_queue()
        .await
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    assert_eq!(envelopes[0].event_type, "invoicePaid");
    assert_eq!(envelopes[0].object_id.as_deref(), Some("77"));
    assert_eq!(envelopes[1].event_type, "terminalCancel");
    assert_eq!(envelopes[1].object_id, None);
    let metrics = receiver.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("receiver_events_total") && l.contains("event_type=\"other\"")),
        "{metrics}"
    );
    assert!(
        metrics.contains("receiver_publish_seconds_bucket"),
        "publish latency is a histogram"
    );
    receiver.finish().await;
}

#[tokio::test]
async fn the_settings_probe_gets_2xx_and_is_never_queued() {
    let receiver = spawn_receiver(Options::default()).await;
    for body in ["", "{}"] {
        let response = receiver
            .http
            .post(format!("{}/webhooks/helcim/{ACCOUNT}", receiver.url))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(receiver.work_queue_depth().await, 0);
    receiver.finish().await;
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let receiver = spawn_receiver(Options::default()).await;
    let get = |path: &str| receiver.http.get(format!("{}{path}", receiver.url)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    receiver.finish().await;
}
