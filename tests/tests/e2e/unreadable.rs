//! Nothing Helcim said is thrown away: an unreadable transaction is kept byte for byte
//! and dead-lettered (replayable once fixed); a transaction whose batch alone is
//! unreadable is stored, as an exception, with the batch's answer kept.

use std::time::Duration;

use serde_json::json;
use sqlx::Row;

use crate::stack::{RECONCILED, Stack, StackOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_answers_from_helcim_are_kept_and_only_their_own_transaction_waits_for_a_fix() {
    let activity = recon_sim::generate(&recon_sim::GenerateConfig {
        seed: 77,
        transactions_per_account: 40,
        ..recon_sim::GenerateConfig::default()
    });
    // One transaction answers with half its JSON; another batch answers misdated.
    let broken_tx = activity.transactions[0].clone();
    let broken_batch = activity
        .transactions
        .iter()
        .find(|t| t.card_batch_id != broken_tx.card_batch_id)
        .unwrap()
        .card_batch_id;
    let members: Vec<_> = activity
        .transactions
        .iter()
        .filter(|t| t.card_batch_id == broken_batch)
        .cloned()
        .collect();
    let faults = json!({"api": {
        "unreadableTransactionIds": [broken_tx.transaction_id],
        "unreadableBatchIds": [broken_batch],
    }})
    .to_string();
    let stack = Stack::start(StackOptions {
        seed: 77,
        transactions_per_account: 40,
        sim_faults: &faults,
        worker_env: vec![],
        sim_env: vec![],
    })
    .await;
    let total = activity.transactions.len() as i64;
    stack.start_deliveries().await;
    stack.deliveries_finished(Duration::from_secs(60)).await;
    stack
        .ledger_until(
            Duration::from_secs(60),
            "all but the unreadable transaction",
            |n| n == total - 1,
            RECONCILED,
        )
        .await;
    let pool = &stack.db.pool;

    // The unreadable transaction: its answer kept exactly, with why; the job
    // dead-lettered saying where the answer is; its ledger row still pending.
    let kept = sqlx::query(
        "SELECT body IS NULL AS no_json, raw_body, parse_error FROM helcim_payloads
         WHERE kind = 'card_transaction' AND object_id = $1",
    )
    .bind(broken_tx.transaction_id as i64)
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(kept.get::<bool, _>("no_json"));
    let raw = String::from_utf8(kept.get::<Vec<u8>, _>("raw_body")).unwrap();
    assert!(
        raw.starts_with("{\"transactionId\":")
            && raw.contains(&broken_tx.transaction_id.to_string()),
        "{raw}"
    );
    assert!(serde_json::from_str::<serde_json::Value>(&raw).is_err());
    assert!(kept.get::<String, _>("parse_error").contains("not JSON"));
    let outcome: String = sqlx::query_scalar(
        "SELECT outcome FROM webhook_deliveries WHERE object_id = $1 AND event_type = 'cardTransaction'",
    )
    .bind(broken_tx.transaction_id.to_string())
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(
        outcome.starts_with("dead-lettered: Helcim's answer to card transaction")
            && outcome.contains("kept as received in helcim_payloads"),
        "{outcome}"
    );
    let mut listing = String::new();
    for _ in 0..40 {
        listing = stack.reconctl(&["dlq", "list"]);
        if listing.starts_with("1 dead letters") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(listing.starts_with("1 dead letters"), "{listing}");
    assert!(listing.contains("could not be read"), "{listing}");

    // The unreadable batch: each of its transactions stored with the exception, the
    // batch's answers kept, no card_batches row made up.
    assert!(!members.is_empty());
    for member in &members {
        let row = sqlx::query(
            "SELECT reconciliation_status, reconciliation_reason, amount_minor
             FROM card_transactions WHERE account_id = $1 AND transaction_id = $2",
        )
        .bind(&member.account_id)
        .bind(member.transaction_id as i64)
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(row.get::<String, _>("reconciliation_status"), "exception");
        let reason: String = row.get("reconciliation_reason");
        assert!(
            reason.starts_with("batch_unreadable: ") && reason.contains("dateClosed"),
            "{reason}"
        );
        assert_eq!(
            row.get::<Option<i64>, _>("amount_minor"),
            Some(member.amount_minor)
        );
    }
    let batch_answers: Vec<String> = sqlx::query_scalar(
        "SELECT convert_from(raw_body, 'UTF8')::json ->> 'dateClosed' FROM helcim_payloads
         WHERE kind = 'card_batch' AND object_id = $1 AND parse_error LIKE '%dateClosed%'",
    )
    .bind(broken_batch as i64)
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(!batch_answers.is_empty());
    assert!(batch_answers.iter().all(|d| d == "sometime yesterday"));
    let stored_batch: i64 =
        sqlx::query_scalar("SELECT count(*) FROM card_batches WHERE card_batch_id = $1")
            .bind(broken_batch as i64)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(stored_batch, 0);
    let exceptions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM card_transactions WHERE reconciliation_status = 'exception'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(exceptions, members.len() as i64, "every other one matched");

    // Helcim's answer is fixed; the operator replays; the transaction is reconciled.
    stack.put_faults(json!({})).await;
    let replayed = stack.reconctl(&["dlq", "replay"]);
    assert!(replayed.contains("replayed 1"), "{replayed}");
    stack
        .ledger_until(
            Duration::from_secs(30),
            "the replayed one",
            |n| n == total,
            RECONCILED,
        )
        .await;
    stack.assert_nothing_queued();
    stack.finish().await;
}
