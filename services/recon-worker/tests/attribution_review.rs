//! Findings of the attribution review (issue 9), each a test that failed before its
//! fix: the month's freeze against an engine batch in flight, and gap rows that must
//! follow the ledger and the evidence.

#[allow(dead_code)]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use recon_attribution::{Clock, CloseCalendar, Month};
use recon_store::evidence::Evidence;
use recon_store::testing::TestDatabase;
use recon_worker::attribution::engine::Engine;
use recon_worker::attribution::{close, engine};
use sqlx::PgPool;
use support::ledger::{gateway, ledger, record, s};
use support::seed;

const DELAY: Duration = Duration::from_secs(900);

/// The engine as the worker runs it, on the system clock.
fn engine() -> Engine {
    Engine {
        calendar: CloseCalendar::default(),
        grace: Duration::from_secs(600),
        match_window: Duration::from_secs(3600),
        sweep_interval: Duration::from_secs(15),
        batch_size: 500,
        clock: Clock::system(),
    }
}

async fn run(pool: &PgPool) {
    engine::process_once(pool, &engine()).await.unwrap();
}

/// (class, reason, status, resolution, amount) of the gap of transaction `id`, or of
/// the orphan gap of evidence `id` when `orphan`.
type GapRow = (String, Option<String>, String, Option<String>, Option<i64>);

async fn gap_of(pool: &PgPool, id: i64, orphan: bool) -> GapRow {
    let sql = if orphan {
        "SELECT class, reason, status, resolution, amount_minor FROM attribution_gaps
          WHERE evidence_id = $1 AND class = 'orphan_evidence'"
    } else {
        "SELECT class, reason, status, resolution, amount_minor FROM attribution_gaps
          WHERE account_id = 'm1' AND transaction_id = $1 AND class <> 'orphan_evidence'"
    };
    sqlx::query_as(sql).bind(id).fetch_one(pool).await.unwrap()
}

/// The notes of the audit trail of transaction `id`'s gap, oldest first.
async fn trail(pool: &PgPool, id: i64) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT e.note FROM attribution_gap_events e JOIN attribution_gaps g ON g.id = e.gap_id
          WHERE g.account_id = 'm1' AND g.transaction_id = $1 AND g.class <> 'orphan_evidence'
          ORDER BY e.id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// An engine batch locks the gap rows of its transactions in its own order (by
/// transaction, then orphans by evidence), under the per-account lock. The freeze used
/// to lock the month's live gaps in table order without that lock, so a batch holding
/// gap B and wanting gap A met a freeze holding A and wanting B: Postgres broke the
/// deadlock by failing one of them. The freeze now takes the accounts' locks first and
/// simply waits for the batch.
#[tokio::test]
async fn the_freeze_waits_for_an_engine_batch_instead_of_deadlocking_with_it() {
    let db = TestDatabase::create().await;
    let calendar = CloseCalendar::default();
    let month = Month::new(2026, 11).unwrap();
    let first = seed::gap(&db.pool, calendar, "acct-a", 1, month, 1_000, "open").await;
    let second = seed::gap(&db.pool, calendar, "acct-a", 2, month, 2_000, "open").await;

    // The "batch": the account's lock, then the second gap's row.
    let mut batch = db.pool.begin().await.unwrap();
    engine::lock_accounts(&mut batch, &BTreeSet::from(["acct-a".to_string()]))
        .await
        .unwrap();
    let lock = "SELECT id FROM attribution_gaps WHERE id = $1 FOR UPDATE";
    sqlx::query(lock)
        .bind(second)
        .execute(&mut *batch)
        .await
        .unwrap();

    let pool = db.pool.clone();
    let freeze = tokio::spawn(async move { close::freeze(&pool, calendar, month, DELAY).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The batch goes on to the first gap, as it would for a lower transaction id.
    let took_first = sqlx::query(lock).bind(first).execute(&mut *batch).await;
    let committed = batch.commit().await;
    let frozen = tokio::time::timeout(Duration::from_secs(30), freeze)
        .await
        .expect("the freeze finishes once the batch commits")
        .unwrap();
    assert!(
        took_first.is_ok(),
        "the engine batch failed: {took_first:?}"
    );
    assert!(committed.is_ok(), "{committed:?}");
    assert!(
        frozen.as_ref().is_ok_and(|won| *won),
        "the freeze failed: {frozen:?}"
    );
    let expired: i64 =
        sqlx::query_scalar("SELECT count(*) FROM attribution_gaps WHERE status = 'expired'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(expired, 2);
    db.drop_now().await;
}

/// The ledger corrects a transaction's amount after its gap opened: the verdict row
/// (the report) took the new amount, but the gap kept the old one, so the gap's share
/// at risk and the escalations' money (summed over gap rows) disagreed with the report.
#[tokio::test]
async fn a_live_gap_follows_a_corrected_ledger_amount() {
    let db = TestDatabase::create().await;
    let pool = &db.pool;
    ledger(pool, 1, "purchase", "APPROVED", 1999, Utc::now(), None).await;
    record(pool, vec![gateway("g1", Some(1), Some(0))]).await;
    run(pool).await;
    assert_eq!(
        gap_of(pool, 1, false).await,
        (
            s("token_rejected").unwrap(),
            None,
            s("open").unwrap(),
            None,
            Some(1999)
        )
    );

    sqlx::query("UPDATE card_transactions SET amount_minor = 2500 WHERE transaction_id = 1")
        .execute(pool)
        .await
        .unwrap();
    run(pool).await;
    let report_amount: i64 = sqlx::query_scalar(
        "SELECT amount_minor FROM attribution_transactions WHERE transaction_id = 1",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(report_amount, 2500);
    assert_eq!(gap_of(pool, 1, false).await.4, Some(2500));
    let notes = trail(pool, 1).await;
    assert_eq!(
        notes.last().map(String::as_str),
        Some("amount 19.99 CAD -> 25.00 CAD (the ledger transaction changed)"),
        "{notes:?}"
    );
    db.drop_now().await;
}

/// A purchase stored approved, then corrected to declined: its verdict became `none`
/// (out of the report's volume) but its gap stayed open, counted in the report's gaps,
/// escalated, and expired at the close as if money were at risk.
#[tokio::test]
async fn a_transaction_that_stops_being_revenue_has_its_live_gap_resolved() {
    let db = TestDatabase::create().await;
    let pool = &db.pool;
    ledger(pool, 2, "purchase", "APPROVED", 1999, Utc::now(), None).await;
    record(pool, vec![gateway("g2", Some(2), Some(0))]).await;
    run(pool).await;
    assert_eq!(gap_of(pool, 2, false).await.2, "open");

    sqlx::query("UPDATE card_transactions SET status = 'DECLINED' WHERE transaction_id = 2")
        .execute(pool)
        .await
        .unwrap();
    run(pool).await;
    let verdict: String =
        sqlx::query_scalar("SELECT verdict FROM attribution_transactions WHERE transaction_id = 2")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(verdict, "none");
    let gap = gap_of(pool, 2, false).await;
    assert_eq!(
        (gap.2.as_str(), gap.3.as_deref()),
        ("resolved", Some("evidence"))
    );
    let notes = trail(pool, 2).await;
    assert!(
        notes
            .last()
            .is_some_and(|n| n.contains("no longer makes transaction 2 revenue")),
        "{notes:?}"
    );
    let resolved: i64 =
        sqlx::query_scalar("SELECT count(*) FROM attribution_alerts WHERE kind = 'gap_resolved'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(resolved, 1);
    db.drop_now().await;
}

/// HelcimPay.js evidence (no transaction id) with an accepted token, by its invoice.
fn by_invoice(key: &str, invoice: &str) -> Evidence {
    Evidence {
        invoice_number: Some(invoice.into()),
        ..gateway(key, None, Some(1))
    }
}

/// Alerts of one gap: (dedupe key, kind), oldest first.
async fn gap_alerts(pool: &PgPool, gap_id: i64) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT dedupe_key FROM attribution_alerts
          WHERE dedupe_key LIKE 'gap_%:' || $1 || '%' ORDER BY id",
    )
    .bind(gap_id.to_string())
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn gap_id(pool: &PgPool, transaction: i64) -> i64 {
    sqlx::query_scalar(
        "SELECT id FROM attribution_gaps WHERE transaction_id = $1 AND class <> 'orphan_evidence'",
    )
    .bind(transaction)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Evidence matched by invoice resolved a gap; then a second payment with the same
/// invoice and amount arrived, the evidence became ambiguous, and the transaction
/// lost it. The verdict went back to `gap`, but the gap stayed `resolved`: money at
/// risk in the report with no live gap to see, acknowledge or resolve.
#[tokio::test]
async fn a_gap_resolved_by_evidence_that_no_longer_matches_is_reopened() {
    let db = TestDatabase::create().await;
    let pool = &db.pool;
    let now = Utc::now();
    ledger(pool, 10, "purchase", "APPROVED", 1999, now, Some("INV-1")).await;
    // The request carried no partner token: token_missing, at once.
    let missing = Evidence {
        partner_token_sent: false,
        is_valid_partner_token: None,
        ..gateway("g10", Some(10), None)
    };
    record(pool, vec![missing]).await;
    run(pool).await;
    assert_eq!(gap_of(pool, 10, false).await.0, "token_missing");
    record(pool, vec![by_invoice("pay1", "INV-1")]).await;
    run(pool).await;
    let gap = gap_of(pool, 10, false).await;
    assert_eq!(
        (gap.2.as_str(), gap.3.as_deref()),
        ("resolved", Some("evidence"))
    );

    // Another payment with the same invoice and amount: the evidence is ambiguous.
    ledger(pool, 11, "purchase", "APPROVED", 1999, now, Some("INV-1")).await;
    run(pool).await;
    let verdict: String = sqlx::query_scalar(
        "SELECT verdict FROM attribution_transactions WHERE transaction_id = 10",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(verdict, "gap");
    assert_eq!(
        gap_of(pool, 10, false).await,
        (
            s("token_missing").unwrap(),
            None,
            s("open").unwrap(),
            None,
            Some(1999)
        ),
        "the money is at risk again, so its gap is live again"
    );
    let id = gap_id(pool, 10).await;
    let keys = gap_alerts(pool, id).await;
    assert_eq!(
        keys,
        [
            format!("gap_opened:{id}"),
            format!("gap_resolved:{id}"),
            format!("gap_opened:{id}:1")
        ]
    );
    db.drop_now().await;
}

/// Orphan evidence resolved when its transaction arrived, then ambiguous when a
/// second one with the same invoice did: its orphan gap stayed resolved, so the
/// ambiguity was never reported (the sweep only looks for evidence without a gap).
#[tokio::test]
async fn an_orphan_resolved_by_a_match_it_then_loses_is_reopened() {
    let db = TestDatabase::create().await;
    let pool = &db.pool;
    let quick = Engine {
        grace: Duration::ZERO,
        ..engine()
    };
    record(pool, vec![by_invoice("pay2", "INV-2")]).await;
    let evidence: i64 = sqlx::query_scalar("SELECT id FROM attribution_evidence")
        .fetch_one(pool)
        .await
        .unwrap();
    engine::process_once(pool, &quick).await.unwrap();
    assert_eq!(gap_of(pool, evidence, true).await.1, s("no_transaction"));
    ledger(
        pool,
        20,
        "purchase",
        "APPROVED",
        1999,
        Utc::now(),
        Some("INV-2"),
    )
    .await;
    engine::process_once(pool, &quick).await.unwrap();
    assert_eq!(gap_of(pool, evidence, true).await.2, "resolved");

    ledger(
        pool,
        21,
        "purchase",
        "APPROVED",
        1999,
        Utc::now(),
        Some("INV-2"),
    )
    .await;
    engine::process_once(pool, &quick).await.unwrap();
    let orphan = gap_of(pool, evidence, true).await;
    assert_eq!(
        (orphan.1.as_deref(), orphan.2.as_str(), orphan.3.as_deref()),
        (Some("ambiguous"), "open", None)
    );
    let candidates: Option<Vec<i64>> = sqlx::query_scalar(
        "SELECT candidates FROM attribution_gaps WHERE evidence_id = $1 AND class = 'orphan_evidence'",
    )
    .bind(evidence)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(candidates, Some(vec![20, 21]));
    db.drop_now().await;
}

/// The verdict of transaction `id` of `m1`.
async fn verdict_of(pool: &PgPool, id: i64) -> String {
    sqlx::query_scalar("SELECT verdict FROM attribution_transactions WHERE transaction_id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// (state, transaction, candidates) of the match of evidence `id`.
async fn match_of(pool: &PgPool, id: i64) -> (String, Option<i64>, Option<Vec<i64>>) {
    sqlx::query_as(
        "SELECT state, transaction_id, candidates FROM attribution_matches WHERE evidence_id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The ledger corrects a transaction's invoice or amount: evidence matched to it by
/// its old invoice was never matched again (a batch found evidence by the
/// transaction's id or its new invoice only), so the transaction stayed attributed by
/// a payment that no longer fits it, and an ambiguity it left stayed ambiguous.
#[tokio::test]
async fn a_corrected_transaction_is_matched_again_by_the_evidence_it_had() {
    let db = TestDatabase::create().await;
    let pool = &db.pool;
    let quick = Engine {
        grace: Duration::ZERO,
        ..engine()
    };
    let now = Utc::now();
    ledger(pool, 30, "purchase", "APPROVED", 1999, now, Some("INV-3")).await;
    record(pool, vec![by_invoice("pay3", "INV-3")]).await;
    ledger(pool, 40, "purchase", "APPROVED", 1999, now, Some("INV-4")).await;
    ledger(pool, 41, "purchase", "APPROVED", 1999, now, Some("INV-4")).await;
    record(pool, vec![by_invoice("pay4", "INV-4")]).await;
    engine::process_once(pool, &quick).await.unwrap();
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM attribution_evidence ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap();
    let (pay3, pay4) = (ids[0], ids[1]);
    assert_eq!(verdict_of(pool, 30).await, "attributed");
    assert_eq!(match_of(pool, pay4).await.0, "ambiguous");

    // 30's amount was wrong; 41's invoice was.
    sqlx::query("UPDATE card_transactions SET amount_minor = 2500 WHERE transaction_id = 30")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("UPDATE card_transactions SET invoice_number = 'INV-5' WHERE transaction_id = 41")
        .execute(pool)
        .await
        .unwrap();
    engine::process_once(pool, &quick).await.unwrap();
    assert_eq!(match_of(pool, pay3).await, ("unmatched".into(), None, None));
    assert_eq!(
        verdict_of(pool, 30).await,
        "gap",
        "no evidence fits it any more"
    );
    assert_eq!(gap_of(pool, pay3, true).await.1, s("no_transaction"));
    assert_eq!(
        match_of(pool, pay4).await,
        ("matched".into(), Some(40), None)
    );
    assert_eq!(verdict_of(pool, 40).await, "attributed");
    let orphan = gap_of(pool, pay4, true).await;
    assert_eq!(
        (orphan.2.as_str(), orphan.3.as_deref()),
        ("resolved", Some("evidence"))
    );
    db.drop_now().await;
}

/// The report is several statements (verdict sums, gap counts, rates). Read on the
/// pool, each saw its own moment, so an engine batch committing between them gave a
/// report whose gap counts disagreed with its money, and the freeze stored it for
/// good. A writer flips one transaction between pending (no live gap) and at risk
/// (an open gap) in single transactions while reports are read: every report must
/// show both or neither.
#[tokio::test]
async fn a_report_is_read_from_one_snapshot() {
    use recon_store::attribution::report::{Scope, live};
    let db = TestDatabase::create().await;
    let calendar = CloseCalendar::default();
    let month = Month::new(2026, 11).unwrap();
    seed::gap(&db.pool, calendar, "acct-a", 1, month, 1_000, "open").await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (pool, stop) = (db.pool.clone(), stop.clone());
        tokio::spawn(async move {
            let mut live_gap = true;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                live_gap = !live_gap;
                let mut tx = pool.begin().await.unwrap();
                let (verdict, class, status) = if live_gap {
                    ("gap", Some("unattributed"), "open")
                } else {
                    ("pending", None, "resolved")
                };
                sqlx::query(
                    "UPDATE attribution_transactions SET verdict = $1, gap_class = $2
                      WHERE transaction_id = 1",
                )
                .bind(verdict)
                .bind(class)
                .execute(&mut *tx)
                .await
                .unwrap();
                sqlx::query(
                    "UPDATE attribution_gaps SET status = $1,
                            resolution = CASE WHEN $1 = 'resolved' THEN 'evidence' END
                      WHERE transaction_id = 1",
                )
                .bind(status)
                .execute(&mut *tx)
                .await
                .unwrap();
                tx.commit().await.unwrap();
            }
        })
    };
    let mut torn = 0;
    for _ in 0..400 {
        let report = live(&db.pool, calendar, month, &Scope::All, Utc::now())
            .await
            .unwrap();
        let line = &report.accounts[0];
        let gaps = line.gaps.get("unattributed").copied().unwrap_or(0);
        if gaps != line.at_risk_transactions {
            torn += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    assert_eq!(
        torn, 0,
        "reports whose gap counts disagree with their money"
    );
    db.drop_now().await;
}
