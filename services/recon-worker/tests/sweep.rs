//! Sweeps against the simulator over HTTP and a real Postgres: the completeness pass
//! brings the ledger to the simulator's truth with list calls (one per page, not one
//! per transaction), an unchanged second sweep writes nothing, a changed answer is a
//! correction, a batch that closed since it was stored ends closed with a verdict, and
//! one replica at a time sweeps an account.
//!
//! Tests marked `#[ignore]` assert what other parts write (exceptions, the journal, the
//! simulator's `/sim/inject`); they pass once those parts are merged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use helcim_client::AccountLimits;
use recon_sim::{GenerateConfig, RunningSim, SimConfig};
use recon_store::reconciliation::settlement;
use recon_store::testing::TestDatabase;
use recon_store::{AccountStore, MasterKey, SecretCipher};
use recon_worker::clients::HelcimClients;
use recon_worker::ledger::Ledger;
use recon_worker::sweep::{Clients, Kind, RunOutcome, Sweeper, Window, lock};
use secrecy::SecretString;
use sqlx::PgPool;

/// A simulator with one account's two days of activity, its token in the ledger's
/// accounts, and a sweeper pointed at both.
struct Stack {
    db: TestDatabase,
    sim: RunningSim,
    sweeper: Sweeper,
    account: String,
    window: Window,
}

fn date(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

/// `transactions` over 2026-11-10 and 11-11 (batches close at 17:00 Mountain, so the
/// last one is still open).
async fn stack(transactions: usize) -> Stack {
    let generate = GenerateConfig {
        seed: 7,
        accounts: 1,
        transactions_per_account: transactions,
        start: date("2026-11-10"),
        days: 2,
        batch_close_hour: 17,
    };
    let sim = RunningSim::start(SimConfig {
        generate,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let db = TestDatabase::create().await;
    let key = MasterKey::from_base64(&MasterKey::generate(), "TEST").unwrap();
    let store = AccountStore::new(db.pool.clone(), Arc::new(SecretCipher::new(key, vec![])));
    let (account, token) = {
        let ledger = sim.state().ledger();
        let first = &ledger.activity.accounts[0];
        (first.account_id.clone(), first.api_token.clone())
    };
    store
        .upsert_tokens(&account, &SecretString::from(token), None)
        .await
        .unwrap();
    let clients = HelcimClients::new(store, &sim.api_base_url(), AccountLimits::unlimited());
    let sweeper = Sweeper::new(
        Ledger::new(db.pool.clone()),
        Clients::Own(Arc::new(clients)),
        Duration::from_secs(300),
    );
    Stack {
        db,
        sim,
        sweeper,
        account,
        window: Window::new(date("2026-11-10"), date("2026-11-11")).unwrap(),
    }
}

impl Stack {
    async fn run(&self, kind: Kind) -> recon_worker::sweep::Counts {
        let window = (kind != Kind::Batches).then_some(self.window);
        match self.sweeper.run(kind, &self.account, window).await {
            RunOutcome::Ran { counts, error } => {
                assert!(error.is_none(), "{error:?}");
                counts
            }
            RunOutcome::Skipped => panic!("the run was skipped"),
        }
    }

    /// The simulator's transactions of the account: id → (amount, batch).
    fn truth(&self) -> BTreeMap<i64, (i64, i64)> {
        let ledger = self.sim.state().ledger();
        ledger
            .transactions_of(&self.account)
            .map(|t| {
                (
                    t.transaction_id as i64,
                    (t.amount_minor, t.card_batch_id as i64),
                )
            })
            .collect()
    }

    fn api_requests(&self) -> u64 {
        self.sim.state().api_stats().requests
    }

    async fn finish(self) {
        self.sim.stop().await;
        self.db.drop_now().await;
    }
}

async fn ledger(pool: &PgPool, account: &str) -> BTreeMap<i64, (i64, i64)> {
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT transaction_id, amount_minor, card_batch_id FROM card_transactions
          WHERE account_id = $1 AND reconciliation_status <> 'pending'",
    )
    .bind(account)
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter().map(|(id, a, b)| (id, (a, b))).collect()
}

/// Everything a sweep could write, in a form that changes when anything is written.
async fn snapshot(pool: &PgPool) -> Vec<String> {
    let mut seen = Vec::new();
    for sql in [
        "SELECT count(*)::text || '/' || coalesce(max(updated_at)::text, '') || '/' || coalesce(max(fetched_at)::text, '') FROM card_transactions",
        "SELECT count(*)::text FROM helcim_payloads",
        "SELECT count(*)::text || '/' || coalesce(max(fetched_at)::text, '') FROM card_batches",
        "SELECT count(*)::text || '/' || coalesce(max(verified_at)::text, '') FROM batch_settlements",
        "SELECT count(*)::text FROM journal_entries",
        "SELECT count(*)::text || '/' || coalesce(max(updated_at)::text, '') FROM reconciliation_exceptions",
    ] {
        let value: String = sqlx::query_scalar(sql).fetch_one(pool).await.unwrap();
        seen.push(format!("{sql} = {value}"));
    }
    seen
}

#[tokio::test]
async fn a_sweep_records_what_no_webhook_announced_with_one_call_per_page() {
    let stack = stack(1_200).await;
    let truth = stack.truth();
    assert!(truth.len() > 1_000, "two pages: {}", truth.len());
    let batches: std::collections::BTreeSet<i64> = truth.values().map(|(_, b)| *b).collect();

    let before = stack.api_requests();
    let counts = stack.run(Kind::Completeness).await;

    assert_eq!(ledger(&stack.db.pool, &stack.account).await, truth);
    // Two pages, and one GET per batch the ledger did not know: never per transaction.
    let expected_calls = 2 + batches.len() as u32;
    assert_eq!(counts.api_calls.0, expected_calls);
    assert_eq!(stack.api_requests() - before, u64::from(expected_calls));
    assert_eq!(counts.listed as usize, truth.len());
    assert_eq!(counts.recorded as usize, truth.len());
    assert_eq!(counts.corrected, 0);

    let discovered: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT discovered_by FROM card_transactions WHERE account_id = $1",
    )
    .bind(&stack.account)
    .fetch_all(&stack.db.pool)
    .await
    .unwrap();
    assert_eq!(discovered, vec!["sweep".to_string()]);
    let stored_batches: i64 =
        sqlx::query_scalar("SELECT count(*) FROM card_batches WHERE account_id = $1")
            .bind(&stack.account)
            .fetch_one(&stack.db.pool)
            .await
            .unwrap();
    assert_eq!(stored_batches as usize, batches.len());

    let run: (String, i32, i32, i32, Option<String>, NaiveDate, NaiveDate) = sqlx::query_as(
        "SELECT kind, api_calls, listed, recorded, outcome, window_from, window_to
           FROM sweep_runs WHERE account_id = $1",
    )
    .bind(&stack.account)
    .fetch_one(&stack.db.pool)
    .await
    .unwrap();
    assert_eq!(
        run,
        (
            "completeness".to_string(),
            expected_calls as i32,
            truth.len() as i32,
            truth.len() as i32,
            Some("ok".to_string()),
            date("2026-11-10"),
            date("2026-11-11"),
        )
    );
    stack.finish().await;
}

#[tokio::test]
async fn an_unchanged_second_sweep_writes_nothing_and_lists_only() {
    let stack = stack(300).await;
    stack.run(Kind::Completeness).await;
    let first_batches = stack.run(Kind::Batches).await;
    assert!(first_batches.verdicts.get("balanced").copied().unwrap_or(0) > 0);
    let before = snapshot(&stack.db.pool).await;

    let again = stack.run(Kind::Completeness).await;
    assert_eq!((again.recorded, again.corrected), (0, 0));
    assert_eq!(again.api_calls.0, 1, "one page, no batch GETs");
    let batches = stack.run(Kind::Batches).await;
    // Only open batches are fetched again; verified closed batches are left alone.
    let open = stack
        .sim
        .state()
        .ledger()
        .activity
        .batches
        .iter()
        .filter(|b| b.closed_at.is_none())
        .count() as u32;
    assert!(open > 0);
    assert_eq!(batches.api_calls.0, open, "{batches:?}");
    assert_eq!(batches.verdicts.get("balanced"), None);
    assert_eq!(snapshot(&stack.db.pool).await, before);
    stack.finish().await;
}

#[tokio::test]
async fn a_changed_answer_is_recorded_as_a_correction() {
    let stack = stack(200).await;
    stack.run(Kind::Completeness).await;
    // The ledger holds an older answer for one approved purchase (its amount then).
    let (id, amount): (i64, i64) = sqlx::query_as(
        "SELECT transaction_id, amount_minor FROM card_transactions
          WHERE account_id = $1 AND type = 'purchase' AND status = 'APPROVED'
          ORDER BY transaction_id LIMIT 1",
    )
    .bind(&stack.account)
    .fetch_one(&stack.db.pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE card_transactions SET amount_minor = amount_minor + 500,
                fetched_at = fetched_at - interval '1 hour'
          WHERE account_id = $1 AND transaction_id = $2",
    )
    .bind(&stack.account)
    .bind(id)
    .execute(&stack.db.pool)
    .await
    .unwrap();

    let counts = stack.run(Kind::Completeness).await;
    assert_eq!((counts.recorded, counts.corrected), (0, 1));
    let now: i64 = sqlx::query_scalar(
        "SELECT amount_minor FROM card_transactions WHERE account_id = $1 AND transaction_id = $2",
    )
    .bind(&stack.account)
    .bind(id)
    .fetch_one(&stack.db.pool)
    .await
    .unwrap();
    assert_eq!(now, amount, "Helcim's amount is the ledger's again");
    assert_eq!(ledger(&stack.db.pool, &stack.account).await, stack.truth());
    stack.finish().await;
}

#[tokio::test]
async fn a_batch_that_closed_since_its_transactions_were_stored_ends_closed_and_balanced() {
    let stack = stack(300).await;
    stack.run(Kind::Completeness).await;
    // The ledger stored one batch while it was open (as the webhook path did, before
    // its close): no stats, no close, an older answer.
    let batch: i64 = sqlx::query_scalar(
        "SELECT card_batch_id FROM card_batches WHERE account_id = $1 AND closed
          ORDER BY card_batch_id LIMIT 1",
    )
    .bind(&stack.account)
    .fetch_one(&stack.db.pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE card_batches SET closed = false, closed_at = NULL, net_sales_minor = NULL,
                total_sales_minor = NULL, total_refunds_minor = NULL, total_reversed_minor = NULL,
                total_refunds_reversed_minor = NULL, count_total = NULL, count_approved = NULL,
                count_declined = NULL, fetched_at = fetched_at - interval '1 day'
          WHERE account_id = $1 AND card_batch_id = $2",
    )
    .bind(&stack.account)
    .bind(batch)
    .execute(&stack.db.pool)
    .await
    .unwrap();

    let counts = stack.run(Kind::Batches).await;
    assert!(counts.batches_closed >= 1, "{counts:?}");

    let truth = stack
        .sim
        .state()
        .ledger()
        .activity
        .batch(batch as u64)
        .unwrap()
        .clone();
    let (closed, net, count): (bool, Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT closed, net_sales_minor, count_total FROM card_batches
          WHERE account_id = $1 AND card_batch_id = $2",
    )
    .bind(&stack.account)
    .bind(batch)
    .fetch_one(&stack.db.pool)
    .await
    .unwrap();
    assert!(closed);
    assert_eq!(net, Some(truth.stats.net_sales));
    assert_eq!(count, Some(truth.stats.count_total as i64));
    let mut db = stack.db.pool.acquire().await.unwrap();
    let verdict = settlement::get(&mut db, &stack.account, batch as u64)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(verdict.verdict, "balanced", "{verdict:?}");
    assert_eq!(verdict.helcim_net_minor, Some(truth.stats.net_sales));
    assert_eq!(verdict.ledger_net_minor, truth.stats.net_sales);
    assert_eq!(verdict.difference_minor, 0);
    assert!(verdict.transactions_listed_at.is_some());
    assert!(verdict.closed_at.is_some());
    drop(db);

    // Every closed batch of this clean run is balanced; the open one is `open`.
    let verdicts: Vec<(String, bool)> = sqlx::query_as(
        "SELECT s.verdict, b.closed FROM batch_settlements s
           JOIN card_batches b USING (account_id, card_batch_id) WHERE s.account_id = $1",
    )
    .bind(&stack.account)
    .fetch_all(&stack.db.pool)
    .await
    .unwrap();
    let batches = stack.sim.state().ledger().activity.batches.len();
    assert_eq!(verdicts.len(), batches);
    for (verdict, closed) in verdicts {
        assert_eq!(verdict, if closed { "balanced" } else { "open" });
    }
    stack.finish().await;
}

#[tokio::test]
async fn a_tampered_ledger_batch_is_a_mismatch_whose_bridge_sums_to_the_difference() {
    let stack = stack(300).await;
    stack.run(Kind::Completeness).await;
    // A transaction of a closed batch that the ledger files under another batch: the
    // batch listing shows it, so the sweep records it back and the batch balances.
    let (batch, id): (i64, i64) = sqlx::query_as(
        "SELECT card_batch_id, transaction_id FROM card_transactions
          WHERE account_id = $1 AND type = 'purchase' AND status = 'APPROVED'
            AND card_batch_id IN (SELECT card_batch_id FROM card_batches WHERE closed)
          ORDER BY transaction_id LIMIT 1",
    )
    .bind(&stack.account)
    .fetch_one(&stack.db.pool)
    .await
    .unwrap();
    // Now a row whose fetched_at is newer than any listing: the sweep cannot correct it,
    // so the batch is one sale short.
    sqlx::query(
        "UPDATE card_transactions SET card_batch_id = 1, fetched_at = now() + interval '1 day'
          WHERE account_id = $1 AND transaction_id = $2",
    )
    .bind(&stack.account)
    .bind(id)
    .execute(&stack.db.pool)
    .await
    .unwrap();
    stack.run(Kind::Batches).await;
    let mut db = stack.db.pool.acquire().await.unwrap();
    let verdict = settlement::get(&mut db, &stack.account, batch as u64)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(verdict.verdict, "mismatch");
    let amount: i64 = stack.truth()[&id].0;
    assert_eq!(verdict.difference_minor, amount);
    let bridge: Vec<serde_json::Value> = serde_json::from_value(verdict.bridge).unwrap();
    let sum: i64 = bridge
        .iter()
        .map(|b| b["amountMinor"].as_i64().unwrap())
        .sum();
    assert_eq!(sum, verdict.difference_minor);
    assert!(
        bridge
            .iter()
            .any(|b| b["transactionId"] == id && b["reason"] == "not_in_ledger"),
        "{bridge:?}"
    );
    drop(db);
    stack.finish().await;
}

#[tokio::test]
async fn one_replica_sweeps_an_account_at_a_time() {
    let stack = stack(100).await;
    // Another replica holds the lock: this one skips, spending no call.
    let held = lock::try_lock(&stack.db.pool, "completeness", &stack.account)
        .await
        .unwrap()
        .expect("free");
    let before = stack.api_requests();
    let outcome = stack
        .sweeper
        .run(Kind::Completeness, &stack.account, Some(stack.window))
        .await;
    assert!(matches!(outcome, RunOutcome::Skipped), "{outcome:?}");
    assert_eq!(stack.api_requests(), before);
    // The batch pass has a lock of its own.
    stack.run(Kind::Batches).await;
    // A replica that dies (its connection goes) frees the lock.
    drop(held);
    let mut ran = false;
    for _ in 0..50 {
        match stack
            .sweeper
            .run(Kind::Completeness, &stack.account, Some(stack.window))
            .await
        {
            RunOutcome::Ran { error, .. } => {
                assert!(error.is_none(), "{error:?}");
                ran = true;
                break;
            }
            RunOutcome::Skipped => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(ran, "the lock of a closed session is released");

    // Two at once (each answer slowed to a second): one runs, the other skips.
    stack.sim.state().update_faults(|f| {
        f.api.slow_rate = 1.0;
        f.api.slow_ms = 1_000;
    });
    let (a, b) = tokio::join!(
        stack
            .sweeper
            .run(Kind::Completeness, &stack.account, Some(stack.window)),
        stack
            .sweeper
            .run(Kind::Completeness, &stack.account, Some(stack.window)),
    );
    let skipped = [&a, &b]
        .iter()
        .filter(|o| matches!(o, RunOutcome::Skipped))
        .count();
    assert_eq!(skipped, 1, "{a:?} {b:?}");
    let runs: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sweep_runs WHERE account_id = $1 AND kind = 'completeness'",
    )
    .bind(&stack.account)
    .fetch_one(&stack.db.pool)
    .await
    .unwrap();
    assert_eq!(runs, 2, "skipped runs leave no row");
    stack.finish().await;
}

#[tokio::test]
async fn helcim_down_ends_the_run_with_the_reason_and_the_next_one_succeeds() {
    let stack = stack(100).await;
    stack.sim.state().update_faults(|f| f.api.fail_next = 50);
    let outcome = stack
        .sweeper
        .run(Kind::Completeness, &stack.account, Some(stack.window))
        .await;
    let RunOutcome::Ran {
        error: Some(error), ..
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(error.label(), "helcim_unavailable");
    let outcome: Option<String> = sqlx::query_scalar(
        "SELECT outcome FROM sweep_runs WHERE account_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(&stack.account)
    .fetch_one(&stack.db.pool)
    .await
    .unwrap();
    assert!(
        outcome
            .as_deref()
            .unwrap()
            .starts_with("helcim_unavailable: "),
        "{outcome:?}"
    );
    assert!(ledger(&stack.db.pool, &stack.account).await.is_empty());

    stack.sim.state().update_faults(|f| f.api.fail_next = 0);
    stack.run(Kind::Completeness).await;
    assert_eq!(ledger(&stack.db.pool, &stack.account).await, stack.truth());
    stack.finish().await;
}

async fn exceptions(pool: &PgPool, account: &str) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT class, dedupe_key FROM reconciliation_exceptions
          WHERE account_id = $1 AND status <> 'resolved' ORDER BY dedupe_key",
    )
    .bind(account)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn each_transaction_a_sweep_found_is_a_missed_webhook_and_a_clean_run_flags_nothing_else() {
    let stack = stack(300).await;
    stack.run(Kind::Completeness).await;
    stack.run(Kind::Batches).await;
    let found = exceptions(&stack.db.pool, &stack.account).await;
    let truth = stack.truth();
    assert_eq!(found.len(), truth.len(), "{found:?}");
    for id in truth.keys() {
        assert!(found.contains(&(
            "missed_webhook".to_string(),
            format!("missed_webhook:tx:{id}")
        )));
    }
    // Helcim stops listing one: missing_in_api; listed again: cleared.
    let gone = *truth.keys().next().unwrap() as u64;
    stack.sim.state().update_faults(|f| {
        f.api.hidden_transaction_ids.insert(gone);
    });
    stack.run(Kind::Completeness).await;
    let key = format!("missing_in_api:tx:{gone}");
    assert!(
        exceptions(&stack.db.pool, &stack.account)
            .await
            .contains(&("missing_in_api".to_string(), key.clone()))
    );
    stack.sim.state().update_faults(|f| {
        f.api.hidden_transaction_ids.remove(&gone);
    });
    stack.run(Kind::Completeness).await;
    assert!(
        !exceptions(&stack.db.pool, &stack.account)
            .await
            .iter()
            .any(|(_, k)| *k == key)
    );
    stack.finish().await;
}

#[tokio::test]
async fn a_balanced_batch_settles_its_clearing_to_zero() {
    let stack = stack(300).await;
    stack.run(Kind::Completeness).await;
    stack.run(Kind::Batches).await;
    let entries: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM journal_entries WHERE account_id = $1 AND kind = 'settlement'",
    )
    .bind(&stack.account)
    .fetch_one(&stack.db.pool)
    .await
    .unwrap();
    let closed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM batch_settlements WHERE account_id = $1 AND verdict = 'balanced'
            AND helcim_net_minor <> 0",
    )
    .bind(&stack.account)
    .fetch_one(&stack.db.pool)
    .await
    .unwrap();
    assert!(closed > 0);
    assert_eq!(entries, closed, "one settlement entry per closed batch");
    let clearing: Option<i64> = sqlx::query_scalar(
        "SELECT sum(l.amount_minor)::bigint FROM journal_lines l
           JOIN journal_entries e ON e.id = l.entry_id
           JOIN card_transactions t ON t.account_id = e.account_id AND t.transaction_id = e.transaction_id
           JOIN card_batches b ON b.account_id = t.account_id AND b.card_batch_id = t.card_batch_id
          WHERE e.account_id = $1 AND l.ledger_account = 'card_clearing' AND b.closed",
    )
    .bind(&stack.account)
    .fetch_one(&stack.db.pool)
    .await
    .unwrap();
    let settled: Option<i64> = sqlx::query_scalar(
        "SELECT sum(l.amount_minor)::bigint FROM journal_lines l
           JOIN journal_entries e ON e.id = l.entry_id
          WHERE e.account_id = $1 AND e.kind = 'settlement' AND l.ledger_account = 'card_clearing'",
    )
    .bind(&stack.account)
    .fetch_one(&stack.db.pool)
    .await
    .unwrap();
    assert_eq!(clearing.unwrap_or(0) + settled.unwrap_or(0), 0);
    stack.finish().await;
}

#[tokio::test]
async fn an_amount_changed_at_helcim_is_a_correction_and_an_amount_changed_exception() {
    let stack = stack(200).await;
    stack.run(Kind::Completeness).await;
    let http = reqwest::Client::new();
    let injected: serde_json::Value = http
        .post(format!("{}/sim/inject", stack.sim.url()))
        .json(&serde_json::json!({"kind": "amount_change", "accountId": stack.account}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(injected["expectedException"], "amount_changed");
    let id = injected["transactionId"].as_i64().unwrap();
    let counts = stack.run(Kind::Completeness).await;
    assert_eq!((counts.recorded, counts.corrected), (0, 1));
    assert_eq!(ledger(&stack.db.pool, &stack.account).await, stack.truth());
    let found = exceptions(&stack.db.pool, &stack.account).await;
    assert!(
        found.iter().any(|(class, key)| class == "amount_changed"
            && key.starts_with(&format!("amount_changed:tx:{id}:"))),
        "{found:?}"
    );
    stack.finish().await;
}
