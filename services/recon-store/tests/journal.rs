//! Posting to the journal against a real Postgres: transactions written with SQL as the
//! ledger stores them, then posted as the record hook posts them.

use chrono::{DateTime, Duration, TimeZone, Utc};
use recon_reconcile::journal::{EntryKind, JournalAccount};
use recon_store::reconciliation::journal::{self, Posted};
use recon_store::testing::TestDatabase;
use sqlx::PgPool;

const ACCOUNT: &str = "acct-j";

fn at(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap() + Duration::minutes(minute)
}

/// A stored transaction, as the ledger keeps it.
#[derive(Clone)]
struct Tx {
    id: i64,
    status: &'static str,
    kind: &'static str,
    amount_minor: i64,
    currency: &'static str,
    batch: i64,
    created: DateTime<Utc>,
    token: &'static str,
    invoice: &'static str,
}

fn tx(id: i64, kind: &'static str, amount_minor: i64) -> Tx {
    Tx {
        id,
        status: "APPROVED",
        kind,
        amount_minor,
        currency: "CAD",
        batch: 77,
        created: at(id),
        token: "tok-1",
        invoice: "INV-1",
    }
}

/// Writes (or overwrites) the row, then posts it in one database transaction, as the
/// record hook does.
async fn record(pool: &PgPool, tx: &Tx) -> Posted {
    let (db, posted) = record_uncommitted(pool, tx).await;
    db.commit().await.unwrap();
    posted
}

async fn post(pool: &PgPool, id: i64) -> Posted {
    let mut db = pool.begin().await.unwrap();
    let posted = journal::post_transaction(&mut db, ACCOUNT, id as u64)
        .await
        .unwrap();
    db.commit().await.unwrap();
    posted
}

/// Non-zero balances as (account code, currency, balance).
async fn balances(pool: &PgPool) -> Vec<(&'static str, String, i64)> {
    journal::balances(pool, ACCOUNT, None)
        .await
        .unwrap()
        .into_iter()
        .filter(|b| b.balance_minor != 0)
        .map(|b| (b.account.code(), b.currency, b.balance_minor))
        .collect()
}

fn cad(list: &[(&'static str, i64)]) -> Vec<(&'static str, String, i64)> {
    list.iter()
        .map(|&(code, amount)| (code, "CAD".to_string(), amount))
        .collect()
}

async fn kinds(pool: &PgPool) -> Vec<EntryKind> {
    journal::entries(pool, ACCOUNT, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

const fn posted(entries: u32, corrections: u32) -> Posted {
    Posted {
        entries,
        corrections,
    }
}

#[tokio::test]
async fn a_changed_amount_posts_a_correction_and_the_new_entry_and_posting_again_changes_nothing() {
    let db = TestDatabase::create().await;
    let mut sale = tx(1, "purchase", 1_200);
    assert_eq!(record(&db.pool, &sale).await, posted(1, 0));
    assert_eq!(
        balances(&db.pool).await,
        cad(&[("card_clearing", 1_200), ("sales", -1_200)])
    );
    assert_eq!(post(&db.pool, 1).await, posted(0, 0), "idempotent");

    sale.amount_minor = 1_500;
    assert_eq!(record(&db.pool, &sale).await, posted(2, 1));
    assert_eq!(post(&db.pool, 1).await, posted(0, 0), "idempotent");
    assert_eq!(
        balances(&db.pool).await,
        cad(&[("card_clearing", 1_500), ("sales", -1_500)])
    );
    let entries = journal::entries(&db.pool, ACCOUNT, None, 100)
        .await
        .unwrap();
    assert_eq!(
        entries.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [EntryKind::Sale, EntryKind::Correction, EntryKind::Sale]
    );
    let correction = &entries[1];
    assert_eq!(correction.reverses_entry_id, Some(entries[0].id));
    assert_eq!(correction.transaction_id, Some(1));
    assert_eq!(correction.card_batch_id, Some(77));
    assert_eq!(correction.effective_at, sale.created);
    assert!(
        correction.memo.contains("reverses entry")
            && correction.memo.contains("sale of 12.00 CAD")
            && correction.memo.contains("15.00 CAD"),
        "{}",
        correction.memo
    );
    assert_eq!(
        entries[2].memo, "Sale: approved purchase 1 of 15.00 CAD",
        "the memo says what happened"
    );
    assert_eq!(entries[2].effective_at, sale.created);
    // Paging: after the first entry come the other two.
    let rest = journal::entries(&db.pool, ACCOUNT, Some(entries[0].id), 1)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].id, entries[1].id);

    // Declined later: the sale is reversed and nothing replaces it.
    sale.status = "DECLINED";
    assert_eq!(record(&db.pool, &sale).await, posted(1, 1));
    assert_eq!(balances(&db.pool).await, cad(&[]));
    db.drop_now().await;
}

#[tokio::test]
async fn declined_preauth_verify_and_pending_transactions_post_nothing() {
    let db = TestDatabase::create().await;
    let declined = Tx {
        status: "DECLINED",
        ..tx(1, "purchase", 900)
    };
    assert_eq!(record(&db.pool, &declined).await, posted(0, 0));
    assert_eq!(record(&db.pool, &tx(2, "preauth", 900)).await, posted(0, 0));
    assert_eq!(record(&db.pool, &tx(3, "verify", 0)).await, posted(0, 0));
    let held = Tx {
        status: "HELD",
        ..tx(4, "purchase", 900)
    };
    assert_eq!(record(&db.pool, &held).await, posted(0, 0));
    sqlx::query("INSERT INTO card_transactions (account_id, transaction_id) VALUES ($1, 5)")
        .bind(ACCOUNT)
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(post(&db.pool, 5).await, posted(0, 0), "pending");
    assert_eq!(post(&db.pool, 6).await, posted(0, 0), "never heard of");
    assert!(kinds(&db.pool).await.is_empty());
    // The capture of the preauth is the sale.
    assert_eq!(record(&db.pool, &tx(7, "capture", 900)).await, posted(1, 0));
    assert_eq!(
        balances(&db.pool).await,
        cad(&[("card_clearing", 900), ("sales", -900)])
    );
    db.drop_now().await;
}

#[tokio::test]
async fn a_reverse_of_a_refund_posts_to_refunds_reversed_and_of_a_sale_to_sales_reversed() {
    let db = TestDatabase::create().await;
    record(&db.pool, &tx(1, "purchase", 5_000)).await;
    record(&db.pool, &tx(2, "refund", 2_000)).await;
    // Reverses the refund (same card, invoice, amount; the refund is the newest match).
    record(&db.pool, &tx(3, "reverse", 2_000)).await;
    // Reverses the sale.
    record(&db.pool, &tx(4, "reverse", 5_000)).await;
    assert_eq!(
        balances(&db.pool).await,
        cad(&[
            ("card_clearing", 5_000 - 2_000 + 2_000 - 5_000),
            ("sales", -5_000),
            ("refunds", 2_000),
            ("sales_reversed", 5_000),
            ("refunds_reversed", -2_000),
        ])
        .into_iter()
        .filter(|b| b.2 != 0)
        .collect::<Vec<_>>()
    );
    assert_eq!(
        kinds(&db.pool).await,
        [
            EntryKind::Sale,
            EntryKind::Refund,
            EntryKind::RefundReversed,
            EntryKind::SaleReversed
        ]
    );
    db.drop_now().await;
}

#[tokio::test]
async fn a_reverse_recorded_before_its_refund_is_reclassified_when_the_refund_arrives() {
    let db = TestDatabase::create().await;
    // Webhooks out of order: the reverse first, its refund (created earlier) later.
    let reverse = tx(3, "reverse", 2_000);
    let mut refund = tx(2, "refund", 2_000);
    assert_eq!(record(&db.pool, &reverse).await, posted(1, 0));
    assert_eq!(kinds(&db.pool).await, [EntryKind::SaleReversed]);
    // The refund's entry, then the reverse's correction and its new entry.
    assert_eq!(record(&db.pool, &refund).await, posted(3, 1));
    assert_eq!(
        balances(&db.pool).await,
        cad(&[("refunds", 2_000), ("refunds_reversed", -2_000)])
    );
    // The refund's amount changes: the reverse no longer matches it.
    refund.amount_minor = 2_500;
    assert_eq!(record(&db.pool, &refund).await, posted(4, 2));
    assert_eq!(
        balances(&db.pool).await,
        cad(&[
            ("card_clearing", -4_500),
            ("refunds", 2_500),
            ("sales_reversed", 2_000)
        ])
    );
    // Another card's reverse is not touched by this refund.
    let other = Tx {
        token: "tok-2",
        ..tx(5, "reverse", 2_500)
    };
    assert_eq!(record(&db.pool, &other).await, posted(1, 0));
    assert_eq!(post(&db.pool, 2).await, posted(0, 0));
    db.drop_now().await;
}

/// Writes (or overwrites) the row and posts it, leaving the database transaction open.
async fn record_uncommitted(
    pool: &PgPool,
    tx: &Tx,
) -> (sqlx::Transaction<'static, sqlx::Postgres>, Posted) {
    let mut db = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO card_transactions (account_id, transaction_id, card_batch_id, created_at,
             status, type, amount_minor, currency, card_token, invoice_number, raw, fetched_at,
             reconciliation_status)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, '{}'::json, clock_timestamp(), 'matched')
         ON CONFLICT (account_id, transaction_id) DO UPDATE SET
             card_batch_id = EXCLUDED.card_batch_id, created_at = EXCLUDED.created_at,
             status = EXCLUDED.status, type = EXCLUDED.type, amount_minor = EXCLUDED.amount_minor,
             currency = EXCLUDED.currency, fetched_at = EXCLUDED.fetched_at",
    )
    .bind(ACCOUNT)
    .bind(tx.id)
    .bind(tx.batch)
    .bind(tx.created)
    .bind(tx.status)
    .bind(tx.kind)
    .bind(tx.amount_minor)
    .bind(tx.currency)
    .bind(tx.token)
    .bind(tx.invoice)
    .execute(&mut *db)
    .await
    .unwrap();
    let posted = journal::post_transaction(&mut db, ACCOUNT, tx.id as u64)
        .await
        .unwrap();
    (db, posted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reverse_and_its_refund_recorded_at_the_same_moment_still_find_each_other() {
    let db = TestDatabase::create().await;
    // Two consumers: the refund's job has posted but not committed when the
    // reverse's job posts. Without a lock each reads the other uncommitted and the
    // reverse stays a sale reversal.
    let (refund, _) = record_uncommitted(&db.pool, &tx(2, "refund", 2_000)).await;
    let pool = db.pool.clone();
    let reverse = tokio::spawn(async move { record(&pool, &tx(3, "reverse", 2_000)).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    refund.commit().await.unwrap();
    reverse.await.unwrap();
    assert_eq!(
        balances(&db.pool).await,
        cad(&[("refunds", 2_000), ("refunds_reversed", -2_000)])
    );
    db.drop_now().await;
}

#[tokio::test]
async fn a_reverse_without_an_invoice_number_is_a_sale_reversed() {
    let db = TestDatabase::create().await;
    record(&db.pool, &tx(1, "refund", 300)).await;
    let reverse = tx(2, "reverse", 300);
    record(&db.pool, &reverse).await;
    sqlx::query(
        "UPDATE card_transactions SET invoice_number = NULL WHERE transaction_id IN (1, 2)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    // The reverse no longer finds the refund: it is reclassified on its next posting.
    assert_eq!(post(&db.pool, 2).await, posted(2, 1));
    assert_eq!(
        kinds(&db.pool).await,
        [
            EntryKind::Refund,
            EntryKind::RefundReversed,
            EntryKind::Correction,
            EntryKind::SaleReversed
        ]
    );
    db.drop_now().await;
}

#[tokio::test]
async fn settlement_after_sales_and_refunds_leaves_the_batch_clearing_at_zero() {
    let db = TestDatabase::create().await;
    record(&db.pool, &tx(1, "purchase", 5_000)).await;
    record(&db.pool, &tx(2, "purchase", 3_000)).await;
    record(&db.pool, &tx(3, "refund", 1_200)).await;
    let elsewhere = Tx {
        batch: 78,
        ..tx(4, "purchase", 999)
    };
    record(&db.pool, &elsewhere).await;
    assert_eq!(
        journal::batch_clearing(&db.pool, ACCOUNT, 77)
            .await
            .unwrap(),
        [("CAD".to_string(), 6_800)]
    );
    let settle = |net: i64| {
        let pool = db.pool.clone();
        async move {
            let mut conn = pool.begin().await.unwrap();
            let posted = journal::post_settlement(&mut conn, ACCOUNT, 77, "CAD", net, at(600))
                .await
                .unwrap();
            conn.commit().await.unwrap();
            posted
        }
    };
    // Helcim reports less than the ledger holds: the residue is the difference.
    assert_eq!(settle(6_500).await, posted(1, 0));
    assert_eq!(
        journal::batch_clearing(&db.pool, ACCOUNT, 77)
            .await
            .unwrap(),
        [("CAD".to_string(), 300)]
    );
    // Helcim's net is corrected: the settlement is reversed and posted again.
    assert_eq!(settle(6_800).await, posted(2, 1));
    assert_eq!(settle(6_800).await, posted(0, 0), "idempotent");
    assert_eq!(
        journal::batch_clearing(&db.pool, ACCOUNT, 77)
            .await
            .unwrap(),
        [("CAD".to_string(), 0)]
    );
    assert_eq!(
        journal::batch_clearing(&db.pool, ACCOUNT, 78)
            .await
            .unwrap(),
        [("CAD".to_string(), 999)],
        "another batch is its own"
    );
    assert_eq!(
        balances(&db.pool).await,
        cad(&[
            ("card_clearing", 999),
            ("sales", -8_999),
            ("refunds", 1_200),
            ("settlement_receivable", 6_800),
        ])
    );
    let entries = journal::entries(&db.pool, ACCOUNT, None, 100)
        .await
        .unwrap();
    let settlement = entries.last().unwrap();
    assert_eq!(settlement.kind, EntryKind::Settlement);
    assert_eq!(settlement.transaction_id, None);
    assert_eq!(settlement.effective_at, at(600));
    assert!(settlement.memo.contains("batch 77") && settlement.memo.contains("68.00 CAD"));
    db.drop_now().await;
}

#[tokio::test]
async fn a_transaction_moved_to_another_batch_moves_its_entry() {
    let db = TestDatabase::create().await;
    let mut sale = tx(1, "purchase", 700);
    record(&db.pool, &sale).await;
    sale.batch = 78;
    assert_eq!(record(&db.pool, &sale).await, posted(2, 1));
    assert_eq!(
        journal::batch_clearing(&db.pool, ACCOUNT, 77)
            .await
            .unwrap(),
        [("CAD".to_string(), 0)]
    );
    assert_eq!(
        journal::batch_clearing(&db.pool, ACCOUNT, 78)
            .await
            .unwrap(),
        [("CAD".to_string(), 700)]
    );
    db.drop_now().await;
}

#[tokio::test]
async fn balances_at_a_time_are_what_the_journal_said_then() {
    let db = TestDatabase::create().await;
    let mut sale = tx(1, "purchase", 1_000);
    record(&db.pool, &sale).await;
    let between: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    sale.amount_minor = 4_000;
    record(&db.pool, &sale).await;
    let then: Vec<_> = journal::balances(&db.pool, ACCOUNT, Some(between))
        .await
        .unwrap()
        .into_iter()
        .map(|b| (b.account, b.balance_minor))
        .collect();
    assert_eq!(
        then,
        [
            (JournalAccount::CardClearing, 1_000),
            (JournalAccount::Sales, -1_000)
        ]
    );
    assert_eq!(
        balances(&db.pool).await,
        cad(&[("card_clearing", 4_000), ("sales", -4_000)])
    );
    assert!(
        journal::balances(&db.pool, "someone-else", None)
            .await
            .unwrap()
            .is_empty()
    );
    db.drop_now().await;
}
