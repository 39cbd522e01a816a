//! Nothing lost, nothing doubled: the worker killed mid-stream, Helcim answering 5xx
//! and 429 for a while, Postgres refusing connections for longer than the whole retry
//! ladder. Outages are not the messages' fault: nothing is dead-lettered.

use std::time::Duration;

use recon_common::tcp_proxy::Proxy;
use serde_json::json;

use crate::ledger::assert_ledger_equals_truth;
use crate::stack::{RECONCILED, Stack, StackOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_killed_worker_api_errors_and_a_database_outage_the_ledger_equals_the_truth() {
    let postgres = Proxy::start("127.0.0.1:5432").await;
    let mut stack = Stack::start(StackOptions {
        seed: 33,
        transactions_per_account: 300,
        sim_faults: r#"{"webhooks":{"duplicateRate":0.05,"reorderWindow":10}}"#,
        worker_env: vec![],
        sim_env: vec![],
    })
    .await;
    // The worker reaches Postgres through the proxy, so the test can cut it off.
    let proxied_db = stack
        .db
        .url
        .replace("127.0.0.1:5432", &format!("127.0.0.1:{}", postgres.port));
    // One retry for causes of a message's own: the ladder (200 ms, 500 ms, 1 s) is
    // spent in under 2 s, far shorter than the outages below.
    let worker_env = vec![
        ("DATABASE_URL", proxied_db),
        ("WORKER_PREFETCH", "16".to_string()),
        ("WORKER_MAX_RETRIES", "1".to_string()),
    ];
    let _ = stack.worker.child.kill();
    let _ = stack.worker.child.wait();
    stack.restart_worker(&worker_env);

    let truth = stack.sim_json("/sim/truth").await;
    let total = truth["transactions"].as_array().unwrap().len() as i64;
    // Helcim fails a fifth of the calls, and one account's budget is spent for 3 s.
    stack
        .put_faults(json!({"api": {"errorRate": 0.2, "errorStatus": 503}}))
        .await;
    let account = stack.accounts[0]["accountId"].as_str().unwrap().to_string();
    stack
        .http
        .post(format!(
            "{}/sim/accounts/{account}/exhaust?seconds=3",
            stack.sim_url
        ))
        .send()
        .await
        .unwrap();
    stack.start_deliveries().await;

    // SIGKILL mid-stream, then a fresh worker.
    stack
        .ledger_until(
            Duration::from_secs(60),
            "a first third",
            |n| n >= total / 3,
            RECONCILED,
        )
        .await;
    let _ = stack.worker.child.kill();
    let _ = stack.worker.child.wait();
    stack.restart_worker(&worker_env);

    // Postgres refuses the worker for 6 s: the worker pauses and holds its messages.
    stack
        .ledger_until(
            Duration::from_secs(60),
            "two thirds",
            |n| n >= 2 * total / 3,
            RECONCILED,
        )
        .await;
    postgres.cut();
    tokio::time::sleep(Duration::from_secs(6)).await;
    postgres.restore();

    stack.put_faults(json!({})).await;
    stack.deliveries_finished(Duration::from_secs(120)).await;
    stack
        .ledger_until(
            Duration::from_secs(120),
            "all reconciled",
            |n| n == total,
            RECONCILED,
        )
        .await;
    assert_ledger_equals_truth(&stack).await;

    let unprocessed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries WHERE processed_at IS NULL")
            .fetch_one(&stack.db.pool)
            .await
            .unwrap();
    assert_eq!(unprocessed, 0, "nothing stuck");
    // Give late retries a moment to drain, then nothing may be waiting anywhere.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stack.assert_nothing_queued();
    let api = stack.sim_json("/sim/stats").await;
    assert!(
        api["api"]["byStatus"]["503"].as_i64().unwrap_or(0) > 0,
        "the API faults happened: {api}"
    );
    stack.finish().await;
}
