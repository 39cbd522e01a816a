//! What recording a transaction raises, against a real Postgres: each class with its
//! key and evidence, nothing for a clean first record or an unchanged re-record, and
//! a late webhook clearing its `missed_webhook`.

use chrono::{DateTime, Duration, Utc};
use recon_reconcile::ExceptionClass;
use recon_store::reconciliation::exceptions::{self, Exception, ExceptionFilter, NewException};
use recon_store::reconciliation::{Origin, StoredFacts, previous_facts};
use recon_store::testing::TestDatabase;
use serde_json::json;

const ACCOUNT: &str = "acct-1";
const TOKEN: &str = "tok-SECRET-abc123";

/// A transaction as Helcim answers it (the ledger's typed columns).
#[derive(Debug, Clone)]
struct Tx {
    id: i64,
    status: &'static str,
    kind: &'static str,
    amount: i64,
    currency: &'static str,
    batch: Option<i64>,
    created: DateTime<Utc>,
    token: &'static str,
    /// Fetched before the stored answer: the upsert leaves the row alone.
    stale: bool,
}

fn t0() -> DateTime<Utc> {
    "2025-06-02T15:00:00Z".parse().unwrap()
}

fn purchase(id: i64) -> Tx {
    Tx {
        id,
        status: "APPROVED",
        kind: "purchase",
        amount: 1_200,
        currency: "CAD",
        batch: Some(50),
        created: t0(),
        token: TOKEN,
        stale: false,
    }
}

async fn batch(db: &TestDatabase, id: i64, currency: &str) {
    sqlx::query(
        "INSERT INTO card_batches (account_id, card_batch_id, closed, currency, raw, fetched_at)
         VALUES ($1, $2, false, $3, '{}', now())",
    )
    .bind(ACCOUNT)
    .bind(id)
    .bind(currency)
    .execute(&db.pool)
    .await
    .unwrap();
}

/// Writes `tx` as the worker does (new rows remember `origin`) and runs the hook in
/// the same transaction; returns the row before and how many were raised.
async fn record(db: &TestDatabase, tx: &Tx, origin: Origin) -> (Option<StoredFacts>, u32) {
    let (conn, previous, raised) = record_uncommitted(&db.pool, tx, origin).await;
    conn.commit().await.unwrap();
    (previous, raised)
}

/// [`record`], leaving the database transaction to commit.
async fn record_uncommitted(
    pool: &sqlx::PgPool,
    tx: &Tx,
    origin: Origin,
) -> (
    sqlx::Transaction<'static, sqlx::Postgres>,
    Option<StoredFacts>,
    u32,
) {
    let mut conn = pool.begin().await.unwrap();
    let previous = previous_facts(&mut conn, ACCOUNT, tx.id as u64)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO card_transactions (account_id, transaction_id, card_batch_id, created_at,
             status, type, amount_minor, currency, card_number_masked, card_token, raw, fetched_at,
             reconciliation_status, discovered_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '4111********1111', $9, '{}',
                 CASE WHEN $11 THEN now() - interval '1 day' ELSE clock_timestamp() END,
                 'matched', $10)
         ON CONFLICT (account_id, transaction_id) DO UPDATE SET
             card_batch_id = EXCLUDED.card_batch_id, created_at = EXCLUDED.created_at,
             status = EXCLUDED.status, type = EXCLUDED.type, amount_minor = EXCLUDED.amount_minor,
             currency = EXCLUDED.currency, card_token = EXCLUDED.card_token, raw = EXCLUDED.raw,
             fetched_at = EXCLUDED.fetched_at, reconciliation_status = 'matched'
         WHERE card_transactions.fetched_at IS NULL
            OR EXCLUDED.fetched_at >= card_transactions.fetched_at",
    )
    .bind(ACCOUNT)
    .bind(tx.id)
    .bind(tx.batch)
    .bind(tx.created)
    .bind(tx.status)
    .bind(tx.kind)
    .bind(tx.amount)
    .bind(tx.currency)
    .bind(tx.token)
    .bind(origin.as_str())
    .bind(tx.stale)
    .execute(&mut *conn)
    .await
    .unwrap();
    let raised = exceptions::on_transaction_recorded(
        &mut conn,
        ACCOUNT,
        tx.id as u64,
        previous.as_ref(),
        origin,
    )
    .await
    .unwrap();
    (conn, previous, raised)
}

async fn all(db: &TestDatabase) -> Vec<Exception> {
    let mut page = exceptions::list(&db.pool, &ExceptionFilter::default(), None, 1_000)
        .await
        .unwrap()
        .exceptions;
    page.reverse();
    page
}

fn keys(found: &[Exception]) -> Vec<&str> {
    found.iter().map(|e| e.dedupe_key.as_str()).collect()
}

#[tokio::test]
async fn a_clean_first_record_and_an_unchanged_re_record_raise_nothing() {
    let db = TestDatabase::create().await;
    batch(&db, 50, "CAD").await;
    let tx = purchase(1);
    assert_eq!(record(&db, &tx, Origin::Webhook).await.1, 0);
    let (previous, raised) = record(&db, &tx, Origin::Sweep).await;
    assert!(previous.is_some_and(|p| !p.is_pending()));
    assert_eq!(raised, 0);
    // A refund and a decline of another card are not duplicates of anything either.
    let mut refund = purchase(2);
    refund.kind = "refund";
    assert_eq!(record(&db, &refund, Origin::Webhook).await.1, 0);
    assert!(all(&db).await.is_empty());
    db.drop_now().await;
}

#[tokio::test]
async fn an_older_answer_the_ledger_ignores_raises_nothing() {
    let db = TestDatabase::create().await;
    batch(&db, 50, "CAD").await;
    let tx = purchase(3);
    record(&db, &tx, Origin::Webhook).await;
    let mut older = tx.clone();
    older.stale = true;
    older.amount = 900;
    older.status = "DECLINED";
    older.currency = "USD";
    assert_eq!(record(&db, &older, Origin::Sweep).await.1, 0);
    assert!(all(&db).await.is_empty());
    db.drop_now().await;
}

#[tokio::test]
async fn the_first_answer_after_a_pending_row_is_not_a_change() {
    let db = TestDatabase::create().await;
    batch(&db, 50, "CAD").await;
    sqlx::query("INSERT INTO card_transactions (account_id, transaction_id) VALUES ($1, 1)")
        .bind(ACCOUNT)
        .execute(&db.pool)
        .await
        .unwrap();
    let (previous, raised) = record(&db, &purchase(1), Origin::Webhook).await;
    assert!(previous.unwrap().is_pending());
    assert_eq!(raised, 0);
    assert!(all(&db).await.is_empty());
    db.drop_now().await;
}

#[tokio::test]
async fn a_changed_amount_status_type_or_batch_each_raise_their_key_with_old_and_new() {
    let db = TestDatabase::create().await;
    batch(&db, 50, "CAD").await;
    batch(&db, 51, "CAD").await;
    let mut tx = purchase(10);
    record(&db, &tx, Origin::Webhook).await;

    tx.amount = 1_500;
    assert_eq!(record(&db, &tx, Origin::Sweep).await.1, 1);
    tx.status = "DECLINED";
    assert_eq!(record(&db, &tx, Origin::Sweep).await.1, 1);
    tx.kind = "preauth";
    assert_eq!(record(&db, &tx, Origin::Sweep).await.1, 1);
    tx.batch = Some(51);
    assert_eq!(record(&db, &tx, Origin::Sweep).await.1, 1);
    // The same answer again: nothing more.
    assert_eq!(record(&db, &tx, Origin::Sweep).await.1, 0);

    let found = all(&db).await;
    assert_eq!(
        keys(&found),
        [
            "amount_changed:tx:10:1200->1500",
            "status_changed:tx:10:APPROVED/purchase->DECLINED/purchase",
            "status_changed:tx:10:DECLINED/purchase->DECLINED/preauth",
            "batch_changed:tx:10:50->51",
        ]
    );
    let amount = &found[0];
    assert_eq!(amount.class, ExceptionClass::AmountChanged);
    assert_eq!(amount.transaction_id, Some(10));
    assert_eq!(
        amount.summary,
        "transaction 10: amount changed at Helcim from 12.00 CAD to 15.00 CAD"
    );
    assert_eq!(amount.evidence["previous"]["amountMinor"], 1_200);
    assert_eq!(amount.evidence["current"]["amountMinor"], 1_500);
    assert_eq!(found[1].class, ExceptionClass::StatusChanged);
    assert_eq!(found[1].evidence["previous"]["status"], "APPROVED");
    assert_eq!(found[1].evidence["current"]["status"], "DECLINED");
    assert_eq!(found[3].class, ExceptionClass::BatchChanged);
    assert_eq!(
        (
            &found[3].evidence["previous"]["cardBatchId"],
            &found[3].evidence["current"]["cardBatchId"]
        ),
        (&json!(50), &json!(51))
    );
    assert_eq!(found[3].card_batch_id, Some(51));
    for exception in &found {
        assert!(!exception.evidence.to_string().contains(TOKEN));
    }
    db.drop_now().await;
}

#[tokio::test]
async fn a_currency_unlike_its_batch_or_changed_raises_currency_mismatch() {
    let db = TestDatabase::create().await;
    batch(&db, 50, "CAD").await;
    let mut usd = purchase(20);
    usd.currency = "USD";
    assert_eq!(record(&db, &usd, Origin::Webhook).await.1, 1);

    // A transaction without a batch row, whose currency then changes.
    let mut moved = purchase(21);
    moved.batch = Some(99);
    moved.token = "tok-other";
    assert_eq!(record(&db, &moved, Origin::Webhook).await.1, 0);
    moved.currency = "USD";
    assert_eq!(record(&db, &moved, Origin::Sweep).await.1, 1);

    let found = all(&db).await;
    assert_eq!(
        keys(&found),
        ["currency_mismatch:tx:20:USD", "currency_mismatch:tx:21:USD"]
    );
    assert_eq!(found[0].class, ExceptionClass::CurrencyMismatch);
    assert_eq!(found[0].evidence["batchCurrency"], "CAD");
    assert_eq!(found[0].currency.as_deref(), Some("USD"));
    assert!(
        found[0].summary.contains("card batch 50 is in CAD"),
        "{}",
        found[0].summary
    );
    assert_eq!(found[1].evidence["previousCurrency"], "CAD");
    db.drop_now().await;
}

#[tokio::test]
async fn a_status_or_type_this_version_does_not_know_raises_unknown_status_once() {
    let db = TestDatabase::create().await;
    batch(&db, 50, "CAD").await;
    let mut held = purchase(30);
    held.status = "HELD";
    assert_eq!(record(&db, &held, Origin::Webhook).await.1, 1);
    assert_eq!(record(&db, &held, Origin::Sweep).await.1, 0);
    let found = all(&db).await;
    assert_eq!(keys(&found), ["unknown_status:tx:30:HELD/purchase"]);
    assert_eq!(found[0].class, ExceptionClass::UnknownStatus);
    assert_eq!(found[0].evidence["status"], "HELD");
    assert!(
        found[0].summary.contains("\"HELD\""),
        "{}",
        found[0].summary
    );
    db.drop_now().await;
}

#[tokio::test]
async fn a_second_same_card_payment_within_the_window_is_a_duplicate_suspect_keyed_on_the_later() {
    let db = TestDatabase::create().await;
    batch(&db, 50, "CAD").await;
    let first = purchase(40);
    let mut second = purchase(41);
    second.created = t0() + Duration::seconds(30);
    // Recorded out of order: the later one first, then the earlier finds it.
    assert_eq!(record(&db, &second, Origin::Webhook).await.1, 0);
    assert_eq!(record(&db, &first, Origin::Webhook).await.1, 1);
    // The later one recorded again finds the same pair: same key, nothing new.
    assert_eq!(record(&db, &second, Origin::Sweep).await.1, 0);

    // Not duplicates: another card, another amount, too far apart, declined, a refund.
    let mut other_card = purchase(42);
    other_card.token = "tok-other";
    let mut other_amount = purchase(43);
    other_amount.amount = 1_201;
    let mut far = purchase(44);
    far.created = t0() + Duration::seconds(30 + 121);
    let mut declined = purchase(45);
    declined.status = "DECLINED";
    let mut refund = purchase(46);
    refund.kind = "refund";
    for tx in [&other_card, &other_amount, &far, &declined, &refund] {
        assert_eq!(record(&db, tx, Origin::Webhook).await.1, 0, "{tx:?}");
    }

    let found = all(&db).await;
    assert_eq!(keys(&found), ["duplicate_suspect:tx:41"]);
    let suspect = &found[0];
    assert_eq!(suspect.class, ExceptionClass::DuplicateSuspect);
    assert_eq!(suspect.transaction_id, Some(41));
    assert_eq!(suspect.evidence["transactionId"], 41);
    assert_eq!(suspect.evidence["earlierTransactionId"], 40);
    assert_eq!(suspect.evidence["secondsApart"], 30);
    assert_eq!(suspect.evidence["cardNumber"], "4111********1111");
    assert!(!suspect.evidence.to_string().contains(TOKEN));
    assert!(!suspect.summary.contains(TOKEN));
    assert!(suspect.summary.contains("12.00 CAD"), "{}", suspect.summary);
    db.drop_now().await;
}

#[tokio::test]
async fn two_same_card_payments_recorded_at_the_same_moment_still_find_each_other() {
    let db = TestDatabase::create().await;
    batch(&db, 50, "CAD").await;
    let first = purchase(70);
    let mut second = purchase(71);
    second.created = t0() + Duration::seconds(5);
    let (open, _, raised) = record_uncommitted(&db.pool, &first, Origin::Webhook).await;
    assert_eq!(raised, 0);
    // The second recorder runs while the first has not committed yet.
    let pool = db.pool.clone();
    let racing = tokio::spawn(async move {
        let (conn, _, raised) = record_uncommitted(&pool, &second, Origin::Webhook).await;
        conn.commit().await.unwrap();
        raised
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !racing.is_finished(),
        "the second waits for the first's commit"
    );
    open.commit().await.unwrap();
    assert_eq!(racing.await.unwrap(), 1);
    assert_eq!(keys(&all(&db).await), ["duplicate_suspect:tx:71"]);
    db.drop_now().await;
}

#[tokio::test]
async fn a_late_webhook_for_a_sweep_found_transaction_clears_its_missed_webhook() {
    let db = TestDatabase::create().await;
    batch(&db, 50, "CAD").await;
    let tx = purchase(60);
    record(&db, &tx, Origin::Sweep).await;
    let key = "missed_webhook:tx:60";
    let mut conn = db.pool.acquire().await.unwrap();
    let raised = exceptions::raise(
        &mut conn,
        &NewException {
            account_id: ACCOUNT.into(),
            class: ExceptionClass::MissedWebhook,
            transaction_id: Some(60),
            card_batch_id: Some(50),
            dedupe_key: key.into(),
            summary: "transaction 60 (12.00 CAD) was found by a sweep; no webhook announced it"
                .into(),
            evidence: json!({"transactionId": 60}),
            amount_minor: Some(1_200),
            currency: Some("CAD".into()),
        },
    )
    .await
    .unwrap();
    assert!(raised);
    drop(conn);

    // Another sweep is not the webhook.
    record(&db, &tx, Origin::Sweep).await;
    assert_eq!(all(&db).await[0].status.as_str(), "open");

    record(&db, &tx, Origin::Webhook).await;
    let found = all(&db).await;
    assert_eq!(found[0].status.as_str(), "resolved");
    assert_eq!(found[0].note.as_deref(), Some("the webhook arrived late"));
    let (_, events) = exceptions::get(&db.pool, found[0].id)
        .await
        .unwrap()
        .unwrap();
    let trail: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.action.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(trail, [("raised", "system"), ("cleared", "system")]);
    db.drop_now().await;
}
