//! Findings of the attribution review (issue 9), each a test that failed before its
//! fix: the month's freeze against an engine batch in flight, and gap rows that must
//! follow the ledger and the evidence.

#[allow(dead_code)]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use recon_attribution::{CloseCalendar, Month};
use recon_store::testing::TestDatabase;
use recon_worker::attribution::{close, engine};
use support::seed;

const DELAY: Duration = Duration::from_secs(900);

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
