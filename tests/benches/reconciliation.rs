//! `make bench`: reconciliation, release build, on this machine. Prints figures; never
//! fails on speed (it fails when the books do not add up).
//!
//! 1. Journal entries posted per second: card transactions written straight into
//!    Postgres, then posted one database transaction each (as the worker does), by one
//!    and by four connections.
//! 2. A sweep over 100,000 transactions: the simulator generates them on yesterday's
//!    Mountain Time date, `reconctl backfill` lists and records them (no webhook), then
//!    lists them again (the steady state: nothing new). The Helcim calls are the ones
//!    the simulator counted; the minutes under Helcim's real limits are computed from
//!    them (100 a minute, 3,000 an hour per account).

#![allow(clippy::print_stdout, clippy::float_arithmetic)]

mod support;

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{Duration as Days, Utc};
use recon_store::MasterKey;
use recon_store::reconciliation::journal;
use recon_store::testing::TestDatabase;
use secrecy::ExposeSecret;
use serde_json::Value;

const JOURNAL_TRANSACTIONS: i64 = 20_000;
const SWEEP_TRANSACTIONS: usize = 100_000;

fn main() -> anyhow::Result<()> {
    support::run_bench("reconciliation", || async {
        let build = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        println!("reconciliation benchmark ({build} build, Postgres local)\n");
        let only = std::env::var("RECONCILIATION_BENCH").unwrap_or_default();
        if only != "sweep" {
            journal_rate().await?;
            println!();
        }
        if only != "journal" {
            sweep().await?;
        }
        anyhow::Ok(())
    })
}

/// Writes `count` approved card transactions (a sale in nine of ten, a refund in the
/// tenth) of account `a`, numbered from `first`, straight into the ledger.
async fn seed_transactions(db: &TestDatabase, first: i64, count: i64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO card_transactions (account_id, transaction_id, card_batch_id, created_at,
             status, type, amount_minor, currency, raw, fetched_at, reconciliation_status,
             card_token, invoice_number)
         SELECT 'a', n, 1 + n / 500, now() - interval '1 hour', 'APPROVED',
                CASE WHEN n % 10 = 0 THEN 'refund' ELSE 'purchase' END,
                100 + n % 9000, 'CAD', '{}'::json, now(), 'matched', 'tok' || n, 'INV' || n
         FROM generate_series($1::bigint, $1::bigint + $2::bigint - 1) AS n",
    )
    .bind(first)
    .bind(count)
    .execute(&db.pool)
    .await?;
    Ok(())
}

async fn post_range(pool: sqlx::PgPool, ids: Vec<i64>) -> anyhow::Result<u64> {
    let mut entries = 0;
    for id in ids {
        let mut tx = pool.begin().await?;
        entries += u64::from(
            journal::post_transaction(&mut tx, "a", id as u64)
                .await?
                .entries,
        );
        tx.commit().await?;
    }
    Ok(entries)
}

async fn journal_rate() -> anyhow::Result<()> {
    let db = TestDatabase::create().await;
    println!("journal: {JOURNAL_TRANSACTIONS} transactions per run, one database transaction each");
    for (run, connections) in [(0_i64, 1_usize), (1, 4)] {
        let first = 1 + run * JOURNAL_TRANSACTIONS;
        seed_transactions(&db, first, JOURNAL_TRANSACTIONS).await?;
        let ids: Vec<i64> = (first..first + JOURNAL_TRANSACTIONS).collect();
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for chunk in ids.chunks(ids.len().div_ceil(connections)) {
            tasks.spawn(post_range(db.pool.clone(), chunk.to_vec()));
        }
        let mut entries = 0;
        while let Some(done) = tasks.join_next().await {
            entries += done??;
        }
        let elapsed = started.elapsed();
        println!(
            "  {connections} connection(s): {entries} entries in {:.1} s = {:.0} entries/s",
            elapsed.as_secs_f64(),
            entries as f64 / elapsed.as_secs_f64()
        );
        anyhow::ensure!(entries == JOURNAL_TRANSACTIONS as u64, "one entry each");
    }
    let unbalanced: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT entry_id FROM journal_lines GROUP BY entry_id, currency
                               HAVING sum(amount_minor) <> 0) u",
    )
    .fetch_one(&db.pool)
    .await?;
    anyhow::ensure!(unbalanced == 0, "{unbalanced} entries do not balance");
    db.drop_now().await;
    Ok(())
}

/// Helcim's limits per account: how long `calls` take at best.
fn minutes_under_limits(calls: u64) -> f64 {
    let per_minute = calls as f64 / 100.0;
    let per_hour = calls as f64 / 3000.0 * 60.0;
    per_minute.max(per_hour)
}

async fn sim_requests(http: &reqwest::Client, sim: &str) -> anyhow::Result<u64> {
    let stats: Value = http
        .get(format!("{sim}/sim/stats"))
        .send()
        .await?
        .json()
        .await?;
    stats["api"]["requests"]
        .as_u64()
        .context("/sim/stats has api.requests")
}

async fn sweep() -> anyhow::Result<()> {
    let yesterday = helcim_client::mountain_time::date_of(Utc::now()) - Days::days(1);
    let today = yesterday + Days::days(1);
    let (from, to) = (yesterday.to_string(), today.to_string());
    let sim_addr = format!("127.0.0.1:{}", support::free_port()?);
    let sim_url = format!("http://{sim_addr}");
    let per_account = SWEEP_TRANSACTIONS.to_string();
    let _sim = support::Processes(vec![support::spawn(
        "recon-sim",
        &[
            "--addr",
            &sim_addr,
            "--accounts",
            "1",
            "--transactions-per-account",
            &per_account,
            "--start",
            &from,
            "--days",
            "1",
            "--limit-in-flight",
            "0",
            "--limit-per-minute",
            "0",
            "--limit-per-hour",
            "0",
        ],
        &[("RUST_LOG", "warn".to_string())],
    )?]);
    support::wait_ready(&format!("{sim_url}/healthz")).await?;
    let http = reqwest::Client::new();
    let accounts: Vec<Value> = http
        .get(format!("{sim_url}/sim/accounts"))
        .send()
        .await?
        .json()
        .await?;
    let account = accounts[0]["accountId"].as_str().context("an account")?;
    let db = TestDatabase::create().await;
    let env = vec![
        ("DATABASE_URL", db.url.clone()),
        (
            "RECON_MASTER_KEY",
            MasterKey::generate().expose_secret().to_string(),
        ),
        ("HELCIM_API_BASE_URL", format!("{sim_url}/v2")),
        ("HELCIM_LIMITS", "unlimited".to_string()),
        (
            "API_TOKEN",
            accounts[0]["apiToken"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ),
        ("RUST_LOG", "warn".to_string()),
    ];
    support::run_ok(
        "reconctl",
        &["accounts", "add", account, "--api-token-env", "API_TOKEN"],
        &env,
    )?;
    println!(
        "sweep: {SWEEP_TRANSACTIONS} transactions on {from} (Mountain Time), one account, none announced by webhook"
    );
    for pass in ["first (records everything)", "second (steady state)"] {
        let before = sim_requests(&http, &sim_url).await?;
        let started = Instant::now();
        let summary = support::run_ok(
            "reconctl",
            &[
                "backfill",
                "--account",
                account,
                "--from",
                &from,
                "--to",
                &to,
            ],
            &env,
        )?;
        let elapsed = started.elapsed();
        let calls = sim_requests(&http, &sim_url).await? - before;
        println!(
            "  {pass}: {calls} Helcim calls ({:.4} per transaction), {:.1} s here without limits; \
             under Helcim's limits at least {:.1} min",
            calls as f64 / SWEEP_TRANSACTIONS as f64,
            elapsed.as_secs_f64(),
            minutes_under_limits(calls)
        );
        for line in summary.lines().filter(|l| !l.trim().is_empty()) {
            println!("      {line}");
        }
    }
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM card_transactions WHERE reconciliation_status <> 'pending'",
    )
    .fetch_one(&db.pool)
    .await?;
    anyhow::ensure!(
        stored as usize == SWEEP_TRANSACTIONS,
        "the sweep stored {stored} of {SWEEP_TRANSACTIONS}"
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    db.drop_now().await;
    Ok(())
}
