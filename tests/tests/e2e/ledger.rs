//! Webhooks from the simulator end as exactly one correct ledger row each.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use helcim_client::mountain_time;
use serde_json::{Value, json};
use sqlx::Row;

use crate::stack::{Stack, StackOptions};

/// Every truth transaction is in the ledger once, with the truth's values.
pub async fn assert_ledger_equals_truth(stack: &Stack) {
    let truth = stack.sim_json("/sim/truth").await;
    let expected = truth["transactions"].as_array().unwrap();
    let rows = sqlx::query("SELECT * FROM card_transactions")
        .fetch_all(&stack.db.pool)
        .await
        .unwrap();
    assert_eq!(
        rows.len(),
        expected.len(),
        "one row per transaction, none doubled, none lost"
    );
    let by_key: HashMap<(String, i64), &sqlx::postgres::PgRow> = rows
        .iter()
        .map(|r| {
            (
                (
                    r.get::<String, _>("account_id"),
                    r.get::<i64, _>("transaction_id"),
                ),
                r,
            )
        })
        .collect();
    for tx in expected {
        let key = (
            tx["accountId"].as_str().unwrap().to_string(),
            tx["transactionId"].as_i64().unwrap(),
        );
        let row = by_key
            .get(&key)
            .unwrap_or_else(|| panic!("{key:?} is missing"));
        assert_eq!(
            row.get::<Option<i64>, _>("amount_minor"),
            tx["amountMinor"].as_i64(),
            "{key:?}"
        );
        assert_eq!(
            row.get::<Option<String>, _>("currency").as_deref(),
            tx["currency"].as_str()
        );
        assert_eq!(
            row.get::<Option<String>, _>("type").as_deref(),
            tx["type"].as_str()
        );
        assert_eq!(
            row.get::<Option<String>, _>("status").as_deref(),
            tx["status"].as_str()
        );
        assert_eq!(
            row.get::<Option<i64>, _>("card_batch_id"),
            tx["cardBatchId"].as_i64()
        );
        assert_eq!(
            row.get::<String, _>("reconciliation_status"),
            "matched",
            "{key:?}: {:?}",
            row.get::<Option<String>, _>("reconciliation_reason")
        );
        let created: DateTime<Utc> = row.get::<Option<DateTime<Utc>>, _>("created_at").unwrap();
        let truth_created: DateTime<Utc> = tx["createdAt"].as_str().unwrap().parse().unwrap();
        let local = mountain_time::parse_local(tx["dateCreated"].as_str().unwrap()).unwrap();
        if mountain_time::is_ambiguous(local) {
            assert!(mountain_time::candidates(local).contains(&truth_created));
            assert!(mountain_time::candidates(local).contains(&created));
        } else {
            assert_eq!(created, truth_created, "{key:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_transactions_delivered_late_twice_and_out_of_order_are_each_recorded_once_and_served_correctly()
 {
    let stack = Stack::start(StackOptions {
        seed: 21,
        transactions_per_account: 500,
        sim_faults: r#"{"webhooks":{"duplicateRate":0.1,"reorderWindow":20,"delayRate":0.05,"delayMaxMs":2000}}"#,
        worker_env: vec![],
        sim_env: vec![],
    })
    .await;
    let truth = stack.sim_json("/sim/truth").await;
    let total = truth["transactions"].as_array().unwrap().len() as i64;
    assert!(total >= 1000);
    stack.start_deliveries().await;
    stack.deliveries_finished(Duration::from_secs(120)).await;
    stack
        .ledger_until(
            Duration::from_secs(120),
            "reconciled transactions",
            |n| n == total,
            "SELECT count(*) FROM card_transactions WHERE reconciliation_status <> 'pending'",
        )
        .await;
    assert_ledger_equals_truth(&stack).await;

    // Every delivery recorded once, duplicates recognised, terminal cancels kept.
    let deliveries: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM webhook_deliveries WHERE processed_at IS NOT NULL",
    )
    .fetch_one(&stack.db.pool)
    .await
    .unwrap();
    let cancels = truth["terminalCancels"].as_array().unwrap().len() as i64;
    assert_eq!(deliveries, total + cancels);
    let recorded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries WHERE outcome = 'recorded'")
            .fetch_one(&stack.db.pool)
            .await
            .unwrap();
    assert_eq!(recorded, cancels);
    let duplicates: i64 =
        sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries WHERE attempts > 1")
            .fetch_one(&stack.db.pool)
            .await
            .unwrap();
    assert!(duplicates > 0, "duplicate deliveries were recognised");

    // Batches stored with their stats, as the simulator computed them.
    for batch in truth["batches"].as_array().unwrap() {
        let row = sqlx::query("SELECT total_sales_minor, count_total, closed FROM card_batches WHERE account_id = $1 AND card_batch_id = $2")
            .bind(batch["accountId"].as_str().unwrap())
            .bind(batch["cardBatchId"].as_i64().unwrap())
            .fetch_one(&stack.db.pool)
            .await
            .unwrap();
        assert_eq!(row.get::<bool, _>("closed"), !batch["closedAt"].is_null());
        if !row.get::<bool, _>("closed") {
            continue; // an open batch's stats were taken while it was still filling
        }
        assert_eq!(
            row.get::<Option<i64>, _>("total_sales_minor"),
            batch["stats"]["totalSales"].as_i64()
        );
        assert_eq!(
            row.get::<Option<i64>, _>("count_total"),
            batch["stats"]["countTotal"].as_i64()
        );
    }
    stack.assert_nothing_queued();
    assert_api_answers_every_transaction(&stack, &truth).await;
    stack.finish().await;
}

/// The API returns every transaction as the truth has it.
async fn assert_api_answers_every_transaction(stack: &Stack, truth: &Value) {
    use futures::StreamExt;
    let key = stack
        .reconctl(&["api-keys", "create", "--role", "finance"])
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string();
    let transactions = truth["transactions"].as_array().unwrap();
    let mismatches: Vec<String> = futures::stream::iter(transactions)
        .map(|tx| {
            let key = key.clone();
            async move {
                let url = format!(
                    "{}/v1/accounts/{}/transactions/{}",
                    stack.api_url,
                    tx["accountId"].as_str().unwrap(),
                    tx["transactionId"]
                );
                let body: Value = stack
                    .http
                    .get(url)
                    .bearer_auth(key)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let cents = tx["amountMinor"].as_i64().unwrap();
                let expected = json!({
                    "amount": format!("{}.{:02}", cents / 100, cents % 100),
                    "currency": tx["currency"], "type": tx["type"], "status": tx["status"],
                    "cardBatchId": tx["cardBatchId"], "reconciliation": "matched",
                });
                let actual = json!({
                    "amount": body["amount"], "currency": body["currency"], "type": body["type"],
                    "status": body["status"], "cardBatchId": body["cardBatchId"],
                    "reconciliation": body["reconciliation"]["status"],
                });
                (expected != actual)
                    .then(|| format!("{}: expected {expected}, got {actual}", tx["transactionId"]))
            }
        })
        .buffer_unordered(16)
        .filter_map(|m| async move { m })
        .collect()
        .await;
    assert!(
        mismatches.is_empty(),
        "{} API answers differ, e.g. {:?}",
        mismatches.len(),
        mismatches.first()
    );
}
