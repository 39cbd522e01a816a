//! Reconciliation end to end, from the built binaries: sweeps find what webhooks
//! missed, batches that close during the run get a settlement verdict with no webhook,
//! the journal balances, and each discrepancy the simulator injects yields exactly its
//! exception while a clean run flags nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::Row;

use crate::ledger::assert_ledger_equals_truth;
use crate::stack::{Stack, StackOptions};

/// Sweeps every second, and a short grace for missed webhooks: a test's transactions
/// are seconds old when the sweep lists them.
fn sweeping_worker() -> Vec<(&'static str, String)> {
    vec![
        ("RECON_SWEEP_INTERVAL", "1".to_string()),
        ("RECON_MISSED_WEBHOOK_GRACE", "2".to_string()),
    ]
}

/// `close_every`: seconds after it opens that the simulator closes a batch (`None`:
/// batches never close during the run).
async fn start(seed: u64, per_account: u32, faults: &str, close_every: Option<u32>) -> Stack {
    Stack::start(StackOptions {
        seed,
        transactions_per_account: per_account,
        sim_faults: faults,
        worker_env: sweeping_worker(),
        sim_env: close_every
            .map(|s| vec![("SIM_BATCH_CLOSE_EVERY", s.to_string())])
            .unwrap_or_default(),
    })
    .await
}

/// Sends `body` to the simulator's control `path` and reads the answer, which must be
/// a success.
async fn sim_send(stack: &Stack, method: reqwest::Method, path: &str, body: Value) -> Value {
    let response = stack
        .http
        .request(method.clone(), format!("{}{path}", stack.sim_url))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let value: Value = response.json().await.unwrap();
    assert!(status.is_success(), "{method} {path}: {status} {value}");
    value
}

async fn sim_post(stack: &Stack, path: &str, body: Value) -> Value {
    sim_send(stack, reqwest::Method::POST, path, body).await
}

async fn sim_put(stack: &Stack, path: &str, body: Value) -> Value {
    sim_send(stack, reqwest::Method::PUT, path, body).await
}

fn account(stack: &Stack, index: usize) -> String {
    stack.accounts[index]["accountId"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn truth_count(stack: &Stack) -> i64 {
    stack.sim_json("/sim/truth").await["transactions"]
        .as_array()
        .unwrap()
        .len() as i64
}

/// Waits until the ledger holds (stored, not pending) every transaction of the truth.
async fn ledger_complete(stack: &Stack, within: Duration) {
    let total = truth_count(stack).await;
    stack
        .ledger_until(
            within,
            "transactions stored",
            |n| n == total,
            "SELECT count(*) FROM card_transactions WHERE reconciliation_status <> 'pending'",
        )
        .await;
}

/// Waits until the simulator has closed every batch (they close on its clock).
async fn all_batches_closed(stack: &Stack, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let truth = stack.sim_json("/sim/truth").await;
        let open = truth["batches"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["closedAt"].is_null())
            .count();
        if open == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{open} batches still open after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until every batch the simulator has is closed in the ledger with a verdict.
async fn every_batch_verified(stack: &Stack, within: Duration) {
    let batches = stack.sim_json("/sim/truth").await["batches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| !b["closedAt"].is_null())
        .count() as i64;
    stack
        .ledger_until(
            within,
            "closed batches with a verdict",
            |n| n >= batches,
            "SELECT count(*) FROM batch_settlements WHERE verdict <> 'open'",
        )
        .await;
}

async fn exceptions(stack: &Stack) -> BTreeSet<(String, Option<i64>, Option<i64>)> {
    sqlx::query(
        "SELECT class, transaction_id, card_batch_id FROM reconciliation_exceptions
         WHERE status <> 'resolved'",
    )
    .fetch_all(&stack.db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        let tx: Option<i64> = r.get("transaction_id");
        // A transaction's exception names the transaction; a batch's, the batch.
        let batch = if tx.is_none() {
            r.get("card_batch_id")
        } else {
            None
        };
        (r.get("class"), tx, batch)
    })
    .collect()
}

/// Card clearing of every settled balanced batch nets to zero (batches holding a
/// transaction in another currency excepted: their clearing is split by currency),
/// and every entry balances per currency.
async fn assert_journal_sound(stack: &Stack) {
    let unbalanced: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT entry_id, currency FROM journal_lines
                               GROUP BY 1, 2 HAVING sum(amount_minor) <> 0) u",
    )
    .fetch_one(&stack.db.pool)
    .await
    .unwrap();
    assert_eq!(unbalanced, 0, "every entry balances per currency");
    let residues: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT s.card_batch_id, coalesce(sum(l.amount_minor), 0)::bigint
         FROM batch_settlements s
         JOIN journal_entries e ON e.account_id = s.account_id AND e.card_batch_id = s.card_batch_id
         JOIN journal_lines l ON l.entry_id = e.id AND l.ledger_account = 'card_clearing'
         WHERE s.verdict = 'balanced'
           AND NOT EXISTS (SELECT 1 FROM card_transactions t
                           WHERE t.account_id = s.account_id AND t.card_batch_id = s.card_batch_id
                             AND t.currency IS DISTINCT FROM s.currency)
         GROUP BY 1 HAVING sum(l.amount_minor) <> 0",
    )
    .fetch_all(&stack.db.pool)
    .await
    .unwrap();
    assert!(
        residues.is_empty(),
        "a settled balanced batch's clearing nets to zero: {residues:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_injected_discrepancy_yields_exactly_its_exception_and_a_clean_run_flags_nothing() {
    // Batches close 45 s after they open, on the simulator's (real-time) clock, so
    // today's transactions stay in the sweep's window while their batches close.
    let stack = start(61, 600, "{}", Some(45)).await;
    stack.start_deliveries().await;
    let (a, b) = (account(&stack, 0), account(&stack, 1));
    for id in [&a, &b] {
        sim_post(
            &stack,
            &format!("/sim/accounts/{id}/traffic"),
            json!({"count": 400}),
        )
        .await;
    }
    ledger_complete(&stack, Duration::from_secs(180)).await;
    // Today's batches close during the run, with no webhook to say so.
    all_batches_closed(&stack, Duration::from_secs(120)).await;
    every_batch_verified(&stack, Duration::from_secs(120)).await;
    // Let a few more sweeps run over the clean ledger: nothing may be flagged.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        exceptions(&stack).await,
        BTreeSet::new(),
        "a clean run of {} transactions flags nothing",
        truth_count(&stack).await
    );
    let mismatched: i64 =
        sqlx::query_scalar("SELECT count(*) FROM batch_settlements WHERE verdict = 'mismatch'")
            .fetch_one(&stack.db.pool)
            .await
            .unwrap();
    assert_eq!(mismatched, 0, "every closed batch of a clean run balances");
    assert_journal_sound(&stack).await;

    // New traffic opens new batches; one gets stats that disagree with its
    // transactions before it closes; then one of each other discrepancy.
    for id in [&a, &b] {
        sim_post(
            &stack,
            &format!("/sim/accounts/{id}/traffic"),
            json!({"count": 50}),
        )
        .await;
    }
    let mut expected = BTreeSet::new();
    let done = sim_post(
        &stack,
        "/sim/inject",
        json!({"kind": "batch_stats_mismatch", "accountId": b}),
    )
    .await;
    let tampered = done["cardBatchId"].as_i64();
    expected.insert(("batch_mismatch".to_string(), None, tampered));
    ledger_complete(&stack, Duration::from_secs(60)).await;
    for (kind, on) in [
        ("hidden_transaction", &a),
        ("amount_change", &a),
        ("unknown_refund", &a),
        ("duplicate", &a),
        ("currency_mismatch", &a),
        ("unknown_status", &a),
        ("vanish", &a),
    ] {
        let done = sim_post(
            &stack,
            "/sim/inject",
            json!({"kind": kind, "accountId": on}),
        )
        .await;
        let class = done["expectedException"].as_str().unwrap().to_string();
        expected.insert((class, done["transactionId"].as_i64(), None));
    }
    assert_eq!(expected.len(), 8, "{expected:?}");
    // The tampered batch closes during the run (45 s after it opened).
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    while exceptions(&stack).await.len() < expected.len() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        exceptions(&stack).await,
        expected,
        "each injected discrepancy yields exactly its exception, and nothing else is flagged"
    );

    // The tampered batch is a mismatch whose bridge sums to the difference.
    let row = sqlx::query(
        "SELECT verdict, difference_minor, bridge, helcim_net_minor, ledger_net_minor
         FROM batch_settlements WHERE card_batch_id = $1",
    )
    .bind(tampered.unwrap())
    .fetch_one(&stack.db.pool)
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>("verdict"), "mismatch");
    let difference: i64 = row.get("difference_minor");
    assert_ne!(difference, 0);
    assert_eq!(
        difference,
        row.get::<i64, _>("helcim_net_minor") - row.get::<i64, _>("ledger_net_minor")
    );
    let bridge: Value = row.get("bridge");
    let explained: i64 = bridge
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["amountMinor"].as_i64().unwrap())
        .sum();
    assert_eq!(
        explained, difference,
        "the bridge sums to the difference: {bridge}"
    );
    assert_journal_sound(&stack).await;
    stack.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_tenth_of_webhooks_dropped_the_sweep_and_a_backfill_bring_the_ledger_to_the_truth() {
    let stack = start(62, 150, r#"{"webhooks":{"dropRate":0.1}}"#, None).await;
    stack.start_deliveries().await;
    for index in 0..stack.accounts.len() {
        sim_post(
            &stack,
            &format!("/sim/accounts/{}/traffic", account(&stack, index)),
            json!({"count": 600}),
        )
        .await;
    }
    stack.deliveries_finished(Duration::from_secs(120)).await;
    // Run-time webhooks are planned (and dropped) as they go: read the truth once
    // every one of them has been decided.
    let mut truth = stack.sim_json("/sim/truth").await;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let again = stack.sim_json("/sim/truth").await;
        let settled = again["droppedWebhooks"] == truth["droppedWebhooks"];
        truth = again;
        if settled && stack.sim_json("/sim/stats").await["webhooks"]["pending"] == 0 {
            break;
        }
    }
    let dropped: BTreeSet<i64> = truth["droppedWebhooks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["transactionId"].as_i64())
        .collect();
    assert!(
        dropped.len() > 50,
        "about a tenth dropped: {}",
        dropped.len()
    );
    // Every webhook that was sent is processed before the backfill looks: a
    // transaction whose webhook is merely late is not a missed one.
    let sent = truth["transactions"].as_array().unwrap().len()
        + truth["terminalCancels"].as_array().unwrap().len()
        - truth["droppedWebhooks"].as_array().unwrap().len();
    stack
        .ledger_until(
            Duration::from_secs(120),
            "webhook deliveries processed",
            |n| n == sent as i64,
            "SELECT count(*) FROM webhook_deliveries WHERE processed_at IS NOT NULL",
        )
        .await;
    // The generated history is days old, out of the sweep's window: a backfill covers it.
    let history = truth["transactions"].as_array().unwrap();
    let first = history.first().unwrap()["dateCreated"].as_str().unwrap()[..10].to_string();
    for index in 0..stack.accounts.len() {
        let summary = stack.reconctl(&[
            "backfill",
            "--account",
            &account(&stack, index),
            "--from",
            &first,
            "--to",
            "2026-11-03",
        ]);
        assert!(summary.contains("listed"), "{summary}");
    }
    ledger_complete(&stack, Duration::from_secs(120)).await;
    assert_ledger_equals_truth(&stack).await;
    let missed: BTreeSet<i64> = sqlx::query_scalar(
        "SELECT transaction_id FROM reconciliation_exceptions
         WHERE class = 'missed_webhook' AND status <> 'resolved'",
    )
    .fetch_all(&stack.db.pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    assert_eq!(
        missed, dropped,
        "exactly the dropped webhooks are missed_webhook"
    );
    let found_by: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM card_transactions WHERE discovered_by <> 'webhook'",
    )
    .fetch_one(&stack.db.pool)
    .await
    .unwrap();
    assert_eq!(found_by as usize, dropped.len());
    stack.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_closes_after_its_transactions_were_stored_is_verified_with_no_webhook() {
    // Batches close an hour after they open; the test moves the clock past that.
    let stack = start(63, 20, "{}", Some(3_600)).await;
    stack.start_deliveries().await;
    let a = account(&stack, 0);
    let made = sim_post(
        &stack,
        &format!("/sim/accounts/{a}/traffic"),
        json!({"count": 40}),
    )
    .await;
    ledger_complete(&stack, Duration::from_secs(60)).await;
    let open: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT b.card_batch_id FROM card_batches b
         JOIN card_transactions t USING (account_id, card_batch_id)
         WHERE b.account_id = $1 AND NOT b.closed",
    )
    .bind(&a)
    .fetch_all(&stack.db.pool)
    .await
    .unwrap();
    assert!(!open.is_empty(), "today's batch is open: {made}");
    let deliveries: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries")
        .fetch_one(&stack.db.pool)
        .await
        .unwrap();
    sim_put(&stack, "/sim/clock", json!({"advanceSeconds": 2 * 86_400})).await;
    for batch in &open {
        stack
            .ledger_until(
                Duration::from_secs(60),
                "the batch closed with a verdict",
                |n| n == 1,
                &format!(
                    "SELECT count(*) FROM batch_settlements s JOIN card_batches b USING (account_id, card_batch_id)
                     WHERE s.card_batch_id = {batch} AND b.closed AND b.total_sales_minor IS NOT NULL
                       AND s.verdict = 'balanced'"
                ),
            )
            .await;
    }
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries")
        .fetch_one(&stack.db.pool)
        .await
        .unwrap();
    assert_eq!(after, deliveries, "no webhook announced the close");
    // Helcim's final stats are what the ledger holds.
    let truth = stack.sim_json("/sim/truth").await;
    for batch in &open {
        let theirs = truth["batches"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["cardBatchId"].as_i64() == Some(*batch))
            .unwrap();
        let net: i64 =
            sqlx::query_scalar("SELECT net_sales_minor FROM card_batches WHERE card_batch_id = $1")
                .bind(batch)
                .fetch_one(&stack.db.pool)
                .await
                .unwrap();
        assert_eq!(Some(net), theirs["stats"]["netSales"].as_i64());
    }
    assert_journal_sound(&stack).await;
    stack.finish().await;
}
