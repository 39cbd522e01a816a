//! No state goes backwards: jobs commit in any order, and an answer Helcim gave earlier
//! never replaces one it gave later; a closed batch never reopens. Against a real
//! Postgres, through the worker's own `Ledger`.

use chrono::{DateTime, Duration, Utc};
use helcim_client::{CardBatch, CardTransaction, Fetched};
use recon_queue::WebhookEnvelope;
use recon_store::testing::TestDatabase;
use recon_worker::ledger::{BatchAnswer, Ledger};
use recon_worker::reconcile::{BatchView, Reconciliation, reconcile};
use serde_json::json;
use sqlx::Row;

const ACCOUNT: &str = "m1";
const TX: u64 = 25764674;
const BATCH: u64 = 3121;

fn at(minutes: i64) -> DateTime<Utc> {
    "2026-11-02T12:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::minutes(minutes)
}

fn tx(status: &str, amount: &str, sent_at: DateTime<Utc>) -> Fetched<CardTransaction> {
    let raw = json!({"transactionId": TX, "dateCreated": "2026-11-02 04:00:00",
        "cardBatchId": BATCH, "status": status, "type": "purchase", "amount": amount,
        "currency": "CAD"});
    Fetched {
        value: CardTransaction::from_json(raw).unwrap(),
        sent_at,
    }
}

fn batch(closed_at: Option<&str>, total_sales: &str, sent_at: DateTime<Utc>) -> Fetched<CardBatch> {
    let raw = json!({"id": BATCH, "dateCreated": "2026-11-01 17:00:01",
        "dateClosed": closed_at.unwrap_or("0000-00-00 00:00:00"), "netSales": total_sales,
        "totalSales": total_sales, "totalRefunds": "0", "totalReversed": "0",
        "totalRefundsReversed": "0", "countTotal": 1, "countApproved": 1, "countDeclined": 0});
    Fetched {
        value: CardBatch::from_json(raw).unwrap(),
        sent_at,
    }
}

/// One job: its own delivery of the transaction's webhook, and the answers it got.
async fn commit(
    ledger: &Ledger,
    webhook_id: &str,
    tx: &Fetched<CardTransaction>,
    batch: Option<&Fetched<CardBatch>>,
) -> bool {
    let envelope = delivered(ledger, webhook_id).await;
    ledger
        .store(&envelope, tx, batch.map(BatchAnswer::Readable), |_| {
            Reconciliation::Matched
        })
        .await
        .unwrap()
}

/// A delivery of the transaction's webhook, recorded as the worker records it.
async fn delivered(ledger: &Ledger, webhook_id: &str) -> WebhookEnvelope {
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
    envelope
}

async fn batch_row(db: &TestDatabase) -> sqlx::postgres::PgRow {
    sqlx::query("SELECT closed, closed_at, total_sales_minor, fetched_at FROM card_batches")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

async fn tx_row(db: &TestDatabase) -> sqlx::postgres::PgRow {
    sqlx::query("SELECT status, amount_minor, fetched_at FROM card_transactions")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

async fn payloads(db: &TestDatabase, kind: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM helcim_payloads WHERE kind = $1")
        .bind(kind)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn two_fetches_of_a_batch_committed_in_reverse_order_leave_the_newer_state() {
    let db = TestDatabase::create().await;
    let ledger = Ledger::new(db.pool.clone());
    let newer = batch(None, "20.00", at(2));
    let older = batch(None, "10.00", at(1));
    assert!(
        commit(
            &ledger,
            "w-newer",
            &tx("APPROVED", "10.00", at(2)),
            Some(&newer)
        )
        .await
    );
    assert!(
        !commit(
            &ledger,
            "w-older",
            &tx("APPROVED", "10.00", at(1)),
            Some(&older)
        )
        .await,
        "the older answer is not written"
    );
    let row = batch_row(&db).await;
    assert_eq!(row.get::<Option<i64>, _>("total_sales_minor"), Some(2000));
    assert_eq!(row.get::<DateTime<Utc>, _>("fetched_at"), at(2));
    assert_eq!(
        payloads(&db, "card_batch").await,
        2,
        "both answers are kept"
    );

    // A later answer still replaces it.
    assert!(
        commit(
            &ledger,
            "w-latest",
            &tx("APPROVED", "10.00", at(3)),
            Some(&batch(None, "30.00", at(3)))
        )
        .await
    );
    assert_eq!(
        batch_row(&db)
            .await
            .get::<Option<i64>, _>("total_sales_minor"),
        Some(3000)
    );
    db.drop_now().await;
}

#[tokio::test]
async fn a_batch_closed_once_stays_closed_when_an_older_open_fetch_commits_later() {
    let db = TestDatabase::create().await;
    let ledger = Ledger::new(db.pool.clone());
    let closed = batch(Some("2026-11-02 17:00:00"), "20.00", at(2));
    let closed_at = closed.value.closed_at.unwrap();
    commit(
        &ledger,
        "w-closed",
        &tx("APPROVED", "10.00", at(2)),
        Some(&closed),
    )
    .await;
    commit(
        &ledger,
        "w-open-older",
        &tx("APPROVED", "10.00", at(1)),
        Some(&batch(None, "10.00", at(1))),
    )
    .await;
    let row = batch_row(&db).await;
    assert!(row.get::<bool, _>("closed"));
    assert_eq!(
        row.get::<Option<DateTime<Utc>>, _>("closed_at"),
        Some(closed_at)
    );
    assert_eq!(row.get::<Option<i64>, _>("total_sales_minor"), Some(2000));

    // Not even an answer sent later reopens it: a closed batch is final.
    commit(
        &ledger,
        "w-open-newer",
        &tx("APPROVED", "10.00", at(3)),
        Some(&batch(None, "5.00", at(3))),
    )
    .await;
    let row = batch_row(&db).await;
    assert!(row.get::<bool, _>("closed"));
    assert_eq!(
        row.get::<Option<DateTime<Utc>>, _>("closed_at"),
        Some(closed_at)
    );
    assert_eq!(row.get::<Option<i64>, _>("total_sales_minor"), Some(2000));
    assert_eq!(row.get::<DateTime<Utc>, _>("fetched_at"), at(2));

    // A later closed answer refreshes the totals but keeps the first close time.
    let again = batch(Some("2026-11-02 18:30:00"), "21.00", at(4));
    commit(
        &ledger,
        "w-closed-again",
        &tx("APPROVED", "10.00", at(4)),
        Some(&again),
    )
    .await;
    let row = batch_row(&db).await;
    assert_eq!(row.get::<Option<i64>, _>("total_sales_minor"), Some(2100));
    assert_eq!(
        row.get::<Option<DateTime<Utc>>, _>("closed_at"),
        Some(closed_at)
    );
    db.drop_now().await;
}

#[tokio::test]
async fn an_older_fetch_of_a_transaction_committed_last_does_not_restore_its_older_status_or_amount()
 {
    let db = TestDatabase::create().await;
    let ledger = Ledger::new(db.pool.clone());
    commit(&ledger, "w-newer", &tx("APPROVED", "12.34", at(2)), None).await;
    commit(&ledger, "w-older", &tx("DECLINED", "5.00", at(1)), None).await;
    let row = tx_row(&db).await;
    assert_eq!(row.get::<String, _>("status"), "APPROVED");
    assert_eq!(row.get::<i64, _>("amount_minor"), 1234);
    assert_eq!(row.get::<DateTime<Utc>, _>("fetched_at"), at(2));
    assert_eq!(
        payloads(&db, "card_transaction").await,
        2,
        "both answers are kept"
    );
    let completed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM webhook_deliveries WHERE processed_at IS NOT NULL",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(completed, 2, "the older job's delivery still completes");

    // A later answer still replaces it.
    commit(&ledger, "w-latest", &tx("DECLINED", "12.34", at(3)), None).await;
    assert_eq!(tx_row(&db).await.get::<String, _>("status"), "DECLINED");
    db.drop_now().await;
}

#[tokio::test]
async fn helcim_payloads_refuse_updates_and_deletes() {
    let db = TestDatabase::create().await;
    let ledger = Ledger::new(db.pool.clone());
    commit(&ledger, "w", &tx("APPROVED", "1.00", at(1)), None).await;
    for statement in [
        "UPDATE helcim_payloads SET body = '{}'::json",
        "DELETE FROM helcim_payloads",
    ] {
        let error = sqlx::query(statement).execute(&db.pool).await.unwrap_err();
        assert!(error.to_string().contains("append-only"), "{error}");
    }
    db.drop_now().await;
}

#[tokio::test]
async fn a_transaction_whose_job_fetched_an_older_batch_is_judged_against_the_newer_stored_one() {
    let db = TestDatabase::create().await;
    let ledger = Ledger::new(db.pool.clone());
    // Another job stored the batch closed at 17:00 from an answer sent later.
    let closed = batch(Some("2026-11-02 17:00:00"), "20.00", at(2));
    commit(
        &ledger,
        "w-closed",
        &tx("APPROVED", "10.00", at(2)),
        Some(&closed),
    )
    .await;

    // This job saw the batch still open (answer sent earlier) and a transaction made
    // at 18:00: against its own view it would match.
    let open = batch(None, "10.00", at(1));
    let mut late = tx("APPROVED", "10.00", at(1));
    late.value = CardTransaction::from_json(json!({"transactionId": TX,
        "dateCreated": "2026-11-02 18:00:00", "cardBatchId": BATCH, "status": "APPROVED",
        "type": "purchase", "amount": "10.00", "currency": "CAD"}))
    .unwrap();
    late.sent_at = at(3);
    assert_eq!(
        reconcile(&late.value, BatchView::Read(&open.value), None),
        Reconciliation::Matched
    );
    let envelope = delivered(&ledger, "w-late").await;
    ledger
        .store(
            &envelope,
            &late,
            Some(BatchAnswer::Readable(&open)),
            |newer| {
                let view = newer.map_or(BatchView::Read(&open.value), BatchView::Read);
                reconcile(&late.value, view, None)
            },
        )
        .await
        .unwrap();
    let (status, reason): (String, Option<String>) = sqlx::query_as(
        "SELECT reconciliation_status, reconciliation_reason FROM card_transactions",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(status, "exception");
    assert!(reason.unwrap().contains("after its batch closed"));
    db.drop_now().await;
}
