//! The webhook path posts to the journal: a transaction stored by the worker's own
//! `Ledger` (in the delivery's database transaction) gets its balanced entry, and an
//! older answer that commits last posts nothing. Against a real Postgres.

use chrono::{DateTime, Duration, Utc};
use helcim_client::{CardTransaction, Fetched};
use recon_queue::WebhookEnvelope;
use recon_store::reconciliation::journal;
use recon_store::testing::TestDatabase;
use recon_worker::ledger::Ledger;
use recon_worker::reconcile::Reconciliation;
use serde_json::json;

const ACCOUNT: &str = "m1";
const TX: u64 = 25764674;

fn at(minutes: i64) -> DateTime<Utc> {
    "2026-11-02T12:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::minutes(minutes)
}

fn purchase(status: &str, amount: &str, sent_at: DateTime<Utc>) -> Fetched<CardTransaction> {
    let raw = json!({"transactionId": TX, "dateCreated": "2026-11-02 04:00:00",
        "cardBatchId": 3121, "status": status, "type": "purchase", "amount": amount,
        "currency": "CAD", "cardToken": "tok", "invoiceNumber": "INV-9"});
    Fetched {
        value: CardTransaction::from_json(raw).unwrap(),
        sent_at,
    }
}

/// One delivery of the transaction's webhook, processed with this answer.
async fn process(ledger: &Ledger, webhook_id: &str, tx: &Fetched<CardTransaction>) {
    let envelope = WebhookEnvelope {
        schema_version: 1,
        webhook_id: webhook_id.to_string(),
        account_id: ACCOUNT.to_string(),
        event_type: "cardTransaction".to_string(),
        object_id: Some(TX.to_string()),
        helcim_timestamp: at(0).timestamp(),
        received_at_micros: at(0).timestamp_micros(),
        raw_body: br#"{"id":"25764674","type":"cardTransaction"}"#.to_vec(),
        request_id: "r".to_string(),
        sealed_secrets: None,
    };
    assert!(!ledger.record_delivery(&envelope, Some(TX)).await.unwrap());
    ledger
        .store(&envelope, tx, None, |_| Reconciliation::Matched)
        .await
        .unwrap();
}

async fn balances(db: &TestDatabase) -> Vec<(&'static str, i64)> {
    journal::balances(&db.pool, ACCOUNT, None)
        .await
        .unwrap()
        .into_iter()
        .filter(|b| b.balance_minor != 0)
        .map(|b| (b.account.code(), b.balance_minor))
        .collect()
}

#[tokio::test]
async fn a_purchase_processed_from_its_webhook_posts_one_balanced_sale_and_an_older_answer_posts_nothing()
 {
    let db = TestDatabase::create().await;
    let ledger = Ledger::new(db.pool.clone());
    process(&ledger, "w-1", &purchase("APPROVED", "12.34", at(2))).await;
    assert_eq!(
        balances(&db).await,
        [("card_clearing", 1234), ("sales", -1234)]
    );
    let entries = journal::entries(&db.pool, ACCOUNT, None, 10).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].card_batch_id, Some(3121));
    assert_eq!(
        entries[0].memo,
        format!("Sale: approved purchase {TX} of 12.34 CAD")
    );

    // An older answer committed last: the upsert ignores it, so the journal does too.
    process(&ledger, "w-2", &purchase("DECLINED", "5.00", at(1))).await;
    assert_eq!(
        journal::entries(&db.pool, ACCOUNT, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );

    // A newer answer with another amount: a correction and the new sale.
    process(&ledger, "w-3", &purchase("APPROVED", "20.00", at(3))).await;
    assert_eq!(
        balances(&db).await,
        [("card_clearing", 2000), ("sales", -2000)]
    );
    assert_eq!(
        journal::entries(&db.pool, ACCOUNT, None, 10)
            .await
            .unwrap()
            .len(),
        3
    );
    db.drop_now().await;
}
