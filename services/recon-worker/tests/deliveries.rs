//! What the worker keeps of each delivery, against a real Postgres through its own
//! `Ledger`.

use recon_queue::WebhookEnvelope;
use recon_store::testing::TestDatabase;
use recon_worker::ledger::Ledger;

fn envelope(event_type: &str, body: &[u8], sealed: Option<Vec<u8>>) -> WebhookEnvelope {
    WebhookEnvelope {
        schema_version: 1,
        webhook_id: format!("msg_{event_type}"),
        account_id: "m1".into(),
        event_type: event_type.into(),
        object_id: None,
        helcim_timestamp: 1_700_000_000,
        received_at_micros: 1_700_000_000_000_000,
        raw_body: body.to_vec(),
        request_id: "req".into(),
        sealed_secrets: sealed,
    }
}

#[tokio::test]
async fn a_sealed_secret_is_kept_with_its_delivery_whatever_the_event_type() {
    let db = TestDatabase::create().await;
    let ledger = Ledger::new(db.pool.clone());
    // An event type that is not connectedAccount but carried an apiToken: nothing to
    // attach the token to, yet what Helcim sent must not be thrown away.
    let sealed = vec![7_u8; 80];
    let odd = envelope(
        "merchantUpdated",
        br#"{"type":"merchantUpdated","apiToken":"[sealed]"}"#,
        Some(sealed.clone()),
    );
    let plain = envelope("terminalCancel", br#"{"type":"terminalCancel"}"#, None);
    for delivery in [&odd, &plain] {
        assert!(!ledger.record_delivery(delivery, None).await.unwrap());
    }
    let kept: Vec<(String, Option<Vec<u8>>)> = sqlx::query_as(
        "SELECT event_type, sealed_secrets FROM webhook_deliveries ORDER BY event_type",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        kept,
        vec![
            ("merchantUpdated".to_string(), Some(sealed)),
            ("terminalCancel".to_string(), None),
        ]
    );
    db.drop_now().await;
}
