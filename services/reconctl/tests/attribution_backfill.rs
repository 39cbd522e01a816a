//! `reconctl attribution backfill` against a real Postgres: ledger rows and evidence
//! stored as before migration 0009 (their dirty marks deleted, so no trigger ever
//! told the engine), then the built binary marks them and the engine judges them.

use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, Utc};
use recon_attribution::{Clock, CloseCalendar, Month};
use recon_store::evidence::{Evidence, EvidenceStore, Outcome, Source};
use recon_store::testing::TestDatabase;

mod support;
use recon_worker::attribution::engine::{self, Engine};
use sqlx::PgPool;
use support::reconctl;

/// An approved purchase stored (fetched) at `stored_at`.
async fn purchase(pool: &PgPool, id: i64, created_at: DateTime<Utc>, stored_at: DateTime<Utc>) {
    sqlx::query(
        "INSERT INTO card_transactions (account_id, transaction_id, created_at, status, type,
             amount_minor, currency, raw, reconciliation_status, fetched_at)
         VALUES ('m1', $1, $2, 'APPROVED', 'purchase', 1999, 'CAD', '{}', 'matched', $3)",
    )
    .bind(id)
    .bind(created_at)
    .bind(stored_at)
    .execute(pool)
    .await
    .unwrap();
}

fn accepted(transaction_id: i64, observed_at: DateTime<Utc>) -> Evidence {
    Evidence {
        dedupe_key: format!("gw-{transaction_id}"),
        source: Source::Gateway,
        account_id: Some("m1".into()),
        api_token_lookup: Some("ab".repeat(16)),
        endpoint: "payment/purchase".into(),
        idempotency_key: None,
        partner_token_sent: true,
        partner_token_added: false,
        is_valid_partner_token: Some(1),
        outcome: Outcome::Answered,
        response_status: Some(200),
        transaction_id: Some(transaction_id),
        invoice_number: None,
        customer_code: None,
        amount_minor: Some(1999),
        currency: Some("CAD".into()),
        observed_at,
        receipt_id: None,
        submitted_by: None,
    }
}

async fn verdicts(pool: &PgPool) -> Vec<(i64, String, Option<String>)> {
    sqlx::query_as(
        "SELECT transaction_id, verdict, gap_class FROM attribution_transactions ORDER BY transaction_id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn rows_stored_before_the_triggers_are_marked_and_then_judged() {
    let db = TestDatabase::create().await;
    let pool = &db.pool;
    let calendar = CloseCalendar::default();
    let now = Utc::now();
    let this: Month = calendar.month_of(now);
    let last = this.previous();
    let before_last = last.previous();
    let long_ago = now - chrono::Duration::hours(2);

    // This month: one attributed by evidence, one with none (stored two hours ago,
    // so its grace ran out long before the backfill).
    purchase(pool, 1, now, long_ago).await;
    purchase(pool, 2, now, long_ago).await;
    // Last month is frozen: never marked. The month before is not.
    let in_last = calendar.start_of(last) + chrono::Duration::days(1);
    let in_before_last = calendar.start_of(before_last) + chrono::Duration::days(1);
    purchase(pool, 4, in_last, in_last).await;
    purchase(pool, 5, in_before_last, in_before_last).await;
    sqlx::query("INSERT INTO attribution_reports (month, frozen_at) VALUES ($1, now())")
        .bind(last.first_day())
        .execute(pool)
        .await
        .unwrap();
    EvidenceStore::new(pool.clone())
        .record(&[accepted(1, now)])
        .await
        .unwrap();
    // As if stored before migration 0009: no trigger marked them.
    sqlx::query("DELETE FROM attribution_dirty")
        .execute(pool)
        .await
        .unwrap();

    let engine = Engine {
        calendar,
        grace: Duration::from_secs(600),
        match_window: Duration::from_secs(3600),
        sweep_interval: Duration::from_secs(15),
        batch_size: 500,
        clock: Clock::system(),
    };
    engine::process_once(pool, &engine).await.unwrap();
    assert!(
        verdicts(pool).await.is_empty(),
        "nothing marked, nothing judged"
    );

    // Default: the current month only.
    let (ok, text) = reconctl(&db, &["attribution", "backfill"]);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!(
            "marked 2 ledger transactions and 1 evidence of {this} and later"
        )),
        "{text}"
    );
    engine::process_once(pool, &engine).await.unwrap();
    assert_eq!(
        verdicts(pool).await,
        vec![
            (1, "attributed".into(), None),
            (2, "gap".into(), Some("unattributed".into())),
        ]
    );
    let matched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM attribution_matches WHERE state = 'matched' AND transaction_id = 1",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(matched, 1);

    // From two months back: the month before last too, never the frozen one.
    let (ok, text) = reconctl(
        &db,
        &[
            "attribution",
            "backfill",
            "--from-month",
            &before_last.to_string(),
        ],
    );
    assert!(ok, "{text}");
    assert!(
        text.contains("marked 3 ledger transactions and 1 evidence")
            && text.contains("(1 frozen months skipped)"),
        "{text}"
    );
    engine::process_once(pool, &engine).await.unwrap();
    let judged: Vec<i64> = verdicts(pool).await.iter().map(|v| v.0).collect();
    assert_eq!(judged, vec![1, 2, 5]);
    let gaps: i64 = sqlx::query_scalar("SELECT count(*) FROM attribution_gaps")
        .fetch_one(pool)
        .await
        .unwrap();
    // Tx 2 and tx 5 (no evidence, long stored): one gap each, not doubled by the
    // second backfill.
    assert_eq!(gaps, 2);

    let (ok, text) = reconctl(&db, &["attribution", "backfill", "--from-month", "2026-13"]);
    assert!(!ok && text.contains("out of range"), "{text}");
    db.drop_now().await;
}

#[tokio::test]
async fn batches_walk_every_row_once() {
    let db = TestDatabase::create().await;
    let pool = &db.pool;
    let calendar = CloseCalendar::default();
    let now = Utc::now();
    for id in [3, 1, 2] {
        purchase(pool, id, now, now).await;
    }
    EvidenceStore::new(pool.clone())
        .record(&[accepted(1, now), accepted(2, now)])
        .await
        .unwrap();
    sqlx::query("DELETE FROM attribution_dirty")
        .execute(pool)
        .await
        .unwrap();
    let done =
        recon_store::attribution::backfill::mark_from(pool, calendar, calendar.month_of(now), 1)
            .await
            .unwrap();
    assert_eq!((done.transactions, done.evidence), (3, 2));
    let marks: Vec<(Option<i64>, Option<i64>)> = sqlx::query_as(
        "SELECT transaction_id, evidence_id FROM attribution_dirty ORDER BY transaction_id, evidence_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(marks.iter().filter(|m| m.0.is_some()).count(), 3);
    assert_eq!(
        marks.iter().filter_map(|m| m.0).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(marks.iter().filter(|m| m.1.is_some()).count(), 2);
    db.drop_now().await;
}

#[tokio::test]
async fn a_shifted_clock_is_announced_on_standard_error() {
    let db = TestDatabase::create().await;
    let file = std::env::temp_dir().join(format!("recon-clock-ctl-{}", std::process::id()));
    std::fs::write(&file, "86400").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_reconctl"))
        .args(["attribution", "summary"])
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "error")
        .env_remove("RECON_CLOSE_TIMEZONE")
        .env("RECON_CLOCK_OFFSET_FILE", &file)
        .output()
        .expect("reconctl runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("RECON_CLOCK_OFFSET_FILE is set") && stderr.contains("86400 s ahead"),
        "{stderr}"
    );
    // Not set: nothing said.
    let (ok, text) = reconctl(&db, &["attribution", "summary"]);
    assert!(ok && !text.contains("RECON_CLOCK_OFFSET_FILE"), "{text}");
    let _ = std::fs::remove_file(&file);
    db.drop_now().await;
}
