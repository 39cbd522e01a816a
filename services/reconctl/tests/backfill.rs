//! `reconctl backfill` as an operator runs it: the built binary against a fresh
//! Postgres database and the simulator over HTTP.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;

use chrono::NaiveDate;
use recon_sim::{GenerateConfig, RunningSim, SimConfig};
use recon_store::testing::TestDatabase;
use recon_store::{AccountStore, MasterKey, SecretCipher};
use secrecy::{ExposeSecret, SecretString};

struct Setup {
    db: TestDatabase,
    sim: RunningSim,
    master: SecretString,
    account: String,
}

async fn setup() -> Setup {
    let sim = RunningSim::start(SimConfig {
        generate: GenerateConfig {
            seed: 11,
            accounts: 1,
            transactions_per_account: 300,
            start: NaiveDate::from_ymd_opt(2026, 11, 10).unwrap(),
            days: 2,
            batch_close_hour: 17,
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let db = TestDatabase::create().await;
    let master = MasterKey::generate();
    let key = MasterKey::from_base64(&master, "TEST").unwrap();
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
    Setup {
        db,
        sim,
        master,
        account,
    }
}

/// Runs `reconctl backfill <args>` (off the runtime: the simulator answers it).
async fn backfill(setup: &Setup, master: Option<&str>, args: &[&str]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_reconctl"));
    command
        .arg("backfill")
        .args(args)
        .env("DATABASE_URL", &setup.db.url)
        .env("HELCIM_API_BASE_URL", setup.sim.api_base_url())
        .env("RUST_LOG", "error")
        .env_remove("RECON_MASTER_KEY")
        .env_remove("RECON_API_TOKEN_KEY");
    if let Some(master) = master {
        command.env("RECON_MASTER_KEY", master);
    }
    let output = tokio::task::spawn_blocking(move || command.output().expect("reconctl runs"))
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn line<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} in {out}"))
        .trim()
}

#[tokio::test(flavor = "multi_thread")]
async fn backfill_records_the_range_and_verifies_its_batches() {
    let setup = setup().await;
    let master = setup.master.expose_secret().to_string();
    let (truth, batches) = {
        let ledger = setup.sim.state().ledger();
        let ids: BTreeSet<u64> = ledger
            .transactions_of(&setup.account)
            .map(|t| t.transaction_id)
            .collect();
        let closed = ledger
            .activity
            .batches
            .iter()
            .filter(|b| b.closed_at.is_some())
            .count();
        let open = ledger.activity.batches.len() - closed;
        (ids, (closed, open))
    };
    let args = [
        "--account",
        setup.account.as_str(),
        "--from",
        "2026-11-10",
        "--to",
        "2026-11-11",
    ];
    let (ok, out) = backfill(&setup, Some(&master), &args).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("from 2026-11-10 to 2026-11-11 (Mountain Time)"),
        "{out}"
    );
    assert_eq!(line(&out, "listed:"), truth.len().to_string());
    assert_eq!(line(&out, "recorded:"), truth.len().to_string());
    assert_eq!(line(&out, "corrected:"), "0");
    assert_eq!(
        line(&out, "batches verified:"),
        format!(
            "{} (balanced {}, mismatch 0, open {})",
            batches.0 + batches.1,
            batches.0,
            batches.1
        )
    );
    // One page, one GET per batch (first seen), one listing per closed batch, one GET
    // per open batch (re-checked by the batch pass): never per transaction.
    let calls: usize = line(&out, "API calls:").parse().unwrap();
    assert_eq!(calls, 1 + (batches.0 + batches.1) + batches.0 + batches.1);

    let stored: Vec<(i64, String)> = sqlx::query_as(
        "SELECT transaction_id, discovered_by FROM card_transactions WHERE account_id = $1
          ORDER BY transaction_id",
    )
    .bind(&setup.account)
    .fetch_all(&setup.db.pool)
    .await
    .unwrap();
    assert_eq!(
        stored
            .iter()
            .map(|(id, _)| *id as u64)
            .collect::<BTreeSet<_>>(),
        truth
    );
    assert!(stored.iter().all(|(_, by)| by == "backfill"));
    let run: (String, Option<String>, i32) =
        sqlx::query_as("SELECT kind, outcome, api_calls FROM sweep_runs WHERE account_id = $1")
            .bind(&setup.account)
            .fetch_one(&setup.db.pool)
            .await
            .unwrap();
    assert_eq!(run, ("backfill".into(), Some("ok".into()), calls as i32));

    // Again: nothing new to record.
    let (ok, out) = backfill(&setup, Some(&master), &args).await;
    assert!(ok, "{out}");
    assert_eq!(line(&out, "recorded:"), "0");
    assert_eq!(line(&out, "corrected:"), "0");

    setup.sim.stop().await;
    setup.db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn backfill_refuses_bad_ranges_unknown_accounts_and_a_missing_key() {
    let setup = setup().await;
    let master = setup.master.expose_secret().to_string();
    let account = setup.account.as_str();
    let (ok, out) = backfill(
        &setup,
        Some(&master),
        &[
            "--account",
            account,
            "--from",
            "2026-11-12",
            "--to",
            "2026-11-10",
        ],
    )
    .await;
    assert!(!ok && out.contains("--from on or before --to"), "{out}");
    let (ok, out) = backfill(
        &setup,
        Some(&master),
        &[
            "--account",
            account,
            "--from",
            "11/10/2026",
            "--to",
            "2026-11-10",
        ],
    )
    .await;
    assert!(!ok && out.contains("YYYY-MM-DD"), "{out}");
    let (ok, out) = backfill(
        &setup,
        Some(&master),
        &[
            "--account",
            "nobody",
            "--from",
            "2026-11-10",
            "--to",
            "2026-11-10",
        ],
    )
    .await;
    assert!(!ok && out.contains("has no Helcim API token"), "{out}");
    let (ok, out) = backfill(
        &setup,
        None,
        &[
            "--account",
            account,
            "--from",
            "2026-11-10",
            "--to",
            "2026-11-10",
        ],
    )
    .await;
    assert!(!ok && out.contains("RECON_MASTER_KEY"), "{out}");
    assert!(!out.contains(setup.master.expose_secret()), "{out}");
    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM card_transactions")
        .fetch_one(&setup.db.pool)
        .await
        .unwrap();
    assert_eq!(written, 0);
    setup.sim.stop().await;
    setup.db.drop_now().await;
}
